//! Behaviour of process trees against real processes, run once per backend (cgroup v2 via
//! `Containment::detect()`, and process groups).

mod process_support;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::{Duration, Instant};

use pk::process::SpawnSpec;
use pk::vocab::shell_argv;
use process_support::{
    Guarded, Lines, PidGuard, argv, base_env, cgroup_of, drained, is_gone, is_zombie,
    live_with_argv, poll_until, process_group_of, read_all, sh, spawn, within,
};

const TERM: i32 = 15;
const KILL: i32 = 9;
const LONG_GRACE: Duration = Duration::from_secs(10);
const SHORT_GRACE: Duration = Duration::from_millis(300);

both_backends!(
    exit_status_is_reported,
    env_is_exactly_the_given_map,
    cwd_is_applied,
    stdout_and_stderr_are_captured_separately,
    a_three_stage_pipeline_passes_data_through,
    pipeline_statuses_are_per_stage,
    pipeline_stages_share_one_group_and_leaf,
    signal_reaches_the_tree,
    stop_drains_a_term_responsive_tree_without_kill,
    stop_kills_a_term_ignoring_tree_after_grace,
    a_grandchild_ignoring_term_is_killed_after_grace,
    is_drained_reaps_a_zombie_leader_first,
    an_escaped_child_holding_stdout_does_not_block_wait_stages,
    stop_of_an_ended_tree_sends_nothing,
    kill_all_kills_every_tree,
    spawn_errors_are_reported,
    a_failed_pipeline_leaves_nothing_behind,
    a_simple_shell_command_runs_without_a_shell,
    services_get_default_signal_dispositions,
    a_script_without_shebang_runs_with_sh,
);

async fn exit_status_is_reported(c: Guarded) {
    let mut spawned = spawn(&c, "exit", &[sh("exit 3")]);
    assert_eq!(spawned.tree.pids().len(), 1);
    let statuses = within("exit", spawned.tree.wait_stages()).await;
    assert_eq!(statuses.len(), 1);
    assert_eq!(statuses[0].code(), Some(3));
    drained(&mut spawned.tree).await;

    let mut spawned = spawn(&c, "exit", &[argv(&["true"])]);
    assert!(within("true", spawned.tree.wait_stages()).await[0].success());
}

async fn env_is_exactly_the_given_map(c: Guarded) {
    let mut env = base_env();
    env.insert("PK_TEST".into(), "a b=c".into());
    let stages = [argv(&["env"])];
    let spec = SpawnSpec {
        stages: &stages,
        cwd: Path::new("/"),
        env: &env,
    };
    let spawned = c.spawn("env", &spec).expect("spawn");
    let mut lines: Vec<String> = read_all(spawned.stdout)
        .await
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    // Process groups add one variable: the run marker that identifies the run's processes.
    if let Some(marker) = c.marker() {
        env.insert(pk::process::identity::MARKER_ENV.into(), marker.into());
    }
    let expected: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    assert_eq!(lines, expected);
}

async fn cwd_is_applied(c: Guarded) {
    let dir = tempfile::tempdir().unwrap();
    let stages = [argv(&["pwd"])];
    let spec = SpawnSpec {
        stages: &stages,
        cwd: dir.path(),
        env: &base_env(),
    };
    let spawned = c.spawn("cwd", &spec).expect("spawn");
    let out = read_all(spawned.stdout).await;
    assert_eq!(Path::new(out.trim()), dir.path().canonicalize().unwrap());
}

async fn stdout_and_stderr_are_captured_separately(c: Guarded) {
    let mut spawned = spawn(&c, "io", &[sh("echo out; echo err >&2; echo out2")]);
    let (out, err) = tokio::join!(read_all(spawned.stdout), read_all(spawned.stderr));
    assert_eq!(out, "out\nout2\n");
    assert_eq!(err, "err\n");
    assert!(within("exit", spawned.tree.wait_stages()).await[0].success());
}

async fn a_three_stage_pipeline_passes_data_through(c: Guarded) {
    let stages = [
        argv(&["printf", "c\\na\\nb\\n"]),
        argv(&["tr", "a-z", "A-Z"]),
        argv(&["sort"]),
    ];
    let mut spawned = spawn(&c, "pipe", &stages);
    let pids = spawned.tree.pids();
    assert_eq!(pids.len(), 3);
    assert!(pids[0] != pids[1] && pids[1] != pids[2] && pids[0] != pids[2]);
    assert_eq!(read_all(spawned.stdout).await, "A\nB\nC\n");
    let statuses = within("pipeline", spawned.tree.wait_stages()).await;
    assert!(
        statuses.iter().all(std::process::ExitStatus::success),
        "{statuses:?}"
    );
    drained(&mut spawned.tree).await;
}

async fn pipeline_statuses_are_per_stage(c: Guarded) {
    let stages = [
        sh("echo one >&2; echo data; exit 2"),
        sh("cat"),
        sh("cat >/dev/null; echo two >&2; exit 5"),
    ];
    let mut spawned = spawn(&c, "pipe", &stages);
    let err = read_all(spawned.stderr).await;
    let mut err_lines: Vec<&str> = err.lines().collect();
    err_lines.sort_unstable();
    assert_eq!(
        err_lines,
        ["one", "two"],
        "one shared stderr pipe for all stages"
    );
    let codes: Vec<Option<i32>> = within("pipeline", spawned.tree.wait_stages())
        .await
        .iter()
        .map(std::process::ExitStatus::code)
        .collect();
    assert_eq!(codes, [Some(2), Some(0), Some(5)]);
}

async fn pipeline_stages_share_one_group_and_leaf(c: Guarded) {
    let stages = [argv(&["sleep", "1000"]), argv(&["cat"]), argv(&["cat"])];
    let mut spawned = spawn(&c, "pipe.shared", &stages);
    let pids = spawned.tree.pids();
    assert_eq!(spawned.tree.pgid(), pids[0]);
    for &pid in &pids {
        assert_eq!(process_group_of(pid), Some(pids[0]), "stage {pid}");
    }
    if let (Some(leaf), Some(run)) = (spawned.tree.cgroup(), c.run_cgroup()) {
        assert!(leaf.starts_with(run));
        assert_eq!(leaf.file_name().unwrap(), "pipe.shared@service");
        for &pid in &pids {
            let path = cgroup_of(pid).unwrap();
            assert!(
                leaf.ends_with(path.trim_start_matches('/')),
                "{pid} in {path}"
            );
        }
    }
    let outcome = within("stop", spawned.tree.stop(TERM, LONG_GRACE)).await;
    assert!(!outcome.killed);
}

async fn signal_reaches_the_tree(c: Guarded) {
    let script = "trap 'echo usr1; exit 7' USR1; echo ready; while :; do sleep 0.01; done";
    let mut spawned = spawn(&c, "usr1", &[sh(script)]);
    let mut out = Lines::new(spawned.stdout);
    assert_eq!(out.next().await.as_deref(), Some("ready"));
    spawned.tree.signal(10).expect("SIGUSR1");
    assert_eq!(out.next().await.as_deref(), Some("usr1"));
    let statuses = within("exit", spawned.tree.wait_stages()).await;
    assert_eq!(statuses[0].code(), Some(7));
    drained(&mut spawned.tree).await;
    assert_eq!(
        spawned.tree.signal(0x7fff).unwrap_err().kind(),
        std::io::ErrorKind::InvalidInput
    );
}

async fn stop_drains_a_term_responsive_tree_without_kill(c: Guarded) {
    let script = "sleep 1000 & echo $!; sleep 1000 & echo $!; wait";
    let mut spawned = spawn(&c, "svc", &[sh(script)]);
    let mut out = Lines::new(spawned.stdout);
    let grandchildren = [out.pid().await, out.pid().await];
    let _escapees = PidGuard(grandchildren.to_vec());
    let outcome = within("stop", spawned.tree.stop(TERM, LONG_GRACE)).await;
    assert!(!outcome.killed);
    assert_eq!(outcome.statuses[0].signal(), Some(TERM));
    assert!(spawned.tree.is_drained());
    for pid in grandchildren {
        assert!(is_gone(pid), "grandchild {pid} survived");
    }
}

async fn stop_kills_a_term_ignoring_tree_after_grace(c: Guarded) {
    // dash's `trap '' TERM` is inherited by the sleep.
    let script = "trap '' TERM; sleep 1000 & echo $!; wait";
    let mut spawned = spawn(&c, "stubborn", &[sh(script)]);
    let mut out = Lines::new(spawned.stdout);
    let grandchild = out.pid().await;
    let _escapees = PidGuard(vec![grandchild]);
    let started = Instant::now();
    let outcome = within("stop", spawned.tree.stop(TERM, SHORT_GRACE)).await;
    assert!(started.elapsed() >= SHORT_GRACE);
    assert!(outcome.killed);
    assert_eq!(outcome.statuses[0].signal(), Some(KILL));
    assert!(is_gone(grandchild));
}

async fn a_grandchild_ignoring_term_is_killed_after_grace(c: Guarded) {
    // The leader dies on TERM at once; its (non-setsid) child ignores TERM and keeps the tree.
    let script = "(trap '' TERM; exec sleep 1000) & echo $!; wait";
    let mut spawned = spawn(&c, "grandchild", &[sh(script)]);
    let mut out = Lines::new(spawned.stdout);
    let grandchild = out.pid().await;
    let _escapees = PidGuard(vec![grandchild]);
    poll_until("the grandchild to exec sleep", || {
        live_with_argv(&["sleep", "1000"]).contains(&grandchild)
    })
    .await;
    let outcome = within("stop", spawned.tree.stop(TERM, SHORT_GRACE)).await;
    assert!(outcome.killed);
    assert_eq!(outcome.statuses[0].signal(), Some(TERM));
    assert!(is_gone(grandchild));
}

async fn is_drained_reaps_a_zombie_leader_first(c: Guarded) {
    let mut spawned = spawn(&c, "zombie", &[argv(&["true"])]);
    let leader = spawned.tree.pids()[0];
    // Nobody has waited for it: it stays a zombie (which keeps a process group alive).
    poll_until("the leader to become a zombie", || is_zombie(leader)).await;
    poll_until("is_drained", || spawned.tree.is_drained()).await;
    assert!(
        !Path::new(&format!("/proc/{leader}")).exists(),
        "drained, but the leader was not reaped"
    );
    assert!(spawned.tree.wait_stages().await[0].success());

    // A reaped leader whose child still runs: not drained until the child is gone.
    let mut spawned = spawn(&c, "zombie", &[sh("sleep 1000 & echo $!")]);
    let grandchild = Lines::new(spawned.stdout).pid().await;
    let _escapees = PidGuard(vec![grandchild]);
    assert!(within("leader exit", spawned.tree.wait_stages()).await[0].success());
    assert!(!spawned.tree.is_drained());
    spawned.tree.kill();
    drained(&mut spawned.tree).await;
    assert!(is_gone(grandchild));
}

async fn an_escaped_child_holding_stdout_does_not_block_wait_stages(c: Guarded) {
    let mut spawned = spawn(&c, "holder", &[sh("sleep 1000 & echo $!")]);
    let mut out = Lines::new(spawned.stdout);
    let holder = out.pid().await;
    let _escapees = PidGuard(vec![holder]);
    let statuses = within("wait_stages", spawned.tree.wait_stages()).await;
    assert!(statuses[0].success());
    assert!(!spawned.tree.is_drained(), "the holder still runs");
    let outcome = within("stop", spawned.tree.stop(TERM, LONG_GRACE)).await;
    assert!(!outcome.killed);
    assert!(is_gone(holder));
    assert_eq!(out.next().await, None, "EOF once the holder is gone");
}

async fn stop_of_an_ended_tree_sends_nothing(c: Guarded) {
    let mut spawned = spawn(&c, "ended", &[sh("exit 4")]);
    within("exit", spawned.tree.wait_stages()).await;
    let outcome = within("stop", spawned.tree.stop(TERM, SHORT_GRACE)).await;
    assert!(!outcome.killed);
    assert_eq!(outcome.statuses[0].code(), Some(4));
}

async fn kill_all_kills_every_tree(c: Guarded) {
    let script = "trap '' TERM; sleep 1000 & echo $!; wait";
    let mut a = spawn(&c, "a", &[sh(script)]);
    let mut b = spawn(&c, "b", &[sh(script), argv(&["cat"])]);
    let grandchildren = vec![
        Lines::new(a.stdout).pid().await,
        Lines::new(b.stdout).pid().await,
    ];
    let _escapees = PidGuard(grandchildren.clone());
    c.kill_all();
    drained(&mut a.tree).await;
    drained(&mut b.tree).await;
    assert_eq!(a.tree.wait_stages().await[0].signal(), Some(KILL));
    let b_statuses = b.tree.wait_stages().await;
    assert!(
        b_statuses
            .iter()
            .all(|status| status.signal() == Some(KILL))
    );
    for pid in grandchildren {
        assert!(is_gone(pid), "{pid} survived kill_all");
    }
}

async fn spawn_errors_are_reported(c: Guarded) {
    let env = base_env();
    let spec = |stages| SpawnSpec {
        stages,
        cwd: Path::new("/"),
        env: &env,
    };
    let missing = [argv(&["pk-test-no-such-program"])];
    let error = c.spawn("err", &spec(&missing)).unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::NotFound);
    assert!(
        error.to_string().contains("pk-test-no-such-program"),
        "{error}"
    );

    let error = c.spawn("err", &spec(&[])).unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    let error = c.spawn("err", &spec(&[vec![]])).unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);

    let stages = [argv(&["true"])];
    let bad_cwd = SpawnSpec {
        stages: &stages,
        cwd: Path::new("/pk-test/no/such/dir"),
        env: &env,
    };
    let error = c.spawn("err", &bad_cwd).unwrap_err();
    assert!(
        error.to_string().contains("/pk-test/no/such/dir"),
        "{error}"
    );
}

async fn a_failed_pipeline_leaves_nothing_behind(c: Guarded) {
    // A unique argv so that the check below sees only this test's stage 0.
    let marker = format!("1000.{}{}", std::process::id(), c.kind() as u8);
    let stages = [
        argv(&["sleep", &marker]),
        argv(&["pk-test-no-such-program"]),
    ];
    let spec = SpawnSpec {
        stages: &stages,
        cwd: Path::new("/"),
        env: &base_env(),
    };
    assert!(c.spawn("failed", &spec).is_err());
    poll_until("stage 0 of the failed pipeline to be killed", || {
        live_with_argv(&["sleep", &marker]).is_empty()
    })
    .await;
}

async fn a_simple_shell_command_runs_without_a_shell(c: Guarded) {
    let stages = [shell_argv("sleep 1000")];
    let mut spawned = spawn(&c, "simple", &stages);
    let pid = spawned.tree.pids()[0];
    poll_until("sleep to run", || {
        std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmd| cmd == b"sleep\x001000\x00")
    })
    .await;
    let outcome = within("stop", spawned.tree.stop(TERM, LONG_GRACE)).await;
    assert_eq!(outcome.statuses[0].signal(), Some(TERM));
}

/// pk itself ignores SIGPIPE (Rust does) and handles SIGINT/SIGTERM; a service starts with the
/// defaults: `yes | head` ends with `yes` killed by SIGPIPE, not failing on EPIPE.
async fn services_get_default_signal_dispositions(c: Guarded) {
    use std::os::unix::process::ExitStatusExt;
    let stages = [argv(&["yes"]), argv(&["head", "-n", "1"])];
    let mut spawned = spawn(&c, "sigpipe", &stages);
    assert_eq!(read_all(spawned.stdout).await, "y\n");
    let statuses = within("pipeline", spawned.tree.wait_stages()).await;
    assert_eq!(
        statuses[0].signal(),
        Some(13),
        "yes dies of SIGPIPE: {statuses:?}"
    );
    assert!(statuses[1].success());
    drained(&mut spawned.tree).await;
}

/// A script without `#!` fails to exec (`ENOEXEC`); like execvp (and std's spawn) pk then runs
/// it with `/bin/sh`, passing the arguments on.
async fn a_script_without_shebang_runs_with_sh(c: Guarded) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("plain-script");
    std::fs::write(&script, "echo \"script ran with $1\"\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let stages = [vec![script.display().to_string(), "arg-one".to_string()]];
    let mut spawned = spawn(&c, "script", &stages);
    assert_eq!(read_all(spawned.stdout).await, "script ran with arg-one\n");
    let statuses = within("script", spawned.tree.wait_stages()).await;
    assert!(statuses[0].success(), "{statuses:?}");
    drained(&mut spawned.tree).await;
}
