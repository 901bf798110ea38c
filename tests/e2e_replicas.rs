//! Replicas end to end with real processes: every copy its own contained tree with its name
//! and number in its environment; a dependent waits for every copy; `pk restart web-1` acts
//! on one copy, `pk restart web` and `pk logs web` on all of them.

mod support;

use support::{Backend, Project, notice_at, notices, started_pids};

both_backends!(a_dependent_waits_for_every_copy);

fn a_dependent_waits_for_every_copy(backend: Backend) {
    // Copy 1 finishes later than copy 0; proxy may start only after both.
    let p = Project::new(
        r#"
services:
  web:
    command: "echo copy $$PC_REPLICA_NUM of $$PC_PROC_NAME; sleep 0.$$PC_REPLICA_NUM"
    replicas: 2
  proxy:
    command: "echo proxy up"
    depends_on: { web: completed_successfully }
"#,
    )
    .backend(backend);
    let out = p.up().run();
    assert_eq!(out.code, 0, "{}{}", out.stdout(), out.stderr);
    let lines = &out.lines;
    support::output_at(lines, "web-0", "copy 0 of web");
    support::output_at(lines, "web-1", "copy 1 of web");
    let proxy = notice_at(lines, "proxy", "started");
    assert!(
        notice_at(lines, "web-0", "completed") < proxy,
        "{}",
        out.stdout()
    );
    assert!(
        notice_at(lines, "web-1", "completed") < proxy,
        "{}",
        out.stdout()
    );
}

const RUNNING: &str = r#"
grace: 2s
services:
  db:
    command: "echo db up; exec sleep 1000"
  web:
    command: "echo hello from $$PC_REPLICA_NUM; exec sleep 1000"
    replicas: 2
    depends_on: [db]
"#;

both_backends!(copies_are_addressed_one_by_one_or_all_together);

fn copies_are_addressed_one_by_one_or_all_together(backend: Backend) {
    let p = Project::new(RUNNING).backend(backend);
    let mut up = p.up().spawn();
    up.wait_for_count("both copies", 2, |l| l.contains("| hello from"));
    let web0 = started_pids(&up.wait_notice("web-0", "started (pid"));
    let web1 = started_pids(&up.wait_notice("web-1", "started (pid"));
    assert_ne!(web0, web1, "each copy is its own tree");

    let one = p.pk(&["restart", "web-1"]).run();
    assert_eq!(one.code, 0, "{}{}", one.stdout(), one.stderr);
    up.wait_for_count("web-1 started twice", 2, |l| {
        support::is_notice(l, "web-1", "started (pid")
    });
    let lines = up.lines();
    assert_eq!(
        notices(&lines, "web-0")
            .iter()
            .filter(|t| t.starts_with("started"))
            .count(),
        1,
        "web-0 untouched by `pk restart web-1`"
    );
    for pid in web1 {
        support::wait_gone(pid, "web-1's first tree");
    }
    assert!(web0.iter().all(|&pid| support::is_alive(pid)));

    let all = p.pk(&["restart", "web"]).run();
    assert_eq!(all.code, 0, "{}{}", all.stdout(), all.stderr);
    up.wait_for_count("web-0 started twice", 2, |l| {
        support::is_notice(l, "web-0", "started (pid")
    });
    up.wait_for_count("web-1 started three times", 3, |l| {
        support::is_notice(l, "web-1", "started (pid")
    });
    assert_eq!(
        notices(&up.lines(), "db")
            .iter()
            .filter(|t| t.starts_with("started"))
            .count(),
        1,
        "db untouched"
    );

    let logs = p.pk(&["logs", "web", "--color", "never"]).run();
    assert_eq!(logs.code, 0, "{}", logs.stderr);
    let text = logs.stdout();
    assert!(text.contains("web-0 | hello from 0"), "{text}");
    assert!(text.contains("web-1 | hello from 1"), "{text}");
    assert!(!text.contains("db up"), "only web's copies: {text}");

    let unknown = p.pk(&["restart", "web-7"]).run();
    assert_eq!(unknown.code, 2, "{}{}", unknown.stdout(), unknown.stderr);

    up.interrupt();
    assert_eq!(up.wait_exit(support::DEADLINE), 0);
}
