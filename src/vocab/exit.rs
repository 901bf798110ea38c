//! How a process ended.

use std::fmt;

use super::signal::signal_name;

/// How a service's process tree (or one process) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExitStatus {
    Code(i32),
    Signal(i32),
}

impl ExitStatus {
    pub(crate) fn success(self) -> bool {
        self == ExitStatus::Code(0)
    }

    pub(crate) fn from_std(status: std::process::ExitStatus) -> ExitStatus {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(code), _) => ExitStatus::Code(code),
            (None, Some(sig)) => ExitStatus::Signal(sig),
            (None, None) => ExitStatus::Code(-1),
        }
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ExitStatus::Code(c) => write!(f, "exited {c}"),
            ExitStatus::Signal(s) => write!(f, "killed by {}", signal_name(s)),
        }
    }
}

/// An exit with, for pipelines, the stage that decided it (pipefail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExitInfo {
    pub status: ExitStatus,
    /// `(index from 1, program)` of the pipeline stage whose status this is.
    pub stage: Option<(usize, String)>,
    /// A non-zero code the service lists as success (`success_codes`); set by the engine.
    pub allowed: bool,
}

impl ExitInfo {
    pub(crate) fn new(status: ExitStatus) -> ExitInfo {
        ExitInfo {
            status,
            stage: None,
            allowed: false,
        }
    }

    pub(crate) fn success(&self) -> bool {
        self.status.success() || self.allowed
    }

    /// The code a shell would report: the exit code, or 128 + the signal.
    pub(crate) fn code(&self) -> i32 {
        match self.status {
            ExitStatus::Code(c) => c,
            ExitStatus::Signal(n) => 128 + n,
        }
    }
}

impl fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some((n, prog)) = &self.stage {
            write!(f, "stage {n} ({prog}) ")?;
        }
        write!(f, "{}", self.status)
    }
}
