//! `pk export nomad` (issue 14): no Nomad agent runs here, so the job is checked on paper: it
//! is parsed back by an HCL2 parser (hcl-rs), every block and attribute it uses is on the list
//! taken from Nomad's job-specification pages (named in docs/export.md), enumerated values are
//! ones those pages allow, and the lifecycle and dependency mapping is pinned.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hcl::{Block, Body, Expression};
use support::{Output, Project};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn every_key() -> PathBuf {
    repo().join("tests/export_fixtures/every_key.yaml")
}

fn web() -> PathBuf {
    repo().join("examples/web/pk.yaml")
}

/// `pk export nomad -f config ARGS…` with the job on stdout.
fn export(config: &Path, args: &[&str]) -> Output {
    let p = Project::new("services:\n  unused:\n    command: [true]\n");
    let config = config.display().to_string();
    let mut command = vec!["export", "nomad", "-f", &config];
    command.extend_from_slice(args);
    let out = p.pk(&command).run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    out
}

/// Blocks and attributes allowed at each block path, from Nomad's job-specification pages:
/// job, group, reschedule, network (port), task, lifecycle, restart, env, template, service,
/// check, `check_restart`, and the `raw_exec`/`exec` driver pages for `config`.
const ALLOWED: &[(&str, &[&str], &[&str])] = &[
    (
        "job",
        &["type", "datacenters", "region", "namespace", "priority"],
        &["group"],
    ),
    (
        "job.group",
        &["count"],
        &["reschedule", "network", "task", "restart", "service"],
    ),
    (
        "job.group.reschedule",
        &[
            "attempts",
            "interval",
            "delay",
            "delay_function",
            "max_delay",
            "unlimited",
        ],
        &[],
    ),
    ("job.group.network", &["mode"], &["port"]),
    (
        "job.group.network.port",
        &["static", "to", "host_network"],
        &[],
    ),
    (
        "job.group.task",
        &[
            "driver",
            "kill_signal",
            "kill_timeout",
            "user",
            "leader",
            "shutdown_delay",
        ],
        &[
            "lifecycle",
            "config",
            "restart",
            "env",
            "template",
            "service",
            "resources",
        ],
    ),
    ("job.group.task.lifecycle", &["hook", "sidecar"], &[]),
    ("job.group.task.config", &["command", "args"], &[]),
    (
        "job.group.task.restart",
        &["attempts", "interval", "delay", "mode", "render_templates"],
        &[],
    ),
    (
        "job.group.task.template",
        &["source", "destination", "env", "data", "change_mode"],
        &[],
    ),
    (
        "job.group.task.service",
        &["provider", "name", "port", "tags", "address_mode", "task"],
        &["check"],
    ),
    (
        "job.group.task.service.check",
        &[
            "name",
            "type",
            "port",
            "path",
            "interval",
            "timeout",
            "method",
            "protocol",
            "address_mode",
        ],
        &["check_restart"],
    ),
    (
        "job.group.task.service.check.check_restart",
        &["limit", "grace", "ignore_warnings"],
        &[],
    ),
];

/// Values the pages enumerate, for the attributes pk writes.
const ENUMS: &[(&str, &[&str])] = &[
    ("job.type", &["service", "batch", "system", "sysbatch"]),
    ("job.group.task.driver", &["raw_exec", "exec"]),
    (
        "job.group.task.lifecycle.hook",
        &["prestart", "poststart", "poststop"],
    ),
    ("job.group.task.restart.mode", &["fail", "delay"]),
    ("job.group.task.service.provider", &["nomad", "consul"]),
    // The Nomad service provider runs http and tcp checks (script checks need Consul).
    ("job.group.task.service.check.type", &["http", "tcp"]),
];

/// Attributes that hold a Go duration (`250ms`, `5s`, `1m`).
const DURATIONS: &[&str] = &[
    "job.group.task.kill_timeout",
    "job.group.task.restart.interval",
    "job.group.task.restart.delay",
    "job.group.task.service.check.interval",
    "job.group.task.service.check.timeout",
    "job.group.task.service.check.check_restart.grace",
];

fn check_body(body: &Body, path: &str, problems: &mut Vec<String>) {
    let allowed = ALLOWED.iter().find(|(p, _, _)| *p == path);
    for attr in body.attributes() {
        let key = attr.key.as_str();
        let full = format!("{path}.{key}");
        match allowed {
            // Any variable name is an `env` attribute.
            _ if path == "job.group.task.env" => {}
            Some((_, attrs, _)) if attrs.contains(&key) => {}
            _ => problems.push(format!(
                "attribute `{full}` is not in Nomad's job specification"
            )),
        }
        if let Some((_, values)) = ENUMS.iter().find(|(p, _)| *p == full) {
            match &attr.expr {
                Expression::String(s) if values.contains(&s.as_str()) => {}
                other => problems.push(format!("`{full}` = {other:?}: not one of {values:?}")),
            }
        }
        if DURATIONS.contains(&full.as_str()) {
            let ok = matches!(&attr.expr, Expression::String(s)
                if s.strip_suffix("ms").or_else(|| s.strip_suffix('s')).or_else(|| s.strip_suffix('m')).or_else(|| s.strip_suffix('h'))
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())));
            if !ok {
                problems.push(format!("`{full}` = {:?} is not a duration", attr.expr));
            }
        }
    }
    for block in body.blocks() {
        let name = block.identifier.as_str();
        let full = format!("{path}.{name}");
        if !allowed.is_some_and(|(_, _, blocks)| blocks.contains(&name)) {
            problems.push(format!(
                "block `{full}` is not in Nomad's job specification"
            ));
        }
        check_body(&block.body, &full, problems);
    }
}

/// Parses the job back and checks every name and enumerated value in it.
fn check_job(text: &str) -> Body {
    let body: Body = hcl::parse(text).unwrap_or_else(|e| panic!("not HCL2: {e}\n{text}"));
    let mut problems = Vec::new();
    let jobs: Vec<&Block> = body.blocks().collect();
    assert_eq!(jobs.len(), 1, "one job block");
    assert_eq!(body.attributes().count(), 0);
    assert_eq!(jobs[0].identifier.as_str(), "job");
    check_body(&jobs[0].body, "job", &mut problems);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    body
}

/// Each task's lifecycle: `main`, `prestart`, `prestart sidecar`, `poststart`, …
fn lifecycles(body: &Body) -> BTreeMap<String, String> {
    let job = body.blocks().next().unwrap();
    let group = job
        .body
        .blocks()
        .find(|b| b.identifier.as_str() == "group")
        .unwrap();
    group
        .body
        .blocks()
        .filter(|b| b.identifier.as_str() == "task")
        .map(|task| {
            let name = task.labels[0].as_str().to_owned();
            let phase = task
                .body
                .blocks()
                .find(|b| b.identifier.as_str() == "lifecycle")
                .map_or_else(
                    || "main".to_owned(),
                    |l| {
                        let get = |k: &str| {
                            l.body
                                .attributes()
                                .find(|a| a.key.as_str() == k)
                                .map(|a| a.expr.to_string())
                        };
                        let hook = get("hook").unwrap_or_default().trim_matches('"').to_owned();
                        if get("sidecar").as_deref() == Some("true") {
                            format!("{hook} sidecar")
                        } else {
                            hook
                        }
                    },
                );
            (name, phase)
        })
        .collect()
}

fn pinned(text: &str) -> String {
    let pk = std::fs::canonicalize(env!("CARGO_BIN_EXE_pk")).unwrap();
    text.replace(&pk.display().to_string(), "[PK]")
        .replace(&repo().display().to_string(), "[REPO]")
}

#[test]
fn examples_web_job_parses_uses_only_documented_names_and_is_pinned() {
    let out = export(&web(), &[]);
    let body = check_job(&out.stdout());
    let phases = lifecycles(&body);
    let expected: BTreeMap<String, String> = [
        ("db", "prestart sidecar"),
        ("migrate", "prestart"),
        ("api", "main"),
        ("worker", "poststart sidecar"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_owned(), b.to_owned()))
    .collect();
    assert_eq!(phases, expected);
    insta::assert_snapshot!(out.stderr, @"pk export: warning: migrate: waits for `db` (started), which Nomad cannot order: both start in the same lifecycle phase");
    insta::assert_snapshot!(pinned(&out.stdout()));
}

#[test]
fn every_key_job_parses_uses_only_documented_names_warns_and_is_pinned() {
    let out = export(&every_key(), &["--driver", "exec"]);
    let body = check_job(&out.stdout());
    let phases = lifecycles(&body);
    assert_eq!(phases["db"], "prestart sidecar", "{phases:?}");
    assert_eq!(phases["migrate"], "prestart", "{phases:?}");
    assert_eq!(
        phases["db-ready"], "prestart",
        "a healthy wait on a prestart sidecar: {phases:?}"
    );
    assert!(
        !phases.contains_key("docs"),
        "disabled and not needed: {phases:?}"
    );
    insta::assert_snapshot!(out.stderr);
    insta::assert_snapshot!(pinned(&out.stdout()));
}

#[test]
fn output_file_and_instructions() {
    let p = Project::new("services:\n  a:\n    command: [sleep, '1']\n");
    let out = p.pk(&["export", "nomad", "-o", "job.hcl"]).run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let path = p.path().join("job.hcl");
    let text = std::fs::read_to_string(&path).unwrap();
    check_job(&text);
    assert!(out.stdout().contains("nomad job run "), "{}", out.stdout());
}

#[test]
fn each_replica_is_its_own_task_with_its_copy_number() {
    let out = export(&repo().join("tests/export_fixtures/replicas.yaml"), &[]);
    let body = check_job(&out.stdout());
    let phases = lifecycles(&body);
    let tasks: Vec<&str> = phases.keys().map(String::as_str).collect();
    assert_eq!(tasks, ["api", "web-0", "web-1", "web-2"], "{phases:?}");
    for i in 0..3 {
        assert!(
            out.stdout().contains(&format!("PC_REPLICA_NUM = \"{i}\"")),
            "web-{i} carries its copy number:\n{}",
            out.stdout()
        );
    }
}
