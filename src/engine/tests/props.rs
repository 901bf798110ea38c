//! Properties of the engine over random dependency graphs and random orders of events
//! (issue 11, part 3). A small simulated world plays the supervisors and the timers: it
//! carries out every `Effect` the way the runtime does (a spawn is pending until the
//! supervisor reports it; a stopped or killed tree exits later; a timer fires at its time,
//! stale ones too), and a random sequence of choices decides what happens next: a supervisor
//! fact (spawned, spawn failed, cancelled, exited with any code, ready, not ready, unhealthy),
//! a timer, time passing, or a user's intent (stop, start, restart, signal, shutdown, force).
//! At the end the stack is torn down and drained.
//!
//! After every step it checks:
//! - nothing starts before its dependencies meet their conditions;
//! - a requested stop (teardown, `pk stop`) never reaches a service while a dependent of it
//!   still has a tree;
//! - once settled, nothing is live (and the final teardown always settles);
//! - automatic restarts stay within `max` per `window`;
//! - every effect is consistent with the state it leaves (phase, generation, epoch), and the
//!   engine never waits on a timer it has not armed.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::engine::state::StopReason;
use crate::vocab::{Progress, Verdict, meets};

/// What a plan is made of: per service, a seed that decides its dependencies and settings.
fn plan_from(seeds: &[u64]) -> Arc<Plan> {
    let conditions = [
        Condition::Started,
        Condition::Healthy,
        Condition::Completed,
        Condition::CompletedSuccessfully,
    ];
    let services = seeds
        .iter()
        .enumerate()
        .map(|(i, &seed)| {
            let wide = |shift: usize, width: usize| (seed >> shift) & ((1 << width) - 1);
            let bits =
                |shift: usize, width: usize| usize::try_from(wide(shift, width)).unwrap_or(0);
            let mut s = service(&format!("s{i}"), &[]);
            // Dependencies point to earlier services only: declaration order is a topological
            // order (what `plan` assumes).
            for dep in 0..i.min(6) {
                if bits(dep, 1) == 1 {
                    let cond = conditions[bits(8 + 2 * dep, 2)];
                    s.depends_on.push(crate::plan::Dependency {
                        service: dep,
                        condition: cond,
                        required: bits(20 + dep, 1) == 0 || bits(27, 1) == 0,
                        restart: bits(28 + dep, 1) == 1,
                    });
                }
            }
            if bits(34, 1) == 1 {
                s = with_ready(s);
            }
            if bits(35, 2) == 0 {
                s.alive = with_ready(service("x", &[])).ready;
            }
            s.restart.policy = match bits(37, 2) {
                0 | 1 => RestartPolicy::No,
                2 => RestartPolicy::OnFailure,
                _ => RestartPolicy::Always,
            };
            s.restart.max = u32::try_from(bits(39, 2)).unwrap_or(0);
            s.restart.window = Duration::from_secs(10 + 10 * wide(41, 2));
            s.restart.backoff_initial = Duration::from_millis(100);
            s.restart.backoff_max = Duration::from_millis(100 + 400 * wide(43, 1));
            s.shutdown.grace = Duration::from_millis(50 + 100 * wide(44, 2));
            if bits(46, 2) == 0 {
                s.timeout = Some(Duration::from_secs(1 + wide(48, 2)));
            }
            s
        })
        .collect();
    plan(services)
}

/// The simulated supervisors and timer wheel.
#[derive(Debug, Default)]
struct World {
    /// Per service: the generation whose spawn was asked for and not yet reported.
    spawning: BTreeMap<ServiceId, (u64, bool)>,
    /// Per service: the live tree's generation, and whether it was told to stop / killed.
    trees: BTreeMap<ServiceId, Tree>,
    /// Armed timers: (due, service, epoch).
    timers: Vec<(Instant, ServiceId, u64)>,
}

#[derive(Debug, Clone, Copy)]
struct Tree {
    generation: u64,
    stopped: bool,
    killed: bool,
}

impl World {
    fn live(&self, id: ServiceId) -> bool {
        self.spawning.contains_key(&id) || self.trees.contains_key(&id)
    }

    fn any_live(&self) -> bool {
        !self.spawning.is_empty() || !self.trees.is_empty()
    }

    fn armed(&self, id: ServiceId, epoch: u64) -> bool {
        self.timers.iter().any(|&(_, s, e)| s == id && e == epoch)
    }
}

/// One thing that can happen next.
#[derive(Debug, Clone)]
enum Event {
    Report(ServiceId, u64, Report),
    Timer,
    Wait(Duration),
    Intent(Intent),
}

/// Runs the engine with `world` on `input`, checks every property, and applies the effects.
struct Harness {
    plan: Arc<Plan>,
    engine: Engine,
    world: World,
    now: Instant,
    /// Per service: the times of automatic restarts since the last start or restart intent.
    restarts: Vec<Vec<Instant>>,
    /// Every input and its effects, shown when a property fails.
    trace: Vec<String>,
}

impl Harness {
    fn new(plan: Arc<Plan>, selected: &[bool]) -> Harness {
        let engine = Engine::new(Arc::clone(&plan), selected, 7);
        Harness {
            restarts: vec![Vec::new(); plan.services.len()],
            plan,
            engine,
            world: World::default(),
            now: Instant::now(),
            trace: Vec::new(),
        }
    }

    fn start(&mut self) -> Result<(), TestCaseError> {
        let before = self.snapshot_restarts();
        let fx = self.engine.start(self.now);
        self.checked("start", &fx, &before)
    }

    /// `after`, with the trace of the whole run added to a failure.
    fn checked(&mut self, input: &str, fx: &[Effect], before: &[u32]) -> Result<(), TestCaseError> {
        let phases: Vec<String> = self
            .engine
            .services()
            .iter()
            .map(|s| format!("{:?}/g{}e{}", s.phase, s.generation, s.epoch))
            .collect();
        self.trace
            .push(format!("{input}\n    -> {fx:?}\n    => {phases:?}"));
        self.after(fx, before)
            .map_err(|e| TestCaseError::fail(format!("{e}\ntrace:\n{}", self.trace.join("\n"))))
    }

    fn snapshot_restarts(&self) -> Vec<u32> {
        self.engine.services().iter().map(|s| s.restarts).collect()
    }

    fn step(&mut self, input: Input) -> Result<(), TestCaseError> {
        if let Input::Intent(Intent::Start { .. } | Intent::Restart { .. }) = input {
            // A start or restart asked for forgets the restart history of what it (re)starts
            // and of the dependencies it wakes (even an automatic one: a watched file changed).
            self.restarts.iter_mut().for_each(Vec::clear);
        }
        let before = self.snapshot_restarts();
        let shown = format!("{input:?}");
        let fx = self.engine.step(input, self.now);
        self.checked(&shown, &fx, &before)
    }

    /// The events possible now, by kind.
    fn reports(&self) -> Vec<Event> {
        let mut out = Vec::new();
        for (&id, &(generation, stopped)) in &self.world.spawning {
            out.push(Event::Report(
                id,
                generation,
                Report::Spawned { pids: vec![1] },
            ));
            out.push(Event::Report(
                id,
                generation,
                Report::SpawnFailed {
                    error: "no such file".into(),
                },
            ));
            if stopped {
                out.push(Event::Report(id, generation, Report::Cancelled));
            }
        }
        for (&id, tree) in &self.world.trees {
            let g = tree.generation;
            let exit = |status| Report::Exited {
                exit: ExitInfo::new(status),
            };
            out.push(Event::Report(id, g, exit(ExitStatus::Code(0))));
            out.push(Event::Report(id, g, exit(ExitStatus::Code(1))));
            if tree.stopped || tree.killed {
                out.push(Event::Report(id, g, exit(ExitStatus::Signal(15))));
            }
            let spec = &self.plan.services[id];
            if spec.ready.is_some() {
                out.push(Event::Report(id, g, Report::Ready));
                out.push(Event::Report(
                    id,
                    g,
                    Report::NotReady {
                        reason: "not ready".into(),
                    },
                ));
            }
            if spec.alive.is_some() {
                out.push(Event::Report(
                    id,
                    g,
                    Report::Unhealthy {
                        reason: "alive probe failed".into(),
                    },
                ));
            }
        }
        out
    }

    fn intents(&self) -> Vec<Event> {
        let mut out = vec![
            Event::Intent(Intent::Shutdown { grace: None }),
            Event::Intent(Intent::Shutdown {
                grace: Some(Duration::from_millis(10)),
            }),
        ];
        for id in 0..self.plan.services.len() {
            out.push(Event::Intent(Intent::Stop { service: id }));
            out.push(Event::Intent(Intent::Start { service: id }));
            for (cause, dependents) in [(None, false), (None, true), (Some("x".into()), false)] {
                out.push(Event::Intent(Intent::Restart {
                    service: id,
                    cause,
                    dependents,
                }));
            }
            out.push(Event::Intent(Intent::Signal {
                service: id,
                signal: StopSignal::TERM,
                cause: None,
            }));
        }
        out
    }

    /// Interprets one random choice as an event possible now.
    fn choose(&self, choice: u32) -> Event {
        let pick = |events: Vec<Event>, arg: u32| -> Option<Event> {
            (!events.is_empty()).then(|| events[arg as usize % events.len()].clone())
        };
        let arg = choice / 16;
        let event = match choice % 16 {
            0..=6 => pick(self.reports(), arg),
            7..=9 => (!self.world.timers.is_empty()).then_some(Event::Timer),
            10 | 11 => Some(Event::Wait(Duration::from_millis(u64::from(arg % 3000)))),
            12 if arg % 8 == 0 => Some(Event::Intent(Intent::ForceKill)),
            _ => pick(self.intents(), arg),
        };
        event.unwrap_or(Event::Wait(Duration::from_millis(1)))
    }

    fn apply(&mut self, event: Event) -> Result<(), TestCaseError> {
        match event {
            Event::Report(id, generation, report) => {
                match &report {
                    Report::Spawned { .. } => {
                        let (_, stopped) = self.world.spawning.remove(&id).unwrap_or_default();
                        self.world.trees.insert(
                            id,
                            Tree {
                                generation,
                                stopped,
                                killed: false,
                            },
                        );
                    }
                    Report::SpawnFailed { .. } | Report::Cancelled => {
                        self.world.spawning.remove(&id);
                    }
                    Report::Exited { .. } => {
                        self.world.trees.remove(&id);
                    }
                    Report::Ready | Report::NotReady { .. } | Report::Unhealthy { .. } => {}
                }
                self.step(Input::Report {
                    service: id,
                    generation,
                    report,
                })
            }
            Event::Timer => self.fire_next_timer(),
            Event::Wait(d) => {
                let until = self.now + d;
                while let Some(due) = self.next_timer_due()
                    && due <= until
                {
                    self.fire_next_timer()?;
                }
                self.now = self.now.max(until);
                Ok(())
            }
            Event::Intent(intent) => self.step(Input::Intent(intent)),
        }
    }

    fn next_timer_due(&self) -> Option<Instant> {
        self.world.timers.iter().map(|t| t.0).min()
    }

    fn fire_next_timer(&mut self) -> Result<(), TestCaseError> {
        let Some(i) = (0..self.world.timers.len()).min_by_key(|&i| self.world.timers[i].0) else {
            return Ok(());
        };
        let (due, service, epoch) = self.world.timers.remove(i);
        self.now = self.now.max(due);
        self.step(Input::Timer { service, epoch })
    }

    /// Checks the properties after a step that produced `fx`, then carries the effects out.
    fn after(&mut self, fx: &[Effect], restarts_before: &[u32]) -> Result<(), TestCaseError> {
        self.check_effects(fx)?;
        self.check_restarts(restarts_before)?;
        self.carry_out(fx);
        self.check_state()
    }

    /// Every effect is consistent with the state the step left.
    fn check_effects(&self, fx: &[Effect]) -> Result<(), TestCaseError> {
        let e = &self.engine;
        let mut last_timer: BTreeMap<ServiceId, u64> = BTreeMap::new();
        for effect in fx {
            match *effect {
                Effect::Spawn {
                    service,
                    generation,
                } => {
                    let s = e.service(service);
                    prop_assert_eq!(&s.phase, &Phase::Starting, "spawn of s{}", service);
                    prop_assert_eq!(s.generation, generation);
                    prop_assert!(!self.world.live(service), "s{} spawned twice", service);
                    for dep in &self.plan.services[service].depends_on {
                        let d = e.service(dep.service);
                        let verdict = meets(
                            Progress {
                                state: d.phase.state(),
                                spawned: d.spawned,
                                completed_ok: d.completed_ok,
                            },
                            dep.condition,
                        );
                        let ok =
                            verdict == Verdict::Met || (!dep.required && verdict == Verdict::Never);
                        prop_assert!(
                            ok,
                            "s{} started while s{} ({:?}) does not meet {:?}",
                            service,
                            dep.service,
                            d.phase,
                            dep.condition
                        );
                    }
                }
                Effect::Stop {
                    service,
                    generation,
                    ..
                } => {
                    let s = e.service(service);
                    prop_assert_eq!(&s.phase, &Phase::Stopping, "stop of s{}", service);
                    prop_assert_eq!(s.generation, generation);
                    prop_assert!(
                        self.world.live(service),
                        "stop of s{} without a tree",
                        service
                    );
                    if s.stop_reason == Some(StopReason::Requested) {
                        for d in self.plan.with_dependents(service).into_iter().skip(1) {
                            prop_assert!(
                                !self.world.live(d),
                                "s{} stopped on request while its dependent s{} is live ({:?})",
                                service,
                                d,
                                e.service(d).phase
                            );
                        }
                    }
                }
                Effect::Kill {
                    service,
                    generation,
                } => {
                    let s = e.service(service);
                    prop_assert_eq!(&s.phase, &Phase::Stopping, "kill of s{}", service);
                    prop_assert_eq!(s.generation, generation);
                }
                Effect::Signal {
                    service,
                    generation,
                    ..
                } => {
                    let s = e.service(service);
                    prop_assert!(
                        matches!(s.phase, Phase::Starting | Phase::Running | Phase::Healthy),
                        "signal to s{} in {:?}",
                        service,
                        s.phase
                    );
                    prop_assert_eq!(s.generation, generation);
                }
                Effect::ArmTimer { service, epoch, .. } => {
                    last_timer.insert(service, epoch);
                }
                Effect::Notice { .. } => {}
            }
        }
        for (&service, &epoch) in &last_timer {
            prop_assert_eq!(
                e.service(service).epoch,
                epoch,
                "the last timer armed for s{} is not of its current epoch",
                service
            );
        }
        Ok(())
    }

    /// Automatic restarts stay within `max` per `window`.
    fn check_restarts(&mut self, restarts_before: &[u32]) -> Result<(), TestCaseError> {
        let e = &self.engine;
        for (id, s) in e.services().iter().enumerate() {
            let restarted = s.restarts.saturating_sub(restarts_before[id]);
            for _ in 0..restarted {
                self.restarts[id].push(self.now);
            }
            let spec = &self.plan.services[id].restart;
            let now = self.now;
            let recent = self.restarts[id]
                .iter()
                .filter(|&&t| now.saturating_duration_since(t) < spec.window)
                .count();
            prop_assert!(
                recent <= spec.max as usize,
                "s{} restarted {} times within {:?} (max {})",
                id,
                recent,
                spec.window,
                spec.max
            );
        }
        Ok(())
    }

    /// Does what the runtime and the supervisors do with the effects.
    fn carry_out(&mut self, fx: &[Effect]) {
        for effect in fx {
            match *effect {
                Effect::Spawn {
                    service,
                    generation,
                } => {
                    self.world.spawning.insert(service, (generation, false));
                }
                Effect::Stop {
                    service,
                    generation,
                    ..
                } => self.mark(service, generation, false),
                Effect::Kill {
                    service,
                    generation,
                } => self.mark(service, generation, true),
                Effect::ArmTimer {
                    service,
                    epoch,
                    after,
                } => self.world.timers.push((self.now + after, service, epoch)),
                Effect::Signal { .. } | Effect::Notice { .. } => {}
            }
        }
    }

    /// The engine's phases agree with the world, and nothing waits on an unarmed timer.
    fn check_state(&self) -> Result<(), TestCaseError> {
        let e = &self.engine;
        for (id, s) in e.services().iter().enumerate() {
            // A stop sequence waits for its deadline; a force-kill waits for nothing.
            let waits_on_timer = matches!(s.phase, Phase::Restarting { .. })
                || (s.phase == Phase::Stopping && s.stopping.is_some() && !s.killed);
            prop_assert!(
                !waits_on_timer || self.world.armed(id, s.epoch),
                "s{} is {:?} with no timer of its epoch {} armed",
                id,
                s.phase,
                s.epoch
            );
            prop_assert_eq!(
                s.phase.is_live(),
                self.world.live(id),
                "s{} is {:?} but its tree is {}",
                id,
                s.phase,
                if self.world.live(id) { "live" } else { "gone" }
            );
        }
        if e.settled() {
            prop_assert!(
                !self.world.any_live(),
                "settled with live trees: {:?}",
                self.world
            );
        }
        Ok(())
    }

    /// A stop or kill reaching the supervisor: of a pending spawn (it will be cancelled or
    /// spawned and stopped) or of the live tree.
    fn mark(&mut self, id: ServiceId, generation: u64, kill: bool) {
        if let Some((g, stopped)) = self.world.spawning.get_mut(&id)
            && *g == generation
        {
            *stopped = true;
        }
        if let Some(tree) = self.world.trees.get_mut(&id)
            && tree.generation == generation
        {
            if kill {
                tree.killed = true;
            } else {
                tree.stopped = true;
            }
        }
    }

    /// Tears the stack down and plays the world until nothing is left to happen; the engine
    /// must then be settled with nothing live.
    fn drain(&mut self) -> Result<(), TestCaseError> {
        self.step(Input::Intent(Intent::Shutdown { grace: None }))?;
        for _ in 0..10_000 {
            let spawn = self
                .world
                .spawning
                .iter()
                .next()
                .map(|(&id, &(g, stopped))| {
                    let report = if stopped {
                        Report::Cancelled
                    } else {
                        Report::Spawned { pids: vec![1] }
                    };
                    Event::Report(id, g, report)
                });
            let exit = self
                .world
                .trees
                .iter()
                .find(|(_, t)| t.stopped || t.killed)
                .map(|(&id, t)| {
                    Event::Report(
                        id,
                        t.generation,
                        Report::Exited {
                            exit: ExitInfo::new(ExitStatus::Signal(15)),
                        },
                    )
                });
            let next = exit
                .or(spawn)
                .or_else(|| (!self.world.timers.is_empty()).then_some(Event::Timer));
            let Some(event) = next else {
                break;
            };
            self.apply(event)?;
        }
        prop_assert!(
            self.engine.settled(),
            "the teardown did not settle: {:?}",
            self.engine
                .services()
                .iter()
                .map(|s| s.phase.clone())
                .collect::<Vec<_>>()
        );
        prop_assert!(!self.world.any_live(), "left live: {:?}", self.world);
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 1000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_graphs_and_event_orders_keep_the_engine_s_invariants(
        seeds in prop::collection::vec(any::<u64>(), 1..7),
        unselected in any::<u8>(),
        choices in prop::collection::vec(any::<u32>(), 0..120),
    ) {
        let plan = plan_from(&seeds);
        let selected: Vec<bool> = (0..seeds.len()).map(|i| unselected >> i & 1 == 0 || i == 0).collect();
        let mut h = Harness::new(plan, &selected);
        h.start()?;
        for choice in choices {
            let event = h.choose(choice);
            h.apply(event)?;
        }
        h.drain()?;
    }
}

/// Found by the property above: a spawn that fails while a restart's stop is on its way left
/// the stop's reason behind, so the next run of a `restart: no` one-shot was restarted when
/// it exited.
#[test]
fn a_spawn_that_fails_during_a_stop_leaves_nothing_of_the_stop_behind() {
    let p = plan(vec![service("once", &[])]);
    let mut e = engine(&p);
    let now = Instant::now();
    e.start(now);
    e.step(restart(0, None), now);
    assert_eq!(e.service(0).phase, Phase::Stopping);
    let failed = report(
        &e,
        0,
        Report::SpawnFailed {
            error: "no such file".into(),
        },
    );
    e.step(failed, now);
    assert!(matches!(e.service(0).phase, Phase::Failed(_)));
    assert_eq!(e.service(0).stop_reason, None);
    assert_eq!(e.service(0).stopping, None);
    e.step(Input::Intent(Intent::Start { service: 0 }), now);
    spawned(&mut e, 0, now);
    exited(&mut e, 0, 0, now);
    assert!(
        matches!(e.service(0).phase, Phase::Exited(_)),
        "a `restart: no` service ran again: {:?}",
        e.service(0).phase
    );
}
