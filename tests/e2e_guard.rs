//! pk killed hard (issue 12): whatever way pk dies — SIGKILL, SIGKILL of its whole process
//! group, its terminal hung up, a background pk killed with SIGKILL — nothing the stack spawned
//! lives on (a background grandchild, a `setsid` child, a double-forked daemon), and no cgroup,
//! nor any file of the run in the socket directory (socket, run record, lock file), is left
//! within [`GONE_WITHIN`]. In normal use the guard is invisible: gone after
//! every normal exit, never listed by `pk ps`.
//!
//! Every test leaves nothing behind even when it fails: `Leftovers` SIGKILLs every pid it saw
//! (by pid) and removes the run cgroup on drop; pk itself is killed by `Running`'s drop.

mod support;

use std::io::Read as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};
use support::{Backend, DEADLINE, PidGuard, Project, Running, guard_of, is_alive};

/// How soon after pk's death everything must be gone (the issue's acceptance figure).
const GONE_WITHIN: Duration = Duration::from_secs(1);

/// Forks twice and calls setsid in between: the classic daemon, reparented away from its
/// service.
const DAEMON_PY: &str = r#"
import os, time
if os.fork():
    os._exit(0)
os.setsid()
if os.fork():
    os._exit(0)
with open("daemon.pid.tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename("daemon.pid.tmp", "daemon.pid")
time.sleep(1000)
"#;

/// One service that leaves a background grandchild, a setsid child and a double-forked daemon.
const STACK: &str = r#"
grace: 300ms
services:
  tree:
    command: |
      echo $$$$ > leader.pid
      sleep 1001 &
      echo $$! > bg.pid
      setsid sh -c 'echo $$$$ > setsid.pid.tmp; mv setsid.pid.tmp setsid.pid; exec sleep 1002' &
      "$PYTHON" daemon.py
      while [ ! -f setsid.pid ] || [ ! -f daemon.pid ]; do sleep 0.01; done
      echo spawned
      exec sleep 1003
"#;

const PIDS: [&str; 4] = ["leader.pid", "bg.pid", "setsid.pid", "daemon.pid"];

/// Kills, on drop, every pid it holds or finds in the project's pid files, and removes the run
/// cgroup: nothing survives a failed test.
struct Leftovers {
    pids: PidGuard,
    cgroup: Option<PathBuf>,
}

impl Leftovers {
    fn new(p: &Project) -> Leftovers {
        let mut pids = PidGuard::new();
        for name in PIDS {
            pids.file(p.path().join(name));
        }
        Leftovers { pids, cgroup: None }
    }
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        if let Some(dir) = &self.cgroup
            && dir.exists()
        {
            let _ = std::fs::write(dir.join("cgroup.kill"), "1");
            let _ = wait_until_true(Duration::from_secs(5), || {
                std::fs::read_to_string(dir.join("cgroup.events"))
                    .map_or(true, |e| e.contains("populated 0"))
            });
            for leaf in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                if leaf.file_type().is_ok_and(|t| t.is_dir()) {
                    let _ = std::fs::remove_dir(leaf.path());
                }
            }
            let _ = std::fs::remove_dir(dir);
        }
        // `pids` kills by pid after this.
    }
}

fn wait_until_true(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// What a running stack consists of, to check it is all gone.
struct Scene {
    pids: Vec<(&'static str, u32)>,
    cgroup: Option<PathBuf>,
    socket: PathBuf,
    /// The run's log, which a failed background run keeps on purpose.
    keep_log: bool,
}

impl Scene {
    /// Reads the pids once the service said `spawned`; `pk` is pk's pid (for its guard).
    fn read(p: &Project, pk: u32, cgroup: Option<PathBuf>, left: &mut Leftovers) -> Scene {
        let mut pids: Vec<(&'static str, u32)> =
            PIDS.iter().map(|&name| (name, p.read_pid(name))).collect();
        let guard = guard_of(pk).expect("pk has a guard child named pk-guard");
        left.pids.add(guard);
        pids.push(("guard", guard));
        for &(_, pid) in &pids {
            assert!(is_alive(pid));
        }
        left.cgroup.clone_from(&cgroup);
        let config = p.config_path();
        Scene {
            pids,
            cgroup,
            socket: pk::control::socket_path(&config),
            keep_log: false,
        }
    }

    /// Asserts that everything is gone within [`GONE_WITHIN`] of `since`.
    fn assert_gone_within(&self, since: Instant) {
        let end = since + GONE_WITHIN;
        let left = || -> Vec<String> {
            let mut left: Vec<String> = self
                .pids
                .iter()
                .filter(|&&(_, pid)| is_alive(pid))
                .map(|(name, pid)| format!("{name} {pid}"))
                .collect();
            if let Some(dir) = self.cgroup.as_ref().filter(|d| d.exists()) {
                left.push(format!("cgroup {}", dir.display()));
            }
            for file in run_files(&self.socket) {
                if !(self.keep_log && file.extension().is_some_and(|e| e == "log")) {
                    left.push(file.display().to_string());
                }
            }
            left
        };
        loop {
            let now = left();
            if now.is_empty() {
                return;
            }
            assert!(
                Instant::now() < end,
                "{GONE_WITHIN:?} after pk died, still there: {now:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Every file of the run whose socket is `socket` in the socket directory: the socket, run
/// record, lock file, log and temporary files all share its name up to the first dot.
fn run_files(socket: &Path) -> Vec<PathBuf> {
    let stem = socket.file_stem().unwrap().to_str().unwrap();
    let prefix = format!("{stem}.");
    std::fs::read_dir(socket.parent().unwrap())
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(&prefix))
        })
        .map(|e| e.path())
        .collect()
}

fn project(backend: Backend) -> Project {
    Project::new(STACK)
        .backend(backend)
        .file("daemon.py", DAEMON_PY)
}

/// The run cgroup named by pk's first line, with the cgroup backend.
fn run_cgroup(up: &Running, backend: Backend) -> Option<PathBuf> {
    let line = up.wait_for_line("the containment line", |l| l.contains("containment: "));
    match backend {
        Backend::Pgroup => None,
        Backend::Cgroup => {
            let dir = line
                .split_once("cgroup v2 (")
                .and_then(|(_, rest)| rest.strip_suffix(')'))
                .unwrap_or_else(|| panic!("no run cgroup in {line}"));
            Some(PathBuf::from(dir))
        }
    }
}

fn kill(pid: u32, group: bool) {
    let pid = Pid::from_raw(i32::try_from(pid).unwrap()).unwrap();
    let _ = if group {
        rustix::process::kill_process_group(pid, Signal::KILL)
    } else {
        rustix::process::kill_process(pid, Signal::KILL)
    };
}

both_backends!(sigkill_of_pk, sigkill_of_pks_process_group);

fn sigkill_of_pk(backend: Backend) {
    killed_in_the_foreground(backend, false);
}

fn sigkill_of_pks_process_group(backend: Backend) {
    killed_in_the_foreground(backend, true);
}

fn killed_in_the_foreground(backend: Backend, whole_group: bool) {
    let p = project(backend);
    let mut left = Leftovers::new(&p);
    let mut up = p.up().own_group().spawn();
    let cgroup = run_cgroup(&up, backend);
    left.cgroup.clone_from(&cgroup);
    up.wait_for_line("tree | spawned", |l| l.ends_with("| spawned"));
    let scene = Scene::read(&p, up.pid(), cgroup, &mut left);
    let since = Instant::now();
    kill(up.pid(), whole_group);
    up.wait_exit(DEADLINE);
    scene.assert_gone_within(since);
}

both_backends!(sigkill_of_a_background_pk);

fn sigkill_of_a_background_pk(backend: Backend) {
    let p = project(backend);
    let mut left = Leftovers::new(&p);
    let out = p.pk(&["up", "-d"]).run();
    assert_eq!(out.code, 0, "{}\n{}", out.stdout(), out.stderr);
    let pk = out
        .lines
        .iter()
        .find_map(|l| {
            l.split_once("started in the background (pid ")
                .and_then(|(_, r)| r.split(')').next())
                .and_then(|n| n.parse::<u32>().ok())
        })
        .unwrap_or_else(|| panic!("no pid in {:?}", out.lines));
    left.pids.add(pk);
    let cgroup = match backend {
        Backend::Pgroup => None,
        Backend::Cgroup => {
            let ps = p.pk(&["ps", "--json"]).run();
            assert_eq!(ps.code, 0, "{}", ps.stderr);
            Some(cgroup_of(p.read_pid("leader.pid")))
        }
    };
    left.cgroup.clone_from(&cgroup);
    let mut scene = Scene::read(&p, pk, cgroup, &mut left);
    scene.keep_log = true;
    let since = Instant::now();
    kill(pk, false);
    scene.assert_gone_within(since);
    // The background pk's log is kept: it failed.
    let _ = std::fs::remove_file(scene.socket.with_extension("log"));
}

/// The run cgroup of a service process (the parent of its leaf).
fn cgroup_of(pid: u32) -> PathBuf {
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let rel = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .expect("a cgroup2 line");
    let mount = support::writable_cgroup2().expect("cgroup2 mount");
    let leaf = mount.join(rel.trim_start_matches('/'));
    leaf.parent().unwrap().to_path_buf()
}

both_backends!(closing_pks_terminal);

/// pk runs the dashboard on a pseudo-terminal; the terminal goes away (its master is closed).
fn closing_pks_terminal(backend: Backend) {
    use portable_pty::{CommandBuilder, PtySize, native_pty_system};
    let p = project(backend);
    let mut left = Leftovers::new(&p);
    let pty = native_pty_system()
        .openpty(PtySize {
            rows: 30,
            cols: 120,
            pixel_width: 0,
            pixel_height: 0,
        })
        .expect("openpty");
    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_pk"));
    cmd.arg("up");
    cmd.cwd(p.path());
    cmd.env("TERM", "xterm-256color");
    cmd.env("PYTHON", support::python());
    cmd.env_remove("PK_FILE");
    cmd.env_remove("PK_CONTAINMENT");
    if backend == Backend::Pgroup {
        cmd.env("PK_CONTAINMENT", "pgroup");
    }
    let mut child = pty.slave.spawn_command(cmd).expect("spawn pk on the pty");
    drop(pty.slave);
    let pk = child.process_id().expect("pid");
    left.pids.add(pk);
    // Drain the terminal so pk never blocks on it, until told to stop (then the reader's copy
    // of the master is closed too: the terminal is gone only once every master fd is).
    let master_fd = pty.master.as_raw_fd().expect("the master's fd");
    let mut reader = pty.master.try_clone_reader().expect("reader");
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = Arc::clone(&stop);
    let drain = std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        while !stopping.load(Ordering::Relaxed) {
            let mut pfd = libc::pollfd {
                fd: master_fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd; the master outlives this thread (joined before drop).
            let ready = unsafe { libc::poll(&raw mut pfd, 1, 20) };
            if ready > 0 && reader.read(&mut buf).map_or(true, |n| n == 0) {
                break;
            }
        }
    });
    let cgroup = match backend {
        Backend::Pgroup => None,
        Backend::Cgroup => Some(cgroup_of(p.read_pid("leader.pid"))),
    };
    left.cgroup.clone_from(&cgroup);
    let scene = Scene::read(&p, pk, cgroup, &mut left);
    stop.store(true, Ordering::Relaxed);
    let _ = drain.join();
    let since = Instant::now();
    drop(pty.master);
    let mut scene = scene;
    scene.pids.push(("pk", pk));
    scene.assert_gone_within(since);
    let _ = child.wait();
}

both_backends!(a_double_forked_daemon_is_gone_after_pk_down);

fn a_double_forked_daemon_is_gone_after_pk_down(backend: Backend) {
    let p = project(backend);
    let mut left = Leftovers::new(&p);
    let mut up = p.up().spawn();
    left.cgroup = run_cgroup(&up, backend);
    up.wait_for_line("tree | spawned", |l| l.ends_with("| spawned"));
    let daemon = p.read_pid("daemon.pid");
    let setsid = p.read_pid("setsid.pid");
    let down = p.pk(&["down"]).run();
    assert_eq!(down.code, 0, "{}", down.stderr);
    assert_eq!(up.wait_exit(DEADLINE), 0);
    assert!(
        !is_alive(daemon),
        "the double-forked daemon {daemon} survived pk down"
    );
    assert!(
        !is_alive(setsid),
        "the setsid child {setsid} survived pk down"
    );
}

/// Runs pk under a child subreaper that reports every process that pk left behind.
const SUBREAPER_PY: &str = r#"
import ctypes, os, sys, time
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
os.waitpid(pid, 0)
end = time.monotonic() + 5
reaped = 0
while True:
    try:
        p, _ = os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        break
    if p:
        reaped += 1
    elif time.monotonic() > end:
        print("left behind", flush=True)
        for task in os.listdir("/proc/self/task"):
            for c in open(f"/proc/self/task/{task}/children").read().split():
                os.kill(int(c), 9)
        end += 5
    else:
        time.sleep(0.005)
print("orphans", reaped, flush=True)
"#;

/// The guard is invisible in normal use: `pk ps` does not list it, and after pk ends by itself,
/// by Ctrl-C, or on a config error, nothing of pk is left (run under a subreaper that would
/// inherit a lingering guard).
#[test]
fn the_guard_leaves_nothing_after_normal_exits() {
    let p = Project::new("services:\n  once:\n    command: echo done\n")
        .file("subreaper.py", SUBREAPER_PY)
        .file("bad/pk.yaml", "services:\n  x: {command: [}\n");
    let pk = env!("CARGO_BIN_EXE_pk");
    let py = support::python();
    let ended = p
        .pk(&[])
        .program(py)
        .args(&["subreaper.py", pk, "up", "--plain"])
        .run();
    assert_eq!(ended.code, 0, "{}", ended.stderr);
    assert!(
        ended.lines.iter().any(|l| l == "orphans 1"),
        "{:?}",
        ended.lines
    );

    let bad = p
        .pk(&[])
        .program(py)
        .args(&["subreaper.py", pk, "-f", "bad/pk.yaml", "up", "--plain"])
        .run();
    assert!(
        bad.lines.iter().any(|l| l == "orphans 1"),
        "{:?}",
        bad.lines
    );
    assert!(
        !bad.lines.iter().any(|l| l == "left behind"),
        "{:?}",
        bad.lines
    );
}

#[test]
fn pk_ps_does_not_list_the_guard_and_ctrl_c_ends_it() {
    let p = Project::new("services:\n  web:\n    command: exec sleep 1000\n");
    let mut up = p.up().spawn();
    up.wait_notice("web", "started (pid");
    let guard = guard_of(up.pid()).expect("a guard");
    let _left = {
        let mut g = PidGuard::new();
        g.add(guard);
        g
    };
    let ps = p.pk(&["ps", "--json"]).run();
    assert_eq!(ps.code, 0, "{}", ps.stderr);
    let text = ps.stdout();
    assert!(text.contains("\"web\""), "{text}");
    let json: serde_json::Value = serde_json::from_str(&text).expect("ps --json");
    let mut pids = Vec::new();
    collect_pids(&json, &mut pids);
    assert!(!pids.is_empty(), "{text}");
    assert!(!pids.contains(&u64::from(guard)), "{text}");
    up.interrupt();
    assert_eq!(up.wait_exit(DEADLINE), 0);
    support::wait_gone(guard, "the guard after Ctrl-C");
    assert!(!Path::new(&pk::control::record_path(&p.config_path())).exists());
}

/// Every number under a key named `pid` or `pids`, anywhere in `value`.
fn collect_pids(value: &serde_json::Value, out: &mut Vec<u64>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                if key == "pid" || key == "pids" {
                    match v {
                        serde_json::Value::Array(a) => {
                            out.extend(a.iter().filter_map(serde_json::Value::as_u64));
                        }
                        v => out.extend(v.as_u64()),
                    }
                }
                collect_pids(v, out);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_pids(v, out)),
        _ => {}
    }
}

/// A `sleep` in a process group of its own, started by the test (not by pk).
fn bystander() -> (std::process::Child, u32, u64) {
    #[expect(clippy::disallowed_methods, reason = "a process pk did not start")]
    let child = std::process::Command::new("sleep")
        .arg("1000")
        .process_group(0)
        .spawn()
        .expect("sleep");
    let pid = child.id();
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Field 22, counted after the command name.
    let start = text
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .nth(19)
        .unwrap();
    (child, pid, start.parse().unwrap())
}

/// A run record as a dead pk would have left it, naming process group `pgid` (leader start
/// `start`), written with `mode`.
fn plant_record(p: &Project, pgid: u32, start: u64, mode: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    pk::control::ensure_socket_dir().expect("socket dir");
    #[expect(clippy::disallowed_methods, reason = "a pid that is surely dead")]
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    gone.wait().unwrap();
    let config = p.config_path();
    let record = serde_json::json!({
        "pid": gone.id(), "start": 0, "boot_id": null, "config": config,
        "cgroup": null, "groups": [[pgid, start]], "marker": null, "guard": null,
    });
    let path = pk::control::record_path(&config);
    std::fs::write(&path, record.to_string()).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

/// Issue 11, defect 3: a recorded process group is killed only while its leader is the recorded
/// process. Here the number now belongs to someone else (another start time): it is spared;
/// with the right start time the same record kills it.
#[test]
fn the_fallback_kills_a_recorded_group_only_if_its_leader_is_the_same_process() {
    let p = Project::new("services:\n  x:\n    command: exec sleep 1000\n");
    let (mut victim, pid, start) = bystander();
    let _kill = {
        let mut g = PidGuard::new();
        g.add(pid);
        g
    };
    let record = plant_record(&p, pid, start + 1, 0o600);
    let down = p.pk(&["down"]).run();
    assert_eq!(down.code, 0, "{}", down.stderr);
    assert!(
        down.stderr.contains("killed 0 leftover processes"),
        "{}",
        down.stderr
    );
    assert!(
        is_alive(pid),
        "a process group that was not the run's was killed"
    );
    assert!(!record.exists(), "the dead run's record is removed");

    plant_record(&p, pid, start, 0o600);
    let down = p.pk(&["down"]).run();
    assert_eq!(down.code, 0, "{}", down.stderr);
    assert!(
        down.stderr.contains("killed 1 leftover process"),
        "{}",
        down.stderr
    );
    let _ = victim.wait();
}

/// Issue 11: only records pk wrote are trusted; one that others could have written (mode 0666)
/// is reported and left alone, and nothing it names is killed.
#[test]
fn a_run_record_others_could_write_is_not_acted_on() {
    let p = Project::new("services:\n  x:\n    command: exec sleep 1000\n");
    let (_victim, pid, start) = bystander();
    let _kill = {
        let mut g = PidGuard::new();
        g.add(pid);
        g
    };
    let record = plant_record(&p, pid, start, 0o666);
    let down = p.pk(&["down"]).run();
    let _ = std::fs::remove_file(&record);
    assert!(
        down.stderr
            .contains("is not a run record pk wrote (writable by others"),
        "{}",
        down.stderr
    );
    assert!(
        is_alive(pid),
        "a process named by an untrusted record was killed"
    );
}

/// Issue 11: with process groups the run record is on disk, naming the run marker, before the
/// first service runs — so a SIGKILL while services start leaves nothing the record cannot find
/// (every process of the run carries the marker from its first exec).
#[test]
fn the_run_record_names_the_marker_before_any_service_runs() {
    let p = Project::new(
        "services:\n  first:\n    command: grep -q \"\\\"marker\\\":\\\"$$PK_RUN_ID\\\"\" \"$$RECORD\" && echo recorded || echo missing\n",
    )
    .backend(Backend::Pgroup);
    let record = pk::control::record_path(&p.config_path());
    let out = p.up().env("RECORD", record.to_str().unwrap()).run();
    assert_eq!(out.code, 0, "{}\n{}", out.stdout(), out.stderr);
    support::output_at(&out.lines, "first", "recorded");
}

both_backends!(pk_down_after_pk_and_its_guard_died_leaves_nothing);

/// The fallback (guard killed too): `pk down` kills what the run left and removes every file of
/// it (socket, run record, lock file). Under process groups it also finds what left the group:
/// the setsid grandchild carries the run marker.
fn pk_down_after_pk_and_its_guard_died_leaves_nothing(backend: Backend) {
    let p = project(backend);
    let mut left = Leftovers::new(&p);
    let mut up = p.up().spawn();
    let cgroup = run_cgroup(&up, backend);
    left.cgroup.clone_from(&cgroup);
    up.wait_for_line("tree | spawned", |l| l.ends_with("| spawned"));
    let scene = Scene::read(&p, up.pid(), cgroup, &mut left);
    let guard = scene.pids.iter().find(|(n, _)| *n == "guard").unwrap().1;
    kill(guard, false);
    support::wait_gone(guard, "the guard");
    kill(up.pid(), false);
    up.wait_exit(DEADLINE);
    let setsid = p.read_pid("setsid.pid");
    assert!(is_alive(setsid), "only the fallback is left to clean up");
    let down = p.pk(&["down"]).run();
    assert_eq!(down.code, 0, "{}", down.stderr);
    assert!(
        down.stderr.contains("died without cleaning up"),
        "{}",
        down.stderr
    );
    scene.assert_gone_within(Instant::now());
}
