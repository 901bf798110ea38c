//! The fast spawn on Linux: `clone(CLONE_VM | CLONE_VFORK)`, as glibc's `posix_spawn` does,
//! with pk's own steps in the child before exec: default signal handlers, the parent-death
//! signal, the original `RLIMIT_NOFILE`, the cgroup leaf, the process group, stdio and the
//! working directory. No copy of pk's address space is made (a `fork` of pk costs ~1.5 ms with
//! its threads; this costs ~50 µs).
//!
//! A child whose leaf was made for its tree is created in it: `clone3(CLONE_INTO_CGROUP)`
//! (Linux 5.7+, `x86_64`), so it never migrates (a write to `cgroup.procs` takes the cgroup
//! core's global threadgroup lock for writing: 0.12–0.21 ms a child measured here;
//! docs/decisions/0010-clone-into-cgroup.md). Otherwise, or where `clone3` or the flag is
//! missing, the child joins the leaf itself before anything else, by writing `0` to its
//! `cgroup.procs`.
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
    /// The leaf's directory, or -1.
    pub cgroup: RawFd,
    /// How the child gets into `cgroup`.
    pub entry: Entry,
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

/// A tree's cgroup leaf, as a spawn sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Leaf<'a> {
    /// The leaf's directory (opened `O_DIRECTORY`).
    pub dir: BorrowedFd<'a>,
    /// It was made for this tree (see [`Entry::Fresh`]).
    pub fresh: bool,
}

/// How a child gets into its cgroup leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Entry {
    /// It joins by a write to the leaf's `cgroup.procs` before exec (or there is no leaf).
    Join,
    /// The leaf was made for this tree, so no `cgroup.kill` has reached it: the child may be
    /// created in it. On kernels with `cgroup.kill`'s fork sequence number (6.14+), a child
    /// cloned into a leaf that was ever killed can be killed at birth (the number compared is
    /// the parent cgroup's, not the leaf's; seen on 6.18): a probe's or a shutdown command's
    /// leaf, used again after a kill, is joined by a write.
    Fresh,
    /// Set by `clone_child`: the child was created in the leaf.
    Born,
}

impl Entry {
    /// How a child may enter its leaf, `fresh` or not (before `clone_child` tries).
    pub(super) fn of(fresh: bool) -> Entry {
        if fresh { Entry::Fresh } else { Entry::Join }
    }
}

/// One stage to start.
pub(crate) struct Request<'a> {
    pub program: &'a Path,
    pub argv: &'a [String],
    pub env: &'a std::collections::BTreeMap<String, String>,
    pub cwd: &'a Path,
    pub stdio: [BorrowedFd<'a>; 3],
    pub group: super::spawn::Group,
    /// The tree's leaf, for the cgroup backend.
    pub cgroup: Option<Leaf<'a>>,
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

    /// The usable part (above the guard page): its lowest address and its size, for `clone3`.
    #[cfg(target_arch = "x86_64")]
    fn usable(&self) -> (usize, usize) {
        let low = self.base as usize + rustix::param::page_size();
        (low, self.top() as usize - low)
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
        cgroup: req.cgroup.map_or(-1, |leaf| leaf.dir.as_raw_fd()),
        entry: Entry::of(req.cgroup.is_some_and(|leaf| leaf.fresh)),
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
        // Without CLONE_PARENT a child killed at birth is reaped in `clone_child`.
        unsafe { clone_child(&mut args, stack, 0, &mut 0) }
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
    note_born_in_cgroup(cloned.born_in_cgroup);
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
    /// It was created in its cgroup leaf (`clone3`), not moved there.
    pub born_in_cgroup: bool,
}

/// How many children this pk created directly in their cgroup leaf (`clone3`), itself or
/// through its spawners.
static BORN_IN_CGROUP: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Counts a child that was created in its leaf.
pub(super) fn note_born_in_cgroup(born: bool) {
    if born {
        BORN_IN_CGROUP.fetch_add(1, Ordering::Relaxed);
    }
}

/// How many children were created directly in their cgroup leaf so far (the rest, if any,
/// joined theirs by a write: kernels without `clone3`'s `CLONE_INTO_CGROUP`, other
/// architectures).
pub fn children_born_in_their_leaf() -> usize {
    BORN_IN_CGROUP.load(Ordering::Relaxed)
}

/// Clones the child on `stack` with `extra` clone flags (the spawner process adds
/// `CLONE_PARENT`) and waits until it exec'd or failed. `Err` only if the clone itself failed.
/// A child with a fresh cgroup leaf is created in it where the kernel can (`clone3`), else it
/// joins. A `CLONE_PARENT` child killed at birth is left in `stillborn` for its parent to reap.
///
/// # Safety
/// Every pointer in `args` must be valid until this returns.
pub(super) unsafe fn clone_child(
    args: &mut ChildArgs,
    stack: &ChildStack,
    extra: c_int,
    stillborn: &mut libc::pid_t,
) -> io::Result<Cloned> {
    let mut pidfd: c_int = -1;
    // SAFETY: sigfillset/pthread_sigmask on valid sets; both clones run `child_main` on
    // `stack` with CLONE_VM|CLONE_VFORK while this thread is suspended, and `args` outlives
    // that.
    let pid = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&raw mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &raw const all, &raw mut args.mask);
        let mut pid = -1;
        if args.cgroup >= 0 && args.entry == Entry::Fresh && into_cgroup::usable() {
            args.entry = Entry::Born;
            args.errno.store(NEVER_RAN, Ordering::SeqCst);
            pid = into_cgroup::clone(args, stack, extra, &raw mut pidfd);
            if pid > 0 && args.errno.load(Ordering::SeqCst) == NEVER_RAN {
                // Killed at birth, before its first instruction: this kernel will not have
                // children created in this leaf. Reap it (or leave it to pk, its parent, when
                // this is a spawner) and join by a write from now on.
                into_cgroup::give_up();
                if extra & libc::CLONE_PARENT == 0 {
                    reap(pid);
                } else {
                    *stillborn = pid;
                }
                // CLONE_PIDFD stored a descriptor that nothing else owns.
                drop(OwnedFd::from_raw_fd(pidfd));
                pid = -1;
            }
            if pid < 0 {
                // The kernel cannot (an old one) or will not (this leaf): join by a write,
                // which reports a real error itself.
                args.entry = Entry::Join;
            }
        }
        if pid < 0 {
            args.errno.store(0, Ordering::SeqCst);
            pid = libc::clone(
                child_main,
                stack.top(),
                libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD | libc::SIGCHLD | extra,
                std::ptr::from_mut(args).cast::<c_void>(),
                &raw mut pidfd,
            );
        }
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
        born_in_cgroup: args.entry == Entry::Born,
    })
}

/// `clone3(CLONE_INTO_CGROUP)`: the child is created in its leaf. `x86_64` only: with `CLONE_VM`
/// the child starts on its new stack inside the system call, so the call and the child's first
/// instructions are a few lines of assembly (glibc has no `clone3` wrapper to call).
#[cfg(target_arch = "x86_64")]
mod into_cgroup {
    use std::ffi::{c_int, c_void};
    use std::sync::atomic::{AtomicU8, Ordering};

    use super::{ChildArgs, ChildStack, child_main};

    /// `CLONE_INTO_CGROUP` (linux/sched.h), not in the libc crate for every target.
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

    /// The kernel's `struct clone_args`, as of Linux 5.7 (`CLONE_ARGS_SIZE_VER2`).
    #[repr(C)]
    struct CloneArgs {
        flags: u64,
        pidfd: u64,
        child_tid: u64,
        parent_tid: u64,
        exit_signal: u64,
        stack: u64,
        stack_size: u64,
        tls: u64,
        set_tid: u64,
        set_tid_size: u64,
        cgroup: u64,
    }

    /// Whether `clone3` takes `CLONE_INTO_CGROUP` here: unknown until the first try.
    static STATE: AtomicU8 = AtomicU8::new(UNKNOWN);
    const UNKNOWN: u8 = 0;
    const WORKS: u8 = 1;
    const MISSING: u8 = 2;

    pub(in crate::process) fn usable() -> bool {
        STATE.load(Ordering::Relaxed) != MISSING
    }

    /// Whether a child was ever created in its cgroup by this process.
    #[cfg(test)]
    pub(in crate::process) fn worked() -> bool {
        STATE.load(Ordering::Relaxed) == WORKS
    }

    /// From now on, children join their leaf by a write (tests of that path).
    #[cfg(test)]
    pub(in crate::process) fn disable() {
        give_up();
    }

    /// From now on, children join their leaf by a write: a child was killed at birth.
    pub(super) fn give_up() {
        STATE.store(MISSING, Ordering::Relaxed);
    }

    /// Clones `child_main(args)` into `args.cgroup`; the pid, or -1 with `errno` set.
    ///
    /// # Safety
    /// As `clone_child`: every signal blocked, `args` valid until the child exec'd or exited.
    pub(super) unsafe fn clone(
        args: &mut ChildArgs,
        stack: &ChildStack,
        extra: c_int,
        pidfd: *mut c_int,
    ) -> libc::pid_t {
        let (low, size) = stack.usable();
        #[expect(
            clippy::cast_sign_loss,
            reason = "flags and a descriptor, both non-negative"
        )]
        let clone_args = CloneArgs {
            flags: (libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD | extra) as u64
                | CLONE_INTO_CGROUP,
            pidfd: pidfd as u64,
            child_tid: 0,
            parent_tid: 0,
            // A `CLONE_PARENT` child's exit signal is its parent's; clone3 refuses one then.
            exit_signal: if extra & libc::CLONE_PARENT == 0 {
                libc::SIGCHLD as u64
            } else {
                0
            },
            stack: low as u64,
            stack_size: size as u64,
            tls: 0,
            set_tid: 0,
            set_tid_size: 0,
            cgroup: args.cgroup as u64,
        };
        let arg = std::ptr::from_mut(args).cast::<c_void>();
        let entry: extern "C" fn(*mut c_void) -> c_int = child_main;
        let ret: i64;
        // SAFETY: clone3 with CLONE_VM|CLONE_VFORK: this thread is suspended until the child
        // exec'd or exited. The child starts at the instruction after `syscall` with this
        // thread's registers (r12, r13 included) and its stack pointer at the top of `stack`
        // (16-aligned, as a `call` needs); it calls `child_main(arg)`, which never returns (and
        // exits if it did). The parent gets the pid or -errno in rax; the kernel clobbers rcx
        // and r11. Nothing here touches this thread's stack.
        unsafe {
            std::arch::asm!(
                "syscall",
                "test rax, rax",
                "jnz 2f",
                "mov rdi, r12",
                "call r13",
                "mov edi, eax",
                "mov eax, {exit}",
                "syscall",
                "ud2",
                "2:",
                exit = const libc::SYS_exit,
                inlateout("rax") libc::SYS_clone3 => ret,
                in("rdi") &raw const clone_args,
                in("rsi") std::mem::size_of::<CloneArgs>(),
                in("r12") arg,
                in("r13") entry,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        if ret < 0 {
            #[expect(clippy::cast_possible_truncation, reason = "-4095..0")]
            let errno = (-ret) as c_int;
            if matches!(errno, libc::ENOSYS | libc::E2BIG | libc::EINVAL) {
                // No clone3, no `cgroup` field, or no CLONE_INTO_CGROUP: an older kernel.
                STATE.store(MISSING, Ordering::Relaxed);
            }
            // SAFETY: this thread's errno.
            unsafe { *libc::__errno_location() = errno };
            return -1;
        }
        STATE.store(WORKS, Ordering::Relaxed);
        #[expect(clippy::cast_possible_truncation, reason = "a pid")]
        let pid = ret as libc::pid_t;
        pid
    }
}

/// Elsewhere, children always join their leaf by a write.
#[cfg(not(target_arch = "x86_64"))]
mod into_cgroup {
    use std::ffi::c_int;

    use super::{ChildArgs, ChildStack};

    pub(in crate::process) fn usable() -> bool {
        false
    }

    pub(super) fn give_up() {}

    pub(super) unsafe fn clone(
        _: &mut ChildArgs,
        _: &ChildStack,
        _: c_int,
        _: *mut c_int,
    ) -> libc::pid_t {
        -1
    }
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

/// `ChildArgs::errno` until the child runs its first step: a child killed at birth leaves it.
const NEVER_RAN: c_int = -1;

/// Runs in the child: only async-signal-safe calls on pre-built data, then exec or `_exit`.
extern "C" fn child_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `ChildArgs` the suspended parent built; only `errno` is written.
    let a = unsafe { &*arg.cast::<ChildArgs>() };
    a.errno.store(0, Ordering::SeqCst);
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
        if a.cgroup >= 0 && a.entry != Entry::Born && !join_cgroup(a.cgroup) {
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

/// Moves the calling process into the cgroup whose directory is `dir`: a write of `0` to its
/// `cgroup.procs`. Async-signal-safe (a child between clone and exec calls it); `errno` says why
/// when it fails.
pub(super) fn join_cgroup(dir: RawFd) -> bool {
    // SAFETY: openat/write/close on a descriptor the caller keeps open and a static path.
    unsafe {
        let procs = libc::openat(
            dir,
            c"cgroup.procs".as_ptr(),
            libc::O_WRONLY | libc::O_CLOEXEC,
        );
        if procs < 0 {
            return false;
        }
        let written = libc::write(procs, b"0".as_ptr().cast(), 1) == 1;
        if !written {
            let errno = *libc::__errno_location();
            libc::close(procs);
            *libc::__errno_location() = errno;
            return false;
        }
        libc::close(procs);
        true
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
    use std::os::fd::AsFd;

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

    /// A run cgroup for one test, and the children spawned into it: killed, reaped and removed
    /// when dropped, whatever the test's outcome.
    struct TestCgroup {
        run: super::super::cgroup::RunCgroup,
        pids: Vec<libc::pid_t>,
    }

    impl Drop for TestCgroup {
        fn drop(&mut self) {
            for &pid in &self.pids {
                kill_and_reap(pid);
            }
            self.run.kill_all();
            self.run.wait_empty(std::time::Duration::from_secs(5));
            self.run.remove();
        }
    }

    /// A child spawned by a test: its cgroup, and its state letter right after the spawn.
    struct Child {
        cgroup: String,
        state: char,
    }

    /// Spawns `sleep 1000` into leaf `leaf` of `cg`, the leaf taken as fresh or not by `fresh`
    /// (given whether it was made just now).
    fn sleep_in(cg: &mut TestCgroup, leaf: &str, fresh: impl FnOnce(bool) -> bool) -> Child {
        let (dir, made) = cg.run.leaf(leaf).expect("a leaf");
        let dir_fd = rustix::fs::open(
            &dir,
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY,
            rustix::fs::Mode::empty(),
        )
        .expect("the leaf's directory");
        let null = std::fs::File::open("/dev/null").expect("/dev/null");
        let null = null.as_fd();
        let argv = ["sleep".to_owned(), "1000".to_owned()];
        let req = Request {
            program: Path::new("/bin/sleep"),
            argv: &argv,
            env: &std::collections::BTreeMap::new(),
            cwd: Path::new("/"),
            stdio: [null, null, null],
            group: super::super::spawn::Group::New,
            cgroup: Some(Leaf {
                dir: dir_fd.as_fd(),
                fresh: fresh(made),
            }),
        };
        let mut child = spawn(&req).expect("spawned");
        let pid = libc::pid_t::try_from(child.pid()).expect("a pid");
        cg.pids.push(pid);
        // Reaped by the guard, not by the handle.
        child.pidfd = None;
        child.status = Some(ExitStatus::from_raw(0));
        let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("its cgroup");
        Child {
            cgroup: super::super::cgroup::parse_own_cgroup(&cgroup).unwrap_or_default(),
            state: super::super::identity::stat(pid).expect("its stat").state,
        }
    }

    #[tokio::test]
    async fn a_child_is_created_in_its_leaf_or_else_joins_it_before_exec() {
        let run = match super::super::cgroup::RunCgroup::create() {
            Ok(run) => run,
            Err(reason) => {
                eprintln!("SKIPPED: cgroups cannot be used here ({reason})");
                return;
            }
        };
        let mut cg = TestCgroup {
            run,
            pids: Vec::new(),
        };
        let runs_in = |child: &Child, leaf: &str, what: &str| {
            let dir = format!("/{leaf}@service");
            assert!(child.cgroup.ends_with(&dir), "{what}: in {}", child.cgroup);
            assert_ne!(child.state, 'Z', "{what}: it runs");
        };
        runs_in(
            &sleep_in(&mut cg, "born", |made| made),
            "born",
            "a fresh leaf",
        );
        #[cfg(target_arch = "x86_64")]
        assert!(
            into_cgroup::worked(),
            "clone3(CLONE_INTO_CGROUP) on Linux 5.7+"
        );
        // A leaf used again after a `cgroup.kill` (as a probe's is): its next child runs.
        let (dir, _) = cg.run.leaf("born").expect("the leaf");
        super::super::cgroup::kill_leaf(&dir);
        let again = sleep_in(&mut cg, "born", |made| made);
        runs_in(&again, "born", "a leaf killed before");
        // Even if such a leaf were taken for a fresh one, the child runs: one killed at birth
        // is reaped, and the spawn joins by a write.
        let forced = sleep_in(&mut cg, "born", |_| true);
        runs_in(&forced, "born", "a killed leaf taken for a fresh one");
        // The other path, as on kernels without clone3: the child joins by a write.
        #[cfg(target_arch = "x86_64")]
        into_cgroup::disable();
        runs_in(
            &sleep_in(&mut cg, "joined", |made| made),
            "joined",
            "by a write",
        );
    }

    #[test]
    fn every_signal_is_reset_up_to_and_including_sigrtmax() {
        let signals = every_signal();
        assert_eq!(*signals.start(), 1);
        assert!(signals.contains(&libc::SIGRTMAX()), "{signals:?}");
        assert!(signals.contains(&libc::SIGRTMIN()));
    }
}
