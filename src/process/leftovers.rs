//! Crash safety: a record of where a run's trees live (its run cgroup, or its process groups),
//! kept next to the control socket, so that when pk itself was killed with SIGKILL the next `pk up` or
//! `pk down` for the same config finds the trees it left and kills them.
//!
//! Invariants: a record is only acted on when its owner is gone (no live process with its pid
//! and pk's executable name); a record is written atomically (temp file + rename).

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};
use serde::{Deserialize, Serialize};

use super::{Containment, cgroup, pgroup};

/// What a run leaves on disk while it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub pid: u32,
    pub config: PathBuf,
    /// The run cgroup, with the cgroup backend.
    pub cgroup: Option<PathBuf>,
    /// Every process group spawned, with the process-group backend.
    pub pgids: Vec<i32>,
}

impl RunRecord {
    pub fn of(containment: &Containment, config: &Path) -> RunRecord {
        RunRecord {
            pid: std::process::id(),
            config: config.to_path_buf(),
            cgroup: containment.run_cgroup().map(Path::to_path_buf),
            pgids: containment.process_groups_spawned(),
        }
    }

    /// Writes the record atomically.
    pub fn write(&self, path: &Path) -> io::Result<()> {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(self).map_err(io::Error::other)?)?;
        std::fs::rename(&tmp, path)
    }

    pub fn read(path: &Path) -> io::Result<RunRecord> {
        let bytes = std::fs::read(path)?;
        serde_json::from_slice(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// Whether the pk that wrote this record still runs.
    pub fn owner_alive(&self) -> bool {
        let Ok(comm) = std::fs::read_to_string(format!("/proc/{}/comm", self.pid)) else {
            return false;
        };
        let ours = std::fs::read_to_string("/proc/self/comm").unwrap_or_default();
        comm.trim() == ours.trim() && is_running(self.pid)
    }
}

/// Whether `pid` is a live process (a zombie is not).
pub fn is_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| {
        !s.lines()
            .any(|l| l.starts_with("State:") && l.contains('Z'))
    })
}

/// What `reap` found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reaped {
    /// The dead pk that left the trees.
    pub owner: u32,
    /// Processes (cgroup) or process groups (fallback) that were still alive and are now killed.
    pub killed: usize,
    pub cgroup: Option<PathBuf>,
}

/// If `record_path` holds the record of a run whose pk is gone, kills whatever that run left
/// (cgroup.kill on its run cgroup, or SIGKILL to its recorded process groups), removes the
/// run cgroup and the record, and says what it did. A live owner's record is left alone.
pub fn reap(record_path: &Path) -> io::Result<Option<Reaped>> {
    let record = match RunRecord::read(record_path) {
        Ok(r) => r,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            // A torn or foreign file says nothing we could act on safely.
            std::fs::remove_file(record_path)?;
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    if record.owner_alive() {
        return Ok(None);
    }
    let mut killed = 0;
    if let Some(dir) = &record.cgroup {
        killed += cgroup::count_procs(dir);
        cgroup::kill_leaf(dir);
        let deadline = Instant::now() + Duration::from_secs(2);
        while cgroup::is_populated(dir) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        cgroup::remove_tree(dir);
    }
    for &raw in &record.pgids {
        let Some(pgid) = Pid::from_raw(raw) else {
            continue;
        };
        if !pgroup::is_gone(pgid) && pgroup::signal_group(pgid, Signal::KILL).is_ok() {
            killed += 1;
        }
    }
    std::fs::remove_file(record_path)?;
    Ok(Some(Reaped {
        owner: record.pid,
        killed,
        cgroup: record.cgroup,
    }))
}
