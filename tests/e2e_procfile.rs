//! A Procfile end to end with real processes: `sh -c`, `.env` (quotes, `export`, winning over
//! the environment), `PORT` per process type and per copy, and foreman's exit rule (one process
//! ends → the others are stopped, pk exits with its code). Bad lines start nothing.

mod support;

use support::{Backend, Project, is_output, notice_at, output_at};

const PROCFILE: &str = r#"# a comment, then a blank line

web: echo "web PORT=$PORT FOO=$FOO BAR=$BAR NAME=$PC_PROC_NAME"; touch web.up; exec sleep 1000
worker: while [ ! -e web.up ]; do sleep 0.02; done; echo "worker PORT=$PORT"; exit 3
"#;

const DOTENV: &str = "export FOO=\"a b\"\nBAR='single $x'\n";

fn procfile(backend: Backend) -> Project {
    Project::new("services: {}\n")
        .backend(backend)
        .file("Procfile", PROCFILE)
        .file(".env", DOTENV)
}

both_backends!(one_process_ending_stops_the_rest_with_its_exit_code);

fn one_process_ending_stops_the_rest_with_its_exit_code(backend: Backend) {
    let p = procfile(backend);
    let out = p
        .pk(&["-f", "Procfile", "up", "--plain", "--color", "never"])
        .env("FOO", "from the shell")
        .run();
    let lines = &out.lines;
    assert_eq!(
        out.code,
        3,
        "pk exits with worker's code\n{}{}",
        out.stdout(),
        out.stderr
    );
    output_at(lines, "web", "web PORT=5000 FOO=a b BAR=single $x NAME=web");
    output_at(lines, "worker", "worker PORT=5100");
    let ended = notice_at(
        lines,
        "worker",
        "exited 3; stopping the stack (exit_on_end)",
    );
    assert!(
        ended < notice_at(lines, "web", "stopped"),
        "{}",
        out.stdout()
    );
}

#[test]
fn scaled_copies_count_ports_up_from_their_type() {
    let p = Project::new("services: {}\n").file(
        "Procfile",
        "web: echo \"$PC_PROC_NAME $PC_REPLICA_NUM $PORT\"; exec sleep 1000\nclock: echo \"clock $PORT\"; exec sleep 1000\n",
    ).file(".env", "PORT=7000\n");
    let mut up = p
        .pk(&[
            "-f", "Procfile", "up", "--plain", "--color", "never", "--scale", "web=2",
        ])
        .spawn();
    let lines = up.wait_for_count("3 echoes", 3, |l| {
        is_output(l, "web-0", "web 0 7000")
            || is_output(l, "web-1", "web 1 7001")
            || is_output(l, "clock", "clock 7100")
    });
    assert_eq!(
        lines.iter().filter(|l| l.contains("started (pid")).count(),
        3
    );
    up.interrupt();
    assert_eq!(up.wait_exit(support::DEADLINE), 0, "stopped on request");
}

#[test]
fn a_line_without_a_colon_is_located_and_starts_nothing() {
    let p = Project::new("services: {}\n").file(
        "Procfile",
        "web: touch started-web; exec sleep 1000\nworker bundle exec sidekiq\nbad name: x\n",
    );
    let check = p.pk(&["-f", "Procfile", "check"]).run();
    assert_eq!(check.code, 2);
    insta::assert_snapshot!(check.stderr);
    let up = p
        .pk(&["-f", "Procfile", "up", "--plain", "--color", "never"])
        .run();
    assert_eq!(up.code, 2, "{}", up.stdout());
    assert!(up.lines.is_empty(), "nothing started: {}", up.stdout());
    assert!(!p.path().join("started-web").exists());
}
