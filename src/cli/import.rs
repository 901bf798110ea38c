//! `pk import FILE… [-o OUT]`: writes the pk.yaml equivalent of a Procfile or of
//! process-compose files (the translation itself is `plan::import_with_env` and
//! `config::import`).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Runs `pk import`; returns the exit code (2 for files that cannot be read or translated).
pub(crate) fn run(files: &[PathBuf], output: Option<&Path>, cwd: &Path) -> i32 {
    let env: BTreeMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let files: Vec<PathBuf> = files.iter().map(|f| cwd.join(f)).collect();
    let yaml = match crate::plan::import_with_env(&files, cwd, &env) {
        Ok(y) => y,
        Err(err) => {
            eprint!("{}", err.render(std::io::stderr().is_terminal()));
            return 2;
        }
    };
    match output {
        None => {
            super::print_out(&yaml);
            0
        }
        Some(out) => {
            let target = cwd.join(out);
            let written = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&target)
                .and_then(|mut f| f.write_all(yaml.as_bytes()));
            match written {
                Ok(()) => {
                    eprintln!(
                        "pk: wrote {}; check it with `pk -f {} check`",
                        out.display(),
                        out.display()
                    );
                    0
                }
                Err(e) => {
                    eprintln!("pk: cannot write {}: {e}", target.display());
                    2
                }
            }
        }
    }
}
