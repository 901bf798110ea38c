//! The config front end under arbitrary input: the fuzz targets, shared by `cargo fuzz`
//! (`fuzz/fuzz_targets/*.rs`, long runs on nightly) and the stable-toolchain run in the test
//! suite (`tests/fuzz_config.rs`, a fixed budget in CI).
//!
//! Each target takes bytes and panics on a violation of what pk promises for any input: a
//! config, or errors located at `file:line:col` that render (snippet and hint) — never a
//! panic. Time limits are the callers' (libFuzzer's `-timeout`, the harness's 100 ms).

use std::collections::BTreeMap;
use std::path::Path;

/// A target: bytes in, a panic on a violation.
pub(crate) type Target = fn(&[u8]);

/// Every target, by name (also the `cargo fuzz` target names).
pub(crate) const TARGETS: &[(&str, Target)] = &[
    ("yaml", yaml),
    ("pk_yaml", pk_yaml),
    ("compose", compose),
    ("procfile", procfile),
    ("interpolate", interpolate),
    ("values", values),
];

fn text(data: &[u8]) -> Option<&str> {
    // Config files are read as UTF-8; anything else is a located error before any parsing
    // (tested in tests/config_errors.rs).
    std::str::from_utf8(data).ok()
}

/// The YAML node tree (serde-saphyr underneath): a tree, or one located syntax error.
pub(crate) fn yaml(data: &[u8]) {
    let Some(text) = text(data) else { return };
    match pk::config::node::parse(text) {
        Ok(node) => {
            let _ = node.to_json();
        }
        Err(diag) => {
            assert!(
                !diag.labels.is_empty(),
                "a YAML error without a location: {}",
                diag.message
            );
            for (span, _) in &diag.labels {
                assert!(
                    span.offset + span.len <= text.len(),
                    "a YAML error located outside the text: {span:?} in {} bytes",
                    text.len()
                );
            }
            let sources = [pk::config::diag::Source {
                name: "pk.yaml".into(),
                text: text.into(),
            }];
            let _ = diag.render_in(&sources, false);
        }
    }
}

/// A whole load, as `pk check` does it, of `data` as the file `name` (its name picks the
/// front end), in a directory that does not exist.
fn load_as(name: &str, data: &[u8]) {
    let Some(text) = text(data) else { return };
    let dir = Path::new("/nonexistent-pk-fuzz");
    let path = dir.join(name);
    let env: BTreeMap<String, String> = [("HOME", "/home/fuzz"), ("PORT", "8080"), ("A", "a")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let shown = path.display().to_string();
    let located = |lines: Vec<String>| {
        for line in lines {
            assert!(
                line.starts_with(&format!("{shown}:")),
                "a diagnostic without a location: {line}"
            );
        }
    };
    match pk::plan::load_strs_with_warnings(&[(&path, text)], dir, &env) {
        Ok((_, warnings)) => {
            located(warnings.lines());
            let _ = warnings.render(false);
        }
        Err(e) => {
            let diagnostics = e.diagnostics();
            assert!(!diagnostics.is_empty(), "an error with no diagnostic: {e}");
            located(diagnostics.lines());
            let _ = e.render(false);
        }
    }
}

/// pk.yaml: the node tree, the reader, interpolation, env files, the plan's checks.
pub(crate) fn pk_yaml(data: &[u8]) {
    load_as("pk.yaml", data);
}

/// The process-compose front end (raw-text `${VAR}` expansion, templates, merge rules).
pub(crate) fn compose(data: &[u8]) {
    load_as("process-compose.yaml", data);
}

/// The Procfile front end.
pub(crate) fn procfile(data: &[u8]) {
    load_as("Procfile", data);
}

/// `${VAR}` interpolation on its own: an expansion or an error, in bounded time.
pub(crate) fn interpolate(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let vars: BTreeMap<String, String> = [("A", "a"), ("B", "${A}"), ("EMPTY", "")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let _ = pk::config::interpolate::interpolate(text, &vars);
}

/// The scalar mini-languages: durations, signals, URLs, addresses, conditions, policies.
pub(crate) fn values(data: &[u8]) {
    use pk::config::values;
    let Some(text) = text(data) else { return };
    let _ = values::duration(text);
    let _ = values::signal(text);
    let _ = values::http_url(text);
    let _ = values::tcp_address(text);
    let _ = values::condition(text);
    let _ = values::restart_policy(text);
    let _ = values::is_valid_service_name(text);
}
