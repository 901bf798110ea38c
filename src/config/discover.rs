//! Finds the config file: `-f FILE`, else `$PK_FILE`, else pk.yaml/pk.yml walking up from cwd.

use std::path::{Path, PathBuf};

use super::diag::Diag;

pub const FILE_NAMES: &[&str] = &["pk.yaml", "pk.yml"];

/// The config file to load. `pk_file` is the value of `PK_FILE`, if set.
pub fn find(explicit: Option<&Path>, pk_file: Option<&Path>, cwd: &Path) -> Result<PathBuf, Diag> {
    if let Some(path) = explicit.or(pk_file).filter(|p| !p.as_os_str().is_empty()) {
        let origin = if explicit.is_some() { "-f" } else { "PK_FILE" };
        let full = cwd.join(path);
        if full.is_file() {
            return Ok(full);
        }
        return Err(Diag::error(format!(
            "config file `{}` (from {origin}) does not exist",
            full.display()
        ))
        .help("check the path; relative paths are taken from the current directory"));
    }
    let mut looked = Vec::new();
    for dir in cwd.ancestors() {
        for name in FILE_NAMES {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
        looked.push(dir.display().to_string());
    }
    Err(Diag::error(format!(
        "no pk.yaml or pk.yml found in {} or any parent directory",
        cwd.display()
    ))
    .help(format!(
        "create a pk.yaml, or point pk at one with `-f FILE` (or the PK_FILE environment variable); looked in: {}",
        looked.join(", ")
    )))
}
