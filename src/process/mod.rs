//! Containment only: runs each service as a contained process tree — a cgroup v2 leaf below a
//! per-run cgroup, or a process group where no writable cgroup2 exists — and signals, kills and
//! drains whole trees. No policy: when to stop, which signal, how long to wait is the caller's.
//!
//! Invariants:
//! - a tree has ended only when every stage is reaped AND its cgroup leaf is empty (or, in the
//!   fallback, its process group is gone, or in the portable build holds only zombies, see
//!   `pgroup::is_gone`) — never because its stdout closed;
//! - every tree gets its own process group (led by stage 0), so the terminal's Ctrl-C reaches
//!   pk only and never the services directly; a tree on a pseudo-terminal (`tty`) is one stage
//!   in a session of its own, whose leader leads the group;
//! - one live tree per cgroup leaf: signal/kill/drain act on the whole leaf;
//! - the mechanism in use is always reportable through [`Containment::describe`];
//! - with process groups, every stage gets the run marker (`PK_RUN_ID`, see `identity`) in its
//!   environment, and each group is told to the guard and the run record as it starts.

#[cfg(native_linux)]
mod cgroup;
mod detach;
mod escalate;
mod fd_limit;
pub mod guard;
pub mod identity;
pub(crate) mod leftovers;
mod pgroup;
mod pool;
mod pty;
pub mod runlock;
mod spawn;
#[cfg(native_linux)]
mod spawner;
#[cfg(native_linux)]
mod subreaper;
#[cfg(native_linux)]
mod vfork;

use std::collections::BTreeMap;
use std::io;
#[cfg(native_linux)]
use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

#[cfg(native_linux)]
use rustix::fs::{Mode, OFlags};
use rustix::process::{Pid, Signal};
use tokio::net::unix::pipe::Receiver;

#[cfg(native_linux)]
use self::cgroup::RunCgroup;
pub(crate) use self::detach::spawn_detached;
use self::escalate::Drainable;
pub use self::fd_limit::{raise_fd_limit, reserve_descriptors};
use self::pgroup::GroupRegistry;
pub(crate) use self::pty::Pty;
pub use self::pty::WinSize;
use self::spawn::Placement;
#[cfg(native_linux)]
pub use self::spawner::{spawner_pids, start as start_spawner, stop as stop_spawner};
#[cfg(native_linux)]
pub use self::vfork::children_born_in_their_leaf;

/// Environment variable that forces the process-group fallback when set to `pgroup`.
pub(crate) const CONTAINMENT_ENV: &str = "PK_CONTAINMENT";

/// Which mechanism contains the trees of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainmentKind {
    Cgroup,
    ProcessGroup,
}

/// What a tree does for its service; each role has its own leaf (cgroup backend), so killing a
/// probe's tree never touches the service's, or another service's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Service,
    /// An `exec` probe attempt.
    Probe,
    /// The `shutdown.command`.
    Shutdown,
    /// A command whose output becomes a variable (process-compose `env_cmds`); its leaf is
    /// named after the variable.
    Env,
}

/// The leaf for `service`'s trees in `role`: the one naming scheme (`db`, `db@probe`,
/// `db@shutdown`; `@` is never part of a service name). See `cgroup::leaf_dir_name` for the
/// directory it maps to.
pub fn leaf_name(service: &str, role: Role) -> String {
    match role {
        Role::Service => service.to_owned(),
        Role::Probe => format!("{service}@probe"),
        Role::Shutdown => format!("{service}@shutdown"),
        Role::Env => format!("{service}@env"),
    }
}

/// The most of each stream [`Containment::run_captured`] keeps; the rest is read and dropped.
pub(crate) const CAPTURE_MAX: usize = 64 * 1024;

/// How a command run by [`Containment::run_captured`] ended, and what it printed.
#[derive(Debug)]
pub(crate) struct Captured {
    /// Its exit status; `None` when the deadline passed first (it was killed).
    pub status: Option<ExitStatus>,
    /// The first `CAPTURE_MAX` bytes of its stdout.
    pub stdout: Vec<u8>,
    /// The first `CAPTURE_MAX` bytes of its stderr.
    pub stderr: Vec<u8>,
}

/// Reads `pipe` to its end, keeping the first `CAPTURE_MAX` bytes.
async fn read_capped(mut pipe: Receiver) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut kept = Vec::new();
    let mut buf = vec![0; 8192];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                let room = CAPTURE_MAX - kept.len();
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

/// Per pk run: where service trees live. Share it as `Arc<Containment>`.
///
/// Dropping it SIGKILLs whatever still runs in it ([`Containment::kill_all`]), waits up to
/// 200 ms (blocking) for the run cgroup to empty, and removes it ([`Containment::cleanup`]):
/// nothing a run spawned outlives it unnoticed.
#[derive(Debug)]
pub struct Containment {
    backend: Backend,
    /// Where to keep this run's `RunRecord` up to date (crash safety), with the config path.
    record: std::sync::Mutex<Option<(PathBuf, PathBuf)>>,
    /// Threads that run `spawn_async` through the spawner processes, made on first use.
    passing: std::sync::OnceLock<pool::Pool>,
    /// Threads that run `spawn_async` in pk itself, made on first use.
    lasting: std::sync::OnceLock<pool::Pool>,
}

/// A `SpawnSpec` that owns its data, to hand to another thread.
#[derive(Debug, Clone)]
pub(crate) struct OwnedSpawnSpec {
    pub stages: Vec<Vec<String>>,
    pub cwd: PathBuf,
    pub env: BTreeMap<String, String>,
    /// Run the (single) stage on a new pseudo-terminal of this size (`tty: true`).
    pub tty: Option<WinSize>,
}

#[derive(Debug)]
enum Backend {
    #[cfg(native_linux)]
    Cgroup(RunCgroup),
    ProcessGroups {
        reason: String,
        groups: Arc<GroupRegistry>,
        /// `PK_RUN_ID` of this run's processes.
        marker: String,
    },
}

/// What to run: one argv per stage (one stage = a plain command, several = a pipeline).
#[derive(Debug, Clone, Copy)]
pub struct SpawnSpec<'a> {
    /// Each a non-empty argv; stage i's stdout feeds stage i+1's stdin.
    pub stages: &'a [Vec<String>],
    pub cwd: &'a Path,
    /// The complete environment of every stage (nothing is inherited from pk).
    pub env: &'a BTreeMap<String, String>,
}

/// A started tree and the read ends of its output pipes.
#[derive(Debug)]
pub struct Spawned {
    pub tree: ProcessTree,
    /// The last stage's stdout.
    pub stdout: Receiver,
    /// The stderr of every stage, one shared pipe. A tree on a terminal writes its stderr to
    /// the terminal (read through `stdout`); this pipe then ends at once.
    pub stderr: Receiver,
    /// The tree's terminal, when it runs on one (`tty`): for its window size.
    pub pty: Option<Pty>,
}

/// The result of [`ProcessTree::stop`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopOutcome {
    /// Whether the grace ran out and the tree had to be killed with SIGKILL.
    pub killed: bool,
    /// Each stage's exit status, in stage order.
    pub statuses: Vec<ExitStatus>,
}

impl Containment {
    /// Tries a per-run cgroup `pk-<pid>-<n>` below pk's own cgroup on the cgroup2 mount; falls
    /// back to process groups, recording why. `PK_CONTAINMENT=pgroup` forces the fallback.
    pub fn detect() -> Containment {
        let forced = std::env::var(CONTAINMENT_ENV).ok();
        Self::detect_with(forced.as_deref())
    }

    fn detect_with(forced: Option<&str>) -> Containment {
        match forced.map(str::trim) {
            Some("pgroup") => {
                return Self::process_groups(&format!("{CONTAINMENT_ENV}=pgroup"));
            }
            None | Some("" | "auto" | "cgroup") => {}
            Some(other) => {
                tracing::warn!(
                    value = other,
                    "unknown {CONTAINMENT_ENV} value (expected pgroup, cgroup or auto); detecting"
                );
            }
        }
        #[cfg(not(native_linux))]
        return Self::process_groups("a portable build has no cgroups");
        #[cfg(native_linux)]
        match RunCgroup::create() {
            Ok(run) => Containment {
                backend: Backend::Cgroup(run),
                record: std::sync::Mutex::default(),
                passing: std::sync::OnceLock::new(),
                lasting: std::sync::OnceLock::new(),
            },
            Err(reason) => {
                tracing::info!(%reason, "using process groups instead of cgroup v2");
                Self::process_groups(&reason)
            }
        }
    }

    /// Process groups only; `reason` says why (shown by [`Containment::describe`]).
    pub fn process_groups(reason: &str) -> Containment {
        #[cfg(native_linux)]
        subreaper::enable();
        Containment {
            backend: Backend::ProcessGroups {
                reason: reason.to_owned(),
                groups: Arc::default(),
                marker: identity::new_marker(),
            },
            record: std::sync::Mutex::default(),
            passing: std::sync::OnceLock::new(),
            lasting: std::sync::OnceLock::new(),
        }
    }

    /// Keeps a `RunRecord` of this run at `path` (written now, before anything is spawned, and
    /// rewritten whenever a new process group is spawned) so that a later pk can clean up if
    /// this one is killed with SIGKILL, and tells pk's guard (if any) what to clean.
    pub(crate) fn keep_record(&self, path: &Path, config: &Path) -> io::Result<()> {
        match &self.backend {
            #[cfg(native_linux)]
            Backend::Cgroup(run) => guard::note(guard::Note::Cgroup(&run.dir)),
            Backend::ProcessGroups { marker, .. } => guard::note(guard::Note::Marker(marker)),
        }
        guard::note(guard::Note::Record(path));
        *self
            .record
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((path.to_path_buf(), config.to_path_buf()));
        leftovers::RunRecord::of(self, config).write(path)
    }

    /// Removes the run record (on a clean exit).
    pub(crate) fn drop_record(&self) {
        if let Some((path, _)) = self
            .record
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            // Already gone is fine: there is nothing left to record.
            let _ = std::fs::remove_file(path);
        }
    }

    /// The process groups spawned so far and not known gone, with their leaders' start times
    /// (process-group backend).
    pub(crate) fn process_groups_spawned(&self) -> Vec<(i32, u64)> {
        match &self.backend {
            #[cfg(native_linux)]
            Backend::Cgroup(_) => Vec::new(),
            Backend::ProcessGroups { groups, .. } => groups.snapshot(),
        }
    }

    fn update_record(&self) {
        let guard = self
            .record
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((path, config)) = guard.as_ref()
            && let Err(error) = leftovers::RunRecord::of(self, config).write(path)
        {
            tracing::warn!(path = %path.display(), %error, "cannot update the run record");
        }
    }

    /// The value of `PK_RUN_ID` in every process of this run (process-group backend).
    pub fn marker(&self) -> Option<&str> {
        match &self.backend {
            #[cfg(native_linux)]
            Backend::Cgroup(_) => None,
            Backend::ProcessGroups { marker, .. } => Some(marker),
        }
    }

    pub fn kind(&self) -> ContainmentKind {
        match self.backend {
            #[cfg(native_linux)]
            Backend::Cgroup(_) => ContainmentKind::Cgroup,
            Backend::ProcessGroups { .. } => ContainmentKind::ProcessGroup,
        }
    }

    /// One human line: `cgroup v2 (/sys/fs/cgroup/unified/pk-1234-0)` or
    /// `process groups (no cgroup2 mount)`.
    pub fn describe(&self) -> String {
        match &self.backend {
            #[cfg(native_linux)]
            Backend::Cgroup(run) => format!("cgroup v2 ({})", run.dir.display()),
            Backend::ProcessGroups { reason, .. } => format!("process groups ({reason})"),
        }
    }

    /// The run cgroup's directory, when the cgroup backend is in use.
    /// The cgroup directory of leaf `leaf` (see `leaf_name`), whether or not it exists yet;
    /// None with process groups.
    #[cfg(native_linux)]
    pub(crate) fn leaf_dir(&self, leaf: &str) -> Option<PathBuf> {
        let run = self.run_cgroup()?;
        cgroup::leaf_dir_name(leaf).ok().map(|name| run.join(name))
    }

    pub fn run_cgroup(&self) -> Option<&Path> {
        match &self.backend {
            #[cfg(native_linux)]
            Backend::Cgroup(run) => Some(&run.dir),
            Backend::ProcessGroups { .. } => None,
        }
    }

    /// `spawn` on a pool thread, so the caller's runtime worker is not blocked while the
    /// children fork and exec. Through the spawner processes it runs on a passing thread (none
    /// stay at rest); a spawn that must run in pk itself (`PK_SPAWN=fork`, no spawner, or one
    /// it refused) on a lasting one (see `pool.rs`). Must be called within a tokio runtime
    /// (the pools enter the one they are first used from).
    pub(crate) async fn spawn_async(
        self: &Arc<Self>,
        leaf: String,
        spec: OwnedSpawnSpec,
    ) -> io::Result<Spawned> {
        let job = Arc::new((leaf, spec));
        let run = |this: Arc<Self>, job: Arc<(String, OwnedSpawnSpec)>| {
            move || {
                let (leaf, spec) = &*job;
                this.spawn_on(
                    leaf,
                    &SpawnSpec {
                        stages: &spec.stages,
                        cwd: &spec.cwd,
                        env: &spec.env,
                    },
                    spec.tty,
                )
            }
        };
        let through_spawner = spawn::through_spawner();
        if through_spawner {
            let pool = self
                .passing
                .get_or_init(|| pool::Pool::passing(spawn::SPAWNERS));
            match pool.run(run(Arc::clone(self), Arc::clone(&job))).await {
                Err(error) if spawn::is_refused(&error) => {}
                done => return done,
            }
        }
        let threads = if through_spawner {
            1
        } else {
            pool::LASTING_THREADS
        };
        self.lasting
            .get_or_init(|| pool::Pool::lasting(threads))
            .run(run(Arc::clone(self), job))
            .await
    }

    /// Runs `spec` (stdin `/dev/null`) in leaf `leaf` until its stages exit or `deadline`
    /// passes, keeping what it prints ([`Captured`]). Whatever it started is killed then and
    /// waited for: nothing it started outlives the call. On the spawner threads, like
    /// `spawn_async`.
    pub(crate) async fn run_captured(
        self: &Arc<Self>,
        leaf: String,
        spec: OwnedSpawnSpec,
        deadline: Duration,
    ) -> io::Result<Captured> {
        let Spawned {
            mut tree,
            stdout,
            stderr,
            ..
        } = self.spawn_async(leaf, spec).await?;
        let run = async {
            let waited = tokio::time::timeout(deadline, tree.wait_stages()).await;
            tree.kill();
            tree.wait_drained().await;
            waited.ok().and_then(|statuses| statuses.last().copied())
        };
        // Read while it runs: a command printing more than a pipe holds must not block.
        let (status, stdout, stderr) = tokio::join!(run, read_capped(stdout), read_capped(stderr));
        Ok(Captured {
            status,
            stdout,
            stderr,
        })
    }

    /// Spawns a tree in leaf `leaf` (a service name, or `leaf_name(service, role)`); the leaf is
    /// created on first use and reused afterwards. Must be called within a tokio runtime.
    ///
    /// All stages share one process group (stage 0's) and, with cgroups, the leaf, which they
    /// enter before running anything. Stage 0's stdin is `/dev/null`.
    pub fn spawn(&self, leaf: &str, spec: &SpawnSpec<'_>) -> io::Result<Spawned> {
        self.spawn_on(leaf, spec, None)
    }

    /// [`Containment::spawn`], the single stage on a new pseudo-terminal of size `tty` when
    /// given: in its own session, with the terminal as its controlling terminal, stdin, stdout
    /// and stderr (read through `Spawned::stdout`). Contained like any other tree: the session
    /// leader leads the tree's process group.
    pub fn spawn_on(
        &self,
        leaf: &str,
        spec: &SpawnSpec<'_>,
        tty: Option<WinSize>,
    ) -> io::Result<Spawned> {
        // Leaves are cgroups: the portable build has none.
        #[cfg(not(native_linux))]
        let _ = leaf;
        match &self.backend {
            #[cfg(native_linux)]
            Backend::Cgroup(run) => {
                let (dir, fresh) = run.leaf(leaf)?;
                let dir_fd = open_leaf(&dir)?;
                let placement = Placement::Cgroup {
                    dir: &dir_fd,
                    fresh,
                };
                let started = starting(|| {
                    spawn::start(spec, &placement, tty, |_| {
                        cgroup::kill_leaf(&dir);
                    })
                })?;
                let own_leaf = cgroup::is_service_leaf(leaf);
                Ok(ProcessTree::from_started(
                    started,
                    Scope::Cgroup {
                        leaf: dir,
                        own_leaf,
                    },
                ))
            }
            Backend::ProcessGroups { groups, marker, .. } => {
                let mut env = spec.env.clone();
                env.insert(identity::MARKER_ENV.to_owned(), marker.clone());
                let spec = &SpawnSpec { env: &env, ..*spec };
                let started = starting(|| {
                    spawn::start(spec, &Placement::ProcessGroup, tty, |pgid| {
                        if let Err(error) = pgroup::signal_group(pid_of(pgid), Signal::KILL) {
                            tracing::error!(pgid, %error, "cannot kill a half-started pipeline");
                        }
                    })
                })?;
                let pgid = pid_of(started.stages[0].pid);
                // The leader is unreaped, so its stat is there even if it already exited.
                let start = identity::start_time(pgid.as_raw_nonzero().get()).unwrap_or(0);
                groups.insert(pgid, start);
                self.update_record();
                let scope = Scope::ProcessGroup {
                    pgid,
                    groups: Arc::clone(groups),
                };
                Ok(ProcessTree::from_started(started, scope))
            }
        }
    }

    /// Emergency: SIGKILLs every tree of this run now (`cgroup.kill` on the run cgroup, or
    /// `killpg` of every group not yet known gone). Synchronous and quick; does not wait.
    pub fn kill_all(&self) {
        match &self.backend {
            #[cfg(native_linux)]
            Backend::Cgroup(run) => run.kill_all(),
            Backend::ProcessGroups { groups, marker, .. } => {
                groups.kill_all();
                for (pid, start) in escapees(marker, false) {
                    if identity::is_same_live(pid, start) {
                        // ESRCH: it exited meanwhile.
                        let _ = rustix::process::kill_process(pid_of_raw(pid), Signal::KILL);
                    }
                }
            }
        }
    }

    /// Teardown, once every service has stopped (process-group backend): processes of the
    /// run that left their service's group (adopted orphans, and anything else carrying the
    /// run marker) get SIGTERM, up to `grace` to exit, then SIGKILL. Returns how many there
    /// were. Under cgroups nothing escapes a stopped service's leaf: returns 0.
    pub(crate) async fn stop_escapees(&self, grace: Duration) -> usize {
        let marker = match &self.backend {
            Backend::ProcessGroups { marker, .. } => marker,
            #[cfg(native_linux)]
            Backend::Cgroup(_) => return 0,
        };
        let mut stopped = std::collections::BTreeSet::new();
        // A killed escapee's own children are adopted next: a few rounds.
        for _ in 0..4 {
            let targets = escapees(marker, true);
            if targets.is_empty() {
                break;
            }
            for &(pid, start) in &targets {
                let signal = if stopped.insert((pid, start)) {
                    Signal::TERM
                } else {
                    Signal::KILL
                };
                if identity::is_same_live(pid, start) {
                    let _ = rustix::process::kill_process(pid_of_raw(pid), signal);
                }
            }
            let alive = || {
                #[cfg(native_linux)]
                subreaper::sweep();
                targets
                    .iter()
                    .any(|&(pid, start)| identity::is_same_live(pid, start))
            };
            let deadline = tokio::time::Instant::now() + grace;
            while alive() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            for &(pid, start) in &targets {
                if identity::is_same_live(pid, start) {
                    let _ = rustix::process::kill_process(pid_of_raw(pid), Signal::KILL);
                }
            }
            let deadline = tokio::time::Instant::now() + KILL_SETTLE;
            while alive() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        stopped.len()
    }

    /// Removes the leaves and the run cgroup, best effort: one still holding processes stays
    /// (logged). Idempotent; also done on drop. Nothing to do for process groups.
    pub fn cleanup(&self) {
        #[cfg(native_linux)]
        if let Backend::Cgroup(run) = &self.backend {
            run.remove();
        }
    }
}

/// How long [`Containment::stop_escapees`] waits for escapees killed with SIGKILL to go.
const KILL_SETTLE: Duration = Duration::from_secs(2);

/// The processes of the run marked `marker` that may be outside any service's process group:
/// adopted orphans that carry the marker (with `unmarked`, also those that carry none: in pk,
/// which runs one stack, every orphan it adopted comes from that stack), and every process of
/// pk's uid that carries it. Excludes pk and its guard.
fn escapees(marker: &str, unmarked: bool) -> Vec<(i32, u64)> {
    #[cfg(native_linux)]
    let mut found: BTreeMap<i32, u64> = subreaper::sweep()
        .into_iter()
        .filter(|&(pid, _)| match identity::marker_of(pid) {
            Some(m) => m == marker,
            None => unmarked,
        })
        .collect();
    // The portable build is no subreaper: it adopts no orphans, marked or not.
    #[cfg(not(native_linux))]
    let mut found: BTreeMap<i32, u64> = {
        let _ = unmarked;
        BTreeMap::new()
    };
    let guard = guard::pid().and_then(|p| i32::try_from(p).ok());
    for (pid, st) in identity::own_processes() {
        if Some(pid) != guard && identity::carries_marker(pid, marker) {
            found.insert(pid, st.start);
        }
    }
    found.into_iter().collect()
}

/// Runs `start` (which starts one tree's stages) so that the subreaper's sweeps never take the
/// stages for adopted orphans.
#[cfg(native_linux)]
fn starting(
    start: impl FnOnce() -> io::Result<spawn::StartedTree>,
) -> io::Result<spawn::StartedTree> {
    subreaper::spawning(start, started_pids)
}

/// Runs `start` (which starts one tree's stages): the portable build adopts no orphans.
#[cfg(not(native_linux))]
fn starting(
    start: impl FnOnce() -> io::Result<spawn::StartedTree>,
) -> io::Result<spawn::StartedTree> {
    start()
}

#[cfg(native_linux)]
fn started_pids(started: &io::Result<spawn::StartedTree>) -> Vec<u32> {
    started
        .as_ref()
        .map(|tree| tree.stages.iter().map(|stage| stage.pid).collect())
        .unwrap_or_default()
}

fn pid_of_raw(raw: i32) -> Pid {
    Pid::from_raw(raw).expect("a live process has a positive pid")
}

/// How long dropping a [`Containment`] waits for killed processes to leave the run cgroup.
#[cfg(native_linux)]
const DROP_DRAIN_LIMIT: Duration = Duration::from_millis(200);

impl Drop for Containment {
    fn drop(&mut self) {
        self.kill_all();
        #[cfg(native_linux)]
        if let Backend::Cgroup(run) = &self.backend {
            // killed with SIGKILL processes need a moment to exit; rmdir fails while they are there.
            run.wait_empty(DROP_DRAIN_LIMIT);
        }
        self.cleanup();
    }
}

#[cfg(native_linux)]
fn open_leaf(leaf: &Path) -> io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    rustix::fs::open(leaf, flags, Mode::empty()).map_err(|errno| {
        io::Error::new(
            io::Error::from(errno).kind(),
            format!("cannot open {}: {errno}", leaf.display()),
        )
    })
}

fn pid_of(raw: u32) -> Pid {
    i32::try_from(raw)
        .ok()
        .and_then(Pid::from_raw)
        .expect("a child's pid is a positive i32")
}

/// What contains one tree.
#[derive(Debug)]
enum Scope {
    /// `own_leaf`: the leaf is a service's (not a probe's or a shutdown command's, which run
    /// again and again): it is removed as soon as the tree has drained.
    #[cfg(native_linux)]
    Cgroup { leaf: PathBuf, own_leaf: bool },
    ProcessGroup {
        pgid: Pid,
        groups: Arc<GroupRegistry>,
    },
}

#[derive(Debug)]
struct Stage {
    pid: u32,
    child: spawn::StageChild,
    status: Option<ExitStatus>,
}

/// A running tree: its stages (pk's direct children) and whatever they started, contained.
///
/// Dropping it does not stop it: the processes stay in the run's containment, which kills them
/// on [`Containment::kill_all`] or its drop. Stages not yet reaped are reaped once they exit
/// (by tokio, or by a task on their pidfd).
#[derive(Debug)]
pub struct ProcessTree {
    stages: Vec<Stage>,
    pgid: Pid,
    scope: Scope,
    /// Latched once observed: the group number may be reused afterwards, so never signal again.
    drained: bool,
}

/// Stands in for a status lost because the child was reaped elsewhere (should not happen).
fn lost_status(pid: u32, error: &io::Error) -> ExitStatus {
    tracing::error!(pid, %error, "cannot wait for a stage; reporting exit code 255");
    ExitStatus::from_raw(255 << 8)
}

impl ProcessTree {
    fn from_started(started: spawn::StartedTree, scope: Scope) -> Spawned {
        let pgid = pid_of(started.stages[0].pid);
        let stages = started
            .stages
            .into_iter()
            .map(|stage| Stage {
                pid: stage.pid,
                child: stage.child,
                status: None,
            })
            .collect();
        let tree = ProcessTree {
            stages,
            pgid,
            scope,
            drained: false,
        };
        Spawned {
            tree,
            stdout: started.stdout,
            stderr: started.stderr,
            pty: started.pty,
        }
    }

    /// One pid per stage; `pids()[0]` is "the" pid and the process group id.
    pub fn pids(&self) -> Vec<u32> {
        self.stages.iter().map(|stage| stage.pid).collect()
    }

    /// The tree's process group (stage 0's pid), in both backends.
    pub fn pgid(&self) -> u32 {
        self.pgid.as_raw_nonzero().get().unsigned_abs()
    }

    /// The tree's cgroup leaf directory, when the cgroup backend is in use.
    pub fn cgroup(&self) -> Option<&Path> {
        match &self.scope {
            #[cfg(native_linux)]
            Scope::Cgroup { leaf, .. } => Some(leaf),
            Scope::ProcessGroup { .. } => None,
        }
    }

    fn statuses(&self) -> Vec<ExitStatus> {
        self.stages
            .iter()
            .map(|stage| stage.status.expect("every stage was reaped"))
            .collect()
    }

    /// Waits until every stage has exited and been reaped; each stage's status in stage order.
    /// Returns even if a grandchild still runs (and holds the pipes). Cancel-safe.
    pub async fn wait_stages(&mut self) -> Vec<ExitStatus> {
        for stage in &mut self.stages {
            if stage.status.is_none() {
                let status = match stage.child.wait().await {
                    Ok(status) => status,
                    Err(error) => lost_status(stage.pid, &error),
                };
                stage.status = Some(status);
            }
        }
        self.statuses()
    }

    /// Reaps the stages that have exited; true when all are reaped.
    fn reap_exited(&mut self) -> bool {
        let mut all = true;
        for stage in &mut self.stages {
            if stage.status.is_none() {
                match stage.child.try_wait() {
                    Ok(Some(status)) => stage.status = Some(status),
                    Ok(None) => all = false,
                    Err(error) => stage.status = Some(lost_status(stage.pid, &error)),
                }
            }
        }
        all
    }

    /// True when the whole tree is gone: every stage reaped AND the leaf reads `populated 0`
    /// (or the process group has no member left that can run). Reaps exited stages as a side
    /// effect.
    pub fn is_drained(&mut self) -> bool {
        if self.drained {
            return true;
        }
        if !self.reap_exited() {
            return false;
        }
        self.drained = match &self.scope {
            #[cfg(native_linux)]
            // A service's leaf goes as soon as it is empty: its removal is the emptiness check
            // (the leaves of a stopping stack are removed as their trees end, not one after
            // another at the end; a restart makes it again).
            Scope::Cgroup { leaf, own_leaf } => {
                if *own_leaf {
                    cgroup::remove_if_empty(leaf)
                } else {
                    !cgroup::is_populated(leaf)
                }
            }
            Scope::ProcessGroup { pgid, groups } => {
                let gone = pgroup::is_gone(*pgid);
                if gone {
                    groups.remove(*pgid);
                }
                gone
            }
        };
        self.drained
    }

    /// Waits until [`ProcessTree::is_drained`], reaping the stages meanwhile. Cancel-safe.
    ///
    /// The stages' exits arrive on their pidfds (no polling); only what outlives the stages
    /// (a process left in the leaf or the group) is polled for, from then on.
    pub async fn wait_drained(&mut self) {
        if self.drained {
            return;
        }
        self.wait_stages().await;
        escalate::wait_drained(self).await;
    }

    /// Sends `signal` (a raw number) to every process of the tree: each pid in the leaf (frozen
    /// meanwhile so none forks unseen), or the process group. A drained tree is left alone.
    pub fn signal(&self, signal: i32) -> io::Result<()> {
        let signal = Signal::from_named_raw(signal).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{signal} is not a signal number"),
            )
        })?;
        if self.drained {
            return Ok(());
        }
        match &self.scope {
            #[cfg(native_linux)]
            Scope::Cgroup { leaf, .. } => {
                let live: Vec<Pid> = self
                    .stages
                    .iter()
                    .filter(|stage| stage.status.is_none())
                    .map(|stage| pid_of(stage.pid))
                    .collect();
                cgroup::signal_leaf(leaf, self.pgid, &live, signal)
            }
            Scope::ProcessGroup { pgid, .. } => pgroup::signal_group(*pgid, signal),
        }
    }

    /// SIGKILLs the whole tree (`cgroup.kill`, or `killpg` with SIGKILL). Does not wait.
    pub fn kill(&self) {
        if self.drained {
            return;
        }
        match &self.scope {
            #[cfg(native_linux)]
            Scope::Cgroup { leaf, .. } => cgroup::kill_leaf(leaf),
            Scope::ProcessGroup { pgid, .. } => {
                if let Err(error) = pgroup::signal_group(*pgid, Signal::KILL) {
                    tracing::error!(pgid = pgid.as_raw_nonzero().get(), %error, "killpg failed");
                }
            }
        }
    }

    /// Sends `signal`, waits up to `grace` for the tree to drain (reaping the stages, since a
    /// zombie leader keeps a group alive), then SIGKILLs it and waits until it has drained.
    /// A tree that already drained is not signalled. Cancel-safe (a re-call signals again).
    pub async fn stop(&mut self, signal: i32, grace: Duration) -> StopOutcome {
        let killed = escalate::escalate(self, signal, grace).await;
        let statuses = self.wait_stages().await;
        StopOutcome { killed, statuses }
    }
}

impl Drainable for ProcessTree {
    fn send_signal(&self, signal: i32) -> io::Result<()> {
        self.signal(signal)
    }

    fn hard_kill(&self) {
        self.kill();
    }

    fn poll_drained(&mut self) -> bool {
        self.is_drained()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_cross_threads_as_the_supervisor_needs() {
        fn shared<T: Send + Sync>() {}
        fn sent<T: Send>() {}
        shared::<Containment>();
        sent::<ProcessTree>();
        sent::<Spawned>();
    }

    /// A spawn that cannot go through a spawner process (here: too big for one message) runs
    /// in pk itself, and then on a lasting thread, not on the passing one it was first handed
    /// to: the service's parent-death signal follows the thread that cloned it, so it keeps
    /// running once the passing threads have exited.
    #[cfg(native_linux)]
    #[tokio::test]
    async fn a_spawn_refused_by_the_spawners_runs_on_a_lasting_thread() {
        use tokio::io::AsyncBufReadExt as _;
        if !spawn::through_spawner() {
            return;
        }
        let containment = Arc::new(Containment::process_groups("test"));
        let mut env =
            BTreeMap::from([("PATH".to_owned(), "/usr/local/bin:/usr/bin:/bin".to_owned())]);
        // More than one request may carry (192 KiB), each below execve's limit per string.
        for i in 0..5 {
            env.insert(format!("BIG{i}"), "x".repeat(50 * 1024));
        }
        let script = "import signal, sys, time\n\
            signal.signal(signal.SIGUSR1, lambda *_: print('alive', flush=True))\n\
            print('ready', flush=True)\n\
            while True: time.sleep(1)";
        let spec = OwnedSpawnSpec {
            stages: vec![vec!["python3".into(), "-c".into(), script.into()]],
            cwd: PathBuf::from("/"),
            env,
            tty: None,
        };
        let spawned = containment
            .spawn_async("big".into(), spec)
            .await
            .expect("spawned");
        assert!(
            containment.lasting.get().is_some(),
            "the refused spawn went to a lasting thread"
        );
        let mut lines = tokio::io::BufReader::new(spawned.stdout).lines();
        let deadline = Duration::from_secs(20);
        let line = tokio::time::timeout(deadline, lines.next_line()).await;
        assert_eq!(line.unwrap().unwrap().as_deref(), Some("ready"));
        // Every passing thread gone (each exits when idle).
        let until = std::time::Instant::now() + deadline;
        while pool::threads_named(pool::PASSING_NAME) > 0 {
            assert!(std::time::Instant::now() < until, "passing threads stay");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        spawned.tree.signal(libc::SIGUSR1).expect("SIGUSR1");
        let line = tokio::time::timeout(deadline, lines.next_line()).await;
        assert_eq!(
            line.unwrap().unwrap().as_deref(),
            Some("alive"),
            "the service outlived the passing threads"
        );
        spawned.tree.kill();
        containment.kill_all();
    }

    #[test]
    fn the_env_override_forces_process_groups() {
        let containment = Containment::detect_with(Some("pgroup"));
        assert_eq!(containment.kind(), ContainmentKind::ProcessGroup);
        assert_eq!(
            containment.describe(),
            "process groups (PK_CONTAINMENT=pgroup)"
        );
        assert_eq!(containment.run_cgroup(), None);
    }

    #[test]
    fn process_groups_describe_their_reason() {
        let containment = Containment::process_groups("no cgroup2 mount");
        assert_eq!(containment.kind(), ContainmentKind::ProcessGroup);
        assert_eq!(containment.describe(), "process groups (no cgroup2 mount)");
    }

    #[test]
    fn detection_names_the_run_cgroup_or_the_reason() {
        let containment = Containment::detect_with(None);
        let line = containment.describe();
        match containment.run_cgroup() {
            Some(dir) => {
                assert!(dir.is_dir());
                assert_eq!(line, format!("cgroup v2 ({})", dir.display()));
            }
            None => assert!(line.starts_with("process groups ("), "{line}"),
        }
    }
}
