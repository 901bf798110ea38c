//! Read-only views of the engine's state, published after every step.

use serde::Serialize;

use super::state::{Phase, ServiceState};
use crate::plan::Plan;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Snapshot {
    pub services: Vec<ServiceSnapshot>,
    /// Nothing is running, pending or due to restart.
    pub settled: bool,
    pub shutting_down: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServiceSnapshot {
    pub name: String,
    pub state: &'static str,
    pub pids: Vec<u32>,
    pub restarts: u32,
    pub last_exit: Option<String>,
    /// Why a service is skipped, failed or crashed.
    pub reason: Option<String>,
}

impl Snapshot {
    pub fn new(
        plan: &Plan,
        states: &[ServiceState],
        settled: bool,
        shutting_down: bool,
    ) -> Snapshot {
        let services = plan
            .services
            .iter()
            .zip(states)
            .map(|(spec, s)| ServiceSnapshot {
                name: spec.name.clone(),
                state: s.phase.label(),
                pids: s.pids.clone(),
                restarts: s.restarts,
                last_exit: s.last_exit.as_ref().map(ToString::to_string),
                reason: match &s.phase {
                    Phase::Skipped(r) | Phase::Failed(r) => Some(r.clone()),
                    Phase::Crashed(e) => Some(e.to_string()),
                    _ => None,
                },
            })
            .collect();
        Snapshot {
            services,
            settled,
            shutting_down,
        }
    }
}
