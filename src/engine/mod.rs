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
pub use snapshot::{ServiceSnapshot, Snapshot};
pub use state::{Phase, ServiceState, StopReason};
pub use step::{Effect, Engine, Input, Intent, STABLE_AFTER};

#[cfg(test)]
mod tests;
