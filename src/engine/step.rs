//! The pure state machine: `Engine::step(input, now) -> effects`.
//!
//! Invariants: never performs I/O, never reads a clock (time comes in as `now`), and is the
//! only code that changes a `ServiceState`. Everything it wants done is returned as `Effect`s.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::state::{Follow, Phase, ServiceState, States, StopReason};
use crate::plan::Plan;
use crate::supervisor::Report;
use crate::vocab::{
    Condition, ExitInfo, ExitStatus, Progress, RestartPolicy, ServiceId, State, StopSignal,
    Verdict, fmt_duration, meets,
};

/// A service that stayed up this long gets its backoff reset.
pub(crate) const STABLE_AFTER: Duration = Duration::from_secs(30);

/// Something that happened, fed to the engine.
#[derive(Debug)]
pub(crate) enum Input {
    Intent(Intent),
    /// A fact reported by the supervisor of `service`'s spawn `generation`.
    Report {
        service: ServiceId,
        generation: u64,
        report: Report,
    },
    /// A timer armed with `Effect::ArmTimer` fired: a restart backoff or a stop deadline.
    Timer {
        service: ServiceId,
        epoch: u64,
    },
    /// Answered by the runtime (never by `step`) once every input sent before it has been
    /// applied and the resulting snapshot published: `EngineHandle::sync`.
    Barrier(tokio::sync::oneshot::Sender<()>),
}

/// What a user (Ctrl-C, `pk down`, the UI) asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Intent {
    /// Graceful teardown in reverse dependency order; `grace` overrides every service's grace.
    Shutdown { grace: Option<Duration> },
    /// Kill every tree that is left, now.
    ForceKill,
    /// Stop a service after everything that depends on it (`pk stop`).
    Stop { service: ServiceId },
    /// Start a service and whatever it depends on that is not running (`pk start`).
    Start { service: ServiceId },
    /// Stop and start a service again; the services that declared `restart: true` on it
    /// restart after it. `dependents`: restart everything that depends on it too.
    ///
    /// `cause: None` is a manual restart (`pk restart`, the dashboard): it resets the backoff
    /// and overrides a stop. `cause: Some` is an automatic one (a watched file changed; the
    /// cause is shown): the engine drops it for a service that is held stopped (`pk stop`),
    /// on its way down, or not in this run — a stop is never turned into a restart.
    Restart {
        service: ServiceId,
        cause: Option<String>,
        dependents: bool,
    },
    /// Send `signal` to a live service's whole tree (a watch with `action: signal:HUP`);
    /// `cause` is shown. Ignored when the service is not running or pk is stopping.
    Signal {
        service: ServiceId,
        signal: StopSignal,
        cause: Option<String>,
    },
}

/// Something the runtime must carry out.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Effect {
    Spawn {
        service: ServiceId,
        generation: u64,
    },
    /// Shutdown command, then `signal` to the whole tree. The engine arms a timer for `grace`
    /// with it: the stop deadline, at which it sends `Kill` (the shutdown command's time
    /// counts against the grace).
    Stop {
        service: ServiceId,
        generation: u64,
        signal: StopSignal,
        grace: Duration,
    },
    /// SIGKILL the whole tree now.
    Kill {
        service: ServiceId,
        generation: u64,
    },
    /// Send `signal` to the whole tree; nothing else changes.
    Signal {
        service: ServiceId,
        generation: u64,
        signal: StopSignal,
    },
    ArmTimer {
        service: ServiceId,
        epoch: u64,
        after: Duration,
    },
    /// A lifecycle line for the UI (`service` None: about pk itself).
    Notice {
        service: Option<ServiceId>,
        text: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Teardown {
    grace: Option<Duration>,
    force: bool,
}

/// How many services are in each engine-wide condition (so `settled` and `exit_code` cost
/// O(1), not a walk of every service).
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    /// Services whose phase is not final.
    unsettled: usize,
    stop_wanted: usize,
    /// Services that count as a failure for pk's exit code.
    failed: usize,
}

const COUNTS_UNSETTLED: u8 = 1;
const COUNTS_STOP_WANTED: u8 = 2;
const COUNTS_FAILED: u8 = 4;

/// Which `Counts` a service adds to.
fn counted_bits(s: &ServiceState) -> u8 {
    let failed = match &s.phase {
        Phase::Exited(e) => !e.success(),
        Phase::Crashed(_) | Phase::Failed(_) | Phase::Skipped(_) | Phase::TimedOut { .. } => true,
        _ => false,
    };
    let mut bits = 0;
    if !s.phase.is_final() {
        bits |= COUNTS_UNSETTLED;
    }
    if s.stop_wanted {
        bits |= COUNTS_STOP_WANTED;
    }
    if failed {
        bits |= COUNTS_FAILED;
    }
    bits
}

/// Whether a dependency's condition holds.
enum Gate {
    Met,
    Wait,
    Never(String),
}

pub(crate) struct Engine {
    plan: Arc<Plan>,
    /// Every service's state; records which ones each step changed (see `States`).
    services: States,
    /// Per service, the services that depend on it directly, in id order.
    dependents: Vec<Vec<ServiceId>>,
    /// Per service, its position in `plan.order`.
    rank: Vec<usize>,
    /// Engine-wide counts, kept up to date from the changed services after each step.
    counts: Counts,
    /// Per service, what it adds to `counts` (`COUNTS_*` bits).
    counted: Vec<u8>,
    /// Reused buffer for the changed services a step takes from `services`.
    scratch: Vec<ServiceId>,
    teardown: Option<Teardown>,
    /// The `exit_on_end` service whose end stopped the stack, and pk's exit code from it.
    ended_by: Option<(ServiceId, i32)>,
    rng: u64,
    /// The `now` of the step being taken (for effects that record when they happened).
    now: Instant,
    /// Set when a service's `ends_stack` event happened: pk's exit code, and the teardown is
    /// under way.
    stack_exit: Option<i32>,
    /// Whether any service has an `ends_stack` event (else the check after each step is
    /// skipped).
    any_ends_stack: bool,
    /// Tests: reconcile and check `ends_stack` by walking every service, as before the
    /// incremental reconcile (the reference the differential test compares against).
    #[cfg(test)]
    pub(super) walk_all: bool,
}

impl Engine {
    /// `selected[id]` says whether a service takes part in this run. `seed` drives the
    /// backoff jitter.
    pub(crate) fn new(plan: Arc<Plan>, selected: &[bool], seed: u64) -> Engine {
        let n = plan.services.len();
        let services = (0..n)
            .map(|id| ServiceState::new(selected.get(id).copied().unwrap_or(false)))
            .collect();
        let any_ends_stack = plan
            .services
            .iter()
            .any(|s| s.ends_stack != crate::plan::EndsStack::default());
        let mut dependents: Vec<Vec<ServiceId>> = vec![Vec::new(); n];
        for (d, spec) in plan.services.iter().enumerate() {
            for dep in &spec.depends_on {
                // Ascending and once each, as `Plan::dependents` lists them.
                if dependents[dep.service].last() != Some(&d) {
                    dependents[dep.service].push(d);
                }
            }
        }
        let mut rank = vec![0; n];
        for (r, &id) in plan.order.iter().enumerate() {
            rank[id] = r;
        }
        let mut engine = Engine {
            plan,
            services: States::new(services),
            dependents,
            rank,
            counts: Counts::default(),
            counted: vec![0; n],
            scratch: Vec::new(),
            teardown: None,
            ended_by: None,
            rng: seed | 1,
            now: Instant::now(),
            stack_exit: None,
            any_ends_stack,
            #[cfg(test)]
            walk_all: false,
        };
        engine.recount();
        engine
    }

    pub(crate) fn plan(&self) -> &Arc<Plan> {
        &self.plan
    }

    pub(crate) fn service(&self, id: ServiceId) -> &ServiceState {
        &self.services[id]
    }

    #[cfg(test)]
    pub(crate) fn services(&self) -> &[ServiceState] {
        self.services.as_slice()
    }

    /// Moves into `out` the services whose state changed since the last call (each once, in no
    /// particular order; every service on the first call): what a snapshot must rebuild.
    pub(crate) fn take_changed(&mut self, out: &mut Vec<ServiceId>) {
        self.services.take(Follow::Snapshot, out);
    }

    pub(crate) fn shutting_down(&self) -> bool {
        self.teardown.is_some()
    }

    /// The first effects of a run: start what has no unmet dependency.
    pub(crate) fn start(&mut self, now: Instant) -> Vec<Effect> {
        self.now = now;
        let mut fx = Vec::new();
        self.reconcile(now, &mut fx);
        self.recount();
        fx
    }

    pub(crate) fn step(&mut self, input: Input, now: Instant) -> Vec<Effect> {
        self.now = now;
        let mut fx = Vec::new();
        match input {
            Input::Intent(intent) => self.on_intent(&intent, &mut fx),
            Input::Report {
                service,
                generation,
                report,
            } => {
                if self.services[service].generation == generation {
                    self.on_report(service, report, now, &mut fx);
                }
            }
            Input::Timer { service, epoch } => self.on_timer(service, epoch, &mut fx),
            Input::Barrier(_) => {}
        }
        self.reconcile(now, &mut fx);
        if self.any_ends_stack && self.stack_exit.is_none() {
            self.check_ends_stack(now, &mut fx);
        }
        self.recount();
        fx
    }

    /// Brings `counts` up to date with the services changed since the last call.
    fn recount(&mut self) {
        let mut changed = std::mem::take(&mut self.scratch);
        self.services.take(Follow::Counts, &mut changed);
        for &id in &changed {
            let old = self.counted[id];
            let new = counted_bits(&self.services[id]);
            if old != new {
                let count = |total: &mut usize, bit: u8| {
                    if old & bit != 0 {
                        *total -= 1;
                    }
                    if new & bit != 0 {
                        *total += 1;
                    }
                };
                count(&mut self.counts.unsettled, COUNTS_UNSETTLED);
                count(&mut self.counts.stop_wanted, COUNTS_STOP_WANTED);
                count(&mut self.counts.failed, COUNTS_FAILED);
                self.counted[id] = new;
            }
        }
        changed.clear();
        self.scratch = changed;
    }

    /// A service whose `ends_stack` event happened (it failed for good, or was skipped) starts
    /// the teardown and decides pk's exit code; only the first one counts.
    ///
    /// Only the services changed since the last check can have met their event (one that had
    /// would have ended the stack then), so only those are looked at, in id order.
    fn check_ends_stack(&mut self, now: Instant, fx: &mut Vec<Effect>) {
        let mut changed = std::mem::take(&mut self.scratch);
        self.services.take(Follow::EndsStack, &mut changed);
        #[cfg(test)]
        if self.walk_all {
            changed = (0..self.services.len()).collect();
        }
        changed.sort_unstable();
        let found = changed.iter().find_map(|&id| {
            let spec = &self.plan.services[id];
            {
                let code = match &self.services[id].phase {
                    Phase::Exited(e) | Phase::Crashed(e)
                        if spec.ends_stack.on_failure && !e.success() =>
                    {
                        e.code()
                    }
                    Phase::Failed(_) if spec.ends_stack.on_failure => 1,
                    Phase::Skipped(_) if spec.ends_stack.on_skipped => 1,
                    _ => return None,
                };
                Some((id, code))
            }
        });
        changed.clear();
        self.scratch = changed;
        let Some((id, code)) = found else {
            return;
        };
        self.stack_exit = Some(code);
        fx.push(notice(id, format!("ends the stack (exit code {code})")));
        self.on_intent(&Intent::Shutdown { grace: None }, fx);
        self.reconcile(now, fx);
    }

    /// Nothing is running, pending or due to restart, and no service is merely held stopped
    /// by `pk stop` (it may be started again): `pk up` may exit.
    pub(crate) fn settled(&self) -> bool {
        self.counts.unsettled == 0 && (self.teardown.is_some() || self.counts.stop_wanted == 0)
    }

    /// The exit code of the service that ended the stack (`exit_on_end`, or a process-compose
    /// `exit_on_failure`/`exit_on_skipped`), if one did; else by the plan's rules: pk's (0 when
    /// every service succeeded or was stopped on request, 1 otherwise) or process-compose's (0).
    pub(crate) fn exit_code(&self) -> i32 {
        if let Some((_, code)) = self.ended_by {
            return code;
        }
        if let Some(code) = self.stack_exit {
            return code;
        }
        if self.plan.exit_rules == crate::plan::ExitRules::ProcessCompose {
            return 0;
        }
        i32::from(self.counts.failed > 0)
    }

    fn on_intent(&mut self, intent: &Intent, fx: &mut Vec<Effect>) {
        match *intent {
            Intent::Shutdown { grace } => {
                if self.teardown.is_none() {
                    self.teardown = Some(Teardown {
                        grace,
                        force: false,
                    });
                    fx.push(Effect::Notice {
                        service: None,
                        text: "stopping (press Ctrl-C again to force)".into(),
                    });
                } else if let Some(t) = &mut self.teardown {
                    // A later `pk down --grace` may shorten a teardown already under way,
                    // including the deadlines of stops already running.
                    if let Some(grace) = grace {
                        t.grace = Some(grace);
                        self.shorten_deadlines(grace, fx);
                    }
                }
                for id in 0..self.services.len() {
                    self.services[id].stop_wanted = true;
                    self.cancel_unstarted(id, fx);
                }
            }
            Intent::ForceKill => {
                self.teardown = Some(Teardown {
                    grace: Some(Duration::ZERO),
                    force: true,
                });
                fx.push(Effect::Notice {
                    service: None,
                    text: "killing everything that is left".into(),
                });
                for id in 0..self.services.len() {
                    self.services[id].stop_wanted = true;
                    self.cancel_unstarted(id, fx);
                    let s = &mut self.services[id];
                    if s.phase.is_live() {
                        if !matches!(
                            s.stop_reason,
                            Some(StopReason::Failed(_) | StopReason::TimedOut(_))
                        ) {
                            s.stop_reason = Some(StopReason::Requested);
                        }
                        s.phase = Phase::Stopping;
                        fx.push(Effect::Kill {
                            service: id,
                            generation: s.generation,
                        });
                    }
                }
            }
            Intent::Stop { service } => {
                if self.teardown.is_none() {
                    for id in self.with_dependents(service) {
                        // A finished service (a completed one-shot) is left as it is.
                        if !self.services[id].phase.is_final() {
                            self.services[id].stop_wanted = true;
                            self.cancel_unstarted(id, fx);
                        }
                    }
                }
            }
            Intent::Start { service } => {
                if self.teardown.is_none() {
                    self.wake(service, true);
                    self.wake_dependencies(service);
                }
            }
            Intent::Restart {
                service,
                ref cause,
                dependents,
            } => {
                let automatic = cause.is_some();
                if self.teardown.is_none() && !(automatic && self.held_down(service)) {
                    let targets = if dependents {
                        self.with_dependents(service)
                    } else {
                        vec![service]
                    };
                    for id in targets {
                        if automatic && self.held_down(id) {
                            continue;
                        }
                        self.restart(id, service, cause.as_deref(), fx);
                        self.cascade_restart(id, fx);
                    }
                    self.wake_dependencies(service);
                }
            }
            Intent::Signal {
                service,
                signal,
                ref cause,
            } => self.signal(service, signal, cause.as_deref(), fx),
        }
    }

    /// Signals a live service's tree (a watch's `signal:` action); nothing else changes.
    fn signal(
        &mut self,
        id: ServiceId,
        signal: StopSignal,
        cause: Option<&str>,
        fx: &mut Vec<Effect>,
    ) {
        let s = &self.services[id];
        let live = matches!(s.phase, Phase::Starting | Phase::Running | Phase::Healthy);
        if self.teardown.is_none() && live {
            let text = match cause {
                Some(c) => format!("sending {}: {c}", signal.name),
                None => format!("sending {}", signal.name),
            };
            fx.push(notice(id, text));
            fx.push(Effect::Signal {
                service: id,
                generation: s.generation,
                signal,
            });
        }
    }

    /// Whether an automatic restart must leave `id` alone: it is held stopped (`pk stop`),
    /// on its way down (a restart under way already sees the change), or not in this run.
    fn held_down(&self, id: ServiceId) -> bool {
        let s = &self.services[id];
        s.stop_wanted || matches!(s.phase, Phase::Stopped | Phase::Stopping | Phase::Inactive)
    }

    /// Moves every stop deadline later than `grace` from now to `grace` from now.
    fn shorten_deadlines(&mut self, grace: Duration, fx: &mut Vec<Effect>) {
        let now = self.now;
        for id in 0..self.services.len() {
            let s = &mut self.services[id];
            if s.phase == Phase::Stopping
                && let Some((since, old)) = s.stopping
                && since + old > now + grace
            {
                s.stopping = Some((now, grace));
                s.epoch += 1;
                fx.push(Effect::ArmTimer {
                    service: id,
                    epoch: s.epoch,
                    after: grace,
                });
            }
        }
    }

    /// `id` and everything in this run that depends on it, transitively.
    fn with_dependents(&self, id: ServiceId) -> Vec<ServiceId> {
        // `Plan::with_dependents`'s order, through the engine's index of dependents.
        let mut all = vec![id];
        let mut i = 0;
        while i < all.len() {
            for &d in &self.dependents[all[i]] {
                if !all.contains(&d) {
                    all.push(d);
                }
            }
            i += 1;
        }
        all.retain(|&d| d == id || self.services[d].phase != Phase::Inactive);
        all
    }

    /// Whether anything that depends on `id`, directly or not, has a live tree.
    fn any_live_dependent(&self, id: ServiceId) -> bool {
        let mut seen = std::collections::HashSet::new();
        let mut work = vec![id];
        while let Some(at) = work.pop() {
            for &d in &self.dependents[at] {
                if seen.insert(d) {
                    if self.services[d].phase.is_live() {
                        return true;
                    }
                    work.push(d);
                }
            }
        }
        false
    }

    /// Wakes what `id` depends on that is not running and not done: stopped, never started,
    /// or failed (a completed one-shot is not run again).
    fn wake_dependencies(&mut self, id: ServiceId) {
        for dep in self.plan.with_dependencies(id).into_iter().skip(1) {
            let needs_run = match &self.services[dep].phase {
                Phase::Exited(e) => !e.success(),
                Phase::Inactive
                | Phase::Stopped
                | Phase::Crashed(_)
                | Phase::Failed(_)
                | Phase::Skipped(_)
                | Phase::TimedOut { .. } => true,
                _ => false,
            };
            if needs_run {
                self.wake(dep, true);
            }
        }
    }

    /// Makes a service that is not running want to run again. `fresh`: also forget its
    /// restart history (a manual start).
    fn wake(&mut self, id: ServiceId, fresh: bool) {
        let s = &mut self.services[id];
        s.stop_wanted = false;
        if s.phase.is_final() && (fresh || s.phase != Phase::Inactive) {
            s.phase = Phase::Pending;
            s.wait_announced = false;
            s.epoch += 1;
        }
        if fresh {
            s.attempt = 0;
            s.restart_times.clear();
        }
    }

    /// Restarts `id` (live: stop, then start; otherwise start) on behalf of `origin`.
    fn restart(
        &mut self,
        id: ServiceId,
        origin: ServiceId,
        cause: Option<&str>,
        fx: &mut Vec<Effect>,
    ) {
        let manual = cause.is_none();
        let text = match cause {
            Some(c) if id == origin => format!("restarting: {c}"),
            _ if id != origin => format!("restarting after {}", self.plan.services[origin].name),
            _ => "restarting (requested)".to_string(),
        };
        let s = &mut self.services[id];
        s.stop_wanted = false;
        if manual {
            s.attempt = 0;
            s.restart_times.clear();
        }
        match s.phase {
            Phase::Stopping => {
                // Already on its way down; it comes back up instead of staying stopped.
                if matches!(s.stop_reason, Some(StopReason::Requested)) {
                    s.stop_reason = Some(StopReason::Restart);
                }
            }
            Phase::Starting | Phase::Running | Phase::Healthy => {
                fx.push(notice(id, text));
                self.stop_service(id, StopReason::Restart, fx);
            }
            Phase::Restarting { .. } => {
                fx.push(notice(id, text));
                s.phase = Phase::Pending;
                s.wait_announced = false;
                s.epoch += 1;
            }
            Phase::Pending => {}
            _ => {
                fx.push(notice(id, text));
                self.wake(id, manual);
            }
        }
    }

    /// A service that has no tree yet will not get one while it is to stay stopped.
    fn cancel_unstarted(&mut self, id: ServiceId, fx: &mut Vec<Effect>) {
        let s = &mut self.services[id];
        let text = match s.phase {
            Phase::Pending => "not started",
            Phase::Restarting { .. } => "not restarted",
            _ => return,
        };
        s.phase = Phase::Stopped;
        s.epoch += 1;
        fx.push(notice(id, format!("{text} (stopping)")));
    }

    fn on_report(&mut self, id: ServiceId, report: Report, now: Instant, fx: &mut Vec<Effect>) {
        self.report(id, report, now, fx);
        if self.plan.services[id].exit_on_end {
            self.end_stack_if_ended(id, fx);
        }
    }

    /// `exit_on_end`: a service that ended for good (exited with no restart coming, crashed
    /// out of restarts, or failed) stops the stack, and its exit code becomes pk's. A stop pk
    /// was asked for (`pk stop`, teardown) does not count.
    fn end_stack_if_ended(&mut self, id: ServiceId, fx: &mut Vec<Effect>) {
        if self.teardown.is_some() || self.ended_by.is_some() {
            return;
        }
        let s = &self.services[id];
        let (code, what) = match &s.phase {
            // A success exit code (`success_exit_codes`) ends the stack with 0, as in
            // process-compose.
            Phase::Exited(e) | Phase::Crashed(e) => {
                let code = if e.success() {
                    0
                } else {
                    exit_code_of(e.status)
                };
                (code, e.to_string())
            }
            Phase::Failed(reason) => (1, format!("failed: {reason}")),
            _ => return,
        };
        self.ended_by = Some((id, code));
        fx.push(notice(
            id,
            format!("{what}; stopping the stack (exit_on_end), pk exits {code}"),
        ));
        self.on_intent(&Intent::Shutdown { grace: None }, fx);
    }

    fn report(&mut self, id: ServiceId, report: Report, now: Instant, fx: &mut Vec<Effect>) {
        let has_ready = self.plan.services[id].ready.is_some();
        match report {
            Report::Spawned { pids } => {
                let limit = self.plan.services[id].timeout;
                let s = &mut self.services[id];
                s.spawned = true;
                s.started_at = Some(now);
                s.pids = pids;
                if s.phase == Phase::Starting && !has_ready {
                    s.phase = Phase::Running;
                }
                // The run limit counts from the spawn; the timer is this run's (its epoch).
                s.run_deadline = limit.map(|after| now + after);
                if let Some(after) = limit {
                    fx.push(Effect::ArmTimer {
                        service: id,
                        epoch: s.epoch,
                        after,
                    });
                }
                // The supervisor printed `started (pid …)` itself, ahead of any output.
            }
            Report::SpawnFailed { error } => {
                let s = &mut self.services[id];
                // A stop sent meanwhile ends here too: nothing of it may carry over to the
                // next run (a stale `Restart` reason would restart a one-shot when it exits).
                s.stopping = None;
                s.killed = false;
                s.stop_reason = None;
                s.phase = Phase::Failed(format!("could not start: {error}"));
                fx.push(notice(id, format!("failed to start: {error}")));
            }
            Report::Cancelled => {
                let s = &mut self.services[id];
                s.stopping = None;
                s.killed = false;
                s.phase = match s.stop_reason.take() {
                    Some(StopReason::Failed(reason)) => Phase::Failed(reason),
                    Some(StopReason::Restart | StopReason::Cascade(_)) if !s.stop_wanted => {
                        s.wait_announced = false;
                        Phase::Pending
                    }
                    _ => {
                        fx.push(notice(id, "not started (stopping)".into()));
                        Phase::Stopped
                    }
                };
            }
            Report::Ready => {
                let s = &mut self.services[id];
                if s.phase == Phase::Starting {
                    s.phase = Phase::Healthy;
                    fx.push(notice(id, State::Healthy.label().into()));
                }
            }
            Report::NotReady { reason } => {
                if self.services[id].phase == Phase::Starting {
                    fx.push(notice(id, format!("failed: {reason}")));
                    self.stop_service(id, StopReason::Failed(reason), fx);
                }
            }
            Report::Unhealthy { reason } => {
                let s = &self.services[id];
                if s.phase.is_live() && s.phase != Phase::Stopping && self.teardown.is_none() {
                    fx.push(notice(id, reason.clone()));
                    self.stop_service(id, StopReason::Unhealthy(reason), fx);
                }
            }
            Report::Exited { exit } => self.on_exit(id, exit, now, fx),
        }
    }

    fn on_exit(&mut self, id: ServiceId, exit: ExitInfo, now: Instant, fx: &mut Vec<Effect>) {
        let policy = self.plan.services[id].restart.policy;
        let mut exit = exit;
        exit.allowed = self.plan.services[id].success_codes.contains(&exit.code())
            && matches!(exit.status, crate::vocab::ExitStatus::Code(_));
        let s = &mut self.services[id];
        s.pids.clear();
        s.spawned = false;
        let grace = s.stopping.take().map(|(_, grace)| grace);
        let killed = std::mem::take(&mut s.killed);
        if exit.success() {
            s.completed_ok = true;
        }
        s.last_exit = Some(exit.clone());
        s.run_deadline = None;
        let mut reason = s.stop_reason.take();
        if s.stop_wanted
            && !matches!(
                reason,
                Some(StopReason::Failed(_) | StopReason::TimedOut(_))
            )
        {
            // A stop asked for meanwhile (teardown, `pk stop`) wins over a restart.
            reason = Some(StopReason::Requested);
        }
        match reason {
            Some(StopReason::Requested) => {
                s.phase = Phase::Stopped;
                let text = if let (true, Some(grace)) = (killed, grace) {
                    format!("killed after {} grace", fmt_duration(grace))
                } else {
                    State::Stopped.label().to_string()
                };
                fx.push(notice(id, text));
            }
            Some(StopReason::Failed(reason)) => s.phase = Phase::Failed(reason),
            Some(StopReason::Restart) => {
                s.phase = Phase::Pending;
                s.wait_announced = false;
            }
            Some(StopReason::Cascade(dep)) => {
                s.phase = Phase::Pending;
                s.wait_announced = false;
                fx.push(notice(id, format!("stopped; restarts after {dep}")));
            }
            Some(StopReason::Unhealthy(reason)) => {
                if policy == RestartPolicy::No || self.teardown.is_some() {
                    s.phase = Phase::Failed(reason);
                } else {
                    self.schedule_restart(id, &reason, exit, now, fx);
                }
            }
            Some(StopReason::TimedOut(limit)) => {
                let cause = format!("timed out after {}", fmt_duration(limit));
                // A timeout is a failure: on-failure and always restart it.
                if policy == RestartPolicy::No || self.teardown.is_some() || s.stop_wanted {
                    let text = if killed {
                        let grace = self.stop_params(id).1;
                        format!("{cause} (killed after {} grace)", fmt_duration(grace))
                    } else {
                        cause
                    };
                    self.services[id].phase = Phase::TimedOut { limit, exit };
                    fx.push(notice(id, text));
                } else {
                    self.schedule_restart(id, &cause, exit, now, fx);
                }
            }
            None => {
                let wants_restart = match policy {
                    RestartPolicy::No => false,
                    RestartPolicy::OnFailure => !exit.success(),
                    RestartPolicy::Always => true,
                };
                if wants_restart && self.teardown.is_none() {
                    self.schedule_restart(id, &exit.to_string(), exit, now, fx);
                } else {
                    let text = if exit.success() {
                        State::Completed.label().to_string()
                    } else {
                        exit.to_string()
                    };
                    s.phase = Phase::Exited(exit);
                    fx.push(notice(id, text));
                }
            }
        }
    }

    /// Arms a backoff restart of `id`, or ends it in `crashed` when the limit is hit; restarts
    /// the dependents that asked for it (`restart: true`).
    fn schedule_restart(
        &mut self,
        id: ServiceId,
        cause: &str,
        exit: ExitInfo,
        now: Instant,
        fx: &mut Vec<Effect>,
    ) {
        let spec = self.plan.services[id].restart;
        let s = &mut self.services[id];
        if s.started_at
            .is_some_and(|t| now.saturating_duration_since(t) >= STABLE_AFTER)
        {
            s.attempt = 0;
        }
        while s
            .restart_times
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= spec.window)
        {
            s.restart_times.pop_front();
        }
        if spec.max != u32::MAX && s.restart_times.len() >= spec.max as usize {
            fx.push(notice(
                id,
                format!(
                    "{cause}; crashed: {} restarts within {}, giving up",
                    s.restart_times.len(),
                    fmt_duration(spec.window)
                ),
            ));
            s.phase = Phase::Crashed(exit);
            return;
        }
        let base = spec
            .backoff_initial
            .saturating_mul(1u32 << s.attempt.min(20))
            .min(spec.backoff_max);
        // A fixed backoff (initial = max, process-compose's `backoff_seconds`) has no jitter.
        let delay = if spec.backoff_initial == spec.backoff_max {
            base
        } else {
            jitter(base, &mut self.rng).min(spec.backoff_max)
        };
        let s = &mut self.services[id];
        s.attempt += 1;
        s.restarts += 1;
        // Unlimited restarts (`max` = u32::MAX) keep no history: nothing would ever read it.
        if spec.max != u32::MAX {
            s.restart_times.push_back(now);
        }
        s.epoch += 1;
        s.phase = Phase::Restarting { at: now + delay };
        fx.push(notice(
            id,
            format!("{cause}, restarting in {}", fmt_duration(delay)),
        ));
        fx.push(Effect::ArmTimer {
            service: id,
            epoch: s.epoch,
            after: delay,
        });
        self.cascade_restart(id, fx);
    }

    /// Stops the live dependents of `id` that declared `restart: true` (and theirs, in
    /// turn); they start again once `id` meets their condition. Called for every restart of
    /// `id`: a crash, `pk restart`, the dashboard, a watched file.
    fn cascade_restart(&mut self, id: ServiceId, fx: &mut Vec<Effect>) {
        let mut work = vec![id];
        while let Some(origin) = work.pop() {
            let name = self.plan.services[origin].name.clone();
            for i in 0..self.dependents[origin].len() {
                let d = self.dependents[origin][i];
                let declared = self.plan.services[d]
                    .depends_on
                    .iter()
                    .any(|dep| dep.service == origin && dep.restart);
                let s = &self.services[d];
                if declared && s.phase.is_live() && s.phase != Phase::Stopping {
                    self.stop_service(d, StopReason::Cascade(name.clone()), fx);
                    work.push(d);
                }
            }
        }
    }

    /// Sends the stop sequence to a live service, remembers why, and arms its deadline.
    fn stop_service(&mut self, id: ServiceId, reason: StopReason, fx: &mut Vec<Effect>) {
        let (signal, grace) = self.stop_params(id);
        let s = &mut self.services[id];
        s.stopping = Some((self.now, grace));
        s.killed = false;
        s.epoch += 1;
        s.phase = Phase::Stopping;
        s.stop_reason = Some(reason);
        fx.push(notice(
            id,
            format!("stopping ({}, grace {})", signal.name, fmt_duration(grace)),
        ));
        fx.push(Effect::Stop {
            service: id,
            generation: s.generation,
            signal,
            grace,
        });
        fx.push(Effect::ArmTimer {
            service: id,
            epoch: s.epoch,
            after: grace,
        });
    }

    /// A timer of the current epoch fired; the phase says which: a restart's backoff ended
    /// (`restarting` → `pending`), a live run reached its `timeout:` (stopped through its
    /// shutdown sequence, landing in `timed out`), or a stop's deadline passed (SIGKILL the
    /// tree, whether its shutdown command or its stop signal was still at work).
    fn on_timer(&mut self, id: ServiceId, epoch: u64, fx: &mut Vec<Effect>) {
        let s = &mut self.services[id];
        if s.epoch != epoch {
            return;
        }
        match s.phase {
            Phase::Restarting { .. } => {
                s.phase = Phase::Pending;
                s.wait_announced = false;
            }
            Phase::Stopping if !s.killed => {
                s.killed = true;
                fx.push(Effect::Kill {
                    service: id,
                    generation: s.generation,
                });
            }
            Phase::Starting | Phase::Running | Phase::Healthy if s.run_deadline.is_some() => {
                let Some(limit) = self.plan.services[id].timeout else {
                    return;
                };
                fx.push(notice(
                    id,
                    format!("timeout {} reached", fmt_duration(limit)),
                ));
                self.stop_service(id, StopReason::TimedOut(limit), fx);
            }
            _ => {}
        }
    }

    /// Signal and grace for stopping `id`, with the teardown's override applied.
    fn stop_params(&self, id: ServiceId) -> (StopSignal, Duration) {
        let shutdown = &self.plan.services[id].shutdown;
        let grace = self
            .teardown
            .and_then(|t| t.grace)
            .unwrap_or(shutdown.grace);
        (shutdown.signal, grace)
    }

    /// Brings services forward until nothing changes: starts those whose dependencies are
    /// met, skips those whose dependencies never will be, and during teardown stops those
    /// whose dependents are all down.
    ///
    /// It looks only at what the changes since the last reconcile can affect — a changed
    /// service, its direct dependents (their gate) and everything it depends on (their stop
    /// waits for their dependents) — in passes over `plan.order`, exactly as a walk of every
    /// service in that order, repeated until a pass changes nothing, would: a service a pass
    /// affects comes later in the same pass if it is after the cursor, else in the next pass.
    /// Services that nothing affected would not change, so skipping them changes no effect
    /// and no order; the cost is that of the affected services, not of the stack.
    fn reconcile(&mut self, _now: Instant, fx: &mut Vec<Effect>) {
        #[cfg(test)]
        if self.walk_all {
            self.reconcile_walking_all(fx);
            return;
        }
        let mut changed = std::mem::take(&mut self.scratch);
        // Ranks (positions in `plan.order`) still to look at in this pass, and in the next.
        let mut pass = std::collections::BTreeSet::new();
        let mut next = std::collections::BTreeSet::new();
        self.services.take(Follow::Reconcile, &mut changed);
        for &id in &changed {
            self.affected(id, |rank| {
                pass.insert(rank);
            });
        }
        changed.clear();
        loop {
            let Some(cursor) = pass.pop_first() else {
                if next.is_empty() {
                    break;
                }
                std::mem::swap(&mut pass, &mut next);
                continue;
            };
            let id = self.plan.order[cursor];
            let moved = if self.services[id].stop_wanted {
                self.maybe_stop(id, fx)
            } else {
                self.maybe_start(id, fx)
            };
            self.services.take(Follow::Reconcile, &mut changed);
            if !moved {
                // Only `id`'s own notes (what it waits for, that it said so) changed, which
                // no other service's reconcile reads.
                changed.clear();
            }
            for &id in &changed {
                self.affected(id, |rank| {
                    if rank > cursor {
                        pass.insert(rank);
                    } else {
                        next.insert(rank);
                    }
                });
            }
            changed.clear();
        }
        self.scratch = changed;
    }

    /// The reconcile as it was before it became incremental: every service in `plan.order`,
    /// again and again until a pass changes nothing.
    #[cfg(test)]
    fn reconcile_walking_all(&mut self, fx: &mut Vec<Effect>) {
        loop {
            let mut changed = false;
            for i in 0..self.plan.order.len() {
                let id = self.plan.order[i];
                changed |= if self.services[id].stop_wanted {
                    self.maybe_stop(id, fx)
                } else {
                    self.maybe_start(id, fx)
                };
            }
            if !changed {
                break;
            }
        }
        let mut drained = Vec::new();
        self.services.take(Follow::Reconcile, &mut drained);
    }

    /// Tests: the engine's indexes and counts against walks of the plan and every service.
    #[cfg(test)]
    pub(super) fn check_against_walks(&self) {
        for id in 0..self.services.len() {
            let mut walked = self.plan.with_dependents(id);
            walked.retain(|&d| d == id || self.services[d].phase != Phase::Inactive);
            assert_eq!(self.with_dependents(id), walked, "dependents of {id}");
            let down = walked
                .iter()
                .skip(1)
                .all(|&d| !self.services[d].phase.is_live());
            assert_eq!(
                self.any_live_dependent(id),
                !down,
                "live dependents of {id}"
            );
        }
        let all = self.services.as_slice();
        let settled = all.iter().all(|s| s.phase.is_final())
            && (self.teardown.is_some() || !all.iter().any(|s| s.stop_wanted));
        assert_eq!(self.settled(), settled, "settled");
        if self.ended_by.is_none()
            && self.stack_exit.is_none()
            && self.plan.exit_rules == crate::plan::ExitRules::Pk
        {
            let failed = all.iter().any(|s| match &s.phase {
                Phase::Exited(e) => !e.success(),
                Phase::Crashed(_)
                | Phase::Failed(_)
                | Phase::Skipped(_)
                | Phase::TimedOut { .. } => true,
                _ => false,
            });
            assert_eq!(self.exit_code(), i32::from(failed), "exit code");
        }
    }

    /// Calls `mark` with the rank of every service whose reconcile a change of `id` may
    /// change: `id`, its direct dependents, and everything it depends on, directly or not.
    fn affected(&self, id: ServiceId, mut mark: impl FnMut(usize)) {
        mark(self.rank[id]);
        for &d in &self.dependents[id] {
            mark(self.rank[d]);
        }
        if !self.plan.services[id].depends_on.is_empty() {
            for dep in self.plan.with_dependencies(id).into_iter().skip(1) {
                mark(self.rank[dep]);
            }
        }
    }

    /// Starts or skips `id` if it is pending and its dependencies allow; true if it did.
    fn maybe_start(&mut self, id: ServiceId, fx: &mut Vec<Effect>) -> bool {
        if self.services[id].phase != Phase::Pending {
            return false;
        }
        let mut waiting = Vec::new();
        let mut optional_failed = Vec::new();
        for dep in &self.plan.services[id].depends_on {
            match self.gate(dep.service, dep.condition) {
                Gate::Met => {}
                Gate::Wait => waiting.push(format!(
                    "{} ({})",
                    self.plan.services[dep.service].name,
                    dep.condition.as_str()
                )),
                Gate::Never(reason) if dep.required => {
                    let s = &mut self.services[id];
                    s.phase = Phase::Skipped(reason.clone());
                    fx.push(notice(id, format!("skipped: {reason}")));
                    return true;
                }
                Gate::Never(reason) => {
                    optional_failed.push(reason);
                }
            }
        }
        if waiting.is_empty() {
            let s = &mut self.services[id];
            s.waiting_for = None;
            for reason in optional_failed {
                fx.push(notice(
                    id,
                    format!("starting anyway: {reason} (required: false)"),
                ));
            }
            s.generation += 1;
            s.epoch += 1;
            s.spawned = false;
            s.wait_announced = false;
            s.phase = Phase::Starting;
            fx.push(Effect::Spawn {
                service: id,
                generation: s.generation,
            });
            true
        } else {
            // Written only when it changes: a write marks the service changed (`States`).
            let waiting_for = Some(waiting.join(", "));
            if self.services[id].waiting_for != waiting_for {
                self.services[id].waiting_for = waiting_for;
            }
            if !self.services[id].wait_announced {
                self.services[id].wait_announced = true;
                fx.push(notice(id, format!("waiting for {}", waiting.join(", "))));
            }
            false
        }
    }

    /// Stops `id` if it is to stop and nothing that depends on it is live; true if it did.
    fn maybe_stop(&mut self, id: ServiceId, fx: &mut Vec<Effect>) -> bool {
        let s = &self.services[id];
        if !s.phase.is_live() || s.phase == Phase::Stopping {
            return false;
        }
        // Transitive: a dependent through a finished one-shot (api → migrate → db) still
        // needs `id`, so it must be down first.
        if self.any_live_dependent(id) {
            return false;
        }
        self.stop_service(id, StopReason::Requested, fx);
        true
    }

    /// Whether `dep` meets `condition` now, may later, or never will (`vocab::meets`), with
    /// the reason when it never will.
    fn gate(&self, dep: ServiceId, condition: Condition) -> Gate {
        let s = &self.services[dep];
        let progress = Progress {
            state: s.phase.state(),
            spawned: s.spawned,
            completed_ok: s.completed_ok,
        };
        match meets(progress, condition) {
            Verdict::Met => Gate::Met,
            Verdict::Wait => Gate::Wait,
            Verdict::Never => Gate::Never(self.never_reason(dep, condition)),
        }
    }

    /// Why `dep` will never meet `condition`, naming it.
    fn never_reason(&self, dep: ServiceId, condition: Condition) -> String {
        let name = &self.plan.services[dep].name;
        match (&self.services[dep].phase, condition) {
            (Phase::Failed(reason), _) => format!("{name} failed ({reason})"),
            (Phase::Skipped(_), _) => format!("{name} was skipped"),
            (Phase::Stopped, _) => format!("{name} was stopped"),
            (Phase::Inactive, _) => format!("{name} is not part of this run"),
            (Phase::Crashed(e), _) => format!("{name} crashed ({e})"),
            (Phase::Exited(e), Condition::Healthy) => format!("{name} {e} before it was healthy"),
            (Phase::Exited(e), _) => format!("{name} {e}"),
            (Phase::TimedOut { limit, .. }, _) => {
                format!("{name} timed out after {}", fmt_duration(*limit))
            }
            (phase, _) => format!("{name} is {}", phase.state()),
        }
    }
}

fn notice(id: ServiceId, text: String) -> Effect {
    Effect::Notice {
        service: Some(id),
        text,
    }
}

/// ±20% jitter from a xorshift generator (deterministic for a given seed).
fn jitter(base: Duration, rng: &mut u64) -> Duration {
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    #[expect(
        clippy::cast_precision_loss,
        reason = "a jitter factor needs no precision"
    )]
    let unit = (*rng % 10_000) as f64 / 10_000.0;
    base.mul_f64(0.8 + 0.4 * unit)
}

/// A shell's exit code for `status`: the code, or 128 + the signal number.
fn exit_code_of(status: ExitStatus) -> i32 {
    match status {
        ExitStatus::Code(c) => c,
        ExitStatus::Signal(s) => 128 + s,
    }
}
