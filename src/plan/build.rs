//! Builds a `Plan` from a config file: validation, defaults, the DAG.

use std::collections::BTreeMap;
use std::path::Path;

use super::Plan;

/// Everything wrong with a config, reported at once.
#[derive(Debug, thiserror::Error)]
#[error("invalid config")]
pub struct LoadError {
    rendered: String,
}

impl LoadError {
    /// Every diagnostic, rendered with file:line:col, snippet and hint.
    pub fn render(&self, _color: bool) -> String {
        self.rendered.clone()
    }
}

/// Finds the config (`explicit`, else `PK_FILE`, else pk.yaml/pk.yml walking up from `cwd`)
/// and builds the plan with the process environment.
pub fn load(explicit: Option<&Path>, cwd: &Path) -> Result<Plan, LoadError> {
    let _ = (explicit, cwd);
    Err(LoadError { rendered: "not implemented".into() })
}

/// Builds the plan from YAML text as if read from `path`, with `env` as the inherited
/// environment.
pub fn load_str(source: &str, path: &Path, env: &BTreeMap<String, String>) -> Result<Plan, LoadError> {
    let _ = (source, path, env);
    Err(LoadError { rendered: "not implemented".into() })
}
