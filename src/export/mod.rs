//! Back ends: a `Plan` written out for another engine (systemd units, a Nomad job).
//!
//! Invariants: a back end reads the `Plan` and nothing at runtime (no engine, supervisor or
//! process code, no file system); it returns text and warnings, and the caller writes the files.
//! Anything the target engine cannot express faithfully becomes a `Warning` naming the service
//! and the reason, and a comment in the output; the export never stops for it.

pub(crate) mod nomad;
pub(crate) mod systemd;

use std::fmt;
use std::path::Path;
use std::time::Duration;

use crate::plan::{ProbeSpec, RunSpec};
use crate::vocab::{CommandSpec, ProbeCheck, command_argv};

/// Something the target engine cannot do as pk does, for one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Warning {
    pub service: String,
    pub reason: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.service, self.reason)
    }
}

/// One file of an export: a name (relative to the output directory) and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExportFile {
    pub name: String,
    pub text: String,
}

/// What a back end produced.
#[derive(Debug, Clone, Default)]
pub(crate) struct Export {
    pub files: Vec<ExportFile>,
    pub warnings: Vec<Warning>,
}

impl Export {
    fn warn(&mut self, service: &str, reason: impl Into<String>) {
        self.warnings.push(Warning {
            service: service.to_owned(),
            reason: reason.into(),
        });
    }
}

/// A duration every target reads the same way: whole seconds as `Ns`, else `Nms`
/// (systemd time spans, Go durations in Nomad, and `pk probe`'s own flags all accept both).
pub(crate) fn duration_arg(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// How an exported `pk probe` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProbeMode {
    /// `--wait`: until the check passes or the probe's deadline passes (a `ready` probe).
    Wait,
    /// `--alive`: until `retries` checks in a row failed (an `alive` probe).
    Alive,
}

/// The `pk probe` argv that runs `spec` as pk would, or `None` for a `log` probe (it reads a
/// service's output, which only a running pk sees).
pub(crate) fn probe_argv(
    pk: &Path,
    service: &str,
    spec: &ProbeSpec,
    mode: ProbeMode,
) -> Option<Vec<String>> {
    let mut argv = vec![pk.display().to_string(), "probe".to_owned()];
    match mode {
        ProbeMode::Wait => {
            argv.push("--wait".to_owned());
            if let Some(deadline) = spec.deadline {
                argv.extend(["--deadline".to_owned(), duration_arg(deadline)]);
            }
        }
        ProbeMode::Alive => {
            argv.extend(["--alive".to_owned(), "--retries".to_owned()]);
            argv.push(spec.retries.to_string());
        }
    }
    argv.extend(["--interval".to_owned(), duration_arg(spec.interval)]);
    argv.extend(["--timeout".to_owned(), duration_arg(spec.timeout)]);
    if !spec.initial_delay.is_zero() {
        argv.extend([
            "--initial-delay".to_owned(),
            duration_arg(spec.initial_delay),
        ]);
    }
    argv.extend(["--name".to_owned(), service.to_owned()]);
    match &spec.check {
        ProbeCheck::Tcp { address } => argv.extend(["tcp".to_owned(), address.clone()]),
        ProbeCheck::Http {
            host,
            port,
            path,
            status,
            headers,
        } => {
            for code in status {
                argv.extend(["--status".to_owned(), code.to_string()]);
            }
            for (name, value) in headers {
                argv.extend(["--header".to_owned(), format!("{name}: {value}")]);
            }
            let host = if host.contains(':') {
                format!("[{host}]")
            } else {
                host.clone()
            };
            argv.extend(["http".to_owned(), format!("http://{host}:{port}{path}")]);
        }
        ProbeCheck::Exec(CommandSpec::Shell(command)) => {
            argv.extend(["exec".to_owned(), command.clone()]);
        }
        ProbeCheck::Exec(CommandSpec::Argv(command)) => {
            argv.push("exec".to_owned());
            if let [program] = command.as_slice() {
                // One word runs under `sh -c`; quoted, it still names just this program.
                argv.push(shell_quote(program));
            } else {
                argv.push("--".to_owned());
                argv.extend(command.iter().cloned());
            }
        }
        ProbeCheck::Log(_) => return None,
    }
    Some(argv)
}

/// A word quoted for a POSIX shell (unchanged when it needs no quoting).
pub(crate) fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "@%+=:,./_-".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// An argv as one POSIX shell command line.
pub(crate) fn shell_line(argv: &[String]) -> String {
    argv.iter()
        .map(|w| shell_quote(w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The argv that runs a service's `command` or `pipeline` outside pk: a command exactly as pk
/// runs it (`vocab::command_argv`: a string under `/bin/sh -c` unless it is a simple command),
/// a pipeline under bash with `pipefail` (pk's exit rule: the last stage that failed decides;
/// dash has no `pipefail`).
pub(crate) fn run_argv(run: &RunSpec) -> Vec<String> {
    match run {
        RunSpec::Command(command) => command_argv(command),
        RunSpec::Pipeline(stages) => {
            let line: Vec<String> = stages.iter().map(|s| shell_line(s)).collect();
            vec![
                "/bin/bash".to_owned(),
                "-o".to_owned(),
                "pipefail".to_owned(),
                "-c".to_owned(),
                line.join(" | "),
            ]
        }
    }
}

/// `argv[0]` made absolute when it is a relative path (`./migrate.sh`): pk resolves it in the
/// service's working directory, the target engines do not.
pub(crate) fn anchor_program(mut argv: Vec<String>, working_dir: &Path) -> Vec<String> {
    if let Some(first) = argv.first_mut() {
        if first.contains('/') && !first.starts_with('/') {
            *first = working_dir.join(&*first).display().to_string();
        }
    }
    argv
}
