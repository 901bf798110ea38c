//! process-compose files under `pk up`, with real processes: each mapping of a process-compose
//! key onto pk's engine is checked by what the processes do (docs/compatibility.md).
//!
//! The fixtures are written here, not copied from real projects. Every wait is a condition with
//! a deadline.

mod support;

use std::time::Duration;

use support::{DEADLINE, Project, is_notice, notice_at, notices, output_at};

fn compose(yaml: &str) -> Project {
    Project::named("process-compose.yaml", yaml)
}

#[test]
fn restart_with_fixed_backoff_and_max_restarts() {
    let p = compose(
        "processes:\n  flaky:\n    command: \"echo try; exit 3\"\n    availability:\n      restart: on_failure\n      backoff_seconds: 1\n      max_restarts: 2\n",
    );
    let out = p.up().run();
    let lines = notices(&out.lines, "flaky");
    let restarts: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains("restarting in"))
        .collect();
    assert_eq!(restarts.len(), 2, "{}", out.stdout());
    // A fixed backoff: exactly the configured second each time, no growth, no jitter.
    assert!(
        restarts.iter().all(|l| l.ends_with("restarting in 1s")),
        "{}",
        out.stdout()
    );
    let tries = out.lines.iter().filter(|l| l.ends_with("| try")).count();
    assert_eq!(tries, 3, "{}", out.stdout());
}

#[test]
fn all_five_conditions_gate_in_order() {
    let p = compose(
        r#"processes:
  setup:
    command: "echo setup-done"
  broken:
    command: "exit 4"
  server:
    command: "echo booting; sleep 0.3; echo server ready now; exec sleep 30"
    ready_log_line: "ready now"
  probed:
    command: "exec sleep 30"
    readiness_probe:
      exec:
        command: "test -f marker"
      period_seconds: 1
  after-started:
    command: "echo started-ok"
    depends_on:
      setup:
        condition: process_started
  after-completed:
    command: "echo completed-ok"
    depends_on:
      broken:
        condition: process_completed
  after-success:
    command: "echo success-ok; touch marker"
    depends_on:
      setup:
        condition: process_completed_successfully
  never:
    command: "echo must-not-run"
    depends_on:
      broken:
        condition: process_completed_successfully
  after-log:
    command: "echo log-ok"
    depends_on:
      server:
        condition: process_log_ready
  after-healthy:
    command: "echo healthy-ok"
    depends_on:
      probed:
        condition: process_healthy
"#,
    );
    let mut run = p.up().spawn();
    run.wait_for_line("healthy-ok", |l| l.ends_with("| healthy-ok"));
    run.wait_for_line("log-ok", |l| l.ends_with("| log-ok"));
    run.interrupt();
    let code = run.wait_exit(DEADLINE);
    let lines = run.lines();
    assert!(
        output_at(&lines, "after-log", "log-ok") > output_at(&lines, "server", "server ready now"),
        "{}",
        lines.join("\n")
    );
    assert!(
        output_at(&lines, "after-success", "success-ok") > output_at(&lines, "setup", "setup-done")
    );
    assert!(
        output_at(&lines, "after-healthy", "healthy-ok")
            > output_at(&lines, "after-success", "success-ok")
    );
    assert!(
        notice_at(&lines, "after-completed", "started") > notice_at(&lines, "broken", "exited 4")
    );
    output_at(&lines, "after-started", "started-ok");
    assert!(
        lines.iter().any(|l| is_notice(l, "never", "skipped")),
        "{}",
        lines.join("\n")
    );
    assert!(!lines.iter().any(|l| l.ends_with("must-not-run")));
    // process-compose's rules: no exit_on_* key, so the failure does not set the exit code.
    assert_eq!(code, 0, "{}", lines.join("\n"));
}

#[test]
fn http_and_exec_probes_with_a_string_port() {
    let port = support::free_port();
    let p = compose(&format!(
        r#"processes:
  web:
    command: "exec ${{PYTHON}} -m http.server {port} --bind 127.0.0.1"
    readiness_probe:
      http_get:
        host: 127.0.0.1
        scheme: http
        port: "${{WEB_PORT}}"
        path: /
      initial_delay_seconds: 0
      period_seconds: 1
      failure_threshold: 30
  check:
    command: "exec sleep 30"
    working_dir: sub
    readiness_probe:
      exec:
        command: "test -f here"
        working_dir: sub
      period_seconds: 1
  client:
    command: "echo web-is-up"
    depends_on:
      web:
        condition: process_healthy
      check:
        condition: process_healthy
"#
    ))
    .file("sub/here", "");
    let mut run = p.up().env("WEB_PORT", &port.to_string()).spawn();
    run.wait_for_line("web-is-up", |l| l.ends_with("| web-is-up"));
    run.interrupt();
    run.wait_exit(DEADLINE);
}

// Cgroups only: the daemon leaves its process group (setsid), so only a cgroup tells that the
// service's tree is still alive after its starter exited; the portable build has no cgroups.
#[cfg(not(feature = "portable"))]
#[test]
fn a_double_forking_daemon_is_stopped_by_its_shutdown_command_and_nothing_is_left() {
    let Some(backend) = support::Backend::cgroup() else {
        eprintln!(
            "no writable cgroup2: skipped (a daemon that leaves its process group needs cgroups)"
        );
        return;
    };
    // Like `pg_ctl start`: the starter forks a child that forks the daemon (in its own
    // session) and both exit; only the daemon is left.
    let p = compose(
        r#"processes:
  db:
    command: "( setsid sh -c 'echo $$$$ > daemon.pid; trap \"echo daemon-stopped; exit 0\" TERM; while :; do sleep 0.1; done' & ) ; echo starter-done"
    is_daemon: true
    shutdown:
      command: "kill $(cat daemon.pid)"
      timeout_seconds: 5
  app:
    command: "echo app-started; exec sleep 30"
    depends_on:
      db:
        condition: process_started
"#,
    )
    .backend(backend);
    let mut guard = support::PidGuard::new();
    guard.file(p.path().join("daemon.pid"));
    let mut run = p.up().spawn();
    run.wait_for_line("app", |l| l.ends_with("| app-started"));
    let daemon = p.read_pid("daemon.pid");
    run.wait_for_line("starter", |l| l.ends_with("| starter-done"));
    // The starter has exited, but the daemon's tree is alive: the service is still running.
    assert!(support::is_alive(daemon));
    assert!(
        !run.lines().iter().any(|l| is_notice(l, "db", "completed")),
        "{}",
        run.lines().join("\n")
    );
    run.interrupt();
    run.wait_exit(DEADLINE);
    support::wait_gone(daemon, "the daemon");
    let lines = run.lines();
    assert!(
        lines.iter().any(|l| l.ends_with("| daemon-stopped")),
        "{}",
        lines.join("\n")
    );
}

#[test]
fn vars_templates_and_raw_text_interpolation() {
    let p = compose(
        r#"vars:
  GREETING: hello
processes:
  greet:
    vars:
      WHO: world
    command: "echo {{ .GREETING }} {{.WHO}} ${MODE:-dev} $$HOME_IS_SET ${COUNT}"
    environment:
      - HOME_IS_SET=yes
    availability:
      restart: ${RESTART:-no}
  literal:
    is_template_disabled: true
    command: "echo '{{ .GREETING }}' $PC_PROC_NAME"
"#,
    );
    let out = p.up().env("COUNT", "3").run();
    output_at(&out.lines, "greet", "hello world dev yes 3");
    // `$PC_PROC_NAME` is expanded when the file is loaded (unset then), as in process-compose.
    output_at(&out.lines, "literal", "{{ .GREETING }}");
    assert_eq!(out.code, 0, "{}", out.stdout());
}

#[test]
fn several_files_merge_and_extends() {
    let p = compose(
        "extends: base.yaml\nprocesses:\n  api:\n    environment:\n      - LEVEL=override\n    depends_on:\n      db:\n        condition: process_completed_successfully\n",
    )
    .file(
        "base.yaml",
        "processes:\n  db:\n    command: \"echo db-done\"\n  api:\n    command: \"echo api $LEVEL $SHARED; pwd\"\n    environment:\n      - LEVEL=base\n      - SHARED=kept\n",
    )
    .file(
        "extra.yaml",
        "processes:\n  api:\n    command: \"echo api $$LEVEL $$SHARED\"\n  worker:\n    command: \"echo worker-ran\"\n",
    );
    let out = p
        .pk(&[
            "-f",
            "process-compose.yaml",
            "-f",
            "extra.yaml",
            "up",
            "--plain",
            "--color",
            "never",
        ])
        .run();
    assert_eq!(out.code, 0, "{}\n{}", out.stdout(), out.stderr);
    assert!(
        output_at(&out.lines, "api", "api override kept") > output_at(&out.lines, "db", "db-done")
    );
    output_at(&out.lines, "worker", "worker-ran");
    let graph = p
        .pk(&["-f", "process-compose.yaml", "-f", "extra.yaml", "graph"])
        .run();
    assert!(graph.stdout().contains("db"), "{}", graph.stdout());
}

#[test]
fn discovery_uses_the_override_file() {
    let p = compose("processes:\n  a:\n    command: \"echo from-base\"\n").file(
        "process-compose.override.yaml",
        "processes:\n  a:\n    command: \"echo from-override\"\n",
    );
    let out = p.up().run_within(Duration::from_secs(15));
    output_at(&out.lines, "a", "from-override");
}

#[test]
fn replicas_a_dependency_on_them_tty_and_underscore_names() {
    let p = compose(
        r#"processes:
  web:
    replicas: 2
    command: "echo copy $$PC_REPLICA_NUM of $$PC_PROC_NAME; sleep 0.3; echo copy-done"
  client:
    command: "echo client-ran"
    depends_on:
      web:
        condition: process_completed_successfully
  _pc_log:
    command: "if [ -t 1 ]; then echo on-a-tty; else echo on-a-pipe; fi"
    is_tty: true
"#,
    );
    let out = p.up().run();
    assert_eq!(out.code, 0, "{}\n{}", out.stdout(), out.stderr);
    output_at(&out.lines, "web-0", "copy 0 of web");
    output_at(&out.lines, "web-1", "copy 1 of web");
    // The dependent waits for every copy.
    let client = output_at(&out.lines, "client", "client-ran");
    for copy in ["web-0", "web-1"] {
        assert!(
            notice_at(&out.lines, copy, "completed") < client,
            "{}",
            out.stdout()
        );
    }
    output_at(&out.lines, "_pc_log", "on-a-tty");
}

#[test]
fn several_pk_yaml_files_merge_by_compose_rules() {
    let p = Project::named(
        "pk.yaml",
        "services:\n  db:\n    command: \"echo db-done\"\n  web:\n    command: \"echo web $$GREETING $$KEEP\"\n    env: { GREETING: base, KEEP: kept, DROP: x }\n    depends_on: [db]\n",
    )
    .file(
        "dev.yaml",
        "services:\n  web:\n    env: { GREETING: over, DROP: null }\n    depends_on:\n      db: completed_successfully\n  extra:\n    command: \"echo extra-ran $${DROP:-unset}\"\n",
    )
    .file(
        "more.yaml",
        "services:\n  extra:\n    env: { DROP: again }\n",
    );
    let files = ["-f", "pk.yaml", "-f", "dev.yaml", "-f", "more.yaml"];
    let run = |args: &[&str]| {
        let mut all = files.to_vec();
        all.extend_from_slice(args);
        p.pk(&all).run()
    };
    let out = run(&["up", "--plain", "--color", "never"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout(), out.stderr);
    // env merged by key; depends_on merged by name (its condition replaced): web starts only
    // once db completed.
    let web = output_at(&out.lines, "web", "web over kept");
    assert!(
        notice_at(&out.lines, "db", "completed") < web,
        "{}",
        out.stdout()
    );
    output_at(&out.lines, "extra", "extra-ran again");
    let check = run(&["check"]);
    assert_eq!(check.code, 0, "{}", check.stderr);
    let graph = run(&["graph"]);
    assert!(
        graph
            .stdout()
            .contains("web    ← db (completed_successfully)")
            && graph.stdout().contains("extra"),
        "{}",
        graph.stdout()
    );
}

#[test]
fn pk_import_of_a_process_compose_file_checks_runs_and_comments_the_changes() {
    let p = compose(
        r#"environment:
  - GREETING=hi
env_cmds:
  STAMP: "echo stamped"
log_location: ./all.log
processes:
  db:
    description: the database
    command: "echo db $$FROM_DOTENV"
    namespace: data
    success_exit_codes: [3]
  web:
    command: "echo web $$GREETING $$PC_REPLICA_NUM"
    replicas: 2
    working_dir: sub
    depends_on:
      db:
        condition: process_completed
    availability:
      restart: exit_on_failure
    is_elevated: true
"#,
    )
    .file(".env", "FROM_DOTENV=dotenv-value\n")
    .file("sub/keep", "");
    let out = p
        .pk(&["import", "process-compose.yaml", "-o", "pk.yaml"])
        .run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let yaml = std::fs::read_to_string(p.path().join("pk.yaml")).unwrap();
    for comment in [
        "# description: the database",
        "# Dropped: namespace data.",
        "# Dropped: success_exit_codes [3].",
        "# Dropped: `restart: exit_on_failure`",
        "# `is_elevated` is not supported by pk",
        "# `.env` (FROM_DOTENV) is read as a top-level `env_file`",
        "# Exit code: process-compose exits 0",
        "# Dropped: env_cmds (STAMP: echo stamped).",
        "# Dropped: the top-level log_location (all.log)",
    ] {
        assert!(yaml.contains(comment), "no `{comment}` in\n{yaml}");
    }
    assert!(yaml.contains("working_dir: \"sub\""), "{yaml}");
    // It never overwrites.
    let again = p
        .pk(&["import", "process-compose.yaml", "-o", "pk.yaml"])
        .run();
    assert_eq!(again.code, 2, "{}", again.stderr);
    // pk.yaml is found first: the import checks, draws the same graph and runs.
    let check = p.pk(&["check"]).run();
    assert_eq!(check.code, 0, "{}", check.stderr);
    let graph = p.pk(&["graph"]).run();
    let original = p.pk(&["-f", "process-compose.yaml", "graph"]).run();
    assert_eq!(graph.stdout(), original.stdout());
    let out = p.up().run();
    assert_eq!(out.code, 0, "{}\n{}", out.stdout(), out.stderr);
    output_at(&out.lines, "db", "db dotenv-value");
    output_at(&out.lines, "web-0", "web hi 0");
    output_at(&out.lines, "web-1", "web hi 1");
}

#[test]
fn watch_block_restarts_on_included_files_and_cascades() {
    // `include` globs, `exclude`, `cascade` (→ restart_dependents): a change to an included file
    // restarts `app` and then its dependent; an excluded file does nothing (proven by a later
    // change for `other`, whose restart is awaited first).
    let p = compose(
        r#"processes:
  app:
    command: "echo app-up; exec sleep 30"
    watch:
      paths:
        - path: src
          include: ["*.txt"]
          exclude: ["skip.txt"]
      cascade: true
      debounce: 50ms
  dep:
    command: "echo dep-up; exec sleep 30"
    depends_on:
      app:
        condition: process_started
  other:
    command: "echo other-up; exec sleep 30"
    watch:
      paths:
        - path: more
"#,
    )
    .file("src/a.txt", "1")
    .file("src/skip.txt", "1")
    .file("more/x", "1");
    let mut run = p
        .pk(&["up", "--watch", "--plain", "--color", "never"])
        .spawn();
    run.wait_notice("pk", "watching");
    for s in ["app", "dep", "other"] {
        run.wait_for_line(s, |l| support::is_output(l, s, &format!("{s}-up")));
    }
    let ups = |run: &support::Running, s: &str| {
        run.lines()
            .iter()
            .filter(|l| support::is_output(l, s, &format!("{s}-up")))
            .count()
    };
    std::fs::write(p.path().join("src/a.txt"), "2").unwrap();
    run.wait_for_count("app restarted", 2, |l| {
        support::is_output(l, "app", "app-up")
    });
    run.wait_for_count("dep restarted after app", 2, |l| {
        support::is_output(l, "dep", "dep-up")
    });
    std::fs::write(p.path().join("src/skip.txt"), "2").unwrap();
    std::fs::write(p.path().join("src/notes.md"), "2").unwrap();
    std::fs::write(p.path().join("more/x"), "2").unwrap();
    run.wait_for_count("other restarted", 2, |l| {
        support::is_output(l, "other", "other-up")
    });
    assert_eq!(ups(&run, "app"), 2, "{}", run.lines().join("\n"));
    assert_eq!(ups(&run, "dep"), 2, "{}", run.lines().join("\n"));
    run.interrupt();
    run.wait_exit(DEADLINE);
}

#[test]
fn http_probe_sends_its_headers() {
    // The server answers 401 unless the probe sends `X-Token: s3cret`: the dependent starts
    // only if the header got there.
    let port = support::free_port();
    let p = compose(&format!(
        r#"processes:
  web:
    command: "exec ${{PYTHON}} server.py {port}"
    readiness_probe:
      http_get:
        host: 127.0.0.1
        port: {port}
        path: /health
        headers:
          X-Token: s3cret
      period_seconds: 1
      failure_threshold: 30
  client:
    command: "echo client-ran"
    depends_on:
      web:
        condition: process_healthy
"#
    ))
    .file(
        "server.py",
        r"import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ok = self.headers.get('X-Token') == 's3cret'
        self.send_response(200 if ok else 401)
        self.end_headers()
        print('authorised' if ok else 'refused', flush=True)
    def log_message(self, *a):
        pass
http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()
",
    );
    let mut run = p.up().spawn();
    run.wait_for_line("client-ran", |l| l.ends_with("| client-ran"));
    assert!(
        run.lines().iter().any(|l| l.ends_with("| authorised")),
        "{}",
        run.lines().join("\n")
    );
    run.interrupt();
    run.wait_exit(DEADLINE);
}

/// The output line of `service` that starts with `prefix`, without the `service | ` part.
fn output_of(lines: &[String], service: &str, prefix: &str) -> String {
    lines
        .iter()
        .filter_map(|l| support::parse(l))
        .find(|l| !l.notice && l.service == service && l.text.starts_with(prefix))
        .map_or_else(
            || panic!("no `{service} | {prefix}…` line in:\n{}", lines.join("\n")),
            |l| l.text.to_owned(),
        )
}

#[test]
fn env_cmds_outputs_are_variables_of_every_process_and_its_probes() {
    // The portable build has no cgroups.
    let cgroup = if cfg!(feature = "portable") {
        None
    } else {
        support::Backend::cgroup()
    };
    for backend in std::iter::once(support::Backend::Pgroup).chain(cgroup) {
        let p = compose(
            r#"environment:
  - "TOP=from-top"
env_cmds:
  GREETING: "echo '  hello from env_cmds  '"
  TOP: "echo from-cmd"
  OWN: "echo from-cmd"
  SEEN: "echo $${INHERITED}"
  WHERE: "echo \"$$(grep ^0:: /proc/self/cgroup) marker=$${PK_RUN_ID}\""
processes:
  a:
    command: "echo \"a greeting=[$${GREETING}] top=[$${TOP}] own=[$${OWN}] seen=[$${SEEN}]\"; echo \"a where=[$${WHERE}]\""
  b:
    command: "echo \"b own=[$${OWN}]\"; while [ ! -s probed.txt ]; do sleep 0.05; done; echo \"b probe=[$$(cat probed.txt)]\""
    environment:
      - "OWN=mine"
    liveness_probe:
      exec:
        command: "echo $${GREETING} > probed.txt"
      period_seconds: 1
"#,
        )
        .backend(backend);
        let out = p.up().env("INHERITED", "from-the-shell").run();
        assert_eq!(out.code, 0, "{}\n{}", out.stdout(), out.stderr);
        // Trimmed; above the top-level `environment`, the inherited one and `.env`; below
        // the process's own `environment`.
        assert_eq!(
            output_of(&out.lines, "a", "a greeting"),
            "a greeting=[hello from env_cmds] top=[from-cmd] own=[from-cmd] seen=[from-the-shell]"
        );
        assert_eq!(output_of(&out.lines, "b", "b own"), "b own=[mine]");
        // Probes run with the process's environment (process-compose issue 316).
        assert_eq!(
            output_of(&out.lines, "b", "b probe"),
            "b probe=[hello from env_cmds]"
        );
        // Contained like any tree of the run: its own cgroup leaf, or the run marker.
        let place = output_of(&out.lines, "a", "a where");
        match backend {
            support::Backend::Cgroup => assert!(place.contains("/WHERE@env"), "{place}"),
            support::Backend::Pgroup => assert!(
                !place.contains("marker=]") && place.contains("marker="),
                "{place}"
            ),
        }
    }
}

#[test]
fn a_failing_env_cmd_is_a_located_warning_and_leaves_its_variable_unset() {
    let p = compose(
        "env_cmds:\n  BAD: \"echo no database >&2; exit 3\"\n  SLOW: \"echo $$$$ > slow.pid; exec sleep 30\"\n  GOOD: \"echo fine\"\nprocesses:\n  a:\n    command: \"echo \\\"a bad=[$${BAD-unset}] slow=[$${SLOW-unset}] good=[$${GOOD}]\\\"\"\n",
    );
    let mut guard = support::PidGuard::new();
    guard.file(p.path().join("slow.pid"));
    let out = p.up().run();
    assert_eq!(out.code, 0, "{}\n{}", out.stdout(), out.stderr);
    assert_eq!(
        output_of(&out.lines, "a", "a bad"),
        "a bad=[unset] slow=[unset] good=[fine]"
    );
    // The command that ran past its 2 s was killed with its tree, before anything started.
    let slow = p.read_pid("slow.pid");
    assert!(
        !support::is_alive(slow),
        "the timed-out env command still runs"
    );
    insta::assert_snapshot!(out.stderr);
}

#[test]
fn under_is_strict_a_failing_env_cmd_stops_pk_up_before_anything_starts() {
    let p = compose(
        "is_strict: true\nenv_cmds:\n  BAD: \"exit 3\"\nprocesses:\n  a:\n    command: \"touch started\"\n",
    );
    let out = p.up().run();
    assert_eq!(out.code, 2, "{}\n{}", out.stdout(), out.stderr);
    assert!(!p.path().join("started").exists());
    insta::assert_snapshot!(out.stderr);
}

#[test]
fn env_cmds_run_at_up_only_not_at_check() {
    let p = compose(
        "env_cmds:\n  X: \"touch ran; echo x\"\nprocesses:\n  a:\n    command: \"echo a\"\n",
    );
    let out = p.pk(&["check"]).run();
    assert_eq!(out.code, 0, "{}\n{}", out.stdout(), out.stderr);
    assert!(
        !p.path().join("ran").exists(),
        "`pk check` ran an env command"
    );
    let out = p.pk(&["graph"]).run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        !p.path().join("ran").exists(),
        "`pk graph` ran an env command"
    );
}

#[test]
fn the_top_level_log_location_keeps_every_process_in_one_rotated_file() {
    let p = compose(
        r#"log_location: ./logs/all.log
log_configuration:
  rotation:
    max_size_mb: 1
    max_backups: 1
  disable_json: true
processes:
  a:
    command: "echo from-a"
  b:
    command: "echo from-b; echo err-b >&2; head -c 1500000 /dev/zero | tr '\\0' x | fold -w 999"
    depends_on:
      a:
        condition: process_completed
"#,
    );
    let out = p.up().run();
    assert_eq!(out.code, 0, "{}\n{}", out.stdout(), out.stderr);
    let current = std::fs::read_to_string(p.path().join("logs/all.log")).unwrap();
    let rotated = std::fs::read_to_string(p.path().join("logs/all.log.1")).unwrap();
    assert!(
        !p.path().join("logs/all.log.2").exists(),
        "max_backups: 1 keeps one old file"
    );
    // Rotated at max_size_mb: neither file is past 1 MiB.
    assert!(rotated.len() <= 1024 * 1024 && current.len() <= 1024 * 1024);
    let all = format!("{rotated}{current}");
    let lines: Vec<&str> = all.lines().collect();
    // `<time> <process> | <line>` for output, `<time> <process> * <text>` for lifecycle lines.
    let of = |name: &str, mark: char| -> Vec<&str> {
        lines
            .iter()
            .filter_map(|l| l.split_once(' ').map(|(_, rest)| rest))
            .filter_map(|rest| rest.strip_prefix(&format!("{name} {mark} ")))
            .collect()
    };
    assert_eq!(of("a", '|'), ["from-a"], "{}", &all[..all.len().min(2000)]);
    let b = of("b", '|');
    assert!(b.contains(&"from-b") && b.contains(&"err-b"), "{all:.2000}");
    // Every line of the flood is there, whole, across the rotation.
    let flood: Vec<&&str> = b.iter().filter(|l| l.starts_with('x')).collect();
    assert_eq!(flood.len(), 1_500_000 / 999 + 1);
    assert_eq!(
        flood.iter().filter(|l| l.len() == 999).count(),
        1_500_000 / 999
    );
    assert!(flood.iter().all(|l| l.bytes().all(|c| c == b'x')));
    assert!(of("a", '*').contains(&"completed"), "{all:.2000}");
    assert!(of("pk", '*').iter().any(|l| l.starts_with("containment:")));
}

#[test]
fn pc_replica_num_templates_are_each_copys_own_number() {
    let p = compose(
        r#"processes:
  web:
    replicas: 3
    working_dir: "dir{{ .PC_REPLICA_NUM }}"
    environment:
      - "REPL={{.PC_REPLICA_NUM}}"
    log_location: "./logs/web.{PC_REPLICA_NUM}.log"
    command: "echo \"copy={{ .PC_REPLICA_NUM }} env=$${PC_REPLICA_NUM} repl=$${REPL} in=$$(basename $$PWD)\""
"#,
    )
    .file("dir0/keep", "")
    .file("dir1/keep", "")
    .file("dir2/keep", "")
    .file("dir3/keep", "");
    let out = p.up().run();
    assert_eq!(out.code, 0, "{}\n{}", out.stdout(), out.stderr);
    for n in 0..3 {
        let line = format!("copy={n} env={n} repl={n} in=dir{n}");
        output_at(&out.lines, &format!("web-{n}"), &line);
        // The log file names the copy's number itself: no `-N` suffix added.
        let log = std::fs::read_to_string(p.path().join(format!("logs/web.{n}.log"))).unwrap();
        assert!(log.contains(&line), "{log}");
    }
    assert!(!out.stderr.contains("PC_REPLICA_NUM"), "{}", out.stderr);
    // `--scale` makes the copies again from the declared process: copy 3 gets 3.
    let out = p.up().args(&["--scale", "web=4"]).run();
    assert_eq!(out.code, 0, "{}\n{}", out.stdout(), out.stderr);
    output_at(&out.lines, "web-3", "copy=3 env=3 repl=3 in=dir3");
    output_at(&out.lines, "web-0", "copy=0 env=0 repl=0 in=dir0");
}
