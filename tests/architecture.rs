//! The import graph points one way. The allowed edges are written once, in the "Import graph"
//! table of docs/architecture.md; this test reads that table and every `crate::<module>` path
//! (and, inside `src/cli/`, every `super::<file>` path) in `src/`, and fails on an edge the
//! table does not list, on a module the table does not name, and on a table with a circle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `module → modules it may use`, from the doc's table (every module but `vocab` may also use
/// `vocab`).
fn allowed() -> BTreeMap<String, BTreeSet<String>> {
    let doc = std::fs::read_to_string(root().join("docs/architecture.md")).unwrap();
    let section = doc
        .split("\n## Import graph\n")
        .nth(1)
        .expect("docs/architecture.md has an `## Import graph` section");
    let mut table = BTreeMap::new();
    for line in section.lines().skip_while(|l| !l.starts_with('|')) {
        if !line.starts_with('|') {
            break;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let names = |cell: &str| -> Vec<String> {
            cell.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect()
        };
        let (Some(module), Some(uses)) = (names(cells[1]).first().cloned(), cells.get(2)) else {
            continue;
        };
        let mut uses: BTreeSet<String> = names(uses).into_iter().collect();
        if module != "vocab" {
            uses.insert("vocab".to_owned());
        }
        table.insert(module, uses);
    }
    assert!(table.len() > 5, "the import graph table was not found");
    table
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Identifiers that follow `prefix` in `line` (`crate::engine::X` → `engine`).
fn after<'a>(line: &'a str, prefix: &str) -> Vec<&'a str> {
    line.match_indices(prefix)
        .filter(|(i, _)| {
            // `crate::` itself, not `mycrate::`.
            line[..*i]
                .chars()
                .next_back()
                .is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
        })
        .map(|(i, _)| {
            let rest = &line[i + prefix.len()..];
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .filter(|name| !name.is_empty())
        .collect()
}

/// Every edge `(from, to, where)` in src/: top-level modules, and cli's files among themselves.
fn edges() -> Vec<(String, String, String)> {
    let src = root().join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let cli_files: BTreeSet<String> = files
        .iter()
        .filter(|f| f.parent() == Some(&src.join("cli")))
        .map(|f| f.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    let mut edges = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        if top == "lib" || top == "main" {
            continue;
        }
        let cli_file = (file.parent() == Some(&src.join("cli")))
            .then(|| format!("cli/{}", file.file_stem().unwrap().to_string_lossy()));
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            let at = format!("{}:{}", rel.display(), n + 1);
            for target in after(line, "crate::") {
                if target != top {
                    edges.push((top.clone(), target.to_owned(), at.clone()));
                }
            }
            if let Some(from) = &cli_file {
                let siblings = after(line, "super::")
                    .into_iter()
                    .chain(after(line, "crate::cli::"));
                for sibling in siblings {
                    let to = format!("cli/{sibling}");
                    if cli_files.contains(sibling) && &to != from {
                        edges.push((from.clone(), to, at.clone()));
                    }
                }
            }
        }
    }
    edges
}

#[test]
fn every_import_is_an_allowed_edge() {
    let allowed = allowed();
    let mut wrong = Vec::new();
    for (from, to, at) in edges() {
        // cli's files are checked among themselves; towards other modules they are `cli`.
        let module = if from.starts_with("cli/") && !to.starts_with("cli/") {
            "cli"
        } else {
            from.as_str()
        };
        if allowed.get(module).is_some_and(|uses| uses.contains(&to)) {
            continue;
        }
        let is_module = to.starts_with("cli/")
            || root().join("src").join(&to).is_dir()
            || root().join("src").join(format!("{to}.rs")).is_file();
        if is_module {
            wrong.push(format!("{at}: {module} → {to}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "imports the table in docs/architecture.md does not allow (a module may only use \
         the ones below it):\n{}",
        wrong.join("\n")
    );
}

/// Depth-first search for a back edge (a circle) from `node`.
fn visit(
    node: &str,
    allowed: &BTreeMap<String, BTreeSet<String>>,
    path: &mut Vec<String>,
    done: &mut BTreeSet<String>,
) {
    if done.contains(node) {
        return;
    }
    assert!(
        !path.iter().any(|p| p == node),
        "the import graph table has a circle: {} → {node}",
        path.join(" → ")
    );
    path.push(node.to_owned());
    for next in allowed.get(node).into_iter().flatten() {
        visit(next, allowed, path, done);
    }
    path.pop();
    done.insert(node.to_owned());
}

#[test]
fn every_module_is_in_the_table_and_the_table_has_no_circle() {
    let allowed = allowed();
    let src = root().join("src");
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if name != "lib" && name != "main" {
            assert!(
                allowed.contains_key(&name),
                "src/{name} is missing from the import graph table of docs/architecture.md"
            );
        }
    }
    let mut done = BTreeSet::new();
    for node in allowed.keys() {
        visit(node, &allowed, &mut Vec::new(), &mut done);
    }
}

#[test]
fn the_checker_sees_an_upward_import() {
    // The parsing the two tests above rely on.
    assert_eq!(
        after("use crate::engine::{Input, Intent};", "crate::"),
        ["engine"]
    );
    assert_eq!(
        after(
            "let x = crate::vocab::now_ms() + crate::logs::X;",
            "crate::"
        ),
        ["vocab", "logs"]
    );
    assert!(after("use mycrate::engine;", "crate::").is_empty());
    assert_eq!(after("use super::remote::ps;", "super::"), ["remote"]);
}
