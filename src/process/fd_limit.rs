//! pk's open-file limit: raised at start to the hard limit (pk holds ~3 descriptors per
//! service), while every service gets the limit pk was given back before exec, on every spawn
//! path (`spawn.rs`'s fork path, `vfork.rs`, the spawner process).
//!
//! Invariant: the original limit is recorded once, before the first raise; a service never runs
//! with pk's raised limit.

use std::io;

/// The soft `RLIMIT_NOFILE` pk found at start, before [`raise_fd_limit`] raised it.
static ORIGINAL_NOFILE: std::sync::OnceLock<libc::rlimit> = std::sync::OnceLock::new();

/// Raises pk's soft `RLIMIT_NOFILE` to the hard limit (pk holds ~3 descriptors per service;
/// the usual soft limit of 1,024 would stop at ~330 services). Services get the original soft
/// limit back before exec, as systemd does: some programs misbehave with more. Idempotent.
pub fn raise_fd_limit() -> io::Result<()> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) != 0 {
            return Err(io::Error::last_os_error());
        }
        ORIGINAL_NOFILE.get_or_init(|| limit);
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raw const raised) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

/// The `RLIMIT_NOFILE` a service must get: the original one, if pk raised its own.
pub(super) fn service_nofile() -> Option<libc::rlimit> {
    ORIGINAL_NOFILE.get().copied()
}
