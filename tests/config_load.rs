//! pk.yaml → Plan: defaults, interpolation, environments, dependency forms, selection, graphs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pk::plan::{
    Plan, RunSpec, ServiceSpec, load_str, load_str_with_warnings, render_graph, select,
};
use pk::vocab::{CommandSpec, Condition, ProbeCheck, RestartPolicy, StopSignal};

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn load_with(yaml: &str, vars: &[(&str, &str)]) -> Plan {
    load_str(yaml, Path::new("/project/pk.yaml"), &env(vars))
        .unwrap_or_else(|e| panic!("{}", e.render(false)))
}

fn load(yaml: &str) -> Plan {
    load_with(yaml, &[])
}

fn svc<'p>(plan: &'p Plan, name: &str) -> &'p ServiceSpec {
    &plan.services[plan.service_id(name).unwrap()]
}

fn shell(plan: &Plan, name: &str) -> String {
    match &svc(plan, name).run {
        RunSpec::Command(CommandSpec::Shell(s)) => s.clone(),
        other => panic!("not a shell command: {other:?}"),
    }
}

#[test]
fn defaults() {
    let plan = load("services:\n  web:\n    command: python3 -m http.server\n");
    assert_eq!(plan.name, "project");
    assert_eq!(plan.base_dir, PathBuf::from("/project"));
    assert_eq!(plan.config_path, PathBuf::from("/project/pk.yaml"));
    let web = svc(&plan, "web");
    assert_eq!(
        web.run,
        RunSpec::Command(CommandSpec::Shell("python3 -m http.server".into()))
    );
    assert_eq!(web.working_dir, PathBuf::from("/project"));
    assert_eq!(web.restart.policy, RestartPolicy::No);
    assert_eq!(web.restart.max, 5);
    assert_eq!(web.restart.window, Duration::from_secs(60));
    assert_eq!(web.restart.backoff_initial, Duration::from_millis(250));
    assert_eq!(web.restart.backoff_max, Duration::from_secs(30));
    assert_eq!(web.shutdown.signal, StopSignal::TERM);
    assert_eq!(web.shutdown.grace, Duration::from_secs(10));
    assert_eq!(web.shutdown.command, None);
    assert!(!web.disabled);
    assert!(web.ready.is_none() && web.alive.is_none() && web.depends_on.is_empty());
    assert_eq!(plan.order, vec![0]);
}

#[test]
fn design_example_loads() {
    let plan = load(include_str!("config_fixtures/design.yaml"));
    assert_eq!(plan.name, "shop");
    let names: Vec<&str> = plan
        .order
        .iter()
        .map(|&i| plan.services[i].name.as_str())
        .collect();
    assert_eq!(names, ["db", "migrate", "api", "logs"]);
    let db = svc(&plan, "db");
    assert_eq!(db.shutdown.signal.name, "INT");
    assert_eq!(db.shutdown.signal.number, 2);
    assert_eq!(db.shutdown.grace, Duration::from_secs(20));
    let ready = db.ready.as_ref().unwrap();
    assert!(matches!(&ready.check, ProbeCheck::Tcp { address } if address == "127.0.0.1:5432"));
    assert_eq!(ready.interval, Duration::from_millis(250));
    assert_eq!(ready.deadline, Some(Duration::from_secs(60)));
    assert_eq!(
        svc(&plan, "migrate").run,
        RunSpec::Command(CommandSpec::Argv(vec!["./migrate.sh".into()]))
    );
    assert_eq!(svc(&plan, "migrate").restart.policy, RestartPolicy::No);
    let api = svc(&plan, "api");
    assert_eq!(api.working_dir, PathBuf::from("/project/api"));
    assert_eq!(api.env.get("PORT").map(String::as_str), Some("8080"));
    assert_eq!(api.env.get("RUST_LOG").map(String::as_str), Some("info"));
    assert_eq!(api.depends_on.len(), 2);
    assert_eq!(
        api.depends_on[0].condition,
        Condition::CompletedSuccessfully
    );
    assert!(api.depends_on[1].restart && api.depends_on[1].required);
    let alive = api.alive.as_ref().unwrap();
    assert!(
        matches!(&alive.check, ProbeCheck::Http { host, port: 8080, path, status, .. } if host == "127.0.0.1" && path == "/health" && status.is_empty())
    );
    assert_eq!(
        (alive.interval, alive.retries, alive.deadline),
        (Duration::from_secs(5), 3, None)
    );
    assert_eq!(api.restart.policy, RestartPolicy::OnFailure);
    assert_eq!(
        svc(&plan, "logs").run,
        RunSpec::Pipeline(vec![
            vec!["tail".into(), "-F".into(), "api.log".into()],
            vec!["grep".into(), "--line-buffered".into(), "ERROR".into()],
        ])
    );
}

#[test]
fn interpolation_operators() {
    let yaml = r#"
services:
  s:
    command: "a=$A b=${B} c=${C:-dc} d=${D-dd} e=${E:-de} f=${E-df} n=${N:-${M:-deep}} l=$$A x=$ y=${A:?unused} z=${A:+alt}"
"#;
    let plan = load_with(yaml, &[("A", "1"), ("B", "2"), ("E", "")]);
    assert_eq!(
        shell(&plan, "s"),
        "a=1 b=2 c=dc d=dd e=de f= n=deep l=$A x=$ y=1 z=alt"
    );
}

#[test]
fn unset_variable_warns_and_becomes_empty() {
    let yaml = "services:\n  s:\n    command: echo [$NOPE]\n";
    let (plan, warnings) =
        load_str_with_warnings(yaml, Path::new("/project/pk.yaml"), &env(&[])).unwrap();
    assert_eq!(shell(&plan, "s"), "echo []");
    assert_eq!(
        warnings.lines(),
        ["/project/pk.yaml:3:14: warning: variable `NOPE` is not set; using an empty string"]
    );
    // A default, even an empty one, silences the warning; so does an unused nested default.
    let yaml = "services:\n  s:\n    command: echo ${NOPE-} ${HOME:-$ALSO_NOPE}\n";
    let (_, warnings) =
        load_str_with_warnings(yaml, Path::new("/project/pk.yaml"), &env(&[("HOME", "/h")]))
            .unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[test]
fn interpolation_applies_to_values_not_keys() {
    let yaml = "services:\n  s:\n    command: x\n    env:\n      $KEY: $VALUE\n";
    let plan = load_with(yaml, &[("KEY", "k"), ("VALUE", "v")]);
    assert_eq!(
        svc(&plan, "s").env.get("$KEY").map(String::as_str),
        Some("v")
    );
}

#[test]
fn env_layering_and_null_unset() {
    let yaml = r"
env:
  SHARED: top
  DROP: null
  OVERRIDE: top
services:
  s:
    command: x
    env:
      OVERRIDE: service
      PORT: 8080
      FLAG: yes
      GONE: null
";
    let plan = load_with(
        yaml,
        &[
            ("DROP", "inherited"),
            ("GONE", "inherited"),
            ("KEEP", "inherited"),
            ("SHARED", "inherited"),
        ],
    );
    let e = &svc(&plan, "s").env;
    assert_eq!(e.get("SHARED").map(String::as_str), Some("top"));
    assert_eq!(e.get("OVERRIDE").map(String::as_str), Some("service"));
    assert_eq!(e.get("PORT").map(String::as_str), Some("8080"));
    assert_eq!(e.get("FLAG").map(String::as_str), Some("yes"));
    assert_eq!(e.get("KEEP").map(String::as_str), Some("inherited"));
    assert!(!e.contains_key("DROP") && !e.contains_key("GONE"));
}

#[test]
fn env_files_relative_to_config_dir() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "FROM_TOP=top\nSHADOWED=file\nLATER=first\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("later.env"), "LATER=second\n").unwrap();
    std::fs::create_dir(dir.path().join("conf")).unwrap();
    std::fs::write(
        dir.path().join("conf/api.env"),
        "API=file\nFROM_TOP=service-file\nBOTH=file\n",
    )
    .unwrap();
    let yaml = r"
env_file: [.env, later.env]
env:
  FROM_ENV: $FROM_TOP
services:
  api:
    command: echo ${LATER} ${SHADOWED}
    env_file: conf/api.env
    env:
      BOTH: service
";
    let path = dir.path().join("pk.yaml");
    std::fs::write(&path, yaml).unwrap();
    let cwd = dir.path().join("conf");
    // load() walks up from cwd; PK_FILE is not set in the test environment.
    let from_disk = pk::plan::load(&[], &cwd).map(|p| p.name).ok();
    assert!(from_disk.is_some());
    let plan = load_str(yaml, &path, &env(&[("SHADOWED", "shell")])).unwrap();
    let api = svc(&plan, "api");
    assert_eq!(shell(&plan, "api"), "echo second shell");
    assert_eq!(api.env.get("FROM_ENV").map(String::as_str), Some("top"));
    assert_eq!(
        api.env.get("SHADOWED").map(String::as_str),
        Some("shell"),
        "the inherited env beats env_file"
    );
    assert_eq!(
        api.env.get("FROM_TOP").map(String::as_str),
        Some("service-file")
    );
    assert_eq!(api.env.get("API").map(String::as_str), Some("file"));
    assert_eq!(api.env.get("BOTH").map(String::as_str), Some("service"));
}

#[test]
fn merge_keys_with_extension_anchors() {
    let yaml = r"
x-base: &base
  restart: on-failure
  env: { COMMON: '1' }
  shutdown: { signal: SIGHUP, grace: 1m30s }
services:
  a:
    <<: *base
    command: [sleep, 5]
  b:
    <<: *base
    command: run b
    restart: always
    x-note: ignored
";
    let plan = load(yaml);
    let a = svc(&plan, "a");
    assert_eq!(
        a.run,
        RunSpec::Command(CommandSpec::Argv(vec!["sleep".into(), "5".into()]))
    );
    assert_eq!(a.restart.policy, RestartPolicy::OnFailure);
    assert_eq!(a.env.get("COMMON").map(String::as_str), Some("1"));
    assert_eq!(a.shutdown.signal.name, "HUP");
    assert_eq!(a.shutdown.grace, Duration::from_secs(90));
    assert_eq!(svc(&plan, "b").restart.policy, RestartPolicy::Always);
}

#[test]
fn every_condition_spelling() {
    let mut yaml = String::from("services:\n  dep:\n    command: x\n    ready: { exec: 'true' }\n");
    let spellings = ["started", "healthy", "completed", "completed_successfully"];
    let mut expected = Vec::new();
    for (i, bare) in spellings.iter().enumerate() {
        for (j, prefix) in ["", "service_", "process_"].iter().enumerate() {
            let _ = write!(
                yaml,
                "  s{i}{j}:\n    command: x\n    depends_on: {{ dep: {prefix}{bare} }}\n"
            );
            expected.push((format!("s{i}{j}"), *bare));
        }
    }
    let plan = load(&yaml);
    for (name, bare) in expected {
        assert_eq!(
            svc(&plan, &name).depends_on[0].condition.as_str(),
            bare,
            "{name}"
        );
    }
}

#[test]
fn depends_on_forms() {
    let yaml = r"
services:
  a: { command: x, ready: { log: 'listening on \d+' } }
  b: { command: x }
  list: { command: x, depends_on: [a, b] }
  short: { command: x, depends_on: { a: service_healthy } }
  long:
    command: x
    depends_on:
      a: { condition: healthy, required: false, restart: true }
      b: {}
";
    let plan = load(yaml);
    let list = &svc(&plan, "list").depends_on;
    assert_eq!(
        list.iter()
            .map(|d| (d.service, d.condition))
            .collect::<Vec<_>>(),
        [(0, Condition::Started), (1, Condition::Started)]
    );
    assert_eq!(
        svc(&plan, "short").depends_on[0].condition,
        Condition::Healthy
    );
    let long = &svc(&plan, "long").depends_on;
    assert!(!long[0].required && long[0].restart);
    assert!(long[1].required && !long[1].restart && long[1].condition == Condition::Started);
    let ready = svc(&plan, "a").ready.as_ref().unwrap();
    assert!(matches!(&ready.check, ProbeCheck::Log(re) if re.is_match("listening on 8080")));
}

#[test]
fn restart_short_and_long_forms() {
    let yaml = r#"
services:
  bare_no: { command: x, restart: no }
  quoted_no: { command: x, restart: "no" }
  false_no: { command: x, restart: false }
  on_failure: { command: x, restart: on-failure }
  always: { command: x, restart: always }
  long:
    command: x
    restart: { policy: always, max: 2, window: 10s, backoff: { initial: 1s, max: 5s } }
  partial:
    command: x
    restart: { policy: no, max: 9 }
"#;
    let plan = load(yaml);
    for (name, policy) in [
        ("bare_no", RestartPolicy::No),
        ("quoted_no", RestartPolicy::No),
        ("false_no", RestartPolicy::No),
        ("on_failure", RestartPolicy::OnFailure),
        ("always", RestartPolicy::Always),
        ("long", RestartPolicy::Always),
        ("partial", RestartPolicy::No),
    ] {
        assert_eq!(svc(&plan, name).restart.policy, policy, "{name}");
    }
    let long = svc(&plan, "long").restart;
    assert_eq!(
        (
            long.max,
            long.window,
            long.backoff_initial,
            long.backoff_max
        ),
        (
            2,
            Duration::from_secs(10),
            Duration::from_secs(1),
            Duration::from_secs(5)
        )
    );
    let partial = svc(&plan, "partial").restart;
    assert_eq!((partial.max, partial.window), (9, Duration::from_secs(60)));
}

#[test]
fn working_dir_top_grace_and_shutdown() {
    let yaml = r"
name: custom
grace: 3s
services:
  a:
    command: x
    working_dir: ./sub/../other/./dir
    shutdown: { command: [pg_ctl, stop] }
  b:
    command: x
    working_dir: /abs
    shutdown: { signal: KILL, grace: 250ms }
";
    let plan = load(yaml);
    assert_eq!(plan.name, "custom");
    let a = svc(&plan, "a");
    assert_eq!(a.working_dir, PathBuf::from("/project/other/dir"));
    assert_eq!(a.shutdown.grace, Duration::from_secs(3));
    assert_eq!(
        a.shutdown.command,
        Some(CommandSpec::Argv(vec!["pg_ctl".into(), "stop".into()]))
    );
    let b = svc(&plan, "b");
    assert_eq!(b.working_dir, PathBuf::from("/abs"));
    assert_eq!(b.shutdown.signal, StopSignal::KILL);
    assert_eq!(b.shutdown.grace, Duration::from_millis(250));
}

#[test]
fn probes_with_all_settings() {
    let yaml = r"
services:
  s:
    command: x
    ready:
      http: http://localhost/ready
      status: [200, 204]
      headers: { Authorization: Bearer x, X-Retry: 3 }
      initial_delay: 2s
      interval: 500ms
      timeout: 2s
      retries: 7
      deadline: 2m
    alive: { exec: curl -f localhost, retries: 1 }
    watch: { paths: [src], ignore: ['*.tmp'], debounce: 1s, action: 'signal:HUP', restart_dependents: true }
";
    let plan = load(yaml);
    let s = svc(&plan, "s");
    let ready = s.ready.as_ref().unwrap();
    assert!(
        matches!(&ready.check, ProbeCheck::Http { host, port: 80, path, status, headers } if host == "localhost" && path == "/ready" && status == &[200, 204] && headers == &[("Authorization".to_owned(), "Bearer x".to_owned()), ("X-Retry".to_owned(), "3".to_owned())])
    );
    assert_eq!(
        (
            ready.initial_delay,
            ready.interval,
            ready.timeout,
            ready.retries,
            ready.deadline
        ),
        (
            Duration::from_secs(2),
            Duration::from_millis(500),
            Duration::from_secs(2),
            7,
            Some(Duration::from_secs(120))
        )
    );
    let alive = s.alive.as_ref().unwrap();
    assert!(
        matches!(&alive.check, ProbeCheck::Exec(CommandSpec::Shell(c)) if c == "curl -f localhost")
    );
    assert_eq!(alive.retries, 1);
}

const SELECT_YAML: &str = r"
services:
  db: { command: x }
  cache: { command: x, disabled: true }
  api: { command: x, depends_on: [db, cache] }
  tool: { command: x, disabled: true, depends_on: [db] }
  web: { command: x }
";

#[test]
fn select_semantics() {
    let plan = load(SELECT_YAML);
    // No names: every enabled service and its dependencies (the disabled cache is pulled in by api).
    assert_eq!(select(&plan, &[]).unwrap(), [true, true, true, false, true]);
    assert_eq!(
        select(&plan, &["tool".into()]).unwrap(),
        [true, false, false, true, false]
    );
    assert_eq!(
        select(&plan, &["db".into(), "web".into()]).unwrap(),
        [true, false, false, false, true]
    );
    let err = select(&plan, &["wbe".into()]).unwrap_err();
    let text = err.render(false);
    assert!(text.contains("no service named `wbe`"), "{text}");
    assert!(text.contains("did you mean `web` for `wbe`?"), "{text}");
}

#[test]
fn start_order_respects_dependencies_then_file_order() {
    let yaml = r"
services:
  web: { command: x, depends_on: [api] }
  api: { command: x, depends_on: [db, cache] }
  cache: { command: x }
  db: { command: x }
  lone: { command: x }
";
    let plan = load(yaml);
    let names: Vec<&str> = plan
        .order
        .iter()
        .map(|&i| plan.services[i].name.as_str())
        .collect();
    assert_eq!(names, ["cache", "db", "api", "web", "lone"]);
}

#[test]
fn graph_text_and_dot() {
    let plan = load(include_str!("config_fixtures/design.yaml"));
    assert_eq!(
        render_graph(&plan, false),
        "shop: 4 services in start order
  1. db       [ready: tcp 127.0.0.1:5432]
  2. migrate  ← db (healthy)
  3. api      ← migrate (completed_successfully), db (healthy, restart)  [ready: http http://127.0.0.1:8080/health; alive: http http://127.0.0.1:8080/health]
  4. logs
"
    );
    assert_eq!(
        render_graph(&plan, true),
        r#"digraph "shop" {
  rankdir=LR;
  node [shape=box];
  "db";
  "migrate";
  "api";
  "logs";
  "migrate" -> "db" [label="healthy"];
  "api" -> "migrate" [label="completed_successfully"];
  "api" -> "db" [label="healthy"];
}
"#
    );
    let plan = load(SELECT_YAML);
    let text = render_graph(&plan, false);
    assert!(text.contains("  2. cache  [disabled]\n"), "{text}");
    assert!(render_graph(&plan, true).contains("  \"cache\" [style=dashed];\n"));
}
