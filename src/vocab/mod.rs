//! The shared vocabulary: small types and helpers every stage speaks.
//!
//! Invariant: this module is a leaf. It imports nothing else from pk (only std and external
//! crates), so any module may depend on it and the import graph stays one-way
//! (docs/architecture.md lists the allowed edges).

mod command;
mod exit;
mod log_match;
mod palette;
mod service;
mod signal;
mod time;

pub(crate) use command::command_argv;
pub use command::{CommandSpec, shell_argv};
pub(crate) use exit::{ExitInfo, ExitStatus};
pub(crate) use log_match::LogMatcher;
pub(crate) use palette::service_colour;
pub use service::{Condition, ProbeCheck, RestartPolicy, State};
pub(crate) use service::{Progress, ServiceId, Verdict, meets};
pub use signal::StopSignal;
pub(crate) use signal::stop_signals;
pub(crate) use time::fmt_duration;
pub use time::now_ms;
