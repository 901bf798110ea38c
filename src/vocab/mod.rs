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

pub use command::{CommandSpec, command_argv, shell_argv};
pub use exit::{ExitInfo, ExitStatus};
pub use log_match::LogMatcher;
pub use palette::service_colour;
pub use service::{
    Condition, ProbeCheck, Progress, RestartPolicy, ServiceId, State, Verdict, meets,
};
pub use signal::{StopSignal, signal_name, stop_signals};
pub use time::{fmt_duration, now_ms};
