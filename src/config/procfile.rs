//! Procfile → `Config`, with the meaning foreman and honcho give it and located errors.
//!
//! The format: one `name: command` per line; blank lines and lines whose first non-blank
//! character is `#` are skipped; each command runs under `sh -c`. foreman and honcho skip any
//! other line that does not match `name: command` without a word; pk reports it
//! (`file:line:col`, snippet, hint), with every other problem of the file, and starts nothing.
//!
//! What a Procfile means, in the model's terms:
//! - every service has `exit_on_end`: when any process ends, the others are stopped and pk exits
//!   with that process's code;
//! - `port`: the base (`PORT` from `.env`, else from the environment, else 5000) + 100 × the
//!   process's position in the file; `plan::build` adds N for copy N (`--scale`) and sets `PORT`;
//! - `.env` beside the Procfile (quotes, `export` prefix) goes into every process and wins over
//!   the inherited environment (the top-level `env`).
//!
//! Invariant: the returned `Config` names only valid, distinct services; every span points into
//! the Procfile's or the `.env`'s range of the `Sources` given.

use std::collections::BTreeMap;
use std::path::Path;

use super::diag::{Diag, Span};
use super::model::{Command, Config, EnvMap, Located, Service, Services};
use super::values;
use crate::vocab::CommandSpec;

/// `PORT` of the first process when neither `.env` nor the environment sets one.
pub(crate) const DEFAULT_PORT_BASE: u32 = 5000;
/// Ports between two process types (foreman and honcho both use 100).
pub(crate) const PORT_STEP: u32 = 100;
/// The name of the env file read beside a Procfile.
pub(crate) const DOTENV: &str = ".env";

/// A Procfile read into the model.
#[derive(Debug, Clone)]
pub(crate) struct Procfile {
    /// Services in file order, each with `exit_on_end` and `port`; `env` holds `.env`.
    pub config: Config,
    /// `.env` beside the Procfile, if there is one: its path as shown and its variables.
    pub dotenv: Option<(String, Vec<(String, String)>)>,
    /// The `PORT` of the first process.
    pub port_base: u32,
}

/// Reads the Procfile at `path` (shown as `shown`) with text `text`, and the `.env` beside it.
/// `env` is the inherited environment (for the `PORT` base). Returns the config only if there
/// was no error; warnings come back either way. Spans point into `text`.
pub(crate) fn read(
    path: &Path,
    shown: &str,
    text: &str,
    env: &BTreeMap<String, String>,
) -> (Option<Procfile>, Vec<Diag>) {
    let mut diags = Vec::new();
    let services = parse(text, 0, &mut diags);
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let dotenv_path = dir.join(DOTENV);
    let dotenv = if dotenv_path.is_file() {
        let shown = Path::new(shown).parent().map_or_else(
            || DOTENV.to_owned(),
            |p| p.join(DOTENV).display().to_string(),
        );
        match read_dotenv(&dotenv_path, &shown) {
            Ok(vars) => Some((shown, vars)),
            Err(d) => {
                diags.push(d);
                None
            }
        }
    } else {
        None
    };
    let port_base = port_base(dotenv.as_ref().map(|(_, v)| v.as_slice()), env, &mut diags);
    let env = EnvMap(
        dotenv
            .iter()
            .flat_map(|(_, vars)| vars.iter().map(|(k, v)| (k.clone(), Some(v.clone()))))
            .collect(),
    );
    let services = Services(
        services
            .into_iter()
            .enumerate()
            .map(|(position, (name, command))| Service {
                span: name.span,
                name,
                command: Some(Command(CommandSpec::Shell(command))),
                exit_on_end: true,
                port: Some(port_base + PORT_STEP * u32::try_from(position).unwrap_or(u32::MAX)),
                ..Service::default()
            })
            .collect(),
    );
    let config = Config {
        env,
        services,
        ..Config::default()
    };
    if diags.iter().any(|d| !d.warning) {
        return (None, diags);
    }
    (
        Some(Procfile {
            config,
            dotenv,
            port_base,
        }),
        diags,
    )
}

/// The variables of `.env` (quotes, `export` prefix), or a diagnostic naming the line.
fn read_dotenv(path: &Path, shown: &str) -> Result<Vec<(String, String)>, Diag> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Diag::error(format!("cannot read `{shown}`: {e}")))?;
    let mut vars = Vec::new();
    for item in dotenvy::from_read_iter(text.as_bytes()) {
        match item {
            Ok(pair) => vars.push(pair),
            Err(dotenvy::Error::LineParse(line, index)) => {
                let at = text
                    .find(line.as_str())
                    .map_or(0, |o| o + index.min(line.len()));
                let (row, col) = super::diag::line_col(&text, at);
                return Err(Diag::error(format!(
                    "{shown}:{row}:{col}: cannot parse `{}`",
                    line.trim_end()
                ))
                .help("lines look like `KEY=value`, `export KEY=value` or `KEY=\"quoted value\"`; `#` starts a comment"));
            }
            Err(e) => return Err(Diag::error(format!("{shown}: {e}"))),
        }
    }
    Ok(vars)
}

/// `PORT` from `.env`, else from the environment, else 5000 (as foreman and honcho count).
fn port_base(
    dotenv: Option<&[(String, String)]>,
    env: &BTreeMap<String, String>,
    diags: &mut Vec<Diag>,
) -> u32 {
    let written = dotenv
        .and_then(|vars| vars.iter().rev().find(|(k, _)| k == "PORT"))
        .map(|(_, v)| (v.as_str(), DOTENV))
        .or_else(|| env.get("PORT").map(|v| (v.as_str(), "the environment")));
    let Some((text, origin)) = written else {
        return DEFAULT_PORT_BASE;
    };
    match text.trim().parse::<u16>() {
        Ok(port) if port > 0 => u32::from(port),
        _ => {
            diags.push(
                Diag::warning(format!(
                    "PORT=`{text}` from {origin} is not a port number; counting from {DEFAULT_PORT_BASE}"
                ))
                .help("PORT is the first process's port; the next process type gets PORT+100"),
            );
            DEFAULT_PORT_BASE
        }
    }
}

/// The `name: command` lines, in order; every problem becomes a located diagnostic.
fn parse(text: &str, base: usize, diags: &mut Vec<Diag>) -> Vec<(Located<String>, String)> {
    let mut services: Vec<(Located<String>, String)> = Vec::new();
    let mut offset = 0;
    for raw in text.split_inclusive('\n') {
        let start = offset;
        offset += raw.len();
        let line = raw.trim_end_matches(['\n', '\r']);
        let content = line.trim_start();
        let indent = line.len() - content.len();
        if content.trim_end().is_empty() || content.starts_with('#') {
            continue;
        }
        let at = |from: usize, len: usize| Span::new(base + start + indent + from, len);
        let Some(colon) = content.find(':') else {
            diags.push(
                Diag::error("this line is not `name: command`")
                    .label(at(0, content.trim_end().len()), "no `:` after a process name")
                    .help("each line of a Procfile is `name: command`, e.g. `web: bundle exec puma`; start the line with `#` to keep it as a comment"),
            );
            continue;
        };
        let name = &content[..colon];
        let command = content[colon + 1..].trim();
        let name_span = at(0, name.len());
        if !is_procfile_name(name) || !values::is_valid_service_name(name) {
            let help = if name.contains(char::is_whitespace) {
                "a process name is one word directly followed by `:`, e.g. `web: …`".to_owned()
            } else if is_procfile_name(name) {
                "pk service names start with a letter or a digit".to_owned()
            } else {
                "a process name has only letters, digits, `_` and `-`".to_owned()
            };
            diags.push(
                Diag::error(format!("`{name}` is not a valid process name"))
                    .label(
                        if name.is_empty() { at(0, 1) } else { name_span },
                        "invalid name",
                    )
                    .help(help),
            );
            continue;
        }
        if command.is_empty() {
            diags.push(
                Diag::error(format!("process `{name}` has no command"))
                    .label(at(0, colon + 1), "nothing after the `:`")
                    .help("write the command after the colon, e.g. `web: bundle exec puma`"),
            );
            continue;
        }
        if let Some((first, _)) = services.iter().find(|(n, _)| n.value == name) {
            diags.push(
                Diag::error(format!("process `{name}` is declared twice"))
                    .label(name_span, "declared again here")
                    .label(first.span, "first declared here")
                    .help("give each line its own name (foreman would keep only one of them)"),
            );
            continue;
        }
        services.push((
            Located {
                value: name.to_owned(),
                span: name_span,
            },
            command.to_owned(),
        ));
    }
    if services.is_empty() && diags.is_empty() {
        diags.push(
            Diag::error("the Procfile declares no process")
                .label(Span::new(base, 0), "expected a `name: command` line")
                .help("add a line such as `web: bundle exec puma`"),
        );
    }
    services
}

/// Whether `path` is named like a Procfile: `Procfile`, `Procfile.dev`, `web.Procfile`,
/// `app__Procfile.dev` (case-insensitive), but not `Procfile.yaml`-like YAML names.
pub(crate) fn is_procfile(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    let lower = name.to_ascii_lowercase();
    let yaml = Path::new(&lower)
        .extension()
        .is_some_and(|e| e == "yaml" || e == "yml" || e == "json");
    !yaml && (lower.ends_with("procfile") || lower.contains("procfile."))
}

/// foreman's and honcho's process name: `[A-Za-z0-9_-]+`.
fn is_procfile_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> (Vec<(String, String)>, Vec<String>) {
        let mut diags = Vec::new();
        let services = parse(text, 0, &mut diags);
        (
            services.into_iter().map(|(n, c)| (n.value, c)).collect(),
            diags.into_iter().map(|d| d.message).collect(),
        )
    }

    #[test]
    fn names_commands_comments_and_blank_lines() {
        let (services, diags) = lines(
            "# a comment\r\nweb: bundle exec puma -p $PORT\r\n\n   \n  #indented comment\nworker:python w.py --url http://x:1\n",
        );
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(
            services,
            [
                ("web".into(), "bundle exec puma -p $PORT".into()),
                ("worker".into(), "python w.py --url http://x:1".into()),
            ]
        );
    }

    #[test]
    fn every_bad_line_is_reported() {
        let (services, diags) =
            lines("web: a\nno colon here\nmy web: b\nempty:\nweb: c\n-x: d\n_x: e\n");
        // `_x` is a name for foreman's regex and for pk.
        assert_eq!(services.len(), 2);
        assert_eq!(
            diags,
            [
                "this line is not `name: command`",
                "`my web` is not a valid process name",
                "process `empty` has no command",
                "process `web` is declared twice",
                "`-x` is not a valid process name",
            ]
        );
    }

    #[test]
    fn spans_point_at_the_line_in_the_shared_offset_space() {
        let mut diags = Vec::new();
        parse("web: a\n  oops\n", 100, &mut diags);
        assert_eq!(diags[0].labels[0].0, Span::new(109, 4));
    }
}
