//! `pk up --watch` end to end: the real binary on a temp-dir stack, counting service starts in
//! its plain output. Every wait polls with a deadline; "nothing else happened" is proven with a
//! sentinel (a later change for another service, whose restart is awaited first). A guard
//! stops pk (TERM, INT, INT, KILL) even when a test fails, so no process is left behind.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

const DEADLINE: Duration = Duration::from_secs(15);

/// A service that prints `started` and then idles (the shell replaced by `sleep`).
const IDLE: &str = "[sh, -c, 'echo started; exec sleep 1000']";

struct Stack {
    dir: tempfile::TempDir,
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Stack {
    /// Writes `yaml` as pk.yaml (creating `dirs` and `files` first) and runs `pk up --watch`
    /// on it until the watcher is ready and every service in `started` has started.
    fn up(yaml: &str, dirs: &[&str], files: &[(&str, &str)], started: &[&str]) -> Stack {
        let dir = tempfile::tempdir().expect("tempdir");
        for d in dirs {
            std::fs::create_dir_all(dir.path().join(d)).expect("mkdir");
        }
        for (f, text) in files {
            std::fs::write(dir.path().join(f), text).expect("write");
        }
        std::fs::write(dir.path().join("pk.yaml"), yaml).expect("write pk.yaml");
        #[expect(
            clippy::disallowed_methods,
            reason = "the test runs the pk binary it checks"
        )]
        let mut child = Command::new(env!("CARGO_BIN_EXE_pk"))
            .args(["up", "--watch", "--plain", "--color", "never", "-f"])
            .arg(dir.path().join("pk.yaml"))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn pk");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().expect("stdout");
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let stack = Stack { dir, child, lines };
        stack.wait("the watcher", || stack.notice_count("pk", "watching ") == 1);
        for s in started {
            stack.wait_starts(s, 1);
        }
        stack
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn write(&self, rel: &str, text: &str) {
        std::fs::write(self.path(rel), text).expect("write");
    }

    /// Lines `name | text` (output) or `name * text` (lifecycle), as (name, sep, text).
    fn parsed(&self) -> Vec<(String, char, String)> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| {
                let (sep, at) = [('|', l.find(" | ")), ('*', l.find(" * "))]
                    .into_iter()
                    .filter_map(|(c, i)| Some((c, i?)))
                    .min_by_key(|(_, i)| *i)?;
                Some((l[..at].trim().to_owned(), sep, l[at + 3..].to_owned()))
            })
            .collect()
    }

    /// How many times `service` printed `started` (one per run of its command).
    fn starts(&self, service: &str) -> usize {
        self.parsed()
            .iter()
            .filter(|(n, sep, t)| n == service && *sep == '|' && t == "started")
            .count()
    }

    /// How many restarts the engine announced for `service` (emitted when it decides, so a
    /// restart is counted even before the new run is up).
    fn restarts(&self, service: &str) -> usize {
        self.notice_count(service, "restarting")
    }

    fn notice_count(&self, who: &str, prefix: &str) -> usize {
        self.notices(who)
            .iter()
            .filter(|t| t.starts_with(prefix))
            .count()
    }

    fn notices(&self, who: &str) -> Vec<String> {
        self.parsed()
            .into_iter()
            .filter(|(n, sep, _)| n == who && *sep == '*')
            .map(|(_, _, t)| t)
            .collect()
    }

    fn wait(&self, what: &str, mut done: impl FnMut() -> bool) {
        let start = Instant::now();
        while !done() {
            assert!(
                start.elapsed() < DEADLINE,
                "timed out waiting for {what}; output:\n{}",
                self.lines.lock().unwrap().join("\n")
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until `service` has started `n` times and its new run is up (its `started
    /// (pid …)` notice is out too).
    fn wait_starts(&self, service: &str, n: usize) {
        self.wait(&format!("{service} to start {n}×"), || {
            self.starts(service) >= n && self.notice_count(service, "started (pid") >= n
        });
    }
}

impl Drop for Stack {
    /// TERM (graceful teardown), then INT twice (force), then KILL; each waits a bounded time.
    fn drop(&mut self) {
        let Some(pid) = Pid::from_raw(i32::try_from(self.child.id()).unwrap()) else {
            return;
        };
        for (signal, wait) in [
            (Signal::TERM, Duration::from_secs(10)),
            (Signal::INT, Duration::from_secs(2)),
            (Signal::INT, Duration::from_secs(2)),
            (Signal::KILL, Duration::from_secs(5)),
        ] {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            // It may have exited between the check and the signal.
            let _ = kill_process(pid, signal);
            let start = Instant::now();
            while start.elapsed() < wait {
                if matches!(self.child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

fn two_services(api_watch: &str) -> String {
    format!(
        "services:\n  api:\n    command: {IDLE}\n    watch: {api_watch}\n  \
         web:\n    command: {IDLE}\n    watch: {{ paths: [web], debounce: 100ms }}\n"
    )
}

/// Changes a file of `web` and waits for its restart: everything caused earlier has happened.
fn sentinel(stack: &Stack, web_runs: usize) {
    stack.write("web/sentinel", &format!("{web_runs}"));
    stack.wait_starts("web", web_runs + 1);
}

#[test]
fn a_change_restarts_exactly_that_service_and_says_why() {
    let stack = Stack::up(
        &two_services("{ paths: [api], debounce: 100ms }"),
        &["api", "web"],
        &[],
        &["api", "web"],
    );
    stack.write("api/main.rs", "fn main() {}");
    stack.wait_starts("api", 2);
    sentinel(&stack, 1);
    assert_eq!(stack.restarts("api"), 1);
    assert_eq!(
        stack.starts("web"),
        2,
        "web restarted only for its own change"
    );
    assert!(
        stack
            .notices("api")
            .contains(&"restarting: api/main.rs changed".to_owned()),
        "{:?}",
        stack.notices("api")
    );
}

#[test]
fn a_burst_of_100_writes_gives_one_restart() {
    // A quiet period long enough that even a loaded CI machine writes the burst within it.
    let stack = Stack::up(
        &two_services("{ paths: [api], debounce: 400ms }"),
        &["api", "web"],
        &[],
        &["api", "web"],
    );
    for i in 0..100 {
        stack.write(&format!("api/f{}.rs", i % 5), &i.to_string());
    }
    stack.wait_starts("api", 2);
    sentinel(&stack, 1);
    assert_eq!(stack.restarts("api"), 1, "one restart for the whole burst");
    let restarting: Vec<String> = stack
        .notices("api")
        .into_iter()
        .filter(|t| t.starts_with("restarting"))
        .collect();
    assert_eq!(restarting.len(), 1);
    assert!(
        restarting[0].ends_with("changed (+4 more)"),
        "{restarting:?}"
    );
}

#[test]
fn ignored_files_give_no_restart_and_ignored_directories_no_watch() {
    let yaml = two_services(r#"{ paths: [api], ignore: ["*.tmp", build], debounce: 100ms }"#);
    let dirs = [
        "api/build/deep/er",
        "api/node_modules/pkg",
        "api/src",
        "web",
    ];
    let stack = Stack::up(
        &yaml,
        &dirs,
        &[("api/.gitignore", "*.gen\nnode_modules/\n")],
        &["api", "web"],
    );
    let watching = stack.notices("pk");
    assert!(
        watching.contains(&"watching api, web (4 directories)".to_owned()),
        "api, api/src, web and the config dir; no ignored tree: {watching:?}"
    );
    stack.write("api/x.tmp", "by ignore");
    stack.write("api/src/y.gen", "by .gitignore");
    stack.write("api/build/out.o", "inside an ignored directory");
    stack.write("api/build/deep/er/a.o", "deep inside it");
    stack.write(
        "api/node_modules/pkg/index.js",
        "by a .gitignore directory pattern",
    );
    stack.write("api/src/.main.rs.swp", "editor swap file");
    std::fs::create_dir(stack.path("api/build/new")).unwrap();
    sentinel(&stack, 1);
    assert_eq!(stack.restarts("api"), 0, "{:?}", stack.notices("api"));
}

#[test]
fn new_and_recreated_directories_are_watched() {
    let stack = Stack::up(
        &two_services("{ paths: [api/src], debounce: 100ms }"),
        &["api/src", "web"],
        &[],
        &["api", "web"],
    );
    std::fs::create_dir_all(stack.path("api/src/n1/n2")).unwrap();
    stack.wait_starts("api", 2);
    stack.write("api/src/n1/n2/deep.rs", "created after start");
    stack.wait_starts("api", 3);
    std::fs::remove_dir_all(stack.path("api/src")).unwrap();
    stack.wait_starts("api", 4);
    std::fs::create_dir(stack.path("api/src")).unwrap();
    stack.wait_starts("api", 5);
    stack.write("api/src/again.rs", "in the re-created directory");
    stack.wait_starts("api", 6);
    sentinel(&stack, 1);
    assert_eq!(stack.restarts("api"), 5, "{:?}", stack.notices("api"));
}

#[test]
fn a_service_writing_into_its_own_ignored_files_does_not_loop() {
    let yaml = "services:\n  api:\n    command: [sh, -c, 'echo started; \
                while :; do date >> app.log; date >> gen/stamp; sleep 0.02; done']\n    \
                working_dir: api\n    \
                watch: { paths: [api], ignore: ['*.log', gen], debounce: 100ms }\n  \
                web:\n    command: [sh, -c, 'echo started; exec sleep 1000']\n    \
                watch: { paths: [web], debounce: 100ms }\n";
    let stack = Stack::up(yaml, &["api/gen", "web"], &[], &["api", "web"]);
    stack.wait("api to write", || stack.path("api/app.log").exists());
    sentinel(&stack, 1);
    assert_eq!(stack.restarts("api"), 0, "{:?}", stack.notices("api"));
    stack.write("api/main.rs", "a real change");
    stack.wait_starts("api", 2);
    sentinel(&stack, 2);
    assert_eq!(stack.restarts("api"), 1, "no loop after the restart either");
}

#[test]
fn restart_dependents_restarts_them_in_dependency_order() {
    let yaml = format!(
        "services:\n  db:\n    command: {IDLE}\n    \
         watch: {{ paths: [db], debounce: 100ms, restart_dependents: true }}\n  \
         api:\n    command: {IDLE}\n    depends_on: [db]\n  \
         worker:\n    command: {IDLE}\n    depends_on: [api]\n  \
         web:\n    command: {IDLE}\n    watch: {{ paths: [web], debounce: 100ms }}\n"
    );
    let stack = Stack::up(&yaml, &["db", "web"], &[], &["db", "api", "worker", "web"]);
    let before = stack.parsed().len();
    stack.write("db/schema.sql", "create table t ();");
    stack.wait_starts("worker", 2);
    sentinel(&stack, 1);
    let second_start = |name: &str| {
        stack.parsed()[before..]
            .iter()
            .position(|(n, sep, t)| n == name && *sep == '*' && t.starts_with("started (pid"))
            .unwrap_or_else(|| panic!("{name} restarted"))
    };
    assert!(second_start("db") < second_start("api"));
    assert!(second_start("api") < second_start("worker"));
    for s in ["db", "api", "worker"] {
        assert_eq!(stack.starts(s), 2, "{s}");
    }
    assert_eq!(stack.starts("web"), 2, "only for its sentinel");
    assert!(
        stack
            .notices("api")
            .contains(&"restarting after db".to_owned())
    );
}

#[test]
fn a_signal_action_signals_the_tree_instead_of_restarting() {
    let yaml = "services:\n  api:\n    command: [sh, -c, 'trap \"echo got HUP\" HUP; \
                echo started; while :; do sleep 0.05; done']\n    \
                watch: { paths: [conf], action: 'signal:HUP', debounce: 100ms }\n";
    let stack = Stack::up(yaml, &["conf"], &[], &["api"]);
    stack.write("conf/app.toml", "reload me");
    stack.wait("the HUP", || {
        stack
            .parsed()
            .iter()
            .any(|(n, sep, t)| n == "api" && *sep == '|' && t == "got HUP")
    });
    assert!(
        stack
            .notices("api")
            .contains(&"sending HUP: conf/app.toml changed".to_owned())
    );
    assert_eq!(stack.starts("api"), 1, "not restarted");
}

/// A service whose stop is held until the test creates `release` in the stack's directory.
const HELD_STOP: &str = "[sh, -c, 'trap \"while [ ! -e release ]; do sleep 0.05; done; exit 0\" \
                         TERM; echo started; while :; do sleep 0.05; done']";

impl Stack {
    fn signal(&self, signal: Signal) {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).unwrap()).expect("pid");
        kill_process(pid, signal).expect("signal pk");
    }

    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait pk") {
                return status;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "pk did not exit; output:\n{}",
                self.lines.lock().unwrap().join("\n")
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[test]
fn a_restart_in_flight_when_teardown_begins_does_not_spawn() {
    let yaml = format!(
        "services:\n  api:\n    command: {HELD_STOP}\n    \
         watch: {{ paths: [api], debounce: 100ms }}\n    shutdown: {{ grace: 30s }}\n"
    );
    let mut stack = Stack::up(&yaml, &["api"], &[], &["api"]);
    stack.write("api/main.rs", "fn main() {}");
    stack.wait("the restart", || stack.restarts("api") == 1);
    // The old run is stopping for the restart; now pk is asked to shut down.
    stack.signal(Signal::TERM);
    stack.wait("the teardown", || {
        stack.notice_count("pk", "stopping (press Ctrl-C") == 1
    });
    stack.write("release", "");
    stack.wait_exit();
    assert_eq!(stack.starts("api"), 1, "{:?}", stack.notices("api"));
    assert_eq!(
        stack.notices("api").last().map(String::as_str),
        Some("stopped")
    );
}
