//! The exact text a user sees for a broken pk.yaml (pinned with insta snapshots).

use std::collections::BTreeMap;
use std::path::Path;

fn errors(yaml: &str) -> String {
    let env: BTreeMap<String, String> = BTreeMap::new();
    match pk::plan::load_str(yaml, Path::new("/project/pk.yaml"), &env) {
        Ok(_) => panic!("expected an error for:\n{yaml}"),
        Err(e) => e.render(false),
    }
}

#[test]
fn unknown_key_with_suggestion() {
    insta::assert_snapshot!(errors("services:\n  api:\n    comand: cargo run\n"));
}

#[test]
fn unknown_key_without_close_match_lists_keys() {
    insta::assert_snapshot!(errors(
        "services:\n  api:\n    command: x\n    shutdown: { signal: TERM, timeout: 5s }\n"
    ));
}

#[test]
fn unknown_top_level_key() {
    insta::assert_snapshot!(errors("service:\n  api:\n    command: x\n"));
}

#[test]
fn wrong_type() {
    insta::assert_snapshot!(errors(
        "services:\n  api:\n    command: x\n    env: [A=1]\n"
    ));
}

#[test]
fn bad_duration() {
    insta::assert_snapshot!(errors(
        "grace: 10\nservices:\n  api:\n    command: x\n    ready: { tcp: 'localhost:80', interval: soon }\n"
    ));
}

#[test]
fn unknown_depends_on_name() {
    insta::assert_snapshot!(errors(
        "services:\n  postgres:\n    command: x\n  api:\n    command: x\n    depends_on: [postgress]\n"
    ));
}

#[test]
fn self_dependency() {
    insta::assert_snapshot!(errors(
        "services:\n  api:\n    command: x\n    depends_on: [api]\n"
    ));
}

#[test]
fn cycle() {
    insta::assert_snapshot!(errors(
        "services:\n  alpha:\n    command: x\n    depends_on: [beta]\n  beta:\n    command: x\n    depends_on: { gamma: started }\n  gamma:\n    command: x\n    depends_on: [alpha]\n"
    ));
}

#[test]
fn healthy_without_probe() {
    insta::assert_snapshot!(errors(
        "services:\n  db:\n    command: postgres\n  api:\n    command: x\n    depends_on: { db: healthy }\n"
    ));
}

#[test]
fn command_and_pipeline_both_or_neither() {
    insta::assert_snapshot!(errors(
        "services:\n  both:\n    command: x\n    pipeline: [[a], [b]]\n  neither:\n    working_dir: .\n  short:\n    pipeline: [[a]]\n"
    ));
}

#[test]
fn probe_with_zero_or_two_checks() {
    insta::assert_snapshot!(errors(
        "services:\n  a:\n    command: x\n    ready: { interval: 1s }\n    alive: { tcp: 'h:1', http: 'http://h/', deadline: 1s }\n"
    ));
}

#[test]
fn bad_values() {
    insta::assert_snapshot!(errors(
        r"services:
  a:
    command: x
    ready: { http: 'https://localhost/health' }
    alive: { log: 'ready (' }
    restart: sometimes
    shutdown: { signal: TREM }
    depends_on: { b: healthyy }
  b:
    command: ''
    ready: { tcp: localhost }
"
    ));
}

#[test]
fn required_variable_and_invalid_interpolation() {
    insta::assert_snapshot!(errors(
        "services:\n  a:\n    command: psql ${DATABASE_URL:?set it in .env}\n  b:\n    command: echo ${A/x/y}\n"
    ));
}

#[test]
fn invalid_service_name() {
    insta::assert_snapshot!(errors("services:\n  my api:\n    command: x\n"));
}

#[test]
fn several_errors_at_once() {
    insta::assert_snapshot!(errors(
        r"services:
  db:
    comand: postgres
    ready: { tcp: localhost, interval: 10 }
  api:
    command: [x]
    depends_on: { db: healthy, cache: started }
    restart: { policy: on-failure, max: many }
"
    ));
}

#[test]
fn error_in_merged_fragment_points_at_its_definition() {
    insta::assert_snapshot!(errors(
        "x-base: &base\n  restart: sometimes\n  env: { A: 1 }\nservices:\n  a:\n    <<: *base\n    command: x\n"
    ));
}

#[test]
fn syntax_error() {
    insta::assert_snapshot!(errors("services:\n  api:\n    command: [a, b\n  web: x\n"));
}

#[test]
fn duplicate_key() {
    insta::assert_snapshot!(errors(
        "services:\n  api:\n    command: a\n  api:\n    command: b\n"
    ));
}

#[test]
fn empty_file_and_no_services() {
    insta::assert_snapshot!(errors(""));
    insta::assert_snapshot!(errors("name: x\n"));
    insta::assert_snapshot!(errors("- just a list\n"));
}

#[test]
fn missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = pk::plan::load(&[], dir.path()).unwrap_err();
    let text = err.render(false);
    let dir_text = dir.path().display().to_string();
    // The message names the directory, mentions -f and lists every directory looked in.
    assert!(
        text.contains(&format!(
            "no pk.yaml or pk.yml found in {dir_text} or any parent directory"
        )),
        "{text}"
    );
    assert!(text.contains("`-f FILE`"), "{text}");
    let explicit = pk::plan::load(&[Path::new("nope.yaml").to_path_buf()], dir.path())
        .unwrap_err()
        .render(false);
    insta::assert_snapshot!(explicit.replace(&dir_text, "[DIR]"));
}

/// `load` of a pk.yaml with `contents` in a fresh directory, rendered, with the directory
/// replaced by `[DIR]`; fails the test if loading takes longer than the deadline (a hang).
fn load_file_errors(contents: &[u8], setup: impl FnOnce(&Path)) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pk.yaml"), contents).unwrap();
    setup(dir.path());
    let cwd = dir.path().to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let result = pk::plan::load(&[], &cwd)
            .map(|_| ())
            .map_err(|e| e.render(false));
        let _ = tx.send(result);
    });
    let result = rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("loading the config hung");
    let text = result.expect_err("expected an error");
    let shown = std::fs::canonicalize(dir.path()).unwrap();
    text.replace(&shown.display().to_string(), "[DIR]")
        .replace(&dir.path().display().to_string(), "[DIR]")
}

#[test]
fn invalid_utf8_is_located() {
    insta::assert_snapshot!(load_file_errors(
        b"services:\n  api:\n    command: \"echo caf\xe9\"\n",
        |_| {}
    ));
}

#[test]
fn env_file_reads_only_regular_files() {
    // /dev/zero grew without bound; a FIFO with no writer blocked forever.
    let text = load_file_errors(
        b"env_file: [/dev/zero]\nservices:\n  api: { command: x }\n",
        |_| {},
    );
    assert!(
        text.contains("cannot read env file `/dev/zero`: it is a device, not a regular file"),
        "{text}"
    );
    let text = load_file_errors(
        b"services:\n  api:\n    command: x\n    env_file: [fifo]\n",
        |dir| {
            let path =
                std::ffi::CString::new(dir.join("fifo").into_os_string().into_encoded_bytes())
                    .unwrap();
            // SAFETY: a valid NUL-terminated path.
            assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
        },
    );
    assert!(text.contains("it is a FIFO, not a regular file"), "{text}");
    insta::assert_snapshot!(text);
}

#[test]
fn deeply_nested_interpolation_is_an_error() {
    let mut value = "${X:-".repeat(30_000);
    value.push('d');
    value.push_str(&"}".repeat(30_000));
    let text = errors(&format!("services:\n  api:\n    command: \"{value}\"\n"));
    assert!(
        text.contains("interpolation defaults nested more than 32 deep"),
        "{}",
        &text[..text.len().min(2000)]
    );
}

#[test]
fn zero_run_timeout() {
    insta::assert_snapshot!(errors(
        "services:\n  migrate:\n    command: x\n    timeout: 0s\n"
    ));
}

#[test]
fn tty_with_a_pipeline() {
    insta::assert_snapshot!(errors(
        "services:\n  logs:\n    pipeline: [[tail, -F, a.log], [grep, ERROR]]\n    tty: true\n"
    ));
}

/// Issue 11, defect 8: an empty path and an empty `watch.paths` list are errors (the schema
/// says so too).
#[test]
fn empty_paths() {
    insta::assert_snapshot!(errors(
        "services:\n  api:\n    command: x\n    env_file: ''\n    watch:\n      paths: []\n"
    ));
}
