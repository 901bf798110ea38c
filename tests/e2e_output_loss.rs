//! Output that cannot be written (issue 11): `pk up --plain | head` (EPIPE) and a full disk
//! (ENOSPC, /dev/full). pk says so on stderr, stops the stack (services never run unseen) and
//! exits 1.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{DEADLINE, Project, started_pids, wait_gone};

/// Waits for `child` to exit within the deadline; its code.
fn wait_code(child: &mut std::process::Child) -> i32 {
    let end = Instant::now() + DEADLINE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        if Instant::now() > end {
            // Our own child, by pid: nothing is left behind even when the test fails.
            let _ = child.kill();
            let _ = child.wait();
            panic!("pk did not exit after its stdout went away");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `pk up --plain` in `p` with its stdout going to `stdout`.
fn pk(p: &Project, stdout: Stdio) -> std::process::Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pk"));
    cmd.args(["up", "--plain", "--color", "never"])
        .current_dir(p.path())
        .env_remove("PK_FILE")
        .env_remove("PK_CONTAINMENT")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped());
    #[expect(clippy::disallowed_methods, reason = "runs the binary under test")]
    cmd.spawn().unwrap()
}

#[test]
fn a_closed_stdout_stops_the_stack_and_pk_exits_1_saying_why() {
    let p = Project::new(
        "services:\n  chatty:\n    command: \"while :; do echo tick; sleep 0.01; done\"\n",
    );
    let mut child = pk(&p, Stdio::piped());
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut pids = Vec::new();
    let mut ticks = 0;
    let mut line = String::new();
    // `| head -5`: a few lines, then the reader goes away.
    while ticks < 5 {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "pk ended early");
        if line.contains("started (pid") {
            pids = started_pids(line.trim_end());
        }
        ticks += usize::from(line.contains("| tick"));
    }
    drop(out);
    let code = wait_code(&mut child);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("cannot write to stdout") && stderr.contains("stopping the stack"),
        "{stderr}"
    );
    assert!(!pids.is_empty());
    for pid in pids {
        wait_gone(pid, "the service after stdout went away");
    }
}

#[test]
fn a_full_disk_is_said_on_stderr_and_pk_exits_1() {
    let p = Project::new("services:\n  hello:\n    command: \"echo hi; exec sleep 1000\"\n");
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let mut child = pk(&p, Stdio::from(full));
    let code = wait_code(&mut child);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("cannot write to stdout (No space left on device"),
        "{stderr}"
    );
}
