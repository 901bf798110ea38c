//! The end-to-end harness: a `Project` (a tempdir with a pk.yaml and extra files) that runs
//! the real `pk` binary, either to completion (`run`) or in the background (`spawn`, a
//! `Running` whose stdout lines are collected by a thread and waited on with deadlines).
//!
//! Invariants: no process outlives a test, also when it panics (`Running`'s drop escalates
//! TERM → INT, INT → KILL; `PidGuard` SIGKILLs escapees); every wait polls a condition with a
//! deadline, never a fixed sleep.

#![allow(dead_code, reason = "each test crate uses a different subset")]

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

/// The default deadline of a wait; generous because tests run in parallel on 2 cores.
pub(crate) const DEADLINE: Duration = Duration::from_secs(15);

/// Generates one `#[test]` per containment backend for each `fn name(backend: Backend)`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            // Cgroups are Linux only: the portable build has none.
            #[cfg(not(feature = "portable"))]
            #[test]
            fn cgroup() {
                if let Some(backend) = $crate::support::Backend::cgroup() {
                    super::$name(backend);
                }
            }

            #[test]
            fn pgroup() {
                super::$name($crate::support::Backend::Pgroup);
            }
        }
    )*};
}

/// Which containment pk is asked to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    /// pk's own detection; on this machine (a writable cgroup2) that is cgroup v2.
    Cgroup,
    /// `PK_CONTAINMENT=pgroup`.
    Pgroup,
}

impl Backend {
    /// The cgroup backend, or `None` after a loud SKIPPED line when the machine has none.
    pub(crate) fn cgroup() -> Option<Backend> {
        if writable_cgroup2().is_some() {
            // pk falls back to process groups quietly; a cgroup variant must not.
            let detected = pk::process::Containment::detect();
            assert_eq!(
                detected.kind(),
                pk::process::ContainmentKind::Cgroup,
                "a writable cgroup2 is mounted but pk would use {}; a cgroup test may not skip here",
                detected.describe()
            );
            return Some(Backend::Cgroup);
        }
        // Straight to fd 2: libtest captures `eprintln!`, and a skip must not go unnoticed.
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"SKIPPED: no writable cgroup2 mount\n",
        );
        None
    }

    /// The line pk prints first for this backend.
    pub(crate) fn containment_prefix(self) -> &'static str {
        match self {
            Backend::Cgroup => "containment: cgroup v2 (",
            Backend::Pgroup => "containment: process groups (",
        }
    }
}

/// The mount point of a read-write cgroup2 filesystem, from /proc/self/mountinfo.
pub(crate) fn writable_cgroup2() -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    text.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let fields: Vec<&str> = left.split(' ').collect();
        let rw = fields.get(5)?.split(',').any(|o| o == "rw");
        let mount = fields.get(4)?;
        (right.starts_with("cgroup2 ") && rw).then(|| PathBuf::from(mount))
    })
}

/// The python3 interpreter itself (not a pyenv shim, whose bash start-up costs ~100 ms).
pub(crate) fn python() -> &'static str {
    static PYTHON: OnceLock<String> = OnceLock::new();
    PYTHON.get_or_init(|| {
        #[expect(clippy::disallowed_methods, reason = "asks python3 where it lives")]
        let out = Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .expect("python3 is needed by these tests");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    })
}

/// A free TCP port on 127.0.0.1 (bound, then released for the service to take).
pub(crate) fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A directory with a pk.yaml (and other files) to run pk in.
pub(crate) struct Project {
    dir: tempfile::TempDir,
    backend: Backend,
}

impl Project {
    /// A project whose pk.yaml is `yaml`; `${PYTHON}` in it names the python3 interpreter.
    pub(crate) fn new(yaml: &str) -> Project {
        let dir = tempfile::Builder::new()
            .prefix("pk-e2e-")
            .tempdir()
            .unwrap();
        std::fs::write(dir.path().join("pk.yaml"), yaml).unwrap();
        Project {
            dir,
            backend: Backend::Cgroup,
        }
    }

    /// A project whose only file is `name` (e.g. a process-compose.yaml), holding `contents`.
    pub(crate) fn named(name: &str, contents: &str) -> Project {
        let dir = tempfile::Builder::new()
            .prefix("pk-e2e-")
            .tempdir()
            .unwrap();
        std::fs::write(dir.path().join(name), contents).unwrap();
        Project {
            dir,
            backend: Backend::Cgroup,
        }
    }

    pub(crate) fn backend(mut self, backend: Backend) -> Project {
        self.backend = backend;
        self
    }

    /// Adds a file (relative to the project directory).
    pub(crate) fn file(self, path: &str, contents: &str) -> Project {
        let path = self.dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
        self
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The config path as pk sees it (canonical), e.g. for `control::socket_path`.
    pub(crate) fn config_path(&self) -> PathBuf {
        std::fs::canonicalize(self.dir.path().join("pk.yaml")).unwrap()
    }

    /// A pid written by a service into `name` (waits until the file holds one).
    pub(crate) fn read_pid(&self, name: &str) -> u32 {
        let path = self.dir.path().join(name);
        wait_until(DEADLINE, &format!("a pid in {}", path.display()), || {
            std::fs::read_to_string(&path)
                .ok()
                .and_then(|t| t.trim().parse().ok())
        })
    }

    /// `pk ARGS…` in the project directory.
    pub(crate) fn pk(&self, args: &[&str]) -> Invocation {
        let mut env = vec![("PYTHON".to_owned(), python().to_owned())];
        if self.backend == Backend::Pgroup {
            env.push(("PK_CONTAINMENT".to_owned(), "pgroup".to_owned()));
        }
        Invocation {
            dir: self.dir.path().to_path_buf(),
            args: args.iter().map(|&a| a.to_owned()).collect(),
            env,
            own_group: false,
            program: None,
            nofile: None,
        }
    }

    /// `pk up --plain --color never`.
    pub(crate) fn up(&self) -> Invocation {
        self.pk(&["up", "--plain", "--color", "never"])
    }
}

/// One pk command line, ready to run.
pub(crate) struct Invocation {
    dir: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    own_group: bool,
    /// Runs this instead of pk (e.g. a wrapper that then runs pk).
    program: Option<String>,
    /// The soft `RLIMIT_NOFILE` pk starts with (the hard limit stays).
    nofile: Option<u64>,
}

impl Invocation {
    /// `pk ARGS…` run in `dir` (cgroup containment when available).
    pub(crate) fn in_dir(dir: &Path, args: &[&str]) -> Invocation {
        Invocation {
            dir: dir.to_path_buf(),
            args: args.iter().map(|&a| a.to_owned()).collect(),
            env: vec![("PYTHON".to_owned(), python().to_owned())],
            own_group: false,
            program: None,
            nofile: None,
        }
    }

    pub(crate) fn args(mut self, args: &[&str]) -> Invocation {
        self.args.extend(args.iter().map(|&a| a.to_owned()));
        self
    }

    pub(crate) fn env(mut self, key: &str, value: &str) -> Invocation {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Starts pk with a soft open-file limit of `soft` (the hard limit unchanged).
    pub(crate) fn nofile(mut self, soft: u64) -> Invocation {
        self.nofile = Some(soft);
        self
    }

    /// Runs `program` instead of pk (with the same directory and environment).
    pub(crate) fn program(mut self, program: &str) -> Invocation {
        self.program = Some(program.to_owned());
        self
    }

    /// Runs pk as the leader of a new process group (so a test can signal the whole group).
    pub(crate) fn own_group(mut self) -> Invocation {
        self.own_group = true;
        self
    }

    /// The command this invocation runs, stdout and stderr piped, for a caller that reads
    /// them itself (or on purpose does not).
    pub(crate) fn command(&self) -> Command {
        let mut cmd = Command::new(self.program.clone().map_or_else(pk_bin, PathBuf::from));
        cmd.args(&self.args)
            .current_dir(&self.dir)
            .env_remove("PK_FILE")
            .env_remove("PK_CONTAINMENT")
            .env_remove("NO_COLOR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        if let Some(soft) = self.nofile {
            use std::os::unix::process::CommandExt;
            // SAFETY: getrlimit/setrlimit are async-signal-safe; nothing allocates.
            unsafe {
                cmd.pre_exec(move || {
                    let mut limit = libc::rlimit {
                        rlim_cur: 0,
                        rlim_max: 0,
                    };
                    if libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    limit.rlim_cur = soft.min(limit.rlim_max);
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &raw const limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        if self.own_group {
            std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        }
        cmd
    }

    /// Starts pk in the background; its stdout lines are collected as they come.
    pub(crate) fn spawn(self) -> Running {
        let mut cmd = self.command();
        #[expect(clippy::disallowed_methods, reason = "runs the binary under test")]
        let mut child = cmd.spawn().expect("spawn pk");
        let lines = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let stdout = child.stdout.take().unwrap();
        let sink = Arc::clone(&lines);
        let stdout_thread = std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if buf.last() == Some(&b'\n') {
                            buf.pop();
                        }
                        let line = String::from_utf8_lossy(&buf).into_owned();
                        let (lock, cvar) = &*sink;
                        lock_lines(lock).push(line);
                        cvar.notify_all();
                    }
                }
            }
        });
        let mut stderr = child.stderr.take().unwrap();
        let stderr_thread = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Running {
            child,
            lines,
            stdout_thread: Some(stdout_thread),
            stderr_thread: Some(stderr_thread),
            stderr: String::new(),
            code: None,
        }
    }

    /// Runs pk to completion (within [`DEADLINE`]).
    pub(crate) fn run(self) -> Output {
        self.run_within(DEADLINE)
    }

    pub(crate) fn run_within(self, deadline: Duration) -> Output {
        let mut running = self.spawn();
        let code = running.wait_exit(deadline);
        Output {
            code,
            lines: running.lines(),
            stderr: running.stderr.clone(),
        }
    }
}

fn pk_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_pk"))
}

/// What a finished pk printed, and its exit code.
#[derive(Debug)]
pub(crate) struct Output {
    pub code: i32,
    pub lines: Vec<String>,
    pub stderr: String,
}

impl Output {
    pub(crate) fn stdout(&self) -> String {
        let mut s = self.lines.join("\n");
        if !self.lines.is_empty() {
            s.push('\n');
        }
        s
    }
}

/// A `pk` running in the background.
pub(crate) struct Running {
    child: Child,
    lines: Arc<(Mutex<Vec<String>>, Condvar)>,
    stdout_thread: Option<JoinHandle<()>>,
    stderr_thread: Option<JoinHandle<String>>,
    pub stderr: String,
    code: Option<i32>,
}

impl Running {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every stdout line so far.
    pub(crate) fn lines(&self) -> Vec<String> {
        lock_lines(&self.lines.0).clone()
    }

    /// Waits until some line satisfies `pred`; returns it.
    pub(crate) fn wait_for_line(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let lines = self.wait_for_count(what, 1, &pred);
        lines.into_iter().find(|l| pred(l)).unwrap()
    }

    /// Waits until `n` lines satisfy `pred`; returns every line so far.
    pub(crate) fn wait_for_count(
        &self,
        what: &str,
        n: usize,
        pred: impl Fn(&str) -> bool,
    ) -> Vec<String> {
        let deadline = Instant::now() + DEADLINE;
        let (lock, cvar) = &*self.lines;
        let mut lines = lock_lines(lock);
        loop {
            if lines.iter().filter(|l| pred(l)).count() >= n {
                return lines.clone();
            }
            let now = Instant::now();
            let finished = self
                .stdout_thread
                .as_ref()
                .is_none_or(JoinHandle::is_finished);
            if now >= deadline || finished {
                let printed = lines.join("\n");
                // Not while holding the lock: Drop reads the lines too.
                drop(lines);
                let why = if finished {
                    "pk's stdout ended"
                } else {
                    "timed out"
                };
                panic!("{why} waiting for {n}× {what}; pk printed:\n{printed}");
            }
            // Bounded, so that a stdout that ends without a new line is noticed too.
            let step = (deadline - now).min(Duration::from_millis(100));
            lines = cvar
                .wait_timeout(lines, step)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Waits for `service * text…` (a lifecycle line starting with `text`).
    pub(crate) fn wait_notice(&self, service: &str, text: &str) -> String {
        self.wait_for_line(&format!("{service} * {text}"), |l| {
            is_notice(l, service, text)
        })
    }

    pub(crate) fn signal(&self, sig: Signal) {
        let pid = Pid::from_raw(i32::try_from(self.pid()).unwrap()).unwrap();
        // pk may have exited already; the caller's next wait says what happened.
        let _ = rustix::process::kill_process(pid, sig);
    }

    pub(crate) fn interrupt(&self) {
        self.signal(Signal::INT);
    }

    /// Waits for pk to exit and its stdout to end; returns the exit code (128+n for a signal).
    pub(crate) fn wait_exit(&mut self, deadline: Duration) -> i32 {
        if let Some(code) = self.code {
            return code;
        }
        let end = Instant::now() + deadline;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < end,
                "pk did not exit within {deadline:?}; it printed:\n{}",
                self.lines().join("\n")
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        self.join_readers(end);
        let code = status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
        self.code = Some(code);
        code
    }

    /// The exit code if pk has exited (and its output ended), else None at once.
    pub(crate) fn try_exit(&mut self) -> Option<i32> {
        if self.code.is_none() && self.alive() {
            return None;
        }
        Some(self.wait_exit(DEADLINE))
    }

    /// Joins the output threads; an escaped process that holds pk's stdout open must not hang
    /// the test, so it gives up at `end`.
    fn join_readers(&mut self, end: Instant) {
        wait_until_true(end.saturating_duration_since(Instant::now()), || {
            self.stdout_thread
                .as_ref()
                .is_none_or(JoinHandle::is_finished)
                && self
                    .stderr_thread
                    .as_ref()
                    .is_none_or(JoinHandle::is_finished)
        });
        if self
            .stdout_thread
            .as_ref()
            .is_some_and(JoinHandle::is_finished)
        {
            let _ = self.stdout_thread.take().unwrap().join();
        }
        if self
            .stderr_thread
            .as_ref()
            .is_some_and(JoinHandle::is_finished)
        {
            self.stderr = self
                .stderr_thread
                .take()
                .unwrap()
                .join()
                .unwrap_or_default();
        }
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_none()
    }

    fn wait_dead(&mut self, within: Duration) -> bool {
        let end = Instant::now() + within;
        while Instant::now() < end {
            if !self.alive() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        !self.alive()
    }
}

impl Drop for Running {
    /// Leaves nothing behind: TERM (a graceful teardown), then INT twice (the 3rd signal
    /// kills every tree and exits), then SIGKILL as a last resort.
    fn drop(&mut self) {
        if !self.alive() {
            return;
        }
        if std::thread::panicking() {
            eprintln!("pk still running; it printed:\n{}", self.lines().join("\n"));
        }
        self.signal(Signal::TERM);
        if self.wait_dead(Duration::from_secs(10)) {
            return;
        }
        self.signal(Signal::INT);
        self.signal(Signal::INT);
        if self.wait_dead(Duration::from_secs(5)) {
            return;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lock_lines(lock: &Mutex<Vec<String>>) -> MutexGuard<'_, Vec<String>> {
    lock.lock().unwrap_or_else(PoisonError::into_inner)
}

/// SIGKILLs, on drop, the pids it holds and those written to its pid files: for processes that
/// escaped (or should not have escaped) containment.
#[derive(Default)]
pub(crate) struct PidGuard {
    pids: Vec<u32>,
    files: Vec<PathBuf>,
}

impl PidGuard {
    pub(crate) fn new() -> PidGuard {
        PidGuard::default()
    }

    pub(crate) fn add(&mut self, pid: u32) {
        self.pids.push(pid);
    }

    /// Also kills whatever pid `path` holds at drop time (the test may panic before reading it).
    pub(crate) fn file(&mut self, path: PathBuf) {
        self.files.push(path);
    }
}

impl Drop for PidGuard {
    fn drop(&mut self) {
        let from_files = self.files.iter().filter_map(|f| {
            std::fs::read_to_string(f)
                .ok()
                .and_then(|t| t.trim().parse::<u32>().ok())
        });
        let pids: Vec<u32> = self.pids.iter().copied().chain(from_files).collect();
        for pid in pids {
            if is_alive(pid) {
                let pid = Pid::from_raw(i32::try_from(pid).unwrap()).unwrap();
                let _ = rustix::process::kill_process(pid, Signal::KILL);
            }
        }
    }
}

/// The crash guard pk `pk` forked (a child named `pk-guard`), if it shows up within
/// [`DEADLINE`]: the guard names itself only after the fork, so pk may already run services
/// while its guard child is still called `pk`.
pub(crate) fn guard_of(pk: u32) -> Option<u32> {
    let end = Instant::now() + DEADLINE;
    loop {
        if let Some(guard) = named_guard_of(pk) {
            return Some(guard);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn named_guard_of(pk: u32) -> Option<u32> {
    let tasks = std::fs::read_dir(format!("/proc/{pk}/task")).ok()?;
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|children| {
            children
                .split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok())
                .collect::<Vec<_>>()
        })
        .find(|child| {
            std::fs::read_to_string(format!("/proc/{child}/comm"))
                .is_ok_and(|comm| comm.trim() == "pk-guard")
        })
}

/// Whether `pid` exists and is not a zombie.
pub(crate) fn is_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|status| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("State:"))
            .is_some_and(|state| !state.trim_start().starts_with('Z'))
    })
}

/// Waits until `pid` is gone (or a zombie); panics with `what` at the deadline.
pub(crate) fn wait_gone(pid: u32, what: &str) {
    wait_until(DEADLINE, &format!("{what} (pid {pid}) to die"), || {
        (!is_alive(pid)).then_some(())
    });
}

/// Polls `check` every 10 ms until it yields a value; panics naming `what` at the deadline.
pub(crate) fn wait_until<T>(
    deadline: Duration,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn wait_until_true(deadline: Duration, mut check: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A plain-mode line taken apart: `name | text` or `name * text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line<'a> {
    pub service: &'a str,
    pub notice: bool,
    pub text: &'a str,
}

/// Splits a plain line; service names never contain spaces, and are padded with spaces.
pub(crate) fn parse(line: &str) -> Option<Line<'_>> {
    let (service, rest) = line.split_once(' ')?;
    let rest = rest.trim_start_matches(' ');
    let (notice, text) = if let Some(t) = rest.strip_prefix("| ") {
        (false, t)
    } else if rest == "|" {
        (false, "")
    } else {
        (true, rest.strip_prefix("* ")?)
    };
    Some(Line {
        service,
        notice,
        text,
    })
}

pub(crate) fn is_notice(line: &str, service: &str, text: &str) -> bool {
    parse(line).is_some_and(|l| l.notice && l.service == service && l.text.starts_with(text))
}

pub(crate) fn is_output(line: &str, service: &str, text: &str) -> bool {
    parse(line).is_some_and(|l| !l.notice && l.service == service && l.text == text)
}

/// The index of the first lifecycle line `service * text…`; panics with the output if none.
pub(crate) fn notice_at(lines: &[String], service: &str, text: &str) -> usize {
    lines
        .iter()
        .position(|l| is_notice(l, service, text))
        .unwrap_or_else(|| panic!("no line `{service} * {text}…` in:\n{}", lines.join("\n")))
}

/// The index of the first output line `service | text`; panics with the output if none.
pub(crate) fn output_at(lines: &[String], service: &str, text: &str) -> usize {
    lines
        .iter()
        .position(|l| is_output(l, service, text))
        .unwrap_or_else(|| panic!("no line `{service} | {text}` in:\n{}", lines.join("\n")))
}

/// Every lifecycle text of `service`, in order.
pub(crate) fn notices<'a>(lines: &'a [String], service: &str) -> Vec<&'a str> {
    lines
        .iter()
        .filter_map(|l| parse(l))
        .filter(|l| l.notice && l.service == service)
        .map(|l| l.text)
        .collect()
}

/// The pids of a `started (pid N)` / `started (pids N, M)` line.
pub(crate) fn started_pids(line: &str) -> Vec<u32> {
    let inner = line.split_once("started (pid").map_or_else(
        || panic!("not a started line: {line}"),
        |(_, r)| r.trim_start_matches('s').trim_end_matches(')'),
    );
    inner
        .split(',')
        .map(|p| p.trim().parse().unwrap())
        .collect()
}

/// `120ms`, `1.5s`, `2s` → Duration (pk's `fmt_duration` spellings below a minute).
pub(crate) fn parse_duration(text: &str) -> Duration {
    if let Some(ms) = text.strip_suffix("ms") {
        Duration::from_millis(ms.parse().unwrap())
    } else if let Some(s) = text.strip_suffix('s') {
        Duration::from_secs_f64(s.parse().unwrap())
    } else {
        panic!("not a duration: {text}")
    }
}
