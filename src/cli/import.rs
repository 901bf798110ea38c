//! `pk import FILE [-o OUT]`: writes the pk.yaml equivalent of a Procfile or a
//! process-compose file (the translation itself is `config::import`).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::io::Write as _;
use std::path::Path;

use crate::config::{import, procfile};
use crate::plan::LoadError;

/// Runs `pk import`; returns the exit code (2 for a file that cannot be read or translated).
pub(super) fn run(file: &Path, output: Option<&Path>, cwd: &Path) -> i32 {
    let path = cwd.join(file);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("pk: cannot read {}: {e}", path.display());
            return 2;
        }
    };
    let shown = file.display().to_string();
    let env: BTreeMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let yaml = if procfile::is_procfile(&path) {
        import::procfile(&path, &shown, &text, &env)
    } else {
        eprintln!("pk: {shown}: pk import reads a Procfile (process-compose files: not yet)");
        return 2;
    };
    let yaml = match yaml {
        Ok(y) => y,
        Err(diags) => {
            let err = LoadError::with_source(&shown, &text, diags);
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
