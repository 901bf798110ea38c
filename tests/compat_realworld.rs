//! `pk check` and `pk import` on every real process-compose file in
//! `../shared/realworld/process-compose/`.
//!
//! The files belong to their authors and are read in place (never copied here). Each is loaded
//! from its own directory with a fixed, nearly empty environment, so `${VAR}` expansion gives
//! the same result everywhere. A file that process-compose itself rejects with that
//! environment, or a fragment meant to be merged with another file, is listed in `REJECTED`
//! with the exact errors pk gives; every other file must load without an error, and its
//! `pk import` must load back (`pk check`) to the same plan, apart from what the import's
//! comments say it dropped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// (file, the errors pk gives, one `file:line:col: error: message` per line).
const REJECTED: &[(&str, &[&str])] = &[
    // YAML duplicate key (two `run-forever:` anchors): process-compose's YAML parser refuses
    // duplicate keys too.
    (
        "EspressoSystems__espresso-network__process-compose.yaml",
        &[
            "EspressoSystems__espresso-network__process-compose.yaml:9:3: error: invalid YAML: duplicate mapping key: run-forever",
        ],
    ),
    // With ESPRESSO_ORCHESTRATOR_PORT unset, `http://localhost:$ESPRESSO_ORCHESTRATOR_PORT -o`
    // expands to `localhost: ` inside a plain scalar: invalid YAML for process-compose too.
    (
        "EspressoSystems__espresso-sequencer__process-compose.yaml",
        &[
            "EspressoSystems__espresso-sequencer__process-compose.yaml:467:84: error: invalid YAML: mapping values are not allowed in this context",
        ],
    ),
    // A fragment (the base of `process-compose.yaml`'s extends); its probe port is `${PORT}`.
    (
        "GregorStocks__ramekin__compose_base.yaml",
        &[
            "GregorStocks__ramekin__compose_base.yaml:15:13: error: `processes.server.readiness_probe.http_get.port` is empty (a variable it names is not set?)",
        ],
    ),
    // With UI_PORT unset, `https://localhost:${UI_PORT} --output-dir` is invalid YAML after
    // expansion, for process-compose too.
    (
        "GregorStocks__ramekin__process-compose.yaml",
        &[
            "GregorStocks__ramekin__process-compose.yaml:47:67: error: invalid YAML: mapping values are not allowed in this context",
        ],
    ),
    // `web` depends on `postgresql`, which the file does not define: process-compose refuses
    // an undefined dependency too (a fragment for a setup that adds it).
    (
        "airslie__renalware-core__process-compose.yml",
        &[
            "airslie__renalware-core__process-compose.yml:11:7: error: service `web` depends on `postgresql`, which is not a service",
        ],
    ),
];

/// `<repo>/../shared/realworld` (a worktree one level deeper, `/work/wt/<name>`, looks one
/// level further up).
pub fn realworld() -> Option<PathBuf> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = repo.join("../shared/realworld");
    let worktree = repo.join("../../shared/realworld");
    // Canonical, so that a symlink on the way (e.g. `../shared` linked in) cannot make the
    // loader's lexical paths and the import's resolved paths differ.
    if dir.is_dir() {
        std::fs::canonicalize(&dir).ok()
    } else if worktree.is_dir() {
        std::fs::canonicalize(&worktree).ok()
    } else {
        eprintln!(
            "\n\n!!!! SKIPPED: {} is absent; the real-world compatibility files are not checked !!!!\n",
            dir.display()
        );
        None
    }
}

/// The environment every file is loaded with: nothing a file could expand by accident.
pub fn fixed_env() -> BTreeMap<String, String> {
    [("PATH", "/usr/local/bin:/usr/bin:/bin")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn errors(e: &pk::plan::LoadError) -> Vec<String> {
    e.diagnostics()
        .lines()
        .into_iter()
        .filter(|l| l.contains(": error: "))
        .collect()
}

/// Errors of `pk check -f FILE` run in the file's directory (empty: the file loads), and the
/// plan when it loads.
fn check(path: &Path) -> (Vec<String>, Option<pk::plan::Plan>) {
    let dir = path.parent().unwrap();
    let name = PathBuf::from(path.file_name().unwrap());
    match pk::plan::load_with_env(&[name], dir, &fixed_env()) {
        Ok((plan, _)) => (Vec::new(), Some(plan)),
        Err(e) => (errors(&e), None),
    }
}

/// `pk import FILE` in the file's directory, read back as a pk.yaml written there (nothing is
/// written: the text is loaded as if it were): why it differs from `plan`, if it does.
fn import_differs(path: &Path, plan: &pk::plan::Plan) -> Option<String> {
    let dir = path.parent().unwrap();
    let name = PathBuf::from(path.file_name().unwrap());
    let yaml = match pk::plan::import_with_env(&[name], dir, &fixed_env()) {
        Ok(y) => y,
        Err(e) => return Some(format!("pk import failed: {}", e.render(false))),
    };
    let target = dir.join("pk.imported.yaml");
    let back = match pk::plan::load_strs_with_warnings(&[(&target, &yaml)], dir, &fixed_env()) {
        Ok((back, _)) => back,
        Err(e) => {
            return Some(format!(
                "the import fails pk check:\n{}\n{yaml}",
                e.render(false)
            ));
        }
    };
    // What pk.yaml cannot say: each must be named by a comment in the import.
    let dropped = |s: &pk::plan::ServiceSpec| -> Vec<&str> {
        let mut why = Vec::new();
        if !s.success_codes.is_empty() {
            why.push("Dropped: success_exit_codes");
        }
        if !s.namespaces.is_empty() {
            why.push("Dropped: namespace");
        }
        if s.ends_stack.on_failure {
            why.push("Dropped: `restart: exit_on_failure`");
        }
        if s.ends_stack.on_skipped {
            why.push("Dropped: `exit_on_skipped`");
        }
        why
    };
    let normal = |s: &pk::plan::ServiceSpec| {
        let mut s = s.clone();
        s.success_codes.clear();
        s.namespaces.clear();
        s.ends_stack = pk::plan::EndsStack::default();
        // How the file spelled the environment; the resolved `env` is compared.
        s.env_source = pk::plan::EnvSource::default();
        format!("{s:#?}")
    };
    if plan.services.len() != back.services.len() || plan.order != back.order {
        return Some(format!(
            "other services or order: {:?} vs {:?}\n{yaml}",
            plan.order, back.order
        ));
    }
    for (a, b) in plan.services.iter().zip(&back.services) {
        for why in dropped(a) {
            if !yaml.contains(why) {
                return Some(format!("{}: no comment `{why}`\n{yaml}", a.name));
            }
        }
        let (a_text, b_text) = (normal(a), normal(b));
        if a_text != b_text {
            return Some(format!(
                "{} differs:\noriginal: {a_text}\nimport: {b_text}\n{yaml}",
                a.name
            ));
        }
    }
    None
}

#[test]
fn every_real_process_compose_file_passes_pk_check_and_imports_to_the_same_plan() {
    let Some(root) = realworld() else { return };
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("process-compose"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
        })
        .collect();
    files.sort();
    assert!(files.len() >= 30, "only {} files found", files.len());
    let mut failures = Vec::new();
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let (got, plan) = check(path);
        let want: Vec<String> = REJECTED
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, errors)| errors.iter().map(|s| (*s).to_owned()).collect())
            .unwrap_or_default();
        if got != want {
            failures.push(format!("{name}\n  want: {want:#?}\n  got:  {got:#?}"));
        }
        if let Some(why) = plan.and_then(|plan| import_differs(path, &plan)) {
            failures.push(format!("{name}: pk import: {why}"));
        }
    }
    for (name, _) in REJECTED {
        assert!(
            files.iter().any(|f| f.file_name().unwrap() == *name),
            "{name} is listed in REJECTED but is not in the folder"
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
