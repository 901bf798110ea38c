//! Readiness, liveness and pipelines end to end (issue #3), with real servers on loopback.

mod support;

use support::{
    Backend, Project, Running, free_port, is_alive, is_notice, notice_at, notices, output_at,
    started_pids, wait_gone,
};

#[test]
fn a_healthy_dependent_starts_only_after_the_tcp_probe_passes() {
    let port = free_port();
    let p = Project::new(
        r#"
grace: 300ms
services:
  db:
    command: [sleep, "1000"]
    ready: { tcp: "127.0.0.1:${PORT}", interval: 50ms, deadline: 30s }
  api:
    command: "echo api-up; exec sleep 1000"
    depends_on: { db: healthy }
"#,
    );
    let mut up = p.up().env("PORT", &port.to_string()).spawn();
    up.wait_notice("db", "started (pid");
    up.wait_notice("api", "waiting for db (healthy)");
    // Only now does anything listen: the probe has been refused until here.
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    up.wait_for_line("api | api-up", |l| l.ends_with("| api-up"));
    up.interrupt();
    assert_eq!(up.wait_exit(support::DEADLINE), 0);
    drop(listener);
    let lines = up.lines();
    let waiting = notice_at(&lines, "api", "waiting for db (healthy)");
    let healthy = notice_at(&lines, "db", "healthy");
    let started = notice_at(&lines, "api", "started (pid");
    assert!(
        waiting < healthy && healthy < started,
        "{}",
        lines.join("\n")
    );
}

/// A stack of a service whose probe passes and one whose probe fails, each with a dependent
/// waiting for it to be healthy; returns pk's output after both outcomes are known.
fn probe_pass_and_fail(backend: Backend, ok: &str, bad: &str) -> (Project, Running) {
    let yaml = format!(
        r#"
grace: 300ms
services:
  ok:
    command: "echo starting; touch ready.flag; echo listening on port 8080; exec \"$PYTHON\" server.py"
    ready: {ok}
  bad:
    command: "echo starting; exec \"$PYTHON\" server.py"
    ready: {bad}
  after_ok:
    command: "echo go"
    depends_on: {{ ok: healthy }}
  after_bad:
    command: "echo never"
    depends_on: {{ bad: healthy }}
"#
    );
    let p = Project::new(&yaml)
        .backend(backend)
        .file("server.py", "import time\nwhile True: time.sleep(1000)\n");
    let up = p.up().spawn();
    up.wait_for_line("after_ok | go", |l| support::is_output(l, "after_ok", "go"));
    up.wait_notice("after_bad", "skipped: ");
    (p, up)
}

fn finish_failed(mut up: Running) -> Vec<String> {
    up.interrupt();
    // `bad` failed and `after_bad` was skipped: exit 1.
    assert_eq!(up.wait_exit(support::DEADLINE), 1);
    let lines = up.lines();
    assert!(notice_at(&lines, "ok", "healthy") < notice_at(&lines, "after_ok", "started"));
    assert!(!lines.iter().any(|l| is_notice(l, "bad", "healthy")));
    assert!(
        !lines
            .iter()
            .any(|l| support::is_output(l, "after_bad", "never"))
    );
    lines
}

#[test]
fn tcp_probe_passes_and_fails() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let open = listener.local_addr().unwrap().port();
    let closed = free_port();
    let (_p, up) = probe_pass_and_fail(
        Backend::Cgroup,
        &format!("{{ tcp: \"127.0.0.1:{open}\", interval: 50ms }}"),
        &format!("{{ tcp: \"127.0.0.1:{closed}\", interval: 50ms, deadline: 400ms }}"),
    );
    let lines = finish_failed(up);
    let reason = format!("bad not ready after 400ms: tcp 127.0.0.1:{closed}: refused");
    notice_at(&lines, "bad", &format!("failed: {reason}"));
    notice_at(
        &lines,
        "after_bad",
        &format!("skipped: bad failed ({reason})"),
    );
    drop(listener);
}

const HTTP_503_PY: &str = r#"
import http.server, os, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(503)
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"#;

#[test]
fn http_probe_passes_and_fails() {
    let good = free_port();
    let unavailable = free_port();
    let yaml = format!(
        r#"
grace: 300ms
services:
  ok:
    command: ["$PYTHON", -m, http.server, "{good}", --bind, 127.0.0.1]
    ready: {{ http: "http://127.0.0.1:{good}/", interval: 50ms }}
  bad:
    command: ["$PYTHON", unavailable.py, "{unavailable}"]
    # 3s: python must be serving before the deadline even on a loaded machine.
    ready: {{ http: "http://127.0.0.1:{unavailable}/health", interval: 50ms, deadline: 3s }}
  accepts_503:
    command: ["$PYTHON", unavailable.py, "{port}"]
    ready: {{ http: "http://127.0.0.1:{port}/", interval: 50ms, status: [503] }}
  after_ok:
    command: "echo go"
    depends_on: {{ ok: healthy, accepts_503: healthy }}
  after_bad:
    command: "echo never"
    depends_on: {{ bad: healthy }}
"#,
        port = free_port()
    );
    let p = Project::new(&yaml).file("unavailable.py", HTTP_503_PY);
    let up = p.up().spawn();
    up.wait_for_line("after_ok | go", |l| support::is_output(l, "after_ok", "go"));
    up.wait_notice("after_bad", "skipped: ");
    let lines = finish_failed(up);
    notice_at(&lines, "accepts_503", "healthy");
    notice_at(&lines, "bad", "failed: bad not ready after 3s: http 503");
    notice_at(
        &lines,
        "after_bad",
        "skipped: bad failed (bad not ready after 3s: http 503)",
    );
}

both_backends!(exec_probe_passes_and_fails);

fn exec_probe_passes_and_fails(backend: Backend) {
    let (_p, up) = probe_pass_and_fail(
        backend,
        "{ exec: 'test -f ready.flag', interval: 50ms }",
        "{ exec: [test, -f, never.flag], interval: 50ms, deadline: 400ms }",
    );
    let lines = finish_failed(up);
    notice_at(
        &lines,
        "bad",
        "failed: bad not ready after 400ms: exec test -f never.flag: exited 1",
    );
}

#[test]
fn log_probe_passes_and_fails() {
    let (_p, up) = probe_pass_and_fail(
        Backend::Cgroup,
        r"{ log: 'listening on port \d+', interval: 50ms }",
        r"{ log: 'ready to accept', interval: 50ms, deadline: 400ms }",
    );
    let lines = finish_failed(up);
    notice_at(
        &lines,
        "bad",
        "failed: bad not ready after 400ms: log: no line matched /ready to accept/ yet",
    );
    // The failed service's tree was stopped.
    notice_at(&lines, "bad", "stopping (TERM");
}

#[test]
fn the_ready_deadline_fails_the_service_stops_its_tree_and_pk_exits_1() {
    let p = Project::new(
        r#"
grace: 300ms
services:
  db:
    command: [sleep, "1000"]
    ready: { exec: "false", interval: 50ms, deadline: 300ms }
  migrate:
    command: "echo never"
    depends_on: { db: healthy }
"#,
    );
    let out = p.up().run();
    assert_eq!(out.code, 1, "{}", out.stdout());
    let reason = "db not ready after 300ms: exec false: exited 1";
    notice_at(&out.lines, "db", &format!("failed: {reason}"));
    notice_at(
        &out.lines,
        "migrate",
        &format!("skipped: db failed ({reason})"),
    );
    let started = &out.lines[notice_at(&out.lines, "db", "started (pid")];
    for pid in started_pids(started) {
        assert!(!is_alive(pid), "db's tree outlived its failure");
    }
}

#[test]
fn alive_failures_restart_the_service() {
    let closed = free_port();
    let p = Project::new(&format!(
        r#"
grace: 300ms
services:
  api:
    command: "echo up; exec sleep 1000"
    alive: {{ tcp: "127.0.0.1:{closed}", interval: 50ms, retries: 3 }}
    restart: {{ policy: on-failure, max: 10, backoff: {{ initial: 50ms, max: 1s }} }}
"#
    ));
    let mut up = p.up().spawn();
    up.wait_for_count("api started twice", 2, |l| {
        is_notice(l, "api", "started (pid")
    });
    up.interrupt();
    assert_eq!(up.wait_exit(support::DEADLINE), 0);
    let lines = up.lines();
    let reason = format!("alive probe failed 3×: tcp 127.0.0.1:{closed}: refused");
    let texts = notices(&lines, "api");
    let failed = texts.iter().position(|t| *t == reason).unwrap_or_else(|| {
        panic!("no `{reason}` in:\n{}", lines.join("\n"));
    });
    assert!(
        texts[failed + 1].starts_with("stopping (TERM, grace 300ms)"),
        "{texts:?}"
    );
    assert!(
        texts[failed + 2].starts_with(&format!("{reason}, restarting in ")),
        "{texts:?}"
    );
    assert!(texts[failed + 3].starts_with("started (pid"), "{texts:?}");
}

#[test]
fn a_dependency_with_required_false_only_warns() {
    let p = Project::new(
        r#"
services:
  metrics:
    command: "exit 3"
  app:
    command: "echo app ran"
    depends_on: { metrics: { condition: completed_successfully, required: false } }
  strict:
    command: "echo never"
    depends_on: { metrics: completed_successfully }
"#,
    );
    let out = p.up().run();
    // metrics failed: exit 1, even though app ran.
    assert_eq!(out.code, 1, "{}", out.stdout());
    let warned = notice_at(
        &out.lines,
        "app",
        "starting anyway: metrics exited 3 (required: false)",
    );
    assert!(warned < output_at(&out.lines, "app", "app ran"));
    notice_at(&out.lines, "app", "completed");
    notice_at(&out.lines, "strict", "skipped: metrics exited 3");
}

#[test]
fn restart_true_restarts_the_dependent_after_its_dependency() {
    let p = Project::new(
        r#"
grace: 300ms
services:
  db:
    command: |
      echo db-up
      while [ ! -f api.started ]; do sleep 0.01; done
      [ -f crashed.once ] && exec sleep 1000
      touch crashed.once
      exit 1
    restart: { policy: on-failure, backoff: { initial: 50ms, max: 1s } }
  api:
    command: "touch api.started; echo api-up; exec sleep 1000"
    depends_on: { db: { condition: started, restart: true } }
"#,
    );
    let mut up = p.up().spawn();
    up.wait_for_count("api up twice", 2, |l| {
        support::is_output(l, "api", "api-up")
    });
    up.interrupt();
    assert_eq!(up.wait_exit(support::DEADLINE), 0);
    let lines = up.lines();
    let crash = notice_at(&lines, "db", "exited 1, restarting in ");
    let api_stopping = notice_at(&lines, "api", "stopping (TERM");
    let api_down = notice_at(&lines, "api", "stopped; restarts after db");
    let starts = |svc: &str| -> Vec<usize> {
        lines
            .iter()
            .enumerate()
            .filter(|(_, l)| is_notice(l, svc, "started (pid"))
            .map(|(i, _)| i)
            .collect()
    };
    let (db, api) = (starts("db"), starts("api"));
    assert_eq!((db.len(), api.len()), (2, 2), "{}", lines.join("\n"));
    assert!(crash < api_stopping && api_stopping < api_down);
    assert!(
        db[1] < api[1],
        "api restarts after db:\n{}",
        lines.join("\n")
    );
}

#[test]
fn a_three_stage_pipeline_passes_data_through() {
    let p = Project::new(
        r"
services:
  sorted:
    pipeline:
      - [printf, 'b\na\n']
      - [sort]
      - [tr, a-z, A-Z]
",
    );
    let out = p.up().run();
    assert_eq!(out.code, 0, "{}", out.stdout());
    let a = output_at(&out.lines, "sorted", "A");
    let b = output_at(&out.lines, "sorted", "B");
    assert!(a < b, "{}", out.stdout());
    let started = &out.lines[notice_at(&out.lines, "sorted", "started (pids ")];
    assert_eq!(started_pids(started).len(), 3, "{started}");
    notice_at(&out.lines, "sorted", "completed");
}

both_backends!(a_pipelines_whole_tree_dies_on_teardown);

fn a_pipelines_whole_tree_dies_on_teardown(backend: Backend) {
    let p = Project::new(
        r#"
grace: 300ms
services:
  tail:
    pipeline:
      - [sh, -c, "echo hello; exec sleep 1000"]
      - [cat]
      - [sed, -u, s/hello/HELLO/]
"#,
    )
    .backend(backend);
    let mut up = p.up().spawn();
    let pids = started_pids(&up.wait_notice("tail", "started (pids "));
    assert_eq!(pids.len(), 3);
    // Data flowed through all three stages while they run.
    up.wait_for_line("tail | HELLO", |l| support::is_output(l, "tail", "HELLO"));
    up.interrupt();
    assert_eq!(up.wait_exit(support::DEADLINE), 0);
    notice_at(&up.lines(), "tail", "stopped");
    for pid in pids {
        wait_gone(pid, "a pipeline stage");
    }
}

#[test]
fn pipefail_names_the_stage_that_failed() {
    let p = Project::new(
        r"
services:
  errors:
    pipeline:
      - [printf, 'info\nwarn\n']
      - [grep, ERROR]
      - [cat]
",
    );
    let out = p.up().run();
    assert_eq!(out.code, 1, "{}", out.stdout());
    notice_at(&out.lines, "errors", "stage 2 (grep) exited 1");
}
