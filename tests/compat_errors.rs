//! The exact text a user sees for a broken process-compose setup (pinned with insta): located
//! in the file the problem is in, every problem at once, nothing started.

use std::collections::BTreeMap;
use std::path::Path;

fn errors(files: &[(&str, &str)]) -> String {
    let env: BTreeMap<String, String> = [("HOME".to_owned(), "/home/u".to_owned())].into();
    let files: Vec<(&Path, &str)> = files.iter().map(|(p, t)| (Path::new(*p), *t)).collect();
    match pk::plan::load_strs_with_warnings(&files, Path::new("/project"), &env) {
        Ok(_) => panic!("expected an error for {files:?}"),
        Err(e) => e.render(false),
    }
}

#[test]
fn unknown_dependency() {
    insta::assert_snapshot!(errors(&[(
        "/project/process-compose.yaml",
        "processes:\n  db:\n    command: postgres\n  api:\n    command: ./api\n    depends_on:\n      dbb:\n        condition: process_started\n",
    )]));
}

#[test]
fn cycle_across_merged_files() {
    insta::assert_snapshot!(errors(&[
        (
            "/project/process-compose.yaml",
            "processes:\n  a:\n    command: ./a\n    depends_on:\n      b:\n        condition: process_started\n  b:\n    command: ./b\n",
        ),
        (
            "/project/process-compose.override.yaml",
            "processes:\n  b:\n    depends_on:\n      a:\n        condition: process_completed\n",
        ),
    ]));
}

#[test]
fn template_that_cannot_render() {
    insta::assert_snapshot!(errors(&[(
        "/project/process-compose.yaml",
        "vars:\n  PORT: 8080\nprocesses:\n  web:\n    command: \"serve --port {{ .PORT }} --host {{ .HOST }}\"\n  job:\n    command: \"{{ if .PORT }}run{{ end }}\"\n",
    )]));
}

#[test]
fn strict_turns_warnings_into_errors_and_bad_values_are_errors() {
    insta::assert_snapshot!(errors(&[(
        "/project/process-compose.yaml",
        "is_strict: true\nprocesses:\n  web:\n    command: ./web\n    is_elevated: true\n    colour: red\n    availability:\n      restart: on_failur\n    shutdown:\n      signal: 99\n    readiness_probe:\n      http_get:\n        port: ${NOPE}\n    depends_on:\n      web2:\n        condition: process_log_ready\n  web2:\n    command: ./web2\n",
    )]));
}

#[test]
fn docker_compose_file_is_refused_clearly() {
    insta::assert_snapshot!(errors(&[(
        "/project/compose.yaml",
        "services:\n  db:\n    image: postgres:16\n",
    )]));
}

#[test]
fn formats_cannot_be_mixed() {
    insta::assert_snapshot!(errors(&[
        (
            "/project/process-compose.yaml",
            "processes:\n  a:\n    command: x\n"
        ),
        ("/project/pk.yaml", "services:\n  a:\n    command: x\n"),
    ]));
}

#[test]
fn pk_yaml_cycle_across_merged_files() {
    insta::assert_snapshot!(errors(&[
        (
            "/project/pk.yaml",
            "services:\n  a:\n    command: ./a\n    depends_on: [b]\n  b:\n    command: ./b\n",
        ),
        (
            "/project/pk.override.yaml",
            "services:\n  b:\n    depends_on:\n      a: completed\n  c:\n    command: ./c\n    depends_on: [nope]\n",
        ),
    ]));
}

#[test]
fn bad_http_probe_headers() {
    insta::assert_snapshot!(errors(&[(
        "/project/process-compose.yaml",
        "processes:\n  web:\n    command: ./web\n    readiness_probe:\n      http_get:\n        port: 8080\n        headers:\n          \"X Token\": a\n          Ok: \"line\\nbreak\"\n",
    )]));
}

#[test]
fn replica_number_in_a_probe_port_is_strict_error() {
    // Every other use of `{{.PC_REPLICA_NUM}}` is each copy's number (tests/replicas.rs).
    insta::assert_snapshot!(errors(&[(
        "/project/process-compose.yaml",
        "is_strict: true\nprocesses:\n  web:\n    replicas: 2\n    command: serve 808{{.PC_REPLICA_NUM}}\n    readiness_probe:\n      http_get:\n        port: \"808{{.PC_REPLICA_NUM}}\"\n",
    )]));
}
