//! process-compose's own test fixtures (`../shared/realworld/process-compose-fixtures/`, read in
//! place) under `pk up`: each one process-compose's tests run gives the outcome its
//! `EXPECTED.md` records (order, states, exit code).
//!
//! Not here: what process-compose's tests do to a running project (start/stop a namespace and
//! live reload in `process-compose-namespace-profiles.yaml`, `ScaleProcess` in
//! `process-compose-scale.yaml`), which pk does not have; the same selections and counts at
//! start (`pk up NAME`, `-n NS`, `--scale`) are checked instead.

mod support;

use std::path::{Path, PathBuf};

use support::{Project, is_notice, notice_at, output_at};

fn fixtures() -> Option<PathBuf> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let found = [
        repo.join("../shared/realworld/process-compose-fixtures"),
        repo.join("../../shared/realworld/process-compose-fixtures"),
    ]
    .into_iter()
    .find(|d| d.is_dir());
    if found.is_none() {
        eprintln!(
            "\n\n!!!! SKIPPED: ../shared/realworld/process-compose-fixtures is absent; process-compose's fixtures are not run !!!!\n"
        );
    }
    found
}

/// `pk -f FIXTURE up --plain` in an empty directory.
fn up(fixture: &Path, extra: &[&str]) -> support::Output {
    let p = Project::named("README", "");
    up_in(&p, fixture).args(extra).run()
}

/// `pk -f FIXTURE up --plain`, run in `p`'s directory.
fn up_in(p: &Project, fixture: &Path) -> support::Invocation {
    let file = fixture.display().to_string();
    p.pk(&["-f", &file, "up", "--plain", "--color", "never"])
}

/// Every dependency edge of `file` held: the dependent started only after its dependency
/// met the condition (read from the plan pk builds of the same file).
fn assert_edges_held(file: &Path, lines: &[String]) {
    let plan = pk::plan::load(&[file.to_path_buf()], file.parent().unwrap()).unwrap();
    for spec in &plan.services {
        let Some(started) = lines
            .iter()
            .position(|l| is_notice(l, &spec.name, "started"))
        else {
            continue;
        };
        for dep in &spec.depends_on {
            let name = &plan.services[dep.service].name;
            let met = match dep.condition {
                pk::vocab::Condition::Started => notice_at(lines, name, "started"),
                _ => lines
                    .iter()
                    .position(|l| is_notice(l, name, "completed") || is_notice(l, name, "exited"))
                    .unwrap_or_else(|| panic!("{name} never ended:\n{}", lines.join("\n"))),
            };
            assert!(
                met < started,
                "{} started before {name} met its condition:\n{}",
                spec.name,
                lines.join("\n")
            );
        }
    }
}

#[test]
fn fixtures_glob_runs_to_completion_with_exit_0() {
    let Some(root) = fixtures() else { return };
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("fixtures"))
        .unwrap()
        .map(|e| e.unwrap().path())
        // process-compose's test globs `process-compose-*.yaml` only.
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 6);
    for file in files {
        let out = up(&file, &[]);
        assert_eq!(
            out.code,
            0,
            "{}:\n{}\n{}",
            file.display(),
            out.stdout(),
            out.stderr
        );
        assert_edges_held(&file, &out.lines);
        if file.ends_with("process-compose-chain-with-errors.yaml") {
            // process5 fails, restarts once, fails again; process4 runs anyway
            // (`process_completed`); process3 fails, so 2 and 1 are skipped.
            let lines = &out.lines;
            assert!(
                lines.iter().any(|l| is_notice(l, "process2", "skipped")),
                "{}",
                out.stdout()
            );
            assert!(lines.iter().any(|l| is_notice(l, "process1", "skipped")));
            assert!(lines.iter().any(|l| is_notice(l, "process4", "started")));
        }
    }
}

#[test]
fn chain_exit_ends_with_the_failing_process_code() {
    let Some(root) = fixtures() else { return };
    let out = up(
        &root.join("fixtures-code/process-compose-chain-exit.yaml"),
        &[],
    );
    assert_eq!(out.code, 42, "{}\n{}", out.stdout(), out.stderr);
}

#[test]
fn success_exit_codes_count_as_success() {
    let Some(root) = fixtures() else { return };
    let out = up(
        &root.join("fixtures-code/process-compose-success-exit-codes.yaml"),
        &[],
    );
    assert_eq!(out.code, 0, "{}\n{}", out.stdout(), out.stderr);
    let allowed: Vec<&String> = out
        .lines
        .iter()
        .filter(|l| l.starts_with("allowed "))
        .collect();
    assert!(
        allowed.iter().all(|l| !l.contains("restarting")),
        "{}",
        out.stdout()
    );
    assert!(
        out.lines
            .iter()
            .any(|l| is_notice(l, "control", "exited 130, restarting in 1s")),
        "{}",
        out.stdout()
    );
}

#[test]
fn transitive_skip_and_exit_0() {
    let Some(root) = fixtures() else { return };
    let out = up(
        &root.join("fixtures-code/process-compose-transitive-dep.yaml"),
        &[],
    );
    assert_eq!(out.code, 0, "{}\n{}", out.stdout(), out.stderr);
    assert!(
        out.lines.iter().any(|l| is_notice(l, "procB", "skipped")),
        "{}",
        out.stdout()
    );
    assert!(out.lines.iter().any(|l| is_notice(l, "procC", "skipped")));
    assert!(!out.stdout().contains("I shouldn't run"));
}

#[test]
fn circular_is_refused_and_non_circular_loads() {
    let Some(root) = fixtures() else { return };
    let circular = root.join("fixtures-code/process-compose-circular.yaml");
    let err = pk::plan::load(&[circular], &root).unwrap_err();
    assert!(err.to_string().contains("dependency cycle"), "{err}");
    let non = root.join("fixtures-code/process-compose-non-circular.yaml");
    pk::plan::load(&[non], &root).unwrap();
}

#[test]
fn env_file_relative_to_working_dir_and_escaped_dollar() {
    let Some(root) = fixtures() else { return };
    // process-compose's test runs two levels below the repo root: `../../fixtures-code/`.
    let p = Project::named("README", "");
    std::os::unix::fs::symlink(root.join("fixtures-code"), p.path().join("fixtures-code")).unwrap();
    std::fs::create_dir_all(p.path().join("src/app")).unwrap();
    let file = root.join("fixtures-code/process-compose-env-file.yaml");
    let out = support::Invocation::in_dir(
        &p.path().join("src/app"),
        &[
            "-f",
            &file.display().to_string(),
            "up",
            "--plain",
            "--color",
            "never",
        ],
    )
    .run();
    assert_eq!(out.code, 0, "{}\n{}", out.stdout(), out.stderr);
    assert!(
        out.stdout().contains("My name is Inigo_Montoya"),
        "{}",
        out.stdout()
    );
}

#[test]
fn namespace_filter_prunes_dependencies() {
    let Some(root) = fixtures() else { return };
    let file = root.join("fixtures-code/process-compose-namespace-deps.yaml");
    let out = up(&file, &["-n", "foo"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout(), out.stderr);
    output_at(&out.lines, "foo", "foo");
    output_at(&out.lines, "foo_helper", "foo_helper");
    assert!(
        !out.lines.iter().any(|l| l.starts_with("bar ")),
        "{}",
        out.stdout()
    );

    let multi = root.join("fixtures-code/process-compose-multi-namespace.yaml");
    let out = up(&multi, &["-n", "foobar"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout(), out.stderr);
    let names: Vec<&str> = out
        .lines
        .iter()
        .filter_map(|l| support::parse(l))
        .filter(|l| l.notice && l.text.starts_with("started"))
        .map(|l| l.service)
        .collect();
    assert!(
        names.contains(&"foo") && names.contains(&"bar") && !names.contains(&"baz"),
        "{}",
        out.stdout()
    );
    let none = up(&multi, &["-n", "unknown"]);
    assert_eq!(none.code, 2, "{}", none.stderr);
    assert!(
        none.stderr.contains("no service is in namespace unknown"),
        "{}",
        none.stderr
    );
}

#[test]
fn shutdown_in_reverse_dependency_order() {
    let Some(root) = fixtures() else { return };
    let p = Project::named("README", "");
    let log = p.path().join("shutdown.log");
    let file = root.join("fixtures-code/process-compose-shutdown-inorder.yaml");
    let mut run = up_in(&p, &file)
        .env("PC_TEST_SHUTDOWN_LOG", &log.display().to_string())
        .spawn();
    for name in ["procA", "procB", "procC", "procD"] {
        run.wait_for_line(name, |l| is_notice(l, name, "started"));
    }
    run.interrupt();
    run.wait_exit(support::DEADLINE);
    let text = std::fs::read_to_string(&log).unwrap();
    let order: Vec<&str> = text.lines().collect();
    assert!(
        order == ["B: exit", "D: exit", "C: exit", "A: exit"]
            || order == ["B: exit", "C: exit", "D: exit", "A: exit"],
        "{order:?}"
    );
}

#[test]
fn extends_chain_and_process_extends() {
    let Some(root) = fixtures() else { return };
    let out = up(
        &root.join("fixtures-code/process-compose-with-extends.yaml"),
        &[],
    );
    assert_eq!(out.code, 0, "{}\n{}", out.stdout(), out.stderr);
    output_at(&out.lines, "process1", "extending");
    let plan = pk::plan::load(
        &[root.join("fixtures-code/process-compose-process-extends.yaml")],
        &root,
    )
    .unwrap();
    let derived = &plan.services[plan.service_id("derived").unwrap()];
    assert_eq!(derived.env.get("FOO").map(String::as_str), Some("override"));
    assert_eq!(derived.env.get("SHARED").map(String::as_str), Some("base"));
    assert_eq!(derived.env.get("EXTRA").map(String::as_str), Some("2"));
    assert_eq!(derived.working_dir, PathBuf::from("/tmp"));
    let top = &plan.services[plan.service_id("chain_top").unwrap()];
    assert_eq!(top.restart.policy, pk::vocab::RestartPolicy::Always);
}

#[test]
fn scale_runs_every_replica_after_its_dependency_with_process_compose_names() {
    let Some(root) = fixtures() else { return };
    let file = root.join("fixtures-code/process-compose-scale.yaml");
    // process-compose's test: 4 processes (process1-0, process1-1, process2, process3).
    let plan = pk::plan::load(std::slice::from_ref(&file), &root).unwrap();
    let names: Vec<&str> = plan.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["process1-0", "process1-1", "process2", "process3"]);
    // Ten copies are zero-padded: process1-00 … process1-09.
    let ten = pk::plan::scale(plan, &[("process1".to_owned(), 10)]).unwrap();
    let copies: Vec<&str> = ten
        .services
        .iter()
        .map(|s| s.name.as_str())
        .filter(|n| n.starts_with("process1"))
        .collect();
    assert_eq!(copies.len(), 10);
    assert_eq!((copies[0], copies[9]), ("process1-00", "process1-09"));

    let out = up(&file, &[]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout(), out.stderr);
    // Each copy ran, with its own replica number, after process2 completed successfully.
    let done = notice_at(&out.lines, "process2", "completed");
    for copy in ["process1-0", "process1-1"] {
        assert!(
            output_at(&out.lines, copy, "process1") > done,
            "{}",
            out.stdout()
        );
    }
    assert_edges_held(&file, &out.lines);
}

#[test]
fn exit_on_end_with_a_success_code_exits_0_and_without_it_with_the_code() {
    let Some(root) = fixtures() else { return };
    let file = root.join("fixtures-code/process-compose-success-exit-on-end.yaml");
    let out = up(&file, &[]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout(), out.stderr);
    assert!(
        out.lines
            .iter()
            .any(|l| is_notice(l, "signal_exit", "exited 130") && l.contains("exit_on_end")),
        "{}",
        out.stdout()
    );
    // process-compose's control run clears `success_exit_codes` in code: the project then
    // exits 130. Here the same file without the key (written by the test, not copied).
    let p = Project::named(
        "process-compose.yaml",
        "processes:\n  signal_exit:\n    command: \"exit 130\"\n    availability:\n      exit_on_end: true\n  other:\n    command: \"exec sleep 30\"\n",
    );
    let out = p.up().run();
    assert_eq!(out.code, 130, "{}\n{}", out.stdout(), out.stderr);
    assert!(
        out.lines.iter().any(|l| is_notice(l, "other", "stopped")
            || is_notice(l, "other", "exited")
            || is_notice(l, "other", "killed")),
        "the other process is stopped:\n{}",
        out.stdout()
    );
}

#[test]
fn chain_orders_dependencies_first() {
    let Some(root) = fixtures() else { return };
    let plan = pk::plan::load(
        &[root.join("fixtures-code/process-compose-chain.yaml")],
        &root,
    )
    .unwrap();
    let names: Vec<&str> = plan
        .order
        .iter()
        .map(|&id| plan.services[id].name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "process8", "process7", "process6", "process5", "process4", "process3", "process2",
            "process1"
        ]
    );
}

#[test]
fn with_log_runs_through_a_failure_and_keeps_the_process_log() {
    let Some(root) = fixtures() else { return };
    let p = Project::named("README", "");
    let file = root.join("fixtures-code/process-compose-with-log.yaml");
    let out = up_in(&p, &file).run();
    assert_eq!(out.code, 0, "{}\n{}", out.stdout(), out.stderr);
    output_at(&out.lines, "process1", "process1");
    // process6's `log_location` (relative to the directory pk runs in) holds its output.
    let log = std::fs::read_to_string(p.path().join("pc.proc6.log-test.log")).unwrap();
    assert!(log.contains("process6"), "{log}");
    // The project's log file (top-level `log_location`) holds every process's lines.
    let all = std::fs::read_to_string(p.path().join("pc.log-test.log")).unwrap();
    for n in 1..=8 {
        let name = format!("process{n}");
        assert!(
            all.lines()
                .any(|l| l.contains(&format!(" {name} | ")) || l.contains(&format!(" {name} * "))),
            "{name} missing from the project log:\n{all}"
        );
    }
    assert!(all.contains(" process3 | process3 error"), "{all}");
}

#[test]
fn issue_316_env_cmds_reach_the_liveness_probe() {
    let Some(root) = fixtures() else { return };
    let p = Project::named("README", "");
    let file = root.join("issues/issue_316_process-compose.yaml");
    let mut run = up_in(&p, &file).spawn();
    // `env_cmds: {HI: "echo Hello"}`; the probe runs `echo $${HI} there > test.txt`.
    let written = support::wait_until(support::DEADLINE, "the probe to write test.txt", || {
        std::fs::read_to_string(p.path().join("test.txt"))
            .ok()
            .filter(|t| !t.is_empty())
    });
    assert_eq!(written, "Hello there\n");
    run.interrupt();
    run.wait_exit(support::DEADLINE);
}

#[test]
fn namespace_profiles_start_one_surface() {
    // process-compose's test starts and stops namespaces at run time, which pk does not do;
    // what pk does at start: `up customer-api` runs that process only, and `-n admin` runs the
    // admin namespace without its dependency in `infra` (the dependency is dropped).
    let Some(root) = fixtures() else { return };
    let file = root.join("fixtures-code/process-compose-namespace-profiles.yaml");
    let out = up(&file, &["-n", "admin"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout(), out.stderr);
    let ui = output_at(&out.lines, "admin-ui", "admin-ui");
    assert!(output_at(&out.lines, "admin-api", "admin-api") < ui);
    for other in ["shared-db", "customer-api"] {
        assert!(
            !out.lines.iter().any(|l| l.starts_with(other)),
            "{other} ran:\n{}",
            out.stdout()
        );
    }
    let p = Project::named("README", "");
    let mut run = p
        .pk(&[
            "-f",
            &file.display().to_string(),
            "up",
            "--plain",
            "--color",
            "never",
            "customer-api",
        ])
        .spawn();
    run.wait_notice("customer-api", "started");
    run.interrupt();
    run.wait_exit(support::DEADLINE);
    let lines = run.lines();
    for other in ["shared-db", "admin-api", "admin-ui"] {
        assert!(
            !lines
                .iter()
                .any(|l| support::is_notice(l, other, "started")),
            "{other} started:\n{}",
            lines.join("\n")
        );
    }
}
