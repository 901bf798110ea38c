//! The entry point of every config format: detects each file's format and hands the files to
//! the front end that reads it into the one `Config` model.
//!
//! Front ends: pk.yaml (`read`, several files merged by `merge`), process-compose (`compose`),
//! Procfile (`procfile`, one file). All files of one load must have the same format; they merge
//! in the order given, by the rules of their format. Every span a front end produces carries the index of its file in
//! `files`, so diagnostics are rendered against the right source.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::diag::{Diag, Source, Span};
use super::model::{Config, Paths};
use super::node::{self, Node, Value};
use super::{compose, envfile, merge, procfile, read};

/// One config file of a load: where it is (absolute) and its text.
#[derive(Debug, Clone)]
pub struct File {
    pub path: PathBuf,
    pub source: Source,
}

impl File {
    /// Reads `path`, shown in messages relative to `cwd` when it is inside it.
    pub(crate) fn read(path: &Path, cwd: &Path) -> Result<File, Diag> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Diag::error(format!("cannot read {}: {e}", path.display()))
                .help("check that the file exists and is readable (and is UTF-8 text)")
        })?;
        let shown = path.strip_prefix(cwd).unwrap_or(path);
        Ok(File {
            path: path.to_path_buf(),
            source: Source {
                name: shown.display().to_string(),
                text,
            },
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Pk,
    ProcessCompose,
    Procfile,
}

impl Format {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Format::Pk => "pk.yaml",
            Format::ProcessCompose => "process-compose",
            Format::Procfile => "Procfile",
        }
    }
}

/// What a front end hands to `plan::build`.
#[derive(Debug)]
pub struct Loaded {
    pub format: Format,
    /// Every file read, including those pulled in by `extends:`; spans index this list.
    pub sources: Vec<Source>,
    /// `None` when a problem stopped the front end before it had a config.
    pub config: Option<Config>,
    /// Variables of the top-level env files (`.env` for process-compose), in file order; the
    /// inherited environment wins over them.
    pub top_file_vars: Vec<(String, String)>,
    pub diags: Vec<Diag>,
    /// Relative paths left in `config` resolve against this directory.
    pub base_dir: PathBuf,
    /// Services whose invalid `ready` block was reported already (no second error for a
    /// `healthy` dependency on them).
    pub invalid_ready: Vec<String>,
}

/// Reads `files` (all of one format) into a `Config`, with `env` as the inherited environment
/// and `cwd` as the directory pk runs in.
pub fn load(files: Vec<File>, cwd: &Path, env: &BTreeMap<String, String>) -> Loaded {
    let base_dir = files
        .first()
        .and_then(|f| f.path.parent())
        .map_or_else(|| cwd.to_path_buf(), Path::to_path_buf);
    let mut formats = Vec::new();
    let mut diags = Vec::new();
    for (i, file) in files.iter().enumerate() {
        match detect(&file.path, &file.source.text) {
            Ok(format) => formats.push(format),
            Err(diag) => diags.push(in_file(diag, i)),
        }
    }
    let sources: Vec<Source> = files.iter().map(|f| f.source.clone()).collect();
    let failed = |format, diags| Loaded {
        format,
        sources: sources.clone(),
        config: None,
        top_file_vars: Vec::new(),
        diags,
        base_dir: base_dir.clone(),
        invalid_ready: Vec::new(),
    };
    if !diags.is_empty() {
        return failed(Format::Pk, diags);
    }
    let format = formats[0];
    if let Some(other) = formats.iter().position(|f| *f != format) {
        let diag = Diag::error(format!(
            "`{}` is a {} file but `{}` is a {} file",
            files[0].source.name,
            format.name(),
            files[other].source.name,
            formats[other].name()
        ))
        .help("files given with several -f merge into one stack and must all have the same format");
        return failed(format, vec![diag]);
    }
    match format {
        Format::Pk => read_pk(&files, &base_dir, env),
        Format::ProcessCompose => compose::load(files, cwd, env),
        Format::Procfile => {
            if files.len() > 1 {
                let diag = Diag::error("several Procfiles cannot be merged")
                    .help("give one Procfile with -f");
                return failed(format, vec![diag]);
            }
            let file = &files[0];
            let (read, diags) =
                procfile::read(&file.path, &file.source.name, &file.source.text, env);
            Loaded {
                format,
                sources,
                config: read.map(|r| r.config),
                top_file_vars: Vec::new(),
                diags,
                base_dir,
                invalid_ready: Vec::new(),
            }
        }
    }
}

/// Moves a diagnostic's labels into file `i` (for diagnostics made without knowing the file).
fn in_file(mut diag: Diag, i: usize) -> Diag {
    let file = u16::try_from(i).unwrap_or(u16::MAX);
    for (span, _) in &mut diag.labels {
        *span = span.in_file(file);
    }
    diag
}

/// The format of a config file: by its name, then by its content. A docker compose file is
/// an error with a clear message rather than a guess.
pub(crate) fn detect(path: &Path, text: &str) -> Result<Format, Diag> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let lower = name.to_ascii_lowercase();
    if procfile::is_procfile(path)
        || lower == "procfile"
        || lower.starts_with("procfile.")
        || lower.ends_with(".procfile")
    {
        return Ok(Format::Procfile);
    }
    if super::discover::FILE_NAMES.contains(&lower.as_str()) {
        return Ok(Format::Pk);
    }
    if lower.starts_with("process-compose") {
        return Ok(Format::ProcessCompose);
    }
    let Ok(root) = node::parse(text) else {
        // Not YAML: a Procfile is the only format pk reads that need not be.
        if looks_like_procfile(text) {
            return Ok(Format::Procfile);
        }
        // Let the pk.yaml reader report the syntax error where it is.
        return Ok(Format::Pk);
    };
    if root.get("processes").is_some() {
        return Ok(Format::ProcessCompose);
    }
    if let Some(services) = root.get("services") {
        if let Some(span) = docker_image(services) {
            return Err(Diag::error(format!(
                "`{name}` looks like a docker compose file, which pk does not run"
            ))
            .label(span, "a container image")
            .help("pk runs local processes: write a pk.yaml whose services have a `command`, or give pk a process-compose.yaml or a Procfile"));
        }
        return Ok(Format::Pk);
    }
    if let Value::Map(entries) = &root.value {
        let all_commands = !entries.is_empty()
            && entries
                .iter()
                .all(|(_, v)| matches!(v.value, Value::Str(_)));
        if all_commands && looks_like_procfile(text) {
            return Ok(Format::Procfile);
        }
    }
    Ok(Format::Pk)
}

/// The span of an `image:` key of some service, if any.
fn docker_image(services: &Node) -> Option<Span> {
    let Value::Map(entries) = &services.value else {
        return None;
    };
    entries
        .iter()
        .find_map(|(_, service)| match &service.value {
            Value::Map(keys) => keys
                .iter()
                .find(|(k, _)| matches!(k.scalar_text(), Some("image" | "build")))
                .map(|(k, _)| k.span),
            _ => None,
        })
}

/// Every non-blank, non-comment line is `name: command`.
fn looks_like_procfile(text: &str) -> bool {
    let mut any = false;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, command)) = line.split_once(':') else {
            return false;
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            || command.trim().is_empty()
        {
            return false;
        }
        any = true;
    }
    any
}

/// The pk.yaml front end: each file parsed (its spans carry its index in `files`), the trees
/// merged in order by docker compose's rules (`merge`), the result read by `read::Reader`.
/// Interpolation runs after the merge, so a later file's `env_file` counts.
fn read_pk(files: &[File], base_dir: &Path, env: &BTreeMap<String, String>) -> Loaded {
    let mut loaded = Loaded {
        format: Format::Pk,
        sources: files.iter().map(|f| f.source.clone()).collect(),
        config: None,
        top_file_vars: Vec::new(),
        diags: Vec::new(),
        base_dir: base_dir.to_path_buf(),
        invalid_ready: Vec::new(),
    };
    let mut root: Option<Node> = None;
    for (i, file) in files.iter().enumerate() {
        let index = u16::try_from(i).unwrap_or(u16::MAX);
        match node::parse_file(&file.source.text, index) {
            // An empty file adds nothing (it does not replace the files before it).
            Ok(tree) if root.is_some() && matches!(tree.value, Value::Null) => {}
            Ok(tree) => {
                root = Some(match root {
                    Some(base) => merge::merge(base, tree),
                    None => tree,
                });
            }
            // Every file's syntax errors are reported; nothing is read.
            Err(diag) => loaded.diags.push(diag),
        }
    }
    let Some(root) = root.filter(|_| loaded.diags.is_empty()) else {
        return loaded;
    };
    let (top_files, mut diags) = read::top_env_files(&root, env);
    let top_file_vars = read_env_files(base_dir, &top_files, &mut diags);
    let mut vars: BTreeMap<String, String> = top_file_vars.iter().cloned().collect();
    vars.extend(env.iter().map(|(k, v)| (k.clone(), v.clone())));
    let mut reader = read::Reader::new(&vars);
    let config = reader.config(&root);
    diags.append(&mut reader.diags);
    loaded.config = config.map(|mut c| {
        c.env_file = top_files;
        c
    });
    loaded.top_file_vars = top_file_vars;
    loaded.diags = diags;
    loaded.invalid_ready = std::mem::take(&mut reader.invalid_ready);
    loaded
}

/// The variables of `files` (relative to `base_dir`), in order; problems go to `diags`.
pub(crate) fn read_env_files(
    base_dir: &Path,
    files: &Paths,
    diags: &mut Vec<Diag>,
) -> Vec<(String, String)> {
    let mut vars = Vec::new();
    for file in &files.0 {
        match envfile::read(base_dir, file) {
            Ok(mut v) => vars.append(&mut v),
            Err(d) => diags.push(d),
        }
    }
    vars
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format(name: &str, text: &str) -> Result<Format, String> {
        detect(Path::new(name), text).map_err(|d| d.message)
    }

    #[test]
    fn detection_by_name_then_content() {
        assert_eq!(format("Procfile", "web: x"), Ok(Format::Procfile));
        assert_eq!(format("Procfile.dev", "web: x"), Ok(Format::Procfile));
        assert_eq!(format("pk.yml", "processes: {}"), Ok(Format::Pk));
        assert_eq!(
            format("process-compose.override.yml", "x: 1"),
            Ok(Format::ProcessCompose)
        );
        assert_eq!(
            format("dev.yaml", "processes:\n  a:\n    command: x\n"),
            Ok(Format::ProcessCompose)
        );
        assert_eq!(
            format("dev.yaml", "services:\n  a:\n    command: x\n"),
            Ok(Format::Pk)
        );
        assert_eq!(
            format(
                "procs",
                "web: bundle exec rails s -p $PORT\nworker: sidekiq\n"
            ),
            Ok(Format::Procfile)
        );
        let docker = format("compose.yaml", "services:\n  db:\n    image: postgres:16\n");
        assert!(docker.unwrap_err().contains("docker compose"));
    }
}
