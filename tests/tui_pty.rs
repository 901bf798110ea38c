//! End-to-end tests of the dashboard: the real `pk up` on a pseudo-terminal, its screen parsed
//! with vt100. Every wait is a condition polled against a deadline; a guard kills pk (TERM,
//! INT ×2, then KILL) if a test fails half-way, so nothing is left behind.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portable_pty::{Child, CommandBuilder, PtySize, native_pty_system};
use rustix::process::{Pid, Signal, kill_process};

const DEADLINE: Duration = Duration::from_secs(10);
const ROWS: u16 = 30;
const COLS: u16 = 120;

/// `pk up` running on a pseudo-terminal.
struct Pk {
    child: Box<dyn Child + Send + Sync>,
    pid: u32,
    screen: Arc<Mutex<vt100::Parser>>,
    raw: Arc<Mutex<Vec<u8>>>,
    input: Box<dyn Write + Send>,
}

impl Pk {
    fn start(dir: &Path) -> Pk {
        Pk::start_with(dir, &["up"])
    }

    /// `pk ARGS…` on a pseudo-terminal.
    fn start_with(dir: &Path, args: &[&str]) -> Pk {
        let pty = native_pty_system()
            .openpty(PtySize {
                rows: ROWS,
                cols: COLS,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("openpty");
        let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_pk"));
        cmd.args(args);
        cmd.cwd(dir);
        cmd.env("TERM", "xterm-256color");
        cmd.env_remove("PK_FILE");
        let child = pty.slave.spawn_command(cmd).expect("spawn pk on the pty");
        drop(pty.slave);
        let pid = child.process_id().expect("pid");
        let screen = Arc::new(Mutex::new(vt100::Parser::new(ROWS, COLS, 0)));
        let raw = Arc::new(Mutex::new(Vec::new()));
        let mut reader = pty.master.try_clone_reader().expect("reader");
        let (s, r) = (Arc::clone(&screen), Arc::clone(&raw));
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                s.lock().unwrap().process(&buf[..n]);
                let mut raw = r.lock().unwrap();
                // Keep only a tail: enough to find the terminal-restoring sequences.
                if raw.len() > 1 << 20 {
                    raw.drain(..1 << 19);
                }
                raw.extend_from_slice(&buf[..n]);
            }
        });
        let input = pty.master.take_writer().expect("writer");
        // The master must stay open while pk runs; leak it into the reader's lifetime.
        std::mem::forget(pty.master);
        Pk {
            child,
            pid,
            screen,
            raw,
            input,
        }
    }

    fn contents(&self) -> String {
        self.screen.lock().unwrap().screen().contents()
    }

    /// Polls the screen until `cond` holds; panics with the screen after `DEADLINE`.
    fn wait_for(&self, what: &str, cond: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let text = self.contents();
            if cond(&text) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; screen:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.input.write_all(bytes).expect("write to pty");
        self.input.flush().expect("flush pty");
    }

    /// Waits for pk to exit; its exit code.
    fn wait_exit(&mut self, within: Duration) -> Option<u32> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status.exit_code());
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn raw_output(&self) -> Vec<u8> {
        self.raw.lock().unwrap().clone()
    }
}

impl Drop for Pk {
    fn drop(&mut self) {
        let pid = Pid::from_raw(i32::try_from(self.pid).unwrap_or(i32::MAX)).expect("pid");
        for signal in [Signal::TERM, Signal::INT, Signal::INT, Signal::KILL] {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            // The process may be gone already.
            let _ = kill_process(pid, signal);
            let _ = self.wait_exit(Duration::from_secs(3));
        }
    }
}

/// The whitespace-separated cells of the table row of `service`.
fn row<'a>(screen: &'a str, service: &str) -> Vec<&'a str> {
    screen
        .lines()
        .find(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            cells.first() == Some(&service) || cells.get(1) == Some(&service)
        })
        .map(|l| l.split_whitespace().filter(|c| *c != "▶").collect())
        .unwrap_or_default()
}

fn alive(pid: &str) -> bool {
    Path::new("/proc").join(pid).exists()
}

fn stack(yaml: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("pk.yaml"), yaml).expect("write pk.yaml");
    dir
}

#[test]
fn dashboard_restarts_a_service_and_ctrl_c_restores_the_terminal() {
    let dir = stack(
        "name: e2e\ngrace: 2s\nservices:\n  \
         ticker:\n    command: sh -c 'i=0; while :; do i=$$((i+1)); echo tick-$$i; sleep 0.2; done'\n  \
         idle:\n    command: [sleep, '600']\n",
    );
    let mut pk = Pk::start(dir.path());
    let screen = pk.wait_for("both services running with output", |s| {
        row(s, "ticker").get(2) == Some(&"running")
            && row(s, "idle").get(2) == Some(&"running")
            && s.contains("tick-")
    });
    assert!(pk.screen.lock().unwrap().screen().alternate_screen());
    assert!(
        screen.contains("e2e"),
        "the status bar names the stack:\n{screen}"
    );
    let before = row(&screen, "ticker");
    let old_pid = before[3].to_owned();
    assert_eq!(before[5], "0", "no restarts yet: {before:?}");

    pk.send(b"r");
    let screen = pk.wait_for("ticker restarted", |s| {
        let r = row(s, "ticker");
        r.get(2) == Some(&"running") && r.get(3).is_some_and(|p| *p != old_pid)
    });
    let after = row(&screen, "ticker");
    assert!(
        after.join(" ").contains("killed by"),
        "the last exit shows the restart's stop: {after:?}"
    );
    let idle_pid = row(&screen, "idle")[3].to_owned();
    let ticker_pid = after[3].to_owned();

    pk.send(b"\x03");
    let code = pk.wait_exit(DEADLINE);
    assert!(
        code.is_some(),
        "pk exits after Ctrl-C; screen:\n{}",
        pk.contents()
    );
    // pk has exited; its last bytes may still be on their way through the pty reader.
    let deadline = Instant::now() + DEADLINE;
    while !pk.raw_output().windows(8).any(|w| w == b"\x1b[?1049l") {
        assert!(Instant::now() < deadline, "the alternate screen was left");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!pk.screen.lock().unwrap().screen().alternate_screen());
    assert!(
        !alive(&idle_pid) && !alive(&ticker_pid),
        "no service outlives pk"
    );
}

#[test]
fn a_flood_does_not_freeze_the_dashboard() {
    let dir = stack(
        "name: flood\ngrace: 2s\nservices:\n  \
         flood:\n    command: [seq, '1', '1000000000']\n  \
         ticker:\n    command: sh -c 'i=0; while :; do i=$$((i+1)); echo tick-$$i; sleep 0.1; done'\n",
    );
    let mut pk = Pk::start(dir.path());
    pk.wait_for("the flood on screen", |s| {
        row(s, "flood").get(2) == Some(&"running")
            && s.lines()
                .any(|l| l.trim().parse::<u64>().is_ok_and(|n| n > 1000))
    });
    // Input still works: select the ticker and watch its output move on.
    let started = Instant::now();
    pk.send(b"j");
    pk.wait_for("the ticker selected", |s| s.contains("▶ ticker"));
    let latency = started.elapsed();
    let tick = |s: &str| -> u64 {
        s.lines()
            .filter_map(|l| l.trim().strip_prefix("tick-")?.parse().ok())
            .max()
            .unwrap_or(0)
    };
    let first = tick(&pk.wait_for("ticker output", |s| tick(s) > 0));
    pk.wait_for("newer ticker output", |s| tick(s) >= first + 3);
    eprintln!("key-to-screen latency under flood: {latency:?}");

    pk.send(b"\x03");
    assert!(
        pk.wait_exit(DEADLINE).is_some(),
        "Ctrl-C ends pk under a flood; screen:\n{}",
        pk.contents()
    );
    assert!(!pk.screen.lock().unwrap().screen().alternate_screen());
}

/// `pk ARGS…` to completion (not on the pty); stdout and the exit code.
fn pk(dir: &Path, args: &[&str]) -> (String, i32) {
    #[expect(clippy::disallowed_methods, reason = "runs the binary under test")]
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pk"))
        .args(args)
        .current_dir(dir)
        .env_remove("PK_FILE")
        .output()
        .expect("run pk");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

/// Stops a detached stack however the test ends.
struct Down<'a>(&'a Path);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = pk(self.0, &["down", "--grace", "0s"]);
    }
}

#[test]
fn attach_shows_a_detached_stack_controls_it_and_quitting_leaves_it_running() {
    let dir = stack(
        r#"
grace: 300ms
services:
  db:
    command: "echo db ready; exec sleep 1000"
  api:
    command: "echo api ready; exec sleep 1000"
    depends_on: [db]
"#,
    );
    let _down = Down(dir.path());
    let (out, code) = pk(dir.path(), &["up", "-d"]);
    assert_eq!(code, 0, "{out}");
    let mut attached = Pk::start_with(dir.path(), &["attach"]);
    let screen = attached.wait_for("both services running", |s| {
        row(s, "db").contains(&"running") && row(s, "api").contains(&"running")
    });
    let before = row(&screen, "db")[3].to_string();
    // `r` restarts the selected service (db, the first row): its pid changes.
    attached.send(b"r");
    attached.wait_for("db with a new pid", |s| {
        let cells = row(s, "db");
        cells.contains(&"running") && cells.get(3).is_some_and(|pid| *pid != before)
    });
    attached.send(b"q");
    assert_eq!(attached.wait_exit(DEADLINE), Some(0), "attach ends on q");
    let (ps, code) = pk(dir.path(), &["ps"]);
    assert_eq!(code, 0, "the stack is still running: {ps}");
    assert!(
        ps.lines()
            .any(|l| l.starts_with("api") && l.contains("running")),
        "{ps}"
    );
    let (_, code) = pk(dir.path(), &["down"]);
    assert_eq!(code, 0);
}

/// Waits until the raw bytes pk wrote contain `needle`.
fn wait_raw(pk: &Pk, what: &str, needle: &[u8]) -> Vec<u8> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let raw = pk.raw_output();
        if raw.windows(needle.len()).any(|w| w == needle) {
            return raw;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; raw: {:?}",
            String::from_utf8_lossy(&raw)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn plain_output_and_pk_logs_on_a_terminal_keep_colours_and_drop_other_escapes() {
    // OSC 52 (set the clipboard), OSC 0 (window title), clear screen, then a red word.
    let dir = stack(
        r"services:
  evil:
    command: |
      printf '\033]52;c;cm0gLXJmIH4=\007\033]0;pwned\007\033[2J\033[31mred\033[0m done\n'; exec sleep 600
",
    );
    let up = Pk::start_with(dir.path(), &["up", "--plain"]);
    let raw = wait_raw(&up, "the service's line", b"done");
    assert!(
        contains(&raw, b"\x1b[31mred\x1b[0m done"),
        "colours are kept"
    );
    for bad in [&b"\x1b]52"[..], b"\x1b]0;pwned", b"\x1b[2J"] {
        assert!(
            !contains(&raw, bad),
            "{:?} reached the terminal: {:?}",
            String::from_utf8_lossy(bad),
            String::from_utf8_lossy(&raw)
        );
    }
    let mut logs = Pk::start_with(dir.path(), &["logs", "evil"]);
    assert_eq!(logs.wait_exit(DEADLINE), Some(0));
    let raw = wait_raw(&logs, "pk logs", b"done");
    assert!(
        contains(&raw, b"\x1b[31mred\x1b[0m done"),
        "colours are kept"
    );
    for bad in [&b"\x1b]52"[..], b"\x1b]0;pwned", b"\x1b[2J"] {
        assert!(
            !contains(&raw, bad),
            "pk logs wrote {:?}",
            String::from_utf8_lossy(bad)
        );
    }
}
