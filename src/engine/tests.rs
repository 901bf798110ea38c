//! The state machine without processes: inputs in, effects out, time passed in by hand.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::state::Phase;
use super::step::{Effect, Engine, Input, Intent};
use crate::plan::{Dependency, Plan, RestartSpec, RunSpec, ServiceSpec, ShutdownSpec};
use crate::supervisor::Report;
use crate::vocab::{CommandSpec, Condition, RestartPolicy, ServiceId, StopSignal};
use crate::vocab::{ExitInfo, ExitStatus};

fn service(name: &str, deps: &[(ServiceId, Condition)]) -> ServiceSpec {
    ServiceSpec {
        name: name.into(),
        group: name.into(),
        replica: 0,
        replicas: 1,
        port: None,
        exit_on_end: false,
        run: RunSpec::Command(CommandSpec::Shell("true".into())),
        working_dir: PathBuf::from("/"),
        env: BTreeMap::new(),
        env_source: crate::plan::EnvSource::default(),
        depends_on: deps
            .iter()
            .map(|&(service, condition)| Dependency {
                service,
                condition,
                required: true,
                restart: false,
            })
            .collect(),
        restart: RestartSpec::default(),
        shutdown: ShutdownSpec {
            signal: StopSignal::TERM,
            grace: Duration::from_secs(10),
            command: None,
        },
        timeout: None,
        tty: false,
        disabled: false,
        log_file: None,
        ready: None,
        alive: None,
        watch: None,
        success_codes: Vec::new(),
        namespaces: Vec::new(),
        ends_stack: crate::plan::EndsStack::default(),
        template: None,
    }
}

/// Plan whose start order is simply the declaration order (tests declare deps first).
fn plan(services: Vec<ServiceSpec>) -> Arc<Plan> {
    let order = (0..services.len()).collect();
    Arc::new(Plan {
        name: "t".into(),
        config_path: PathBuf::from("/t/pk.yaml"),
        files: vec![PathBuf::from("/t/pk.yaml")],
        base_dir: PathBuf::from("/t"),
        services,
        exit_rules: crate::plan::ExitRules::Pk,
        order,
        env_cmds: Vec::new(),
        stack_log: None,
    })
}

fn engine(plan: &Arc<Plan>) -> Engine {
    let all = vec![true; plan.services.len()];
    Engine::new(Arc::clone(plan), &all, 42)
}

fn spawns(fx: &[Effect]) -> Vec<ServiceId> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Spawn { service, .. } => Some(*service),
            _ => None,
        })
        .collect()
}

fn stops(fx: &[Effect]) -> Vec<ServiceId> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Stop { service, .. } => Some(*service),
            _ => None,
        })
        .collect()
}

fn notices(fx: &[Effect]) -> Vec<String> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Notice { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect()
}

fn report(e: &Engine, service: ServiceId, report: Report) -> Input {
    Input::Report {
        service,
        generation: e.service(service).generation,
        report,
    }
}

fn spawned(e: &mut Engine, id: ServiceId, now: Instant) -> Vec<Effect> {
    let input = report(e, id, Report::Spawned { pids: vec![100] });
    e.step(input, now)
}

fn exited(e: &mut Engine, id: ServiceId, code: i32, now: Instant) -> Vec<Effect> {
    let input = report(
        e,
        id,
        Report::Exited {
            exit: ExitInfo::new(ExitStatus::Code(code)),
        },
    );
    e.step(input, now)
}

#[test]
fn independent_services_start_together_and_dependents_wait() {
    let p = plan(vec![
        service("db", &[]),
        service("cache", &[]),
        service("api", &[(0, Condition::Started), (1, Condition::Started)]),
    ]);
    let mut e = engine(&p);
    let now = Instant::now();
    let fx = e.start(now);
    assert_eq!(spawns(&fx), vec![0, 1]);
    assert!(notices(&fx).contains(&"waiting for db (started), cache (started)".to_string()));
    assert!(spawns(&spawned(&mut e, 0, now)).is_empty());
    assert_eq!(spawns(&spawned(&mut e, 1, now)), vec![2]);
}

#[test]
fn completed_successfully_gates_and_failure_skips_with_reason() {
    let p = plan(vec![
        service("migrate", &[]),
        service("api", &[(0, Condition::CompletedSuccessfully)]),
        service("web", &[(1, Condition::Started)]),
    ]);
    let now = Instant::now();

    let mut ok = engine(&p);
    ok.start(now);
    assert!(
        spawns(&spawned(&mut ok, 0, now)).is_empty(),
        "running is not completed"
    );
    assert_eq!(spawns(&exited(&mut ok, 0, 0, now)), vec![1]);

    let mut bad = engine(&p);
    bad.start(now);
    spawned(&mut bad, 0, now);
    let fx = exited(&mut bad, 0, 3, now);
    assert!(spawns(&fx).is_empty());
    assert_eq!(
        bad.service(1).phase,
        Phase::Skipped("migrate exited 3".into())
    );
    assert_eq!(
        bad.service(2).phase,
        Phase::Skipped("api was skipped".into())
    );
    assert!(notices(&fx).contains(&"skipped: migrate exited 3".to_string()));
    assert!(bad.settled());
    assert_eq!(bad.exit_code(), 1);
}

#[test]
fn teardown_stops_dependents_first_and_same_level_together() {
    let p = plan(vec![
        service("db", &[]),
        service("api", &[(0, Condition::Started)]),
        service("worker", &[(0, Condition::Started)]),
        service("web", &[(1, Condition::Started)]),
    ]);
    let mut e = engine(&p);
    let now = Instant::now();
    e.start(now);
    spawned(&mut e, 0, now);
    spawned(&mut e, 1, now);
    spawned(&mut e, 2, now);
    spawned(&mut e, 3, now);
    let fx = e.step(Input::Intent(Intent::Shutdown { grace: None }), now);
    assert_eq!(
        stops(&fx),
        vec![2, 3],
        "leaves first: worker and web together"
    );
    let fx = exited(&mut e, 3, 143, now);
    assert_eq!(stops(&fx), vec![1], "api once web is gone");
    assert!(
        stops(&exited(&mut e, 2, 143, now)).is_empty(),
        "db still has api"
    );
    assert_eq!(stops(&exited(&mut e, 1, 143, now)), vec![0]);
    exited(&mut e, 0, 0, now);
    assert!(e.settled());
    assert_eq!(e.exit_code(), 0, "stopped on request is success");
}

#[test]
fn grace_override_applies_to_every_stop() {
    let p = plan(vec![service("db", &[])]);
    let mut e = engine(&p);
    let now = Instant::now();
    e.start(now);
    spawned(&mut e, 0, now);
    let fx = e.step(
        Input::Intent(Intent::Shutdown {
            grace: Some(Duration::from_millis(500)),
        }),
        now,
    );
    assert!(fx.contains(&Effect::Stop {
        service: 0,
        generation: 1,
        signal: StopSignal::TERM,
        grace: Duration::from_millis(500),
    }));
    assert!(notices(&fx).contains(&"stopping (TERM, grace 500ms)".to_string()));
}

#[test]
fn force_kill_kills_every_live_tree_at_once() {
    let p = plan(vec![
        service("db", &[]),
        service("api", &[(0, Condition::Started)]),
    ]);
    let mut e = engine(&p);
    let now = Instant::now();
    e.start(now);
    spawned(&mut e, 0, now);
    spawned(&mut e, 1, now);
    e.step(Input::Intent(Intent::Shutdown { grace: None }), now);
    let fx = e.step(Input::Intent(Intent::ForceKill), now);
    let kills: Vec<_> = fx
        .iter()
        .filter(|e| matches!(e, Effect::Kill { .. }))
        .collect();
    assert_eq!(kills.len(), 2);
}

#[test]
fn pending_services_never_start_once_teardown_began() {
    let p = plan(vec![
        service("migrate", &[]),
        service("api", &[(0, Condition::CompletedSuccessfully)]),
    ]);
    let mut e = engine(&p);
    let now = Instant::now();
    e.start(now);
    spawned(&mut e, 0, now);
    e.step(Input::Intent(Intent::Shutdown { grace: None }), now);
    assert_eq!(e.service(1).phase, Phase::Stopped);
    let fx = exited(&mut e, 0, 0, now);
    assert!(spawns(&fx).is_empty());
    assert!(e.settled());
}

fn flaky(max: u32) -> Arc<Plan> {
    let mut s = service("worker", &[]);
    s.restart = RestartSpec {
        policy: RestartPolicy::OnFailure,
        max,
        window: Duration::from_secs(60),
        backoff_initial: Duration::from_millis(100),
        backoff_max: Duration::from_secs(1),
    };
    plan(vec![s])
}

fn timer_after(fx: &[Effect]) -> Option<(u64, Duration)> {
    fx.iter().find_map(|e| match e {
        Effect::ArmTimer { epoch, after, .. } => Some((*epoch, *after)),
        _ => None,
    })
}

/// Service 0 runs, exits with `code`, and its restart timer fires; returns the backoff delay
/// and asserts the restart was spawned.
fn crash_and_restart(e: &mut Engine, code: i32, now: &mut Instant) -> Duration {
    spawned(e, 0, *now);
    let fx = exited(e, 0, code, *now);
    let (epoch, after) = timer_after(&fx).expect("a restart timer");
    *now += after;
    let fx = e.step(Input::Timer { service: 0, epoch }, *now);
    assert_eq!(spawns(&fx), vec![0]);
    after
}

#[test]
fn restarts_back_off_exponentially_with_jitter_up_to_the_cap() {
    let p = flaky(100);
    let mut e = engine(&p);
    let mut now = Instant::now();
    e.start(now);
    let delays: Vec<Duration> = (0..6)
        .map(|_| crash_and_restart(&mut e, 1, &mut now))
        .collect();
    for (i, d) in delays.iter().enumerate() {
        let base = Duration::from_millis(100 * (1 << i)).min(Duration::from_secs(1));
        assert!(
            *d >= base.mul_f64(0.79) && *d <= base.mul_f64(1.21).min(Duration::from_secs(1)),
            "delay {i}: {d:?} vs base {base:?}"
        );
    }
    assert_eq!(
        *delays.last().unwrap(),
        delays[5].min(Duration::from_secs(1))
    );
    assert_eq!(e.service(0).restarts, 6);
}

#[test]
fn backoff_resets_after_the_service_stayed_up() {
    let p = flaky(100);
    let mut e = engine(&p);
    let mut now = Instant::now();
    e.start(now);
    for _ in 0..4 {
        crash_and_restart(&mut e, 1, &mut now);
    }
    spawned(&mut e, 0, now);
    now += super::step::STABLE_AFTER;
    let (_, after) = timer_after(&exited(&mut e, 0, 1, now)).unwrap();
    assert!(
        after <= Duration::from_millis(121),
        "reset to the initial delay: {after:?}"
    );
}

#[test]
fn restart_limit_ends_in_crashed() {
    let p = flaky(2);
    let mut e = engine(&p);
    let mut now = Instant::now();
    e.start(now);
    for _ in 0..2 {
        crash_and_restart(&mut e, 7, &mut now);
    }
    spawned(&mut e, 0, now);
    let fx = exited(&mut e, 0, 7, now);
    assert!(timer_after(&fx).is_none());
    assert!(matches!(e.service(0).phase, Phase::Crashed(_)));
    assert!(
        notices(&fx)[0].contains("crashed: 2 restarts within 1m"),
        "{:?}",
        notices(&fx)
    );
    assert!(e.settled());
    assert_eq!(e.exit_code(), 1);
}

#[test]
fn stale_timers_and_reports_are_ignored() {
    let p = flaky(100);
    let mut e = engine(&p);
    let now = Instant::now();
    e.start(now);
    spawned(&mut e, 0, now);
    let (epoch, _) = timer_after(&exited(&mut e, 0, 1, now)).unwrap();
    e.step(Input::Intent(Intent::Shutdown { grace: None }), now);
    let fx = e.step(Input::Timer { service: 0, epoch }, now);
    assert!(spawns(&fx).is_empty());
    let stale = Input::Report {
        service: 0,
        generation: 0,
        report: Report::Spawned { pids: vec![1] },
    };
    assert!(e.step(stale, now).is_empty());
    assert!(e.settled());
}

#[test]
fn always_restarts_even_after_success_and_no_never_does() {
    let mut s = service("tick", &[]);
    s.restart.policy = RestartPolicy::Always;
    let p = plan(vec![s, service("once", &[])]);
    let mut e = engine(&p);
    let now = Instant::now();
    e.start(now);
    spawned(&mut e, 0, now);
    spawned(&mut e, 1, now);
    assert!(timer_after(&exited(&mut e, 0, 0, now)).is_some());
    let fx = exited(&mut e, 1, 0, now);
    assert!(timer_after(&fx).is_none());
    assert_eq!(notices(&fx), vec!["completed".to_string()]);
}

#[test]
fn spawn_failure_fails_the_service_and_skips_dependents() {
    let p = plan(vec![
        service("db", &[]),
        service("api", &[(0, Condition::Started)]),
    ]);
    let mut e = engine(&p);
    let now = Instant::now();
    e.start(now);
    let input = report(
        &e,
        0,
        Report::SpawnFailed {
            error: "nope: No such file".into(),
        },
    );
    e.step(input, now);
    assert!(matches!(e.service(0).phase, Phase::Failed(_)));
    assert!(matches!(&e.service(1).phase, Phase::Skipped(r) if r.starts_with("db failed")));
    assert_eq!(e.exit_code(), 1);
}

fn with_ready(mut s: ServiceSpec) -> ServiceSpec {
    s.ready = Some(crate::plan::ProbeSpec {
        check: crate::vocab::ProbeCheck::Tcp {
            address: "127.0.0.1:1".into(),
        },
        initial_delay: Duration::ZERO,
        interval: Duration::from_secs(1),
        timeout: Duration::from_secs(1),
        retries: 3,
        deadline: Some(Duration::from_secs(5)),
    });
    s
}

#[test]
fn healthy_waits_for_the_ready_probe_not_the_spawn() {
    let p = plan(vec![
        with_ready(service("db", &[])),
        service("api", &[(0, Condition::Healthy)]),
    ]);
    let mut e = engine(&p);
    let now = Instant::now();
    e.start(now);
    assert!(spawns(&spawned(&mut e, 0, now)).is_empty());
    assert_eq!(e.service(0).phase, Phase::Starting);
    let input = report(&e, 0, Report::Ready);
    let fx = e.step(input, now);
    assert_eq!(e.service(0).phase, Phase::Healthy);
    assert_eq!(spawns(&fx), vec![1]);
}

#[test]
fn ready_deadline_fails_the_service_stops_its_tree_and_skips_dependents() {
    let p = plan(vec![
        with_ready(service("db", &[])),
        service("api", &[(0, Condition::Healthy)]),
    ]);
    let mut e = engine(&p);
    let now = Instant::now();
    e.start(now);
    spawned(&mut e, 0, now);
    let reason = "db not ready after 5s: tcp 127.0.0.1:1: refused".to_string();
    let input = report(
        &e,
        0,
        Report::NotReady {
            reason: reason.clone(),
        },
    );
    let fx = e.step(input, now);
    assert_eq!(stops(&fx), vec![0], "the tree is stopped");
    assert!(!e.settled(), "not settled until the tree drained");
    exited(&mut e, 0, 143, now);
    assert_eq!(e.service(0).phase, Phase::Failed(reason.clone()));
    assert_eq!(
        e.service(1).phase,
        Phase::Skipped(format!("db failed ({reason})"))
    );
    assert!(e.settled());
}

#[test]
fn alive_failure_restarts_per_policy_and_cascades_to_restart_true_dependents() {
    let mut db = service("db", &[]);
    db.restart.policy = RestartPolicy::OnFailure;
    let mut api = service("api", &[(0, Condition::Started)]);
    api.depends_on[0].restart = true;
    let web = service("web", &[(0, Condition::Started)]);
    let p = plan(vec![db, api, web]);
    let mut e = engine(&p);
    let now = Instant::now();
    e.start(now);
    spawned(&mut e, 0, now);
    spawned(&mut e, 1, now);
    spawned(&mut e, 2, now);
    let input = report(
        &e,
        0,
        Report::Unhealthy {
            reason: "alive probe failed 3×: http 503".into(),
        },
    );
    let fx = e.step(input, now);
    assert_eq!(stops(&fx), vec![0]);
    let fx = exited(&mut e, 0, 143, now);
    let (epoch, after) = timer_after(&fx).expect("restart per policy");
    assert!(notices(&fx)[0].starts_with("alive probe failed 3×: http 503, restarting in"));
    assert_eq!(
        stops(&fx),
        vec![1],
        "api (restart: true) is restarted, web is not"
    );
    exited(&mut e, 1, 143, now);
    assert_eq!(e.service(1).phase, Phase::Pending);
    let fx = e.step(Input::Timer { service: 0, epoch }, now + after);
    assert_eq!(spawns(&fx), vec![0]);
    assert_eq!(
        spawns(&spawned(&mut e, 0, now + after)),
        vec![1],
        "api after db"
    );
}

#[test]
fn required_false_dependency_only_warns() {
    let mut p = vec![
        service("db", &[]),
        service("api", &[(0, Condition::CompletedSuccessfully)]),
    ];
    p[1].depends_on[0].required = false;
    let p = plan(p);
    let mut e = engine(&p);
    let now = Instant::now();
    e.start(now);
    spawned(&mut e, 0, now);
    let fx = exited(&mut e, 0, 1, now);
    assert_eq!(spawns(&fx), vec![1]);
    assert!(notices(&fx).iter().any(|n| n.contains("(required: false)")));
}

#[test]
fn stop_intent_stops_dependents_first_and_holds_the_stack_open() {
    let p = plan(vec![
        service("db", &[]),
        service("api", &[(0, Condition::Started)]),
    ]);
    let mut e = engine(&p);
    let now = Instant::now();
    e.start(now);
    spawned(&mut e, 0, now);
    spawned(&mut e, 1, now);
    let fx = e.step(Input::Intent(Intent::Stop { service: 0 }), now);
    assert_eq!(stops(&fx), vec![1], "api before db");
    assert_eq!(stops(&exited(&mut e, 1, 143, now)), vec![0]);
    exited(&mut e, 0, 143, now);
    assert_eq!(e.service(0).phase, Phase::Stopped);
    assert!(!e.settled(), "a held service may be started again");
    let fx = e.step(Input::Intent(Intent::Start { service: 1 }), now);
    assert_eq!(spawns(&fx), vec![0], "start pulls in the dependency first");
    assert_eq!(spawns(&spawned(&mut e, 0, now)), vec![1]);
}

#[test]
fn restart_intent_stops_then_starts_and_resets_backoff_when_manual() {
    let p = flaky(100);
    let mut e = engine(&p);
    let now = Instant::now();
    e.start(now);
    spawned(&mut e, 0, now);
    let fx = e.step(
        Input::Intent(Intent::Restart {
            service: 0,
            cause: Some("src/main.rs changed".into()),
            dependents: false,
        }),
        now,
    );
    assert_eq!(stops(&fx), vec![0]);
    assert_eq!(notices(&fx)[0], "restarting: src/main.rs changed");
    let fx = exited(&mut e, 0, 143, now);
    assert_eq!(spawns(&fx), vec![0], "back up at once, no backoff");
    assert_eq!(
        e.service(0).restart_times.len(),
        0,
        "not counted toward the limit"
    );
}

#[test]
fn restart_with_dependents_restarts_them_after_the_service() {
    let p = plan(vec![
        service("db", &[]),
        service("api", &[(0, Condition::Started)]),
    ]);
    let mut e = engine(&p);
    let now = Instant::now();
    e.start(now);
    spawned(&mut e, 0, now);
    spawned(&mut e, 1, now);
    let fx = e.step(
        Input::Intent(Intent::Restart {
            service: 0,
            cause: None,
            dependents: true,
        }),
        now,
    );
    assert_eq!(stops(&fx), vec![0, 1]);
    exited(&mut e, 1, 143, now);
    let fx = exited(&mut e, 0, 143, now);
    assert_eq!(spawns(&fx), vec![0], "api waits for db again");
    assert_eq!(spawns(&spawned(&mut e, 0, now)), vec![1]);
}

#[test]
fn teardown_during_a_restart_ends_stopped() {
    let p = plan(vec![service("db", &[])]);
    let mut e = engine(&p);
    let now = Instant::now();
    e.start(now);
    spawned(&mut e, 0, now);
    e.step(
        Input::Intent(Intent::Restart {
            service: 0,
            cause: None,
            dependents: false,
        }),
        now,
    );
    e.step(Input::Intent(Intent::Shutdown { grace: None }), now);
    let fx = exited(&mut e, 0, 143, now);
    assert!(spawns(&fx).is_empty());
    assert_eq!(e.service(0).phase, Phase::Stopped);
    assert!(e.settled());
}

#[test]
fn signal_intent_signals_a_live_tree_only() {
    let p = plan(vec![service("web", &[])]);
    let mut e = engine(&p);
    let now = Instant::now();
    let hup = StopSignal {
        number: 1,
        name: "HUP",
    };
    let intent = || {
        Input::Intent(Intent::Signal {
            service: 0,
            signal: hup,
            cause: Some("conf/app.toml changed".into()),
        })
    };
    e.start(now);
    spawned(&mut e, 0, now);
    let fx = e.step(intent(), now);
    assert_eq!(
        fx,
        vec![
            Effect::Notice {
                service: Some(0),
                text: "sending HUP: conf/app.toml changed".into()
            },
            Effect::Signal {
                service: 0,
                generation: e.service(0).generation,
                signal: hup
            }
        ]
    );
    assert_eq!(e.service(0).phase, Phase::Running, "nothing else changes");
    exited(&mut e, 0, 0, now);
    assert!(e.step(intent(), now).is_empty(), "no tree to signal");
}

#[test]
fn restarts_requested_while_stopping_for_a_restart_are_merged() {
    let p = plan(vec![service("api", &[])]);
    let mut e = engine(&p);
    let now = Instant::now();
    let restart = || {
        Input::Intent(Intent::Restart {
            service: 0,
            cause: Some("src/a.rs changed".into()),
            dependents: false,
        })
    };
    e.start(now);
    spawned(&mut e, 0, now);
    assert_eq!(stops(&e.step(restart(), now)), vec![0]);
    for _ in 0..3 {
        assert!(
            e.step(restart(), now).is_empty(),
            "merged into the stop under way"
        );
    }
    assert_eq!(spawns(&exited(&mut e, 0, 143, now)), vec![0], "one start");
    spawned(&mut e, 0, now);
    assert_eq!(
        stops(&e.step(restart(), now)),
        vec![0],
        "a later change restarts again"
    );
}

fn ends_the_stack(mut s: ServiceSpec) -> ServiceSpec {
    s.exit_on_end = true;
    s
}

#[test]
fn exit_on_end_stops_the_stack_with_that_service_s_code() {
    let p = plan(vec![
        ends_the_stack(service("web", &[])),
        ends_the_stack(service("worker", &[])),
    ]);
    let mut e = engine(&p);
    let now = Instant::now();
    e.start(now);
    spawned(&mut e, 0, now);
    spawned(&mut e, 1, now);
    let fx = exited(&mut e, 1, 3, now);
    assert_eq!(stops(&fx), vec![0], "the others are stopped");
    assert!(e.shutting_down());
    assert!(
        notices(&fx)
            .iter()
            .any(|n| n.contains("stopping the stack (exit_on_end), pk exits 3")),
        "{:?}",
        notices(&fx)
    );
    exited(&mut e, 0, 143, now);
    assert!(e.settled());
    assert_eq!(
        e.exit_code(),
        3,
        "the code of the service that ended, not 1"
    );
}

#[test]
fn exit_on_end_waits_for_restarts_and_ignores_requested_stops() {
    let mut restarting = ends_the_stack(service("web", &[]));
    restarting.restart.policy = RestartPolicy::Always;
    let p = plan(vec![restarting, ends_the_stack(service("worker", &[]))]);
    let mut e = engine(&p);
    let now = Instant::now();
    e.start(now);
    spawned(&mut e, 0, now);
    spawned(&mut e, 1, now);
    exited(&mut e, 0, 0, now);
    assert!(!e.shutting_down(), "a restart is coming: not the end");
    let fx = e.step(Input::Intent(Intent::Stop { service: 1 }), now);
    assert_eq!(stops(&fx), vec![1]);
    exited(&mut e, 1, 143, now);
    assert!(!e.shutting_down(), "pk stop is not the service ending");
    assert_eq!(e.exit_code(), 0);
}
fn restart(service: ServiceId, cause: Option<&str>) -> Input {
    Input::Intent(Intent::Restart {
        service,
        cause: cause.map(str::to_owned),
        dependents: false,
    })
}

#[test]
fn an_automatic_restart_never_turns_a_stop_into_a_restart() {
    let p = plan(vec![service("api", &[])]);
    let mut e = engine(&p);
    let now = Instant::now();
    e.start(now);
    spawned(&mut e, 0, now);
    e.step(Input::Intent(Intent::Stop { service: 0 }), now);
    assert_eq!(e.service(0).phase, Phase::Stopping);
    // The watcher's restart, decided on a snapshot from before the stop, arrives late.
    let fx = e.step(restart(0, Some("src/main.rs changed")), now);
    assert!(notices(&fx).is_empty(), "{fx:?}");
    let fx = exited(&mut e, 0, 143, now);
    assert!(spawns(&fx).is_empty());
    assert_eq!(e.service(0).phase, Phase::Stopped);
    // Held stopped: a later change does not start it either.
    let fx = e.step(restart(0, Some("src/main.rs changed")), now);
    assert!(spawns(&fx).is_empty());
    assert_eq!(e.service(0).phase, Phase::Stopped);
    // A manual restart still does.
    let fx = e.step(restart(0, None), now);
    assert_eq!(spawns(&fx), vec![0]);
}

fn restart_true_pair() -> Arc<Plan> {
    let mut api = service("api", &[(0, Condition::Started)]);
    api.depends_on[0].restart = true;
    plan(vec![service("db", &[]), api])
}

#[test]
fn restart_true_dependents_follow_a_manual_or_watch_restart() {
    for cause in [None, Some("db/schema.sql changed")] {
        let p = restart_true_pair();
        let mut e = engine(&p);
        let now = Instant::now();
        e.start(now);
        spawned(&mut e, 0, now);
        spawned(&mut e, 1, now);
        let fx = e.step(restart(0, cause), now);
        assert_eq!(stops(&fx), vec![0, 1], "{cause:?}");
        exited(&mut e, 1, 143, now);
        assert_eq!(e.service(1).phase, Phase::Pending);
        // db comes back first; api follows once db meets its condition.
        let fx = exited(&mut e, 0, 143, now);
        assert_eq!(spawns(&fx), vec![0]);
        let fx = spawned(&mut e, 0, now);
        assert_eq!(spawns(&fx), vec![1]);
    }
}

#[test]
fn the_stop_deadline_is_an_engine_timer_that_kills() {
    let p = plan(vec![service("db", &[])]);
    let mut e = engine(&p);
    let now = Instant::now();
    e.start(now);
    spawned(&mut e, 0, now);
    let fx = e.step(Input::Intent(Intent::Stop { service: 0 }), now);
    assert_eq!(stops(&fx), vec![0]);
    let (epoch, after) = timer_after(&fx).expect("a deadline timer");
    assert_eq!(after, Duration::from_secs(10));
    let fx = e.step(Input::Timer { service: 0, epoch }, now + after);
    assert_eq!(
        fx,
        vec![Effect::Kill {
            service: 0,
            generation: 1
        }]
    );
    let fx = exited(&mut e, 0, 137, now + after);
    assert_eq!(notices(&fx), vec!["killed after 10s grace".to_string()]);
    // A deadline of an earlier stop never kills a later run.
    e.step(Input::Intent(Intent::Start { service: 0 }), now);
    spawned(&mut e, 0, now);
    let fx = e.step(Input::Timer { service: 0, epoch }, now + after);
    assert!(fx.is_empty(), "{fx:?}");
}

#[test]
fn a_later_down_grace_shortens_running_stops() {
    let p = plan(vec![service("db", &[])]);
    let mut e = engine(&p);
    let now = Instant::now();
    e.start(now);
    spawned(&mut e, 0, now);
    e.step(Input::Intent(Intent::Shutdown { grace: None }), now);
    let later = now + Duration::from_secs(1);
    let fx = e.step(
        Input::Intent(Intent::Shutdown {
            grace: Some(Duration::ZERO),
        }),
        later,
    );
    let (epoch, after) = timer_after(&fx).expect("a shorter deadline");
    assert_eq!(after, Duration::ZERO);
    let snap = crate::engine::Snapshot::of(&e, later);
    assert!(snap.services[0].kill_at_ms.is_some());
    let fx = e.step(Input::Timer { service: 0, epoch }, later);
    assert!(
        matches!(fx[..], [Effect::Kill { service: 0, .. }]),
        "{fx:?}"
    );
}

#[test]
fn a_stop_that_reaches_the_supervisor_before_the_spawn_ends_stopped() {
    let p = plan(vec![service("db", &[])]);
    let mut e = engine(&p);
    let now = Instant::now();
    e.start(now);
    e.step(Input::Intent(Intent::Shutdown { grace: None }), now);
    let fx = e.step(report(&e, 0, Report::Cancelled), now);
    assert_eq!(notices(&fx), vec!["not started (stopping)".to_string()]);
    assert_eq!(e.service(0).phase, Phase::Stopped);
    assert!(e.settled());
}
// process-compose semantics (success_exit_codes, fixed backoff, unlimited restarts, services
// that end the stack, process-compose's exit-code rules).

#[test]
fn success_codes_count_as_success_everywhere() {
    let mut allowed = service("allowed", &[]);
    allowed.success_codes = vec![130];
    allowed.restart.policy = RestartPolicy::OnFailure;
    let p = plan(vec![
        allowed,
        service("next", &[(0, Condition::CompletedSuccessfully)]),
    ]);
    let mut e = engine(&p);
    let now = Instant::now();
    e.start(now);
    spawned(&mut e, 0, now);
    let fx = exited(&mut e, 0, 130, now);
    assert_eq!(spawns(&fx), vec![1], "no restart; the dependent starts");
    assert_eq!(e.service(0).restarts, 0);
    assert!(matches!(&e.service(0).phase, Phase::Exited(x) if x.success() && x.code() == 130));
}

#[test]
fn fixed_backoff_has_no_jitter_and_unlimited_restarts_keep_no_history() {
    let mut flaky = service("flaky", &[]);
    flaky.restart = RestartSpec {
        policy: RestartPolicy::Always,
        max: u32::MAX,
        window: Duration::from_secs(3600),
        backoff_initial: Duration::from_secs(1),
        backoff_max: Duration::from_secs(1),
    };
    let p = plan(vec![flaky]);
    let mut e = engine(&p);
    let mut now = Instant::now();
    e.start(now);
    for _ in 0..50 {
        spawned(&mut e, 0, now);
        let fx = exited(&mut e, 0, 1, now);
        assert!(
            fx.iter().any(
                |f| matches!(f, Effect::ArmTimer { after, .. } if *after == Duration::from_secs(1))
            ),
            "{fx:?}"
        );
        now += Duration::from_secs(1);
        let epoch = e.service(0).epoch;
        e.step(Input::Timer { service: 0, epoch }, now);
    }
    assert_eq!(e.service(0).restarts, 50);
    assert!(e.service(0).restart_times.is_empty());
}

#[test]
fn a_failure_that_ends_the_stack_tears_down_and_sets_the_exit_code() {
    let mut failer = service("failer", &[]);
    failer.ends_stack.on_failure = true;
    let mut p = (*plan(vec![service("db", &[]), failer])).clone();
    p.exit_rules = crate::plan::ExitRules::ProcessCompose;
    let p = Arc::new(p);
    let mut e = engine(&p);
    let now = Instant::now();
    e.start(now);
    spawned(&mut e, 0, now);
    spawned(&mut e, 1, now);
    let fx = exited(&mut e, 1, 42, now);
    assert!(e.shutting_down());
    assert_eq!(stops(&fx), vec![0]);
    exited(&mut e, 0, 143, now);
    assert!(e.settled());
    assert_eq!(e.exit_code(), 42);
}

#[test]
fn process_compose_rules_exit_zero_unless_a_service_ends_the_stack() {
    let mut p = (*plan(vec![
        service("broken", &[]),
        service("skipped", &[(0, Condition::CompletedSuccessfully)]),
    ]))
    .clone();
    p.exit_rules = crate::plan::ExitRules::ProcessCompose;
    let lenient = Arc::new(p.clone());
    let mut e = engine(&lenient);
    let now = Instant::now();
    e.start(now);
    spawned(&mut e, 0, now);
    exited(&mut e, 0, 1, now);
    assert!(e.settled());
    assert_eq!(e.exit_code(), 0);

    p.services[1].ends_stack.on_skipped = true;
    let strict = Arc::new(p);
    let mut e = engine(&strict);
    e.start(now);
    spawned(&mut e, 0, now);
    exited(&mut e, 0, 1, now);
    assert!(e.settled());
    assert_eq!(e.exit_code(), 1);
}

mod incremental;
mod props;
mod timeout;
