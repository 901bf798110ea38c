//! The cgroup v2 backend: finds pk's own cgroup on the cgroup2 mount, creates the per-run cgroup
//! and its leaves, and signals, kills and inspects a leaf.
//!
//! Invariants: nothing here hard-codes a mount point (it comes from `/proc/self/mountinfo`); the
//! run cgroup is always a direct child of pk's own cgroup; a leaf is a direct child of the run
//! cgroup; every operation on a leaf acts on the whole leaf (one live tree per leaf).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use rustix::process::{Pid, Signal};

/// How many times `signal_leaf` re-reads `cgroup.procs` to catch processes forked meanwhile.
const SIGNAL_ROUNDS: usize = 8;

/// Distinguishes several containments created by one pk process (tests create many).
static RUN_COUNTER: AtomicU32 = AtomicU32::new(0);

/// A mounted cgroup2 hierarchy as seen in `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cgroup2Mount {
    /// The cgroup path (relative to our cgroup namespace) that sits at `mount_point`.
    pub root: String,
    pub mount_point: PathBuf,
    pub read_only: bool,
}

/// Every cgroup2 mount listed in a mountinfo text.
pub(crate) fn parse_mountinfo(text: &str) -> Vec<Cgroup2Mount> {
    text.lines()
        .filter_map(|line| {
            // "<id> <parent> <maj:min> <root> <mount point> <options> [optional...] - <fstype> <source> <super options>"
            let (left, right) = line.split_once(" - ")?;
            if right.split(' ').next()? != "cgroup2" {
                return None;
            }
            let fields: Vec<&str> = left.split(' ').collect();
            let root = unescape_mountinfo(fields.get(3)?);
            let mount_point = PathBuf::from(unescape_mountinfo(fields.get(4)?));
            let read_only = fields.get(5)?.split(',').any(|option| option == "ro");
            Some(Cgroup2Mount {
                root,
                mount_point,
                read_only,
            })
        })
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo` octal.
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).filter(|digits| {
            bytes[i] == b'\\' && digits.iter().all(|digit| (b'0'..=b'7').contains(digit))
        });
        if let Some(digits) = octal {
            let value = digits
                .iter()
                .fold(0u32, |acc, digit| acc * 8 + u32::from(digit - b'0'));
            out.push(u8::try_from(value).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// pk's own cgroup v2 path from a `/proc/self/cgroup` text (the `0::<path>` line).
pub(crate) fn parse_own_cgroup(text: &str) -> Option<String> {
    text.lines()
        .find_map(|line| line.strip_prefix("0::"))
        .map(|path| path.trim_end_matches(" (deleted)").to_owned())
}

/// The directory of cgroup `own` on `mount`, if the mount shows that part of the hierarchy.
pub(crate) fn own_cgroup_dir(mount: &Cgroup2Mount, own: &str) -> Option<PathBuf> {
    let root = mount.root.trim_end_matches('/');
    let relative = own.strip_prefix(root)?;
    if !(relative.is_empty() || relative.starts_with('/')) {
        return None;
    }
    let mut dir = mount.mount_point.clone();
    dir.extend(relative.split('/').filter(|part| !part.is_empty()));
    Some(dir)
}

/// The per-run cgroup: a directory `pk-<pid>-<n>` below pk's own cgroup.
#[derive(Debug)]
pub(crate) struct RunCgroup {
    pub dir: PathBuf,
}

impl RunCgroup {
    /// Creates the run cgroup, or says in a few words why cgroups cannot be used.
    pub(super) fn create() -> Result<RunCgroup, String> {
        let mountinfo = fs::read_to_string("/proc/self/mountinfo")
            .map_err(|error| format!("cannot read /proc/self/mountinfo: {error}"))?;
        let mounts = parse_mountinfo(&mountinfo);
        if mounts.is_empty() {
            return Err("no cgroup2 mount".to_owned());
        }
        let own_text = fs::read_to_string("/proc/self/cgroup")
            .map_err(|error| format!("cannot read /proc/self/cgroup: {error}"))?;
        let own = parse_own_cgroup(&own_text).ok_or("pk is in no cgroup v2 cgroup")?;
        let (mount, own_dir) = mounts
            .iter()
            .find_map(|mount| own_cgroup_dir(mount, &own).map(|dir| (mount, dir)))
            .ok_or_else(|| format!("pk's cgroup {own} is not visible on any cgroup2 mount"))?;
        if mount.read_only {
            return Err(format!(
                "cgroup2 mount {} is read-only",
                mount.mount_point.display()
            ));
        }
        let dir = Self::make_unique_dir(&own_dir)?;
        let run = RunCgroup { dir };
        if let Err(reason) = run.check_usable(&own_dir) {
            run.remove();
            return Err(reason);
        }
        Ok(run)
    }

    fn make_unique_dir(own_dir: &Path) -> Result<PathBuf, String> {
        let pid = std::process::id();
        loop {
            let n = RUN_COUNTER.fetch_add(1, Ordering::Relaxed);
            let dir = own_dir.join(format!("pk-{pid}-{n}"));
            match fs::create_dir(&dir) {
                Ok(()) => return Ok(dir),
                // A leftover of an earlier pk that had our pid: leave it for the state-file sweep.
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
                Err(error) => return Err(format!("cannot create {}: {error}", dir.display())),
            }
        }
    }

    fn check_usable(&self, own_dir: &Path) -> Result<(), String> {
        if !self.dir.join("cgroup.kill").exists() {
            return Err("cgroup.kill unsupported (Linux < 5.14)".to_owned());
        }
        // Moving a process needs write access to the common ancestor's and the target's procs.
        for dir in [own_dir, &self.dir] {
            let procs = dir.join("cgroup.procs");
            rustix::fs::access(&procs, rustix::fs::Access::WRITE_OK)
                .map_err(|error| format!("cannot write {}: {error}", procs.display()))?;
        }
        Ok(())
    }

    /// The leaf directory for `name`, created on first use; and whether it was made just now.
    pub(super) fn leaf(&self, name: &str) -> io::Result<(PathBuf, bool)> {
        let dir = self.dir.join(leaf_dir_name(name)?);
        match fs::create_dir(&dir) {
            Ok(()) => Ok((dir, true)),
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                if dir.is_dir() {
                    Ok((dir, false))
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("leaf name `{name}` collides with a cgroup interface file"),
                    ))
                }
            }
            Err(error) => Err(io::Error::new(
                error.kind(),
                format!("cannot create cgroup {}: {error}", dir.display()),
            )),
        }
    }

    /// SIGKILLs everything below the run cgroup at once.
    pub(super) fn kill_all(&self) {
        kill_leaf(&self.dir);
    }

    /// Blocks until nothing runs below the run cgroup, or `limit` passed.
    pub(super) fn wait_empty(&self, limit: std::time::Duration) {
        let deadline = std::time::Instant::now() + limit;
        while is_populated(&self.dir) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }

    /// rmdirs every leaf, then the run cgroup; a populated one stays (logged).
    pub(super) fn remove(&self) {
        remove_tree(&self.dir);
    }
}

/// rmdirs every leaf of a run cgroup, then the run cgroup itself.
pub(crate) fn remove_tree(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                remove_dir_logged(&entry.path());
            }
        }
    }
    remove_dir_logged(dir);
}

/// How many processes live in a run cgroup's leaves (and the run cgroup itself).
pub(crate) fn count_procs(dir: &Path) -> usize {
    let count = |d: &Path| {
        fs::read_to_string(d.join("cgroup.procs")).map_or(0, |procs| procs.lines().count())
    };
    let leaves: usize = fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|k| k.is_dir()))
            .map(|e| count(&e.path()))
            .sum()
    });
    leaves + count(dir)
}

fn remove_dir_logged(dir: &Path) {
    match fs::remove_dir(dir) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => tracing::warn!(dir = %dir.display(), %error, "cannot remove cgroup"),
    }
}

/// The roles a leaf can have, as the suffix of its directory name (`api@probe`).
const ROLES: [&str; 4] = ["service", "probe", "shutdown", "env"];

/// The directory name for leaf `leaf` (`<service>` or `<service>@<role>`, see
/// `process::leaf_name`): `<escaped service>@<role>`, the role `service` when none is given.
///
/// The service part keeps `[A-Za-z0-9._-]` and writes anything else (`@` included) as `%XX`, so
/// the mapping is injective: no service name can take another's probe or shutdown leaf
/// (`db.probe` vs `db`'s probe). Every name contains `@`, which no cgroup interface file does,
/// so a service named `cpu.stat` or `cgroup.events` gets a leaf too.
pub(crate) fn leaf_dir_name(leaf: &str) -> io::Result<String> {
    let (service, role) = leaf
        .rsplit_once('@')
        .filter(|(_, role)| ROLES.contains(role))
        .unwrap_or((leaf, "service"));
    if service.is_empty() || service.starts_with('.') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid leaf name `{leaf}`"),
        ));
    }
    let mut out = String::with_capacity(service.len() + 8);
    for byte in service.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-') {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}"); // writing to a String cannot fail
        }
    }
    out.push('@');
    out.push_str(role);
    Ok(out)
}

/// Whether leaf `leaf` (see `process::leaf_name`) is a service's own, not a probe's or a
/// shutdown command's.
pub(crate) fn is_service_leaf(leaf: &str) -> bool {
    leaf.rsplit_once('@')
        .is_none_or(|(_, role)| !ROLES.contains(&role) || role == "service")
}

/// Sends `signal` to every process in `leaf`.
///
/// When the leaf holds only the tree's live stages (`stages`, pids pk has not reaped) and each
/// is still in process group `pgid`, one `killpg` does it: a process one of them forks
/// meanwhile is born in the group, and the kernel restarts a fork that races a group signal,
/// so it gets the signal too. That is the usual case, and it costs one read of `cgroup.procs`
/// and a `getpgid` per stage. Otherwise (a process that left the group, or a descendant that
/// is no stage): freeze (so nothing forks unseen), signal each pid until a re-read of
/// `cgroup.procs` shows no new one, thaw.
pub(crate) fn signal_leaf(
    leaf: &Path,
    pgid: Pid,
    stages: &[Pid],
    signal: Signal,
) -> io::Result<()> {
    let procs = read_procs(leaf)?;
    if procs.is_empty() {
        return Ok(());
    }
    let only_the_group = procs.iter().all(|&raw| {
        Pid::from_raw(raw).is_some_and(|pid| {
            stages.contains(&pid) && rustix::process::getpgid(Some(pid)) == Ok(pgid)
        })
    });
    if only_the_group {
        return super::pgroup::signal_group(pgid, signal);
    }
    let freeze = leaf.join("cgroup.freeze");
    // Freezing is an optimisation: without it the re-read rounds still catch most forks.
    let frozen = fs::write(&freeze, "1").is_ok();
    let result = signal_each(leaf, signal);
    if frozen {
        if let Err(error) = fs::write(&freeze, "0") {
            tracing::error!(leaf = %leaf.display(), %error, "cannot thaw cgroup");
        }
    }
    result
}

/// The pids `cgroup.procs` of `leaf` lists now.
fn read_procs(leaf: &Path) -> io::Result<Vec<i32>> {
    let procs = fs::read_to_string(leaf.join("cgroup.procs"))?;
    Ok(procs
        .lines()
        .filter_map(|line| line.trim().parse().ok())
        .collect())
}

fn signal_each(leaf: &Path, signal: Signal) -> io::Result<()> {
    let mut seen = BTreeSet::new();
    for _ in 0..SIGNAL_ROUNDS {
        let fresh: Vec<i32> = read_procs(leaf)?
            .into_iter()
            .filter(|pid| !seen.contains(pid))
            .collect();
        if fresh.is_empty() {
            break;
        }
        for raw in fresh {
            seen.insert(raw);
            if let Some(pid) = Pid::from_raw(raw) {
                // ESRCH: it exited between the read and the kill, which is fine.
                let _ = rustix::process::kill_process(pid, signal);
            }
        }
    }
    Ok(())
}

/// `cgroup.kill`: SIGKILL for the whole subtree, atomically with respect to forks.
pub(crate) fn kill_leaf(dir: &Path) {
    match fs::write(dir.join("cgroup.kill"), "1") {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => tracing::error!(dir = %dir.display(), %error, "cgroup.kill failed"),
    }
}

/// Whether `cgroup.events` still says `populated 1`; a leaf that vanished counts as empty.
pub(crate) fn is_populated(dir: &Path) -> bool {
    match fs::read_to_string(dir.join("cgroup.events")) {
        Ok(events) => events.lines().any(|line| line.trim() == "populated 1"),
        Err(error) if error.kind() == io::ErrorKind::NotFound => false,
        Err(error) => {
            tracing::warn!(dir = %dir.display(), %error, "cannot read cgroup.events");
            true
        }
    }
}

/// Removes `leaf` if nothing runs in it: true once it is gone (removed now, or already),
/// false while it holds a process (`EBUSY`). The kernel refuses to remove a populated cgroup,
/// so this both checks that the leaf is empty and removes it, in one system call. Another
/// error (not expected) is logged, and answered by `cgroup.events`.
pub(crate) fn remove_if_empty(leaf: &Path) -> bool {
    match fs::remove_dir(leaf) {
        Ok(()) => true,
        Err(error) if error.kind() == io::ErrorKind::NotFound => true,
        Err(error) if error.raw_os_error() == Some(libc::EBUSY) => false,
        Err(error) => {
            tracing::warn!(dir = %leaf.display(), %error, "cannot remove cgroup");
            !is_populated(leaf)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw
42 31 0:39 /user.slice /mnt/my\\040cg ro,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn mountinfo_finds_cgroup2_mounts_only() {
        let mounts = parse_mountinfo(MOUNTINFO);
        assert_eq!(
            mounts,
            vec![
                Cgroup2Mount {
                    root: "/".into(),
                    mount_point: "/sys/fs/cgroup/unified".into(),
                    read_only: false,
                },
                Cgroup2Mount {
                    root: "/user.slice".into(),
                    mount_point: "/mnt/my cg".into(),
                    read_only: true,
                },
            ]
        );
    }

    #[test]
    fn own_cgroup_is_the_unified_line() {
        let text = "4:memory:/x\n0::/user.slice/a.scope\n";
        assert_eq!(
            parse_own_cgroup(text).as_deref(),
            Some("/user.slice/a.scope")
        );
        assert_eq!(parse_own_cgroup("0::/\n").as_deref(), Some("/"));
        assert_eq!(parse_own_cgroup("1:cpu:/\n"), None);
    }

    #[test]
    fn own_dir_is_resolved_relative_to_the_mount_root() {
        let mounts = parse_mountinfo(MOUNTINFO);
        assert_eq!(
            own_cgroup_dir(&mounts[0], "/"),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert_eq!(
            own_cgroup_dir(&mounts[0], "/a/b"),
            Some(PathBuf::from("/sys/fs/cgroup/unified/a/b"))
        );
        assert_eq!(
            own_cgroup_dir(&mounts[1], "/user.slice/x"),
            Some(PathBuf::from("/mnt/my cg/x"))
        );
        assert_eq!(own_cgroup_dir(&mounts[1], "/user.slicex"), None);
        assert_eq!(own_cgroup_dir(&mounts[1], "/system.slice"), None);
    }

    #[test]
    fn leaf_names_are_safe_directory_names() {
        assert_eq!(leaf_dir_name("api").unwrap(), "api@service");
        assert_eq!(leaf_dir_name("db@probe").unwrap(), "db@probe");
        assert_eq!(leaf_dir_name("db.probe").unwrap(), "db.probe@service");
        assert_eq!(leaf_dir_name("cpu.stat").unwrap(), "cpu.stat@service");
        assert_eq!(leaf_dir_name("a@x").unwrap(), "a%40x@service");
        assert_eq!(leaf_dir_name("a/b c").unwrap(), "a%2Fb%20c@service");
        assert!(leaf_dir_name("").is_err());
        assert!(leaf_dir_name("..").is_err());
    }

    #[test]
    fn only_a_service_leaf_is_its_own() {
        assert!(is_service_leaf("api"));
        assert!(is_service_leaf("a@x"));
        assert!(!is_service_leaf("db@probe"));
        assert!(!is_service_leaf("db@shutdown"));
        assert!(!is_service_leaf("db@env"));
    }
}
