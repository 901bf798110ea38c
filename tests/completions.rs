//! `pk completions` and `pk man` (issue 12 part 4), checked in the real programs: the bash
//! script is loaded into a real bash (driven through its completion function, and typed at
//! an interactive bash on a pseudo-terminal with a real TAB); fish through `complete -C` when
//! fish is installed; the man page rendered by `man -l`. Each child is waited for with a
//! deadline and killed by pid if a test fails half-way.

#![expect(
    clippy::disallowed_methods,
    reason = "runs shells and man, not services"
)]

mod support;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use portable_pty::{CommandBuilder, PtySize, native_pty_system};
use support::{DEADLINE, PidGuard, Project, wait_until};

const CONFIG: &str = "services:\n  web:\n    command: sleep 1\n  worker:\n    command: sleep 1\n  db:\n    command: sleep 1\n";
const OTHER: &str = "services:\n  wombat:\n    command: sleep 1\n  api:\n    command: sleep 1\n";

/// PATH with the pk under test first, as an installed pk would be.
fn path_with_pk() -> String {
    let bin = Path::new(env!("CARGO_BIN_EXE_pk")).parent().unwrap();
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// Runs `program args…` in `dir` with pk on PATH; its stdout, after checking it succeeded
/// within the deadline (killed by pid otherwise).
fn run(dir: &Path, program: &str, args: &[&str], stdin: &str) -> String {
    let mut child = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("PATH", path_with_pk())
        .env_remove("PK_FILE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let mut guard = PidGuard::new();
    guard.add(child.id());
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let err_thread = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = err.read_to_string(&mut text);
        text
    });
    let mut stdout = String::new();
    out.read_to_string(&mut stdout).unwrap();
    let status = wait_until(DEADLINE, &format!("{program} to exit"), || {
        child.try_wait().unwrap()
    });
    let stderr = err_thread.join().unwrap();
    assert!(
        status.success(),
        "{program} failed ({status}):\n{stdout}\n{stderr}"
    );
    stdout
}

fn pk_completions(shell: &str) -> String {
    let out = Project::new(CONFIG).pk(&["completions", shell]).run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    out.stdout()
}

/// Loads the script the way the README says (`source <(pk completions bash)`), then asks the
/// function `complete -p pk` names for each line, as bash does on TAB: `COMP_WORDS`, `COMP_CWORD`,
/// and the arguments command, word, previous word.
#[test]
fn bash_completes_service_names_from_the_config() {
    let p = Project::new(CONFIG).file("other.yaml", OTHER);
    let script = r#"
source <(pk completions bash)
registered=$(complete -p pk)
fn=${registered#*-F }; fn=${fn%% *}
ask() {
    COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMPREPLY=()
    "$fn" pk "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
    echo "$*|${COMPREPLY[*]}"
}
ask pk up w
ask pk restart ''
ask pk -f other.yaml restart w
ask pk stop --file other.yaml ''
ask pk logs -n 5 w
ask pk up --color ''
ask pk up --plain wo
ask pk re
ask pk check w
"#;
    let out = run(p.path(), "bash", &["--norc", "--noprofile"], script);
    let answers: Vec<&str> = out.lines().collect();
    assert_eq!(
        answers,
        [
            "pk up w|web worker",
            "pk restart |web worker db",
            "pk -f other.yaml restart w|wombat",
            "pk stop --file other.yaml |wombat api",
            "pk logs -n 5 w|web worker",
            // The value of an option is not a service: clap's completion answers.
            "pk up --color |auto always never",
            "pk up --plain wo|worker",
            "pk re|restart",
            // `check` takes no service.
            "pk check w|",
        ],
        "{out}"
    );
}

/// A real TAB at an interactive bash on a pseudo-terminal.
#[test]
fn an_interactive_bash_lists_the_services_on_tab() {
    let p = Project::new(CONFIG);
    let pty = native_pty_system()
        .openpty(PtySize {
            rows: 24,
            cols: 100,
            pixel_width: 0,
            pixel_height: 0,
        })
        .expect("openpty");
    let mut cmd = CommandBuilder::new("bash");
    cmd.args(["--norc", "--noprofile", "-i"]);
    cmd.cwd(p.path());
    cmd.env("PATH", path_with_pk());
    cmd.env("TERM", "dumb");
    cmd.env("INPUTRC", "/dev/null");
    cmd.env("PS1", "$ ");
    cmd.env_remove("PK_FILE");
    let mut child = pty.slave.spawn_command(cmd).expect("spawn bash on the pty");
    drop(pty.slave);
    let mut guard = PidGuard::new();
    guard.add(child.process_id().unwrap());
    let screen = Arc::new(Mutex::new(String::new()));
    let mut reader = pty.master.try_clone_reader().unwrap();
    let sink = Arc::clone(&screen);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let mut input = pty.master.take_writer().unwrap();
    input
        .write_all(
            b"bind 'set show-all-if-ambiguous on'; source <(pk completions bash); echo LOADED\n",
        )
        .unwrap();
    wait_until(DEADLINE, "bash to load the script", || {
        screen.lock().unwrap().contains("\nLOADED").then_some(())
    });
    let before = screen.lock().unwrap().len();
    input.write_all(b"pk up w\t").unwrap();
    let listed = wait_until(DEADLINE, "bash to list web and worker", || {
        let text = screen.lock().unwrap()[before..].to_owned();
        text.lines()
            .any(|l| {
                let words: Vec<&str> = l.split_whitespace().collect();
                words == ["web", "worker"]
            })
            .then_some(text)
    });
    assert!(!listed.contains("db"), "{listed}");
    // Erase the line, leave.
    input.write_all(b"\x15exit\n").unwrap();
    wait_until(Duration::from_secs(5), "bash to exit", || {
        child.try_wait().unwrap()
    });
    drop(pty.master);
}

/// fish answers `complete -C LINE` with what TAB would offer.
#[test]
fn fish_completes_service_names_when_fish_is_installed() {
    if Command::new("fish").arg("--version").output().is_err() {
        let _ = std::io::stderr()
            .write_all(b"SKIPPED fish_completes_service_names: fish is not installed\n");
        return;
    }
    let p = Project::new(CONFIG).file("other.yaml", OTHER);
    let script = pk_completions("fish")
        + "complete -C 'pk up w'\necho SEP\ncomplete -C 'pk -f other.yaml restart w'\n";
    let out = run(p.path(), "fish", &["--no-config"], &script);
    assert_eq!(out, "web\nworker\nSEP\nwombat\n", "{out}");
}

/// The page renders without a warning from groff and says what `--help` says.
#[test]
fn the_man_page_renders_with_man() {
    let p = Project::new(CONFIG);
    let out = p.pk(&["man"]).run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    std::fs::write(p.path().join("pk.1"), out.stdout()).unwrap();
    assert!(
        Command::new("man").arg("--version").output().is_ok(),
        "`man` is missing: install man-db (.ci/run does)"
    );
    let mut child = Command::new("man")
        .args(["--warnings", "-P", "cat", "-l", "pk.1"])
        .current_dir(p.path())
        .env("MANWIDTH", "100")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = PidGuard::new();
    guard.add(child.id());
    let (mut stdout, mut stderr) = (String::new(), String::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = wait_until(DEADLINE, "man to exit", || child.try_wait().unwrap());
    assert!(status.success(), "{stderr}");
    assert_eq!(stderr, "", "groff warnings");
    for wanted in [
        "NAME",
        "pk - A declarative process orchestrator",
        "pk up",
        "--plain",
        "pk completions",
        "pk restart",
        "SERVICE",
    ] {
        assert!(stdout.contains(wanted), "no `{wanted}` in:\n{stdout}");
    }
    assert!(!stdout.contains("__complete"), "the helper is hidden");
}
