//! The dashboard's benchmarks: pk's CPU use and key-to-screen latency while a service prints
//! as fast as it can (release `pk up` on a pseudo-terminal, screen parsed with vt100), and the
//! memory the log history takes for 1,000,000 lines.
//!
//! `cargo bench --bench tui` (builds the release binary first); `cargo bench --bench tui --
//! history` runs one scenario. docs/benchmarks.md records a run.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pk::logs::Stream;
use pk::ui::tui::{DEFAULT_HISTORY_BYTES, LogStore};
use portable_pty::{CommandBuilder, PtySize, native_pty_system};

fn main() {
    let only: Option<String> = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    if only.as_deref().is_none_or(|o| o == "history") {
        history();
    }
    if only.as_deref().is_none_or(|o| o == "ingest") {
        ingest();
    }
    if only.as_deref().is_none_or(|o| o == "flood") {
        flood(&common::build_pk());
    }
}

fn vm_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// 1,000,000 typical log lines (about 70 bytes, one coloured word) into one service's history:
/// unbounded, and with the default budget.
fn history() {
    const LINES: u32 = 1_000_000;
    let line = |i: u32| {
        format!(
            "2026-01-01T12:00:00.{:06}Z \x1b[32mINFO\x1b[0m handled request id={i} status=200\n",
            i % 1_000_000
        )
    };
    for (label, budget) in [
        ("unbounded", usize::MAX),
        ("default budget", DEFAULT_HISTORY_BYTES),
    ] {
        let rss_before = vm_rss_kib();
        let started = Instant::now();
        let mut store = LogStore::new(1, budget);
        let mut chunk = Vec::with_capacity(64 * 1024);
        let mut raw = 0usize;
        for i in 0..LINES {
            chunk.extend_from_slice(line(i).as_bytes());
            if chunk.len() > 60 * 1024 || i + 1 == LINES {
                raw += chunk.len();
                store.push_output(0, Stream::Stdout, &chunk, 0);
                chunk.clear();
            }
        }
        let elapsed = started.elapsed();
        let rss_after = vm_rss_kib();
        let ring = store.ring(0);
        println!(
            "history {label:<15} {} lines in, {} kept, {} dropped; accounted {:.1} MiB, \
             RSS +{:.1} MiB (raw input {:.1} MiB); {:.0} ns/line",
            LINES,
            ring.lines.len(),
            ring.dropped,
            mib(store.bytes()),
            f64::from(u32::try_from(rss_after.saturating_sub(rss_before)).unwrap_or(u32::MAX))
                / 1024.0,
            mib(raw),
            elapsed.as_secs_f64() * 1e9 / f64::from(LINES),
        );
        drop(store);
    }
}

/// How fast the dashboard's history takes a flood of `seq` output in 64 KiB chunks, batched
/// the way the dashboard drains its channel (32 MiB at a time).
#[expect(clippy::cast_precision_loss, reason = "rounded figures for a report")]
fn ingest() {
    let mut chunks = Vec::new();
    let mut n = 0u64;
    let mut total = 0usize;
    while total < 512 * 1024 * 1024 {
        let mut chunk = Vec::with_capacity(64 * 1024);
        while chunk.len() < 64 * 1024 - 16 {
            n += 1;
            chunk.extend_from_slice(format!("{n}\n").as_bytes());
        }
        total += chunk.len();
        chunks.push(chunk);
    }
    let mut store = LogStore::new(1, DEFAULT_HISTORY_BYTES);
    let started = Instant::now();
    let mut batch = Vec::new();
    let mut batch_bytes = 0;
    for data in chunks {
        batch_bytes += data.len();
        batch.push(pk::logs::LogEvent::Output {
            service: 0,
            stream: Stream::Stdout,
            data,
        });
        if batch_bytes >= 32 * 1024 * 1024 {
            store.ingest(std::mem::take(&mut batch), 0);
            batch_bytes = 0;
        }
    }
    store.ingest(batch, 0);
    let secs = started.elapsed().as_secs_f64();
    println!(
        "ingest    {:.0} MiB of seq output ({} lines) in {:.2}s: {:.0} MiB/s, {:.1} M lines/s; \
         {} kept",
        mib(total),
        n,
        secs,
        mib(total) / secs,
        n as f64 / secs / 1e6,
        store.ring(0).lines.len(),
    );
}

#[expect(clippy::cast_precision_loss, reason = "a rounded figure")]
fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// CPU ticks (utime + stime) of a process.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some(end) = stat.rfind(')') else { return 0 };
    let fields: Vec<&str> = stat[end + 1..].split_whitespace().collect();
    let field = |n: usize| {
        fields
            .get(n - 3)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(14) + field(15)
}

#[expect(clippy::cast_precision_loss, reason = "rounded figures for a report")]
#[expect(clippy::too_many_lines, reason = "one scenario, read top to bottom")]
fn flood(pk: &Path) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("pk.yaml"),
        "name: bench\ngrace: 1s\nservices:\n  flood:\n    command: [seq, '1', '100000000000']\n  \
         quiet:\n    command: [sleep, '600']\n",
    )
    .expect("write pk.yaml");
    let pty = native_pty_system()
        .openpty(PtySize {
            rows: 40,
            cols: 120,
            pixel_width: 0,
            pixel_height: 0,
        })
        .expect("openpty");
    let mut cmd = CommandBuilder::new(pk);
    cmd.arg("up");
    cmd.cwd(dir.path());
    cmd.env("TERM", "xterm-256color");
    let mut child = pty.slave.spawn_command(cmd).expect("spawn pk");
    drop(pty.slave);
    let pid = child.process_id().expect("pid");
    let screen = Arc::new(Mutex::new(vt100::Parser::new(40, 120, 0)));
    let mut reader = pty.master.try_clone_reader().expect("reader");
    let parser = Arc::clone(&screen);
    let screen_bytes = Arc::new(Mutex::new(0usize));
    let counted = Arc::clone(&screen_bytes);
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            parser.lock().unwrap().process(&buf[..n]);
            *counted.lock().unwrap() += n;
        }
    });
    let mut input = pty.master.take_writer().expect("writer");
    let contents = || screen.lock().unwrap().screen().contents();
    let wait = |what: &str, cond: &dyn Fn(&str) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let c = contents();
            if cond(&c) {
                return;
            }
            assert!(Instant::now() < deadline, "timed out: {what}\n{c}");
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    wait("the flood on screen", &|s| {
        s.lines()
            .any(|l| l.trim().parse::<u64>().is_ok_and(|n| n > 10_000))
    });
    // CPU over 5 s of flood.
    let window = Duration::from_secs(5);
    let ticks_before = cpu_ticks(pid);
    let bytes_before = *screen_bytes.lock().unwrap();
    let before_screen = contents();
    std::thread::sleep(window);
    let after_screen = contents();
    if std::env::var_os("PK_BENCH_DEBUG").is_some() {
        eprintln!("before:\n{before_screen}\nafter:\n{after_screen}");
    }
    let ticks = cpu_ticks(pid) - ticks_before;
    let rss_mib = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            let kb: u64 = s
                .lines()
                .find(|l| l.starts_with("VmRSS:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some(kb / 1024)
        })
        .unwrap_or(0);
    let screen_rate = (*screen_bytes.lock().unwrap() - bytes_before) as f64 / window.as_secs_f64();
    // Key-to-screen latency: toggle the selection between the two services.
    let mut latencies = Vec::new();
    for i in 0..20 {
        let (key, marker) = if i % 2 == 0 {
            (b"j", "▶ quiet")
        } else {
            (b"k", "▶ flood")
        };
        let started = Instant::now();
        input.write_all(key).expect("key");
        input.flush().expect("flush");
        wait("selection moved", &|s| s.contains(marker));
        latencies.push(started.elapsed());
    }
    latencies.sort();
    let flood_rate = {
        let c = contents();
        c.lines()
            .find(|l| l.contains("flood") && l.contains('%'))
            .map(str::to_owned)
            .unwrap_or_default()
    };
    input.write_all(b"\x03").expect("ctrl-c");
    input.flush().expect("flush");
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().expect("try_wait").is_none() {
        assert!(Instant::now() < deadline, "pk did not exit");
        std::thread::sleep(Duration::from_millis(10));
    }
    println!(
        "flood     pk CPU {:.0}% of one core over {}s, RSS {rss_mib} MiB after it \
         (terminal output {:.0} KiB/s); \
         key→screen latency median {:?}, p95 {:?}, max {:?}; table row: {}",
        ticks as f64 * 100.0
            / rustix::param::clock_ticks_per_second() as f64
            / window.as_secs_f64(),
        window.as_secs(),
        screen_rate / 1024.0,
        latencies[latencies.len() / 2],
        latencies[latencies.len() * 95 / 100],
        latencies[latencies.len() - 1],
        flood_rate.split_whitespace().collect::<Vec<_>>().join(" "),
    );
    std::mem::forget(pty.master);
}
