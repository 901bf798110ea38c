//! Config → Plan: the validated, defaults-resolved, immutable description of a stack.
//!
//! Invariants: a `Plan` is only ever built by `plan::load` (or `Plan::from_config`), its
//! dependency graph is acyclic, every `ServiceId` indexes `Plan::services`, and nothing in it
//! changes after load. The engine consumes a `Plan` and never looks at YAML.

mod build;
mod graph;
mod replicas;

pub(crate) use build::load_with_warnings;
pub use build::{
    LoadError, import_with_env, load, load_str, load_str_with_warnings, load_strs_with_warnings,
    load_with_env,
};
pub(crate) use build::{find_config, find_configs};
pub(crate) use graph::only_namespaces;
pub use graph::{render_graph, select};
pub use replicas::scale;
pub(crate) use replicas::{CopyPosition, copy_positions};

pub use crate::config::model::{EndsStack, StackLog};

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::diag::{Diag, Source, Span};
use crate::vocab::{CommandSpec, Condition, ProbeCheck, RestartPolicy, ServiceId, StopSignal};

#[derive(Debug, Clone)]
pub struct Plan {
    /// `name:` from the file, else the config directory's name.
    pub name: String,
    /// Canonical path of the config file (the first one when several are merged).
    pub config_path: PathBuf,
    /// Every file the plan was read from, in merge order (`config_path` first).
    pub files: Vec<PathBuf>,
    /// Directory of the config file; relative paths resolve against it.
    pub base_dir: PathBuf,
    pub services: Vec<ServiceSpec>,
    /// How `pk up`'s exit code is decided (the file format's rules).
    pub exit_rules: ExitRules,
    /// Every service in a start order: each service comes after all its dependencies.
    pub order: Vec<ServiceId>,
    /// Commands `pk up` runs before any service, each output a variable of the services
    /// (process-compose `env_cmds`; [`Plan::set_env_cmd_output`]).
    pub env_cmds: Vec<EnvCmdSpec>,
    /// One file that keeps every service's output (process-compose's top-level `log_location`).
    pub stack_log: Option<StackLog>,
}

/// One process-compose `env_cmds` entry: run once (contained, with a deadline) when the stack
/// starts; its trimmed stdout becomes variable `name` of every service that does not set
/// `name` itself (process-compose's precedence: above the inherited environment, `.env` and
/// the top-level `environment`, below a process's `env_file` and `environment`).
#[derive(Debug, Clone)]
pub struct EnvCmdSpec {
    pub name: String,
    pub command: CommandSpec,
    /// Where it runs: the directory pk runs in.
    pub cwd: PathBuf,
    /// What it runs with: the inherited environment and `.env`, as process-compose runs it.
    pub env: BTreeMap<String, String>,
    /// Declared services (`ServiceSpec::group`) that set `name` themselves.
    pub set_by: Vec<String>,
    /// A failure stops `pk up` (`is_strict: true`) instead of warning.
    pub strict: bool,
    /// The file it is written in and where, for a located message when it fails.
    pub source: Source,
    pub span: Span,
}

impl EnvCmdSpec {
    /// How long it may run, as in process-compose.
    pub const TIMEOUT: Duration = Duration::from_secs(2);

    /// What to say when it failed (`why`: `exited with code 1`, `timed out after 2s`…; `stderr`:
    /// what it wrote there): a warning, or an error with `is_strict`. Rendered with its snippet.
    pub fn failure(&self, why: &str, stderr: &str, color: bool) -> String {
        let diag = if self.strict {
            Diag::error(format!(
                "`env_cmds` command for `{}` {why}; nothing is started (`is_strict: true`)",
                self.name
            ))
        } else {
            Diag::warning(format!(
                "`env_cmds` command for `{}` {why}; `{}` is left unset",
                self.name, self.name
            ))
        };
        let stderr = stderr.trim();
        let help = if stderr.is_empty() {
            format!(
                "it runs before any process starts, with a {} limit, as in process-compose",
                crate::vocab::fmt_duration(Self::TIMEOUT)
            )
        } else {
            format!("its stderr: {stderr}")
        };
        diag.label(self.span, "this command")
            .help(help)
            .render_in(std::slice::from_ref(&self.source), color)
    }
}

#[derive(Debug, Clone)]
pub struct ServiceSpec {
    /// Unique in the plan: the declared name, or `group-N` for copy N of a replicated service.
    pub name: String,
    /// The service as declared: `name` without the replica suffix.
    pub group: String,
    /// Which copy this is (0-based) of `replicas` copies.
    pub replica: u32,
    /// How many copies of `group` run (1 unless `replicas`/`--scale` says more).
    pub replicas: u32,
    /// Procfile: `PORT` of copy 0 (copy N gets `PORT + N`); `PORT` is set from it.
    pub port: Option<u32>,
    /// When this service ends for good, the stack stops and pk exits with its code.
    pub exit_on_end: bool,
    pub run: RunSpec,
    /// Absolute working directory (defaults to `Plan::base_dir`).
    pub working_dir: PathBuf,
    /// The complete environment of the service's processes (inherited environment, env files
    /// and `env:` maps already merged; `null` values already removed).
    pub env: BTreeMap<String, String>,
    /// The environment as the file declares it, for back ends (`export`) whose engine brings
    /// its own inherited environment.
    pub env_source: EnvSource,
    pub depends_on: Vec<Dependency>,
    pub restart: RestartSpec,
    pub shutdown: ShutdownSpec,
    /// `timeout:`: how long a run may last before pk stops it (it then ends `timed out`).
    pub timeout: Option<Duration>,
    /// `tty: true`: the command runs on a pseudo-terminal (never a pipeline: checked at load).
    pub tty: bool,
    pub disabled: bool,
    /// Where the service's output is also kept (rotated), if anywhere.
    pub log_file: Option<PathBuf>,
    pub ready: Option<ProbeSpec>,
    pub alive: Option<ProbeSpec>,
    /// `watch:`; only acted on with `pk up --watch`.
    pub watch: Option<WatchSpec>,
    /// Exit codes besides 0 that count as success (everywhere: state, restart, conditions).
    pub success_codes: Vec<i32>,
    /// Namespaces the service is in (`pk up -n NS`); empty: only `default`.
    pub namespaces: Vec<String>,
    /// What about this service ends the whole stack (and sets pk's exit code).
    pub ends_stack: EndsStack,
    /// The declared service, before each copy's `{{ .PC_REPLICA_NUM }}` was written into its
    /// strings (process-compose); `--scale` makes its copies from it again. `None` when no
    /// string depends on the copy.
    pub template: Option<std::sync::Arc<ServiceSpec>>,
}

/// Which tool's rules decide `pk up`'s exit code.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ExitRules {
    /// 0 when every service succeeded or was stopped on request, 1 otherwise.
    #[default]
    Pk,
    /// process-compose's: 0 unless a service's `EndsStack` event set the code.
    ProcessCompose,
}

/// What pk.yaml itself says about a service's environment, before anything is inherited.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvSource {
    /// Absolute `env_file` paths: the top-level ones, then the service's (later files win).
    pub files: Vec<PathBuf>,
    /// `env:` entries (interpolated): the top-level ones, then the service's; `None` unsets.
    /// Last, what pk sets itself and an exporter must write too: a Procfile's `PORT`, and a
    /// replica's `PC_PROC_NAME`/`PC_REPLICA_NUM` (only for services with several copies).
    pub vars: Vec<(String, Option<String>)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunSpec {
    Command(CommandSpec),
    /// Shell-free pipeline: stage N's stdout feeds stage N+1's stdin. At least two stages.
    Pipeline(Vec<Vec<String>>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dependency {
    pub service: ServiceId,
    pub condition: Condition,
    /// `required: false`: a failed dependency only warns.
    pub required: bool,
    /// `restart: true`: restarting the dependency restarts this service after it.
    pub restart: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartSpec {
    pub policy: RestartPolicy,
    /// At most this many restarts within `window`; one more ends in `crashed`. `u32::MAX`:
    /// unlimited.
    pub max: u32,
    pub window: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
}

impl Default for RestartSpec {
    fn default() -> Self {
        RestartSpec {
            policy: RestartPolicy::No,
            max: 5,
            window: Duration::from_secs(60),
            backoff_initial: Duration::from_millis(250),
            backoff_max: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownSpec {
    pub signal: StopSignal,
    pub grace: Duration,
    /// Run (contained, with the service's env and working dir) before the signal is sent.
    pub command: Option<CommandSpec>,
}

/// What to watch for a service and what to do when it changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchSpec {
    /// At least one; absolute and normalized.
    pub paths: Vec<WatchPath>,
    /// Patterns in `.gitignore` syntax, relative to `Plan::base_dir`; checked at load.
    pub ignore: Vec<String>,
    /// Quiet time after the last change before acting.
    pub debounce: Duration,
    pub action: WatchAction,
    /// Restart the services that depend on this one too, after it.
    pub restart_dependents: bool,
}

/// One entry of `watch.paths`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchPath {
    /// A file or directory; for a glob, the directory before its first glob component.
    pub path: PathBuf,
    /// For a glob entry: the whole pattern, absolute (checked at load).
    pub glob: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchAction {
    Restart,
    /// Send this signal to the service's whole tree instead of restarting it.
    Signal(StopSignal),
}

#[derive(Debug, Clone)]
pub struct ProbeSpec {
    pub check: ProbeCheck,
    pub initial_delay: Duration,
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive failures before the probe counts as failed.
    pub retries: u32,
    /// `ready` only: after this long without a pass the service has failed to start.
    pub deadline: Option<Duration>,
}

impl Plan {
    /// `env_cmds[cmd]` printed `output`: it becomes that variable, trimmed, of every service
    /// that does not set it itself. Called before the plan is shared (`pk up`).
    pub fn set_env_cmd_output(&mut self, cmd: usize, output: &str) {
        let spec = &self.env_cmds[cmd];
        let value = output.trim();
        for service in &mut self.services {
            if !spec.set_by.contains(&service.group) {
                service.env.insert(spec.name.clone(), value.to_owned());
            }
        }
    }

    pub fn service_id(&self, name: &str) -> Option<ServiceId> {
        self.services.iter().position(|s| s.name == name)
    }

    /// What a name on the command line means: the service of that exact name (one copy, or an
    /// unreplicated service), else every copy of the declared service `name`. Empty if neither.
    pub fn service_ids(&self, name: &str) -> Vec<ServiceId> {
        if let Some(id) = self.service_id(name) {
            return vec![id];
        }
        self.services
            .iter()
            .enumerate()
            .filter(|(_, s)| s.group == name)
            .map(|(i, _)| i)
            .collect()
    }

    /// `id` followed by everything that depends on it, directly or not.
    pub(crate) fn with_dependents(&self, id: ServiceId) -> Vec<ServiceId> {
        let mut out = vec![id];
        let mut i = 0;
        while i < out.len() {
            for d in self.dependents(out[i]) {
                if !out.contains(&d) {
                    out.push(d);
                }
            }
            i += 1;
        }
        out
    }

    /// `id` followed by everything it depends on, directly or not.
    pub(crate) fn with_dependencies(&self, id: ServiceId) -> Vec<ServiceId> {
        let mut out = vec![id];
        let mut i = 0;
        while i < out.len() {
            for dep in &self.services[out[i]].depends_on {
                if !out.contains(&dep.service) {
                    out.push(dep.service);
                }
            }
            i += 1;
        }
        out
    }

    /// Services that depend directly on `id`.
    pub(crate) fn dependents(&self, id: ServiceId) -> impl Iterator<Item = ServiceId> + '_ {
        self.services
            .iter()
            .enumerate()
            .filter(move |(_, s)| s.depends_on.iter().any(|d| d.service == id))
            .map(|(i, _)| i)
    }
}
