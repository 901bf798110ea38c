//! pk's open-file limit: raised at start to the hard limit (pk holds ~3 descriptors per
//! service), while every service gets the limit pk was given back before exec, on every spawn
//! path (`spawn.rs`'s fork path, `vfork.rs`, the spawner process).
//!
//! Invariant: the original limit is recorded once, before the first raise; a service never runs
//! with pk's raised limit.
//!
//! It also grows pk's descriptor table ahead of need ([`reserve_descriptors`]): the kernel
//! grows a table by doubling it, and a process with threads waits for an RCU grace period each
//! time (`expand_fdtable` calls `synchronize_rcu` when the table is shared), ~10–30 ms during
//! which no spawn progresses.

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

/// Per service, the descriptors pk holds (two output pipes, a pidfd) and a few opened around a
/// spawn (the leaf's directory, the child's ends of the pipes), with room for its probes.
const DESCRIPTORS_PER_SERVICE: usize = 6;

/// Grows pk's descriptor table now to hold `services` services, while pk is one thread: a
/// descriptor is duplicated to the highest slot needed and closed again (tables never shrink).
/// Grown later, with the runtime's threads, each doubling would stall spawning for an RCU grace
/// period. Bounded by the open-file limit; a failure only means the table grows later.
pub fn reserve_descriptors(services: usize) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit on a valid struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) } != 0 {
        return;
    }
    let wanted = services.saturating_mul(DESCRIPTORS_PER_SERVICE) + 64;
    let highest = usize::try_from(limit.rlim_cur)
        .unwrap_or(usize::MAX)
        .min(wanted)
        .saturating_sub(1);
    let Ok(highest) = libc::c_int::try_from(highest) else {
        return;
    };
    // SAFETY: F_DUPFD_CLOEXEC of stderr to the first free slot at or above `highest`, closed at
    // once: no descriptor of pk's is touched.
    unsafe {
        let fd = libc::fcntl(2, libc::F_DUPFD_CLOEXEC, highest);
        if fd >= 0 {
            libc::close(fd);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `FDSize` of `/proc/self/status`: the slots of this process's descriptor table.
    fn table_size() -> usize {
        let status = std::fs::read_to_string("/proc/self/status").expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("FDSize:")?.trim().parse().ok())
            .expect("FDSize")
    }

    #[test]
    fn the_table_is_grown_ahead_for_the_services_to_come() {
        raise_fd_limit().expect("raise RLIMIT_NOFILE");
        let services = 1500;
        reserve_descriptors(services);
        let size = table_size();
        assert!(
            size >= services * DESCRIPTORS_PER_SERVICE,
            "a table of {size} slots for {services} services"
        );
    }
}
