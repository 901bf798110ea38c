//! The single owner of runtime state.
//!
//! `step` is a pure state machine (`Engine`); `runtime` is the async loop that feeds it inputs
//! (intents, supervisor reports, timers) over one channel and carries out its effects. No other
//! code mutates service state; everyone else reads published `Snapshot`s.

mod runtime;
mod snapshot;
mod state;
mod step;

pub use runtime::{EngineHandle, RunOutcome, Runtime};
pub use snapshot::{ServiceSnapshot, Snapshot, now_ms};
pub use state::{ExitInfo, ExitStatus, Phase, ServiceState, StopReason, signal_name};
pub use step::{Effect, Engine, Input, Intent, Report, STABLE_AFTER, fmt_duration};

#[cfg(test)]
mod tests;
