//! The cost and the speed of pk's crash guard, against the real release binary:
//! - `pss`: PSS of pk plus its guard with 50 idle services (target: ≤ 8 MiB together);
//! - `kill9` / `kill9-pgroup`: time from `kill -9` on pk to an empty tree (every process of the
//!   stack gone, and no run cgroup, socket or run record left), median of 5.
//!
//! `cargo bench --bench guardbench [-- pss|kill9|kill9-pgroup]`; docs/benchmarks.md records a
//! run.

mod common;

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn main() {
    let only: Option<String> = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    let pk = common::build_pk();
    let scenarios: [(&str, Scenario); 3] = [
        ("pss", pss_50),
        ("kill9", |pk| kill9_median(pk, None)),
        ("kill9-pgroup", |pk| kill9_median(pk, Some("pgroup"))),
    ];
    for (name, run) in scenarios {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        println!("{name:<13} {}", run(&pk));
    }
}

type Scenario = fn(&Path) -> String;

/// A stack: `idle` sleeping services, and one that leaves a background grandchild, a setsid
/// child and a double-forked daemon (each writes its pid into a file).
fn stack(idle: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut yaml = String::from(
        "services:\n  tree:\n    command: |\n      sleep 1001 &\n      echo $$! > bg.pid\n      \
         setsid sh -c 'echo $$$$ > setsid.pid.tmp; mv setsid.pid.tmp setsid.pid; exec sleep 1002' &\n      \
         python3 -c 'import os,time\n      if os.fork(): os._exit(0)\n      os.setsid()\n      \
         if os.fork(): os._exit(0)\n      open(\"d.tmp\",\"w\").write(str(os.getpid())); os.rename(\"d.tmp\",\"daemon.pid\"); time.sleep(1000)'\n      \
         while [ ! -f setsid.pid ] || [ ! -f daemon.pid ]; do sleep 0.01; done\n      echo spawned\n      exec sleep 1003\n",
    );
    for i in 0..idle {
        // Writing into a String cannot fail.
        let _ = write!(yaml, "  s{i}:\n    command: [sleep, \"1000\"]\n");
    }
    std::fs::write(dir.path().join("pk.yaml"), yaml).expect("write pk.yaml");
    dir
}

#[expect(
    clippy::disallowed_methods,
    reason = "the bench spawns the binary it measures"
)]
fn spawn_pk(pk: &Path, dir: &Path, containment: Option<&str>) -> Child {
    let mut cmd = Command::new(pk);
    match containment {
        Some(c) => cmd.env("PK_CONTAINMENT", c),
        None => cmd.env_remove("PK_CONTAINMENT"),
    };
    cmd.args(["up", "--plain", "--color", "never"])
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn pk")
}

/// Reads pk's output until `n` lines contain `needle`; returns every line read.
fn wait_for(reader: &mut impl BufRead, needle: &str, n: usize) -> Vec<String> {
    let mut seen = 0;
    let mut lines = Vec::new();
    while seen < n {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).expect("read") > 0,
            "pk ended early"
        );
        if line.contains(needle) {
            seen += 1;
        }
        lines.push(line);
    }
    lines
}

fn pid_of(n: u32) -> rustix::process::Pid {
    rustix::process::Pid::from_raw(i32::try_from(n).expect("pid")).expect("pid")
}

/// The guard: pk's child named `pk-guard`.
fn guard_of(pk: u32) -> u32 {
    child_named(pk, "pk-guard").expect("pk has a guard")
}

/// pk's first child whose `comm` is `name`.
fn child_named(pk: u32, name: &str) -> Option<u32> {
    std::fs::read_dir(format!("/proc/{pk}/task"))
        .expect("pk's tasks")
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| {
            c.split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok())
                .collect::<Vec<_>>()
        })
        .find(|c| {
            std::fs::read_to_string(format!("/proc/{c}/comm")).is_ok_and(|n| n.trim() == name)
        })
}

/// `Pss:` of `/proc/<pid>/smaps_rollup`, in KiB.
fn pss_kib(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).expect("smaps_rollup");
    text.lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a Pss line")
}

#[expect(clippy::cast_precision_loss, reason = "sizes in MiB for display")]
fn pss_50(pk: &Path) -> String {
    let dir = stack(49);
    let mut child = spawn_pk(pk, dir.path(), None);
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    wait_for(&mut out, "* started (pid", 50);
    wait_for(&mut out, "| spawned", 1);
    let guard = guard_of(child.id());
    // The spawner process (docs/decisions/0005) is pk's other helper: a child still called `pk`.
    let spawner_kib = child_named(child.id(), "pk").map_or(0, pss_kib);
    let (pk_kib, guard_kib) = (pss_kib(child.id()) + spawner_kib, pss_kib(guard));
    rustix::process::kill_process(pid_of(child.id()), rustix::process::Signal::INT).expect("INT");
    std::io::copy(&mut out, &mut std::io::sink()).expect("drain");
    child.wait().expect("wait");
    let mib = |k: u64| k as f64 / 1024.0;
    format!(
        "PSS with 50 idle services: pk {:.2} MiB (of which its spawner {:.2}) + guard {:.2} MiB = {:.2} MiB (target ≤ 8 MiB)",
        mib(pk_kib),
        mib(spawner_kib),
        mib(guard_kib),
        mib(pk_kib + guard_kib)
    )
}

fn is_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

/// One run: 10 idle services and the escaping tree; `kill -9` on pk; the time until every
/// process of the stack is gone and no cgroup, socket or run record is left.
fn kill9_once(pk: &Path, containment: Option<&str>) -> Duration {
    let dir = stack(10);
    let mut child = spawn_pk(pk, dir.path(), containment);
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut lines = wait_for(&mut out, "* started (pid", 11);
    lines.extend(wait_for(&mut out, "| spawned", 1));
    let cgroup: Option<PathBuf> = lines.iter().find_map(|l| {
        l.split_once("containment: cgroup v2 (")
            .and_then(|(_, r)| r.trim_end().strip_suffix(')'))
            .map(PathBuf::from)
    });
    let mut pids: Vec<u32> = lines
        .iter()
        .filter_map(|l| l.split_once("started (pid ").map(|(_, r)| r))
        .filter_map(|r| r.trim_end().trim_end_matches(')').parse().ok())
        .collect();
    for file in ["bg.pid", "setsid.pid", "daemon.pid"] {
        let text = std::fs::read_to_string(dir.path().join(file)).expect("a pid file");
        pids.push(text.trim().parse().expect("a pid"));
    }
    pids.push(guard_of(child.id()));
    let config = std::fs::canonicalize(dir.path().join("pk.yaml")).expect("config");
    let files = [
        pk::control::socket_path(&config),
        pk::control::record_path(&config),
    ];
    let t = Instant::now();
    rustix::process::kill_process(pid_of(child.id()), rustix::process::Signal::KILL).expect("KILL");
    let deadline = t + Duration::from_secs(10);
    loop {
        let empty = !pids.iter().any(|&p| is_alive(p))
            && !files.iter().any(|f| f.exists())
            && cgroup.as_ref().is_none_or(|c| !c.exists());
        if empty {
            break;
        }
        if Instant::now() > deadline {
            for &p in &pids {
                let _ = rustix::process::kill_process(pid_of(p), rustix::process::Signal::KILL);
            }
            panic!("the tree was not empty 10 s after kill -9");
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let took = t.elapsed();
    child.wait().expect("wait");
    took
}

fn kill9_median(pk: &Path, containment: Option<&str>) -> String {
    let mut times: Vec<Duration> = (0..5).map(|_| kill9_once(pk, containment)).collect();
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "kill -9 on pk → empty tree (12 services, setsid child, double-forked daemon): median {:.1} ms, min {:.1} ms, max {:.1} ms over 5 (target ≤ 1 s)",
        ms(times[2]),
        ms(times[0]),
        ms(times[4])
    )
}
