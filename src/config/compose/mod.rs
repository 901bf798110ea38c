//! The process-compose front end: process-compose.yaml files → the same `Config` pk.yaml
//! produces (there is no second engine path).
//!
//! Pipeline, as process-compose's loader (`PRIOR_ART` Part B §1.1): `.env` in the current
//! directory is read (variables for expansion, and injected into every process unless
//! `is_dotenv_disabled`); each file's raw text is expanded (`expand`, unless
//! `disable_env_expansion: true`) and parsed, with its spans mapped back to the text as
//! written; top-level `extends:` chains are followed (base first); the files merge in order
//! (`merge`); process-level `extends:` is resolved; `vars` are rendered into each process's
//! strings (`template`, unless `is_template_disabled`); `read` walks the result into a
//! `Config`. Every problem is a located `Diag`, in the file it comes from.

mod expand;
mod merge;
mod read;
mod template;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::diag::{Diag, Source, Span};
use super::load::{File, Format, Loaded};
use super::node::{self, Node, Value};

/// Reads process-compose `files` (merged in order), run from `cwd` with `env` inherited.
pub(crate) fn load(files: Vec<File>, cwd: &Path, env: &BTreeMap<String, String>) -> Loaded {
    let mut loader = Loader {
        cwd,
        sources: Vec::new(),
        paths: Vec::new(),
        diags: Vec::new(),
        vars: BTreeMap::new(),
    };
    let dotenv = loader.dotenv(env);
    loader.vars = dotenv.iter().cloned().collect();
    loader
        .vars
        .extend(env.iter().map(|(k, v)| (k.clone(), v.clone())));
    let mut trees = Vec::new();
    for file in files {
        let mut chain = Vec::new();
        loader.file(&file, &mut chain, &mut trees, false);
    }
    let base_dir = loader
        .paths
        .last()
        .and_then(|p| p.parent())
        .map_or_else(|| cwd.to_path_buf(), Path::to_path_buf);
    let mut trees = trees.into_iter();
    let config = trees.next().map(|mut root| {
        for tree in trees {
            merge::merge(&mut root, tree, "");
        }
        let mut reader = read::Reader::new(cwd, &mut loader.diags);
        reader.config(&root)
    });
    let config = config.flatten();
    Loaded {
        format: Format::ProcessCompose,
        sources: loader.sources,
        config,
        top_file_vars: dotenv,
        diags: loader.diags,
        base_dir,
        invalid_ready: Vec::new(),
    }
}

struct Loader<'a> {
    cwd: &'a Path,
    sources: Vec<Source>,
    /// Canonical path of each source.
    paths: Vec<PathBuf>,
    diags: Vec<Diag>,
    /// Variables for expansion: `.env`, then the inherited environment over it.
    vars: BTreeMap<String, String>,
}

impl Loader<'_> {
    /// `.env` in the current directory, if there is one.
    fn dotenv(&mut self, env: &BTreeMap<String, String>) -> Vec<(String, String)> {
        if env
            .get("PC_DISABLE_DOTENV")
            .is_some_and(|v| !v.is_empty() && v != "0" && v != "false")
        {
            return Vec::new();
        }
        let path = self.cwd.join(".env");
        if !path.is_file() {
            return Vec::new();
        }
        let located = super::model::Located {
            value: path.display().to_string(),
            span: Span::default(),
        };
        match super::envfile::read(self.cwd, &located) {
            Ok(vars) => vars,
            Err(mut diag) => {
                diag.labels.clear();
                self.diags.push(diag.help("process-compose reads .env from the current directory; fix it, or set PC_DISABLE_DOTENV=1"));
                Vec::new()
            }
        }
    }

    /// Adds `file` (after the files it `extends:`, base first) to `trees`. `chain` holds the
    /// files extending this one, for cycle checks; `extended` is set for a file read through
    /// an `extends:` entry.
    fn file(
        &mut self,
        file: &File,
        chain: &mut Vec<PathBuf>,
        trees: &mut Vec<Node>,
        extended: bool,
    ) {
        let canonical = std::fs::canonicalize(&file.path).unwrap_or_else(|_| file.path.clone());
        let index = u16::try_from(self.sources.len()).unwrap_or(u16::MAX);
        self.sources.push(file.source.clone());
        self.paths.push(canonical.clone());
        let text = &file.source.text;
        let disabled = node::parse(text).ok().is_some_and(|root| {
            root.get("disable_env_expansion")
                .is_some_and(|n| matches!(n.value, Value::Bool(true)))
        });
        let expanded = if disabled {
            expand::Expanded::verbatim(text)
        } else {
            expand::expand(text, &self.vars, index, &mut self.diags)
        };
        let mut root = match node::parse_file(&expanded.text, index) {
            Ok(root) => root,
            Err(mut diag) => {
                for (span, _) in &mut diag.labels {
                    *span = expanded.original_span(*span);
                }
                self.diags.push(diag);
                return;
            }
        };
        remap(&mut root, &expanded);
        if !matches!(root.value, Value::Map(_)) {
            self.diags.push(
                Diag::error(format!(
                    "a process-compose file must be a map with a `processes` key, not {}",
                    root.kind()
                ))
                .label(root.span, "the document starts here"),
            );
            return;
        }
        if let Some(base) = root.get("extends").cloned() {
            self.extends(file, &canonical, &base, chain, trees);
        }
        if extended {
            // process-compose resolves the working dirs of an extended file against its own
            // directory, not the current one.
            let dir = canonical.parent().unwrap_or(Path::new("/")).to_path_buf();
            resolve_working_dirs(&mut root, &dir);
        }
        trees.push(root);
    }

    fn extends(
        &mut self,
        file: &File,
        canonical: &Path,
        base: &Node,
        chain: &mut Vec<PathBuf>,
        trees: &mut Vec<Node>,
    ) {
        let Value::Str(name) = &base.value else {
            self.diags.push(
                Diag::error(format!(
                    "`extends` must be a file name, not {}",
                    base.kind()
                ))
                .label(base.span, "expected a path"),
            );
            return;
        };
        let dir = file.path.parent().unwrap_or(Path::new("/"));
        let path = dir.join(name);
        let target = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        if target == canonical || chain.contains(&target) {
            self.diags.push(
                Diag::error(format!("`extends: {name}` makes a loop of files"))
                    .label(base.span, "extends a file that extends this one")
                    .help("a file cannot extend itself, directly or through others"),
            );
            return;
        }
        let Ok(base_file) = File::read(&path, self.cwd) else {
            {
                self.diags.push(
                    Diag::error(format!("`extends`: cannot read `{}`", path.display()))
                        .label(base.span, "no such file")
                        .help("the path is relative to the directory of the file that extends it"),
                );
                return;
            }
        };
        chain.push(canonical.to_path_buf());
        self.file(&base_file, chain, trees, true);
        chain.pop();
    }
}

/// Maps every span of a tree parsed from expanded text back to the text as written.
fn remap(node: &mut Node, expanded: &expand::Expanded) {
    node.span = expanded.original_span(node.span);
    match &mut node.value {
        Value::Seq(items) => items.iter_mut().for_each(|n| remap(n, expanded)),
        Value::Map(entries) => entries.iter_mut().for_each(|(k, v)| {
            remap(k, expanded);
            remap(v, expanded);
        }),
        _ => {}
    }
}

/// Makes each process's `working_dir` of an extended file absolute against `dir` (an unset one
/// becomes `dir`).
fn resolve_working_dirs(root: &mut Node, dir: &Path) {
    let Value::Map(entries) = &mut root.value else {
        return;
    };
    let Some((_, processes)) = entries
        .iter_mut()
        .find(|(k, _)| k.scalar_text() == Some("processes"))
    else {
        return;
    };
    let Value::Map(processes) = &mut processes.value else {
        return;
    };
    for (_, process) in processes {
        let span = process.span;
        let Value::Map(keys) = &mut process.value else {
            continue;
        };
        match keys
            .iter_mut()
            .find(|(k, _)| k.scalar_text() == Some("working_dir"))
        {
            Some((_, wd)) => {
                if let Value::Str(s) = &mut wd.value {
                    *s = dir.join(&*s).display().to_string();
                }
            }
            None => keys.push((
                Node {
                    value: Value::Str("working_dir".into()),
                    span,
                    raw: "working_dir".into(),
                },
                Node {
                    value: Value::Str(dir.display().to_string()),
                    span,
                    raw: String::new(),
                },
            )),
        }
    }
}
