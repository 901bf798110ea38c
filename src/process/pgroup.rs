//! The process-group fallback: `killpg` on a tree's group, and the registry of groups a run
//! spawned so that `kill_all` can reach every one of them.
//!
//! Invariants: a group leaves the registry only once `killpg(pgid, 0)` said ESRCH, and is never
//! signalled again after that (its number could be reused). A process that called `setsid`
//! has left its group: this backend cannot see it (the known limit of the fallback).

use std::collections::BTreeSet;
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

/// Whether group `pgid` has no member left (a zombie leader still counts as a member).
pub(crate) fn is_gone(pgid: Pid) -> bool {
    rustix::process::test_kill_process_group(pgid) == Err(Errno::SRCH)
}

/// The groups of one run that are not yet known to be gone.
#[derive(Debug, Default)]
pub(crate) struct GroupRegistry {
    live: Mutex<BTreeSet<i32>>,
}

impl GroupRegistry {
    fn live(&self) -> std::sync::MutexGuard<'_, BTreeSet<i32>> {
        // The set stays consistent even if a holder panicked: every update is one insert/remove.
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn insert(&self, pgid: Pid) {
        self.live().insert(pgid.as_raw_nonzero().get());
    }

    /// The groups not yet known to be gone.
    pub fn snapshot(&self) -> Vec<i32> {
        self.live().iter().copied().collect()
    }

    pub fn remove(&self, pgid: Pid) {
        self.live().remove(&pgid.as_raw_nonzero().get());
    }

    /// SIGKILLs every registered group, forgetting those that turn out to be gone.
    pub fn kill_all(&self) {
        self.live().retain(|&raw| {
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
