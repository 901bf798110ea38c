//! pk's memory under abuse (issue 11), against the real release binary with real processes:
//! a stdout that is not read, a `pk logs -F` that is not read, and 50 control clients at once
//! (well-formed, malformed, oversized, half-closed).
//!
//! `cargo bench --bench abusebench [-- slow-reader|stalled-follower|control-load]`. Each
//! scenario prints one line; docs/benchmarks.md records a run.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn main() {
    let only: Option<String> = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    let pk = common::build_pk();
    let scenarios: [(&str, Scenario); 3] = [
        ("slow-reader", slow_reader),
        ("stalled-follower", stalled_follower),
        ("control-load", control_load),
    ];
    for (name, run) in scenarios {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        println!("{name:<17} {}", run(&pk));
    }
}

type Scenario = fn(&Path) -> String;

const FLOOD: &str = "services:\n  flood:\n    command: [yes, 'a line of output from a flood']\n  web:\n    command: [sleep, '1000']\n";

struct Stack {
    dir: tempfile::TempDir,
    pk: Child,
}

impl Stack {
    fn up(pk: &Path, yaml: &str, stdout: Stdio) -> Stack {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("pk.yaml"), yaml).expect("pk.yaml");
        let mut cmd = Command::new(pk);
        cmd.args(["up", "--plain", "--color", "never"])
            .current_dir(dir.path())
            .env_remove("PK_CONTAINMENT")
            .stdout(stdout)
            .stderr(Stdio::null());
        #[expect(
            clippy::disallowed_methods,
            reason = "the bench runs the binary it measures"
        )]
        let child = cmd.spawn().expect("spawn pk");
        let stack = Stack { dir, pk: child };
        let socket = stack.socket();
        let end = Instant::now() + Duration::from_secs(20);
        while UnixStream::connect(&socket).is_err() {
            assert!(Instant::now() < end, "pk's socket never answered");
            std::thread::sleep(Duration::from_millis(20));
        }
        stack
    }

    fn socket(&self) -> PathBuf {
        let config = std::fs::canonicalize(self.dir.path().join("pk.yaml")).expect("config");
        pk::control::socket_path(&config)
    }

    fn pid(&self) -> u32 {
        self.pk.id()
    }

    /// SIGINT, then waits for pk to exit.
    fn down(mut self, drain: Option<Box<dyn Read>>) {
        let pid =
            rustix::process::Pid::from_raw(i32::try_from(self.pid()).expect("pid")).expect("pid");
        rustix::process::kill_process(pid, rustix::process::Signal::INT).expect("SIGINT");
        if let Some(mut out) = drain {
            std::io::copy(&mut out, &mut std::io::sink()).expect("drain");
        }
        self.pk.wait().expect("wait");
    }
}

/// `VmRSS` and `VmHWM` (peak) of `pid`, in MiB.
fn rss_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let field = |name: &str| -> f64 {
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            .expect("field");
        #[expect(clippy::cast_precision_loss, reason = "a size in MiB for display")]
        let mib = kib as f64 / 1024.0;
        mib
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// A measurement window (not a synchronisation): the peak RSS of `pid` sampled over `span`.
fn peak_over(pid: u32, span: Duration) -> f64 {
    let end = Instant::now() + span;
    let mut peak: f64 = 0.0;
    while Instant::now() < end {
        peak = peak.max(rss_mib(pid).1);
        std::thread::sleep(Duration::from_millis(100));
    }
    peak
}

/// `pk up --plain | (sleep 5; cat)` on a `yes` flood.
fn slow_reader(pk: &Path) -> String {
    let mut stack = Stack::up(pk, FLOOD, Stdio::piped());
    let out = stack.pk.stdout.take().expect("stdout");
    let peak = peak_over(stack.pid(), Duration::from_secs(5));
    // Then read: the output was only held back, not lost.
    let mut reader = BufReader::new(out);
    let mut line = String::new();
    let mut lines = 0u64;
    let end = Instant::now() + Duration::from_secs(2);
    while Instant::now() < end {
        line.clear();
        if reader.read_line(&mut line).expect("read") == 0 {
            break;
        }
        lines += 1;
    }
    let pid = stack.pid();
    let after = rss_mib(pid).1;
    stack.down(Some(Box::new(reader)));
    format!(
        "`yes` flood, stdout unread for 5 s: pk peak RSS {peak:.1} MiB (target < 64 MiB); then {lines} lines read in 2 s, peak {after:.1} MiB"
    )
}

/// A `pk logs -F` whose stdout nobody reads, on a `yes` flood (pk's own stdout to /dev/null).
fn stalled_follower(pk: &Path) -> String {
    let stack = Stack::up(pk, FLOOD, Stdio::null());
    let mut follower = Command::new(pk);
    follower
        .args(["logs", "-F"])
        .current_dir(stack.dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    #[expect(
        clippy::disallowed_methods,
        reason = "the bench runs the binary it measures"
    )]
    let mut follower = follower.spawn().expect("pk logs -F");
    let peak = peak_over(stack.pid(), Duration::from_secs(5));
    // Now read some: the follower is told how much it missed.
    let mut reader = BufReader::new(follower.stdout.take().expect("stdout"));
    let mut line = String::new();
    let mut shed_lines = None;
    let end = Instant::now() + Duration::from_secs(10);
    while shed_lines.is_none() && Instant::now() < end {
        line.clear();
        if reader.read_line(&mut line).expect("read") == 0 {
            break;
        }
        if line.contains("lines dropped") {
            shed_lines = Some(line.trim().to_owned());
        }
    }
    let _ = follower.kill();
    let _ = follower.wait();
    stack.down(None);
    format!(
        "`yes` flood, a `pk logs -F` unread for 5 s: pk peak RSS {peak:.1} MiB; the follower then saw {:?}",
        shed_lines.unwrap_or_else(|| "no drop line".into())
    )
}

/// One raw request; the first answer line (empty if none within 20 s).
fn request(socket: &Path, line: &[u8], half_close: bool) -> String {
    let Ok(mut s) = UnixStream::connect(socket) else {
        return String::new();
    };
    s.set_read_timeout(Some(Duration::from_secs(20))).ok();
    // The server may answer and close before an oversized line is all written.
    let _ = s.write_all(line);
    if half_close {
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
    let mut answer = String::new();
    let _ = BufReader::new(&s).read_line(&mut answer);
    answer
}

/// Reads a request's answer lines until a final one; the final one.
fn finish(socket: &Path, line: &[u8]) -> String {
    let Ok(mut s) = UnixStream::connect(socket) else {
        return String::new();
    };
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let _ = s.write_all(line);
    for l in BufReader::new(&s).lines() {
        let Ok(l) = l else { break };
        if l.contains("\"event\":\"ok\"") || l.contains("\"event\":\"error\"") {
            return l;
        }
    }
    String::new()
}

/// 50 clients at once: 20 × 5 `ps`, 10 `logs -F` (5 read, 5 never read), 8 `restart web`,
/// 5 malformed, 3 × 10 MiB lines without a newline, 4 half-closed `ps`.
#[expect(
    clippy::too_many_lines,
    reason = "one client kind after the other, in one place"
)]
fn control_load(pk: &Path) -> String {
    let stack = Stack::up(pk, FLOOD, Stdio::null());
    let socket = stack.socket();
    let pid = stack.pid();
    let t = Instant::now();
    let mut clients = Vec::new();
    let spawn = |clients: &mut Vec<std::thread::JoinHandle<(&'static str, bool)>>,
                 kind: &'static str,
                 f: Box<dyn FnOnce() -> bool + Send>| {
        clients.push(std::thread::spawn(move || (kind, f())));
    };
    for _ in 0..20 {
        let socket = socket.clone();
        spawn(
            &mut clients,
            "ps",
            Box::new(move || {
                (0..5).all(|_| {
                    request(&socket, b"{\"v\":1,\"op\":\"ps\"}\n", false)
                        .contains("\"event\":\"ps\"")
                })
            }),
        );
    }
    for i in 0..10 {
        let socket = socket.clone();
        spawn(
            &mut clients,
            "logs -F",
            Box::new(move || {
                let Ok(mut s) = UnixStream::connect(&socket) else {
                    return false;
                };
                let _ = s.write_all(b"{\"v\":1,\"op\":\"logs\",\"follow\":true,\"tail\":10}\n");
                if i % 2 == 0 {
                    // Stalled: holds the connection for 5 s without reading.
                    std::thread::sleep(Duration::from_secs(5));
                    return true;
                }
                s.set_read_timeout(Some(Duration::from_secs(10))).ok();
                let mut buf = vec![0u8; 64 * 1024];
                let mut got = 0;
                let end = Instant::now() + Duration::from_secs(5);
                while Instant::now() < end {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got += n,
                    }
                }
                got > 0
            }),
        );
    }
    for _ in 0..8 {
        let socket = socket.clone();
        spawn(
            &mut clients,
            "restart",
            Box::new(move || {
                finish(
                    &socket,
                    b"{\"v\":1,\"op\":\"restart\",\"services\":[\"web\"]}\n",
                )
                .contains("\"event\":\"ok\"")
            }),
        );
    }
    for _ in 0..5 {
        let socket = socket.clone();
        spawn(
            &mut clients,
            "malformed",
            Box::new(move || request(&socket, b"{nope\n", false).contains("\"event\":\"error\"")),
        );
    }
    for _ in 0..3 {
        let socket = socket.clone();
        spawn(
            &mut clients,
            "10 MiB line",
            Box::new(move || {
                let line = vec![b'x'; 10 * 1024 * 1024];
                request(&socket, &line, false).contains("request longer than")
            }),
        );
    }
    for _ in 0..4 {
        let socket = socket.clone();
        spawn(
            &mut clients,
            "half-closed",
            Box::new(move || {
                request(&socket, b"{\"v\":1,\"op\":\"ps\"}", true).contains("\"event\":\"ps\"")
            }),
        );
    }
    let peak = peak_over(pid, Duration::from_secs(6));
    let mut failed: Vec<&str> = Vec::new();
    let total = clients.len();
    for c in clients {
        let (kind, ok) = c.join().expect("client thread");
        if !ok {
            failed.push(kind);
        }
    }
    let wall = t.elapsed();
    let still_answers =
        request(&socket, b"{\"v\":1,\"op\":\"ps\"}\n", false).contains("\"event\":\"ps\"");
    stack.down(None);
    format!(
        "{total} clients at once: {} answered as expected, failed: {failed:?}; pk peak RSS {peak:.1} MiB; all done in {:.1} s; pk still answers: {still_answers}",
        total - failed.len(),
        wall.as_secs_f64()
    )
}
