//! Runtime state of one service as the engine sees it; plain data, no I/O.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::vocab::{ExitInfo, State};

/// Where a service is in its life. See DESIGN.md §3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Not part of this run (not selected).
    Inactive,
    /// Waiting on its dependencies.
    Pending,
    /// Spawn requested or spawned; `ready` probe (if any) not passed yet.
    Starting,
    /// Spawned, no `ready` probe.
    Running,
    /// Its `ready` probe passed.
    Healthy,
    /// Ended for good (no restart coming).
    Exited(ExitInfo),
    /// Ended; a restart is due at the instant.
    Restarting { at: Instant },
    /// Stop signal sent, waiting for the tree to drain.
    Stopping,
    /// Stopped on request (or never started because of a stop request).
    Stopped,
    /// The restart limit was hit.
    Crashed(ExitInfo),
    /// Could not spawn, or `ready` deadline passed.
    Failed(String),
    /// A dependency it needs can never meet its condition.
    Skipped(String),
    /// pk stopped it after it ran for `limit` (its `timeout:`), and no restart is coming.
    TimedOut { limit: Duration, exit: ExitInfo },
}

impl Phase {
    /// A process tree exists (or is being created) for this phase.
    pub(crate) fn is_live(&self) -> bool {
        matches!(
            self,
            Phase::Starting | Phase::Running | Phase::Healthy | Phase::Stopping
        )
    }

    /// Nothing more will happen to the service without a new intent.
    pub(crate) fn is_final(&self) -> bool {
        matches!(
            self,
            Phase::Inactive
                | Phase::Exited(_)
                | Phase::Stopped
                | Phase::Crashed(_)
                | Phase::Failed(_)
                | Phase::Skipped(_)
                | Phase::TimedOut { .. }
        )
    }

    /// The public state this phase shows as (`pk ps`, the UI, the protocol).
    pub(crate) fn state(&self) -> State {
        match self {
            Phase::Inactive => State::Inactive,
            Phase::Pending => State::Pending,
            Phase::Starting => State::Starting,
            Phase::Running => State::Running,
            Phase::Healthy => State::Healthy,
            Phase::Exited(e) if e.success() => State::Completed,
            Phase::Exited(_) => State::Exited,
            Phase::Restarting { .. } => State::Restarting,
            Phase::Stopping => State::Stopping,
            Phase::Stopped => State::Stopped,
            Phase::Crashed(_) => State::Crashed,
            Phase::Failed(_) => State::Failed,
            Phase::Skipped(_) => State::Skipped,
            Phase::TimedOut { .. } => State::TimedOut,
        }
    }
}

#[derive(Debug, Clone)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "independent facts about one service"
)]
pub(crate) struct ServiceState {
    pub phase: Phase,
    /// Spawn generation; reports about an older generation are ignored.
    pub generation: u64,
    /// Timer epoch; a timer armed under an older epoch is ignored.
    pub epoch: u64,
    /// The current generation's tree has been spawned (pids known).
    pub spawned: bool,
    pub pids: Vec<u32>,
    pub started_at: Option<Instant>,
    /// When the current run reaches its `timeout:` (armed as a timer at spawn).
    pub run_deadline: Option<Instant>,
    /// Some run of this service exited successfully.
    pub completed_ok: bool,
    pub restarts: u32,
    /// Instants of the restarts inside the current limit window.
    pub restart_times: VecDeque<Instant>,
    /// Backoff exponent; reset after the service stayed up long enough.
    pub attempt: u32,
    pub last_exit: Option<ExitInfo>,
    /// The pending "waiting for …" notice has been printed for this wait.
    pub wait_announced: bool,
    /// What a pending service waits for: `db (healthy), migrate (completed_successfully)`.
    pub waiting_for: Option<String>,
    /// When the current stop sequence began, and its grace: the deadline, armed as a timer,
    /// at which the tree is killed.
    pub stopping: Option<(Instant, Duration)>,
    /// The stop deadline passed and the tree was sent SIGKILL.
    pub killed: bool,
    /// The service is to be stopped (teardown, `pk stop`) and not started again until a start.
    pub stop_wanted: bool,
    /// Why pk is stopping this service; decides where the drained tree lands.
    pub stop_reason: Option<StopReason>,
}

/// Why pk sent a service its stop sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StopReason {
    /// Teardown or `pk stop`: lands in `stopped`.
    Requested,
    /// It failed (e.g. its `ready` deadline passed): lands in `failed` with this reason.
    Failed(String),
    /// Its `alive` probe failed: restarts per policy, else `failed`.
    Unhealthy(String),
    /// A restart was asked for (`pk restart`, a watched file): back to `pending`.
    Restart,
    /// A dependency it declared `restart: true` on is restarting (named): back to `pending`.
    Cascade(String),
    /// It ran longer than its `timeout:` (this long): restarts per policy, else `timed out`.
    TimedOut(Duration),
}

impl ServiceState {
    pub(crate) fn new(active: bool) -> ServiceState {
        ServiceState {
            phase: if active {
                Phase::Pending
            } else {
                Phase::Inactive
            },
            generation: 0,
            epoch: 0,
            spawned: false,
            pids: Vec::new(),
            started_at: None,
            run_deadline: None,
            completed_ok: false,
            restarts: 0,
            restart_times: VecDeque::new(),
            attempt: 0,
            last_exit: None,
            wait_announced: false,
            waiting_for: None,
            stopping: None,
            killed: false,
            stop_wanted: false,
            stop_reason: None,
        }
    }
}

/// What a change to a service's state must be followed by; each consumer drains its own list.
#[derive(Debug, Clone, Copy)]
pub(super) enum Follow {
    /// The service and those its state gates (dependents, dependencies) are re-evaluated by
    /// the next reconcile.
    Reconcile = 0,
    /// It may have met its `ends_stack` event.
    EndsStack = 1,
    /// The engine-wide counts (settled, failures) are brought up to date.
    Counts = 2,
    /// Its snapshot is rebuilt at the next publish.
    Snapshot = 3,
}

const FOLLOWS: usize = 4;
const ALL_FOLLOWS: u8 = (1 << FOLLOWS) - 1;

/// Every service's state, indexed by `ServiceId`, recording which ones changed.
///
/// Invariant: a `&mut ServiceState` can only be had through `IndexMut`, which marks the service
/// in every `Follow` list it is not already in — so no change goes unseen by the reconcile,
/// the counts or the snapshot, and each list holds a service at most once. Reading is free.
#[derive(Debug)]
pub(super) struct States {
    all: Vec<ServiceState>,
    /// Per service: a bit per `Follow` list it is in.
    marks: Vec<u8>,
    lists: [Vec<usize>; FOLLOWS],
}

impl States {
    /// Every service starts marked in every list (nothing has been seen yet).
    pub(super) fn new(states: Vec<ServiceState>) -> States {
        let all: Vec<usize> = (0..states.len()).collect();
        States {
            marks: vec![ALL_FOLLOWS; states.len()],
            lists: std::array::from_fn(|_| all.clone()),
            all: states,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.all.len()
    }

    #[cfg(test)]
    pub(super) fn as_slice(&self) -> &[ServiceState] {
        &self.all
    }

    /// Moves the services changed since the last call (for `follow`) into `out`, unordered.
    pub(super) fn take(&mut self, follow: Follow, out: &mut Vec<usize>) {
        let bit = 1u8 << follow as u8;
        let list = &mut self.lists[follow as usize];
        for &id in list.iter() {
            self.marks[id] &= !bit;
        }
        out.append(list);
    }
}

impl std::ops::Index<usize> for States {
    type Output = ServiceState;

    fn index(&self, id: usize) -> &ServiceState {
        &self.all[id]
    }
}

impl std::ops::IndexMut<usize> for States {
    fn index_mut(&mut self, id: usize) -> &mut ServiceState {
        let marks = self.marks[id];
        if marks != ALL_FOLLOWS {
            for (f, list) in self.lists.iter_mut().enumerate() {
                if marks & (1 << f) == 0 {
                    list.push(id);
                }
            }
            self.marks[id] = ALL_FOLLOWS;
        }
        &mut self.all[id]
    }
}
