//! Starts the stages of one tree: OS pipes between stages, one stdout and one shared stderr pipe
//! back to pk, a new process group led by stage 0, and (cgroup backend) a move into the leaf
//! before the child runs anything. On a pseudo-terminal (`tty`): one stage, the terminal's slave
//! as its stdio and controlling terminal in a new session, pk reading the master.
//!
//! Two ways to start a stage: the vfork-style clone (`vfork.rs`, through the spawner process when
//! it runs) on Linux, and std's fork + exec (`fork_stage`), the only one in the portable build
//! (`--features portable`, or any OS but Linux; see build.rs) and the one `PK_SPAWN=fork` picks.
//! `PR_SET_PDEATHSIG` and the cgroup move before exec exist on Linux only.
//!
//! Invariants: the only place in pk that spawns; every fd pk creates is close-on-exec, so a child
//! inherits exactly stdin/stdout/stderr; pk's copies of the write ends are closed before
//! returning (EOF on the pipes means every holder closed them); a half-started pipeline is
//! killed before the error is returned.

#[cfg(native_linux)]
use rustix::process::Signal;
use std::io;
#[cfg(native_linux)]
use std::os::fd::{AsFd, AsRawFd};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt as _;
#[cfg(native_linux)]
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
#[cfg(native_linux)]
use std::sync::OnceLock;

use rustix::pipe::{PipeFlags, pipe_with};
use tokio::net::unix::pipe::Receiver;

use super::SpawnSpec;

/// Where the stages go besides their new process group.
pub(crate) enum Placement<'a> {
    /// The leaf's directory, opened by pk: each child is created in it (`clone3`) or joins it
    /// before exec.
    #[cfg_attr(
        not(native_linux),
        expect(dead_code, reason = "the portable build has no cgroups")
    )]
    Cgroup {
        dir: &'a OwnedFd,
        /// The leaf was made for this tree: no `cgroup.kill` has ever reached it.
        fresh: bool,
    },
    ProcessGroup,
}

/// One started stage.
pub(crate) struct Started {
    pub pid: u32,
    pub child: StageChild,
}

/// A stage as pk's direct child: reaped with `waitpid` on SIGCHLD (std's fork path, the only
/// one in the portable build) or through its pidfd (the vfork path).
#[derive(Debug)]
pub(crate) enum StageChild {
    Forked(Child),
    #[cfg(native_linux)]
    Pidfd(super::vfork::PidfdChild),
}

impl StageChild {
    pub(super) async fn wait(&mut self) -> io::Result<std::process::ExitStatus> {
        match self {
            StageChild::Forked(c) => {
                use tokio::signal::unix::{SignalKind, signal};
                // Listening starts before the first look: an exit in between is not missed.
                let mut sigchld = signal(SignalKind::child())?;
                loop {
                    // `waitpid(pid, WNOHANG)`.
                    if let Some(status) = c.try_wait()? {
                        return Ok(status);
                    }
                    if sigchld.recv().await.is_none() {
                        return Err(io::Error::other("the runtime's signal driver stopped"));
                    }
                }
            }
            #[cfg(native_linux)]
            StageChild::Pidfd(c) => c.wait().await,
        }
    }

    pub(super) fn try_wait(&mut self) -> io::Result<Option<std::process::ExitStatus>> {
        match self {
            StageChild::Forked(c) => c.try_wait(),
            #[cfg(native_linux)]
            StageChild::Pidfd(c) => c.try_wait(),
        }
    }
}

pub(crate) struct StartedTree {
    /// Never empty; stage 0 leads the process group.
    pub stages: Vec<Started>,
    pub stdout: Receiver,
    pub stderr: Receiver,
    pub pty: Option<super::Pty>,
}

fn cloexec_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(pipe_with(PipeFlags::CLOEXEC)?)
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message.to_owned())
}

/// Starts every stage, or none: on failure, `abort(pgid)` kills what already runs. With `tty`,
/// the one stage runs on a new terminal of that size ([`start_on_terminal`]).
pub(crate) fn start(
    spec: &SpawnSpec<'_>,
    placement: &Placement<'_>,
    tty: Option<super::WinSize>,
    abort: impl Fn(u32),
) -> io::Result<StartedTree> {
    if spec.stages.is_empty() {
        return Err(invalid("a tree needs at least one stage"));
    }
    if spec.stages.iter().any(Vec::is_empty) {
        return Err(invalid("a stage has an empty argv"));
    }
    if let Some(size) = tty {
        return start_on_terminal(spec, placement, size);
    }
    let (stdout_read, stdout_write) = cloexec_pipe()?;
    let (stderr_read, stderr_write) = cloexec_pipe()?;
    let stdout = Receiver::from_owned_fd(stdout_read)?;
    let stderr = Receiver::from_owned_fd(stderr_read)?;

    let mut stages: Vec<Started> = Vec::with_capacity(spec.stages.len());
    if let Err(error) = start_all(spec, placement, stdout_write, &stderr_write, &mut stages) {
        if let Some(leader) = stages.first() {
            abort(leader.pid);
        }
        return Err(error);
    }
    // `stderr_write` (and every Command with its Stdio) is dropped here: only children hold
    // write ends now.
    drop(stderr_write);
    Ok(StartedTree {
        stages,
        stdout,
        stderr,
        pty: None,
    })
}

/// One stage on a new pseudo-terminal: the slave is its stdin, stdout and stderr and becomes
/// its controlling terminal in a session of its own (`Group::Session`); pk reads the master.
/// pk's copies of the slave are closed before returning.
fn start_on_terminal(
    spec: &SpawnSpec<'_>,
    placement: &Placement<'_>,
    size: super::WinSize,
) -> io::Result<StartedTree> {
    let [argv] = spec.stages else {
        return Err(invalid("only a single command can run on a terminal"));
    };
    let (pty, reader, slave) = super::pty::open(size)?;
    let stdio = [slave.try_clone()?, slave.try_clone()?, slave];
    let stage = start_stage(argv, spec, stdio, Group::Session, placement)?;
    // Nothing writes to it: the tree's stderr goes to the terminal.
    let (stderr_read, stderr_write) = cloexec_pipe()?;
    drop(stderr_write);
    Ok(StartedTree {
        stages: vec![stage],
        stdout: Receiver::from_owned_fd_unchecked(reader)?,
        stderr: Receiver::from_owned_fd(stderr_read)?,
        pty: Some(pty),
    })
}

/// Which process group a stage goes into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Group {
    /// A new group led by the stage (stage 0).
    New,
    /// The group of the tree's stage 0.
    Join(u32),
    /// A new session (and group) led by the stage, with its stdin, a terminal, as the
    /// controlling terminal.
    Session,
}

/// Starts the stages in order, pushing each onto `stages` as soon as it runs.
fn start_all(
    spec: &SpawnSpec<'_>,
    placement: &Placement<'_>,
    stdout_write: OwnedFd,
    stderr_write: &OwnedFd,
    stages: &mut Vec<Started>,
) -> io::Result<()> {
    let mut stdout_write = Some(stdout_write);
    let mut previous_read: Option<OwnedFd> = None;
    let last = spec.stages.len() - 1;
    for (index, argv) in spec.stages.iter().enumerate() {
        let input = match previous_read.take() {
            Some(fd) => fd,
            None => dev_null()?,
        };
        let stdout_end = if index == last {
            stdout_write
                .take()
                .expect("only the last stage takes pk's stdout pipe")
        } else {
            let (read, write) = cloexec_pipe()?;
            previous_read = Some(read);
            write
        };
        let stdio = [input, stdout_end, stderr_write.try_clone()?];
        let group = stages
            .first()
            .map_or(Group::New, |stage| Group::Join(stage.pid));
        stages.push(start_stage(argv, spec, stdio, group, placement)?);
    }
    Ok(())
}

/// Starts one stage: with `clone(CLONE_VM|CLONE_VFORK)` (no copy of pk; `vfork.rs`) unless
/// `PK_SPAWN=fork` asks for the portable fork + `pre_exec` path. `stdio` is closed in pk once
/// the child has it.
#[cfg(native_linux)]
fn start_stage(
    argv: &[String],
    spec: &SpawnSpec<'_>,
    stdio: [OwnedFd; 3],
    group: Group,
    placement: &Placement<'_>,
) -> io::Result<Started> {
    if use_fork() {
        return fork_stage(argv, spec, stdio, group, placement);
    }
    let program = resolve(&argv[0], spec)?;
    let request = super::vfork::Request {
        program: &program,
        argv,
        env: spec.env,
        cwd: spec.cwd,
        stdio: [stdio[0].as_fd(), stdio[1].as_fd(), stdio[2].as_fd()],
        group,
        cgroup: match placement {
            Placement::Cgroup { dir, fresh } => Some(super::vfork::Leaf {
                dir: dir.as_fd(),
                fresh: *fresh,
            }),
            Placement::ProcessGroup => None,
        },
    };
    // The spawner process when there is one (its small descriptor table is what each child
    // copies); in pk itself when the request does not fit in a message or the spawner is gone.
    let spawned = match super::spawner::shared().map(|spawner| spawner.spawn(&request)) {
        Some(Ok(child)) => Ok(child),
        Some(Err(Err(error))) => Err(super::vfork::located(&error, &request)),
        // A passing pool thread must not be the parent thread of an in-process spawn.
        Some(Err(Ok(_))) | None if super::pool::refuse_in_process() => {
            Err(io::Error::other(InProcessRefused))
        }
        Some(Err(Ok(_))) | None => super::vfork::spawn(&request),
    };
    let child = spawned?;
    Ok(Started {
        pid: child.pid(),
        child: StageChild::Pidfd(child),
    })
}

/// Starts one stage with std's fork + exec (the portable build). `stdio` is closed in pk once
/// the child has it.
#[cfg(not(native_linux))]
fn start_stage(
    argv: &[String],
    spec: &SpawnSpec<'_>,
    stdio: [OwnedFd; 3],
    group: Group,
    placement: &Placement<'_>,
) -> io::Result<Started> {
    fork_stage(argv, spec, stdio, group, placement)
}

#[expect(
    clippy::disallowed_methods,
    reason = "process/ is the one place that spawns"
)]
fn fork_stage(
    argv: &[String],
    spec: &SpawnSpec<'_>,
    [stdin, stdout, stderr]: [OwnedFd; 3],
    group: Group,
    placement: &Placement<'_>,
) -> io::Result<Started> {
    let mut command = Command::new(&argv[0]);
    command.args(&argv[1..]);
    in_child_before_exec(&mut command, placement);
    command
        .env_clear()
        .envs(spec.env)
        .current_dir(spec.cwd)
        .stdin(Stdio::from(stdin))
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr));
    // A new group keeps the terminal's Ctrl-C away from the tree: pk decides what it gets.
    match group {
        Group::New => {
            command.process_group(0);
        }
        Group::Join(leader) => {
            command.process_group(i32::try_from(leader).expect("pids fit in i32"));
        }
        Group::Session => {
            // SAFETY: setsid(2) and ioctl(2) are async-signal-safe; std has already made the
            // terminal stdin (dup2) when pre_exec closures run.
            unsafe {
                command.pre_exec(|| {
                    rustix::process::setsid()?;
                    rustix::process::ioctl_tiocsctty(BorrowedFd::borrow_raw(0))?;
                    Ok(())
                });
            }
        }
    }
    let child = command.spawn().map_err(|error| {
        io::Error::new(
            error.kind(),
            format!(
                "cannot start `{}` in {}: {error}",
                argv[0],
                spec.cwd.display()
            ),
        )
    })?;
    Ok(Started {
        pid: child.id(),
        child: StageChild::Forked(child),
    })
}

/// The fork path's steps in the child before exec (the vfork path does the same in
/// `vfork::child_main`).
fn in_child_before_exec(command: &mut Command, placement: &Placement<'_>) {
    // Only the cgroup backend places a tree: the portable build has none.
    #[cfg(not(native_linux))]
    let _ = placement;
    #[cfg(native_linux)]
    let parent = rustix::process::getpid();
    let nofile = super::fd_limit::service_nofile();
    // SAFETY: prctl(2), getppid(2) and setrlimit(2) are async-signal-safe; nothing allocates
    // or locks.
    unsafe {
        command.pre_exec(move || {
            // If pk dies (even by SIGKILL) the direct child goes too. Linux sends this when the
            // spawning *thread* exits: pk spawns from tokio's worker threads, which live as long
            // as pk's runtime. Deeper descendants are found by the next run (leftovers.rs).
            // Elsewhere (portable) pk's guard is what stops the trees when pk dies.
            #[cfg(native_linux)]
            {
                rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
                if rustix::process::getppid() != Some(parent) {
                    // pk died between fork and prctl: do not run orphaned.
                    return Err(io::Error::other("pk exited while starting this process"));
                }
            }
            // pk raised its own descriptor limit; the service gets the one pk was given.
            if let Some(limit) = &nofile
                && libc::setrlimit(libc::RLIMIT_NOFILE, limit) != 0
            {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    #[cfg(native_linux)]
    if let Placement::Cgroup { dir, .. } = placement {
        let dir = dir.as_raw_fd();
        // SAFETY: the closure only joins the leaf through a descriptor that pk keeps open until
        // `spawn` returns (`join_cgroup` is async-signal-safe).
        unsafe {
            command.pre_exec(move || {
                if super::vfork::join_cgroup(dir) {
                    Ok(())
                } else {
                    Err(io::Error::last_os_error())
                }
            });
        }
    }
}

/// How many spawns can be in flight through the spawner processes.
#[cfg(native_linux)]
pub(super) const SPAWNERS: usize = super::spawner::SPAWNERS;
#[cfg(not(native_linux))]
pub(super) const SPAWNERS: usize = 1;

/// Whether spawns go to the spawner processes (not `PK_SPAWN=fork`, and a spawner runs).
#[cfg(native_linux)]
pub(super) fn through_spawner() -> bool {
    !use_fork() && super::spawner::shared().is_some()
}

/// The portable build has no spawner process.
#[cfg(not(native_linux))]
pub(super) fn through_spawner() -> bool {
    false
}

/// Why a stage was not started: it had to be spawned in pk itself, on a thread that may exit
/// while the stage runs (a passing pool thread); the caller runs the spawn again on a lasting
/// one.
#[derive(Debug)]
struct InProcessRefused;

impl std::fmt::Display for InProcessRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("this spawn must run on a lasting thread")
    }
}

impl std::error::Error for InProcessRefused {}

/// Whether `error` is a spawn refused on a passing thread (run it on a lasting one).
pub(super) fn is_refused(error: &io::Error) -> bool {
    matches!(error.get_ref(), Some(inner) if inner.is::<InProcessRefused>())
}

/// `PK_SPAWN=fork`: spawn with fork and `pre_exec` (what std does) instead of the vfork-style
/// clone; read once per process.
#[cfg(native_linux)]
fn use_fork() -> bool {
    static FORK: OnceLock<bool> = OnceLock::new();
    *FORK.get_or_init(|| std::env::var_os("PK_SPAWN").is_some_and(|v| v == "fork"))
}

/// The file to exec for `program`: as given when it has a `/` (relative to the service's
/// directory), else the first executable on the service's `PATH` (execve does no search).
#[cfg(native_linux)]
fn resolve(program: &str, spec: &SpawnSpec<'_>) -> io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let not_found = |searched: &str| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "cannot start `{program}` in {}: not found{searched}",
                spec.cwd.display()
            ),
        )
    };
    if program.contains('/') {
        let path = spec.cwd.join(program);
        return if path.exists() {
            Ok(path)
        } else {
            Err(not_found(""))
        };
    }
    let path_var = spec
        .env
        .get("PATH")
        .map_or("/usr/local/bin:/usr/bin:/bin", String::as_str);
    path_var
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| spec.cwd.join(d).join(program))
        .find(|p| executable(p))
        .ok_or_else(|| not_found(" on PATH"))
}

/// `/dev/null` for stage 0's stdin.
pub(super) fn dev_null() -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        "/dev/null",
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?)
}
