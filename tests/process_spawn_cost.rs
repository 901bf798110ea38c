//! The cost of a spawn must not grow with the number of services running. A child copies the
//! descriptor table of the process that clones it (`dup_fd`) and closes the close-on-exec
//! ones at exec: if that process is pk, with ~3 descriptors per running service, every spawn
//! costs O(services). The kernel shows the size of the table a process got in
//! `/proc/<pid>/status` (`FDSize`), and it stays that size after exec: a count, not a timing.
//! Its own test binary: it holds 1,500 descriptors and 500 processes.
//!
//! Linux only by nature (the spawner process, /proc FDSize): not built with `--features
//! portable`.
#![cfg(not(feature = "portable"))]

mod process_support;

use process_support::{argv, pgroup, spawn};

/// A field of `/proc/<pid>/status`.
fn status_field(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in {status}"))
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Process groups only: the cgroup backend spawns through the same path (its leaf's directory
/// is one more descriptor per request, opened and closed around it).
#[tokio::test]
async fn with_500_services_running_the_next_spawn_copies_a_small_descriptor_table() {
    pk::process::raise_fd_limit().expect("raise RLIMIT_NOFILE");
    let containment = pgroup();
    let running: Vec<_> = (0..500)
        .map(|i| spawn(&containment, &format!("s{i}"), &[argv(&["sleep", "1000"])]))
        .collect();
    let me = std::process::id();
    let held = open_fds(me);
    assert!(
        held >= 1500,
        "the test holds ~3 descriptors per running service: {held}"
    );
    let next = spawn(&containment, "next", &[argv(&["sleep", "1000"])]);
    let pid = next.tree.pids()[0];
    let table = status_field(pid, "FDSize:");
    assert!(
        table <= 64,
        "the 501st service got a descriptor table of {table} slots: its creator held {held} descriptors"
    );
    // The processes that make them are the spawners, and each holds a handful of descriptors.
    let spawners = pk::process::spawner_pids();
    assert!(!spawners.is_empty(), "a spawner process runs");
    for spawner in spawners {
        let held = open_fds(spawner);
        assert!(held <= 8, "spawner {spawner} holds {held}");
    }
    // The service is still this process's child: it reaps it, and the parent-death signal
    // follows this process, not the spawner.
    assert_eq!(status_field(pid, "PPid:"), u64::from(me));
    drop(running);
    drop(next);
    containment.kill_all();
}
