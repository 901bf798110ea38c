//! Housekeeping of the cgroup backend: detection, leaf reuse, cleanup and drop.

mod process_support;

use std::time::Duration;

use pk::process::{Containment, ContainmentKind};
use process_support::{Lines, PidGuard, argv, drained, is_gone, sh, spawn, within};

#[test]
fn detect_uses_cgroups_where_a_writable_cgroup2_exists() {
    let Some(c) = process_support::cgroup() else {
        return;
    };
    assert_eq!(c.kind(), ContainmentKind::Cgroup);
    let run = c.run_cgroup().expect("a run cgroup");
    assert!(run.join("cgroup.procs").is_file());
    let name = run.file_name().unwrap().to_str().unwrap();
    assert!(
        name.starts_with(&format!("pk-{}-", std::process::id())),
        "{name}"
    );
    assert_eq!(c.describe(), format!("cgroup v2 ({})", run.display()));
}

#[tokio::test]
async fn a_leaf_is_reused_across_restarts() {
    let Some(c) = process_support::cgroup() else {
        return;
    };
    let mut first = spawn(&c, "api", &[argv(&["true"])]);
    within("exit", first.tree.wait_stages()).await;
    drained(&mut first.tree).await;
    let mut second = spawn(&c, "api", &[argv(&["true"])]);
    assert_eq!(first.tree.cgroup(), second.tree.cgroup());
    within("exit", second.tree.wait_stages()).await;
    drained(&mut second.tree).await;
}

#[tokio::test]
async fn cleanup_removes_the_run_cgroup_and_its_leaves() {
    let Some(c) = process_support::cgroup() else {
        return;
    };
    let run = c.run_cgroup().unwrap().to_owned();
    let mut spawned = spawn(&c, "svc", &[sh("sleep 1000 & echo $!; wait")]);
    let grandchild = Lines::new(spawned.stdout).pid().await;
    let _escapees = PidGuard(vec![grandchild]);
    let outcome = within("stop", spawned.tree.stop(15, Duration::from_secs(10))).await;
    assert!(!outcome.killed);
    assert!(run.join("svc").is_dir());
    c.cleanup();
    assert!(!run.exists(), "{} is still there", run.display());
    c.cleanup(); // idempotent
}

#[tokio::test]
async fn dropping_the_containment_kills_its_trees_and_removes_the_run_cgroup() {
    // Its own drop is under test, so no `Guarded` here.
    let Some(containment) = process_support::cgroup_unguarded() else {
        return;
    };
    let run = containment.run_cgroup().unwrap().to_owned();
    let script = "trap '' TERM; sleep 1000 & echo $!; wait";
    let mut spawned = spawn(&containment, "svc", &[sh(script)]);
    let grandchild = Lines::new(spawned.stdout).pid().await;
    let _escapees = PidGuard(vec![grandchild, spawned.tree.pids()[0]]);
    drop::<Containment>(containment);
    within("the tree to be killed", spawned.tree.wait_stages()).await;
    process_support::poll_until("the grandchild to die", || is_gone(grandchild)).await;
    assert!(!run.exists(), "{} is still there", run.display());
}
