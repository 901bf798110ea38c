//! The spawner process: a small fork of pk, made once before pk holds many descriptors, that
//! starts every service with `clone(CLONE_VM | CLONE_VFORK | CLONE_PARENT | CLONE_PIDFD)`.
//! A child copies its creator's descriptor table at clone and closes the close-on-exec ones at
//! exec; pk holds ~3 descriptors per running service, the spawner holds 4 — so the cost of a
//! spawn does not grow with the number of services running
//! (docs/decisions/0005-spawner-process.md).
//!
//! pk forks [`SPAWNERS`] of them, so that several spawns are in flight: each waits for its
//! child's `execve`, and a `&` loop in bash does not wait at all.
//!
//! Protocol: one `SOCK_SEQPACKET` pair per spawner; pk sends one request (program, cwd, argv,
//! env, the process group, whether the leaf was made for the tree; stdin, stdout, stderr and
//! the leaf's directory as `SCM_RIGHTS`) and waits for its reply (pid, errno, a child killed at
//! birth for pk to reap, whether the child was created in its leaf; the pidfd as `SCM_RIGHTS`)
//! before the next on that socket: one request in flight per spawner, held by a mutex on its socket; a
//! caller takes an idle spawner, else waits for one (lossless; bounded by pk's spawning
//! threads).
//!
//! Invariants:
//! - the services are pk's children (`CLONE_PARENT`): pk reaps them by pidfd, and their
//!   parent-death signal follows the thread that forked the spawners — pk's main thread, which
//!   lives as long as pk (or, started lazily, a dedicated thread that never exits);
//! - the spawner's own loop never allocates or locks (it may be forked from a multi-threaded
//!   process): buffers are made before the fork, everything after is raw syscalls;
//! - its descriptor table is /dev/null on 0-2, its socket on 3, and the request's descriptors
//!   while one is served; its signal handlers are the defaults (a service inherits them); it
//!   leads its own process group in pk's session, out of reach of the terminal's Ctrl-C;
//! - each ends when pk closes its socket, or with pk (parent-death signal).

use std::ffi::{c_char, c_int};
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use super::spawn::Group;
use super::vfork::{self, ChildArgs, ChildStack, PidfdChild, Request};

/// The largest request: program, cwd, argv and env with their NULs, plus the header. A bigger
/// one is spawned in pk itself.
const MAX_REQUEST: usize = 192 * 1024;
/// Room for the pointer arrays built from a request: argv, `/bin/sh` argv and envp.
const MAX_POINTERS: usize = 16 * 1024;
/// Descriptors sent with a request: stdin, stdout, stderr, the cgroup leaf's directory.
const MAX_FDS: usize = 4;
/// The spawner's socket.
const SOCKET_FD: RawFd = 3;
/// A reply: `i32 pid, i32 errno, i32 stillborn pid, u8 born in its cgroup leaf`, and the
/// pidfd as `SCM_RIGHTS`.
const REPLY: usize = 13;

/// How many spawner processes run: each serves one request at a time and waits for its
/// child's `execve` (`CLONE_VFORK`), so several let spawns overlap (a bash `&` loop does not
/// wait for its children either).
pub(super) const SPAWNERS: usize = 2;

/// pk's handle on one spawner process.
pub(crate) struct Spawner {
    pid: libc::pid_t,
    /// `None` once the spawner is gone.
    sock: Mutex<Option<OwnedFd>>,
}

/// pk's spawner processes; a request goes to an idle one, else waits for one in turn.
pub(crate) struct Spawners {
    all: Vec<Spawner>,
    /// Where the next request starts looking (spreads the waits).
    next: AtomicUsize,
}

static SHARED: OnceLock<Option<Spawners>> = OnceLock::new();

/// Forks the spawners now, from this thread, which must live as long as the process (pk's main
/// thread). Idempotent; spawners that cannot start leave pk spawning in-process.
pub fn start() {
    SHARED.get_or_init(Spawners::fork);
}

/// The process-wide spawners: the ones [`start`]ed, else ones forked now from a dedicated
/// thread that never exits (its children's parent-death signal follows it). `None` if none
/// can run.
pub(crate) fn shared() -> Option<&'static Spawners> {
    SHARED
        .get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel();
            let started = std::thread::Builder::new()
                .name("pk-spawner-parent".into())
                .spawn(move || {
                    let _ = tx.send(Spawners::fork());
                    // The parent thread of the spawners and of every service they start.
                    loop {
                        std::thread::park();
                    }
                });
            started.ok().and_then(|_| rx.recv().ok().flatten())
        })
        .as_ref()
}

/// The pids of the spawner processes (starting them if none runs yet); empty if none can run.
/// For tests and benchmarks.
pub fn spawner_pids() -> Vec<u32> {
    shared().map_or_else(Vec::new, |spawners| {
        spawners.all.iter().map(Spawner::pid).collect()
    })
}

/// Ends the spawners (each exits once its socket closes) and reaps them, so that none
/// outlives pk even for a moment. Later spawns run in-process.
pub fn stop() {
    if let Some(Some(spawners)) = SHARED.get() {
        for spawner in &spawners.all {
            let sock = spawner
                .sock
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take();
            if sock.is_some() {
                drop(sock);
                vfork::reap(spawner.pid);
            }
        }
    }
}

/// Whether `pid` is one of the spawner processes started (never starts one).
pub(crate) fn is_spawner(pid: i32) -> bool {
    SHARED
        .get()
        .and_then(Option::as_ref)
        .is_some_and(|spawners| spawners.all.iter().any(|spawner| spawner.pid == pid))
}

impl Spawners {
    fn fork() -> Option<Spawners> {
        let all: Vec<Spawner> = (0..SPAWNERS).filter_map(|_| Spawner::fork().ok()).collect();
        (!all.is_empty()).then(|| Spawners {
            all,
            next: AtomicUsize::new(0),
        })
    }

    /// Starts `req` in an idle spawner (else in the next one in turn, once it is free);
    /// returns once the program has exec'd (or why it could not). `Err(Ok(_))` asks the
    /// caller to spawn in-process.
    pub(super) fn spawn(
        &self,
        req: &Request<'_>,
    ) -> Result<PidfdChild, Result<Unavailable, io::Error>> {
        let message = encode(req).ok_or(Ok(Unavailable::TooBig))?;
        let mut fds: Vec<RawFd> = req.stdio.iter().map(AsRawFd::as_raw_fd).collect();
        if let Some(leaf) = &req.cgroup {
            fds.push(leaf.dir.as_raw_fd());
        }
        let n = self.all.len();
        let first = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let order = || (0..n).map(|i| &self.all[(first + i) % n]);
        // An idle one first; else wait, in turn, for one that still runs.
        for spawner in order() {
            if let Ok(sock) = spawner.sock.try_lock()
                && let Some(result) = spawner.serve(sock, &message, &fds)
            {
                return result;
            }
        }
        for spawner in order() {
            let sock = spawner
                .sock
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(result) = spawner.serve(sock, &message, &fds) {
                return result;
            }
        }
        Err(Ok(Unavailable::Gone))
    }
}

/// Why a request could not be served by the spawner (spawn in-process instead).
#[derive(Debug)]
pub(crate) enum Unavailable {
    /// Too big for one message.
    TooBig,
    /// The spawner has gone.
    Gone,
}

/// What the spawner's loop needs, allocated before the fork.
struct Buffers {
    request: Vec<u8>,
    pointers: Vec<*const c_char>,
    stack: ChildStack,
    parent: libc::pid_t,
}

impl Spawner {
    fn fork() -> io::Result<Spawner> {
        let mut pair = [-1; 2];
        // SAFETY: socketpair(2) fills `pair` with two new descriptors on success.
        if unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                pair.as_mut_ptr(),
            )
        } != 0
        {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both are new descriptors that nothing else owns.
        let (ours, theirs) =
            unsafe { (OwnedFd::from_raw_fd(pair[0]), OwnedFd::from_raw_fd(pair[1])) };
        let dev_null = super::spawn::dev_null()?;
        let mut buffers = Buffers {
            request: vec![0u8; MAX_REQUEST],
            pointers: Vec::with_capacity(MAX_POINTERS),
            stack: ChildStack::new()?,
            parent: libc::pid_t::try_from(std::process::id()).unwrap_or(0),
        };
        // SAFETY: the child only runs `serve`, which makes raw syscalls on memory allocated
        // above and never returns.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        if pid == 0 {
            // SAFETY: in the forked child; see `serve`.
            unsafe { serve(theirs.as_raw_fd(), dev_null.as_raw_fd(), &mut buffers) }
        }
        drop(theirs);
        Ok(Spawner {
            pid,
            sock: Mutex::new(Some(ours)),
        })
    }

    /// The spawner's pid.
    pub(super) fn pid(&self) -> u32 {
        self.pid.unsigned_abs()
    }

    /// Serves one request on this spawner, whose socket `sock` the caller locked; `None` if
    /// it has gone (try another).
    fn serve(
        &self,
        mut sock: MutexGuard<'_, Option<OwnedFd>>,
        message: &[u8],
        fds: &[RawFd],
    ) -> Option<Result<PidfdChild, Result<Unavailable, io::Error>>> {
        let fd = sock.as_ref()?;
        match exchange(fd.as_fd().as_raw_fd(), message, fds) {
            Ok(reply) => {
                drop(sock);
                Some(reply.into_child().map_err(Err))
            }
            Err(error) if error.raw_os_error() == Some(libc::EMSGSIZE) => {
                Some(Err(Ok(Unavailable::TooBig)))
            }
            Err(_) => {
                // Gone (killed, or its socket broke): stop using it, and reap it if it ended.
                *sock = None;
                let _ = rustix::process::waitpid(
                    rustix::process::Pid::from_raw(self.pid),
                    rustix::process::WaitOptions::NOHANG,
                );
                None
            }
        }
    }
}

impl std::fmt::Debug for Spawner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Spawner(pid {})", self.pid)
    }
}

/// Request flag: the cgroup leaf's directory comes with it.
const HAS_CGROUP: u32 = 1;
/// Request flag: a new session with stdin as its controlling terminal (`tty: true`).
const SESSION: u32 = 2;
/// Request flag: the cgroup leaf was made for this tree (`vfork::Entry::Fresh`).
const FRESH_LEAF: u32 = 4;

/// Request layout: `i32 pgid, u32 flags, u32 argc, u32 envc`, then NUL-terminated program,
/// cwd, argv…, `k=v`…
fn encode(req: &Request<'_>) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let mut out = Vec::with_capacity(1024);
    let pgid = match req.group {
        Group::Join(p) => libc::pid_t::try_from(p).unwrap_or(0),
        Group::New | Group::Session => 0,
    };
    out.extend_from_slice(&pgid.to_ne_bytes());
    let flags = u32::from(req.cgroup.is_some()) * HAS_CGROUP
        + u32::from(req.group == Group::Session) * SESSION
        + u32::from(req.cgroup.is_some_and(|leaf| leaf.fresh)) * FRESH_LEAF;
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&u32::try_from(req.argv.len()).ok()?.to_ne_bytes());
    out.extend_from_slice(&u32::try_from(req.env.len()).ok()?.to_ne_bytes());
    let mut push = |bytes: &[u8]| -> Option<()> {
        if bytes.contains(&0) {
            return None;
        }
        out.extend_from_slice(bytes);
        out.push(0);
        Some(())
    };
    push(req.program.as_os_str().as_bytes())?;
    push(req.cwd.as_os_str().as_bytes())?;
    for arg in req.argv {
        push(arg.as_bytes())?;
    }
    for (k, v) in req.env {
        let mut var = Vec::with_capacity(k.len() + v.len() + 1);
        var.extend_from_slice(k.as_bytes());
        var.push(b'=');
        var.extend_from_slice(v.as_bytes());
        push(&var)?;
    }
    let pointers = 2 * req.argv.len() + req.env.len() + 4;
    (out.len() <= MAX_REQUEST && pointers <= MAX_POINTERS).then_some(out)
}

/// The spawner's answer to one request.
struct Reply {
    pid: libc::pid_t,
    errno: c_int,
    /// The child was created in its cgroup leaf (`clone3`).
    born_in_cgroup: bool,
    pidfd: Option<OwnedFd>,
}

impl Reply {
    fn into_child(self) -> io::Result<PidfdChild> {
        if self.errno != 0 {
            if self.pid > 0 {
                // It failed before exec and exited; it is pk's child: reap it.
                vfork::reap(self.pid);
            }
            return Err(io::Error::from_raw_os_error(self.errno));
        }
        let Some(pidfd) = self.pidfd else {
            // pk could not take the pidfd (no descriptor left): it must not run unwatched.
            vfork::kill_and_reap(self.pid);
            return Err(io::Error::from_raw_os_error(libc::EMFILE));
        };
        vfork::note_born_in_cgroup(self.born_in_cgroup);
        PidfdChild::adopt(self.pid, pidfd)
    }
}

/// Space for `n` descriptors in a control message.
fn cmsg_space(n: usize) -> usize {
    let bytes = u32::try_from(n * size_of::<c_int>()).unwrap_or(0);
    // SAFETY: CMSG_SPACE only computes a size.
    unsafe { libc::CMSG_SPACE(bytes) as usize }
}

/// A control-message buffer, aligned for `cmsghdr`, with room for [`MAX_FDS`] descriptors.
#[repr(C, align(8))]
struct Control([u8; 64]);

/// Sends `data` with `fds` attached (`SCM_RIGHTS`).
fn send_with_fds(sock: RawFd, data: &[u8], fds: &[RawFd]) -> io::Result<()> {
    let mut iov = libc::iovec {
        iov_base: data.as_ptr().cast_mut().cast(),
        iov_len: data.len(),
    };
    let mut control = Control([0; 64]);
    // SAFETY: an all-zero msghdr is valid; the fields set point at live buffers.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        let fds = &fds[..fds.len().min(MAX_FDS)];
        msg.msg_control = control.0.as_mut_ptr().cast();
        msg.msg_controllen = cmsg_space(fds.len()) as _;
        // SAFETY: the control buffer has room for one header and `fds`.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            let bytes = u32::try_from(size_of_val(fds)).unwrap_or(0);
            (*cmsg).cmsg_len = libc::CMSG_LEN(bytes) as _;
            // Byte-wise: CMSG_DATA is aligned for the kernel, but typed as bytes.
            std::ptr::copy_nonoverlapping(
                fds.as_ptr().cast::<u8>(),
                libc::CMSG_DATA(cmsg),
                size_of_val(fds),
            );
        }
    }
    loop {
        // SAFETY: `msg` points at live buffers.
        let sent = unsafe { libc::sendmsg(sock, &raw const msg, libc::MSG_NOSIGNAL) };
        if sent >= 0 {
            return Ok(());
        }
        let error = io::Error::last_os_error();
        if error.raw_os_error() != Some(libc::EINTR) {
            return Err(error);
        }
    }
}

/// Receives one message into `data` and up to [`MAX_FDS`] descriptors (close-on-exec) into
/// `fds`; returns the message length, the number of descriptors, and whether some were lost
/// (`MSG_CTRUNC`: no descriptor left here).
fn recv_with_fds(
    sock: RawFd,
    data: &mut [u8],
    fds: &mut [RawFd; MAX_FDS],
) -> io::Result<(usize, usize, bool)> {
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    let mut control = Control([0; 64]);
    // SAFETY: an all-zero msghdr is valid; the fields set point at live buffers.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.0.as_mut_ptr().cast();
    msg.msg_controllen = size_of::<Control>() as _;
    let len = loop {
        // SAFETY: `msg` points at live buffers.
        let got = unsafe { libc::recvmsg(sock, &raw mut msg, libc::MSG_CMSG_CLOEXEC) };
        if got >= 0 {
            break got.unsigned_abs();
        }
        let error = io::Error::last_os_error();
        if error.raw_os_error() != Some(libc::EINTR) {
            return Err(error);
        }
    };
    let mut count = 0;
    // SAFETY: walks the control messages the kernel wrote into `control`.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg);
                let header = libc::CMSG_LEN(0) as usize;
                let n = ((*cmsg).cmsg_len as usize).saturating_sub(header) / size_of::<c_int>();
                for i in 0..n {
                    let fd = data
                        .add(i * size_of::<c_int>())
                        .cast::<c_int>()
                        .read_unaligned();
                    if count < MAX_FDS {
                        fds[count] = fd;
                        count += 1;
                    } else {
                        libc::close(fd);
                    }
                }
            }
            cmsg = libc::CMSG_NXTHDR(&raw const msg, cmsg);
        }
    }
    let truncated = msg.msg_flags & libc::MSG_CTRUNC != 0;
    Ok((len, count, truncated))
}

/// pk's side of one request: send it, wait for the reply.
fn exchange(sock: RawFd, message: &[u8], fds: &[RawFd]) -> io::Result<Reply> {
    send_with_fds(sock, message, fds)?;
    let mut data = [0u8; REPLY];
    let mut got = [-1; MAX_FDS];
    let (len, count, _) = recv_with_fds(sock, &mut data, &mut got)?;
    // SAFETY: the kernel installed these descriptors for this process; nothing else owns them.
    let mut received: Vec<OwnedFd> = got[..count]
        .iter()
        .map(|&fd| unsafe { OwnedFd::from_raw_fd(fd) })
        .collect();
    if len != data.len() {
        return Err(io::Error::from_raw_os_error(libc::EPIPE));
    }
    let pid = libc::pid_t::from_ne_bytes(data[..4].try_into().expect("4 bytes"));
    let errno = c_int::from_ne_bytes(data[4..8].try_into().expect("4 bytes"));
    let stillborn = libc::pid_t::from_ne_bytes(data[8..12].try_into().expect("4 bytes"));
    if stillborn > 0 {
        // Killed at birth in its leaf before the spawner joined the next one by a write: pk's
        // child, never reported as a service.
        vfork::reap(stillborn);
    }
    Ok(Reply {
        pid,
        errno,
        born_in_cgroup: data[12] != 0,
        pidfd: (!received.is_empty()).then(|| received.swap_remove(0)),
    })
}

/// The spawner's loop, in the forked child. Never returns.
///
/// # Safety
/// Called once, in the child of `fork`, with `sock` and `dev_null` open; allocates nothing.
unsafe fn serve(sock: RawFd, dev_null: RawFd, buffers: &mut Buffers) -> ! {
    // SAFETY: raw syscalls on descriptors and memory this process owns.
    unsafe {
        // Die with pk; if pk is already gone, stop now.
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        if libc::getppid() != buffers.parent {
            libc::_exit(0);
        }
        // Its own process group: the terminal's Ctrl-C (sent to pk's group) must not end it.
        // Not its own session: a service joins a group, which must be in pk's session.
        libc::setpgid(0, 0);
        // Default handlers: the services inherit them (pk's handlers are not theirs).
        for sig in vfork::every_signal() {
            let mut dfl: libc::sigaction = std::mem::zeroed();
            dfl.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(sig, &raw const dfl, std::ptr::null_mut());
        }
        // A minimal descriptor table: /dev/null on 0-2, the socket on 3, nothing else. Both
        // are moved above 3 first, so that neither is overwritten on the way.
        let sock = libc::fcntl(sock, libc::F_DUPFD_CLOEXEC, 10);
        let dev_null = libc::fcntl(dev_null, libc::F_DUPFD_CLOEXEC, 10);
        if sock < 0 || dev_null < 0 {
            libc::_exit(1);
        }
        for target in 0..3 {
            libc::dup2(dev_null, target);
        }
        libc::dup2(sock, SOCKET_FD);
        libc::fcntl(SOCKET_FD, libc::F_SETFD, libc::FD_CLOEXEC);
        libc::syscall(libc::SYS_close_range, SOCKET_FD + 1, c_int::MAX, 0);
        // The services get the open-file limit pk was started with.
        if let Some(limit) = super::fd_limit::service_nofile() {
            libc::setrlimit(libc::RLIMIT_NOFILE, &raw const limit);
        }
        loop {
            let mut fds = [-1; MAX_FDS];
            let (len, count) = match recv_with_fds(SOCKET_FD, &mut buffers.request, &mut fds) {
                Ok((0, _, _)) => libc::_exit(0),
                Ok((len, count, _)) => (len, count),
                Err(_) => libc::_exit(1),
            };
            let served = serve_one(
                &buffers.request[..len],
                &fds[..count],
                &mut buffers.pointers,
                &buffers.stack,
                buffers.parent,
            );
            for &fd in &fds[..count] {
                libc::close(fd);
            }
            let mut reply = [0u8; REPLY];
            reply[..4].copy_from_slice(&served.pid.to_ne_bytes());
            reply[4..8].copy_from_slice(&served.errno.to_ne_bytes());
            reply[8..12].copy_from_slice(&served.stillborn.to_ne_bytes());
            reply[12] = u8::from(served.born_in_cgroup);
            let pidfd = served.pidfd;
            let sent = match pidfd {
                Some(fd) => send_with_fds(SOCKET_FD, &reply, &[fd]),
                None => send_with_fds(SOCKET_FD, &reply, &[]),
            };
            if let Some(fd) = pidfd {
                libc::close(fd);
            }
            if sent.is_err() {
                libc::_exit(1);
            }
        }
    }
}

/// Reads a NUL-terminated string at `*at`; advances past it.
fn take_cstr(request: &[u8], at: &mut usize) -> Option<*const c_char> {
    let rest = request.get(*at..)?;
    let len = rest.iter().position(|&b| b == 0)?;
    let ptr = rest.as_ptr().cast::<c_char>();
    *at += len + 1;
    Some(ptr)
}

fn take_u32(request: &[u8], at: &mut usize) -> Option<u32> {
    let bytes = request.get(*at..*at + 4)?;
    *at += 4;
    Some(u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

/// What a spawner did with one request.
struct Served {
    /// The child's pid, or 0.
    pid: libc::pid_t,
    /// 0 once the child exec'd.
    errno: c_int,
    /// The child's pidfd once it exec'd.
    pidfd: Option<RawFd>,
    /// The child was created in its cgroup leaf.
    born_in_cgroup: bool,
    /// A child killed at birth in its leaf (then the spawn joined by a write), or 0: pk's
    /// child, for pk to reap.
    stillborn: libc::pid_t,
}

/// Starts one request in a spawner.
fn serve_one(
    request: &[u8],
    fds: &[RawFd],
    pointers: &mut Vec<*const c_char>,
    stack: &ChildStack,
    parent: libc::pid_t,
) -> Served {
    let mut served = Served {
        pid: 0,
        errno: 0,
        pidfd: None,
        born_in_cgroup: false,
        stillborn: 0,
    };
    let Some(parsed) = parse(request, fds, pointers) else {
        served.errno = libc::EINVAL;
        return served;
    };
    let count = parsed.argc;
    let mut child = ChildArgs {
        program: parsed.program,
        argv: pointers.as_ptr(),
        sh_argv: pointers[count + 1..].as_ptr(),
        envp: pointers[2 * count + 3..].as_ptr(),
        cwd: parsed.cwd,
        stdio: [fds[0], fds[1], fds[2]],
        pgid: parsed.pgid,
        session: parsed.session,
        cgroup: parsed.cgroup,
        entry: vfork::Entry::of(parsed.fresh_leaf),
        parent,
        // SAFETY: an all-zero sigset_t is valid; `clone_child` fills it.
        mask: unsafe { std::mem::zeroed() },
        reset_handlers: false,
        nofile: None,
        errno: AtomicI32::new(0),
    };
    // SAFETY: `child` points into `request` and `pointers`, which outlive the clone.
    let cloned =
        unsafe { vfork::clone_child(&mut child, stack, libc::CLONE_PARENT, &mut served.stillborn) };
    match cloned {
        Ok(cloned) => {
            served.pid = cloned.pid;
            served.errno = cloned.errno;
            // Failed before exec: pk reaps it (it is pk's child), the pidfd is not needed.
            if cloned.errno == 0 {
                served.pidfd = Some(cloned.pidfd.into_raw_fd());
                served.born_in_cgroup = cloned.born_in_cgroup;
            }
        }
        Err(error) => served.errno = error.raw_os_error().unwrap_or(libc::EIO),
    }
    served
}

/// A request, parsed in place.
struct Parsed {
    program: *const c_char,
    cwd: *const c_char,
    pgid: libc::pid_t,
    session: bool,
    cgroup: RawFd,
    fresh_leaf: bool,
    argc: usize,
}

/// Parses a request in place; fills `pointers` with argv, NULL, `/bin/sh` argv, NULL, envp,
/// NULL (within its capacity: never allocates).
fn parse(request: &[u8], fds: &[RawFd], pointers: &mut Vec<*const c_char>) -> Option<Parsed> {
    let mut at = 0;
    let pgid = libc::pid_t::from_ne_bytes(take_u32(request, &mut at)?.to_ne_bytes());
    let flags = take_u32(request, &mut at)?;
    let has_cgroup = flags & HAS_CGROUP != 0;
    let argc = usize::try_from(take_u32(request, &mut at)?).ok()?;
    let envc = usize::try_from(take_u32(request, &mut at)?).ok()?;
    if argc == 0 || fds.len() != 3 + usize::from(has_cgroup) {
        return None;
    }
    if 2 * argc + envc + 4 > pointers.capacity() {
        return None;
    }
    let program = take_cstr(request, &mut at)?;
    let cwd = take_cstr(request, &mut at)?;
    pointers.clear();
    for _ in 0..argc {
        pointers.push(take_cstr(request, &mut at)?);
    }
    pointers.push(std::ptr::null());
    pointers.push(vfork::SH.as_ptr());
    pointers.push(program);
    for i in 1..argc {
        pointers.push(pointers[i]);
    }
    pointers.push(std::ptr::null());
    for _ in 0..envc {
        pointers.push(take_cstr(request, &mut at)?);
    }
    pointers.push(std::ptr::null());
    let cgroup = if has_cgroup { fds[3] } else { -1 };
    Some(Parsed {
        program,
        cwd,
        pgid,
        session: flags & SESSION != 0,
        cgroup,
        fresh_leaf: flags & FRESH_LEAF != 0,
        argc,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_too_big_for_one_message_is_refused_before_sending() {
        let env: std::collections::BTreeMap<String, String> =
            [("BIG".to_owned(), "x".repeat(MAX_REQUEST))].into();
        let null = super::super::spawn::dev_null().unwrap();
        let argv = vec!["true".to_owned()];
        let req = Request {
            program: std::path::Path::new("/bin/true"),
            argv: &argv,
            env: &env,
            cwd: std::path::Path::new("/"),
            stdio: [null.as_fd(), null.as_fd(), null.as_fd()],
            group: Group::New,
            cgroup: None,
        };
        assert!(encode(&req).is_none());
    }

    #[test]
    fn a_request_parses_back_into_argv_sh_argv_and_envp() {
        let env: std::collections::BTreeMap<String, String> =
            [("A".to_owned(), "1".to_owned())].into();
        let null = super::super::spawn::dev_null().unwrap();
        let words = vec!["prog".to_owned(), "x".to_owned()];
        let req = Request {
            program: std::path::Path::new("/bin/prog"),
            argv: &words,
            env: &env,
            cwd: std::path::Path::new("/tmp"),
            stdio: [null.as_fd(), null.as_fd(), null.as_fd()],
            group: Group::Join(42),
            cgroup: None,
        };
        let message = encode(&req).unwrap();
        let mut pointers = Vec::with_capacity(MAX_POINTERS);
        let parsed = parse(&message, &[0, 1, 2], &mut pointers).unwrap();
        // SAFETY: the pointers point into `message`, NUL-terminated.
        let text = |p: *const c_char| unsafe { std::ffi::CStr::from_ptr(p) }.to_str().unwrap();
        assert_eq!(
            (text(parsed.program), text(parsed.cwd), parsed.pgid),
            ("/bin/prog", "/tmp", 42)
        );
        assert_eq!((parsed.cgroup, parsed.argc, parsed.session), (-1, 2, false));
        let words: Vec<Option<&str>> = pointers
            .iter()
            .map(|&p| (!p.is_null()).then(|| text(p)))
            .collect();
        assert_eq!(
            words,
            [
                Some("prog"),
                Some("x"),
                None,
                Some("/bin/sh"),
                Some("/bin/prog"),
                Some("x"),
                None,
                Some("A=1"),
                None
            ]
        );
        assert!(
            parse(&message, &[0, 1], &mut pointers).is_none(),
            "3 stdio fds"
        );
    }
}
