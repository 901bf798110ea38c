//! The config front end's fuzz targets (`fuzz/targets.rs`) on the stable toolchain, with a
//! fixed budget (issue 11, part 3): a corpus of the examples, the test fixtures, the YAML
//! blocks of the docs and the real-world files (`../shared/realworld`, when present), then
//! deterministic mutations of it (bytes flipped, YAML and interpolation tokens inserted,
//! ranges deleted, duplicated and spliced between inputs).
//!
//! Every input must give a config or located errors and never a panic (the targets check
//! that), and take at most [`LIMIT`] of CPU time (see [`limit`] for debug builds); a hang
//! fails the test after [`HANG`].
//!
//! `PK_FUZZ_INPUTS=N` sets the number of mutated inputs per target (default [`BUDGET`]);
//! `PK_FUZZ_SEED` the mutation seed; `PK_FUZZ_CORPUS=DIR` writes the seed corpus to
//! `DIR/<target>/` for `cargo fuzz` (see docs/benchmarks.md). The run prints its figures.

#[allow(dead_code, reason = "the targets are called through TARGETS")]
#[path = "../fuzz/targets.rs"]
mod targets;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Mutated inputs per target in CI.
const BUDGET: usize = 500;
/// The most CPU time one input may take in a release build. A debug build (`cargo test` in
/// CI) is about ten times slower on the largest real-world files (25 KB, ~125 ms), so there
/// the limit is ten times this; the release run's figures are in docs/benchmarks.md.
const LIMIT: Duration = Duration::from_millis(100);

fn limit() -> Duration {
    if cfg!(debug_assertions) {
        LIMIT * 10
    } else {
        LIMIT
    }
}
/// No progress for this long (wall time) is a hang.
const HANG: Duration = Duration::from_secs(30);
/// Mutated inputs are cut to this size.
const MAX_INPUT: usize = 64 * 1024;

/// Bytes the mutator writes over others.
const BYTES: &[u8] = b" \n:-{}[],'\"#&*!|>%@`$\\\t0aZ";

/// Tokens the mutator inserts: YAML structure, interpolation, the scalar mini-languages.
const TOKENS: &[&str] = &[
    "\n",
    "  ",
    "- ",
    ": ",
    "{",
    "}",
    "[",
    "]",
    ", ",
    "&a ",
    "*a",
    "<<: *a\n",
    "${",
    "${A:-",
    "${A:?x}",
    "${A-${B:-",
    "}",
    "$$",
    "$",
    "'",
    "\"",
    "#",
    "!!str ",
    "!!binary ",
    "~",
    "null",
    "true",
    "no",
    "yes",
    "1e999",
    "-1",
    "0x10",
    "99999999999999999999",
    "\t",
    "\u{feff}",
    "\u{1F600}",
    "\r",
    "\0",
    "services:\n",
    "processes:\n",
    "depends_on:\n",
    "command: ",
    "ready:\n  http: ",
    "replicas: 1000\n",
    "http://",
    ":65536",
    "SIG",
    "ms",
    "h",
    "\\",
    "---\n",
    "...\n",
    "? ",
    "|\n",
    ">-\n",
    "{{ .A }}",
    "%YAML 1.2\n",
    "web: ",
    "x-",
];

fn manifest() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `<repo>/../shared/realworld` (a worktree looks one level further up), if present.
fn realworld() -> Option<PathBuf> {
    [
        manifest().join("../shared/realworld"),
        manifest().join("../../shared/realworld"),
    ]
    .into_iter()
    .find(|d| d.is_dir())
}

/// Whether `name` ends with `.ext` (any case).
fn has_ext(name: &str, ext: &str) -> bool {
    Path::new(name)
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

fn files_under(dir: &Path, keep: &dyn Fn(&str) -> bool, out: &mut Vec<Vec<u8>>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            files_under(&path, keep, out);
        } else if path.file_name().and_then(|n| n.to_str()).is_some_and(keep)
            && let Ok(bytes) = std::fs::read(&path)
        {
            out.push(bytes);
        }
    }
}

/// The fenced YAML blocks of the docs.
fn doc_yaml_blocks(out: &mut Vec<Vec<u8>>) {
    let mut docs = Vec::new();
    files_under(&manifest().join("docs"), &|n| has_ext(n, "md"), &mut docs);
    docs.push(std::fs::read(manifest().join("README.md")).unwrap_or_default());
    for doc in docs {
        let text = String::from_utf8_lossy(&doc);
        let mut block: Option<String> = None;
        for line in text.lines() {
            match &mut block {
                None if line.trim_start().starts_with("```yaml") => block = Some(String::new()),
                Some(b) if line.trim_start().starts_with("```") => {
                    out.push(std::mem::take(b).into_bytes());
                    block = None;
                }
                Some(b) => {
                    b.push_str(line);
                    b.push('\n');
                }
                None => {}
            }
        }
    }
}

/// The seed inputs of `target`.
fn corpus(target: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let yaml = |n: &str| has_ext(n, "yaml") || has_ext(n, "yml");
    let procfile = |n: &str| n.contains("Procfile") || has_ext(n, "procfile");
    let mut configs = Vec::new();
    files_under(&manifest().join("examples"), &yaml, &mut configs);
    files_under(&manifest().join("tests"), &yaml, &mut configs);
    doc_yaml_blocks(&mut configs);
    let mut compose = Vec::new();
    let mut procfiles = Vec::new();
    if let Some(rw) = realworld() {
        files_under(&rw.join("process-compose"), &yaml, &mut compose);
        files_under(&rw.join("process-compose-fixtures"), &yaml, &mut compose);
        files_under(&rw.join("procfile"), &procfile, &mut procfiles);
    } else {
        eprintln!(
            "\n!!!! ../shared/realworld is absent: the corpus lacks the real-world files !!!!\n"
        );
    }
    procfiles.push(b"web: bundle exec rails s -p $PORT\nworker: sidekiq\n# comment\n".to_vec());
    compose.push(b"processes:\n  a:\n    command: echo ${A:-x}\n".to_vec());
    let scalars: Vec<Vec<u8>> = [
        "250ms",
        "10s",
        "1m30s",
        "2 minutes",
        "1.5s",
        "10",
        "-1s",
        "PT1S",
        "TERM",
        "SIGKILL",
        "term",
        "9",
        "http://127.0.0.1:8080/health",
        "http://[::1]:9/",
        "https://x",
        "localhost:5432",
        "[::1]:80",
        "healthy",
        "service_completed_successfully",
        "on-failure",
        "always",
        "no",
        "${A}",
        "${A:-x}",
        "${A-${B:-c}}",
        "$$A",
        "${A:?msg}",
        "$A text $B",
        "${",
        "${A:-${B:-${C:-d}}}",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    match target {
        "yaml" => {
            out.extend(configs);
            out.extend(compose);
        }
        "pk_yaml" => out.extend(configs),
        "compose" => out.extend(compose),
        "procfile" => out.extend(procfiles),
        _ => out.extend(scalars),
    }
    out
}

/// A xorshift generator: the same seed gives the same inputs on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n.max(1)).unwrap()).unwrap()
    }
}

/// One to four mutations of a corpus input.
fn mutate(rng: &mut Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut input = corpus[rng.below(corpus.len())].clone();
    for _ in 0..=rng.below(4) {
        let len = input.len();
        let at = rng.below(len + 1);
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                input[i] = BYTES[rng.below(BYTES.len())];
            }
            2 => {
                let token = TOKENS[rng.below(TOKENS.len())].as_bytes();
                input.splice(at..at, token.iter().copied());
            }
            3 if len > 0 => {
                let end = (at + 1 + rng.below(32)).min(len);
                input.drain(at.min(end)..end);
            }
            4 if len > 0 => {
                let start = rng.below(len);
                let end = (start + 1 + rng.below(256)).min(len);
                let piece = input[start..end].to_vec();
                for _ in 0..=rng.below(3) {
                    input.splice(at..at, piece.iter().copied());
                }
            }
            5 => {
                let other = &corpus[rng.below(corpus.len())];
                let from = rng.below(other.len() + 1);
                input.truncate(at);
                input.extend_from_slice(&other[from..]);
            }
            _ => input.truncate(at),
        }
    }
    input.truncate(MAX_INPUT);
    input
}

/// CPU time this thread has used.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to fill; the clock id exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut ts) };
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

/// What a run of one target found.
#[derive(Debug, Default)]
struct Figures {
    inputs: usize,
    slowest: Duration,
    cpu: Duration,
    failures: Vec<String>,
}

/// Keeps a failing input in `target/fuzz-failures/` (to replay it) and says where.
fn kept(name: &str, input: &[u8]) -> String {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-failures");
    let _ = std::fs::create_dir_all(&dir);
    let hash = input.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let path = dir.join(format!("{name}-{hash:016x}"));
    let _ = std::fs::write(&path, input);
    format!("{} (kept in {})", shown(input), path.display())
}

fn shown(input: &[u8]) -> String {
    let text = String::from_utf8_lossy(&input[..input.len().min(600)]);
    format!("{text:?}{}", if input.len() > 600 { "…" } else { "" })
}

fn run_target(
    name: &str,
    target: targets::Target,
    budget: usize,
    seed: u64,
    progress: &mpsc::Sender<String>,
) -> Figures {
    let corpus = corpus(name);
    assert!(!corpus.is_empty(), "no corpus for {name}");
    if let Some(dir) = std::env::var_os("PK_FUZZ_CORPUS") {
        let dir = Path::new(&dir).join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for (i, input) in corpus.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i:04}")), input).unwrap();
        }
    }
    let mut rng = Rng(seed
        ^ name.bytes().fold(0x9E37_79B9_7F4A_7C15_u64, |h, b| {
            h.rotate_left(5) ^ u64::from(b)
        }));
    let mut figures = Figures::default();
    let inputs = corpus
        .iter()
        .cloned()
        .chain((0..budget).map(|_| mutate(&mut rng, &corpus)));
    for input in inputs {
        let _ = progress.send(format!("{name}: {}", shown(&input)));
        let before = thread_cpu();
        let result = std::panic::catch_unwind(|| target(&input));
        let took = thread_cpu().saturating_sub(before);
        figures.inputs += 1;
        figures.cpu += took;
        figures.slowest = figures.slowest.max(took);
        if let Err(panic) = result {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            figures.failures.push(format!(
                "{name}: panicked ({what}) on {}",
                kept(name, &input)
            ));
        } else if took > limit() {
            figures.failures.push(format!(
                "{name}: took {took:?} of CPU on {}",
                kept(name, &input)
            ));
        }
    }
    figures
}

#[test]
fn the_config_front_end_gives_a_config_or_located_errors_for_any_input() {
    let budget = std::env::var("PK_FUZZ_INPUTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(BUDGET);
    let seed = std::env::var("PK_FUZZ_SEED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0x5EED_F0F0_1234_5678_u64);
    let (progress, watch) = mpsc::channel::<String>();
    let (done, result) = mpsc::channel();
    let started = Instant::now();
    std::thread::spawn(move || {
        let all: Vec<(&str, Figures)> = targets::TARGETS
            .iter()
            .map(|&(name, target)| (name, run_target(name, target, budget, seed, &progress)))
            .collect();
        let _ = done.send(all);
    });
    let mut last = String::from("(nothing yet)");
    let all = loop {
        if let Ok(all) = result.try_recv() {
            break all;
        }
        match watch.recv_timeout(HANG) {
            Ok(input) => last = input,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                break result
                    .recv()
                    .expect("the fuzz thread ended without figures");
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("no progress for {HANG:?}: a hang on {last}");
            }
        }
    };
    let mut failures = Vec::new();
    for (name, f) in &all {
        eprintln!(
            "fuzz {name}: {} inputs, {:?} CPU, slowest {:?}, {} failures",
            f.inputs,
            f.cpu,
            f.slowest,
            f.failures.len()
        );
        failures.extend(f.failures.iter().cloned());
    }
    eprintln!("fuzz: {:?} wall, seed {seed}", started.elapsed());
    assert!(
        failures.is_empty(),
        "{} inputs broke the config front end:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
