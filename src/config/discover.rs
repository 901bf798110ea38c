//! Finds the config files: `-f FILE` (repeatable), else `$PK_FILE`, else pk.yaml/pk.yml walking
//! up from cwd, else process-compose.yaml/.yml (+ its override file) in cwd, else a Procfile in
//! cwd.
//!
//! Invariant: the result is never empty, and every path in it names an existing file.

use std::path::{Path, PathBuf};

use super::diag::Diag;

pub(crate) const FILE_NAMES: &[&str] = &["pk.yaml", "pk.yml"];
/// process-compose's own discovery order (`compose.y*ml` is left out: it is docker's name too).
pub(crate) const COMPOSE_NAMES: &[&str] = &["process-compose.yml", "process-compose.yaml"];
pub(crate) const COMPOSE_OVERRIDE_NAMES: &[&str] = &[
    "process-compose.override.yml",
    "process-compose.override.yaml",
];
pub(crate) const PROCFILE_NAMES: &[&str] = &["Procfile"];

/// The config files to load, in merge order. `pk_file` is the value of `PK_FILE`, if set.
pub(crate) fn find(
    explicit: &[PathBuf],
    pk_file: Option<&Path>,
    cwd: &Path,
) -> Result<Vec<PathBuf>, Diag> {
    let pk_file: Vec<PathBuf> = pk_file
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .into_iter()
        .collect();
    let (given, origin) = if explicit.is_empty() {
        (pk_file.as_slice(), "PK_FILE")
    } else {
        (explicit, "-f")
    };
    if !given.is_empty() {
        let mut found = Vec::new();
        for path in given {
            let full = cwd.join(path);
            if !full.is_file() {
                return Err(Diag::error(format!(
                    "config file `{}` (from {origin}) does not exist",
                    full.display()
                ))
                .help("check the path; relative paths are taken from the current directory"));
            }
            if found.contains(&full) {
                return Err(Diag::error(format!(
                    "config file `{}` is given twice",
                    full.display()
                ))
                .help("name each file once; files merge in the order given"));
            }
            found.push(full);
        }
        return Ok(found);
    }
    let mut looked = Vec::new();
    for dir in cwd.ancestors() {
        for name in FILE_NAMES {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(vec![candidate]);
            }
        }
        looked.push(dir.display().to_string());
    }
    let first_in_cwd = |names: &[&str]| names.iter().map(|n| cwd.join(n)).find(|p| p.is_file());
    if let Some(compose) = first_in_cwd(COMPOSE_NAMES) {
        let mut files = vec![compose];
        files.extend(first_in_cwd(COMPOSE_OVERRIDE_NAMES));
        return Ok(files);
    }
    if let Some(procfile) = first_in_cwd(PROCFILE_NAMES) {
        return Ok(vec![procfile]);
    }
    Err(Diag::error(format!(
        "no pk.yaml or pk.yml found in {} or any parent directory",
        cwd.display()
    ))
    .help(format!(
        "create a pk.yaml, or point pk at one with `-f FILE` (or the PK_FILE environment variable); looked in: {}; a process-compose.yaml or a Procfile in the current directory is used too",
        looked.join(", ")
    )))
}
