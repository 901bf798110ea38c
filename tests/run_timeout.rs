//! `timeout:` end to end (issue 12 part 2): a run that lasts too long is stopped through its
//! shutdown sequence, ends `timed out` (a failure), skips the dependents that needed it to
//! succeed, and `pk ps` shows it.

mod support;

use std::time::{Duration, Instant};

use support::{Backend, Project, notice_at, notices, started_pids, wait_gone};

both_backends!(
    a_run_past_its_timeout_is_stopped_and_its_dependent_skipped,
    a_term_ignoring_run_past_its_timeout_is_killed_after_its_grace,
);

fn a_run_past_its_timeout_is_stopped_and_its_dependent_skipped(backend: Backend) {
    let p = Project::new(
        r#"
services:
  migrate:
    command: [sleep, "100"]
    timeout: 1s
    shutdown: { grace: 5s }
  api:
    command: "echo never"
    depends_on: { migrate: completed_successfully }
"#,
    )
    .backend(backend);
    let begun = Instant::now();
    let mut up = p.up().spawn();
    let started = up.wait_notice("migrate", "started (pid");
    let code = up.wait_exit(support::DEADLINE);
    let took = begun.elapsed();
    let lines = up.lines();
    let text = lines.join("\n");
    assert_eq!(code, 1, "a timeout is a failure:\n{text}");
    // Not before its limit; and long before `sleep 100` would end (the test's own deadline).
    assert!(took >= Duration::from_secs(1), "{took:?}\n{text}");
    assert_eq!(
        notices(&lines, "migrate")[1..],
        [
            "timeout 1s reached",
            "stopping (TERM, grace 5s)",
            "timed out after 1s",
        ],
        "{text}"
    );
    let ended = notice_at(&lines, "api", "skipped: migrate timed out after 1s");
    assert!(
        ended > notice_at(&lines, "migrate", "stopping (TERM"),
        "{text}"
    );
    assert!(!text.contains("never"), "{text}");
    for pid in started_pids(&started) {
        wait_gone(pid, "the timed-out sleep");
    }
}

fn a_term_ignoring_run_past_its_timeout_is_killed_after_its_grace(backend: Backend) {
    let p = Project::new(
        r#"
services:
  stubborn:
    command: "trap '' TERM; echo up; while :; do sleep 1; done"
    timeout: 1s
    shutdown: { grace: 300ms }
"#,
    )
    .backend(backend);
    let mut up = p.up().spawn();
    let started = up.wait_notice("stubborn", "started (pid");
    assert_eq!(up.wait_exit(support::DEADLINE), 1);
    let lines = up.lines();
    assert_eq!(
        notices(&lines, "stubborn")[1..],
        [
            "timeout 1s reached",
            "stopping (TERM, grace 300ms)",
            "timed out after 1s (killed after 300ms grace)",
        ],
        "{}",
        lines.join("\n")
    );
    for pid in started_pids(&started) {
        wait_gone(pid, "the TERM-ignoring shell");
    }
}

/// `pk ps` shows how long a running service has left, and a timed-out one as `timed out`
/// (`timed_out` with its reason in JSON).
#[test]
fn ps_shows_the_time_left_and_the_timed_out_state() {
    let p = Project::new(
        r#"
grace: 300ms
services:
  seed:
    command: [sleep, "100"]
    timeout: 1s
  web:
    command: "echo up; exec sleep 1000"
    timeout: 1h
"#,
    );
    let up = p.up().spawn();
    up.wait_notice("seed", "timed out after 1s");
    let ps = p.pk(&["ps", "--json"]).run();
    assert_eq!(ps.code, 0, "{}", ps.stderr);
    let json: serde_json::Value = serde_json::from_str(&ps.stdout()).unwrap();
    let service = |name: &str| {
        json["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap()
            .clone()
    };
    let seed = service("seed");
    assert_eq!(seed["state"], "timed_out", "{json}");
    assert_eq!(seed["reason"], "timed out after 1s", "{json}");
    assert_eq!(seed["last_exit"], "killed by SIGTERM", "{json}");
    let web = service("web");
    assert_eq!(web["state"], "running", "{json}");
    let left = web["timeout_at_ms"].as_u64().unwrap() - pk::vocab::now_ms();
    assert!(left > 3_500_000 && left <= 3_600_000, "{left} ms left");

    let table = p.pk(&["ps"]).run();
    let text = table.stdout();
    let row = |name: &str| {
        table
            .lines
            .iter()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} row in:\n{text}"))
            .clone()
    };
    assert!(row("seed").contains("  timed out after 1s  "), "{text}");
    assert!(row("web").contains("running (timeout in 59m5"), "{text}");
}
