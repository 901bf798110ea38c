//! `pk export systemd` (issue 14): the units for examples/web and for a config that uses every
//! key pass `systemd-analyze verify` with no diagnostic at all, their text is pinned, their
//! `Requires=`/`Wants=`/`After=` graph is `pk graph`'s, and what cannot be exported is a
//! warning that names the service while the export goes on.

mod support;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

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

/// Runs `pk export systemd -f config -o <tmp>/units ARGS…` with `HOME` set to `home`.
fn export(config: &Path, args: &[&str], home: &Path) -> (Project, PathBuf, Output) {
    let p = Project::new("services:\n  unused:\n    command: [true]\n");
    let out_dir = p.path().join("units");
    let config = config.display().to_string();
    let out_arg = out_dir.display().to_string();
    let mut command = vec!["export", "systemd", "-f", &config, "-o", &out_arg];
    command.extend_from_slice(args);
    let out = p
        .pk(&command)
        .env("HOME", &home.display().to_string())
        .run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    (p, out_dir, out)
}

/// The unit files of `dir`, by name.
fn units(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                std::fs::read_to_string(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

/// `systemd-analyze verify` on every unit of `dir`: it must exit 0 and say nothing at all.
fn verify(dir: &Path, user: Option<&Path>) {
    let paths: Vec<PathBuf> = units(dir).iter().map(|(n, _)| dir.join(n)).collect();
    let runtime = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("systemd-analyze");
    if let Some(home) = user {
        // A user manager needs a runtime directory; `%h` is this home.
        cmd.arg("--user")
            .env("XDG_RUNTIME_DIR", runtime.path())
            .env("HOME", home);
    }
    cmd.arg("verify").args(&paths);
    #[expect(clippy::disallowed_methods, reason = "runs systemd's own unit checker")]
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("systemd-analyze is needed (apt-get install systemd; .ci/run does it): {e}")
    });
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.is_empty(),
        "systemd-analyze verify:\n{said}"
    );
}

/// Every unit as one text, machine paths replaced by placeholders.
fn pinned(dir: &Path, home: &Path) -> String {
    let pk = std::fs::canonicalize(env!("CARGO_BIN_EXE_pk")).unwrap();
    let mut text = String::new();
    for (name, body) in units(dir) {
        let _ = writeln!(text, "=== {name}\n{body}");
    }
    text.replace(&pk.display().to_string(), "[PK]")
        .replace(&repo().display().to_string(), "[REPO]")
        .replace(
            &format!(
                "%h/{}",
                repo().strip_prefix(home).unwrap_or(&repo()).display()
            ),
            "%h/[REPO]",
        )
}

#[test]
fn examples_web_units_verify_cleanly_and_are_pinned() {
    let (_p, dir, out) = export(&web(), &[], Path::new("/nonexistent"));
    assert_eq!(out.stderr, "", "no warnings for examples/web");
    verify(&dir, None);
    insta::assert_snapshot!(pinned(&dir, Path::new("/nonexistent")));
    let stdout = out.stdout().replace(&dir.display().to_string(), "[OUT]");
    insta::assert_snapshot!(stdout, @r"
    wrote 5 units to [OUT]
    to install and start them:
      systemctl link [OUT]/web-demo*.service [OUT]/web-demo.target
      systemctl daemon-reload
      systemctl start web-demo.target
    to start them at boot: systemctl enable web-demo.target
    ");
}

#[test]
fn every_key_units_verify_cleanly_warn_about_what_is_lost_and_are_pinned() {
    let (_p, dir, out) = export(&every_key(), &[], Path::new("/nonexistent"));
    verify(&dir, None);
    // The export goes on; each warning names the service and why.
    insta::assert_snapshot!(out.stderr, @r"
    pk export: warning: logwatch: ready probe `log /listening on \d+/` reads the service's output, which only pk sees: not exported
    pk export: warning: late: waits for `logwatch` to be healthy, but its ready probe cannot be exported: it starts once `logwatch` has started
    ");
    assert_eq!(
        units(&dir).len(),
        12,
        "9 services, 2 liveness checkers, 1 target"
    );
    insta::assert_snapshot!(pinned(&dir, Path::new("/nonexistent")));
}

#[test]
fn user_units_use_default_target_and_home_relative_paths() {
    let home = repo().parent().unwrap().to_path_buf();
    let (_p, dir, out) = export(&every_key(), &["--user"], &home);
    verify(&dir, Some(&home));
    let target = std::fs::read_to_string(dir.join("every-key.target")).unwrap();
    assert!(target.contains("WantedBy=default.target\n"), "{target}");
    let api = std::fs::read_to_string(dir.join("every-key-api.service")).unwrap();
    let rel = repo().strip_prefix(&home).unwrap().display().to_string();
    assert!(
        api.contains(&format!(
            "WorkingDirectory=%h/{rel}/tests/export_fixtures/sub dir\n"
        )),
        "{api}"
    );
    let alive = std::fs::read_to_string(dir.join("every-key-api-alive.service")).unwrap();
    assert!(
        alive.contains("exec systemctl --user restart --no-block every-key-api.service"),
        "{alive}"
    );
    assert!(
        out.stdout().contains("systemctl --user link "),
        "{}",
        out.stdout()
    );
}

/// `(dependent, dependency, strong)` edges from `pk graph --dot`; strong = a failed
/// dependency stops the dependent (required, and not `completed`, which any result meets).
fn graph_edges(config: &Path) -> BTreeSet<(String, String, bool)> {
    let p = Project::new("services:\n  unused:\n    command: [true]\n");
    let out = p
        .pk(&["graph", "--dot", "-f", &config.display().to_string()])
        .run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    out.lines
        .iter()
        .filter_map(|line| {
            let (from, rest) = line.trim().split_once(" -> ")?;
            let (to, attrs) = rest.split_once([' ', ';'])?;
            let strong = !attrs.contains("style=dashed") && !attrs.contains("label=\"completed\"");
            Some((
                from.trim_matches('"').to_owned(),
                to.trim_matches('"').to_owned(),
                strong,
            ))
        })
        .collect()
}

/// The same edges read back from the units' `After=`, `Requires=` and `Wants=`.
fn unit_edges(dir: &Path, prefix: &str) -> BTreeSet<(String, String, bool)> {
    let service_of = |unit: &str| {
        unit.strip_prefix(&format!("{prefix}-"))
            .and_then(|u| u.strip_suffix(".service"))
            .map(str::to_owned)
    };
    let mut edges = BTreeSet::new();
    for (name, body) in units(dir) {
        let Some(service) = service_of(&name) else {
            continue;
        };
        if service.ends_with("-alive") {
            continue;
        }
        let values = |key: &str| -> Vec<String> {
            body.lines()
                .filter_map(|l| l.strip_prefix(&format!("{key}=")))
                .filter_map(service_of)
                .filter(|s| !s.ends_with("-alive"))
                .collect()
        };
        let (after, requires, wants) = (values("After"), values("Requires"), values("Wants"));
        for dep in after {
            assert!(
                requires.contains(&dep) != wants.contains(&dep),
                "{service} → {dep}: exactly one of Requires=/Wants="
            );
            edges.insert((service.clone(), dep.clone(), requires.contains(&dep)));
        }
    }
    edges
}

#[test]
fn the_units_ordering_graph_is_pk_graph() {
    for (config, prefix) in [(web(), "web-demo"), (every_key(), "every-key")] {
        let (_p, dir, _) = export(&config, &[], Path::new("/nonexistent"));
        let expected = graph_edges(&config);
        assert!(expected.len() >= 4, "{expected:?}");
        assert_eq!(unit_edges(&dir, prefix), expected, "{}", config.display());
    }
}

#[test]
fn each_replica_is_its_own_unit_and_a_dependent_needs_every_copy() {
    let config = repo().join("tests/export_fixtures/replicas.yaml");
    let (_p, dir, out) = export(&config, &[], Path::new("/nonexistent"));
    assert_eq!(out.stderr, "", "nothing is lost exporting replicas");
    verify(&dir, None);
    let names: Vec<String> = units(&dir).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "replicas-api.service",
            "replicas-web-0.service",
            "replicas-web-1.service",
            "replicas-web-2.service",
            "replicas.target"
        ]
    );
    for (name, body) in units(&dir) {
        if let Some(i) = name
            .strip_prefix("replicas-web-")
            .and_then(|n| n.strip_suffix(".service"))
        {
            assert!(
                body.contains(&format!("PC_REPLICA_NUM={i}")),
                "{name} carries its copy number:\n{body}"
            );
        }
    }
    let expected: BTreeSet<(String, String, bool)> = (0..3)
        .map(|i| ("api".to_owned(), format!("web-{i}"), true))
        .collect();
    assert_eq!(unit_edges(&dir, "replicas"), expected);
}
