//! The fast spawn on Linux: `clone(CLONE_VM | CLONE_VFORK)`, as glibc's `posix_spawn` does,
//! with pk's own steps in the child before exec: default signal handlers, the parent-death
//! signal, the original `RLIMIT_NOFILE`, the cgroup leaf, the process group, stdio and the
//! working directory. No copy of pk's address space is made (a `fork` of pk costs ~1.5 ms with
//! its threads; this costs ~50 µs).
//!
//! Invariants: the child runs on its own mmap'd stack (with a guard page below it) inside the
//! spawning process's memory while the spawning thread is suspended (`CLONE_VFORK`); it only
//! reads data built before the clone, calls only async-signal-safe libc functions, never
//! allocates, locks or returns, and ends in `execve` or `_exit` — its only write to shared
//! memory is its errno, read by the parent once the clone returned. All signals are blocked in
//! the spawning thread around the clone so that no handler ever runs on the child's stack.
//! The pidfd comes from the clone itself (`CLONE_PIDFD`): once the program runs, the caller
//! holds a way to kill and reap it, and every later failure kills and reaps it.

use std::ffi::{CString, c_char, c_int, c_void};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicI32, Ordering};

use rustix::process::{Pid, WaitOptions};
use tokio::io::unix::AsyncFd;

/// What the child needs, built before the clone; the child only reads it (and stores `errno`).
pub(super) struct ChildArgs {
    pub program: *const c_char,
    pub argv: *const *const c_char,
    /// `/bin/sh program argv[1..]`: run when `program` is a script without `#!` (`ENOEXEC`),
    /// as `execvp` and std do.
    pub sh_argv: *const *const c_char,
    pub envp: *const *const c_char,
    pub cwd: *const c_char,
    pub stdio: [RawFd; 3],
    /// The process group to join; 0: a new one led by the child.
    pub pgid: libc::pid_t,
    /// A new session instead, with stdin (a terminal) as its controlling terminal.
    pub session: bool,
    /// The leaf's `cgroup.procs`, or -1.
    pub procs: RawFd,
    /// The pid `getppid` must return once the parent-death signal is set.
    pub parent: libc::pid_t,
    /// The mask to restore before exec.
    pub mask: libc::sigset_t,
    /// Reset every handled signal to its default first (the spawning process has handlers).
    pub reset_handlers: bool,
    /// The soft `RLIMIT_NOFILE` the program gets (pk raised its own), or `None` to inherit.
    pub nofile: Option<libc::rlimit>,
    /// Set by the child when it fails before exec; 0 once it exec'd.
    pub errno: AtomicI32,
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

/// The child's stack: mmap'd, with a `PROT_NONE` guard page below it (as glibc's `posix_spawn`
/// has), so an overflow faults instead of writing over the spawning process's memory.
pub(super) struct ChildStack {
    base: *mut c_void,
    len: usize,
}

// SAFETY: the mapping is owned by this value alone; nothing else refers to it.
unsafe impl Send for ChildStack {}

/// Usable size of a child stack: the child's steps need a few KiB (as glibc's `posix_spawn`).
const STACK_SIZE: usize = 64 * 1024;

impl ChildStack {
    pub(super) fn new() -> io::Result<ChildStack> {
        let guard = rustix::param::page_size();
        let len = STACK_SIZE + guard;
        // SAFETY: a fresh anonymous private mapping; checked below.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let stack = ChildStack { base, len };
        // SAFETY: the lowest page of the mapping just made; the stack grows down onto it.
        if unsafe { libc::mprotect(base, guard, libc::PROT_NONE) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(stack)
    }

    /// The initial stack pointer: the top of the mapping, 16-aligned (stacks grow down on every
    /// Linux target pk supports).
    pub(super) fn top(&self) -> *mut c_void {
        let top = self.base as usize + self.len;
        (top & !15) as *mut c_void
    }

    /// The guard page's address range.
    #[cfg(test)]
    fn guard_range(&self) -> std::ops::Range<usize> {
        self.base as usize..self.base as usize + rustix::param::page_size()
    }
}

impl Drop for ChildStack {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping `new` made; no child runs on it any more.
        unsafe { libc::munmap(self.base, self.len) };
    }
}

/// Everything `ChildArgs` points into, owned.
pub(super) struct Prepared {
    program: CString,
    _args: Vec<CString>,
    _vars: Vec<CString>,
    argv: Vec<*const c_char>,
    sh_argv: Vec<*const c_char>,
    envp: Vec<*const c_char>,
    cwd: CString,
}

/// `/bin/sh`, for scripts without `#!`.
pub(super) const SH: &std::ffi::CStr = c"/bin/sh";

impl Prepared {
    pub(super) fn new(
        program: &Path,
        argv: &[String],
        env: &std::collections::BTreeMap<String, String>,
        cwd: &Path,
    ) -> io::Result<Prepared> {
        let program = cstring(program.as_os_str().as_bytes())?;
        let words: Vec<CString> = argv
            .iter()
            .map(|a| cstring(a.as_bytes()))
            .collect::<io::Result<_>>()?;
        let vars: Vec<CString> = env
            .iter()
            .map(|(k, v)| cstring(format!("{k}={v}").as_bytes()))
            .collect::<io::Result<_>>()?;
        let mut argv: Vec<*const c_char> = words.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        let mut sh_argv = vec![SH.as_ptr(), program.as_ptr()];
        sh_argv.extend(words.iter().skip(1).map(|a| a.as_ptr()));
        sh_argv.push(std::ptr::null());
        let mut envp: Vec<*const c_char> = vars.iter().map(|v| v.as_ptr()).collect();
        envp.push(std::ptr::null());
        Ok(Prepared {
            program,
            _args: words,
            _vars: vars,
            argv,
            sh_argv,
            envp,
            cwd: cstring(cwd.as_os_str().as_bytes())?,
        })
    }
}

/// Starts the program; returns once it has exec'd (or reports why it could not).
pub(crate) fn spawn(req: &Request<'_>) -> io::Result<PidfdChild> {
    let prepared = Prepared::new(req.program, req.argv, req.env, req.cwd)?;
    let args = ChildArgs {
        program: prepared.program.as_ptr(),
        argv: prepared.argv.as_ptr(),
        sh_argv: prepared.sh_argv.as_ptr(),
        envp: prepared.envp.as_ptr(),
        cwd: prepared.cwd.as_ptr(),
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
        // SAFETY: an all-zero sigset_t is a valid (empty) set; `clone_child` fills it.
        mask: unsafe { std::mem::zeroed() },
        reset_handlers: true,
        nofile: super::fd_limit::service_nofile(),
        errno: AtomicI32::new(0),
    };
    thread_local! {
        static STACK: std::cell::RefCell<Option<ChildStack>> = const { std::cell::RefCell::new(None) };
    }
    let mut args = args;
    let cloned = STACK.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none() {
            *cell = Some(ChildStack::new()?);
        }
        let stack = cell.as_ref().expect("just made");
        // SAFETY: `args` and the data it points into (`prepared`, `req`) outlive the clone.
        unsafe { clone_child(&mut args, stack, 0) }
    });
    let cloned = cloned.and_then(|cloned| {
        if cloned.errno == 0 {
            return Ok(cloned);
        }
        // It never ran the program; reap it so it does not linger as a zombie.
        reap(cloned.pid);
        Err(io::Error::from_raw_os_error(cloned.errno))
    });
    let cloned = cloned.map_err(|error| located(&error, req))?;
    PidfdChild::adopt(cloned.pid, cloned.pidfd)
}

/// `cannot start `prog` in /dir: <error>`.
pub(super) fn located(error: &io::Error, req: &Request<'_>) -> io::Error {
    io::Error::new(
        error.kind(),
        format!(
            "cannot start `{}` in {}: {error}",
            req.argv.first().map_or("", String::as_str),
            req.cwd.display()
        ),
    )
}

/// A child just cloned: it has exec'd (`errno` 0) or failed before and exited (`errno`).
pub(super) struct Cloned {
    pub pid: libc::pid_t,
    pub pidfd: OwnedFd,
    pub errno: c_int,
}

/// Clones the child on `stack` with `extra` clone flags (the spawner process adds
/// `CLONE_PARENT`) and waits until it exec'd or failed. `Err` only if the clone itself failed.
///
/// # Safety
/// Every pointer in `args` must be valid until this returns.
pub(super) unsafe fn clone_child(
    args: &mut ChildArgs,
    stack: &ChildStack,
    extra: c_int,
) -> io::Result<Cloned> {
    let mut pidfd: c_int = -1;
    // SAFETY: sigfillset/pthread_sigmask on valid sets; clone with CLONE_VM|CLONE_VFORK runs
    // `child_main` on `stack` while this thread is suspended, and `args` outlives that.
    let pid = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&raw mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &raw const all, &raw mut args.mask);
        let pid = libc::clone(
            child_main,
            stack.top(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD | libc::SIGCHLD | extra,
            std::ptr::from_mut(args).cast::<c_void>(),
            &raw mut pidfd,
        );
        libc::pthread_sigmask(
            libc::SIG_SETMASK,
            &raw const args.mask,
            std::ptr::null_mut(),
        );
        pid
    };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Cloned {
        pid,
        // SAFETY: CLONE_PIDFD stored a new descriptor that nothing else owns.
        pidfd: unsafe { OwnedFd::from_raw_fd(pidfd) },
        errno: args.errno.load(Ordering::SeqCst),
    })
}

/// SIGKILLs a child of this process that pk cannot supervise, and reaps it. Its pid cannot
/// have been reused: an unreaped child keeps it.
pub(super) fn kill_and_reap(pid: libc::pid_t) {
    // SAFETY: kill(2) on our own unreaped child.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    reap(pid);
}

/// Waits for a child that exited or was killed (it is gone or about to be).
pub(super) fn reap(pid: libc::pid_t) {
    if let Some(pid) = Pid::from_raw(pid) {
        // The status is not wanted: the caller reports the failure itself.
        let _ = rustix::process::waitpid(Some(pid), WaitOptions::empty());
    }
}

/// The signals whose handlers the child resets: every one, up to and including `SIGRTMAX`.
pub(super) fn every_signal() -> std::ops::RangeInclusive<c_int> {
    1..=libc::SIGRTMAX()
}

/// Runs in the child: only async-signal-safe calls on pre-built data, then exec or `_exit`.
extern "C" fn child_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `ChildArgs` the suspended parent built; only `errno` is written.
    let a = unsafe { &*arg.cast::<ChildArgs>() };
    // SAFETY: every call below is async-signal-safe and gets valid pointers from `a`.
    unsafe {
        let fail = |a: &ChildArgs| -> ! {
            let errno = *libc::__errno_location();
            a.errno.store(
                if errno == 0 { libc::EINVAL } else { errno },
                Ordering::SeqCst,
            );
            libc::_exit(127)
        };
        // The parent's handlers must not run here: back to the defaults, then its mask.
        if a.reset_handlers {
            for sig in every_signal() {
                let mut old: libc::sigaction = std::mem::zeroed();
                // SIGPIPE too: Rust ignores it in pk, and a service must get the default, as
                // std's Command gives it (`yes | head` ends quietly).
                if libc::sigaction(sig, std::ptr::null(), &raw mut old) == 0
                    && old.sa_sigaction != libc::SIG_DFL
                    && (old.sa_sigaction != libc::SIG_IGN || sig == libc::SIGPIPE)
                {
                    let mut dfl: libc::sigaction = std::mem::zeroed();
                    dfl.sa_sigaction = libc::SIG_DFL;
                    libc::sigaction(sig, &raw const dfl, std::ptr::null_mut());
                }
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
        if let Some(limit) = &a.nofile
            && libc::setrlimit(libc::RLIMIT_NOFILE, limit) != 0
        {
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
        if libc::chdir(a.cwd) != 0 {
            fail(a);
        }
        libc::execve(a.program, a.argv, a.envp);
        if *libc::__errno_location() == libc::ENOEXEC {
            // A script without `#!`: the shell runs it, as execvp (and so std) does.
            libc::execve(SH.as_ptr(), a.sh_argv, a.envp);
        }
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
    /// Takes over a running child of this process and its pidfd. If the pidfd cannot be
    /// watched, the child is killed and reaped: nothing runs that pk cannot reap.
    pub(super) fn adopt(pid: libc::pid_t, pidfd: OwnedFd) -> io::Result<PidfdChild> {
        // SAFETY: the AsyncFd owns the pidfd, so the fd cannot be closed while it is registered.
        match unsafe { AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE) } {
            Ok(pidfd) => Ok(PidfdChild {
                pid: pid.unsigned_abs(),
                pidfd: Some(pidfd),
                status: None,
            }),
            Err(error) => {
                kill_and_reap(pid);
                Err(io::Error::from(error))
            }
        }
    }

    pub(super) fn pid(&self) -> u32 {
        self.pid
    }

    /// Reaps the child if it has exited.
    pub(super) fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
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
    pub(super) async fn wait(&mut self) -> io::Result<ExitStatus> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The permissions `/proc/self/maps` lists for the mapping that holds `addr`.
    fn mapping_perms(addr: usize) -> Option<String> {
        let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
        maps.lines().find_map(|line| {
            let (range, rest) = line.split_once(' ')?;
            let (lo, hi) = range.split_once('-')?;
            let lo = usize::from_str_radix(lo, 16).ok()?;
            let hi = usize::from_str_radix(hi, 16).ok()?;
            (lo <= addr && addr < hi).then(|| rest.split(' ').next().unwrap_or("").to_owned())
        })
    }

    #[test]
    fn the_child_stack_has_a_guard_page_below_it() {
        let stack = ChildStack::new().expect("a child stack");
        let guard = stack.guard_range();
        assert_eq!(mapping_perms(guard.start).as_deref(), Some("---p"));
        assert_eq!(mapping_perms(guard.end - 1).as_deref(), Some("---p"));
        // Right above the guard: the usable stack, read-write.
        assert_eq!(mapping_perms(guard.end).as_deref(), Some("rw-p"));
        let top = stack.top() as usize;
        assert_eq!(mapping_perms(top - 1).as_deref(), Some("rw-p"));
        assert!(top - guard.end >= STACK_SIZE - 16);
    }

    #[test]
    fn every_signal_is_reset_up_to_and_including_sigrtmax() {
        let signals = every_signal();
        assert_eq!(*signals.start(), 1);
        assert!(signals.contains(&libc::SIGRTMAX()), "{signals:?}");
        assert!(signals.contains(&libc::SIGRTMIN()));
    }
}
