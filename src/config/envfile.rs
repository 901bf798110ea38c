//! Reads `.env` files (dotenvy's iterator API: it never touches the process environment).
//!
//! Invariant: only regular files of at most `source::MAX_SOURCE` bytes are read
//! (`source::read_bytes`): `env_file: /dev/zero` or a FIFO is an error, never a hang.

use std::path::Path;

use super::diag::Diag;
use super::model::Located;

/// The variables of `path` (relative to `base_dir`) in file order, or a diagnostic located at
/// the `env_file` entry.
pub(crate) fn read(base_dir: &Path, path: &Located<String>) -> Result<Vec<(String, String)>, Diag> {
    let full = base_dir.join(&path.value);
    let bytes = super::source::read_bytes(&full).map_err(|reason| {
        Diag::error(format!(
            "cannot read env file `{}`: {reason}",
            full.display()
        ))
        .label(path.span, "this env_file")
        .help("env_file paths are relative to the directory of pk.yaml; pk reads regular files of at most 8 MiB")
    })?;
    let iter = dotenvy::from_read_iter(std::io::Cursor::new(bytes));
    let mut vars = Vec::new();
    for item in iter {
        match item {
            Ok(pair) => vars.push(pair),
            Err(e) => {
                let reason = match e {
                    dotenvy::Error::LineParse(line, index) => {
                        format!("cannot parse `{line}` (at character {index})")
                    }
                    other => other.to_string(),
                };
                return Err(
                    Diag::error(format!("env file `{}`: {reason}", full.display()))
                        .label(path.span, "this env_file")
                        .help("lines look like `KEY=value`; `#` starts a comment"),
                );
            }
        }
    }
    Ok(vars)
}
