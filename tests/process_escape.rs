//! Processes that leave their session or double-fork: caught by the cgroup backend (the leaf
//! holds them) and by the process-group fallback (pk is a child subreaper, so an orphaned
//! escapee is reparented to it, and every process of the run carries the run marker).
//!
//! Linux only by nature (cgroups, `PR_SET_CHILD_SUBREAPER`): not built with `--features
//! portable`, whose process groups do not catch such escapees (see README "Platforms").
#![cfg(not(feature = "portable"))]

mod process_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use pk::process::SpawnSpec;
use process_support::{
    Lines, PidGuard, argv, base_env, is_gone, poll_until, process_group_of, session_of, sh, spawn,
    within,
};

const TERM: i32 = 15;

/// Double-forks a daemon in a new session that ignores TERM and prints its pid.
const DAEMON: &str = "
import os, signal, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print(os.getpid(), flush=True)
        time.sleep(1000)
    os._exit(0)
os.wait()
";

fn env_with_daemon() -> BTreeMap<String, String> {
    let mut env = base_env();
    env.insert("DAEMON".into(), DAEMON.into());
    env
}

#[tokio::test]
async fn cgroup_stop_kills_setsid_grandchildren_and_double_forked_daemons() {
    let Some(c) = process_support::cgroup() else {
        return;
    };
    let script = "setsid sleep 1000 & echo $!; python3 -c \"$DAEMON\"; wait";
    let stages = [sh(script)];
    let env = env_with_daemon();
    let spec = SpawnSpec {
        stages: &stages,
        cwd: Path::new("/"),
        env: &env,
    };
    let mut spawned = c.spawn("escape", &spec).expect("spawn");
    let mut out = Lines::new(spawned.stdout);
    let setsid_child = out.pid().await;
    let daemon = out.pid().await;
    let _escapees = PidGuard(vec![setsid_child, daemon]);
    poll_until("the grandchild to call setsid", || {
        session_of(setsid_child) == Some(setsid_child)
    })
    .await;
    let leader = spawned.tree.pids()[0];
    assert_ne!(
        session_of(daemon),
        session_of(leader),
        "the daemon left the session"
    );

    let outcome = within("stop", spawned.tree.stop(TERM, Duration::from_millis(300))).await;
    assert!(
        outcome.killed,
        "the daemon ignores TERM: only cgroup.kill ends it"
    );
    assert!(
        is_gone(setsid_child),
        "setsid grandchild {setsid_child} survived"
    );
    assert!(is_gone(daemon), "double-forked daemon {daemon} survived");
}

/// A stage that left the tree's process group still gets the stop signal: the leaf then holds
/// a process outside the group, so pk signals each process of the leaf, not the group.
#[tokio::test]
async fn cgroup_stop_signals_a_stage_that_left_the_group() {
    let Some(c) = process_support::cgroup() else {
        return;
    };
    let leave =
        "import os, time\nos.setpgid(0, 0)\nprint(os.getpid(), flush=True)\ntime.sleep(1000)";
    let stages = [argv(&["sleep", "1000"]), argv(&["python3", "-c", leave])];
    let mut spawned = spawn(&c, "left", &stages);
    let pids = spawned.tree.pids();
    let left = Lines::new(spawned.stdout).pid().await;
    assert_eq!(left, pids[1]);
    assert_eq!(
        process_group_of(left),
        Some(left),
        "stage 1 leads a group of its own"
    );
    assert_ne!(process_group_of(left), Some(spawned.tree.pgid()));
    let outcome = within("stop", spawned.tree.stop(TERM, Duration::from_secs(10))).await;
    assert!(
        !outcome.killed,
        "every stage got TERM and ended within the grace"
    );
    for status in &outcome.statuses {
        use std::os::unix::process::ExitStatusExt as _;
        assert_eq!(status.signal(), Some(TERM), "{:?}", outcome.statuses);
    }
}

#[tokio::test]
async fn cgroup_kill_all_reaches_escapees() {
    let Some(c) = process_support::cgroup() else {
        return;
    };
    let mut spawned = spawn(&c, "escape", &[sh("setsid sleep 1000 & echo $!")]);
    let escapee = Lines::new(spawned.stdout).pid().await;
    let _escapees = PidGuard(vec![escapee]);
    poll_until("the grandchild to call setsid", || {
        session_of(escapee) == Some(escapee)
    })
    .await;
    within("leader exit", spawned.tree.wait_stages()).await;
    c.kill_all();
    within("drain", spawned.tree.wait_drained()).await;
    assert!(is_gone(escapee));
}

/// The fallback contains escapees too: the `setsid` grandchild and the double-forked daemon
/// left the group, but `kill_all` still reaches them (adopted orphans, marked with the run's
/// `PK_RUN_ID`). The tree itself ends through its group as before.
#[tokio::test]
async fn pgroup_kill_all_reaches_setsid_and_double_forked_escapees() {
    let c = process_support::pgroup();
    let script = "setsid sleep 1000 & echo $!; python3 -c \"$DAEMON\"; wait";
    let stages = [sh(script)];
    let env = env_with_daemon();
    let spec = SpawnSpec {
        stages: &stages,
        cwd: Path::new("/"),
        env: &env,
    };
    let mut spawned = c.spawn("escape", &spec).expect("spawn");
    let mut out = Lines::new(spawned.stdout);
    let setsid_child = out.pid().await;
    let daemon = out.pid().await;
    let _escapees = PidGuard(vec![setsid_child, daemon]);
    poll_until("the grandchild to call setsid", || {
        session_of(setsid_child) == Some(setsid_child)
    })
    .await;
    let leader = spawned.tree.pids()[0];
    assert_ne!(
        session_of(daemon),
        session_of(leader),
        "the daemon left the session"
    );
    let outcome = within("stop", spawned.tree.stop(TERM, Duration::from_secs(10))).await;
    assert!(!outcome.killed);
    assert!(spawned.tree.is_drained());
    assert!(
        !is_gone(setsid_child) && !is_gone(daemon),
        "TERM to the group did not reach them"
    );
    c.kill_all();
    poll_until("the setsid grandchild to die", || is_gone(setsid_child)).await;
    poll_until("the double-forked daemon to die", || is_gone(daemon)).await;
}
