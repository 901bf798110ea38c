//! Builds a `Plan` from a config file: validation, defaults, environments, the DAG.
//!
//! Pure with respect to the process: `load_str` sees only the environment it is given. Every
//! problem becomes a located `Diag`; the plan is returned only when there is none.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use super::{
    Dependency, EnvCmdSpec, EnvSource, ExitRules, Plan, ProbeSpec, RestartSpec, RunSpec, ServiceId,
    ServiceSpec, ShutdownSpec, StopSignal, WatchAction, WatchPath, WatchSpec,
};
use super::{graph, replicas};
use crate::config::diag::{Diag, Source, Span, did_you_mean, line_col};
use crate::config::load::{self, read_env_files};
use crate::config::model::{self, Config, EnvMap, HumanDuration, Probe, Service};
use crate::config::{discover, read};
use crate::vocab::Condition;

const DEFAULT_GRACE: Duration = Duration::from_secs(10);
const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(200);

/// Diagnostics about the config files of one load, each rendered against its own file.
#[derive(Debug, Clone, Default)]
pub struct Diagnostics {
    /// The files as shown in messages, with their text; spans index this list (empty for "no
    /// file found" and the like).
    files: Vec<Source>,
    diags: Vec<Diag>,
}

impl Diagnostics {
    pub fn is_empty(&self) -> bool {
        self.diags.is_empty()
    }

    /// Each diagnostic as one line: `file:line:col: message` (for logs and tests).
    pub fn lines(&self) -> Vec<String> {
        self.diags
            .iter()
            .map(|d| {
                let kind = if d.warning { "warning" } else { "error" };
                let located = d.labels.first().and_then(|(span, _)| {
                    let file = self.files.get(usize::from(span.file))?;
                    Some((file, span))
                });
                match located {
                    Some((file, span)) => {
                        let (line, col) = line_col(&file.text, span.offset);
                        format!("{}:{line}:{col}: {kind}: {}", file.name, d.message)
                    }
                    None => format!("{kind}: {}", d.message),
                }
            })
            .collect()
    }

    /// Every diagnostic with `file:line:col`, snippet and hint; colour only if `color`.
    pub fn render(&self, color: bool) -> String {
        let mut out = String::new();
        for diag in &self.diags {
            out.push_str(&diag.render_in(&self.files, color));
            out.push('\n');
        }
        let errors = self.diags.iter().filter(|d| !d.warning).count();
        if errors > 1 {
            let _ = writeln!(out, "{errors} errors in {}", files_name(&self.files));
        }
        out
    }
}

/// `pk.yaml`, `a.yaml and b.yaml`, or `the config`.
fn files_name(files: &[Source]) -> String {
    match files {
        [] => "the config".to_owned(),
        [one] => one.name.clone(),
        [rest @ .., last] => {
            let names: Vec<&str> = rest.iter().map(|s| s.name.as_str()).collect();
            format!("{} and {}", names.join(", "), last.name)
        }
    }
}

/// Everything wrong with a config, reported at once.
#[derive(Debug, thiserror::Error)]
#[error("{summary}")]
pub struct LoadError {
    summary: String,
    diagnostics: Diagnostics,
}

impl LoadError {
    fn new(files: Vec<Source>, mut diags: Vec<Diag>) -> LoadError {
        // Document order (file by file); diagnostics without a location first.
        diags.sort_by_key(|d| d.labels.first().map(|(s, _)| (s.file, s.offset)));
        diags.dedup();
        let errors: Vec<&Diag> = diags.iter().filter(|d| !d.warning).collect();
        let summary = match errors.as_slice() {
            [one] => one.message.clone(),
            many => format!("{} errors in {}", many.len(), files_name(&files)),
        };
        LoadError {
            summary,
            diagnostics: Diagnostics { files, diags },
        }
    }

    /// Problems that point into no file (command-line arguments), all reported.
    pub(crate) fn unlocated(diags: Vec<Diag>) -> LoadError {
        LoadError::new(Vec::new(), diags)
    }

    pub(crate) fn single(diag: Diag) -> LoadError {
        LoadError::new(Vec::new(), vec![diag])
    }

    /// Every diagnostic, rendered with `file:line:col`, snippet and hint.
    pub fn render(&self, color: bool) -> String {
        self.diagnostics.render(color)
    }

    pub fn diagnostics(&self) -> &Diagnostics {
        &self.diagnostics
    }
}

/// Finds the config files (`explicit` (`-f`, repeatable), else `PK_FILE`, else discovery from
/// `cwd`) and builds the plan with the process environment. Warnings go to stderr.
pub fn load(explicit: &[PathBuf], cwd: &Path) -> Result<Plan, LoadError> {
    let (plan, warnings) = load_with_warnings(explicit, cwd)?;
    if !warnings.is_empty() {
        eprint!("{}", warnings.render(std::io::stderr().is_terminal()));
    }
    Ok(plan)
}

/// The canonical path of the (first) config file `load` would read, without reading it; it
/// names the stack for `pk down`, `pk ps` and the like.
pub(crate) fn find_config(explicit: &[PathBuf], cwd: &Path) -> Result<PathBuf, LoadError> {
    let pk_file = std::env::var_os("PK_FILE").map(PathBuf::from);
    let paths = discover::find(explicit, pk_file.as_deref(), cwd).map_err(LoadError::single)?;
    let path = paths[0].clone();
    Ok(std::fs::canonicalize(&path).unwrap_or(path))
}

/// Every config file `load` would read (canonical, in merge order), without reading them.
pub(crate) fn find_configs(explicit: &[PathBuf], cwd: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let pk_file = std::env::var_os("PK_FILE").map(PathBuf::from);
    let paths = discover::find(explicit, pk_file.as_deref(), cwd).map_err(LoadError::single)?;
    Ok(paths
        .into_iter()
        .map(|p| std::fs::canonicalize(&p).unwrap_or(p))
        .collect())
}

/// `load`, returning the warnings instead of printing them.
pub(crate) fn load_with_warnings(
    explicit: &[PathBuf],
    cwd: &Path,
) -> Result<(Plan, Diagnostics), LoadError> {
    let env: BTreeMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    load_with_env(explicit, cwd, &env)
}

/// `load_with_warnings` with `env` as the whole inherited environment (`PK_FILE` read from it).
pub fn load_with_env(
    explicit: &[PathBuf],
    cwd: &Path,
    env: &BTreeMap<String, String>,
) -> Result<(Plan, Diagnostics), LoadError> {
    build(read_files(explicit, cwd, env)?, cwd, env)
}

/// `pk import`: the pk.yaml for the files `explicit` (a Procfile, or process-compose files
/// merged in order), with a comment wherever the meaning changes. The files must build a plan
/// first, so an import never hides an error of the original; the warnings become comments.
pub fn import_with_env(
    explicit: &[PathBuf],
    cwd: &Path,
    env: &BTreeMap<String, String>,
) -> Result<String, LoadError> {
    let files = read_files(explicit, cwd, env)?;
    build(files.clone(), cwd, env)?;
    let from: Vec<&str> = files.iter().map(|f| f.source.name.as_str()).collect();
    let from = from.join(" ");
    let loaded = load::load(files.clone(), cwd, env);
    let yaml = match loaded.format {
        load::Format::Procfile => {
            let file = &files[0];
            crate::config::import::procfile(&file.path, &from, &file.source.text, env)
                .map_err(|diags| LoadError::new(loaded.sources.clone(), diags))?
        }
        load::Format::ProcessCompose => crate::config::import::compose(&loaded, cwd, &from)
            .ok_or_else(|| LoadError::new(loaded.sources.clone(), loaded.diags.clone()))?,
        load::Format::Pk => {
            return Err(LoadError::single(
                Diag::error(format!("`{from}` is a pk.yaml already"))
                    .help("pk import translates a Procfile or process-compose files"),
            ));
        }
    };
    Ok(yaml)
}

/// The config files (`explicit`, else `PK_FILE` from `env`, else discovery from `cwd`), read.
fn read_files(
    explicit: &[PathBuf],
    cwd: &Path,
    env: &BTreeMap<String, String>,
) -> Result<Vec<load::File>, LoadError> {
    let pk_file = env.get("PK_FILE").map(PathBuf::from);
    let paths = discover::find(explicit, pk_file.as_deref(), cwd).map_err(LoadError::single)?;
    let mut files = Vec::with_capacity(paths.len());
    for path in &paths {
        let shown = path.strip_prefix(cwd).unwrap_or(path).display().to_string();
        match crate::config::source::read_text(path) {
            Ok(text) => files.push(load::File {
                path: path.clone(),
                source: Source { name: shown, text },
            }),
            Err(e) => {
                let (diag, text) = e.diag(&shown);
                let sources = text
                    .map(|text| vec![Source { name: shown, text }])
                    .unwrap_or_default();
                return Err(LoadError::new(sources, vec![diag]));
            }
        }
    }
    Ok(files)
}

/// Builds the plan from YAML text as if read from `path`, with `env` as the inherited
/// environment. Warnings are dropped; see `load_str_with_warnings`.
pub fn load_str(
    source: &str,
    path: &Path,
    env: &BTreeMap<String, String>,
) -> Result<Plan, LoadError> {
    load_str_with_warnings(source, path, env).map(|(plan, _)| plan)
}

/// `load_str`, also returning the warnings.
pub fn load_str_with_warnings(
    source: &str,
    path: &Path,
    env: &BTreeMap<String, String>,
) -> Result<(Plan, Diagnostics), LoadError> {
    let cwd = path.parent().unwrap_or(Path::new("/"));
    load_strs_with_warnings(&[(path, source)], cwd, env)
}

/// Several files given as text (merged in order, like `-f a -f b`), run from `cwd`.
pub fn load_strs_with_warnings(
    files: &[(&Path, &str)],
    cwd: &Path,
    env: &BTreeMap<String, String>,
) -> Result<(Plan, Diagnostics), LoadError> {
    let files = files
        .iter()
        .map(|(path, text)| load::File {
            path: path.to_path_buf(),
            source: Source {
                name: path.display().to_string(),
                text: (*text).to_owned(),
            },
        })
        .collect();
    build(files, cwd, env)
}

fn build(
    files: Vec<load::File>,
    cwd: &Path,
    env: &BTreeMap<String, String>,
) -> Result<(Plan, Diagnostics), LoadError> {
    let canonical = |path: &Path| {
        std::fs::canonicalize(path)
            .or_else(|_| std::path::absolute(path))
            .unwrap_or_else(|_| path.to_path_buf())
    };
    let all_files: Vec<PathBuf> = files.iter().map(|f| canonical(&f.path)).collect();
    let config_path = all_files.first().cloned().unwrap_or_default();
    let loaded = load::load(files, cwd, env);
    let load::Loaded {
        format,
        sources,
        config,
        top_file_vars,
        diags,
        base_dir,
        invalid_ready,
    } = loaded;
    let base_dir = std::fs::canonicalize(&base_dir).unwrap_or(base_dir);
    let Some(config) = config else {
        return Err(LoadError::new(sources, diags));
    };
    let mut builder = Builder {
        invalid_ready,
        config: &config,
        base_dir: &base_dir,
        env,
        top_file_vars: &top_file_vars,
        diags,
        own_vars: Vec::new(),
    };
    let declared = builder.services();
    let env_cmds = builder.env_cmds(cwd, &sources);
    let mut diags = builder.diags;
    let declared_order = graph::check_and_order(&config, &declared, &mut diags);
    let (services, order) = expand_replicas(&config, &declared, &declared_order, &mut diags);
    if diags.iter().any(|d| !d.warning) {
        return Err(LoadError::new(sources, diags));
    }
    let name = config.name.clone().unwrap_or_else(|| {
        base_dir
            .file_name()
            .map_or_else(|| "pk".to_owned(), |n| n.to_string_lossy().into_owned())
    });
    let plan = Plan {
        name,
        files: all_files,
        config_path,
        base_dir,
        services,
        exit_rules: match format {
            load::Format::ProcessCompose => ExitRules::ProcessCompose,
            load::Format::Pk | load::Format::Procfile => ExitRules::Pk,
        },
        order,
        env_cmds,
        stack_log: config.stack_log.clone(),
    };
    let LoadError { diagnostics, .. } = LoadError::new(sources, diags);
    Ok((plan, diagnostics))
}

/// Each declared service as `replicas` copies (`plan::replicas`), located at its `replicas`
/// key (or its name) for name clashes.
fn expand_replicas(
    config: &Config,
    declared: &[ServiceSpec],
    order: &[ServiceId],
    diags: &mut Vec<Diag>,
) -> (Vec<ServiceSpec>, Vec<ServiceId>) {
    let services = &config.services.0;
    let counts: Vec<u32> = services
        .iter()
        .map(|s| s.replicas.as_ref().map_or(1, |r| r.value))
        .collect();
    let spans: Vec<Span> = services
        .iter()
        .map(|s| s.replicas.as_ref().map_or(s.name.span, |r| r.span))
        .collect();
    replicas::expand(declared, order, &counts, &spans, diags)
}

struct Builder<'a> {
    /// Services whose invalid `ready` block was reported already.
    invalid_ready: Vec<String>,
    config: &'a Config,
    base_dir: &'a Path,
    env: &'a BTreeMap<String, String>,
    top_file_vars: &'a [(String, String)],
    diags: Vec<Diag>,
    /// Per declared service, the variables its own `env_file` and `env` set.
    own_vars: Vec<Vec<String>>,
}

impl Builder<'_> {
    fn services(&mut self) -> Vec<ServiceSpec> {
        let names: Vec<&str> = self
            .config
            .services
            .0
            .iter()
            .map(|s| s.name.value.as_str())
            .collect();
        let base_env = self.base_env(true);
        let without_files = self.base_env(false);
        let mut specs = Vec::new();
        for (id, service) in self.config.services.0.iter().enumerate() {
            let depends_on = self.dependencies(id, service, &names);
            let base = if service.dotenv_disabled {
                &without_files
            } else {
                &base_env
            };
            let (env, own) = self.service_env(base, service);
            self.own_vars.push(own);
            let watch = service.watch.as_ref().map(|w| self.watch(service, w));
            let mut spec = self.service(service, depends_on, env);
            spec.watch = watch;
            spec.env_source = self.env_source(service);
            specs.push(spec);
        }
        specs
    }

    /// inherited ← top-level `env_file` (only variables not inherited; left out without
    /// `with_files`) ← top-level env.
    fn base_env(&self, with_files: bool) -> BTreeMap<String, String> {
        let mut env = self.env.clone();
        for (k, v) in self.top_file_vars.iter().filter(|_| with_files) {
            env.entry(k.clone()).or_insert_with(|| v.clone());
        }
        apply(&mut env, &self.config.env);
        env
    }

    /// base ← service `env_file` ← service env; and the names those two set.
    fn service_env(
        &mut self,
        base: &BTreeMap<String, String>,
        service: &Service,
    ) -> (BTreeMap<String, String>, Vec<String>) {
        let mut env = base.clone();
        let from_files = read_env_files(self.base_dir, &service.env_file, &mut self.diags);
        let own = (from_files.iter().map(|(k, _)| k))
            .chain(service.env.0.iter().map(|(k, _)| k))
            .cloned()
            .collect();
        env.extend(from_files);
        apply(&mut env, &service.env);
        (env, own)
    }

    /// `env_cmds`, each with the declared services that set its variable themselves (after
    /// `services`, which notes what each sets).
    fn env_cmds(&self, cwd: &Path, sources: &[Source]) -> Vec<EnvCmdSpec> {
        let cmds = &self.config.env_cmds;
        // As process-compose runs them: the inherited environment, plus `.env`.
        let mut env = self.env.clone();
        for (k, v) in self.top_file_vars {
            env.entry(k.clone()).or_insert_with(|| v.clone());
        }
        cmds.cmds
            .iter()
            .map(|cmd| {
                let name = &cmd.name.value;
                let set_by = (self.config.services.0.iter().zip(&self.own_vars))
                    .filter(|(_, own)| own.contains(name))
                    .map(|(s, _)| s.name.value.clone())
                    .collect();
                let span = cmd.name.span;
                EnvCmdSpec {
                    name: name.clone(),
                    command: cmd.command.0.clone(),
                    cwd: cwd.to_path_buf(),
                    env: env.clone(),
                    set_by,
                    strict: cmds.strict,
                    source: sources
                        .get(usize::from(span.file))
                        .cloned()
                        .unwrap_or(Source {
                            name: String::new(),
                            text: String::new(),
                        }),
                    span: span.in_file(0),
                }
            })
            .collect()
    }

    fn env_source(&self, service: &Service) -> EnvSource {
        let files = (self.config.env_file.0.iter())
            .chain(&service.env_file.0)
            .map(|f| normalize(&self.base_dir.join(&f.value)))
            .collect();
        let vars = (self.config.env.0.iter())
            .chain(&service.env.0)
            .cloned()
            .collect();
        EnvSource { files, vars }
    }

    fn dependencies(
        &mut self,
        id: ServiceId,
        service: &Service,
        names: &[&str],
    ) -> Vec<Dependency> {
        let mut deps = Vec::new();
        for dep in &service.depends_on.0 {
            let target = &dep.service.value;
            let Some(target_id) = names.iter().position(|n| n == target) else {
                let help = match did_you_mean(target, names.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("services in this file: {}", names.join(", ")),
                };
                self.diags.push(
                    Diag::error(format!(
                        "service `{}` depends on `{target}`, which is not a service",
                        service.name.value
                    ))
                    .label(dep.service.span, "unknown service")
                    .help(help),
                );
                continue;
            };
            if target_id == id {
                self.diags.push(
                    Diag::error(format!("service `{target}` depends on itself"))
                        .label(dep.service.span, "self-dependency")
                        .help("remove this entry"),
                );
                continue;
            }
            let target_service = &self.config.services.0[target_id];
            if dep.condition.value == Condition::Healthy
                && target_service.ready.is_none()
                && !self.invalid_ready.contains(&target_service.name.value)
            {
                self.diags.push(
                    Diag::error(format!(
                        "service `{}` waits for `{target}` to be healthy, but `{target}` has no `ready` probe",
                        service.name.value
                    ))
                    .label(dep.condition.span, "needs a ready probe")
                    .label(target_service.name.span, format!("`{target}` is declared here"))
                    .help(format!("add a `ready` probe to {target} or use `started`")),
                );
            }
            deps.push(Dependency {
                service: target_id,
                condition: dep.condition.value,
                required: dep.required,
                restart: dep.restart,
            });
        }
        deps
    }

    fn service(
        &self,
        service: &Service,
        depends_on: Vec<Dependency>,
        env: BTreeMap<String, String>,
    ) -> ServiceSpec {
        let run = match (&service.command, &service.pipeline) {
            (Some(command), _) => RunSpec::Command(command.0.clone()),
            (None, Some(stages)) => RunSpec::Pipeline(stages.clone()),
            // Already reported; the plan is never returned.
            (None, None) => RunSpec::Pipeline(Vec::new()),
        };
        let working_dir = normalize(
            &service
                .working_dir
                .as_ref()
                .map_or_else(|| self.base_dir.to_path_buf(), |d| self.base_dir.join(d)),
        );
        let log_file = match (&service.log_file, &self.config.log_dir) {
            (Some(file), _) => Some(normalize(&self.base_dir.join(file))),
            (None, Some(dir)) => Some(normalize(
                &self
                    .base_dir
                    .join(dir)
                    .join(format!("{}.log", service.name.value)),
            )),
            (None, None) => None,
        };
        let restart = service.restart.map_or_else(RestartSpec::default, |r| {
            let d = RestartSpec::default();
            RestartSpec {
                policy: r.policy,
                max: r.max.unwrap_or(d.max),
                window: r.window.unwrap_or(d.window),
                backoff_initial: r.backoff_initial.unwrap_or(d.backoff_initial),
                backoff_max: r.backoff_max.unwrap_or(d.backoff_max),
            }
        });
        let grace = read::or(self.config.grace, DEFAULT_GRACE);
        let shutdown = service.shutdown.as_ref().map_or(
            ShutdownSpec {
                signal: StopSignal::TERM,
                grace,
                command: None,
            },
            |s| ShutdownSpec {
                signal: s.signal.map_or(StopSignal::TERM, |s| s.0),
                grace: read::or(s.grace, grace),
                command: s.command.as_ref().map(|c| c.0.clone()),
            },
        );
        ServiceSpec {
            name: service.name.value.clone(),
            group: service.name.value.clone(),
            replica: 0,
            replicas: 1,
            port: service.port,
            exit_on_end: service.exit_on_end,
            run,
            working_dir,
            env,
            env_source: EnvSource::default(),
            depends_on,
            restart,
            shutdown,
            timeout: service.timeout.map(|t| t.0),
            tty: service.tty,
            disabled: service.disabled,
            log_file,
            ready: service
                .ready
                .as_ref()
                .map(|p| probe(p, Some(Duration::from_secs(60)))),
            alive: service.alive.as_ref().map(|p| probe(p, None)),
            watch: None,
            success_codes: service.success_exit_codes.clone(),
            namespaces: service.namespaces.clone(),
            ends_stack: service.ends_stack,
            template: None,
        }
    }

    /// Resolves `watch:` against the config directory; bad globs and ignore patterns are
    /// reported here so the watcher never meets one.
    fn watch(&mut self, service: &Service, watch: &model::Watch) -> WatchSpec {
        let name = &service.name.value;
        let mut paths = Vec::new();
        for written in &watch.paths {
            let absolute = normalize(&self.base_dir.join(written));
            let Some(split) = absolute
                .components()
                .position(|c| is_glob(&c.as_os_str().to_string_lossy()))
            else {
                paths.push(WatchPath {
                    path: absolute,
                    glob: None,
                });
                continue;
            };
            let pattern = absolute.to_string_lossy().into_owned();
            if let Err(e) = globset::GlobBuilder::new(&pattern)
                .literal_separator(true)
                .build()
            {
                self.diags.push(
                    Diag::error(format!(
                        "`services.{name}.watch.paths`: `{written}` is not a valid glob: {}",
                        e.kind()
                    ))
                    .label(service.name.span, "in this service")
                    .help("globs use `*`, `**`, `?`, `[abc]` and `{a,b}`"),
                );
                continue;
            }
            paths.push(WatchPath {
                path: absolute.components().take(split).collect(),
                glob: Some(pattern),
            });
        }
        let mut ignore = ignore::gitignore::GitignoreBuilder::new(self.base_dir);
        for pattern in &watch.ignore {
            if let Err(e) = ignore.add_line(None, pattern) {
                self.diags.push(
                    Diag::error(format!(
                        "`services.{name}.watch.ignore`: `{pattern}` is not a valid pattern: {e}"
                    ))
                    .label(service.name.span, "in this service")
                    .help("patterns use .gitignore syntax, e.g. `*.log`, `build`, `/tmp/**`"),
                );
            }
        }
        WatchSpec {
            paths,
            ignore: watch.ignore.clone(),
            debounce: read::or(watch.debounce, DEFAULT_DEBOUNCE),
            action: match watch.action {
                None | Some(model::WatchAction::Restart) => WatchAction::Restart,
                Some(model::WatchAction::Signal(s)) => WatchAction::Signal(s),
            },
            restart_dependents: watch.restart_dependents,
        }
    }
}

/// Whether a path component is a glob (rather than a literal name).
fn is_glob(component: &str) -> bool {
    component.contains(['*', '?', '[', '{'])
}

fn probe(p: &Probe, deadline: Option<Duration>) -> ProbeSpec {
    ProbeSpec {
        check: p.check.0.clone(),
        initial_delay: read::or(p.initial_delay, Duration::ZERO),
        interval: read::or(p.interval, Duration::from_secs(1)),
        timeout: read::or(p.timeout, Duration::from_secs(1)),
        retries: p.retries.unwrap_or(3),
        deadline: deadline.map(|d| p.deadline.map_or(d, |HumanDuration(d)| d)),
    }
}

fn apply(env: &mut BTreeMap<String, String>, map: &EnvMap) {
    for (k, v) in &map.0 {
        match v {
            Some(v) => env.insert(k.clone(), v.clone()),
            None => env.remove(k),
        };
    }
}

/// Removes `.` and folds `..` without touching the file system (the directory may not exist yet).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}
