//! The portable spawn path (`PK_SPAWN=fork`: fork and `pre_exec`, as std does) instead of the
//! vfork-style clone pk uses on Linux. Its own test binary, because the choice is made once per
//! process.

mod process_support;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use pk::process::{Containment, ContainmentKind, SpawnSpec};
use tokio::io::AsyncReadExt;

fn env() -> BTreeMap<String, String> {
    BTreeMap::from([(
        "PATH".to_string(),
        std::env::var("PATH").unwrap_or_default(),
    )])
}

fn gone(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status")).map_or(true, |s| {
        s.lines()
            .any(|l| l.starts_with("State:") && l.contains('Z'))
    })
}

#[tokio::test]
async fn with_fork_trees_are_still_contained_and_stopped() {
    // SAFETY: set before this binary's only test spawns anything; nothing else reads it.
    unsafe { std::env::set_var("PK_SPAWN", "fork") };
    let containment = Containment::detect();
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("gc.pid");
    let script = format!(
        "setsid sleep 1005 & echo $! > {}; exec sleep 1006",
        pidfile.display()
    );
    let stages = vec![vec!["sh".to_string(), "-c".to_string(), script]];
    let env = env();
    let spawned = containment
        .spawn(
            "svc",
            &SpawnSpec {
                stages: &stages,
                cwd: Path::new("/"),
                env: &env,
            },
        )
        .expect("spawn with fork");
    let mut tree = spawned.tree;
    let deadline = Instant::now() + Duration::from_secs(10);
    let grandchild: u32 = loop {
        if let Some(pid) = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            break pid;
        }
        assert!(Instant::now() < deadline, "no grandchild pid");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let outcome = tree.stop(15, Duration::from_millis(500)).await;
    assert!(!outcome.killed, "sleep exits on TERM");
    if containment.kind() == ContainmentKind::Cgroup {
        assert!(
            gone(grandchild),
            "the setsid grandchild is killed with the tree"
        );
    } else {
        assert!(
            !process_support::writable_cgroup2_mounted(),
            "a writable cgroup2 is mounted but the containment is {}",
            containment.describe()
        );
        eprintln!("SKIPPED (containment check): no writable cgroup2");
        let pid = rustix::process::Pid::from_raw(i32::try_from(grandchild).unwrap()).unwrap();
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
    let bad = vec![vec!["definitely-not-a-program-pk".to_string()]];
    let err = containment
        .spawn(
            "bad",
            &SpawnSpec {
                stages: &bad,
                cwd: Path::new("/"),
                env: &env,
            },
        )
        .expect_err("no such program");
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");

    // A script without `#!` runs with /bin/sh on this path too (the vfork path's test is in
    // process_tree.rs).
    let script = dir.path().join("plain-script");
    std::fs::write(&script, "echo \"script ran with $1\"\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let stages = vec![vec![script.display().to_string(), "arg-one".to_string()]];
    let mut spawned = containment
        .spawn(
            "script",
            &SpawnSpec {
                stages: &stages,
                cwd: Path::new("/"),
                env: &env,
            },
        )
        .expect("spawn a script without #!");
    let mut out = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        spawned.stdout.read_to_string(&mut out),
    )
    .await
    .expect("the script's output ends")
    .expect("read");
    assert_eq!(out, "script ran with arg-one\n");
    spawned.tree.wait_drained().await;
    containment.kill_all();
}
