//! pk's speed and memory benchmarks, run against the real `pk` binary with real processes.
//!
//! `cargo bench --bench pkbench` (builds the release binary first). Each scenario prints one
//! line; docs/benchmarks.md records a run and the targets. Baselines that need a shell are
//! measured in the same run so numbers are comparable on a busy machine.

mod common;

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn main() {
    let only: Option<String> = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    let pk = common::build_pk();
    let scenarios: [(&str, Scenario); 9] = [
        ("startup", startup_200),
        ("startup-pgroup", startup_200_pgroup),
        ("teardown", teardown_200),
        ("slow-stop", slow_stop_10),
        ("flood", flood_1m),
        ("rss", rss_50),
        ("probes", probes_50),
        ("ps", ps_200),
        ("scaling", scaling),
    ];
    for (name, run) in scenarios {
        // The scaling series takes minutes: only when asked for by name.
        let skip = match only.as_deref() {
            Some(o) => o != name,
            None => name == "scaling",
        };
        if skip {
            continue;
        }
        println!("{name:<15} {}", run(&pk));
    }
}

type Scenario = fn(&Path) -> String;

/// A temp dir with a pk.yaml of `n` services made by `service(i)`.
fn stack(n: usize, extra: &str, service: impl Fn(usize) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut yaml = format!("{extra}services:\n");
    for i in 0..n {
        // Writing into a String cannot fail.
        let _ = write!(yaml, "  s{i}:\n{}", service(i));
    }
    std::fs::write(dir.path().join("pk.yaml"), yaml).expect("write pk.yaml");
    dir
}

fn spawn_pk(pk: &Path, dir: &Path, stdout: Stdio) -> Child {
    spawn_pk_with(pk, dir, stdout, None)
}

#[expect(
    clippy::disallowed_methods,
    reason = "the bench spawns the binary it measures"
)]
fn spawn_pk_with(pk: &Path, dir: &Path, stdout: Stdio, containment: Option<&str>) -> Child {
    let mut cmd = Command::new(pk);
    if let Some(c) = containment {
        cmd.env("PK_CONTAINMENT", c);
    } else {
        cmd.env_remove("PK_CONTAINMENT");
    }
    cmd.args(["up", "--plain", "--color", "never"])
        .current_dir(dir)
        .stdout(stdout)
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn pk")
}

/// Reads pk's plain output until `n` lines contain `needle`; returns the reader for more.
fn wait_for(reader: &mut impl BufRead, needle: &str, n: usize) {
    let mut seen = 0;
    let mut line = String::new();
    while seen < n {
        line.clear();
        assert!(
            reader.read_line(&mut line).expect("read") > 0,
            "pk ended early"
        );
        if line.contains(needle) {
            seen += 1;
        }
    }
}

fn interrupt(child: &Child) {
    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).expect("pid")).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::INT).expect("SIGINT");
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn sleeper(_: usize) -> String {
    "    command: [sleep, \"1000\"]\n".to_string()
}

/// The raw-shell baseline: a bash loop that spawns 200 `sleep`s, then kills them.
#[expect(
    clippy::disallowed_methods,
    reason = "the bench measures a shell baseline"
)]
fn bash_200() -> Duration {
    let t = Instant::now();
    let status = Command::new("bash")
        .args([
            "-c",
            "for i in $(seq 200); do sleep 1000 & done; kill $(jobs -p); wait 2>/dev/null",
        ])
        .status()
        .expect("bash");
    assert!(status.success() || status.code() == Some(143));
    t.elapsed()
}

/// Median of `n` runs (the machine is shared; one run can be unlucky).
fn median(n: usize, mut run: impl FnMut() -> Duration) -> Duration {
    let mut runs: Vec<Duration> = (0..n).map(|_| run()).collect();
    runs.sort();
    runs[n / 2]
}

/// From spawning `pk up` to 200 `started` lines; also pk's own CPU time over that span.
fn startup_once(pk: &Path, dir: &Path, containment: Option<&str>) -> (Duration, Duration) {
    let t = Instant::now();
    let mut child = spawn_pk_with(pk, dir, Stdio::piped(), containment);
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    wait_for(&mut out, "* started (pid", 200);
    let up = t.elapsed();
    let cpu = Duration::from_millis(cpu_ticks(child.id()) * 10);
    interrupt(&child);
    std::io::copy(&mut out, &mut std::io::sink()).expect("drain");
    child.wait().expect("wait");
    (up, cpu)
}

fn startup(pk: &Path, containment: Option<&str>) -> String {
    let dir = stack(200, "", sleeper);
    let baseline = median(3, bash_200);
    let mut cpu = Vec::new();
    let up = median(3, || {
        let (up, c) = startup_once(pk, dir.path(), containment);
        cpu.push(c);
        up
    });
    cpu.sort();
    format!(
        "200 services up in {} (median of 3; pk CPU {}; bash loop of 200 sleeps: {}; ratio {:.2}, target ≤ 1.5)",
        ms(up),
        ms(cpu[1]),
        ms(baseline),
        up.as_secs_f64() / baseline.as_secs_f64()
    )
}

fn startup_200(pk: &Path) -> String {
    startup(pk, None)
}

/// The same with process groups: separates the cost of cgroup leaves from the rest.
fn startup_200_pgroup(pk: &Path) -> String {
    startup(pk, Some("pgroup"))
}

fn teardown_200(pk: &Path) -> String {
    let dir = stack(200, "", sleeper);
    let mut child = spawn_pk(pk, dir.path(), Stdio::piped());
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    wait_for(&mut out, "* started (pid", 200);
    let t = Instant::now();
    interrupt(&child);
    std::io::copy(&mut out, &mut std::io::sink()).expect("drain");
    child.wait().expect("wait");
    format!(
        "200 TERM-responsive services torn down in {} (target ≤ 200 ms)",
        ms(t.elapsed())
    )
}

fn slow_stop_10(pk: &Path) -> String {
    let dir = stack(10, "grace: 5s\n", |_| {
        "    command: [python3, -c, \"import signal,time,sys\\nsignal.signal(signal.SIGTERM, lambda *a: (time.sleep(1), sys.exit(0)))\\nprint('up', flush=True)\\nwhile True: time.sleep(1000)\"]\n".to_string()
    });
    let mut child = spawn_pk(pk, dir.path(), Stdio::piped());
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    wait_for(&mut out, "| up", 10);
    let t = Instant::now();
    interrupt(&child);
    std::io::copy(&mut out, &mut std::io::sink()).expect("drain");
    child.wait().expect("wait");
    format!(
        "10 services needing 1 s each after TERM stopped in {} (target ≤ 1.2 s)",
        ms(t.elapsed())
    )
}

fn flood_1m(pk: &Path) -> String {
    let dir = stack(1, "", |_| "    command: [seq, \"1000000\"]\n".to_string());
    let file = dir.path().join("out.txt");
    let t = Instant::now();
    let mut child = spawn_pk(
        pk,
        dir.path(),
        Stdio::from(std::fs::File::create(&file).expect("out")),
    );
    let status = child.wait().expect("wait");
    let wall = t.elapsed();
    assert!(status.success(), "pk up failed: {status}");
    // Every line, in order, exactly as printed by seq: none lost, none torn.
    let mut expected = 1u64;
    let mut intact = true;
    for line in BufReader::new(std::fs::File::open(&file).expect("open"))
        .lines()
        .map_while(Result::ok)
    {
        if let Some(n) = line.strip_prefix("s0 | ") {
            intact &= n == expected.to_string();
            expected += 1;
        }
    }
    let lines = expected - 1;
    format!(
        "1,000,000 lines through `pk up --plain > file` in {} wall, {lines} lines kept{} (target ≤ 500 ms, none lost)",
        ms(wall),
        if intact {
            ", all in order"
        } else {
            ", SOME OUT OF ORDER OR TORN"
        }
    )
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .expect("VmRSS")
}

/// `Pss:` of `pid` from `/proc/<pid>/smaps_rollup`, in KiB.
fn pss_kib(pid: u32) -> u64 {
    let rollup =
        std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).expect("smaps_rollup");
    rollup
        .lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .expect("Pss")
}

/// pk with 50 idle services: its RSS, PSS and threads (`/proc/<pid>/task`), once all 50
/// started and the start-up has settled.
fn rss_50(pk: &Path) -> String {
    let dir = stack(50, "", sleeper);
    let mut child = spawn_pk(pk, dir.path(), Stdio::piped());
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    wait_for(&mut out, "* started (pid", 50);
    // At rest: let the last reports, snapshots and output settle.
    std::thread::sleep(Duration::from_millis(500));
    let kib = rss_kib(child.id());
    let pss = pss_kib(child.id());
    let threads = std::fs::read_dir(format!("/proc/{}/task", child.id()))
        .expect("task")
        .count();
    interrupt(&child);
    std::io::copy(&mut out, &mut std::io::sink()).expect("drain");
    child.wait().expect("wait");
    #[expect(clippy::cast_precision_loss, reason = "a size in MiB for display")]
    let (rss, pss) = (kib as f64 / 1024.0, pss as f64 / 1024.0);
    format!(
        "pk with 50 idle services: RSS {rss:.1} MiB (target ≤ 15 MiB), PSS {pss:.1} MiB (target ≤ 5 MiB), {threads} threads (target ≤ 4)"
    )
}

/// Wall time of `pk ps --json` (a whole process: start, connect, answer, print) against a
/// stack of 200 running services; 20 calls.
fn ps_200(pk: &Path) -> String {
    let dir = stack(200, "", sleeper);
    let mut child = spawn_pk(pk, dir.path(), Stdio::piped());
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    wait_for(&mut out, "* started (pid", 200);
    let mut times: Vec<Duration> = (0..20)
        .map(|_| {
            let t = Instant::now();
            #[expect(
                clippy::disallowed_methods,
                reason = "the bench runs the client it measures"
            )]
            let ps = Command::new(pk)
                .args(["ps", "--json"])
                .current_dir(dir.path())
                .stderr(Stdio::null())
                .output()
                .expect("pk ps");
            let took = t.elapsed();
            assert!(ps.status.success(), "pk ps failed");
            assert_eq!(
                String::from_utf8_lossy(&ps.stdout)
                    .matches("\"state\": \"running\"")
                    .count(),
                200,
                "every service in the answer"
            );
            took
        })
        .collect();
    interrupt(&child);
    std::io::copy(&mut out, &mut std::io::sink()).expect("drain");
    child.wait().expect("wait");
    times.sort();
    format!(
        "`pk ps --json` on 200 services: median {}, max {} over 20 calls (target ≤ 50 ms)",
        ms(times[10]),
        ms(times[19])
    )
}

/// CPU time pk spends probing 50 services every 100 ms, over a fixed wall window.
fn probes_50(pk: &Path) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    let port = listener.local_addr().expect("addr").port();
    let accept = std::thread::spawn(move || {
        // Accepts and drops every probe connection for as long as the bench runs.
        for conn in listener.incoming() {
            drop(conn);
        }
    });
    let dir = stack(50, "", |_| {
        format!(
            "    command: [sleep, \"1000\"]\n    alive: {{ tcp: \"127.0.0.1:{port}\", interval: 100ms }}\n"
        )
    });
    let mut child = spawn_pk(pk, dir.path(), Stdio::piped());
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    wait_for(&mut out, "* started (pid", 50);
    let window = Duration::from_secs(5);
    let before = cpu_ticks(child.id());
    let t = Instant::now();
    std::thread::sleep(window);
    let used = cpu_ticks(child.id()) - before;
    let wall = t.elapsed();
    interrupt(&child);
    std::io::copy(&mut out, &mut std::io::sink()).expect("drain");
    child.wait().expect("wait");
    drop(accept);
    #[expect(clippy::cast_precision_loss, reason = "a percentage for display")]
    let pct = used as f64 / 100.0 / wall.as_secs_f64() * 100.0;
    format!("probing 50 services every 100 ms: {pct:.1}% of one core (target < 5%)")
}

/// utime + stime of a process, in clock ticks (100 per second here).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let after_comm = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

/// The load average, printed with figures that move with it.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// One run of the bash loop baseline: (all `n` sleeps spawned, `kill $(jobs -p); wait`).
fn bash_loop(n: usize) -> (Duration, Duration) {
    bash_baseline(&format!(
        "for i in $(seq {n}); do sleep 1000 & done; echo up; read x; kill $(jobs -p); wait 2>/dev/null; echo down"
    ))
}

/// Runs a bash baseline `script` that prints `up`, reads a line, tears down and prints
/// `down`: (start → `up`, the line → `down`).
#[expect(
    clippy::disallowed_methods,
    reason = "the bench measures a shell baseline"
)]
fn bash_baseline(script: &str) -> (Duration, Duration) {
    use std::io::Write as _;
    let t = Instant::now();
    let mut bash = Command::new("bash")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("bash");
    let mut out = BufReader::new(bash.stdout.take().expect("stdout"));
    wait_for(&mut out, "up", 1);
    let up = t.elapsed();
    let t = Instant::now();
    bash.stdin
        .take()
        .expect("stdin")
        .write_all(b"\n")
        .expect("go on");
    wait_for(&mut out, "down", 1);
    let down = t.elapsed();
    bash.wait().expect("wait");
    (up, down)
}

/// A directory for a private cgroup below this process's own cgroup (`None` without a
/// writable cgroup2): the first cgroup2 mount of `/proc/self/mountinfo` that shows it.
fn own_cgroup_child(name: &str) -> Option<std::path::PathBuf> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let own = own.lines().find_map(|l| l.strip_prefix("0::"))?.to_owned();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        if !right.starts_with("cgroup2 ") {
            return None;
        }
        let fields: Vec<&str> = left.split(' ').collect();
        let (root, mount) = (*fields.get(3)?, *fields.get(4)?);
        let relative = own.strip_prefix(root.trim_end_matches('/'))?;
        let dir = Path::new(mount)
            .join(relative.trim_start_matches('/'))
            .join(name);
        std::fs::create_dir(&dir).ok().map(|()| dir)
    })
}

/// One run of the bash loop with the containment's kernel work and nothing else: each `sleep`
/// in a cgroup leaf of its own (one `mkdir` of them all, then each subshell writes its pid to
/// its leaf's `cgroup.procs` before `exec`), and after `kill; wait` one `rmdir` of every
/// leaf. The floor under any orchestrator with a cgroup per service.
fn bash_cgroup_loop(n: usize, cgroup: &Path) -> (Duration, Duration) {
    let cg = cgroup.display();
    bash_baseline(&format!(
        "mkdir $(seq -f '{cg}/l%g' {n}); for i in $(seq {n}); do {{ echo $BASHPID > {cg}/l$i/cgroup.procs; exec sleep 1000; }} & done; echo up; read x; kill $(jobs -p); wait 2>/dev/null; rmdir {cg}/l*; echo down"
    ))
}

/// pk's own CPU ticks plus those of its helper processes (its direct children running the
/// same binary: the spawner), which do pk's work outside its address space.
fn pk_cpu_ticks(pid: u32) -> u64 {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
    let mut ticks = cpu_ticks(pid);
    for child in children(pid) {
        if exe.is_some() && std::fs::read_link(format!("/proc/{child}/exe")).ok() == exe {
            ticks += cpu_ticks(child);
        }
    }
    ticks
}

/// The direct children of `pid` (of every thread).
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            if let Ok(list) = std::fs::read_to_string(task.path().join("children")) {
                out.extend(
                    list.split_whitespace()
                        .filter_map(|p| p.parse::<u32>().ok()),
                );
            }
        }
    }
    out
}

struct PkRun {
    up: Duration,
    down: Duration,
    cpu: Duration,
    rss_kib: u64,
}

/// One `pk up` of `n` sleeps: up (spawn → `n` started lines), pk's CPU and RSS at that point,
/// teardown (SIGINT → pk exited).
fn pk_scaling_once(pk: &Path, dir: &Path, n: usize) -> PkRun {
    let t = Instant::now();
    let mut child = spawn_pk(pk, dir, Stdio::piped());
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    wait_for(&mut out, "* started (pid", n);
    let up = t.elapsed();
    let cpu = Duration::from_millis(pk_cpu_ticks(child.id()) * 10);
    let rss_kib = rss_kib(child.id());
    let t = Instant::now();
    interrupt(&child);
    std::io::copy(&mut out, &mut std::io::sink()).expect("drain");
    child.wait().expect("wait");
    PkRun {
        up,
        down: t.elapsed(),
        cpu,
        rss_kib,
    }
}

fn median_of<T: Copy + Ord>(mut v: Vec<T>) -> T {
    v.sort_unstable();
    v[v.len() / 2]
}

/// Up and teardown of N = 200, 1,000, 2,000 `sleep`s against the bash loop, pk's CPU per
/// service and its RSS; each the median of 3 (runs alternate bash and pk).
fn scaling(pk: &Path) -> String {
    let mut report = String::from(
        "(N: up pk/bash; teardown pk/bash; pk CPU per service; pk RSS; load; then the same loop with a cgroup leaf per process)",
    );
    let floor = own_cgroup_child(&format!("pkbench-floor-{}", std::process::id()));
    for n in [200, 1000, 2000] {
        let dir = stack(n, "", sleeper);
        let mut bash = Vec::new();
        let mut runs = Vec::new();
        let mut contained = Vec::new();
        for _ in 0..3 {
            bash.push(bash_loop(n));
            runs.push(pk_scaling_once(pk, dir.path(), n));
            if let Some(cg) = &floor {
                contained.push(bash_cgroup_loop(n, cg));
            }
        }
        let bash_up = median_of(bash.iter().map(|b| b.0).collect());
        let bash_down = median_of(bash.iter().map(|b| b.1).collect());
        let up = median_of(runs.iter().map(|r| r.up).collect());
        let down = median_of(runs.iter().map(|r| r.down).collect());
        let cpu = median_of(runs.iter().map(|r| r.cpu).collect());
        let rss = median_of(runs.iter().map(|r| r.rss_kib).collect());
        #[expect(clippy::cast_precision_loss, reason = "figures for display")]
        let line = format!(
            "\n  N={n:<5} up {} / {} = {:.2}× (target ≤ 1.3); teardown {} / {} = {:.2}× (target ≤ 1.5); CPU {:.1} µs/service; RSS {:.1} MiB; load {}",
            ms(up),
            ms(bash_up),
            up.as_secs_f64() / bash_up.as_secs_f64(),
            ms(down),
            ms(bash_down),
            down.as_secs_f64() / bash_down.as_secs_f64(),
            cpu.as_secs_f64() * 1e6 / n as f64,
            rss as f64 / 1024.0,
            load(),
        );
        report.push_str(&line);
        if !contained.is_empty() {
            let up_c = median_of(contained.iter().map(|b| b.0).collect());
            let down_c = median_of(contained.iter().map(|b| b.1).collect());
            let _ = write!(
                report,
                "\n         bash with a cgroup leaf per process: up {} ({:.2}× the loop), teardown {} ({:.2}×)",
                ms(up_c),
                up_c.as_secs_f64() / bash_up.as_secs_f64(),
                ms(down_c),
                down_c.as_secs_f64() / bash_down.as_secs_f64(),
            );
        }
    }
    if let Some(cg) = floor {
        // Every leaf was removed by the loop; a failure leaves the cgroup (reported).
        if let Err(e) = std::fs::remove_dir(&cg) {
            let _ = write!(report, "\n  cannot remove {}: {e}", cg.display());
        }
    }
    report
}
