//! Shared helpers of the `process_*` tests: the two backends, guards that leave no process
//! behind even when a test fails, and deadline-bounded polling (no fixed sleeps).

#![allow(dead_code, reason = "each test crate uses a different subset")]

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use pk::process::{Containment, ContainmentKind, ProcessTree, SpawnSpec, Spawned};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::unix::pipe::Receiver;

/// Every wait in these tests ends by this deadline.
pub(crate) const DEADLINE: Duration = Duration::from_secs(10);

/// Generates one `#[tokio::test]` per backend for each scenario `async fn name(c: Guarded)`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn cgroup() {
                if let Some(containment) = $crate::process_support::cgroup() {
                    super::$name(containment).await;
                }
            }

            #[tokio::test]
            async fn pgroup() {
                super::$name($crate::process_support::pgroup()).await;
            }
        }
    )*};
}

/// A containment that, on drop (also when a test panics), SIGKILLs everything it holds, waits
/// for it to go and removes its cgroup.
pub(crate) struct Guarded(pub Containment);

impl std::ops::Deref for Guarded {
    type Target = Containment;
    fn deref(&self) -> &Containment {
        &self.0
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.0.kill_all();
        if let Some(dir) = self.0.run_cgroup() {
            let deadline = std::time::Instant::now() + DEADLINE;
            while populated(dir) && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        self.0.cleanup();
    }
}

/// SIGKILLs the given pids on drop: for processes that escaped the containment.
#[derive(Default)]
pub(crate) struct PidGuard(pub Vec<u32>);

impl Drop for PidGuard {
    fn drop(&mut self) {
        for &pid in &self.0 {
            if !is_gone(pid) {
                let pid = rustix::process::Pid::from_raw(i32::try_from(pid).unwrap()).unwrap();
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
    }
}

fn populated(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("cgroup.events"))
        .is_ok_and(|events| events.lines().any(|line| line == "populated 1"))
}

/// Whether this machine has a cgroup2 mount that is mounted read-write.
pub(crate) fn writable_cgroup2_mounted() -> bool {
    std::fs::read_to_string("/proc/self/mountinfo").is_ok_and(|text| {
        text.lines().any(|line| {
            let Some((left, right)) = line.split_once(" - ") else {
                return false;
            };
            right.starts_with("cgroup2 ")
                && left
                    .split(' ')
                    .nth(5)
                    .is_some_and(|options| options.split(',').any(|option| option == "rw"))
        })
    })
}

/// The cgroup backend, or `None` after a loud SKIPPED line when this machine has none.
pub(crate) fn cgroup() -> Option<Guarded> {
    cgroup_unguarded().map(Guarded)
}

/// Like [`cgroup`], for tests of `Containment`'s own drop.
pub(crate) fn cgroup_unguarded() -> Option<Containment> {
    let containment = Containment::detect();
    if containment.kind() == ContainmentKind::Cgroup {
        eprintln!("running against {}", containment.describe());
        return Some(containment);
    }
    // Where a writable cgroup2 exists, a cgroup variant that cannot use it must fail, never
    // pass quietly as a skip (also when PK_CONTAINMENT=pgroup leaked into the test's env).
    assert!(
        !writable_cgroup2_mounted(),
        "a writable cgroup2 is mounted but detect() chose {}; a cgroup test may not skip here",
        containment.describe()
    );
    // Straight to fd 2: libtest captures `eprintln!`, and a skip must not go unnoticed.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: no writable cgroup2 ({})",
        containment.describe()
    );
    None
}

pub(crate) fn pgroup() -> Guarded {
    Guarded(Containment::process_groups("test"))
}

pub(crate) fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|&word| word.to_owned()).collect()
}

pub(crate) fn sh(script: &str) -> Vec<String> {
    argv(&["/bin/sh", "-c", script])
}

pub(crate) fn base_env() -> BTreeMap<String, String> {
    BTreeMap::from([("PATH".to_owned(), "/usr/local/bin:/usr/bin:/bin".to_owned())])
}

/// Spawns `stages` in leaf `leaf` with [`base_env`] and `/` as cwd.
pub(crate) fn spawn(containment: &Containment, leaf: &str, stages: &[Vec<String>]) -> Spawned {
    containment
        .spawn(
            leaf,
            &SpawnSpec {
                stages,
                cwd: Path::new("/"),
                env: &base_env(),
            },
        )
        .expect("spawn")
}

/// Fails the test if `future` does not finish within [`DEADLINE`].
pub(crate) async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, future)
        .await
        .unwrap_or_else(|_| panic!("timed out after {DEADLINE:?} waiting for {what}"))
}

/// Polls `condition` every 10 ms until it holds; fails the test after [`DEADLINE`].
pub(crate) async fn poll_until(what: &str, mut condition: impl FnMut() -> bool) {
    within(what, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

/// Reads lines from a tree's stdout/stderr.
pub(crate) struct Lines(tokio::io::Lines<BufReader<Receiver>>);

impl Lines {
    pub(crate) fn new(receiver: Receiver) -> Self {
        Lines(BufReader::new(receiver).lines())
    }

    pub(crate) async fn next(&mut self) -> Option<String> {
        within("a line of output", self.0.next_line())
            .await
            .expect("reading output")
    }

    /// The next line, parsed as a pid.
    pub(crate) async fn pid(&mut self) -> u32 {
        let line = self.next().await.expect("a pid line");
        line.trim()
            .parse()
            .unwrap_or_else(|_| panic!("not a pid: {line:?}"))
    }
}

/// Everything until EOF (every writer closed).
pub(crate) async fn read_all(mut receiver: Receiver) -> String {
    let mut out = String::new();
    within("EOF", receiver.read_to_string(&mut out))
        .await
        .expect("reading output");
    out
}

/// Fields of `/proc/<pid>/stat` after the command name: state, ppid, pgrp, session, ...
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    Some(rest.split(' ').map(str::to_owned).collect())
}

/// Gone: no such process, or a zombie (dead, whoever reaps it).
pub(crate) fn is_gone(pid: u32) -> bool {
    stat_fields(pid).is_none_or(|fields| fields[0] == "Z" || fields[0] == "X")
}

pub(crate) fn is_zombie(pid: u32) -> bool {
    stat_fields(pid).is_some_and(|fields| fields[0] == "Z")
}

pub(crate) fn process_group_of(pid: u32) -> Option<u32> {
    stat_fields(pid)?[2].parse().ok()
}

pub(crate) fn session_of(pid: u32) -> Option<u32> {
    stat_fields(pid)?[3].parse().ok()
}

/// The cgroup v2 path of `pid` (the `0::` line of `/proc/<pid>/cgroup`).
pub(crate) fn cgroup_of(pid: u32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("0::"))
        .map(str::to_owned)
}

/// Live processes whose argv is exactly `words`.
pub(crate) fn live_with_argv(words: &[&str]) -> Vec<u32> {
    let wanted: Vec<u8> = words
        .iter()
        .flat_map(|word| word.bytes().chain([0]))
        .collect();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmd| cmd == wanted)
                && !is_gone(pid)
        })
        .collect()
}

/// Waits until the tree drained, failing the test after [`DEADLINE`].
pub(crate) async fn drained(tree: &mut ProcessTree) {
    within("the tree to drain", tree.wait_drained()).await;
}
