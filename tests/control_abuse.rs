//! The control socket under abuse (issue 11): clients that refuse a socket another user could
//! have planted, requests that are too long or not UTF-8, `accept` out of descriptors, and
//! stale-socket decisions that are proven (the lock beside the socket), never guessed.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{DEADLINE, Project};

const SLEEPER: &str = "services:\n  db:\n    command: \"echo up; exec sleep 1000\"\n";

/// The socket pk would use for `p` under `XDG_RUNTIME_DIR=runtime`.
fn socket_under(runtime: &Path, p: &Project) -> PathBuf {
    let name = pk::control::socket_path(&p.config_path());
    runtime.join("pk").join(name.file_name().unwrap())
}

/// A unix-socket server run as uid/gid 65534 that answers every request with a forged line;
/// killed (by pid) when dropped.
struct Forger(Child);

impl Forger {
    fn serve(path: &Path) -> Forger {
        let script = r#"
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen(8)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    try:
        c.recv(65536)
        c.sendall(b'{"event":"error","v":1,"message":"FORGED by another user"}\n')
    except OSError:
        pass
    c.close()
"#;
        #[expect(clippy::disallowed_methods, reason = "the other local user")]
        let mut child = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(support::python())
            .args(["-c", script])
            .arg(path)
            .stdout(Stdio::piped())
            .spawn()
            .expect("setpriv and python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(
            line.trim(),
            "ready",
            "the forger could not bind {}",
            path.display()
        );
        Forger(child)
    }
}

impl Drop for Forger {
    fn drop(&mut self) {
        // Our own child, by its pid.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A runtime directory that uid 65534 can traverse.
fn open_runtime() -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("pk-rt-").tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn chown(path: &Path, uid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(uid)).unwrap();
}

#[test]
fn clients_refuse_a_socket_directory_another_user_created() {
    let p = Project::new(SLEEPER);
    let runtime = open_runtime();
    let dir = runtime.path().join("pk");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    chown(&dir, 65534);
    let _forger = Forger::serve(&socket_under(runtime.path(), &p));
    for args in [&["ps"][..], &["down"], &["logs"]] {
        let out = p
            .pk(args)
            .env("XDG_RUNTIME_DIR", runtime.path().to_str().unwrap())
            .run();
        assert!(!out.stderr.contains("FORGED"), "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("unsafe socket directory") && out.stderr.contains("uid 65534"),
            "{args:?}: {}",
            out.stderr
        );
        assert_ne!(out.code, 0);
    }
}

#[test]
fn clients_refuse_a_socket_directory_others_may_write() {
    let p = Project::new(SLEEPER);
    let runtime = open_runtime();
    let dir = runtime.path().join("pk");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let _forger = Forger::serve(&socket_under(runtime.path(), &p));
    let out = p
        .pk(&["ps"])
        .env("XDG_RUNTIME_DIR", runtime.path().to_str().unwrap())
        .run();
    assert!(!out.stderr.contains("FORGED"), "{}", out.stderr);
    assert!(out.stderr.contains("mode 777"), "{}", out.stderr);
    assert_ne!(out.code, 0);
}

#[test]
fn clients_refuse_a_server_of_another_uid() {
    let p = Project::new(SLEEPER);
    let runtime = open_runtime();
    let dir = runtime.path().join("pk");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    // The other user binds where it may, and the socket ends up in our private directory.
    let drop_box = runtime.path().join("box");
    std::fs::create_dir(&drop_box).unwrap();
    std::fs::set_permissions(&drop_box, std::fs::Permissions::from_mode(0o777)).unwrap();
    let _forger = Forger::serve(&drop_box.join("s"));
    std::fs::rename(drop_box.join("s"), socket_under(runtime.path(), &p)).unwrap();
    let out = p
        .pk(&["ps"])
        .env("XDG_RUNTIME_DIR", runtime.path().to_str().unwrap())
        .run();
    assert!(!out.stderr.contains("FORGED"), "{}", out.stderr);
    assert!(
        out.stderr.contains("served by uid 65534, not by you"),
        "{}",
        out.stderr
    );
    assert_ne!(out.code, 0);
}

/// Starts `pk up` on a sleeper and waits until its socket answers.
fn running(p: &Project) -> (support::Running, PathBuf) {
    let up = p.up().spawn();
    up.wait_notice("db", "started (pid");
    let socket = pk::control::socket_path(&p.config_path());
    support::wait_until(DEADLINE, "the socket", || {
        UnixStream::connect(&socket).ok().map(drop)
    });
    (up, socket)
}

/// The first line the server answers on `stream`, within the deadline.
fn answer(stream: &UnixStream) -> String {
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).unwrap();
    line
}

fn ps_answers(socket: &Path) {
    let mut s = UnixStream::connect(socket).unwrap();
    s.write_all(b"{\"v\":1,\"op\":\"ps\"}\n").unwrap();
    let line = answer(&s);
    assert!(line.contains("\"event\":\"ps\""), "{line}");
}

#[test]
fn an_overlong_request_line_gets_an_error_at_once() {
    let p = Project::new(SLEEPER);
    let (mut up, socket) = running(&p);
    let stream = UnixStream::connect(&socket).unwrap();
    let mut writer = stream.try_clone().unwrap();
    // 2 MiB with no newline, and the connection stays open: the answer must not wait for more.
    let feeder = std::thread::spawn(move || {
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..32 {
            if writer.write_all(&chunk).is_err() {
                break;
            }
        }
        writer
    });
    let started = Instant::now();
    let line = answer(&stream);
    assert!(
        line.contains("\"event\":\"error\"") && line.contains("request longer than 1048576 bytes"),
        "{line:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered only after the timeout"
    );
    drop(feeder.join().unwrap());
    ps_answers(&socket);
    up.interrupt();
    assert_eq!(up.wait_exit(DEADLINE), 0);
}

#[test]
fn a_request_that_is_not_utf8_gets_an_error_line() {
    let p = Project::new(SLEEPER);
    let (mut up, socket) = running(&p);
    let mut s = UnixStream::connect(&socket).unwrap();
    s.write_all(b"{\"v\":1,\"op\":\"p\xffs\"}\n").unwrap();
    let line = answer(&s);
    assert!(
        line.contains("\"event\":\"error\"") && line.contains("not UTF-8"),
        "{line:?}"
    );
    ps_answers(&socket);
    up.interrupt();
    assert_eq!(up.wait_exit(DEADLINE), 0);
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

#[test]
fn accept_out_of_descriptors_does_not_spin_and_recovers() {
    let p = Project::new(SLEEPER);
    let (mut up, socket) = running(&p);
    let pid = up.pid();
    let limit = open_fds(pid) + 8;
    #[expect(clippy::disallowed_methods, reason = "lowers pk's descriptor limit")]
    let status = Command::new("prlimit")
        .arg(format!("--nofile={limit}:{limit}"))
        .arg(format!("--pid={pid}"))
        .status()
        .unwrap();
    assert!(status.success());
    // Idle clients until pk has no descriptor left; the next ones wait in the backlog.
    let mut idle = Vec::new();
    support::wait_until(DEADLINE, "pk out of descriptors", || {
        idle.push(UnixStream::connect(&socket).unwrap());
        (open_fds(pid) >= limit && idle.len() > 12).then_some(())
    });
    // A measurement window, not a synchronisation: CPU used while accept keeps failing.
    let before = cpu_ticks(pid);
    let window = Instant::now();
    while window.elapsed() < Duration::from_secs(1) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let used = cpu_ticks(pid) - before;
    let ticks_per_s = rustix::param::clock_ticks_per_second();
    assert!(
        used * 5 < ticks_per_s,
        "pk used {used} of {ticks_per_s} ticks in 1s while out of descriptors"
    );
    drop(idle);
    ps_answers(&socket);
    up.interrupt();
    assert_eq!(up.wait_exit(DEADLINE), 0);
}

#[test]
fn a_socket_whose_lock_is_held_is_not_replaced() {
    let p = Project::new(SLEEPER);
    pk::control::ensure_socket_dir().unwrap();
    let socket = pk::control::socket_path(&p.config_path());
    // A live pk holds the lock, and its socket fails to connect (here: not a socket at all).
    let lock = std::fs::File::create(pk::control::lock_path(&p.config_path())).unwrap();
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
    std::fs::write(&socket, "live pk's socket, unreachable for a moment").unwrap();
    let out = p.up().run();
    let kept = std::fs::read_to_string(&socket);
    let _ = std::fs::remove_file(&socket);
    let _ = std::fs::remove_file(pk::control::lock_path(&p.config_path()));
    assert_eq!(out.code, 2, "{}{}", out.stdout(), out.stderr);
    assert!(
        out.stderr.contains("pk is already running"),
        "{}",
        out.stderr
    );
    assert!(kept.is_ok(), "the live pk's socket was removed");
}

#[test]
fn two_pk_up_on_a_stale_socket_never_both_run() {
    for _ in 0..3 {
        let p = Project::new(SLEEPER);
        pk::control::ensure_socket_dir().unwrap();
        let socket = pk::control::socket_path(&p.config_path());
        drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
        let mut a = p.up().spawn();
        let mut b = p.up().spawn();
        // One of them serves; the other must have been refused.
        let a_lost = support::wait_until(DEADLINE, "one of the two refused", || {
            if a.try_exit().is_some() {
                Some(true)
            } else {
                b.try_exit().is_some().then_some(false)
            }
        });
        let (loser, second) = if a_lost {
            (&mut a, &mut b)
        } else {
            (&mut b, &mut a)
        };
        assert_eq!(loser.wait_exit(DEADLINE), 2, "{}", loser.stderr);
        second.wait_notice("db", "started (pid");
        ps_answers(&socket);
        second.interrupt();
        assert_eq!(second.wait_exit(DEADLINE), 0);
    }
}

#[test]
fn a_half_closed_request_is_still_answered() {
    let p = Project::new(SLEEPER);
    let (mut up, socket) = running(&p);
    let mut s = UnixStream::connect(&socket).unwrap();
    s.write_all(b"{\"v\":1,\"op\":\"ps\"}").unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut all = String::new();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.read_to_string(&mut all).unwrap();
    assert!(all.contains("\"event\":\"ps\""), "{all}");
    up.interrupt();
    assert_eq!(up.wait_exit(DEADLINE), 0);
}

/// A client thread: its kind, and what went wrong (empty: nothing).
type Client = std::thread::JoinHandle<(&'static str, String)>;

/// `VmRSS` and `VmHWM` (peak) of `pid`, in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// One request on a new connection; the first answer line (empty if none by the deadline).
fn first_answer(socket: &Path, line: &[u8], half_close: bool) -> String {
    let Ok(mut s) = UnixStream::connect(socket) else {
        return String::new();
    };
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    // The server may answer and close before an oversized line is all written.
    let _ = s.write_all(line);
    if half_close {
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
    let mut answer = String::new();
    let _ = BufReader::new(&s).read_line(&mut answer);
    answer
}

/// Issue 11, part 3: 50 clients at once — 20 × 3 `ps`, 10 `logs -F` (5 read, 5 never read
/// while the others run), 8 `restart web`, 5 malformed, 3 × 10 MiB lines without a newline,
/// 4 half-closed `ps`. Every well-formed client is answered, the bad ones get an `error`, the
/// server stays up, and pk's peak memory grows by less than one oversized line would cost.
#[test]
#[expect(clippy::too_many_lines, reason = "one client kind after the other")]
fn fifty_clients_at_once_are_answered_and_memory_stays_bounded() {
    let p = Project::new(
        "services:\n  ticker:\n    command: \"while :; do echo tick; sleep 0.002; done\"\n  web:\n    command: \"echo up; exec sleep 1000\"\n",
    );
    let mut up = p.up().spawn();
    up.wait_notice("web", "started (pid");
    let socket = pk::control::socket_path(&p.config_path());
    support::wait_until(DEADLINE, "the socket", || {
        UnixStream::connect(&socket).ok().map(drop)
    });
    let pk = up.pid();
    let (before, _) = rss_kib(pk);
    // The stalled followers hold their connections until every other client is done.
    let (release, released) = std::sync::mpsc::channel::<()>();
    let released = std::sync::Arc::new(std::sync::Mutex::new(released));
    let mut clients: Vec<Client> = Vec::new();
    let mut stalled: Vec<Client> = Vec::new();
    let spawn = |kind: &'static str, f: Box<dyn FnOnce() -> String + Send>| -> Client {
        std::thread::spawn(move || (kind, f()))
    };
    for _ in 0..20 {
        let socket = socket.clone();
        clients.push(spawn(
            "ps",
            Box::new(move || {
                (0..3)
                    .map(|_| first_answer(&socket, b"{\"v\":1,\"op\":\"ps\"}\n", false))
                    .find(|a| !a.contains("\"event\":\"ps\""))
                    .unwrap_or_default()
            }),
        ));
    }
    for i in 0..10 {
        let socket = socket.clone();
        let released = std::sync::Arc::clone(&released);
        let client = spawn(
            "logs -F",
            Box::new(move || {
                let mut s = UnixStream::connect(&socket).unwrap();
                s.write_all(b"{\"v\":1,\"op\":\"logs\",\"follow\":true,\"tail\":10}\n")
                    .unwrap();
                if i % 2 == 0 {
                    // Never reads; holds the connection until the others are done.
                    let _ = released.lock().unwrap().recv();
                    return String::new();
                }
                s.set_read_timeout(Some(DEADLINE)).unwrap();
                let mut reader = BufReader::new(&s);
                let mut line = String::new();
                // A followed line of the ticker (after the tail).
                for _ in 0..100 {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return format!("ended: {line:?}");
                    }
                    if line.contains("tick") {
                        return String::new();
                    }
                }
                format!("no ticker line: {line:?}")
            }),
        );
        if i % 2 == 0 {
            stalled.push(client);
        } else {
            clients.push(client);
        }
    }
    for _ in 0..8 {
        let socket = socket.clone();
        clients.push(spawn(
            "restart",
            Box::new(move || {
                let mut s = UnixStream::connect(&socket).unwrap();
                s.set_read_timeout(Some(DEADLINE)).unwrap();
                s.write_all(b"{\"v\":1,\"op\":\"restart\",\"services\":[\"web\"]}\n")
                    .unwrap();
                for line in BufReader::new(&s).lines() {
                    let Ok(line) = line else { break };
                    if line.contains("\"event\":\"ok\"") {
                        return String::new();
                    }
                    if line.contains("\"event\":\"error\"") {
                        return line;
                    }
                }
                "no final answer".into()
            }),
        ));
    }
    for _ in 0..5 {
        let socket = socket.clone();
        clients.push(spawn(
            "malformed",
            Box::new(move || {
                let a = first_answer(&socket, b"{nope\n", false);
                if a.contains("\"event\":\"error\"") {
                    String::new()
                } else {
                    a
                }
            }),
        ));
    }
    for _ in 0..3 {
        let socket = socket.clone();
        clients.push(spawn(
            "10 MiB line",
            Box::new(move || {
                let a = first_answer(&socket, &vec![b'x'; 10 * 1024 * 1024], false);
                if a.contains("request longer than") {
                    String::new()
                } else {
                    a
                }
            }),
        ));
    }
    for _ in 0..4 {
        let socket = socket.clone();
        clients.push(spawn(
            "half-closed",
            Box::new(move || {
                let a = first_answer(&socket, b"{\"v\":1,\"op\":\"ps\"}", true);
                if a.contains("\"event\":\"ps\"") {
                    String::new()
                } else {
                    a
                }
            }),
        ));
    }
    let mut failed = Vec::new();
    for c in clients {
        let (kind, problem) = c.join().expect("a client thread");
        if !problem.is_empty() {
            failed.push(format!("{kind}: {problem:?}"));
        }
    }
    // With 5 followers still connected and unread, the server answers at once.
    let ps = first_answer(&socket, b"{\"v\":1,\"op\":\"ps\"}\n", false);
    drop(release);
    for c in stalled {
        c.join().expect("a stalled follower");
    }
    assert!(
        failed.is_empty(),
        "clients not answered as they should be: {failed:?}"
    );
    assert!(ps.contains("\"event\":\"ps\""), "{ps:?}");
    assert!(up.try_exit().is_none(), "pk ended under the load");
    let (_, peak) = rss_kib(pk);
    let grown = peak.saturating_sub(before);
    eprintln!("pk RSS before the clients {before} KiB, peak {peak} KiB");
    assert!(
        grown < 10 * 1024,
        "pk's peak RSS grew by {grown} KiB (from {before} KiB): an oversized request was buffered"
    );
    up.interrupt();
    assert_eq!(up.wait_exit(DEADLINE), 0);
}

/// `pk logs -F` on a flood, its output unread while pk stops: pk exits in the middle of writing
/// a record to the stalled follower, and the follower must take the cut-off last line for the
/// end of the stream (exit 0), not report a bad response.
#[test]
fn a_follower_cut_off_mid_record_by_pk_exiting_ends_cleanly() {
    let p = Project::new(
        "services:\n  flood:\n    command: [yes, 'a line of output from a flood']\n  db:\n    command: \"echo up; exec sleep 1000\"\n",
    );
    let (mut up, socket) = running(&p);
    #[expect(clippy::disallowed_methods, reason = "the follower under test")]
    let mut follower = p.pk(&["logs", "-F"]).command().spawn().expect("pk logs -F");
    // Its first line proves it follows; then nobody reads it, so its pipe and socket buffers
    // fill and pk blocks in the middle of writing the flood to it.
    let mut out = BufReader::new(follower.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("a line of output from a flood") {
        line.clear();
        assert_ne!(out.read_line(&mut line).unwrap(), 0, "the follower ended");
    }
    ps_answers(&socket);
    up.interrupt();
    assert_eq!(up.wait_exit(DEADLINE), 0);
    std::io::copy(&mut out, &mut std::io::sink()).unwrap();
    let mut err = String::new();
    follower
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = follower.wait().unwrap();
    assert!(!err.contains("bad response"), "{err}");
    assert!(status.success(), "{status:?}: {err}");
}
