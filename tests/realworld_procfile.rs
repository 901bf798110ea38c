//! Every real Procfile in `../shared/realworld/procfile/` passes `pk check`; `pk import` of it
//! passes `pk check` too, and `pk graph` prints the same graph for both.
//!
//! The files belong to their authors and are read in place (never copied here). The folder is
//! `<repo>/../shared/realworld` (or `$PK_REALWORLD`; from a worktree, one level further up);
//! where it is absent the test says so loudly and skips. The test walks the folder: a new file is checked without a code change.

use std::path::{Path, PathBuf};
use std::process::Command;

fn realworld() -> Option<PathBuf> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::var_os("PK_REALWORLD")
        .map_or_else(|| repo.join("../shared/realworld"), PathBuf::from);
    if dir.is_dir() {
        return Some(dir);
    }
    // A worktree (`/work/wt/<name>`) sits one level deeper than the repository.
    let worktree = repo.join("../../shared/realworld");
    if std::env::var_os("PK_REALWORLD").is_none() && worktree.is_dir() {
        return Some(worktree);
    }
    // Straight to fd 2: libtest captures `eprintln!`, and a skip must not go unnoticed.
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!(
            "SKIPPED: {} is absent; the real-world Procfiles were not checked\n",
            dir.display()
        )
        .as_bytes(),
    );
    None
}

/// `pk ARGS` in `dir` with a fixed environment; (exit code, stdout, stderr).
fn pk(dir: &Path, args: &[&str]) -> (i32, String, String) {
    #[expect(clippy::disallowed_methods, reason = "runs the binary under test")]
    let out = Command::new(env!("CARGO_BIN_EXE_pk"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .expect("run pk");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_real_procfile_checks_imports_and_keeps_its_graph() {
    let Some(root) = realworld() else {
        return;
    };
    let dir = root.join("procfile");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name != "README.md" && name != "SOURCES.tsv"
        })
        .collect();
    files.sort();
    assert!(
        files.len() >= 20,
        "expected the Procfile corpus in {}",
        dir.display()
    );
    let out = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let f = file.to_str().unwrap();
        let (code, _, err) = pk(&dir, &["-f", f, "check"]);
        if code != 0 {
            failures.push(format!("{name}: pk check exited {code}:\n{err}"));
            continue;
        }
        let imported = out.path().join(format!("{name}.pk.yaml"));
        let i = imported.to_str().unwrap();
        let (code, _, err) = pk(&dir, &["import", f, "-o", i]);
        if code != 0 {
            failures.push(format!("{name}: pk import exited {code}:\n{err}"));
            continue;
        }
        let (code, _, err) = pk(out.path(), &["-f", i, "check"]);
        if code != 0 {
            let text = std::fs::read_to_string(&imported).unwrap_or_default();
            failures.push(format!("{name}: the import fails pk check:\n{err}\n{text}"));
            continue;
        }
        let (_, original, _) = pk(&dir, &["-f", f, "graph"]);
        let (_, translated, _) = pk(out.path(), &["-f", i, "graph"]);
        if original != translated {
            failures.push(format!(
                "{name}: pk graph differs\noriginal:\n{original}import:\n{translated}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
