//! Telling a process apart from a later one that got the same pid: its start time (clock ticks
//! since boot, field 22 of `/proc/<pid>/stat`) on this boot (`/proc/sys/kernel/random/boot_id`),
//! and, for the process-group backend, the run marker every process of a run inherits in its
//! environment ([`MARKER_ENV`]).
//!
//! Invariants: nothing here signals anything; every answer is read fresh from `/proc` (a `None`
//! means "gone or unreadable", never "unknown but assume ours"); only processes of pk's own uid
//! are ever returned by a scan.

use std::os::unix::fs::MetadataExt;

/// The environment variable that marks every process of a process-group run (set by pk on each
/// stage it spawns, inherited by their descendants unless they clear their environment).
pub const MARKER_ENV: &str = "PK_RUN_ID";

/// What `/proc/<pid>/stat` says about a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcStat {
    /// `R`, `S`, `Z`, …
    pub state: char,
    pub ppid: i32,
    pub pgid: i32,
    /// Clock ticks after boot.
    pub start: u64,
}

/// This boot's id, or `None` where the kernel does not say.
pub(crate) fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// Parses the text of `/proc/<pid>/stat` (the command name may hold spaces and parentheses, so
/// fields are counted after the last `)`).
pub(crate) fn parse_stat(text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    // `rest` starts at field 3 (state); field n is fields[n - 3].
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        pgid: fields.get(2)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

/// The stat of `pid`, if it exists (a zombie does).
pub(crate) fn stat(pid: i32) -> Option<ProcStat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The start time of `pid`, if it exists.
pub(crate) fn start_time(pid: i32) -> Option<u64> {
    stat(pid).map(|s| s.start)
}

/// Whether `pid` is still the process that started at `start` (and has not exited).
pub(crate) fn is_same_live(pid: i32, start: u64) -> bool {
    stat(pid).is_some_and(|s| s.start == start && s.state != 'Z')
}

/// Whether `pid`'s environment holds `MARKER_ENV=marker`.
pub(crate) fn carries_marker(pid: i32, marker: &str) -> bool {
    let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
        return false;
    };
    let wanted = format!("{MARKER_ENV}={marker}");
    environ
        .split(|&b| b == 0)
        .any(|var| var == wanted.as_bytes())
}

/// Whether process group `pgid` still has a member that can run (not a zombie), of any user;
/// `None` where `/proc` cannot say (not Linux). A group whose members are all zombies has no
/// process left to signal: they wait only for their parent, or init, to reap them.
///
/// A scan, not a snapshot: a member forked while the scan runs could be missed only if its pid
/// wrapped around below the scan's position (its parent was then still alive, so seen unless it
/// exited meanwhile); the run marker still finds such a process at teardown.
#[cfg_attr(
    native_linux,
    allow(dead_code, reason = "pk reaps its own orphans as a child subreaper")
)]
pub(crate) fn group_has_live_member(pgid: i32) -> Option<bool> {
    let entries = std::fs::read_dir("/proc").ok()?;
    Some(entries.flatten().any(|entry| {
        entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<i32>().ok())
            .and_then(stat)
            .is_some_and(|st| st.pgid == pgid && !matches!(st.state, 'Z' | 'X'))
    }))
}

/// The run marker in `pid`'s environment, if any.
#[cfg_attr(
    not(native_linux),
    allow(dead_code, reason = "only adopted orphans (Linux) are asked")
)]
pub(crate) fn marker_of(pid: i32) -> Option<String> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    let prefix = format!("{MARKER_ENV}=");
    environ
        .split(|&b| b == 0)
        .find_map(|var| var.strip_prefix(prefix.as_bytes()))
        .map(|m| String::from_utf8_lossy(m).into_owned())
}

/// Every live process of pk's uid (pk itself excluded), with its stat.
pub(crate) fn own_processes() -> Vec<(i32, ProcStat)> {
    let uid = rustix::process::getuid().as_raw();
    let me = i32::try_from(std::process::id()).unwrap_or(0);
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            if pid == me || entry.metadata().ok()?.uid() != uid {
                return None;
            }
            let st = stat(pid)?;
            (st.state != 'Z').then_some((pid, st))
        })
        .collect()
}

/// A run marker unique on this boot: pk's pid and start time, and a per-process counter (one
/// process may run several containments, as the tests do).
pub(crate) fn new_marker() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let pid = std::process::id();
    let start = start_time(i32::try_from(pid).unwrap_or(0)).unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{pid}.{start}.{n}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let text =
            "4242 (a) b (c)) S 1 4240 4240 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1 2";
        assert_eq!(
            parse_stat(text),
            Some(ProcStat {
                state: 'S',
                ppid: 1,
                pgid: 4240,
                start: 987_654,
            })
        );
        assert_eq!(parse_stat("12 (x) S 1"), None);
    }

    #[test]
    fn a_group_with_a_running_member_is_live_and_a_number_no_process_has_is_not() {
        let own = rustix::process::getpgrp().as_raw_nonzero().get();
        assert_eq!(group_has_live_member(own), Some(true));
        // Above any pid_max (at most 2^22).
        assert_eq!(group_has_live_member(i32::MAX), Some(false));
    }

    #[test]
    fn this_process_is_itself_and_not_a_later_one() {
        let me = i32::try_from(std::process::id()).unwrap();
        let start = start_time(me).expect("own stat");
        assert!(is_same_live(me, start));
        assert!(!is_same_live(me, start + 1));
        assert!(boot_id().is_some_and(|id| id.len() >= 32));
    }
}
