//! Read-only views of the engine's state, published after every step.
//!
//! Times are wall-clock milliseconds since the Unix epoch so that snapshots can cross the
//! control socket and be compared with a client's clock.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::state::Phase;
use super::step::Engine;
use crate::metrics::Run;
use crate::vocab::{State, fmt_duration};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub services: Vec<ServiceSnapshot>,
    /// Nothing is running, pending or due to restart.
    pub settled: bool,
    pub shutting_down: bool,
    /// What `pk up` would exit with now (0 success or stopped on request, 1 a failure).
    pub exit_code: i32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceSnapshot {
    pub name: String,
    pub state: State,
    /// Spawns so far in this run (a restart makes it grow).
    pub runs: u64,
    pub pids: Vec<u32>,
    pub restarts: u32,
    pub last_exit: Option<String>,
    /// Why a service is skipped, failed or crashed.
    pub reason: Option<String>,
    /// What a pending service waits for: `db (healthy)`.
    pub waiting_for: Option<String>,
    /// `starting` until the `ready` probe passes, then `healthy`; None without a probe.
    pub health: Option<State>,
    /// When the current run was spawned.
    pub started_at_ms: Option<u64>,
    /// When a restart is due (state `restarting`).
    pub restart_at_ms: Option<u64>,
    /// When the stop sequence escalates to SIGKILL (state `stopping`).
    pub kill_at_ms: Option<u64>,
    /// When a running service reaches its `timeout:` and is stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_at_ms: Option<u64>,
}

impl ServiceSnapshot {
    /// What the metrics sampler needs of this service.
    pub(crate) fn run(&self) -> Run<'_> {
        Run {
            name: &self.name,
            pids: &self.pids,
            started_at_ms: self.started_at_ms,
        }
    }
}

impl Snapshot {
    /// Every service as the metrics sampler sees it.
    pub(crate) fn runs(&self) -> Vec<Run<'_>> {
        self.services.iter().map(ServiceSnapshot::run).collect()
    }

    /// The engine's state as of `now`.
    pub(crate) fn of(engine: &Engine, now: Instant) -> Snapshot {
        let plan = engine.plan();
        let states = engine.services();
        let wall_now = SystemTime::now();
        let wall = |t: Instant| -> u64 {
            let at = if t <= now {
                wall_now.checked_sub(now - t)
            } else {
                wall_now.checked_add(t - now)
            };
            at.and_then(|at| at.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        };
        let services = plan
            .services
            .iter()
            .zip(states)
            .map(|(spec, s)| ServiceSnapshot {
                name: spec.name.clone(),
                state: s.phase.state(),
                runs: s.generation,
                pids: s.pids.clone(),
                restarts: s.restarts,
                last_exit: s.last_exit.as_ref().map(ToString::to_string),
                reason: match &s.phase {
                    Phase::Skipped(r) | Phase::Failed(r) => Some(r.clone()),
                    Phase::Crashed(e) => Some(e.to_string()),
                    Phase::TimedOut { limit, .. } => {
                        Some(format!("timed out after {}", fmt_duration(*limit)))
                    }
                    _ => None,
                },
                waiting_for: match s.phase {
                    Phase::Pending => s.waiting_for.clone(),
                    _ => None,
                },
                health: match &s.phase {
                    _ if spec.ready.is_none() => None,
                    Phase::Healthy => Some(State::Healthy),
                    Phase::Starting => Some(State::Starting),
                    _ => None,
                },
                started_at_ms: s.started_at.filter(|_| s.phase.is_live()).map(wall),
                restart_at_ms: match s.phase {
                    Phase::Restarting { at } => Some(wall(at)),
                    _ => None,
                },
                kill_at_ms: match (&s.phase, s.stopping) {
                    (Phase::Stopping, Some((since, grace))) => Some(wall(since + grace)),
                    _ => None,
                },
                timeout_at_ms: s
                    .run_deadline
                    .filter(|_| s.phase.is_live() && s.phase != Phase::Stopping)
                    .map(wall),
            })
            .collect();
        Snapshot {
            services,
            settled: engine.settled(),
            shutting_down: engine.shutting_down(),
            exit_code: engine.exit_code(),
        }
    }
}
