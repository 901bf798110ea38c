//! The single owner of runtime state.
//!
//! `step` is a pure state machine (`Engine`); `runtime` is the async loop that feeds it inputs
//! (intents, supervisor reports, timers) over one channel and carries out its effects. No other
//! code mutates service state; everyone else reads published `Snapshot`s.

mod runtime;
mod snapshot;
mod state;
mod step;

pub(crate) use runtime::{EngineHandle, Runtime};
pub use snapshot::{ServiceSnapshot, Snapshot};
pub(crate) use step::Input;
pub use step::Intent;

#[cfg(test)]
mod tests;
