//! `timeout:` (a run time limit): the engine arms it as a timer of the run's epoch at spawn;
//! time is passed in by hand, so minutes pass in no time.

use super::*;

const LIMIT: Duration = Duration::from_secs(300);

/// `migrate` (timeout 5m, grace 2s, restart `policy`) and `api`, which waits for it to
/// complete successfully.
fn migrate_then_api(policy: RestartPolicy) -> Arc<Plan> {
    let mut migrate = service("migrate", &[]);
    migrate.timeout = Some(LIMIT);
    migrate.shutdown.grace = Duration::from_secs(2);
    migrate.restart.policy = policy;
    plan(vec![
        migrate,
        service("api", &[(0, Condition::CompletedSuccessfully)]),
    ])
}

fn killed_by_term(e: &mut Engine, id: ServiceId, now: Instant) -> Vec<Effect> {
    let exit = ExitInfo::new(ExitStatus::Signal(15));
    let input = report(e, id, Report::Exited { exit });
    e.step(input, now)
}

#[test]
fn the_limit_is_armed_at_spawn_and_stops_the_run_through_its_shutdown_sequence() {
    let p = migrate_then_api(RestartPolicy::No);
    let mut e = engine(&p);
    let start = Instant::now();
    e.start(start);
    let fx = spawned(&mut e, 0, start);
    let (epoch, after) = timer_after(&fx).expect("the run timer");
    assert_eq!(after, LIMIT);
    assert_eq!(e.service(0).run_deadline, Some(start + LIMIT));

    let fired = start + LIMIT;
    let fx = e.step(Input::Timer { service: 0, epoch }, fired);
    assert_eq!(
        notices(&fx),
        ["timeout 5m reached", "stopping (TERM, grace 2s)"]
    );
    assert!(fx.contains(&Effect::Stop {
        service: 0,
        generation: 1,
        signal: StopSignal::TERM,
        grace: Duration::from_secs(2),
    }));
    assert_eq!(e.service(0).phase, Phase::Stopping);

    let fx = killed_by_term(&mut e, 0, fired);
    assert!(matches!(e.service(0).phase, Phase::TimedOut { limit, .. } if limit == LIMIT));
    assert_eq!(e.service(0).phase.state(), crate::vocab::State::TimedOut);
    assert_eq!(
        e.service(1).phase,
        Phase::Skipped("migrate timed out after 5m".into())
    );
    assert_eq!(
        notices(&fx),
        ["timed out after 5m", "skipped: migrate timed out after 5m"]
    );
    assert!(e.settled());
    assert_eq!(e.exit_code(), 1, "a timeout is a failure");
}

#[test]
fn a_run_that_ends_in_time_is_not_touched_by_its_timer() {
    let p = migrate_then_api(RestartPolicy::No);
    let mut e = engine(&p);
    let now = Instant::now();
    e.start(now);
    let (epoch, _) = timer_after(&spawned(&mut e, 0, now)).unwrap();
    let fx = exited(&mut e, 0, 0, now + Duration::from_secs(1));
    assert_eq!(spawns(&fx), [1], "api starts");
    let fx = e.step(Input::Timer { service: 0, epoch }, now + LIMIT);
    assert!(fx.is_empty(), "{fx:?}");
    assert!(matches!(e.service(0).phase, Phase::Exited(_)));
}

#[test]
fn restart_policies_treat_a_timeout_as_a_failure() {
    let p = migrate_then_api(RestartPolicy::OnFailure);
    let mut e = engine(&p);
    let mut now = Instant::now();
    e.start(now);
    let (first_epoch, _) = timer_after(&spawned(&mut e, 0, now)).unwrap();
    now += LIMIT;
    e.step(
        Input::Timer {
            service: 0,
            epoch: first_epoch,
        },
        now,
    );
    let fx = killed_by_term(&mut e, 0, now);
    let text = notices(&fx).join("\n");
    assert!(
        text.starts_with("timed out after 5m, restarting in "),
        "{text}"
    );
    assert!(matches!(e.service(0).phase, Phase::Restarting { .. }));
    assert_eq!(e.service(1).phase, Phase::Pending, "api still waits");

    // The backoff ends; the second run gets a timer of its own.
    let (epoch, after) = timer_after(&fx).unwrap();
    now += after;
    assert_eq!(
        spawns(&e.step(Input::Timer { service: 0, epoch }, now)),
        [0]
    );
    let (second_epoch, limit) = timer_after(&spawned(&mut e, 0, now)).unwrap();
    assert_eq!(limit, LIMIT, "the limit counts again from each start");
    // The first run's timer is stale for the second run.
    let stale = e.step(
        Input::Timer {
            service: 0,
            epoch: first_epoch,
        },
        now,
    );
    assert!(stale.is_empty(), "{stale:?}");
    assert_eq!(e.service(0).phase, Phase::Running);
    assert_ne!(second_epoch, first_epoch);
}

#[test]
fn a_teardown_during_the_timeout_stop_still_ends_timed_out() {
    let p = migrate_then_api(RestartPolicy::Always);
    let mut e = engine(&p);
    let now = Instant::now();
    e.start(now);
    let (epoch, _) = timer_after(&spawned(&mut e, 0, now)).unwrap();
    e.step(Input::Timer { service: 0, epoch }, now + LIMIT);
    e.step(Input::Intent(Intent::Shutdown { grace: None }), now + LIMIT);
    killed_by_term(&mut e, 0, now + LIMIT);
    assert!(
        matches!(e.service(0).phase, Phase::TimedOut { .. }),
        "{:?}",
        e.service(0).phase
    );
    assert_eq!(e.exit_code(), 1);
}

#[test]
fn without_a_timeout_no_run_timer_is_armed() {
    let p = plan(vec![service("web", &[])]);
    let mut e = engine(&p);
    let now = Instant::now();
    e.start(now);
    assert_eq!(timer_after(&spawned(&mut e, 0, now)), None);
    assert_eq!(e.service(0).run_deadline, None);
}
