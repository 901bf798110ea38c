//! The fast spawn on Linux: `clone(CLONE_VM | CLONE_VFORK)`, as glibc's `posix_spawn` does,
//! with pk's own steps in the child before exec: default signal handlers, the parent-death
//! signal, the cgroup leaf, the process group, stdio and the working directory. No copy of pk's
//! address space is made (a `fork` of pk costs ~1.5 ms with its threads; this costs ~50 µs).
//!
//! Invariants: the child runs on its own stack inside pk's memory while the spawning thread is
//! suspended (`CLONE_VFORK`); it only reads data built before the clone, calls only
//! async-signal-safe libc functions, never allocates, locks or returns, and ends in `execve` or
//! `_exit`. All signals are blocked in the spawning thread around the clone so that no handler
//! of pk ever runs on the child's stack.

use std::ffi::{CString, c_char, c_int, c_void};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;

use rustix::process::{Pid, WaitOptions};
use tokio::io::unix::AsyncFd;

/// What the child needs, built before the clone; the child only reads it.
struct ChildArgs {
    program: CString,
    argv: Vec<*const c_char>,
    envp: Vec<*const c_char>,
    cwd: CString,
    stdio: [RawFd; 3],
    /// The process group to join; 0: a new one led by the child.
    pgid: libc::pid_t,
    /// A new session instead, with stdin (a terminal) as its controlling terminal.
    session: bool,
    /// The leaf's `cgroup.procs`, or -1.
    procs: RawFd,
    parent: libc::pid_t,
    /// Write end of a close-on-exec pipe: the child writes its errno there if it fails.
    error: RawFd,
    mask: libc::sigset_t,
}

/// One stage to start.
pub(crate) struct Request<'a> {
    pub program: &'a Path,
    pub argv: &'a [String],
    pub env: &'a std::collections::BTreeMap<String, String>,
    pub cwd: &'a Path,
    pub stdio: [BorrowedFd<'a>; 3],
    pub group: super::spawn::Group,
    pub procs: Option<BorrowedFd<'a>>,
}

fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in an argument"))
}

/// Starts the program; returns once it has exec'd (or reports why it could not).
pub(crate) fn spawn(req: &Request<'_>) -> io::Result<PidfdChild> {
    let program = cstring(req.program.as_os_str().as_bytes())?;
    let arg_strings: Vec<CString> = req
        .argv
        .iter()
        .map(|a| cstring(a.as_bytes()))
        .collect::<io::Result<_>>()?;
    let vars: Vec<CString> = req
        .env
        .iter()
        .map(|(k, v)| cstring(format!("{k}={v}").as_bytes()))
        .collect::<io::Result<_>>()?;
    let mut argv: Vec<*const c_char> = arg_strings.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const c_char> = vars.iter().map(|v| v.as_ptr()).collect();
    envp.push(std::ptr::null());
    let (err_read, err_write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    let mut child = ChildArgs {
        program,
        argv,
        envp,
        cwd: cstring(req.cwd.as_os_str().as_bytes())?,
        stdio: [
            req.stdio[0].as_raw_fd(),
            req.stdio[1].as_raw_fd(),
            req.stdio[2].as_raw_fd(),
        ],
        pgid: match req.group {
            super::spawn::Group::Join(p) => libc::pid_t::try_from(p).unwrap_or(0),
            super::spawn::Group::New | super::spawn::Group::Session => 0,
        },
        session: req.group == super::spawn::Group::Session,
        procs: req.procs.map_or(-1, |p| p.as_raw_fd()),
        parent: libc::pid_t::try_from(std::process::id()).unwrap_or(0),
        error: err_write.as_raw_fd(),
        // SAFETY: an all-zero sigset_t is a valid (empty) set; it is filled below.
        mask: unsafe { std::mem::zeroed() },
    };
    let mut stack = vec![0u8; 64 * 1024];
    // SAFETY: the stack grows down on every Linux target pk supports; the top is 16-aligned.
    let top = unsafe { stack.as_mut_ptr().add(stack.len()) };
    let top = (top as usize & !15) as *mut c_void;
    // SAFETY: sigfillset/pthread_sigmask on valid sets; clone with CLONE_VM|CLONE_VFORK runs
    // `child_main` on `stack` while this thread is suspended, and `child` outlives that.
    let pid = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&raw mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &raw const all, &raw mut child.mask);
        let pid = libc::clone(
            child_main,
            top,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            (&raw mut child).cast::<c_void>(),
        );
        libc::pthread_sigmask(
            libc::SIG_SETMASK,
            &raw const child.mask,
            std::ptr::null_mut(),
        );
        pid
    };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    drop(err_write);
    drop(stack);
    let mut errno = [0u8; 4];
    let failed = rustix::io::read(&err_read, &mut errno).unwrap_or(0) == 4;
    let pid_u32 = u32::try_from(pid).unwrap_or(0);
    let raw_pid = Pid::from_raw(pid).expect("clone returned a positive pid");
    if failed {
        // The child never ran the program; reap it so it does not linger as a zombie.
        let _ = rustix::process::waitpid(Some(raw_pid), WaitOptions::empty());
        let error = io::Error::from_raw_os_error(i32::from_ne_bytes(errno));
        return Err(io::Error::new(
            error.kind(),
            format!(
                "cannot start `{}` in {}: {error}",
                req.argv.first().map_or("", String::as_str),
                req.cwd.display()
            ),
        ));
    }
    let pidfd = rustix::process::pidfd_open(raw_pid, rustix::process::PidfdFlags::NONBLOCK)?;
    // SAFETY: the AsyncFd owns the pidfd, so the fd cannot be closed while it is registered.
    let pidfd = unsafe {
        AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE)
            .map_err(io::Error::from)?
    };
    Ok(PidfdChild {
        pid: pid_u32,
        pidfd: Some(pidfd),
        status: None,
    })
}

/// Runs in the child: only async-signal-safe calls on pre-built data, then exec or `_exit`.
extern "C" fn child_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `ChildArgs` the suspended parent built; only read here.
    let a = unsafe { &*arg.cast::<ChildArgs>() };
    // SAFETY: every call below is async-signal-safe and gets valid pointers from `a`.
    unsafe {
        let fail = |a: &ChildArgs| -> ! {
            let errno = *libc::__errno_location();
            let bytes = errno.to_ne_bytes();
            libc::write(a.error, bytes.as_ptr().cast(), 4);
            libc::_exit(127)
        };
        // pk's handlers must not run here: back to the defaults, then pk's signal mask.
        for sig in 1..libc::SIGRTMAX() {
            let mut old: libc::sigaction = std::mem::zeroed();
            // SIGPIPE too: Rust ignores it in pk, and a service must get the default, as std's
            // Command gives it (`yes | head` ends quietly).
            if libc::sigaction(sig, std::ptr::null(), &raw mut old) == 0
                && old.sa_sigaction != libc::SIG_DFL
                && (old.sa_sigaction != libc::SIG_IGN || sig == libc::SIGPIPE)
            {
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(sig, &raw const dfl, std::ptr::null_mut());
            }
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, &raw const a.mask, std::ptr::null_mut());
        // Die with pk (even by SIGKILL); if pk is already gone, do not run orphaned.
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
            fail(a);
        }
        if libc::getppid() != a.parent {
            *libc::__errno_location() = libc::ESRCH;
            fail(a);
        }
        if a.procs >= 0 && libc::write(a.procs, b"0".as_ptr().cast(), 1) != 1 {
            fail(a);
        }
        if a.session {
            // A terminal service: its own session (and process group), see below.
            if libc::setsid() < 0 {
                fail(a);
            }
        } else if libc::setpgid(0, a.pgid) != 0 {
            fail(a);
        }
        for (target, &fd) in a.stdio.iter().enumerate() {
            #[expect(
                clippy::cast_possible_truncation,
                clippy::cast_possible_wrap,
                reason = "0..3"
            )]
            let target = target as c_int;
            // dup2 onto itself keeps close-on-exec set; clear it by hand then.
            let ok = if fd == target {
                libc::fcntl(fd, libc::F_SETFD, 0) == 0
            } else {
                libc::dup2(fd, target) >= 0
            };
            if !ok {
                fail(a);
            }
        }
        // A terminal service: stdin, now the terminal's slave, becomes the session's
        // controlling terminal.
        if a.session && libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
            fail(a);
        }
        if libc::chdir(a.cwd.as_ptr()) != 0 {
            fail(a);
        }
        libc::execve(a.program.as_ptr(), a.argv.as_ptr(), a.envp.as_ptr());
        fail(a)
    }
}

/// A child started by `spawn`, reaped through its pidfd.
#[derive(Debug)]
pub(crate) struct PidfdChild {
    pid: u32,
    pidfd: Option<AsyncFd<OwnedFd>>,
    status: Option<ExitStatus>,
}

impl PidfdChild {
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Reaps the child if it has exited.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if let Some(status) = self.status {
            return Ok(Some(status));
        }
        let pid = Pid::from_raw(i32::try_from(self.pid).unwrap_or(i32::MAX)).expect("a child pid");
        match rustix::process::waitpid(Some(pid), WaitOptions::NOHANG)? {
            Some((_, status)) => {
                let status = ExitStatus::from_raw(status.as_raw());
                self.status = Some(status);
                Ok(Some(status))
            }
            None => Ok(None),
        }
    }

    /// Waits until the child exits and reaps it. Cancel-safe.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(status);
            }
            let Some(fd) = &self.pidfd else {
                return Err(io::Error::other("no pidfd"));
            };
            // A pidfd reads as ready once the process has exited.
            let mut ready = fd.readable().await?;
            ready.clear_ready();
        }
    }
}

impl Drop for PidfdChild {
    fn drop(&mut self) {
        if self.status.is_some() || matches!(self.try_wait(), Ok(Some(_))) {
            return;
        }
        // Still running: reap it when it exits, so it does not stay a zombie. The task holds
        // no `PidfdChild` (whose drop would spawn again, forever, on a runtime shutting down).
        if let (Some(fd), Ok(rt)) = (self.pidfd.take(), tokio::runtime::Handle::try_current()) {
            let pid = self.pid;
            rt.spawn(async move {
                // A pidfd reads as ready once the process has exited; then reap it.
                if fd.readable().await.is_ok()
                    && let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw)
                {
                    // Nobody is waiting for this status any more.
                    let _ = rustix::process::waitpid(Some(pid), WaitOptions::NOHANG);
                }
            });
        }
    }
}

/// `/dev/null` for stage 0's stdin.
pub(crate) fn dev_null() -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        "/dev/null",
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?)
}
