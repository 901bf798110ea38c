//! `pk up` end to end (issue #2): start order and gating, skips, reverse teardown, signals,
//! grace and force kill, restart backoff and the restart limit, exit codes.

mod support;

use std::time::Duration;

use rustix::process::Signal;
use support::{
    Backend, Project, is_notice, notice_at, notices, output_at, parse_duration, started_pids,
    wait_gone,
};

const CHAIN: &str = r#"
grace: 300ms
services:
  db:
    command: "echo db-up; exec sleep 1000"
  migrate:
    command: [sh, -c, "echo migrating; exit 0"]
    depends_on: { db: started }
  api:
    command: "echo api-up; exec sleep 1000"
    depends_on: { migrate: completed_successfully }
  web:
    command: "echo web-up; exec sleep 1000"
    depends_on: [api]
"#;

both_backends!(
    start_order_and_completed_successfully_gating,
    term_ignoring_service_is_killed_after_its_grace,
);

fn start_order_and_completed_successfully_gating(backend: Backend) {
    let p = Project::new(CHAIN).backend(backend);
    let mut up = p.up().spawn();
    up.wait_for_line("web | web-up", |l| support::is_output(l, "web", "web-up"));
    up.interrupt();
    assert_eq!(up.wait_exit(support::DEADLINE), 0, "{}", up.stderr);
    let lines = up.lines();

    assert!(
        is_notice(&lines[0], "pk", backend.containment_prefix()),
        "first line: {}",
        lines[0]
    );
    let db = notice_at(&lines, "db", "started (pid");
    let migrate = notice_at(&lines, "migrate", "started (pid");
    let migrated = notice_at(&lines, "migrate", "completed");
    let api_waits = notice_at(
        &lines,
        "api",
        "waiting for migrate (completed_successfully)",
    );
    let api = notice_at(&lines, "api", "started (pid");
    let web = notice_at(&lines, "web", "started (pid");
    assert!(db < migrate, "db before migrate");
    assert!(output_at(&lines, "migrate", "migrating") < migrated);
    assert!(api_waits < migrated, "api announces what it waits for");
    assert!(migrated < api, "api starts only after migrate completed");
    assert!(api < web, "web after api");

    // Teardown is the DAG reversed: web, then api, then db (api depends on db through migrate).
    assert!(notice_at(&lines, "web", "stopped") < notice_at(&lines, "api", "stopping (TERM"));
    assert!(notice_at(&lines, "api", "stopped") < notice_at(&lines, "db", "stopping (TERM"));
    assert!(notice_at(&lines, "db", "stopped") > notice_at(&lines, "db", "stopping"));
}

#[test]
fn same_level_dependents_stop_in_parallel_before_their_dependency() {
    let p = Project::new(
        r#"
grace: 5s
services:
  base:
    command: "echo up; exec sleep 1000"
  left:
    command: "trap 'sleep 0.3; exit 0' TERM; echo up; while :; do sleep 0.05; done"
    depends_on: [base]
  right:
    command: "trap 'sleep 0.3; exit 0' TERM; echo up; while :; do sleep 0.05; done"
    depends_on: [base]
"#,
    );
    let mut up = p.up().spawn();
    up.wait_for_count("| up", 3, |l| l.contains(" | up"));
    up.interrupt();
    assert_eq!(up.wait_exit(support::DEADLINE), 0);
    let lines = up.lines();
    let left_stopping = notice_at(&lines, "left", "stopping (TERM, grace 5s)");
    let right_stopping = notice_at(&lines, "right", "stopping (TERM, grace 5s)");
    let left_stopped = notice_at(&lines, "left", "stopped");
    let right_stopped = notice_at(&lines, "right", "stopped");
    // Both were asked to stop before either finished: in parallel, not one after the other.
    assert!(left_stopping.max(right_stopping) < left_stopped.min(right_stopped));
    let base_stopping = notice_at(&lines, "base", "stopping");
    assert!(left_stopped.max(right_stopped) < base_stopping);
}

#[test]
fn a_failing_one_shot_skips_its_dependents_and_pk_exits_1() {
    let p = Project::new(
        r#"
services:
  migrate:
    command: "echo boom; exit 3"
  api:
    command: "echo never"
    depends_on: { migrate: completed_successfully }
  worker:
    command: "echo never"
    depends_on: [api]
  other:
    command: "echo fine"
"#,
    );
    let out = p.up().run();
    assert_eq!(out.code, 1, "{}", out.stdout());
    let lines = &out.lines;
    let exited = notice_at(lines, "migrate", "exited 3");
    assert!(notice_at(lines, "api", "skipped: migrate exited 3") > exited);
    notice_at(lines, "worker", "skipped: api was skipped");
    output_at(lines, "other", "fine");
    notice_at(lines, "other", "completed");
    assert!(
        !lines.iter().any(|l| l.contains("never")),
        "{}",
        out.stdout()
    );
}

#[test]
fn exit_code_0_when_every_service_succeeds() {
    let p = Project::new(
        "services:\n  a: { command: 'echo a' }\n  b: { command: [true], depends_on: { a: completed } }\n",
    );
    let out = p.up().run();
    assert_eq!(out.code, 0, "{}", out.stdout());
    notice_at(&out.lines, "b", "completed");
}

#[test]
fn exit_code_2_for_config_and_usage_errors_and_nothing_starts() {
    let p = Project::new("services:\n  a:\n    comand: 'echo started > started.txt'\n");
    let out = p.up().run();
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("unknown key `comand`"),
        "{}",
        out.stderr
    );
    assert!(out.lines.is_empty(), "{}", out.stdout());
    assert!(!p.path().join("started.txt").exists());

    let p = Project::new("services:\n  a: { command: 'echo a' }\n");
    let out = p.up().args(&["nosuch"]).run();
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("nosuch"), "{}", out.stderr);
    assert_eq!(p.pk(&["up", "--no-such-flag"]).run().code, 2);
}

fn term_ignoring_service_is_killed_after_its_grace(backend: Backend) {
    let p = Project::new(
        r#"
services:
  stubborn:
    command: "trap '' TERM; echo up; while :; do sleep 1; done"
    shutdown: { grace: 300ms }
"#,
    )
    .backend(backend);
    let mut up = p.up().spawn();
    let started = up.wait_notice("stubborn", "started (pid");
    up.wait_for_line("stubborn | up", |l| l.ends_with("| up"));
    up.interrupt();
    up.wait_notice("stubborn", "stopping (TERM, grace 300ms)");
    up.wait_notice("stubborn", "killed after 300ms grace");
    assert_eq!(up.wait_exit(support::DEADLINE), 0);
    for pid in started_pids(&started) {
        wait_gone(pid, "the TERM-ignoring shell");
    }
}

#[test]
fn sigterm_and_sighup_tear_down_like_ctrl_c() {
    for sig in [Signal::TERM, Signal::HUP] {
        let p = Project::new(
            "grace: 300ms\nservices:\n  db: { command: 'echo up; exec sleep 1000' }\n  api: { command: 'echo up; exec sleep 1000', depends_on: [db] }\n",
        );
        let mut up = p.up().spawn();
        up.wait_for_count("| up", 2, |l| l.ends_with("| up"));
        up.signal(sig);
        assert_eq!(up.wait_exit(support::DEADLINE), 0, "{sig:?}");
        let lines = up.lines();
        notice_at(&lines, "pk", "stopping (press Ctrl-C again to force)");
        assert!(notice_at(&lines, "api", "stopped") < notice_at(&lines, "db", "stopping"));
        notice_at(&lines, "db", "stopped");
    }
}

#[test]
fn a_second_ctrl_c_kills_a_slow_stopper_without_waiting_its_grace() {
    let p = Project::new(
        r#"
services:
  slow:
    command: "trap '' TERM; echo up; while :; do sleep 1; done"
    shutdown: { grace: 10m }
"#,
    );
    let mut up = p.up().spawn();
    let pids = started_pids(&up.wait_notice("slow", "started (pid"));
    up.wait_for_line("slow | up", |l| l.ends_with("| up"));
    up.interrupt();
    up.wait_notice("slow", "stopping (TERM, grace 10m)");
    up.interrupt();
    up.wait_notice("pk", "killing everything that is left");
    // Far below the 10-minute grace: the second press did not wait for it.
    assert_eq!(up.wait_exit(Duration::from_secs(10)), 0);
    for pid in pids {
        wait_gone(pid, "the slow stopper");
    }
}

#[test]
fn restart_backoff_grows_and_the_restart_limit_ends_in_crashed() {
    let p = Project::new(
        r#"
services:
  flaky:
    command: "echo try; exit 1"
    restart: { policy: on-failure, max: 3, window: 1m, backoff: { initial: 100ms, max: 10s } }
"#,
    );
    let out = p.up().run();
    assert_eq!(out.code, 1, "{}", out.stdout());
    let texts = notices(&out.lines, "flaky");
    let starts = texts
        .iter()
        .filter(|t| t.starts_with("started (pid"))
        .count();
    assert_eq!(starts, 4, "the first run and 3 restarts:\n{}", out.stdout());
    let delays: Vec<Duration> = texts
        .iter()
        .filter_map(|t| t.strip_prefix("exited 1, restarting in "))
        .map(parse_duration)
        .collect();
    assert_eq!(delays.len(), 3, "{}", out.stdout());
    // 100ms·2^n with ±20% jitter: the ranges do not overlap, so each delay is longer.
    assert!(delays.windows(2).all(|w| w[0] < w[1]), "{delays:?}");
    assert!(delays[0] >= Duration::from_millis(80) && delays[0] <= Duration::from_millis(120));
    assert_eq!(
        texts.last().copied(),
        Some("exited 1; crashed: 3 restarts within 1m, giving up"),
        "{}",
        out.stdout()
    );
}

/// A service that reports a TERM (and keeps running), with a shutdown command that writes its
/// pid to `shutdown.pid` and then never ends.
fn endless_shutdown_command(grace: &str) -> String {
    format!(
        r#"
services:
  db:
    command: [sh, -c, 'trap "echo got TERM" TERM; echo up; while :; do sleep 0.05; done']
    shutdown:
      grace: {grace}
      command: [sh, -c, 'echo $$$$ > shutdown.pid.tmp; mv shutdown.pid.tmp shutdown.pid; exec sleep 1000']
"#
    )
}

#[test]
fn a_second_ctrl_c_interrupts_a_running_shutdown_command_at_once() {
    // A grace longer than the test's deadline: only the second Ctrl-C can end this in time.
    let p = Project::new(&endless_shutdown_command("10m"));
    let mut up = p.up().spawn();
    up.wait_for_line("db | up", |l| l.ends_with("| up"));
    up.interrupt();
    up.wait_notice("db", "running shutdown command");
    let command = p.read_pid("shutdown.pid");
    up.interrupt();
    up.wait_exit(support::DEADLINE);
    wait_gone(command, "the shutdown command");
    let lines = up.lines();
    notice_at(&lines, "db", "shutdown command still running; killing it");
    assert!(
        !lines.iter().any(|l| l.ends_with("| got TERM")),
        "killed, not signalled:\n{}",
        lines.join("\n")
    );
}

#[test]
fn the_shutdown_command_counts_against_the_grace() {
    let p = Project::new(&endless_shutdown_command("500ms"));
    let mut up = p.up().spawn();
    up.wait_for_line("db | up", |l| l.ends_with("| up"));
    up.interrupt();
    up.wait_notice("db", "killed after 500ms grace");
    assert_eq!(up.wait_exit(support::DEADLINE), 0);
    wait_gone(p.read_pid("shutdown.pid"), "the shutdown command");
    let lines = up.lines();
    // One deadline for the whole stop: when the command uses it up, no stop signal follows.
    assert!(
        !lines.iter().any(|l| l.ends_with("| got TERM")),
        "{}",
        lines.join("\n")
    );
}
