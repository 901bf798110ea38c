//! How pk starts processes, end to end: the open-file limit it raises for itself (services get
//! the original one), and where exec probes and shutdown commands are spawned from.

mod support;

use std::fmt::Write as _;

use support::{Backend, DEADLINE, Project};

both_backends!(
    pk_raises_its_open_file_limit_and_services_keep_the_original,
    probes_and_shutdown_commands_are_not_spawned_from_runtime_workers,
);

/// With a soft limit of 64 descriptors, 40 services need ~120 in pk: pk raises its own soft
/// limit to the hard one at start. The services still get 64.
fn pk_raises_its_open_file_limit_and_services_keep_the_original(backend: Backend) {
    let mut yaml = String::from(
        "grace: 2s\nservices:\n  s0:\n    command: \"echo limit $(ulimit -n); exec sleep 1000\"\n",
    );
    for i in 1..40 {
        // Writing into a String cannot fail.
        let _ = writeln!(yaml, "  s{i}:\n    command: [sleep, \"1000\"]");
    }
    let p = Project::new(&yaml).backend(backend);
    let mut up = p.up().nofile(64).spawn();
    up.wait_for_count("40 services started", 40, |l| l.contains("* started (pid"));
    up.wait_for_line("s0's limit", |l| {
        l.starts_with("s0") && l.contains("| limit")
    });
    up.interrupt();
    assert_eq!(up.wait_exit(DEADLINE), 0);
    let lines = up.lines();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("s0") && l.ends_with("| limit 64")),
        "{lines:#?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("failed")),
        "no service failed to start: {lines:#?}"
    );
}

/// The name of the pk thread whose child `pid` is (`/proc/<pk>/task/<tid>/children`).
fn parent_thread(pk: u32, pid: u32) -> Option<String> {
    for task in std::fs::read_dir(format!("/proc/{pk}/task"))
        .ok()?
        .flatten()
    {
        let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        if children.split_whitespace().any(|c| c == pid.to_string()) {
            return std::fs::read_to_string(task.path().join("comm"))
                .ok()
                .map(|c| c.trim().to_owned());
        }
    }
    None
}

/// A child's parent-death signal follows the *thread* that spawned it, and a runtime worker
/// is no place to block on a spawn: exec probes and shutdown commands start where services do,
/// never on a tokio worker thread.
fn probes_and_shutdown_commands_are_not_spawned_from_runtime_workers(backend: Backend) {
    let p = Project::new(
        r#"
services:
  db:
    command: [sleep, "1000"]
    ready: { exec: "echo $$$$ > probe.pid; exec sleep 1000", interval: 50ms, timeout: 60s }
    shutdown: { command: "echo $$$$ > shutdown.pid; exec sleep 1000", grace: 1s }
"#,
    )
    .backend(backend);
    let mut up = p.up().spawn();
    up.wait_notice("db", "started (pid");
    let probe = p.read_pid("probe.pid");
    let thread = support::wait_until(DEADLINE, "the probe's parent thread", || {
        parent_thread(up.pid(), probe)
    });
    assert!(
        !thread.starts_with("tokio-runtime"),
        "the exec probe was spawned by the runtime worker {thread:?}"
    );
    up.interrupt();
    let shutdown = p.read_pid("shutdown.pid");
    let thread = support::wait_until(DEADLINE, "the shutdown command's parent thread", || {
        parent_thread(up.pid(), shutdown)
    });
    assert!(
        !thread.starts_with("tokio-runtime"),
        "the shutdown command was spawned by the runtime worker {thread:?}"
    );
    assert_eq!(up.wait_exit(DEADLINE), 0);
}
