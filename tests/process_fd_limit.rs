//! Spawning at the open-file limit: whichever descriptor pk cannot get (a pipe, the pidfd, the
//! one received from the spawner), the spawn fails cleanly and leaves no child running or
//! unreaped. Its own test binary, because it lowers the process-wide `RLIMIT_NOFILE`.

mod process_support;

use process_support::{argv, base_env, cgroup, pgroup, poll_until, within};

/// The direct children of this process (of every thread), zombies included.
fn children() -> Vec<u32> {
    let mut out = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        if let Ok(list) = std::fs::read_to_string(task.path().join("children")) {
            out.extend(list.split_whitespace().map(|p| p.parse::<u32>().unwrap()));
        }
    }
    out
}

/// The direct children that are not pk's own helpers (they run this same binary).
fn services() -> Vec<u32> {
    let me = std::fs::read_link("/proc/self/exe").unwrap();
    children()
        .into_iter()
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/exe")).ok().as_ref() != Some(&me))
        .collect()
}

/// The lowest soft limit that leaves exactly `room` descriptor numbers free in this process
/// (new descriptors take the lowest free numbers, holes included).
fn limit_with_room(room: u64) -> u64 {
    let open: std::collections::BTreeSet<u64> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        // Not the listing's own descriptor: it is closed again by now.
        .filter(|e| {
            std::fs::read_link(e.path())
                .is_ok_and(|target| !(target.starts_with("/proc") && target.ends_with("fd")))
        })
        .filter_map(|e| e.file_name().to_str()?.parse::<u64>().ok())
        .collect();
    let mut limit = 0;
    let mut free = 0;
    loop {
        if free == room && !open.contains(&limit) {
            return limit;
        }
        if !open.contains(&limit) {
            free += 1;
        }
        limit += 1;
    }
}

fn set_soft_limit(soft: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on a valid struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit), 0);
        limit.rlim_cur = soft.min(limit.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &raw const limit), 0);
    }
}

#[tokio::test]
async fn a_spawn_at_the_descriptor_limit_fails_without_leaving_a_child() {
    let mut backends = vec![pgroup()];
    backends.extend(cgroup());
    for containment in &backends {
        let stages = [argv(&["sleep", "1000"])];
        let env = base_env();
        let spec = pk::process::SpawnSpec {
            stages: &stages,
            cwd: std::path::Path::new("/"),
            env: &env,
        };
        // Warm up: whatever the first spawn opens once (a spawner, a stack) is not counted.
        let mut first = containment.spawn("warm", &spec).expect("spawn");
        first.tree.kill();
        within("warm-up drained", first.tree.wait_drained()).await;
        drop(first);
        let (mut failed, mut succeeded) = (0, 0);
        // Room for 0, 1, 2, … more descriptors: every step of the spawn meets EMFILE once.
        for room in 0..24 {
            set_soft_limit(limit_with_room(room));
            let result = containment.spawn("limit", &spec);
            set_soft_limit(u64::MAX);
            match result {
                Err(error) => {
                    failed += 1;
                    assert!(
                        services().is_empty(),
                        "with room for {room} descriptors the spawn failed ({error}) but left children {:?}",
                        services()
                    );
                }
                Ok(mut spawned) => {
                    succeeded += 1;
                    spawned.tree.kill();
                    within("killed tree drained", spawned.tree.wait_drained()).await;
                    drop(spawned);
                    poll_until("no child left", || services().is_empty()).await;
                    break;
                }
            }
        }
        assert!(failed > 0, "the limit never bit");
        assert_eq!(succeeded, 1, "with enough room the spawn works");
    }
}
