//! Contained trees end to end (issue #2): what a service spawns dies with it — setsid and
//! double-forked grandchildren under cgroups, plain grandchildren under process groups — and a
//! process that escaped anyway cannot keep pk from exiting by holding its output pipe.

mod support;

use support::{Backend, DEADLINE, PidGuard, Project, is_alive, notice_at, started_pids};

/// Forks twice and calls setsid in between: the classic daemon, reparented to init.
#[cfg(not(feature = "portable"))]
const DAEMON_PY: &str = r#"
import os, sys, time
if os.fork():
    os._exit(0)
os.setsid()
if os.fork():
    os._exit(0)
with open("daemon.pid.tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename("daemon.pid.tmp", "daemon.pid")
time.sleep(1000)
"#;

// Cgroups only: a process that calls setsid leaves its process group, and the portable build
// (process groups, no child subreaper) cannot hold it; it is found by the run marker at teardown
// instead (tests/e2e_guard.rs covers that path for both backends).
#[cfg(not(feature = "portable"))]
#[test]
fn setsid_and_double_forked_grandchildren_die_on_teardown_under_cgroups() {
    let Some(backend) = Backend::cgroup() else {
        return;
    };
    let p = Project::new(
        r#"
grace: 300ms
services:
  spawner:
    command: |
      setsid sh -c 'echo $$$$ > setsid.pid.tmp; mv setsid.pid.tmp setsid.pid; exec sleep 1000' &
      "$PYTHON" daemon.py
      while [ ! -f setsid.pid ] || [ ! -f daemon.pid ]; do sleep 0.01; done
      echo spawned
      exec sleep 1000
"#,
    )
    .backend(backend)
    .file("daemon.py", DAEMON_PY);
    let mut guard = PidGuard::new();
    guard.file(p.path().join("setsid.pid"));
    guard.file(p.path().join("daemon.pid"));
    let mut up = p.up().spawn();
    up.wait_for_line("spawner | spawned", |l| l.ends_with("| spawned"));
    let setsid = p.read_pid("setsid.pid");
    let daemon = p.read_pid("daemon.pid");
    assert!(is_alive(setsid) && is_alive(daemon));
    up.interrupt();
    assert_eq!(up.wait_exit(support::DEADLINE), 0);
    notice_at(&up.lines(), "spawner", "stopped");
    // pk waited for the cgroup to drain, so they are dead by the time it exits.
    assert!(!is_alive(setsid), "the setsid grandchild {setsid} survived");
    assert!(
        !is_alive(daemon),
        "the double-forked daemon {daemon} survived"
    );
}

both_backends!(a_term_ignoring_grandchild_is_killed_after_the_leader_exits);

/// The leader dies on TERM at once; its grandchild ignores TERM and lives on in the tree (same
/// process group, same cgroup): pk must wait for it and kill it after the grace.
fn a_term_ignoring_grandchild_is_killed_after_the_leader_exits(backend: Backend) {
    let p = Project::new(
        r#"
services:
  parent:
    command: |
      sh -c "trap '' TERM; echo \$$$$ > gc.pid.tmp; mv gc.pid.tmp gc.pid; exec sleep 1000" &
      while [ ! -f gc.pid ]; do sleep 0.01; done
      echo spawned
      wait
    shutdown: { grace: 300ms }
"#,
    )
    .backend(backend);
    let mut guard = PidGuard::new();
    guard.file(p.path().join("gc.pid"));
    let mut up = p.up().spawn();
    up.wait_for_line("parent | spawned", |l| l.ends_with("| spawned"));
    let grandchild = p.read_pid("gc.pid");
    assert!(is_alive(grandchild));
    up.interrupt();
    up.wait_notice("parent", "killed after 300ms grace");
    assert_eq!(up.wait_exit(DEADLINE), 0);
    assert!(
        !is_alive(grandchild),
        "the grandchild {grandchild} survived"
    );
}

/// Makes itself a child subreaper, then runs the rest of its arguments (exec keeps the role).
const SUBREAPER_PY: &str = r#"
import ctypes, os, sys
PR_SET_CHILD_SUBREAPER = 36
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
    sys.exit("prctl: " + os.strerror(ctypes.get_errno()))
os.execv(sys.argv[1], sys.argv[1:])
"#;

both_backends!(a_group_left_with_only_zombies_has_ended);

/// A service's background child outlives its shell (which exec'd), so once killed it is an
/// orphan's zombie in the service's process group, waiting for whoever adopted it to reap it.
/// Here that is pk itself, made a child subreaper that (in the portable build) never reaps what
/// it did not spawn — as under an init that reaps late or never (a container's PID 1). A group of
/// zombies has ended: the teardown must not wait for them.
fn a_group_left_with_only_zombies_has_ended(backend: Backend) {
    let p = Project::new(
        "grace: 300ms\nservices:\n  svc:\n    command: \"sleep 1001 & echo $$! > bg.pid; exec sleep 1002\"\n",
    )
    .backend(backend)
    .file("subreaper.py", SUBREAPER_PY);
    let mut guard = PidGuard::new();
    guard.file(p.path().join("bg.pid"));
    let script = p.path().join("subreaper.py");
    let mut up = p
        .pk(&[
            script.to_str().unwrap(),
            env!("CARGO_BIN_EXE_pk"),
            "up",
            "--plain",
            "--color",
            "never",
        ])
        .program(support::python())
        .spawn();
    let leader = started_pids(&up.wait_notice("svc", "started (pid"))[0];
    guard.add(leader);
    let background = p.read_pid("bg.pid");
    assert!(is_alive(background));
    up.interrupt();
    assert_eq!(up.wait_exit(DEADLINE), 0, "{}", up.stderr);
    notice_at(&up.lines(), "svc", "stopped");
    assert!(
        !is_alive(background),
        "the background child {background} survived"
    );
}

both_backends!(an_escaped_child_holding_stdout_does_not_keep_pk_from_exiting);

/// The child leaves the tree (setsid; under cgroups it also moves itself to this test's
/// cgroup) and keeps the service's stdout open. The service has ended once its tree is empty,
/// so pk exits by itself; under process groups pk stops the escapee at teardown.
fn an_escaped_child_holding_stdout_does_not_keep_pk_from_exiting(backend: Backend) {
    let p = Project::new(
        r#"
services:
  leaver:
    command: |
      setsid sh -c '[ -n "$$ESCAPE_TO" ] && echo $$$$ > "$$ESCAPE_TO"; echo $$$$ > esc.pid.tmp; mv esc.pid.tmp esc.pid; exec sleep 1000' &
      while [ ! -f esc.pid ]; do sleep 0.01; done
      echo leaving
"#,
    )
    .backend(backend);
    let escape_to = match backend {
        Backend::Cgroup => own_cgroup_procs(),
        Backend::Pgroup => String::new(),
    };
    let mut guard = PidGuard::new();
    guard.file(p.path().join("esc.pid"));
    let out = p.up().env("ESCAPE_TO", &escape_to).run();
    assert_eq!(out.code, 0, "{}{}", out.stdout(), out.stderr);
    support::output_at(&out.lines, "leaver", "leaving");
    notice_at(&out.lines, "leaver", "completed");
    let escaped = p.read_pid("esc.pid");
    guard.add(escaped);
    match backend {
        // It moved itself out of pk's cgroups: out of reach, and so it outlives pk.
        Backend::Cgroup => assert!(is_alive(escaped), "the escapee is expected to outlive pk"),
        // pk adopted it as a child subreaper (its parent ended) and stopped it at teardown.
        Backend::Pgroup => assert!(!is_alive(escaped), "the escapee {escaped} outlived pk"),
    }
}

/// `cgroup.procs` of the cgroup this test runs in (outside pk's per-run cgroup).
fn own_cgroup_procs() -> String {
    let mount = support::writable_cgroup2().expect("cgroup2 mount");
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let rel = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .expect("a cgroup2 entry in /proc/self/cgroup");
    let path = mount.join(rel.trim_start_matches('/')).join("cgroup.procs");
    path.to_string_lossy().into_owned()
}
