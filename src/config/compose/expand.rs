//! process-compose's load-time expansion of `$VAR` / `${VAR:-default}` in the raw file text,
//! before YAML parsing, with a map back to the original offsets.
//!
//! Grammar (a subset of drone/envsubst, which process-compose uses): `$$` is a literal `$`;
//! `$NAME`, `${NAME}`; `${NAME:-d}`/`${NAME-d}`, `${NAME:=d}`/`${NAME=d}` (default),
//! `${NAME:+a}`/`${NAME+a}` (alternative), `${NAME:?m}`/`${NAME?m}` (error). Defaults nest. An
//! unset variable without a default becomes the empty string (as in process-compose) and is
//! reported once as a warning. A `$` followed by anything else stays.
//!
//! Invariant: `Expanded::original_span` maps every span of the expanded text to a span of the
//! original text that covers the same YAML, so errors point into the file as the user wrote it.

use std::collections::BTreeMap;

use crate::config::diag::{Diag, Span};
use crate::config::interpolate::{InterpolateError, interpolate};

/// One replaced stretch: `expanded[e.0..e.1]` came from `original[o.0..o.1]`.
#[derive(Debug, Clone, Copy)]
struct Edit {
    e: (usize, usize),
    o: (usize, usize),
}

#[derive(Debug, Default)]
pub(super) struct Expanded {
    pub text: String,
    edits: Vec<Edit>,
}

impl Expanded {
    /// The text unchanged (`disable_env_expansion: true`).
    pub(super) fn verbatim(text: &str) -> Expanded {
        Expanded {
            text: text.to_owned(),
            edits: Vec::new(),
        }
    }

    fn offset(&self, e: usize, end: bool) -> usize {
        let mut delta: isize = 0;
        for edit in &self.edits {
            if e < edit.e.0 || (end && e == edit.e.0) {
                break;
            }
            if e < edit.e.1 || (end && e == edit.e.1) {
                return if end { edit.o.1 } else { edit.o.0 };
            }
            delta = to_isize(edit.o.1) - to_isize(edit.e.1);
        }
        usize::try_from(to_isize(e) + delta).unwrap_or(0)
    }

    /// A span of the expanded text as a span of the original text.
    pub(super) fn original_span(&self, span: Span) -> Span {
        let start = self.offset(span.offset, false);
        let end = self.offset(span.offset + span.len, true).max(start);
        Span {
            file: span.file,
            offset: start,
            len: end - start,
        }
    }
}

fn to_isize(n: usize) -> isize {
    isize::try_from(n).unwrap_or(isize::MAX)
}

fn is_name_start(c: char) -> bool {
    c == '_' || c.is_ascii_alphabetic()
}

fn is_name_char(c: char) -> bool {
    c == '_' || c.is_ascii_alphanumeric()
}

/// Expands `text` with `vars`; unset variables and bad forms are reported in `diags`, located
/// in file `file` of the load.
pub(super) fn expand(
    text: &str,
    vars: &BTreeMap<String, String>,
    file: u16,
    diags: &mut Vec<Diag>,
) -> Expanded {
    let mut out = Expanded::default();
    let mut warned: Vec<String> = Vec::new();
    let mut i = 0;
    let bytes = text.as_bytes();
    while let Some(pos) = text[i..].find('$').map(|p| p + i) {
        out.text.push_str(&text[i..pos]);
        let after = &text[pos + 1..];
        let (consumed, replacement, unset) = if after.starts_with('$') {
            (2, Ok("$".to_owned()), Vec::new())
        } else if after.starts_with('{') {
            match closing(&bytes[pos + 2..]) {
                Some(close) => {
                    let form = &text[pos..=pos + 2 + close];
                    match interpolate(form, vars) {
                        Ok(x) => (form.len(), Ok(x.text), x.unset),
                        Err(e) => (form.len(), Err(e), Vec::new()),
                    }
                }
                None => (
                    1,
                    Err(InterpolateError::Invalid {
                        text: line_rest(&text[pos..]).to_owned(),
                    }),
                    Vec::new(),
                ),
            }
        } else if after.starts_with(is_name_start) {
            let end = after.find(|c| !is_name_char(c)).unwrap_or(after.len());
            let name = &after[..end];
            match vars.get(name) {
                Some(v) => (1 + end, Ok(v.clone()), Vec::new()),
                None => (1 + end, Ok(String::new()), vec![name.to_owned()]),
            }
        } else {
            out.text.push('$');
            i = pos + 1;
            continue;
        };
        let span = Span {
            file,
            offset: pos,
            len: consumed,
        };
        let replacement = match replacement {
            Ok(r) => r,
            Err(InterpolateError::Required { name, message }) => {
                let message = if message.is_empty() {
                    format!("variable `{name}` is required")
                } else {
                    message
                };
                diags.push(
                    Diag::error(format!("required variable `{name}` is not set: {message}"))
                        .label(span, format!("`{name}` is required here"))
                        .help(format!("set `{name}` in the environment or in .env")),
                );
                String::new()
            }
            Err(InterpolateError::TooDeep) => {
                diags.push(
                    Diag::error("variable defaults are nested too deeply")
                        .label(span, "expanded before the file is parsed")
                        .help("nest `${A:-${B:-…}}` defaults at most a few levels deep"),
                );
                String::new()
            }
            Err(InterpolateError::Invalid { text: form }) => {
                diags.push(
                    Diag::error(format!("invalid variable reference `{form}`"))
                        .label(span, "expanded before the file is parsed")
                        .help("pk supports `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:+alt}` and `${VAR:?message}`; write `$$` for a literal `$` (or set `disable_env_expansion: true`)"),
                );
                text[pos..pos + consumed].to_owned()
            }
        };
        for name in unset {
            if warned.contains(&name) {
                continue;
            }
            diags.push(
                Diag::warning(format!("variable `{name}` is not set; using an empty string"))
                    .label(span, format!("`{name}` is expanded when the file is loaded"))
                    .help(format!(
                        "set it in the environment or .env, give a default (`${{{name}:-value}}`), or write `$${name}` to leave it to the process's shell"
                    )),
            );
            warned.push(name);
        }
        let e0 = out.text.len();
        out.text.push_str(&replacement);
        out.edits.push(Edit {
            e: (e0, out.text.len()),
            o: (pos, pos + consumed),
        });
        i = pos + consumed;
    }
    out.text.push_str(&text[i..]);
    out
}

/// Index (in `rest`, just after `${`) of the `}` that closes it, counting nested `${ … }`;
/// never past the end of the line.
fn closing(rest: &[u8]) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = 0;
    while i < rest.len() {
        match rest[i] {
            b'\n' => return None,
            b'$' if rest.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'$' if rest.get(i + 1) == Some(&b'$') => i += 1,
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

fn line_rest(text: &str) -> &str {
    text.split('\n').next().unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> BTreeMap<String, String> {
        [("PORT", "8080"), ("EMPTY", "")]
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect()
    }

    #[test]
    fn expands_and_maps_back() {
        let mut diags = Vec::new();
        let text = "a: ${PORT}\nb: ${NOPE:-x}$$y $NOPE z\n";
        let x = expand(text, &vars(), 0, &mut diags);
        assert_eq!(x.text, "a: 8080\nb: x$y  z\n");
        assert_eq!(diags.len(), 1, "{diags:?}");
        assert!(diags[0].warning);
        // `z` is at 18 in the expanded text and at 31 in the original.
        let z = x.text.find('z').unwrap();
        let o = x.original_span(Span::new(z, 1));
        assert_eq!(&text[o.offset..o.offset + o.len], "z");
        // The whole value `8080` maps to the whole `${PORT}`.
        let v = x.original_span(Span::new(3, 4));
        assert_eq!(&text[v.offset..v.offset + v.len], "${PORT}");
    }

    #[test]
    fn bad_forms_are_located_errors() {
        let mut diags = Vec::new();
        let x = expand("a: ${PORT/8/9}\nb: ${OPEN\n", &vars(), 0, &mut diags);
        assert_eq!(diags.iter().filter(|d| !d.warning).count(), 2);
        assert!(x.text.starts_with("a: ${PORT/8/9}"));
    }
}
