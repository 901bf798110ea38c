//! The process-group fallback: `killpg` on a tree's group, and the registry of groups a run
//! spawned so that `kill_all` can reach every one of them.
//!
//! Invariants: a group leaves the registry only once `killpg(pgid, 0)` said ESRCH, and is never
//! signalled again after that (its number could be reused). Every insert and removal is told to
//! pk's guard. A process that called `setsid` has left its group: the run marker and pk's child
//! subreaper role find it instead (`subreaper.rs`).

use std::collections::BTreeMap;
use std::io;
use std::sync::{Mutex, PoisonError};

use rustix::io::Errno;
use rustix::process::{Pid, Signal};

/// Sends `signal` to group `pgid`; a group that is gone is not an error.
pub(crate) fn signal_group(pgid: Pid, signal: Signal) -> io::Result<()> {
    match rustix::process::kill_process_group(pgid, signal) {
        Ok(()) | Err(Errno::SRCH) => Ok(()),
        Err(errno) => Err(errno.into()),
    }
}

/// Whether group `pgid` has no member left that can run. pk's own children (the stages) must
/// be reaped first: a zombie stage still counts.
///
/// The portable build is no child subreaper, so a member whose parent died first (`sleep &` in
/// a shell that exec'd) is reparented to init and, once killed, stays a zombie in the group until
/// init reaps it; some inits take seconds, a container's PID 1 may never. Such a group has ended:
/// where `/proc` says every member left is a zombie, it counts as gone (its number cannot be
/// reused while they exist, and it is never signalled again). On Linux pk adopts and reaps those
/// orphans itself (`subreaper.rs`), so a member is only ever a zombie briefly.
pub(crate) fn is_gone(pgid: Pid) -> bool {
    if rustix::process::test_kill_process_group(pgid) == Err(Errno::SRCH) {
        return true;
    }
    #[cfg(not(native_linux))]
    if super::identity::group_has_live_member(pgid.as_raw_nonzero().get()) == Some(false) {
        return true;
    }
    false
}

/// The groups of one run that are not yet known to be gone.
#[derive(Debug, Default)]
pub(crate) struct GroupRegistry {
    /// pgid → its leader's start time.
    live: Mutex<BTreeMap<i32, u64>>,
}

impl GroupRegistry {
    fn live(&self) -> std::sync::MutexGuard<'_, BTreeMap<i32, u64>> {
        // The set stays consistent even if a holder panicked: every update is one insert/remove.
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers group `pgid` whose leader started at `start` (clock ticks after boot).
    pub(super) fn insert(&self, pgid: Pid, start: u64) {
        let pgid = pgid.as_raw_nonzero().get();
        self.live().insert(pgid, start);
        super::guard::note(super::guard::Note::Group { pgid, start });
    }

    /// The groups not yet known to be gone, with their leaders' start times.
    pub(super) fn snapshot(&self) -> Vec<(i32, u64)> {
        self.live().iter().map(|(&g, &s)| (g, s)).collect()
    }

    pub(super) fn remove(&self, pgid: Pid) {
        let pgid = pgid.as_raw_nonzero().get();
        if self.live().remove(&pgid).is_some() {
            super::guard::note(super::guard::Note::GroupGone(pgid));
        }
    }

    /// SIGKILLs every registered group, forgetting those that turn out to be gone.
    pub(super) fn kill_all(&self) {
        self.live().retain(|&raw, _| {
            let Some(pgid) = Pid::from_raw(raw) else {
                return false;
            };
            match rustix::process::kill_process_group(pgid, Signal::KILL) {
                Ok(()) => true,
                Err(Errno::SRCH) => false,
                Err(errno) => {
                    tracing::error!(pgid = raw, %errno, "killpg failed");
                    true
                }
            }
        });
    }
}
