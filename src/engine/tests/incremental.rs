//! The incremental reconcile against the walk it replaced: random stacks, random (but
//! protocol-respecting) supervisor reports, timers and intents, fed to two engines — one that
//! looks only at the services a change affects, one that walks every service until nothing
//! changes (`walk_all`). Every step must give the same effects in the same order and leave the
//! same states; the engine's indexes and counts must agree with walks of the plan and every
//! service; the incremental snapshot must equal one built afresh.

use proptest::prelude::*;

use super::*;
use crate::engine::snapshot::{Snapshot, Snapshots};
use crate::plan::{ExitRules, ProbeSpec};
use crate::vocab::ProbeCheck;

/// One service of a generated stack: its dependencies are on services earlier in the start
/// order (by position), which the test maps to ids through a permutation.
#[derive(Debug, Clone)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "independent random facts about one service"
)]
struct Gen {
    /// (position of the dependency, condition, required, restart)
    deps: Vec<(usize, Condition, bool, bool)>,
    policy: RestartPolicy,
    max: u32,
    ready: bool,
    timeout: bool,
    on_failure: bool,
    on_skipped: bool,
    exit_on_end: bool,
    selected: bool,
}

fn condition() -> impl Strategy<Value = Condition> {
    prop_oneof![
        Just(Condition::Started),
        Just(Condition::Healthy),
        Just(Condition::Completed),
        Just(Condition::CompletedSuccessfully),
    ]
}

fn gen_service(position: usize) -> impl Strategy<Value = Gen> {
    let deps = if position == 0 {
        Just(Vec::new()).boxed()
    } else {
        proptest::collection::vec(
            (0..position, condition(), any::<bool>(), any::<bool>()),
            0..3,
        )
        .boxed()
    };
    (
        deps,
        prop_oneof![
            Just(RestartPolicy::No),
            Just(RestartPolicy::OnFailure),
            Just(RestartPolicy::Always)
        ],
        prop_oneof![Just(2u32), Just(u32::MAX)],
        any::<bool>(),
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.15),
        prop::bool::weighted(0.15),
        prop::bool::weighted(0.1),
        prop::bool::weighted(0.9),
    )
        .prop_map(
            |(deps, policy, max, ready, timeout, on_failure, on_skipped, exit_on_end, selected)| {
                let mut deps = deps;
                deps.sort_by_key(|d| d.0);
                deps.dedup_by_key(|d| d.0);
                Gen {
                    deps,
                    policy,
                    max,
                    ready,
                    timeout,
                    on_failure,
                    on_skipped,
                    exit_on_end,
                    selected,
                }
            },
        )
}

fn stack() -> impl Strategy<Value = (Vec<Gen>, Vec<usize>, bool)> {
    (1usize..9)
        .prop_flat_map(|n| {
            let services: Vec<_> = (0..n).map(gen_service).collect();
            let ids = Just((0..n).collect::<Vec<usize>>()).prop_shuffle();
            (services, ids, any::<bool>())
        })
        .boxed()
}

/// The plan of a generated stack: position `p` in the start order is service `ids[p]`.
fn build(gens: &[Gen], ids: &[usize], pc_rules: bool) -> (Arc<Plan>, Vec<bool>) {
    let n = gens.len();
    let mut specs: Vec<Option<ServiceSpec>> = vec![None; n];
    let mut selected = vec![false; n];
    for (position, g) in gens.iter().enumerate() {
        let id = ids[position];
        let deps: Vec<(ServiceId, Condition)> =
            g.deps.iter().map(|&(p, c, _, _)| (ids[p], c)).collect();
        let mut s = service(&format!("s{id}"), &deps);
        for (dep, &(_, _, required, restart)) in s.depends_on.iter_mut().zip(&g.deps) {
            dep.required = required;
            dep.restart = restart;
        }
        s.restart.policy = g.policy;
        s.restart.max = g.max;
        s.restart.backoff_initial = Duration::from_millis(100);
        s.restart.backoff_max = Duration::from_millis(800);
        s.ready = g.ready.then(|| ProbeSpec {
            check: ProbeCheck::Exec(CommandSpec::Shell("true".into())),
            initial_delay: Duration::ZERO,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            retries: 1,
            deadline: None,
        });
        s.timeout = g.timeout.then(|| Duration::from_secs(5));
        s.ends_stack.on_failure = g.on_failure;
        s.ends_stack.on_skipped = g.on_skipped;
        s.exit_on_end = g.exit_on_end;
        specs[id] = Some(s);
        selected[id] = g.selected;
    }
    let plan = Plan {
        name: "t".into(),
        config_path: PathBuf::from("/t/pk.yaml"),
        files: vec![PathBuf::from("/t/pk.yaml")],
        base_dir: PathBuf::from("/t"),
        services: specs.into_iter().map(Option::unwrap).collect(),
        exit_rules: if pc_rules {
            ExitRules::ProcessCompose
        } else {
            ExitRules::Pk
        },
        order: ids.to_vec(),
        env_cmds: Vec::new(),
        stack_log: None,
    };
    (Arc::new(plan), selected)
}

/// Where one generation's supervisor is, as the runtime would see it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Sup {
    /// Spawn asked for; nothing reported yet.
    Queued {
        stopped: bool,
    },
    Running,
    Done,
}

/// What the supervisors and timers of a run have outstanding, learnt from the effects.
#[derive(Debug, Default)]
struct World {
    /// Per service: (generation, state) of its latest supervisor.
    sups: Vec<Option<(u64, Sup)>>,
    /// Armed timers not fired yet: (service, epoch).
    timers: Vec<(ServiceId, u64)>,
}

impl World {
    fn learn(&mut self, fx: &[Effect]) {
        for effect in fx {
            match *effect {
                Effect::Spawn {
                    service,
                    generation,
                } => self.sups[service] = Some((generation, Sup::Queued { stopped: false })),
                Effect::Stop {
                    service,
                    generation,
                    ..
                }
                | Effect::Kill {
                    service,
                    generation,
                } => {
                    if let Some((g, Sup::Queued { stopped })) = &mut self.sups[service]
                        && *g == generation
                    {
                        *stopped = true;
                    }
                }
                Effect::ArmTimer { service, epoch, .. } => self.timers.push((service, epoch)),
                Effect::Signal { .. } | Effect::Notice { .. } => {}
            }
        }
    }
}

/// One thing that happens, picked by numbers the world turns into a valid input.
#[derive(Debug, Clone)]
enum Op {
    /// The supervisor of service `.0 % n` reports; `.1` picks which report.
    Report(usize, u8),
    /// The armed timer `.0 % pending` fires.
    Timer(usize),
    Intent(u8, usize, bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (any::<usize>(), any::<u8>()).prop_map(|(s, k)| Op::Report(s, k)),
        2 => any::<usize>().prop_map(Op::Timer),
        1 => (any::<u8>(), any::<usize>(), any::<bool>()).prop_map(|(k, s, b)| Op::Intent(k, s, b)),
    ]
}

fn exit(code: i32) -> ExitInfo {
    if code >= 128 {
        ExitInfo::new(ExitStatus::Signal(code - 128))
    } else {
        ExitInfo::new(ExitStatus::Code(code))
    }
}

/// The input `op` means in `world`, or None when it means nothing now.
fn input(op: &Op, world: &mut World, n: usize) -> Option<Input> {
    match *op {
        Op::Report(s, k) => {
            let service = s % n;
            let (generation, sup) = world.sups[service]?;
            let (report, next) = match sup {
                Sup::Queued { stopped: true } if k % 2 == 0 => (Report::Cancelled, Sup::Done),
                Sup::Queued { .. } if k % 7 == 1 => (
                    Report::SpawnFailed {
                        error: "no such file".into(),
                    },
                    Sup::Done,
                ),
                Sup::Queued { .. } => (Report::Spawned { pids: vec![100] }, Sup::Running),
                Sup::Running => match k % 6 {
                    0 => (Report::Ready, Sup::Running),
                    1 => (
                        Report::NotReady {
                            reason: "not ready".into(),
                        },
                        Sup::Running,
                    ),
                    2 => (
                        Report::Unhealthy {
                            reason: "unhealthy".into(),
                        },
                        Sup::Running,
                    ),
                    3 => (Report::Exited { exit: exit(0) }, Sup::Done),
                    4 => (Report::Exited { exit: exit(1) }, Sup::Done),
                    _ => (Report::Exited { exit: exit(143) }, Sup::Done),
                },
                Sup::Done => return None,
            };
            world.sups[service] = Some((generation, next));
            Some(Input::Report {
                service,
                generation,
                report,
            })
        }
        Op::Timer(k) => {
            if world.timers.is_empty() {
                return None;
            }
            let (service, epoch) = world.timers.remove(k % world.timers.len());
            Some(Input::Timer { service, epoch })
        }
        Op::Intent(k, s, b) => {
            let service = s % n;
            let intent = match k % 8 {
                0 => Intent::Shutdown {
                    grace: b.then_some(Duration::ZERO),
                },
                1 => Intent::ForceKill,
                2 => Intent::Stop { service },
                3 => Intent::Start { service },
                4 => Intent::Restart {
                    service,
                    cause: None,
                    dependents: b,
                },
                5 => Intent::Restart {
                    service,
                    cause: Some("a file changed".into()),
                    dependents: b,
                },
                6 => Intent::Signal {
                    service,
                    signal: StopSignal::TERM,
                    cause: None,
                },
                _ => return None,
            };
            Some(Input::Intent(intent))
        }
    }
}

/// A snapshot without its wall-clock times (those of an unchanged service are from when it
/// last changed, so they may differ by the clock's progress).
fn timeless(snap: &Snapshot) -> Snapshot {
    let mut snap = snap.clone();
    for s in &mut snap.services {
        let s = Arc::make_mut(s);
        s.started_at_ms = s.started_at_ms.map(|_| 0);
        s.restart_at_ms = s.restart_at_ms.map(|_| 0);
        s.kill_at_ms = s.kill_at_ms.map(|_| 0);
        s.timeout_at_ms = s.timeout_at_ms.map(|_| 0);
    }
    snap
}

fn check_same(a: &Engine, b: &Engine) {
    for id in 0..a.services().len() {
        let (x, y) = (a.service(id), b.service(id));
        assert_eq!(x.phase, y.phase, "phase of {id}");
        assert_eq!(
            (x.generation, x.epoch, x.stop_wanted, &x.waiting_for),
            (y.generation, y.epoch, y.stop_wanted, &y.waiting_for),
            "state of {id}"
        );
    }
    assert_eq!(a.settled(), b.settled());
    assert_eq!(a.exit_code(), b.exit_code());
    assert_eq!(a.shutting_down(), b.shutting_down());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn the_incremental_reconcile_does_what_walking_every_service_did(
        (gens, ids, pc_rules) in stack(),
        ops in proptest::collection::vec(op(), 0..60),
    ) {
        let (plan, selected) = build(&gens, &ids, pc_rules);
        let n = gens.len();
        let mut fast = Engine::new(Arc::clone(&plan), &selected, 7);
        let mut walk = Engine::new(Arc::clone(&plan), &selected, 7);
        walk.walk_all = true;
        let mut snapshots = Snapshots::default();
        let mut world = World { sups: vec![None; n], timers: Vec::new() };
        let mut now = Instant::now();
        let fx = fast.start(now);
        prop_assert_eq!(&fx, &walk.start(now));
        world.learn(&fx);
        check_same(&fast, &walk);
        fast.check_against_walks();
        for op in &ops {
            now += Duration::from_millis(150);
            let Some(input) = input(op, &mut world, n) else { continue };
            let again = match &input {
                Input::Intent(i) => Input::Intent(i.clone()),
                Input::Report { service, generation, report } => Input::Report {
                    service: *service,
                    generation: *generation,
                    report: report.clone(),
                },
                Input::Timer { service, epoch } => Input::Timer { service: *service, epoch: *epoch },
                Input::Barrier(_) => unreachable!("not generated"),
            };
            let fx = fast.step(input, now);
            prop_assert_eq!(&fx, &walk.step(again, now), "after {:?}", op);
            world.learn(&fx);
            check_same(&fast, &walk);
            fast.check_against_walks();
            let built = snapshots.next(&mut fast, now);
            prop_assert_eq!(timeless(&built), timeless(&Snapshot::of(&fast, now)));
        }
    }
}
