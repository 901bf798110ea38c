//! Read-only views of the engine's state, published by the runtime (coalesced: see
//! `runtime`).
//!
//! Times are wall-clock milliseconds since the Unix epoch so that snapshots can cross the
//! control socket and be compared with a client's clock.
//!
//! Invariant: a published snapshot is immutable; each service's view is an `Arc`, shared by
//! every snapshot until that service changes, so building one costs the services that changed
//! (plus one pointer per service), not a copy of the whole stack.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::state::{Phase, ServiceState};
use super::step::Engine;
use crate::metrics::Run;
use crate::plan::ServiceSpec;
use crate::vocab::{ServiceId, State, fmt_duration};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub services: Vec<Arc<ServiceSnapshot>>,
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
        self.services.iter().map(|s| s.run()).collect()
    }

    #[cfg(test)]
    /// The engine's state as of `now`, every service built afresh.
    pub(crate) fn of(engine: &Engine, now: Instant) -> Snapshot {
        let wall = Wall::new(now);
        let plan = engine.plan();
        let services = plan
            .services
            .iter()
            .zip(engine.services())
            .map(|(spec, s)| Arc::new(ServiceSnapshot::of(spec, s, &wall)))
            .collect();
        Snapshot::with(engine, services)
    }

    fn with(engine: &Engine, services: Vec<Arc<ServiceSnapshot>>) -> Snapshot {
        Snapshot {
            services,
            settled: engine.settled(),
            shutting_down: engine.shutting_down(),
            exit_code: engine.exit_code(),
        }
    }
}

/// Builds the runtime's snapshots, rebuilding only the services the engine changed since the
/// last one.
#[derive(Debug, Default)]
pub(super) struct Snapshots {
    services: Vec<Arc<ServiceSnapshot>>,
    changed: Vec<ServiceId>,
}

impl Snapshots {
    /// The engine's state as of `now`; equal to `Snapshot::of(engine, now)` (times of a
    /// service that did not change are those computed when it last did).
    pub(super) fn next(&mut self, engine: &mut Engine, now: Instant) -> Snapshot {
        engine.take_changed(&mut self.changed);
        if !self.changed.is_empty() {
            let wall = Wall::new(now);
            let plan = Arc::clone(engine.plan());
            if self.services.len() != plan.services.len() {
                self.services = vec![Arc::default(); plan.services.len()];
            }
            for &id in &self.changed {
                let view = ServiceSnapshot::of(&plan.services[id], engine.service(id), &wall);
                self.services[id] = Arc::new(view);
            }
            self.changed.clear();
        }
        Snapshot::with(engine, self.services.clone())
    }
}

/// Turns the engine's monotonic instants into wall-clock milliseconds, as of one `now`.
struct Wall {
    now: Instant,
    wall_now: SystemTime,
}

impl Wall {
    fn new(now: Instant) -> Wall {
        Wall {
            now,
            wall_now: SystemTime::now(),
        }
    }

    fn ms(&self, t: Instant) -> u64 {
        let at = if t <= self.now {
            self.wall_now.checked_sub(self.now - t)
        } else {
            self.wall_now.checked_add(t - self.now)
        };
        at.and_then(|at| at.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

impl ServiceSnapshot {
    fn of(spec: &ServiceSpec, s: &ServiceState, wall: &Wall) -> ServiceSnapshot {
        let wall = |t: Instant| wall.ms(t);
        ServiceSnapshot {
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
        }
    }
}
