//! pk as a child subreaper (process-group backend): a `setsid`'d or double-forked descendant
//! whose parent dies is reparented to pk instead of init (`PR_SET_CHILD_SUBREAPER`), so pk
//! knows it, tells its guard, reaps it when it exits, and stops it with the stack at teardown.
//!
//! Reaping adopted orphans must never steal the exit status of pk's own children (the stages,
//! reaped by their owners through a pidfd or by tokio, and the guard). The rule:
//! - every child pk spawns is registered in [`OWN`] (pid and start time) while the spawn holds
//!   [`SPAWNING`] for reading, from before the clone until the registration;
//! - a sweep holds [`SPAWNING`] for writing, lists pk's children (`/proc/self/task/*/children`),
//!   and only ever reaps (`waitpid(pid, WNOHANG)` on that one pid, never `-1`) a child that is
//!   not registered with the same start time. So a sweep never runs between a clone and its
//!   registration, a registered child is never touched (a pid cannot be reused before its
//!   owner reaped it), and a pid reused later by an orphan is told apart by its start time.
//!   `waitid(P_ALL, WNOWAIT)` was rejected: it peeks at one zombie only, so an own zombie whose
//!   owner has not reaped it yet would hide the orphans behind it.
//!
//! Sweeps run on every SIGCHLD (an adopted orphan's exit signals pk) and at teardown.
//! Invariants: the subreaper flag is set only with the process-group backend (under cgroups
//! the run cgroup already holds every escapee); nothing here kills (see `Containment`).

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock, PoisonError, RwLock};

use rustix::process::{Pid, WaitOptions};

use super::guard;
use super::identity;

/// Held for reading by a spawn from before its clone until its children are in [`OWN`]; held
/// for writing by a sweep.
static SPAWNING: RwLock<()> = RwLock::new(());

/// pk's own children: pid → start time.
static OWN: Mutex<BTreeMap<i32, u64>> = Mutex::new(BTreeMap::new());

/// [`spawning`] prunes [`OWN`] (bounds it by pk's live children) once it holds this many
/// entries, or twice as many as were left after the last prune, whichever is more: pruning
/// reads the start time of every entry, so a fixed threshold would make every spawn past it
/// cost O(children) (2,000 services took minutes to start); doubling keeps it O(1) amortised.
const OWN_PRUNE_AT: usize = 1024;

/// When [`spawning`] prunes [`OWN`] next (see [`OWN_PRUNE_AT`]).
static OWN_PRUNE_NEXT: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(OWN_PRUNE_AT);

/// Adopted orphans known alive: pid → start time.
static ADOPTED: Mutex<BTreeMap<i32, u64>> = Mutex::new(BTreeMap::new());

/// Whether the subreaper flag is set (once per process).
static ENABLED: OnceLock<bool> = OnceLock::new();

/// Makes pk a child subreaper (once) and, within a tokio runtime, starts reaping adopted
/// orphans on SIGCHLD. Returns whether pk is a subreaper.
pub(crate) fn enable() -> bool {
    let on = *ENABLED.get_or_init(|| {
        // SAFETY: prctl with integer arguments only.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0 }
    });
    if on && let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(async {
            use tokio::signal::unix::{SignalKind, signal};
            let Ok(mut sigchld) = signal(SignalKind::child()) else {
                return;
            };
            while sigchld.recv().await.is_some() {
                sweep();
            }
        });
    }
    on
}

/// Runs `spawn` (which starts pk's own children and returns their pids) so that no sweep can
/// mistake them for orphans.
pub(crate) fn spawning<T>(spawn: impl FnOnce() -> T, pids: impl Fn(&T) -> Vec<u32>) -> T {
    let _spawning = SPAWNING.read().unwrap_or_else(PoisonError::into_inner);
    let spawned = spawn();
    let mut own = OWN.lock().unwrap_or_else(PoisonError::into_inner);
    let prune_at = OWN_PRUNE_NEXT.load(std::sync::atomic::Ordering::Relaxed);
    if own.len() >= prune_at {
        // Without sweeps (no subreaper) nothing else prunes: keep only children still there.
        own.retain(|&pid, &mut start| identity::start_time(pid) == Some(start));
        OWN_PRUNE_NEXT.store(
            next_prune_at(own.len()),
            std::sync::atomic::Ordering::Relaxed,
        );
    }
    for pid in pids(&spawned) {
        if let Ok(pid) = i32::try_from(pid)
            && let Some(start) = identity::start_time(pid)
        {
            own.insert(pid, start);
        }
    }
    spawned
}

/// When to prune [`OWN`] next, `left` entries having survived this prune.
fn next_prune_at(left: usize) -> usize {
    (left * 2).max(OWN_PRUNE_AT)
}

/// Forgets the own children that are gone. A child missing from `children` is gone only if
/// its pid no longer names it (`start_time` differs or fails): the kernel's `children` list is
/// read a page at a time, so while many children exit at once (a teardown of 1,000 services)
/// one reading can skip live ones and zombies. Forgetting such a zombie made the next sweep
/// reap it as an orphan, and its owner's wait failed with `ECHILD`. Only an entry missing from
/// the list is looked up, once: O(1) per exit.
fn forget_gone(
    own: &mut BTreeMap<i32, u64>,
    children: &[i32],
    start_time: impl Fn(i32) -> Option<u64>,
) {
    own.retain(|&pid, &mut start| {
        children.binary_search(&pid).is_ok() || start_time(pid) == Some(start)
    });
}

/// pk's children as the kernel lists them (every thread's).
fn children() -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    let mut pids: Vec<i32> = tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|text| {
            text.split_ascii_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// Reaps adopted orphans that exited, learns new ones (telling the guard), forgets own
/// children that are gone. Returns the adopted orphans alive now.
pub(crate) fn sweep() -> Vec<(i32, u64)> {
    let _sweeping = SPAWNING.write().unwrap_or_else(PoisonError::into_inner);
    let children = children();
    let guard_pid = guard::pid().and_then(|p| i32::try_from(p).ok());
    // pk's spawner processes are pk's children too, not orphans (they never exit before pk).
    let mut own = OWN.lock().unwrap_or_else(PoisonError::into_inner);
    forget_gone(&mut own, &children, identity::start_time);
    let mut adopted = ADOPTED.lock().unwrap_or_else(PoisonError::into_inner);
    let mut alive = BTreeMap::new();
    for &pid in &children {
        let Some(st) = identity::stat(pid) else {
            continue;
        };
        if own.get(&pid) == Some(&st.start) {
            continue;
        }
        if st.state == 'Z' {
            if let Some(p) = Pid::from_raw(pid) {
                // This one pid only: an orphan's status is nobody's to read.
                let _ = rustix::process::waitpid(Some(p), WaitOptions::NOHANG);
            }
        } else if Some(pid) != guard_pid && !super::spawner::is_spawner(pid) {
            alive.insert(pid, st.start);
        }
    }
    for (&pid, &start) in &alive {
        if adopted.get(&pid) != Some(&start) {
            guard::note(guard::Note::Adopted { pid, start });
        }
    }
    for (&pid, _) in adopted.iter().filter(|(p, _)| !alive.contains_key(p)) {
        guard::note(guard::Note::AdoptedGone(pid));
    }
    *adopted = alive;
    adopted.iter().map(|(&p, &s)| (p, s)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A child a `children` reading skipped stays registered while its pid still names it
    /// (else the next sweep reaps it as an orphan); one that is gone, or whose pid now names
    /// another process, is forgotten.
    #[test]
    fn an_own_child_missing_from_one_listing_is_kept_until_it_is_gone() {
        let mut own = BTreeMap::from([(10, 100), (11, 110), (12, 120), (13, 130)]);
        let listed = [10];
        // 11 exists still (a zombie, say), 12 is gone, 13's pid was reused.
        let start_time = |pid| match pid {
            10 => Some(100),
            11 => Some(110),
            13 => Some(999),
            _ => None,
        };
        forget_gone(&mut own, &listed, start_time);
        assert_eq!(own, BTreeMap::from([(10, 100), (11, 110)]));
    }

    /// 10,000 children that all stay alive: pruning (a /proc read per entry) must happen a
    /// handful of times, not at every spawn past the threshold (which made each spawn cost
    /// O(children): 2,000 services took minutes to start).
    #[test]
    fn pruning_own_children_is_amortised() {
        let mut next = OWN_PRUNE_AT;
        let mut prunes = 0;
        let mut work = 0;
        for len in 1..=10_000 {
            if len >= next {
                prunes += 1;
                work += len;
                next = next_prune_at(len);
            }
        }
        assert!(prunes <= 4, "{prunes} prunes");
        assert!(work < 2 * 10_000, "{work} entries read for 10,000 spawns");
    }
}
