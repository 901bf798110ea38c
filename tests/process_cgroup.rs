//! Housekeeping of the cgroup backend: detection, leaf reuse, cleanup and drop.
//!
//! Linux only by nature (cgroup v2): not built with `--features portable`.
#![cfg(not(feature = "portable"))]

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

/// A service's leaf goes once its tree has drained (its removal is the emptiness check), and
/// the next run of the service makes it again, at the same place.
#[tokio::test]
async fn a_service_leaf_is_removed_when_its_tree_drains_and_made_again_on_restart() {
    let Some(c) = process_support::cgroup() else {
        return;
    };
    let mut first = spawn(&c, "api", &[argv(&["true"])]);
    let leaf = first.tree.cgroup().expect("a leaf").to_owned();
    assert!(leaf.is_dir());
    within("exit", first.tree.wait_stages()).await;
    drained(&mut first.tree).await;
    assert!(!leaf.exists(), "{} is still there", leaf.display());
    let mut second = spawn(&c, "api", &[argv(&["true"])]);
    assert_eq!(second.tree.cgroup(), Some(leaf.as_path()));
    assert!(leaf.is_dir());
    within("exit", second.tree.wait_stages()).await;
    drained(&mut second.tree).await;
}

/// Each stage is created in its leaf (`clone3(CLONE_INTO_CGROUP)`) by the spawner processes,
/// as in `pk up`: it never migrates there (a migration takes the cgroup core's global lock for
/// writing). `x86_64`, Linux 5.7+.
#[cfg(target_arch = "x86_64")]
#[tokio::test]
async fn stages_are_created_in_their_leaf_by_the_spawners_not_moved_there() {
    let Some(c) = process_support::cgroup() else {
        return;
    };
    let before = pk::process::children_born_in_their_leaf();
    let mut spawned = spawn(&c, "born", &[argv(&["true"]), argv(&["cat"])]);
    assert!(
        !pk::process::spawner_pids().is_empty(),
        "spawned through the spawner processes"
    );
    let born = pk::process::children_born_in_their_leaf() - before;
    assert!(born >= 2, "{born} of 2 stages were created in their leaf");
    within("exit", spawned.tree.wait_stages()).await;
    drained(&mut spawned.tree).await;
}

#[tokio::test]
async fn cleanup_removes_the_run_cgroup_and_its_leaves() {
    let Some(c) = process_support::cgroup() else {
        return;
    };
    let run = c.run_cgroup().unwrap().to_owned();
    // A probe's leaf stays after its tree ends (attempts come again and again).
    let mut spawned = spawn(&c, "svc@probe", &[sh("sleep 1000 & echo $!; wait")]);
    let grandchild = Lines::new(spawned.stdout).pid().await;
    let _escapees = PidGuard(vec![grandchild]);
    let outcome = within("stop", spawned.tree.stop(15, Duration::from_secs(10))).await;
    assert!(!outcome.killed);
    assert!(run.join("svc@probe").is_dir());
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

#[tokio::test]
async fn no_service_name_shares_a_leaf_with_a_probe_or_an_interface_file() {
    use pk::process::{Role, leaf_name};
    let Some(c) = process_support::cgroup() else {
        return;
    };
    // A service named `db.probe`, and `db`'s exec probe: killing the probe's tree (as every
    // probe attempt does) must leave the service alone.
    let mut service = spawn(&c, "db.probe", &[sh("echo up; exec sleep 1000")]);
    let mut probe = spawn(
        &c,
        &leaf_name("db", Role::Probe),
        &[argv(&["sleep", "1000"])],
    );
    assert_ne!(service.tree.cgroup(), probe.tree.cgroup());
    probe.tree.kill();
    within("the probe to die", probe.tree.wait_stages()).await;
    drained(&mut probe.tree).await;
    // Its `up` line shows it ran; it must still be running after the probe's leaf was killed.
    assert_eq!(
        Lines::new(service.stdout).next().await.as_deref(),
        Some("up")
    );
    assert!(
        !service.tree.is_drained(),
        "the probe's kill reached service `db.probe`"
    );
    // Names of cgroup interface files are valid service names.
    let mut odd: Vec<_> = ["cpu.stat", "cgroup.events", "memory.max"]
        .into_iter()
        .map(|name| spawn(&c, name, &[argv(&["true"])]))
        .collect();
    for spawned in &mut odd {
        within("exit", spawned.tree.wait_stages()).await;
        drained(&mut spawned.tree).await;
    }
    service.tree.kill();
    within("the service to die", service.tree.wait_stages()).await;
    drained(&mut service.tree).await;
}

#[test]
fn a_cgroup_test_that_cannot_use_cgroups_fails_where_cgroup2_is_writable() {
    if !process_support::writable_cgroup2_mounted() {
        eprintln!("SKIPPED: no writable cgroup2; skips are allowed here");
        return;
    }
    // Re-run a cgroup test of this binary with the fallback forced: it must fail, not `ok`.
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "detect_uses_cgroups_where_a_writable_cgroup2_exists",
        "--exact",
        "--test-threads=1",
    ])
    .env("PK_CONTAINMENT", "pgroup");
    #[expect(clippy::disallowed_methods, reason = "re-runs this test binary")]
    let out = cmd.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the skipped cgroup test passed:\n{text}"
    );
    assert!(text.contains("1 failed"), "{text}");
    assert!(text.contains("a cgroup test may not skip here"), "{text}");
}
