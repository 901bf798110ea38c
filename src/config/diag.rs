//! Located diagnostics for pk.yaml and their deterministic miette rendering.
//!
//! Every check in `config` and `plan` pushes a `Diag` instead of returning early, so one run
//! reports every problem. Rendering is the only place that knows about miette.
//!
//! A load may read several files (`-f a -f b`, override files, `extends:`): each `Span` carries
//! the index of its file in the load's list of sources, so a diagnostic is rendered against the
//! file it points into, whichever file was read first.

use std::fmt;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, Severity};

/// Byte range in one of the config sources (`file` indexes the load's list of sources).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Span {
    pub file: u16,
    pub offset: usize,
    pub len: usize,
}

impl Span {
    /// A span in the first (or only) file.
    pub(crate) fn new(offset: usize, len: usize) -> Span {
        Span {
            file: 0,
            offset,
            len,
        }
    }

    /// The same range, in source number `file`.
    #[must_use]
    pub(crate) fn in_file(self, file: u16) -> Span {
        Span { file, ..self }
    }
}

/// The text of one config file and the name it is shown under in messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub name: String,
    pub text: String,
}

/// One problem: a message, labels pointing into the source, and a hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diag {
    pub message: String,
    pub labels: Vec<(Span, String)>,
    pub help: Option<String>,
    pub warning: bool,
}

impl Diag {
    pub(crate) fn error(message: impl Into<String>) -> Diag {
        Diag {
            message: message.into(),
            labels: Vec::new(),
            help: None,
            warning: false,
        }
    }

    pub(crate) fn warning(message: impl Into<String>) -> Diag {
        Diag {
            warning: true,
            ..Diag::error(message)
        }
    }

    #[must_use]
    pub(crate) fn label(mut self, span: Span, text: impl Into<String>) -> Diag {
        self.labels.push((span, text.into()));
        self
    }

    #[must_use]
    pub(crate) fn help(mut self, help: impl Into<String>) -> Diag {
        self.help = Some(help.into());
        self
    }

    #[must_use]
    pub(crate) fn help_opt(mut self, help: Option<String>) -> Diag {
        self.help = help;
        self
    }

    /// Renders this diagnostic against the file its first label points into (a snippet), or
    /// without a snippet. Labels in other files become `also:` lines with `file:line:col`.
    pub fn render_in(&self, sources: &[Source], color: bool) -> String {
        let Some(file) = self.labels.first().map(|(s, _)| s.file) else {
            let only = sources.first().filter(|_| sources.len() == 1);
            return self.render(only.map(|s| (s.name.as_str(), s.text.as_str())), color);
        };
        let source = sources.get(usize::from(file));
        let mut diag = self.clone();
        let (here, elsewhere): (Vec<_>, Vec<_>) =
            diag.labels.drain(..).partition(|(s, _)| s.file == file);
        diag.labels = here;
        let mut notes: Vec<String> = elsewhere
            .iter()
            .filter_map(|(span, text)| {
                let other = sources.get(usize::from(span.file))?;
                let (line, col) = line_col(&other.text, span.offset);
                Some(format!("also {}:{line}:{col}: {text}", other.name))
            })
            .collect();
        if !notes.is_empty() {
            notes.extend(diag.help.take());
            diag.help = Some(notes.join("\n"));
        }
        diag.render(source.map(|s| (s.name.as_str(), s.text.as_str())), color)
    }

    /// Renders this diagnostic against `source` (named `name`), or without a snippet.
    pub(crate) fn render(&self, source: Option<(&str, &str)>, color: bool) -> String {
        let theme = if color {
            GraphicalTheme::unicode()
        } else {
            GraphicalTheme::unicode_nocolor()
        };
        let handler = GraphicalReportHandler::new_themed(theme)
            .with_width(100)
            .with_links(false)
            .without_syntax_highlighting();
        let report = Report {
            diag: self,
            source: source.map(|(name, text)| NamedSource::new(name, text.to_owned())),
        };
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = handler.render_report(&mut out, &report);
        out
    }
}

struct Report<'a> {
    diag: &'a Diag,
    source: Option<NamedSource<String>>,
}

impl fmt::Debug for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diag.message)
    }
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diag.message)
    }
}

impl std::error::Error for Report<'_> {}

impl miette::Diagnostic for Report<'_> {
    fn severity(&self) -> Option<Severity> {
        Some(if self.diag.warning {
            Severity::Warning
        } else {
            Severity::Error
        })
    }

    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.diag
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.source.as_ref().map(|s| s as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        self.source.as_ref()?;
        if self.diag.labels.is_empty() {
            return None;
        }
        Some(Box::new(self.diag.labels.iter().enumerate().map(
            |(i, (span, text))| {
                let label = (!text.is_empty()).then(|| text.clone());
                if i == 0 {
                    LabeledSpan::new_primary_with_span(label, (span.offset, span.len))
                } else {
                    LabeledSpan::new_with_span(label, (span.offset, span.len))
                }
            },
        )))
    }
}

/// "did you mean `x`?" for the closest candidate, if any is close enough: within a few edits
/// (transpositions count as one) or sharing a long prefix.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| {
            (
                strsim::damerau_levenshtein(word, c),
                strsim::jaro_winkler(word, c),
                c,
            )
        })
        .filter(|(distance, similarity, _)| *distance <= limit || *similarity >= 0.85)
        .min_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)))
        .map(|(_, _, c)| c)
}

/// 1-based line and column of a byte offset, for one-line messages.
pub(crate) fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let before = &source[..offset.min(source.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}
