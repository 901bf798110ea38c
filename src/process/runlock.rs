//! The run lock: an exclusive `flock` on a file beside the control socket, held by the pk that
//! serves that socket for as long as it runs. The kernel drops it however pk dies (SIGKILL
//! included), so a free lock proves the run dead; the lock file, the socket and the run record
//! of a dead run are removed only by someone holding it.
//!
//! Invariants:
//! - whoever removes the lock file holds its `flock` while removing it (the holder as it exits,
//!   or a cleaner that took the lock after the holder died), so a lock taken counts only if the
//!   path still names the locked file afterwards;
//! - the file is opened close-on-exec: no service inherits it, so no service can keep a dead
//!   pk's lock held;
//! - nothing waits on the lock for long: taking it waits at most [`SETTLE`] for a cleaner or an
//!   exiting holder that is about to let go, and a cleaner waits at most as long as it is told.

use std::fs::File;
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::fs::{FlockOperation, flock};
use rustix::io::Errno;

/// How long [`RunLock::take`] waits for a holder that is removing the file and letting go (a
/// few system calls); a live pk holds the lock for longer than this, and is then reported.
pub const SETTLE: Duration = Duration::from_millis(100);

/// The held lock. Dropping it removes the file, then lets go.
#[derive(Debug)]
pub struct RunLock {
    /// Held, never read: the `flock` lives as long as this descriptor.
    file: File,
    path: PathBuf,
}

impl RunLock {
    /// Takes the lock at `path` (creating the file, mode 0600), or `None` if a live pk holds it.
    pub fn take(path: &Path) -> io::Result<Option<RunLock>> {
        let end = Instant::now() + SETTLE;
        loop {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(path)?;
            if !lock_within(&file, path, end)? {
                if names(path, &file)? {
                    return Ok(None);
                }
                // Removed or replaced meanwhile: its holder let go; try the file there now.
                continue;
            }
            if names(path, &file)? {
                return Ok(Some(RunLock {
                    file,
                    path: path.to_path_buf(),
                }));
            }
        }
    }

    /// Removes the lock file at `path` if no live pk holds its lock, waiting at most `wait` for
    /// a holder that is dying. Returns whether it removed it (false: absent, or held).
    pub fn remove_if_free(path: &Path, wait: Duration) -> io::Result<bool> {
        let file = match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        if !lock_within(&file, path, Instant::now() + wait)? || !names(path, &file)? {
            return Ok(false);
        }
        std::fs::remove_file(path)?;
        Ok(true)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Removed while still held (see the module header); the lock goes with `file` after this.
        if names(&self.path, &self.file).unwrap_or(false) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Takes the lock on `file`, retrying until `end` while it is held and `path` still names it.
fn lock_within(file: &File, path: &Path, end: Instant) -> io::Result<bool> {
    loop {
        match flock(file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(true),
            Err(Errno::WOULDBLOCK) => {}
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
        if Instant::now() >= end || !names(path, file)? {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Whether `path` names the file `file` is open on.
fn names(path: &Path, file: &File) -> io::Result<bool> {
    let held = file.metadata()?;
    match std::fs::symlink_metadata(path) {
        Ok(now) => Ok(now.ino() == held.ino() && now.dev() == held.dev()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_is_not_taken_nor_removed_and_a_dropped_one_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let held = RunLock::take(&path).unwrap().expect("a free lock");
        assert!(RunLock::take(&path).unwrap().is_none(), "taken twice");
        assert!(!RunLock::remove_if_free(&path, Duration::ZERO).unwrap());
        assert!(path.exists());
        drop(held);
        assert!(!path.exists(), "the holder removes the file as it lets go");
    }

    /// The file a holder locked, as a pk that dies leaves it: the kernel let go of the lock,
    /// nobody removed the file.
    fn locked_file(path: &Path) -> File {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .unwrap();
        flock(&file, FlockOperation::NonBlockingLockExclusive).unwrap();
        file
    }

    #[test]
    fn a_lock_file_whose_holder_died_is_removed_by_a_cleaner() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        drop(locked_file(&path));
        assert!(path.exists());
        assert!(RunLock::remove_if_free(&path, Duration::ZERO).unwrap());
        assert!(!path.exists());
        assert!(!RunLock::remove_if_free(&path, Duration::ZERO).unwrap());
    }

    #[test]
    fn a_cleaner_waits_for_a_holder_that_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let file = locked_file(&path);
        let (tx, rx) = std::sync::mpsc::channel();
        let p = path.clone();
        let cleaner = std::thread::spawn(move || {
            tx.send(()).unwrap();
            RunLock::remove_if_free(&p, Duration::from_secs(10)).unwrap()
        });
        rx.recv().unwrap();
        drop(file);
        assert!(cleaner.join().unwrap(), "removed once the holder let go");
        assert!(!path.exists());
    }
}
