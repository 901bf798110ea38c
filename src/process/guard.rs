//! The guard: a tiny process that cleans up after pk when pk dies in any way (SIGKILL, OOM, a
//! vanished terminal), so that nothing a service spawned outlives pk.
//!
//! `pk up` forks it first thing in `main`, while pk is still one thread and its heap holds only
//! the parsed command line, so the guard's private memory is a few pages (the rest is shared
//! with pk copy-on-write). It holds the read end of a pipe whose write end only pk holds
//! (close-on-exec, so no service inherits it). pk tells it, over that pipe, what to clean:
//! the run cgroup, the run marker and each process group as it starts (process-group backend),
//! each adopted orphan, the socket, its lock file and the run record. When the pipe closes
//! without a goodbye, pk is dead: the guard kills what pk told it about (identity-checked, see
//! `leftovers::Remains`), removes the cgroups, the socket (only the one pk bound), the run record
//! (only pk's) and the lock file (only once its lock is free, see `runlock`), and exits. After pk's goodbye (a normal exit: pk cleaned up itself) it just exits.
//!
//! Invariants:
//! - the guard is forked before any other thread exists, and never execs or spawns;
//! - it lives in its own session (out of pk's process group and terminal), ignores INT, TERM,
//!   HUP, TSTP, QUIT and PIPE, and stays in pk's own cgroup (outside the run cgroup);
//! - it holds no fd of pk's but its pipe and stderr (stdin and stdout are /dev/null), and its
//!   working directory is `/`;
//! - pk never blocks on the guard: the write end is non-blocking; the pipe (64 KiB) is the queue's
//!   bound, and a note that does not fit is dropped and counted (the run record and the run
//!   marker remain the fallback);
//! - one message is one `write` of at most `PIPE_BUF` bytes, so notes from several threads never
//!   interleave.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::io::Errno;

use super::leftovers::{self, Remains};
use super::runlock::RunLock;

/// The largest note pk sends (`PIPE_BUF`: a write this size is atomic).
const MAX_NOTE: usize = 4096;

/// How long the guard waits for the dead pk's lock to be let go before it removes the lock file.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// pk's end of the link to its guard.
#[derive(Debug)]
struct Link {
    write: OwnedFd,
    pid: u32,
    dropped: AtomicU64,
}

static LINK: OnceLock<Link> = OnceLock::new();

/// Something the guard must know to clean up after pk.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(
    not(native_linux),
    allow(dead_code, reason = "cgroups and adopted orphans are Linux only")
)]
pub(crate) enum Note<'a> {
    /// The run cgroup (cgroup backend).
    Cgroup(&'a Path),
    /// The run marker in every service's environment (process-group backend).
    Marker(&'a str),
    /// A process group that started; `start` is its leader's start time.
    Group { pgid: i32, start: u64 },
    /// A process group known gone.
    GroupGone(i32),
    /// An orphan adopted by pk (child subreaper).
    Adopted { pid: i32, start: u64 },
    /// An adopted orphan that was reaped.
    AdoptedGone(i32),
    /// The control socket pk bound.
    Socket(&'a Path),
    /// The lock file beside it, whose lock pk holds.
    Lock(&'a Path),
    /// The run record pk keeps.
    Record(&'a Path),
}

impl Note<'_> {
    fn encode(&self) -> Vec<u8> {
        let text = match self {
            Note::Cgroup(p) => return tagged(b"cgroup ", p),
            Note::Socket(p) => return tagged(b"socket ", p),
            Note::Lock(p) => return tagged(b"lock ", p),
            Note::Record(p) => return tagged(b"record ", p),
            Note::Marker(m) => format!("marker {m}"),
            Note::Group { pgid, start } => format!("group {pgid} {start}"),
            Note::GroupGone(pgid) => format!("ungroup {pgid}"),
            Note::Adopted { pid, start } => format!("adopt {pid} {start}"),
            Note::AdoptedGone(pid) => format!("unadopt {pid}"),
        };
        let mut bytes = text.into_bytes();
        bytes.push(0);
        bytes
    }
}

fn tagged(tag: &[u8], path: &Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    let mut bytes = tag.to_vec();
    bytes.extend_from_slice(path.as_os_str().as_bytes());
    bytes.push(0);
    bytes
}

const BYE: &[u8] = b"bye\0";

/// Forks the guard. Call it first thing in `main`, before any thread exists; at most once.
pub fn start() -> io::Result<()> {
    let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    let pk = rustix::process::getpid();
    // SAFETY: pk is single-threaded here (the caller's contract), so the child may run any code.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => {
            drop(write);
            guard_main(&read, pk.as_raw_nonzero().get())
        }
        child => {
            drop(read);
            rustix::fs::fcntl_setfl(&write, rustix::fs::OFlags::NONBLOCK)?;
            let _ = LINK.set(Link {
                write,
                pid: child.unsigned_abs(),
                dropped: AtomicU64::new(0),
            });
            Ok(())
        }
    }
}

/// The guard's pid, if this pk has one.
pub(crate) fn pid() -> Option<u32> {
    LINK.get().map(|link| link.pid)
}

/// Tells the guard `note`; a no-op without a guard. Never blocks.
pub(crate) fn note(note: Note<'_>) {
    if let Some(link) = LINK.get() {
        send(link, &note.encode());
    }
}

fn send(link: &Link, bytes: &[u8]) {
    if bytes.len() > MAX_NOTE {
        link.dropped.fetch_add(1, Ordering::Relaxed);
        return;
    }
    loop {
        match rustix::io::write(&link.write, bytes) {
            Ok(_) => return,
            Err(Errno::INTR) => {}
            Err(_) => {
                // Full (the guard is stopped?) or gone: the run record and marker remain.
                if link.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
                    eprintln!(
                        "pk: the crash guard does not listen; if pk is killed, the next `pk up` or `pk down` cleans up"
                    );
                }
                return;
            }
        }
    }
}

/// Tells the guard the control socket pk bound and the lock file beside it (both removed if
/// pk dies).
pub(crate) fn note_socket(path: &Path, lock: &Path) {
    note(Note::Socket(path));
    note(Note::Lock(lock));
}

/// pk cleaned up after itself and is about to exit: the guard exits without doing anything.
pub fn dismiss() {
    if let Some(link) = LINK.get() {
        send(link, BYE);
    }
}

/// What the guard has been told.
#[derive(Debug, Default)]
struct Told {
    remains: Remains,
    socket: Option<(PathBuf, u64, u64)>,
    lock: Option<PathBuf>,
    record: Option<PathBuf>,
}

impl Told {
    /// Applies one note; false for the goodbye.
    fn apply(&mut self, msg: &[u8]) -> bool {
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::fs::MetadataExt;
        let (tag, rest) = match msg.iter().position(|&b| b == b' ') {
            Some(i) => (&msg[..i], &msg[i + 1..]),
            None => (msg, &[][..]),
        };
        let path = || PathBuf::from(std::ffi::OsStr::from_bytes(rest));
        let text = String::from_utf8_lossy(rest);
        let mut numbers = text.split(' ');
        let id = numbers.next().and_then(|n| n.parse::<i32>().ok());
        let start = numbers
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
        let r = &mut self.remains;
        match tag {
            b"bye" => return false,
            b"cgroup" => r.cgroups.push(path()),
            b"marker" => r.markers.push(text.into_owned()),
            b"group" => r.groups.extend(id.map(|g| (g, start))),
            b"ungroup" => r.groups.retain(|&(g, _)| Some(g) != id),
            b"adopt" => r.adopted.extend(id.map(|p| (p, start))),
            b"unadopt" => r.adopted.retain(|&(p, _)| Some(p) != id),
            b"socket" => {
                // Only this socket file is removed later, not one a later pk bound there.
                let p = path();
                if let Ok(meta) = std::fs::symlink_metadata(&p) {
                    self.socket = Some((p, meta.dev(), meta.ino()));
                }
            }
            b"lock" => self.lock = Some(path()),
            b"record" => self.record = Some(path()),
            _ => {}
        }
        true
    }

    /// pk died: kill, remove, say so.
    fn clean_up(&self, pk: i32) {
        use std::os::unix::fs::MetadataExt;
        let killed = self.remains.kill();
        if let Some((path, dev, ino)) = &self.socket
            && std::fs::symlink_metadata(path).is_ok_and(|m| m.dev() == *dev && m.ino() == *ino)
        {
            let _ = std::fs::remove_file(path);
        }
        if let Some(path) = &self.record
            && leftovers::RunRecord::read(path).is_ok_and(|r| i64::from(r.pid) == i64::from(pk))
        {
            let _ = std::fs::remove_file(path);
        }
        if let Some(path) = &self.lock {
            // pk's descriptors may still be closing: wait (bounded) until its lock is free. A
            // lock still held then is a new pk's, and its file stays.
            let _ = RunLock::remove_if_free(path, LOCK_WAIT);
        }
        if !self.remains.is_empty() {
            eprintln!(
                "pk: pk (pid {pk}) ended without cleaning up; its guard killed {killed} leftover {}",
                if killed == 1 { "process" } else { "processes" }
            );
        }
    }
}

/// The guard's life: detach from pk, listen, clean up if pk dies, exit.
fn guard_main(read: &OwnedFd, pk: i32) -> ! {
    detach(read);
    let mut told = Told::default();
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = [0u8; MAX_NOTE];
    loop {
        match rustix::io::read(read, &mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                pending.extend_from_slice(&chunk[..n]);
                while let Some(end) = pending.iter().position(|&b| b == 0) {
                    let msg: Vec<u8> = pending.drain(..=end).collect();
                    if !told.apply(&msg[..end]) {
                        // SAFETY: _exit ends this single-threaded process without unwinding.
                        unsafe { libc::_exit(0) }
                    }
                }
            }
            Err(Errno::INTR) => {}
            Err(_) => break,
        }
    }
    told.clean_up(pk);
    // SAFETY: as above; nothing buffered needs flushing (stderr is unbuffered).
    unsafe { libc::_exit(0) }
}

/// Leaves pk's session, process group and directory, ignores the terminal's signals, keeps
/// only its pipe and stderr, and names itself `pk-guard`.
fn detach(read: &OwnedFd) {
    // SAFETY: plain syscalls on this single-threaded child; no memory is shared with pk.
    unsafe {
        libc::setsid();
        for sig in [
            libc::SIGINT,
            libc::SIGTERM,
            libc::SIGHUP,
            libc::SIGTSTP,
            libc::SIGQUIT,
            libc::SIGPIPE,
            libc::SIGTTIN,
            libc::SIGTTOU,
        ] {
            libc::signal(sig, libc::SIG_IGN);
        }
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            libc::dup2(null, 0);
            libc::dup2(null, 1);
            if null > 2 {
                libc::close(null);
            }
        }
        let keep = read.as_raw_fd();
        // Close every other fd pk had at start (an inherited one must not be held open).
        let mut fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
            .map(|entries| {
                entries
                    .flatten()
                    .filter_map(|e| e.file_name().to_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        fds.retain(|&fd| fd > 2 && fd != keep);
        for fd in fds {
            libc::close(fd);
        }
        libc::chdir(c"/".as_ptr());
        #[cfg(target_os = "linux")]
        libc::prctl(libc::PR_SET_NAME, c"pk-guard".as_ptr());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn told(notes: &[Note<'_>]) -> Told {
        let mut told = Told::default();
        for n in notes {
            let bytes = n.encode();
            assert_eq!(bytes.last(), Some(&0));
            assert!(told.apply(&bytes[..bytes.len() - 1]));
        }
        told
    }

    #[test]
    fn notes_round_trip_through_the_wire_format() {
        let t = told(&[
            Note::Cgroup(Path::new("/sys/fs/cgroup/a b/pk-1-0")),
            Note::Marker("1.2.3"),
            Note::Group {
                pgid: 10,
                start: 99,
            },
            Note::Group {
                pgid: 11,
                start: 98,
            },
            Note::GroupGone(10),
            Note::Adopted { pid: 20, start: 97 },
            Note::Adopted { pid: 21, start: 96 },
            Note::AdoptedGone(21),
            Note::Record(Path::new("/tmp/x.run.json")),
            Note::Lock(Path::new("/tmp/x.lock")),
        ]);
        assert_eq!(t.lock, Some(PathBuf::from("/tmp/x.lock")));
        assert_eq!(
            t.remains.cgroups,
            [PathBuf::from("/sys/fs/cgroup/a b/pk-1-0")]
        );
        assert_eq!(t.remains.markers, ["1.2.3"]);
        assert_eq!(t.remains.groups, [(11, 98)]);
        assert_eq!(t.remains.adopted, [(20, 97)]);
        assert_eq!(t.record, Some(PathBuf::from("/tmp/x.run.json")));
        assert!(!Told::default().apply(&BYE[..BYE.len() - 1]));
    }

    #[test]
    fn a_note_fits_one_atomic_pipe_write() {
        let long = "x".repeat(5000);
        assert!(Note::Cgroup(Path::new(&long)).encode().len() > MAX_NOTE);
        assert!(
            Note::Group {
                pgid: i32::MAX,
                start: u64::MAX
            }
            .encode()
            .len()
                < 64
        );
    }
}
