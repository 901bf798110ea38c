//! The control plane end to end (issue #6): `pk ps`, `pk logs`, `pk start|stop|restart`,
//! `pk wait`, `pk up -d`, the socket directory, log files, and recovery after pk itself was
//! killed with SIGKILL.

mod support;

use std::os::unix::fs::PermissionsExt;

use support::{Backend, DEADLINE, PidGuard, Project, is_alive, started_pids, wait_gone};

const STACK: &str = r#"
grace: 300ms
services:
  db:
    command: "echo db up; exec sleep 1000"
  migrate:
    command: "echo migrated"
    depends_on: [db]
  api:
    command: "echo api up; exec sleep 1000"
    depends_on:
      migrate: completed_successfully
"#;

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn service<'a>(ps: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    ps["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {ps}"))
}

fn ps_json(p: &Project) -> serde_json::Value {
    let out = p.pk(&["ps", "--json"]).run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    json(&out.stdout())
}

#[test]
fn ps_shows_every_service_as_a_table_and_as_json() {
    let p = Project::new(STACK);
    let up = p.up().spawn();
    up.wait_notice("api", "started (pid");
    let ps = ps_json(&p);
    assert_eq!(ps["event"], "ps");
    assert_eq!(ps["v"], 1);
    assert_eq!(ps["pid"], up.pid());
    // The portable build has no cgroups and measures nothing (README "Platforms").
    let (containment, measured) = if cfg!(feature = "portable") {
        ("process groups", false)
    } else {
        ("cgroup v2", true)
    };
    assert!(
        ps["containment"].as_str().unwrap().starts_with(containment),
        "{ps}"
    );
    assert_eq!(service(&ps, "db")["state"], "running");
    assert_eq!(service(&ps, "migrate")["state"], "completed");
    assert_eq!(service(&ps, "migrate")["last_exit"], "exited 0");
    let api = service(&ps, "api");
    assert_eq!(api["state"], "running");
    assert_eq!(api["restarts"], 0);
    assert_eq!(api["pids"].as_array().unwrap().len(), 1);
    assert!(api["started_at_ms"].as_u64().unwrap() > 0);
    // CPU and memory of a running tree (unknown, null, in the portable build); none for a
    // service that has no tree.
    assert_eq!(api["cpu_percent"].is_f64(), measured, "{api}");
    assert_eq!(
        api["memory_bytes"].as_u64().is_some_and(|b| b > 0),
        measured,
        "{api}"
    );
    for done in ["cpu_percent", "memory_bytes"] {
        assert!(service(&ps, "migrate")[done].is_null(), "{ps}");
        if !measured {
            assert!(api[done].is_null(), "{api}");
        }
    }
    let keys: Vec<&str> = api
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    insta::assert_snapshot!("ps_service_keys", keys.join("\n"));

    let table = p.pk(&["ps"]).run();
    assert_eq!(table.code, 0);
    assert!(table.lines[1].starts_with("NAME"), "{}", table.stdout());
    assert!(
        table
            .lines
            .iter()
            .any(|l| l.starts_with("migrate") && l.contains("completed"))
    );
    // The last two columns are CPU and MEM: figures, or `-` where unknown.
    let header: Vec<&str> = table.lines[1].split_whitespace().collect();
    assert_eq!(
        header[header.len() - 2..],
        ["CPU", "MEM"],
        "{}",
        table.stdout()
    );
    let api_row: Vec<&str> = table
        .lines
        .iter()
        .find(|l| l.starts_with("api "))
        .unwrap_or_else(|| panic!("no api row in {}", table.stdout()))
        .split_whitespace()
        .collect();
    let [.., cpu, mem] = api_row[..] else {
        panic!("{api_row:?}")
    };
    if measured {
        assert!(cpu.ends_with('%') && mem != "-", "{api_row:?}");
    } else {
        assert_eq!([cpu, mem], ["-", "-"], "{api_row:?}");
    }
}

#[test]
fn logs_give_history_tail_and_follow_including_finished_one_shots() {
    let p = Project::new(
        r#"
grace: 300ms
services:
  once:
    command: "for i in 1 2 3 4 5; do echo line $$i; done"
  ticker:
    command: [sh, -c, "echo ready; while test ! -f go; do sleep 0.02; done; echo after-go; exec sleep 1000"]
"#,
    );
    let up = p.up().spawn();
    up.wait_notice("once", "completed");
    up.wait_for_line("ticker ready", |l| l.ends_with("| ready"));

    let all = p.pk(&["logs", "once", "--color", "never"]).run();
    assert_eq!(all.code, 0, "{}", all.stderr);
    let out: Vec<&String> = all
        .lines
        .iter()
        .filter(|l| l.starts_with("once   | "))
        .collect();
    assert_eq!(out.len(), 5, "{}", all.stdout());
    assert!(
        all.lines.iter().any(|l| l == "once   * completed"),
        "{}",
        all.stdout()
    );

    let tail = p.pk(&["logs", "once", "-n", "2", "--color", "never"]).run();
    assert_eq!(tail.lines, vec!["once   | line 5", "once   * completed"]);

    let mut follow = p.pk(&["logs", "-F", "ticker", "--color", "never"]).spawn();
    follow.wait_for_line("history", |l| l == "ticker | ready");
    std::fs::write(p.path().join("go"), "").unwrap();
    follow.wait_for_line("a new line", |l| l == "ticker | after-go");
    assert!(
        !follow.lines().iter().any(|l| l.starts_with("once")),
        "filtered to ticker"
    );
    // TERM, not INT: a shell's background job (and so this client) may ignore SIGINT.
    follow.signal(rustix::process::Signal::TERM);
    follow.wait_exit(DEADLINE);
}

#[test]
fn stop_start_and_restart_respect_dependencies() {
    let p = Project::new(STACK);
    let up = p.up().spawn();
    let api_pid = started_pids(&up.wait_notice("api", "started (pid"))[0];

    let stop = p.pk(&["stop", "db"]).run();
    assert_eq!(stop.code, 0, "{}", stop.stderr);
    assert!(
        stop.lines.iter().any(|l| l == "api: stopped"),
        "{}",
        stop.stdout()
    );
    assert!(
        stop.lines.iter().any(|l| l == "db: stopped"),
        "{}",
        stop.stdout()
    );
    let lines = up.lines();
    assert!(
        support::notice_at(&lines, "api", "stopped") < support::notice_at(&lines, "db", "stopping"),
        "dependents first: {lines:#?}"
    );
    wait_gone(api_pid, "api after pk stop db");
    let ps = ps_json(&p);
    assert_eq!(service(&ps, "db")["state"], "stopped");
    assert_eq!(
        service(&ps, "migrate")["state"],
        "completed",
        "a finished one-shot is left alone"
    );

    let start = p.pk(&["start", "api"]).run();
    assert_eq!(start.code, 0, "{}", start.stderr);
    let ps = ps_json(&p);
    assert_eq!(
        service(&ps, "db")["state"],
        "running",
        "start pulls in the dependency"
    );
    assert_eq!(service(&ps, "api")["state"], "running");
    assert_eq!(service(&ps, "migrate")["runs"], 1, "not run again");

    let before = service(&ps, "api")["pids"][0].as_u64().unwrap();
    let restart = p.pk(&["restart", "api"]).run();
    assert_eq!(restart.code, 0, "{}", restart.stderr);
    let ps = ps_json(&p);
    let after = service(&ps, "api")["pids"][0].as_u64().unwrap();
    assert_ne!(before, after, "a new process");
    assert!(!is_alive(u32::try_from(before).unwrap()));

    let unknown = p.pk(&["restart", "apu"]).run();
    assert_eq!(unknown.code, 2);
    assert!(
        unknown.stderr.contains("no service named apu"),
        "{}",
        unknown.stderr
    );
}

#[test]
fn wait_resolves_on_conditions_and_fails_with_reasons() {
    let port = support::free_port();
    let p = Project::new(&format!(
        r#"
grace: 300ms
services:
  slow:
    command: ["${{PYTHON}}", "-c", "import socket,time\ntime.sleep(0.3)\ns=socket.socket()\ns.bind(('127.0.0.1',{port}))\ns.listen()\nprint('listening', flush=True)\ntime.sleep(1000)"]
    ready: {{ tcp: "127.0.0.1:{port}", interval: 50ms }}
  job:
    command: "exit 3"
  forever:
    command: [sleep, "1000"]
"#
    ));
    let up = p.up().spawn();
    up.wait_for_line("the containment line", |l| l.starts_with("pk "));
    let healthy = p
        .pk(&["wait", "slow", "--for", "healthy", "--timeout", "10s"])
        .run();
    assert_eq!(healthy.code, 0, "{}", healthy.stderr);
    assert_eq!(service(&ps_json(&p), "slow")["state"], "healthy");

    let failed = p.pk(&["wait", "job", "--for", "completed"]).run();
    assert_eq!(failed.code, 1);
    assert!(
        failed.stderr.contains("job is exited: exited 3"),
        "{}",
        failed.stderr
    );

    let timeout = p
        .pk(&[
            "wait",
            "forever",
            "--for",
            "completed",
            "--timeout",
            "200ms",
        ])
        .run();
    assert_eq!(timeout.code, 1);
    assert!(
        timeout.stderr.contains("forever is running: timed out"),
        "{}",
        timeout.stderr
    );
}

/// Stops a detached stack however the test ends.
struct Detached<'a>(&'a Project);

impl Drop for Detached<'_> {
    fn drop(&mut self) {
        let _ = self.0.pk(&["down", "--grace", "0s"]).run();
        // A failed background run keeps its log next to the socket; the test is done with it.
        let log = pk::control::socket_path(&self.0.config_path()).with_extension("log");
        let _ = std::fs::remove_file(log);
    }
}

#[test]
fn up_detached_returns_once_everything_is_up_and_keeps_running() {
    let p = Project::new(STACK);
    let _guard = Detached(&p);
    let up = p.pk(&["up", "-d"]).run();
    assert_eq!(up.code, 0, "{}\n{}", up.stdout(), up.stderr);
    assert!(
        up.lines[0].starts_with("pk: started in the background (pid"),
        "{}",
        up.stdout()
    );
    let ps = ps_json(&p);
    let pk_pid = u32::try_from(ps["pid"].as_u64().unwrap()).unwrap();
    assert_eq!(
        service(&ps, "api")["state"],
        "running",
        "up -d waited for it"
    );
    let logs = p.pk(&["logs", "api", "--color", "never"]).run();
    assert!(
        logs.lines
            .iter()
            .any(|l| support::is_output(l, "api", "api up")),
        "output kept for pk logs: {}",
        logs.stdout()
    );

    let again = p.pk(&["up", "-d"]).run();
    assert_eq!(
        again.code, 2,
        "a second stack for the same config is refused"
    );

    let down = p.pk(&["down"]).run();
    assert_eq!(down.code, 0, "{}", down.stderr);
    wait_gone(pk_pid, "the background pk after pk down");
}

#[test]
fn up_detached_names_what_did_not_come_up() {
    let p = Project::new(
        r#"
services:
  migrate:
    command: "echo broken >&2; exit 4"
  api:
    command: [sleep, "1000"]
    depends_on:
      migrate: completed_successfully
"#,
    );
    let _guard = Detached(&p);
    let up = p.pk(&["up", "-d"]).run();
    assert_eq!(up.code, 1, "{}\n{}", up.stdout(), up.stderr);
    assert!(
        up.stderr.contains("migrate is exited: exited 4"),
        "{}",
        up.stderr
    );
    assert!(
        up.stderr.contains("api is skipped: migrate exited 4"),
        "{}",
        up.stderr
    );
}

#[test]
fn the_socket_directory_is_private() {
    let p = Project::new(STACK);
    let up = p.up().spawn();
    up.wait_notice("api", "started (pid");
    let socket = pk::control::socket_path(&p.config_path());
    let dir = socket.parent().unwrap();
    let mode = std::fs::metadata(dir).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "{}", dir.display());
    assert!(socket.exists());
}

#[test]
fn log_dir_keeps_each_services_output_in_a_file() {
    let p = Project::new(
        r#"
log_dir: logs
services:
  web:
    command: "echo hello from web"
  cron:
    command: "echo tick"
    log_file: custom/cron.txt
"#,
    );
    let out = p.up().run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let web = std::fs::read_to_string(p.path().join("logs/web.log")).unwrap();
    assert!(web.contains("hello from web\n"), "{web}");
    assert!(web.contains(": started (pid"), "lifecycle lines too: {web}");
    let cron = std::fs::read_to_string(p.path().join("custom/cron.txt")).unwrap();
    assert!(cron.contains("tick\n"), "{cron}");
}

both_backends!(after_pk_is_killed_pk_down_kills_the_leftovers);

fn after_pk_is_killed_pk_down_kills_the_leftovers(backend: Backend) {
    // The grandchild stays in the service's process group (no setsid) under the fallback; with
    // cgroups it even escapes its session, and is still found.
    let escape = match backend {
        Backend::Cgroup => "setsid sleep 1001 &",
        Backend::Pgroup => "sleep 1001 &",
    };
    let p = Project::new(&format!(
        "services:\n  svc:\n    command: \"{escape} echo $$! > grandchild.pid; exec sleep 1002\"\n"
    ))
    .backend(backend);
    let mut guard = PidGuard::new();
    let mut up = p.up().spawn();
    let child = started_pids(&up.wait_notice("svc", "started (pid"))[0];
    let grandchild = p.read_pid("grandchild.pid");
    guard.add(grandchild);
    guard.add(child);
    // The fallback: pk's crash guard is killed first, so nothing cleans up until `pk down`.
    let crash_guard = support::guard_of(up.pid()).expect("pk's guard");
    guard.add(crash_guard);
    kill_now(crash_guard);
    up.signal(rustix::process::Signal::KILL);
    up.wait_exit(DEADLINE);
    if cfg!(feature = "portable") {
        // No parent-death signal (Linux only): the whole tree outlives pk until `pk down`.
        assert!(is_alive(child), "the direct child outlived pk");
    } else {
        wait_gone(child, "the direct child (parent-death signal)");
    }
    assert!(is_alive(grandchild), "the grandchild outlived pk");

    let down = p.pk(&["down"]).run();
    assert_eq!(down.code, 0, "{}", down.stderr);
    assert!(
        down.stderr.contains("died without cleaning up; killed"),
        "{}",
        down.stderr
    );
    wait_gone(grandchild, "the leftover grandchild after pk down");
    wait_gone(child, "the leftover direct child after pk down");
}

#[test]
fn pk_up_cleans_up_after_a_killed_pk_before_starting() {
    let p = Project::new(
        "services:\n  svc:\n    command: \"setsid sleep 1003 & echo $$! > gc.pid; exec sleep 1004\"\n",
    );
    let mut guard = PidGuard::new();
    let mut first = p.up().spawn();
    let child = started_pids(&first.wait_notice("svc", "started (pid"))[0];
    guard.add(child);
    let grandchild = p.read_pid("gc.pid");
    guard.add(grandchild);
    // The fallback: pk's crash guard is killed first, so nothing cleans up until `pk up`.
    let crash_guard = support::guard_of(first.pid()).expect("pk's guard");
    guard.add(crash_guard);
    kill_now(crash_guard);
    first.signal(rustix::process::Signal::KILL);
    first.wait_exit(DEADLINE);
    std::fs::remove_file(p.path().join("gc.pid")).unwrap();

    // Without the parent-death signal (portable build) the direct child outlived pk too.
    let leftovers = if cfg!(feature = "portable") {
        assert!(is_alive(child), "the direct child outlived pk");
        "killed 2 leftover processes"
    } else {
        wait_gone(child, "the direct child (parent-death signal)");
        "killed 1 leftover process"
    };

    let mut second = p.up().spawn();
    second.wait_notice("svc", "started (pid");
    wait_gone(grandchild, "the first run's grandchild");
    wait_gone(child, "the first run's direct child");
    guard.add(p.read_pid("gc.pid"));
    second.interrupt();
    assert_eq!(second.wait_exit(DEADLINE), 0);
    assert!(
        second
            .stderr
            .contains(&format!("died without cleaning up; {leftovers}")),
        "{}",
        second.stderr
    );
}

/// A service whose stop waits until the test creates `release` in the project directory.
const HELD_STOP: &str = r#"
services:
  db:
    command: [sh, -c, 'trap "while [ ! -e release ]; do sleep 0.05; done; exit 0" TERM; echo up; while :; do sleep 0.05; done']
    shutdown: { grace: 30s }
"#;

#[test]
fn a_restart_overtaken_by_a_stop_is_answered() {
    let p = Project::new(HELD_STOP);
    let up = p.up().spawn();
    up.wait_notice("db", "started (pid");
    let mut restart = p.pk(&["restart", "db"]).spawn();
    up.wait_notice("db", "restarting (requested)");
    // While the old run is still stopping for the restart, `pk stop` comes in; its first
    // state line is printed only once the engine has taken the stop.
    let mut stop = p.pk(&["stop", "db"]).spawn();
    stop.wait_for_line("db: stopping", |l| l == "db: stopping");
    std::fs::write(p.path().join("release"), "").unwrap();
    assert_eq!(stop.wait_exit(DEADLINE), 0, "{}", stop.stderr);
    assert_eq!(restart.wait_exit(DEADLINE), 1, "the restart got no answer");
    assert!(
        restart
            .stderr
            .contains("db is stopped: stopped before it ran again"),
        "{}",
        restart.stderr
    );
    assert_eq!(service(&ps_json(&p), "db")["state"], "stopped");
}

/// SIGKILLs `pid` and waits until it is gone.
fn kill_now(pid: u32) {
    let raw = rustix::process::Pid::from_raw(i32::try_from(pid).unwrap()).unwrap();
    let _ = rustix::process::kill_process(raw, rustix::process::Signal::KILL);
    wait_gone(pid, "the killed process");
}
