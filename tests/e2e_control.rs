//! `pk down` and the control socket end to end (issue #2): teardown from another process, the
//! `--grace` override, nothing running, a stale socket, a second `pk up` for the same config.

mod support;

use std::time::Duration;

use support::{Backend, Project, notice_at, started_pids, wait_gone};

const STACK: &str = r#"
grace: 300ms
services:
  db:
    command: "echo up; exec sleep 1000"
  api:
    command: "echo up; exec sleep 1000"
    depends_on: [db]
"#;

both_backends!(pk_down_from_another_process_tears_the_stack_down);

fn pk_down_from_another_process_tears_the_stack_down(backend: Backend) {
    let p = Project::new(STACK).backend(backend);
    let mut up = p.up().spawn();
    up.wait_for_count("| up", 2, |l| l.ends_with("| up"));
    let pids = started_pids(&up.wait_notice("db", "started (pid"));

    let down = p.pk(&["down"]).run();
    assert_eq!(down.code, 0, "{}{}", down.stdout(), down.stderr);
    assert_eq!(down.lines.last().map(String::as_str), Some("stopped"));
    assert!(
        down.lines.iter().any(|l| l == "db: stopped"),
        "{}",
        down.stdout()
    );
    // `pk down` returns once everything is stopped: pk up is (about to be) gone, its trees are.
    assert_eq!(up.wait_exit(support::DEADLINE), 0);
    let lines = up.lines();
    assert!(notice_at(&lines, "api", "stopped") < notice_at(&lines, "db", "stopping"));
    for pid in pids {
        assert!(!support::is_alive(pid), "db's pid {pid} outlived pk down");
    }
}

#[test]
fn pk_down_grace_overrides_every_grace() {
    let p = Project::new(
        r#"
services:
  stubborn:
    command: "trap '' TERM; echo up; while :; do sleep 1; done"
    shutdown: { grace: 10m }
"#,
    );
    let mut up = p.up().spawn();
    let pids = started_pids(&up.wait_notice("stubborn", "started (pid"));
    up.wait_for_line("| up", |l| l.ends_with("| up"));
    // Far below the 10-minute grace in the file.
    let down = p
        .pk(&["down", "--grace", "200ms"])
        .run_within(Duration::from_secs(10));
    assert_eq!(down.code, 0, "{}{}", down.stdout(), down.stderr);
    assert_eq!(up.wait_exit(support::DEADLINE), 0);
    let lines = up.lines();
    notice_at(&lines, "stubborn", "stopping (TERM, grace 200ms)");
    notice_at(&lines, "stubborn", "killed after 200ms grace");
    for pid in pids {
        wait_gone(pid, "the stubborn service");
    }
}

#[test]
fn pk_down_with_nothing_running_exits_1_with_a_message() {
    let p = Project::new(STACK);
    let down = p.pk(&["down"]).run();
    assert_eq!(down.code, 1);
    assert!(
        down.stderr.starts_with("pk: no running pk for ") && down.stderr.contains(".sock"),
        "{}",
        down.stderr
    );
}

#[test]
fn a_stale_socket_file_is_replaced() {
    let one_shot = "services:\n  hello: { command: 'echo hi' }\n";
    // A plain file where the socket goes, then a socket whose owner went away.
    for abandoned_socket in [false, true] {
        let p = Project::new(one_shot);
        pk::control::ensure_socket_dir().unwrap();
        let socket = pk::control::socket_path(&p.config_path());
        if abandoned_socket {
            drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
        } else {
            std::fs::write(&socket, "stale").unwrap();
        }
        assert!(socket.exists());
        let out = p.up().run();
        assert_eq!(out.code, 0, "{}{}", out.stdout(), out.stderr);
        support::output_at(&out.lines, "hello", "hi");
        assert!(!socket.exists(), "pk removes its socket when it exits");
    }
}

#[test]
fn a_second_pk_up_for_the_same_config_is_refused_with_exit_2() {
    let p = Project::new(STACK);
    let mut up = p.up().spawn();
    up.wait_for_count("| up", 2, |l| l.ends_with("| up"));
    let second = p.up().run();
    assert_eq!(second.code, 2, "{}", second.stdout());
    assert!(
        second.stderr.contains("pk is already running for"),
        "{}",
        second.stderr
    );
    assert!(second.lines.is_empty(), "{}", second.stdout());
    // The first one is unaffected.
    up.interrupt();
    assert_eq!(up.wait_exit(support::DEADLINE), 0);
    notice_at(&up.lines(), "db", "stopped");
}
