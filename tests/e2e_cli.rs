//! The `pk` commands that do not run a stack, and `pk up SERVICE` (issue #2): check, graph,
//! schema, service selection, the plain output format.

mod support;

use support::{Project, notice_at, output_at};

const BROKEN: &str = "grace: 10\nservices:\n  api:\n    comand: cargo run\n  web:\n    command: x\n    depends_on: [apii]\n";

#[test]
fn pk_check_reports_every_error_with_file_line_col_and_exits_2() {
    let p = Project::new(BROKEN);
    let out = p.pk(&["check"]).run();
    assert_eq!(out.code, 2);
    assert!(out.lines.is_empty(), "{}", out.stdout());
    // Pinned byte for byte: this is what a user reads.
    let expected = "  × `grace`: `10` has no unit
   ╭─[pk.yaml:1:8]
 1 │ grace: 10
   ·        ─┬
   ·         ╰── here
 2 │ services:
   ╰────
  help: add a unit, e.g. `10s` or `10ms`

  × unknown key `comand` in `services.api`
   ╭─[pk.yaml:4:5]
 3 │   api:
 4 │     comand: cargo run
   ·     ───┬──
   ·        ╰── unknown key
 5 │   web:
   ╰────
  help: did you mean `command`?

  × service `web` depends on `apii`, which is not a service
   ╭─[pk.yaml:7:18]
 6 │     command: x
 7 │     depends_on: [apii]
   ·                  ──┬─
   ·                    ╰── unknown service
   ╰────
  help: did you mean `api`?

3 errors in pk.yaml
";
    assert_eq!(out.stderr, expected);
}

#[test]
fn pk_check_accepts_a_good_file() {
    let p = Project::new("services:\n  a: { command: 'true' }\n  b: { command: 'true' }\n");
    let out = p.pk(&["check"]).run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let expected = format!("{}: ok (2 services)", p.config_path().display());
    assert_eq!(out.lines, [expected]);
}

const GRAPH: &str = r#"
name: shop
services:
  db:
    command: "true"
    ready: { tcp: "127.0.0.1:1" }
  migrate:
    command: "true"
    depends_on: { db: healthy }
    timeout: 5m
  api:
    command: "true"
    depends_on: { migrate: completed_successfully, db: started }
"#;

#[test]
fn pk_graph_prints_the_dag_as_text() {
    let out = Project::new(GRAPH).pk(&["graph"]).run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout(),
        "shop: 3 services in start order
  1. db       [ready: tcp 127.0.0.1:1]
  2. migrate  ← db (healthy)  [timeout 5m]
  3. api      ← migrate (completed_successfully), db (started)
"
    );
}

#[test]
fn pk_graph_dot_prints_graphviz() {
    let out = Project::new(GRAPH).pk(&["graph", "--dot"]).run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let dot = out.stdout();
    assert!(dot.starts_with("digraph \"shop\" {\n"), "{dot}");
    assert!(dot.ends_with("}\n"), "{dot}");
    for edge in [
        "\"migrate\" [label=\"migrate (timeout 5m)\"];",
        "\"migrate\" -> \"db\" [label=\"healthy\"];",
        "\"api\" -> \"migrate\" [label=\"completed_successfully\"];",
        "\"api\" -> \"db\";",
    ] {
        assert!(dot.contains(edge), "missing {edge} in:\n{dot}");
    }
}

#[test]
fn pk_schema_prints_the_checked_in_schema() {
    let out = Project::new("services: {}\n").pk(&["schema"]).run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let checked_in = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/pk.schema.json"),
    )
    .unwrap();
    assert!(
        out.stdout() == checked_in,
        "pk schema differs from schemas/pk.schema.json"
    );
}

#[test]
fn pk_up_service_starts_only_it_and_its_dependencies() {
    let p = Project::new(
        r#"
services:
  base:  { command: "echo base" }
  mid:   { command: "echo mid", depends_on: { base: completed } }
  top:   { command: "echo top", depends_on: [mid] }
  other: { command: "echo other" }
  docs:  { command: "echo docs", disabled: true }
"#,
    );
    let out = p.up().args(&["mid"]).run();
    assert_eq!(out.code, 0, "{}", out.stdout());
    assert!(output_at(&out.lines, "base", "base") < notice_at(&out.lines, "mid", "started"));
    output_at(&out.lines, "mid", "mid");
    for absent in ["top ", "other ", "docs "] {
        assert!(
            !out.lines.iter().any(|l| l.starts_with(absent)),
            "{absent} should not run:\n{}",
            out.stdout()
        );
    }

    // A disabled service runs when named.
    let out = p.up().args(&["docs"]).run();
    assert_eq!(out.code, 0, "{}", out.stdout());
    output_at(&out.lines, "docs", "docs");
    assert!(!out.lines.iter().any(|l| l.starts_with("base ")));
}

#[test]
fn plain_lines_are_padded_to_the_longest_name() {
    let p = Project::new(
        "services:\n  db: { command: 'echo hello' }\n  worker: { command: 'true', depends_on: { db: completed } }\n",
    );
    let out = p.up().run();
    assert_eq!(out.code, 0, "{}", out.stdout());
    assert!(
        out.lines[0].starts_with("pk     * containment: "),
        "{}",
        out.stdout()
    );
    assert!(
        out.lines.iter().any(|l| l == "db     | hello"),
        "{}",
        out.stdout()
    );
    assert!(
        out.lines.iter().any(|l| l == "db     * completed"),
        "{}",
        out.stdout()
    );
    assert!(
        out.lines.iter().any(|l| l == "worker * completed"),
        "{}",
        out.stdout()
    );
}

#[test]
fn pk_diagnostics_reach_stderr_and_pk_log_filters_them() {
    let p = support::Project::new("services:\n  hello: { command: 'echo hi' }\n");
    // An unknown PK_CONTAINMENT value is a `tracing::warn!` inside containment detection.
    let out = p.up().env("PK_CONTAINMENT", "bogus").run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("pk: warn: unknown PK_CONTAINMENT value (expected pgroup, cgroup or auto); detecting value=\"bogus\""),
        "{}",
        out.stderr
    );
    let quiet = p
        .up()
        .env("PK_CONTAINMENT", "bogus")
        .env("PK_LOG", "off")
        .run();
    assert!(!quiet.stderr.contains("PK_CONTAINMENT"), "{}", quiet.stderr);
}
