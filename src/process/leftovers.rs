//! Crash safety on disk: a record of where a run's trees live (its run cgroup, or its process
//! groups and run marker), kept next to the control socket, so that when pk and its guard were
//! both killed the next `pk up` or `pk down` for the same config finds what the run left and
//! kills it. Also the one way anything here kills the remains of a dead run ([`Remains::kill`]),
//! used by that fallback and by the guard.
//!
//! Invariants:
//! - a record is trusted only if pk could have written it: a regular file (not a symlink) owned by
//!   pk's uid and writable by nobody else (pk writes it 0600, atomically: temp file + rename);
//! - a record is acted on only when its owner is gone: no live process with its pid AND its start
//!   time on this boot;
//! - nothing is killed by number alone: a process group only while its leader is the recorded
//!   process (same start time, same boot); a process only while it is the recorded one or carries
//!   the run's marker in its environment; a cgroup only if it is a run cgroup of that owner
//!   (`pk-<owner pid>-<n>` on a cgroup2 file system);
//! - the record is written before anything is spawned (it names the run cgroup or the marker
//!   that every later process carries), so a SIGKILL while services start leaves nothing that
//!   the record cannot find.

use std::collections::BTreeSet;
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};
use serde::{Deserialize, Serialize};

use super::Containment;
#[cfg(native_linux)]
use super::cgroup;
use super::identity;

/// What a run leaves on disk while it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RunRecord {
    pub pid: u32,
    /// pk's start time (clock ticks after boot).
    pub start: u64,
    /// The boot the run belongs to; nothing of it survives another boot.
    pub boot_id: Option<String>,
    pub config: PathBuf,
    /// The run cgroup, with the cgroup backend.
    pub cgroup: Option<PathBuf>,
    /// Every process group spawned and not known gone, with its leader's start time
    /// (process-group backend).
    pub groups: Vec<(i32, u64)>,
    /// The value of `PK_RUN_ID` in every process of the run (process-group backend).
    pub marker: Option<String>,
    /// The guard's pid, when pk has one.
    pub guard: Option<u32>,
}

impl RunRecord {
    pub(crate) fn of(containment: &Containment, config: &Path) -> RunRecord {
        let pid = std::process::id();
        RunRecord {
            pid,
            start: identity::start_time(i32::try_from(pid).unwrap_or(0)).unwrap_or(0),
            boot_id: identity::boot_id(),
            config: config.to_path_buf(),
            cgroup: containment.run_cgroup().map(Path::to_path_buf),
            groups: containment.process_groups_spawned(),
            marker: containment.marker().map(str::to_owned),
            guard: super::guard::pid(),
        }
    }

    /// Writes the record atomically, readable and writable by pk's user only.
    pub(crate) fn write(&self, path: &Path) -> io::Result<()> {
        use std::io::Write as _;
        let tmp = path.with_extension("tmp");
        // A stale temp file (of a killed pk) could have another mode; start afresh.
        let _ = std::fs::remove_file(&tmp);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(&serde_json::to_vec(self).map_err(io::Error::other)?)?;
        drop(file);
        std::fs::rename(&tmp, path)
    }

    /// Reads a record pk wrote; `PermissionDenied` for a file pk cannot have written (another
    /// owner, writable by others, not a regular file), `InvalidData` for one it cannot parse.
    pub(crate) fn read(path: &Path) -> io::Result<RunRecord> {
        use std::io::Read as _;
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(|e| {
                if e.raw_os_error() == Some(libc::ELOOP) {
                    untrusted(path, "a symbolic link")
                } else {
                    e
                }
            })?;
        let meta = file.metadata()?;
        let uid = rustix::process::getuid().as_raw();
        if !meta.is_file() {
            return Err(untrusted(path, "not a regular file"));
        }
        if meta.uid() != uid {
            return Err(untrusted(
                path,
                &format!("owned by uid {}, not {uid}", meta.uid()),
            ));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(untrusted(
                path,
                &format!("writable by others (mode {:o})", meta.mode() & 0o777),
            ));
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        serde_json::from_slice(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// Whether the record belongs to this boot.
    pub(crate) fn this_boot(&self) -> bool {
        match (&self.boot_id, identity::boot_id()) {
            (Some(recorded), Some(now)) => *recorded == now,
            // Without a boot id the start-time checks alone decide.
            _ => true,
        }
    }

    /// Whether the pk that wrote this record still runs (same pid, same start, same boot).
    pub(crate) fn owner_alive(&self) -> bool {
        self.this_boot()
            && i32::try_from(self.pid).is_ok_and(|pid| identity::is_same_live(pid, self.start))
    }

    /// What the run may have left, as far as this record can be trusted to say.
    pub(crate) fn remains(&self) -> Remains {
        if !self.this_boot() {
            return Remains::default();
        }
        Remains {
            cgroups: self
                .cgroup
                .iter()
                .filter(|dir| is_run_cgroup_of(dir, self.pid))
                .cloned()
                .collect(),
            groups: self.groups.clone(),
            adopted: Vec::new(),
            markers: self.marker.iter().cloned().collect(),
        }
    }
}

fn untrusted(path: &Path, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "{} is not a run record pk wrote ({why}); not acting on it",
            path.display()
        ),
    )
}

/// Whether `dir` looks like a run cgroup that pk `owner` created: named `pk-<owner>-<n>` and on
/// a cgroup2 file system.
fn is_run_cgroup_of(dir: &Path, owner: u32) -> bool {
    const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
    let named = dir
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix(&format!("pk-{owner}-")))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    named
        && rustix::fs::statfs(dir).is_ok_and(|fs| {
            #[allow(
                clippy::useless_conversion,
                reason = "f_type's width differs by target"
            )]
            let kind = i64::from(fs.f_type);
            kind == CGROUP2_SUPER_MAGIC
        })
}

/// Whether `pid` is a live process (a zombie is not).
pub(crate) fn is_running(pid: u32) -> bool {
    i32::try_from(pid)
        .ok()
        .and_then(identity::stat)
        .is_some_and(|s| s.state != 'Z')
}

/// What may be left of a run whose pk is dead.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Remains {
    pub cgroups: Vec<PathBuf>,
    /// (pgid, leader start time).
    pub groups: Vec<(i32, u64)>,
    /// (pid, start time) of orphans pk adopted.
    pub adopted: Vec<(i32, u64)>,
    /// Run markers (`PK_RUN_ID` values).
    pub markers: Vec<String>,
}

/// How many kill-and-rescan rounds [`Remains::kill`] makes (a process may fork meanwhile).
const KILL_ROUNDS: usize = 8;
/// How long [`Remains::kill`] waits for killed processes to go.
const KILL_WAIT: Duration = Duration::from_secs(2);

impl Remains {
    pub(crate) fn is_empty(&self) -> bool {
        self.cgroups.is_empty()
            && self.groups.is_empty()
            && self.adopted.is_empty()
            && self.markers.is_empty()
    }

    /// SIGKILLs everything of the run (identity-checked, see the module header), waits (bounded)
    /// until it is gone, and removes the cgroups. Returns how many processes were killed.
    /// Blocking; safe to run twice or concurrently with another cleaner.
    pub(crate) fn kill(&self) -> usize {
        let mut killed = 0;
        #[cfg(native_linux)]
        for dir in &self.cgroups {
            killed += cgroup::count_procs(dir);
            cgroup::kill_leaf(dir);
        }
        if !(self.groups.is_empty() && self.adopted.is_empty() && self.markers.is_empty()) {
            killed += self.kill_processes();
        }
        #[cfg(native_linux)]
        let deadline = Instant::now() + KILL_WAIT;
        #[cfg(native_linux)]
        for dir in &self.cgroups {
            while cgroup::is_populated(dir) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(2));
            }
            cgroup::remove_tree(dir);
        }
        killed
    }

    fn kill_processes(&self) -> usize {
        let mut seen = BTreeSet::new();
        for _ in 0..KILL_ROUNDS {
            let groups: BTreeSet<i32> = self
                .groups
                .iter()
                .filter(|&&(pgid, start)| identity::is_same_live(pgid, start))
                .map(|&(pgid, _)| pgid)
                .collect();
            // Listed before the groups are killed, so that the count includes their members.
            let targets: Vec<(i32, u64)> = identity::own_processes()
                .into_iter()
                .filter(|&(pid, st)| {
                    groups.contains(&st.pgid)
                        || self.adopted.contains(&(pid, st.start))
                        || self
                            .markers
                            .iter()
                            .any(|m| identity::carries_marker(pid, m))
                })
                .map(|(pid, st)| (pid, st.start))
                .collect();
            for &pgid in &groups {
                if let Some(pgid) = Pid::from_raw(pgid) {
                    // ESRCH: gone meanwhile.
                    let _ = rustix::process::kill_process_group(pgid, Signal::KILL);
                }
            }
            if targets.is_empty() {
                break;
            }
            for &(pid, start) in &targets {
                if identity::is_same_live(pid, start)
                    && let Some(pid) = Pid::from_raw(pid)
                {
                    let _ = rustix::process::kill_process(pid, Signal::KILL);
                }
                seen.insert((pid, start));
            }
            let deadline = Instant::now() + KILL_WAIT;
            while targets
                .iter()
                .any(|&(pid, start)| identity::is_same_live(pid, start))
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        seen.len()
    }
}

/// What `reap` found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reaped {
    /// The dead pk that left the trees.
    pub owner: u32,
    /// Processes that were still alive and are now killed.
    pub killed: usize,
    pub cgroup: Option<PathBuf>,
}

/// If `record_path` holds the record of a run whose pk is gone, kills whatever that run left,
/// removes its run cgroup and the record, and says what it did. A live owner's record is left
/// alone; a record pk cannot have written is an error and is left alone too.
pub(crate) fn reap(record_path: &Path) -> io::Result<Option<Reaped>> {
    let record = match RunRecord::read(record_path) {
        Ok(r) => r,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            // A torn file (or one of an older pk) says nothing we could act on safely.
            std::fs::remove_file(record_path)?;
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    if record.owner_alive() {
        return Ok(None);
    }
    let killed = record.remains().kill();
    match std::fs::remove_file(record_path) {
        // The dead run's guard may have removed it meanwhile.
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    Ok(Some(Reaped {
        owner: record.pid,
        killed,
        cgroup: record.cgroup,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn record(dir: &Path) -> RunRecord {
        RunRecord {
            pid: 1,
            start: 0,
            boot_id: identity::boot_id(),
            config: dir.join("pk.yaml"),
            cgroup: None,
            groups: vec![(1, 0)],
            marker: None,
            guard: None,
        }
    }

    #[test]
    fn a_record_is_written_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.run.json");
        let r = record(dir.path());
        r.write(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(RunRecord::read(&path).unwrap(), r);
    }

    #[test]
    fn a_record_others_could_write_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.run.json");
        record(dir.path()).write(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o622)).unwrap();
        let err = RunRecord::read(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        assert!(err.to_string().contains("writable by others"), "{err}");
        assert!(reap(&path).is_err());
        assert!(path.exists(), "an untrusted record is left alone");

        let link = dir.path().join("link.run.json");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::symlink(&path, &link).unwrap();
        let err = RunRecord::read(&link).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
    }

    #[test]
    fn init_with_another_start_time_is_not_the_owner_nor_a_group_to_kill() {
        let dir = tempfile::tempdir().unwrap();
        // pid 1 exists but did not start at tick 0 + 12345.
        let mut r = record(dir.path());
        r.start = identity::start_time(1).unwrap_or(0) + 12_345;
        r.groups = vec![(1, r.start)];
        assert!(!r.owner_alive());
        let remains = r.remains();
        assert_eq!(remains.groups, [(1, r.start)]);
        // Killing them is a no-op: the leader's identity does not match.
        assert_eq!(remains.kill(), 0);
    }

    #[test]
    fn another_boots_record_names_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = record(dir.path());
        r.boot_id = Some("not-this-boot".into());
        assert!(!r.owner_alive());
        assert!(r.remains().is_empty());
    }

    #[test]
    fn only_a_run_cgroup_of_the_owner_is_trusted() {
        assert!(!is_run_cgroup_of(Path::new("/sys/fs/cgroup"), 1));
        assert!(!is_run_cgroup_of(Path::new("/tmp/pk-1-0"), 1));
        assert!(!is_run_cgroup_of(Path::new("/sys/fs/cgroup/pk-2-0"), 1));
    }
}
