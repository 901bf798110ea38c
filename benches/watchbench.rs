//! Watch-mode benchmarks against the real `pk` binary: latency from a file write to the new
//! process running, and the inotify watches a huge ignored tree costs (none).
//!
//! `cargo bench --bench watchbench [latency|ignored]` (builds the release binary first);
//! docs/benchmarks.md records a run. Watches are counted from the kernel's view
//! (`/proc/<pk>/fdinfo/<inotify fd>`, one `inotify wd:` line per watch), not from pk's word.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn main() {
    let only: Option<String> = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    let pk = common::build_pk();
    let scenarios: [(&str, Scenario); 3] = [
        ("latency", |pk| latency(pk, Duration::from_millis(100))),
        ("latency", |pk| latency(pk, Duration::from_millis(200))),
        ("ignored", ignored_100k),
    ];
    for (name, run) in scenarios {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        println!("{name:<10} {}", run(&pk));
    }
}

type Scenario = fn(&Path) -> String;

/// A running `pk up --watch --plain`; its output lines arrive with the time they were read.
struct Pk {
    child: Child,
    lines: mpsc::Receiver<(Instant, String)>,
}

impl Pk {
    #[expect(
        clippy::disallowed_methods,
        reason = "the bench spawns the binary it measures"
    )]
    fn up(pk: &Path, dir: &Path) -> Pk {
        let mut child = Command::new(pk)
            .args(["up", "--watch", "--plain", "--color", "never"])
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn pk");
        let out = BufReader::new(child.stdout.take().expect("stdout"));
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if tx.send((Instant::now(), line)).is_err() {
                    return;
                }
            }
        });
        Pk { child, lines }
    }

    /// The next line containing `needle`, and when it was read.
    fn wait_for(&self, needle: &str) -> (Instant, String) {
        loop {
            let (at, line) = self
                .lines
                .recv_timeout(Duration::from_secs(60))
                .expect("pk went quiet");
            if line.contains(needle) {
                return (at, line);
            }
        }
    }
}

impl Drop for Pk {
    fn drop(&mut self) {
        let pid = rustix::process::Pid::from_raw(i32::try_from(self.child.id()).expect("pid"))
            .expect("pid");
        // It may have exited already.
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let _ = self.child.wait();
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Write → `api * started (pid …)` of the new run, 20 times; the restart waits `debounce`
/// by design, so the target is debounce + 50 ms.
fn latency(pk: &Path, debounce: Duration) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("src")).expect("mkdir");
    std::fs::write(
        dir.path().join("pk.yaml"),
        format!(
            "services:\n  api:\n    command: [sh, -c, 'exec sleep 1000']\n    \
             watch: {{ paths: [src], debounce: {}ms }}\n",
            debounce.as_millis()
        ),
    )
    .expect("write pk.yaml");
    let pk = Pk::up(pk, dir.path());
    pk.wait_for("watching api");
    pk.wait_for("api * started (pid");
    let mut samples = Vec::new();
    for i in 0..20 {
        let t = Instant::now();
        std::fs::write(dir.path().join("src/main.rs"), i.to_string()).expect("write");
        let (at, _) = pk.wait_for("api * started (pid");
        samples.push(at - t);
    }
    samples.sort();
    let median = samples[samples.len() / 2];
    let p95 = samples[samples.len() * 95 / 100];
    format!(
        "debounce {}: write → new process running: min {}, median {}, p95 {}, max {} \
         (over the debounce: median {}; target ≤ 50 ms)",
        ms(debounce),
        ms(samples[0]),
        ms(median),
        ms(p95),
        ms(samples[samples.len() - 1]),
        ms(median.saturating_sub(debounce)),
    )
}

/// Inotify watches held by `pid`, from the kernel's fdinfo.
fn kernel_watches(pid: u32) -> usize {
    let mut n = 0;
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fds")
        .flatten()
    {
        let is_inotify =
            std::fs::read_link(fd.path()).is_ok_and(|t| t.to_string_lossy().contains("inotify"));
        if is_inotify {
            let info = std::fs::read_to_string(format!(
                "/proc/{pid}/fdinfo/{}",
                fd.file_name().to_string_lossy()
            ))
            .expect("fdinfo");
            n += info
                .lines()
                .filter(|l| l.starts_with("inotify wd:"))
                .count();
        }
    }
    n
}

/// A project with `src/` (3 dirs) and `node_modules/` of 1,000 dirs × 100 files, watched
/// with and without `node_modules` ignored.
fn ignored_100k(pk: &Path) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    for d in ["src/a", "src/b"] {
        std::fs::create_dir_all(dir.path().join(d)).expect("mkdir");
    }
    for i in 0..1000 {
        let d = dir.path().join(format!("node_modules/pkg{i}"));
        std::fs::create_dir_all(&d).expect("mkdir");
        for j in 0..100 {
            std::fs::write(d.join(format!("f{j}.js")), "x").expect("write");
        }
    }
    let mut results = Vec::new();
    for ignore in ["[node_modules]", "[]"] {
        std::fs::write(
            dir.path().join("pk.yaml"),
            format!(
                "services:\n  api:\n    command: [sleep, '1000']\n    \
                 watch: {{ paths: ['.'], ignore: {ignore} }}\n"
            ),
        )
        .expect("write pk.yaml");
        let t = Instant::now();
        let pk = Pk::up(pk, dir.path());
        let (at, line) = pk.wait_for("watching api");
        results.push(format!(
            "ignore: {ignore} → {} inotify watches (pk: `{}`), watcher ready in {}",
            kernel_watches(pk.child.id()),
            line.split(" * ").nth(1).unwrap_or(&line),
            ms(at - t)
        ));
    }
    format!("100,000 files in node_modules/: {}", results.join("; "))
}
