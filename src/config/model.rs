//! `Config`: the typed shape of pk.yaml, with source locations where later checks need them.
//!
//! Produced by `read` (structural checks, scalar parsing, interpolation) and consumed by
//! `plan::build` (cross-references, defaults, environments). The JSON Schema is derived from
//! these types, so the doc comments here are what editors show.

use std::borrow::Cow;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

use super::diag::Span;
use super::values::CONDITIONS;
use crate::vocab::{CommandSpec, Condition, ProbeCheck, RestartPolicy, StopSignal};

/// A value and where it is written in pk.yaml.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Located<T> {
    pub value: T,
    pub span: Span,
}

impl<T: JsonSchema> JsonSchema for Located<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }
    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }
    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        T::json_schema(generator)
    }
}

/// Text: a string, or a plain number or `true`/`false`, which the reader takes as written
/// (`name: 2024` is the text `2024`).
fn text(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": ["string", "number", "boolean"] })
}

/// A path: non-empty text.
fn path_schema() -> serde_json::Value {
    serde_json::json!({ "type": ["string", "number", "boolean"], "minLength": 1 })
}

/// `word` matched in any case, as a JSON-schema (ECMA 262) pattern has no case flag.
fn any_case(word: &str) -> String {
    word.chars()
        .map(|c| {
            if c.is_ascii_alphabetic() {
                format!("[{}{}]", c.to_ascii_uppercase(), c.to_ascii_lowercase())
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// The signal names the reader accepts (`values::signal`: any case, optional `SIG`, spaces
/// around), as a pattern without anchors.
fn signal_pattern() -> String {
    let names: Vec<String> = crate::vocab::stop_signals()
        .map(|s| any_case(s.name))
        .collect();
    format!("\\s*({})?({})\\s*", any_case("SIG"), names.join("|"))
}

/// A TCP port, 1-65535, as a pattern without anchors.
const PORT_PATTERN: &str =
    "([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])";

/// A pk.yaml file.
#[derive(Debug, Clone, Default, JsonSchema)]
#[schemars(
    title = "pk.yaml",
    deny_unknown_fields,
    extend("patternProperties" = { "^x-": { "description": "Free for YAML anchors; ignored." } })
)]
pub struct Config {
    /// Project name; defaults to the name of the directory holding pk.yaml.
    #[serde(default)]
    #[schemars(schema_with = "text")]
    pub name: Option<String>,
    /// Default shutdown grace for every service. Default `10s`.
    pub grace: Option<HumanDuration>,
    /// Environment for every service; a `null` value unsets an inherited variable.
    #[serde(default)]
    pub env: EnvMap,
    /// Env files (relative to pk.yaml) for interpolation and every service; later files win.
    #[serde(default)]
    pub env_file: Paths,
    /// Keep every service's output in `<log_dir>/<service>.log` (relative to pk.yaml), rotated
    /// at 10 MiB with 3 old files kept.
    #[serde(default)]
    #[schemars(schema_with = "text")]
    pub log_dir: Option<String>,
    /// The services, by name.
    pub services: Services,
    /// Commands whose output becomes a variable of every service (process-compose `env_cmds`).
    #[schemars(skip)]
    pub env_cmds: EnvCmds,
    /// One file that keeps the output of every service (process-compose's top-level
    /// `log_location`).
    #[schemars(skip)]
    pub stack_log: Option<StackLog>,
}

/// process-compose `env_cmds`: each command runs once when the stack starts (`pk up`, not
/// `pk check`); its trimmed stdout becomes the variable `name` of every service.
#[derive(Debug, Clone, Default)]
pub struct EnvCmds {
    pub cmds: Vec<EnvCmd>,
    /// A failing command stops `pk up` (`is_strict: true`) instead of warning.
    pub strict: bool,
}

/// One `NAME: command` of `env_cmds`.
#[derive(Debug, Clone)]
pub struct EnvCmd {
    pub name: Located<String>,
    /// Run by the file's shell.
    pub command: Command,
}

/// The stack's own log file: every service's lines, each prefixed with the service's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackLog {
    /// Absolute.
    pub path: std::path::PathBuf,
    /// Rotate when the file would grow past this many bytes (default: as a service's log file).
    pub max_size: Option<u64>,
    /// Old files kept, `pc.log.1` … `pc.log.<keep>` (default: as a service's log file).
    pub keep: Option<usize>,
}

/// The `services:` map, in file order.
#[derive(Debug, Clone, Default)]
pub struct Services(pub Vec<Service>);

impl JsonSchema for Services {
    fn schema_name() -> Cow<'static, str> {
        "Services".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let service = generator.subschema_for::<Service>();
        json_schema!({
            "type": "object",
            "minProperties": 1,
            "propertyNames": { "pattern": "^[A-Za-z0-9_][A-Za-z0-9_.-]*$" },
            "additionalProperties": service,
        })
    }
}

/// One service: a command or a pipeline, and how pk runs it.
#[derive(Debug, Clone, Default, JsonSchema)]
#[schemars(
    deny_unknown_fields,
    extend("patternProperties" = { "^x-": {} }),
    extend("oneOf" = [{ "required": ["command"] }, { "required": ["pipeline"] }])
)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "independent yes/no keys of a service"
)]
pub struct Service {
    #[schemars(skip)]
    pub name: Located<String>,
    /// A string runs under `sh -c`; a list is an argv (no shell). Exactly one of `command` and
    /// `pipeline`.
    pub command: Option<Command>,
    /// Shell-free pipeline of at least two argv lists: each stage's stdout feeds the next stage.
    #[serde(default)]
    #[schemars(schema_with = "pipeline_schema")]
    pub pipeline: Option<Vec<Vec<String>>>,
    /// Working directory, relative to pk.yaml's directory (the default).
    #[serde(default)]
    #[schemars(schema_with = "text")]
    pub working_dir: Option<String>,
    /// Keep this service's output in this file (relative to pk.yaml; overrides `log_dir`),
    /// rotated at 10 MiB with 3 old files kept.
    #[serde(default)]
    #[schemars(schema_with = "text")]
    pub log_file: Option<String>,
    /// Environment of this service; a `null` value unsets a variable.
    #[serde(default)]
    pub env: EnvMap,
    /// Env files (relative to pk.yaml) for this service; later files win.
    #[serde(default)]
    pub env_file: Paths,
    /// Services to start first: a list (condition `started`) or a map of conditions.
    #[serde(default)]
    pub depends_on: DependsOn,
    /// Readiness probe: gates dependents waiting for `healthy`.
    pub ready: Option<Probe>,
    /// Liveness probe: a service that stops answering is restarted.
    #[serde(default)]
    #[schemars(schema_with = "alive_schema")]
    pub alive: Option<Probe>,
    /// `no` (default), `on-failure`, `always`, or the long form.
    pub restart: Option<Restart>,
    /// How the service is stopped.
    pub shutdown: Option<Shutdown>,
    /// A disabled service starts only when named on the command line.
    #[serde(default)]
    pub disabled: bool,
    /// Restart the service when files change (with `pk up --watch`).
    pub watch: Option<Watch>,
    /// Run this many copies, each its own contained tree, named `NAME-N` (N from 0, zero-padded
    /// to the width of the count; one replica keeps the plain name) with `PC_PROC_NAME` and
    /// `PC_REPLICA_NUM` in its environment. A dependency on the service waits for every copy.
    /// Default 1.
    #[schemars(range(min = 1, max = 1000))]
    pub replicas: Option<Located<u32>>,
    /// When this service ends for good (it exits and its `restart` policy does not start it
    /// again), stop the stack and exit pk with the service's exit code.
    #[serde(default)]
    pub exit_on_end: bool,
    /// Procfile only: `PORT` of the first copy (copy N gets `PORT + N`); not a pk.yaml key.
    #[schemars(skip)]
    pub port: Option<u32>,
    /// Stop the service (its `shutdown` sequence) once it has run this long; it then ends
    /// `timed out`, a failure (restart policies restart it like any failure).
    pub timeout: Option<HumanDuration>,
    /// Run on a pseudo-terminal (its own session; stdout and stderr merged): the program sees a
    /// terminal (colours, line-buffered output). A `command` only, not a `pipeline`.
    #[serde(default)]
    pub tty: bool,
    /// Where the `command`/`pipeline` key is (for "both or neither" errors).
    #[schemars(skip)]
    #[allow(dead_code, reason = "set by every reader; no error points at it yet")]
    pub span: Span,
    /// What the service is for (process-compose `description`).
    #[schemars(skip)]
    pub description: Option<String>,
    /// The namespaces the service belongs to (process-compose `namespace`); `pk up -n NS`.
    #[schemars(skip)]
    pub namespaces: Vec<String>,
    /// The top-level env files stay out of this service's environment (process-compose
    /// `is_dotenv_disabled`).
    #[schemars(skip)]
    pub dotenv_disabled: bool,
    /// Exit codes besides 0 that count as success (process-compose `success_exit_codes`).
    #[schemars(skip)]
    pub success_exit_codes: Vec<i32>,
    /// What about this service ends the whole stack.
    #[schemars(skip)]
    pub ends_stack: EndsStack,
}

/// Events of one service that stop the whole stack and set pk's exit code.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndsStack {
    /// It fails for good: pk exits with its code (process-compose `restart: exit_on_failure`).
    pub on_failure: bool,
    /// It is skipped: pk exits 1 (process-compose `exit_on_skipped`).
    pub on_skipped: bool,
}

/// A string (run by `sh -c`) or a non-empty argv list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command(pub CommandSpec);

/// An argv: a non-empty list of words (text).
fn argv_schema() -> serde_json::Value {
    serde_json::json!({ "type": "array", "items": { "type": ["string", "number", "boolean"] }, "minItems": 1 })
}

/// `pipeline`: at least two argv lists.
fn pipeline_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "array", "items": argv_schema(), "minItems": 2 })
}

impl JsonSchema for Command {
    fn schema_name() -> Cow<'static, str> {
        "Command".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A string runs under `sh -c`; a list is an argv, no shell.",
            "oneOf": [
                { "type": ["string", "number", "boolean"], "pattern": "\\S" },
                argv_schema(),
            ],
        })
    }
}

/// A human duration: `250ms`, `10s`, `1m30s`, `2h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl JsonSchema for HumanDuration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A duration with a unit: `250ms`, `10s`, `1m30s`, `2h`.",
            "type": "string",
            "pattern": "^\\s*[0-9]+(\\.[0-9]+)?\\s*[A-Za-z]",
            "examples": ["250ms", "10s", "1m30s"],
        })
    }
}

/// Variables by name, in file order; `None` unsets the variable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvMap(pub Vec<(String, Option<String>)>);

impl JsonSchema for EnvMap {
    fn schema_name() -> Cow<'static, str> {
        "Env".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Variables; a null value unsets an inherited variable.",
            "type": "object",
            "propertyNames": { "pattern": "^[^=]+$" },
            "additionalProperties": { "type": ["string", "number", "boolean", "null"] },
        })
    }
}

/// One path or a list of paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Paths(pub Vec<Located<String>>);

impl JsonSchema for Paths {
    fn schema_name() -> Cow<'static, str> {
        "Paths".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "oneOf": [
                path_schema(),
                { "type": "array", "items": path_schema() },
            ],
        })
    }
}

/// One `depends_on` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    /// The named service, located at the entry.
    pub service: Located<String>,
    /// The condition, located where it is written (or at the name).
    pub condition: Located<Condition>,
    pub required: bool,
    pub restart: bool,
}

/// `depends_on`, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DependsOn(pub Vec<Dependency>);

fn condition_spellings() -> Vec<String> {
    CONDITIONS
        .iter()
        .flat_map(|c| {
            [
                (*c).to_owned(),
                format!("service_{c}"),
                format!("process_{c}"),
            ]
        })
        .collect()
}

impl JsonSchema for DependsOn {
    fn schema_name() -> Cow<'static, str> {
        "DependsOn".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let conditions = condition_spellings();
        json_schema!({
            "description": "A list of service names (condition `started`), or a map of name to a condition or to `{condition, required, restart}`.",
            "oneOf": [
                { "type": "array", "items": { "type": ["string", "number", "boolean"] }, "uniqueItems": true },
                {
                    "type": "object",
                    "additionalProperties": {
                        "oneOf": [
                            { "type": "string", "enum": conditions },
                            { "description": "`started`", "type": "null" },
                            {
                                "type": "object",
                                "additionalProperties": false,
                                "properties": {
                                    "condition": {
                                        "description": "Default `started`.",
                                        "type": "string",
                                        "enum": conditions,
                                    },
                                    "required": {
                                        "description": "Default true; false: a failed dependency only warns.",
                                        "type": "boolean",
                                    },
                                    "restart": {
                                        "description": "Default false; true: restarting the dependency restarts this service.",
                                        "type": "boolean",
                                    },
                                },
                            },
                        ],
                    },
                },
            ],
        })
    }
}

/// The schema of `alive`: a `Probe` without `deadline` (which only `ready` has).
fn alive_schema(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = Probe::json_schema(generator);
    if let Some(props) = schema
        .get_mut("properties")
        .and_then(serde_json::Value::as_object_mut)
    {
        props.remove("deadline");
    }
    schema
}

/// A readiness or liveness probe: exactly one of `exec`, `http`, `tcp`, `log`.
#[derive(Debug, Clone, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Probe {
    /// What is checked: `exec`, `http`, `tcp` or `log`.
    #[serde(flatten)]
    pub check: Check,
    /// Wait before the first check. Default `0s`.
    pub initial_delay: Option<HumanDuration>,
    /// Time between checks. Default `1s`.
    pub interval: Option<HumanDuration>,
    /// Time one check may take. Default `1s`.
    pub timeout: Option<HumanDuration>,
    /// Consecutive failures before the probe counts as failed. Default 3.
    #[schemars(range(min = 1, max = 4_294_967_295_u32))]
    pub retries: Option<u32>,
    /// `ready` only: the service has failed to start if no check passed by then. Default `60s`.
    pub deadline: Option<HumanDuration>,
}

/// The check of a probe (`status` and `headers` are folded into `http`).
#[derive(Debug, Clone)]
pub struct Check(pub ProbeCheck);

impl JsonSchema for Check {
    fn schema_name() -> Cow<'static, str> {
        "Check".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let command = generator.subschema_for::<Command>();
        json_schema!({
            "type": "object",
            "properties": {
                "exec": {
                    "description": "Passes when this command exits 0 (with the service's env and working dir).",
                    "allOf": [command],
                },
                "http": {
                    "description": "Passes on a 2xx/3xx answer (or one listed in `status`) from `http://host:port/path`.",
                    "type": "string",
                    "pattern": format!("^http://(\\[[^\\]/?@]+\\]|[^:/?@\\[\\]]+)(:{PORT_PATTERN})?([/?].*)?$"),
                },
                "tcp": {
                    "description": "Passes when `host:port` accepts a TCP connection.",
                    "type": "string",
                    "pattern": format!("^[^@]+:{PORT_PATTERN}$"),
                },
                "log": {
                    "description": "Passes when a line of the service's output matches this regex (Rust regex syntax).",
                    "type": ["string", "number", "boolean"],
                },
                "status": {
                    "description": "`http` only: accepted status codes (default: any 2xx or 3xx).",
                    "type": "array",
                    "items": { "type": "integer", "minimum": 100, "maximum": 599 },
                },
                "headers": {
                    "description": "`http` only: request headers sent with each check (`{Authorization: \"Bearer x\"}`).",
                    "type": "object",
                    "propertyNames": { "pattern": "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$" },
                    "additionalProperties": {
                        "type": ["string", "number", "boolean"],
                        "pattern": "^[^\u{0}-\u{8}\u{a}-\u{1f}\u{7f}-\u{9f}]*$",
                    },
                },
            },
            "oneOf": [
                { "required": ["exec"] },
                { "required": ["http"] },
                { "required": ["tcp"] },
                { "required": ["log"] },
            ],
            "dependencies": {
                "status": { "required": ["http"] },
                "headers": { "required": ["http"] },
            },
        })
    }
}

/// `restart`: a policy, or the long form with limits and backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restart {
    pub policy: RestartPolicy,
    pub max: Option<u32>,
    pub window: Option<Duration>,
    pub backoff_initial: Option<Duration>,
    pub backoff_max: Option<Duration>,
}

impl JsonSchema for Restart {
    fn schema_name() -> Cow<'static, str> {
        "Restart".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let duration = generator.subschema_for::<HumanDuration>();
        let policy = json_schema!({ "enum": ["no", "on-failure", "always", false] });
        json_schema!({
            "oneOf": [
                policy,
                {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["policy"],
                    "properties": {
                        "policy": policy,
                        "max": { "description": "Restarts allowed within `window`; one more ends in `crashed`. Default 5.", "type": "integer", "minimum": 0, "maximum": u32::MAX },
                        "window": duration,
                        "backoff": {
                            "type": "object",
                            "additionalProperties": false,
                            "properties": {
                                "initial": duration,
                                "max": duration,
                            },
                        },
                    },
                },
            ],
        })
    }
}

/// How a service is stopped.
#[derive(Debug, Clone, Default, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Shutdown {
    /// Signal sent to the whole process tree. Default `TERM`.
    pub signal: Option<Signal>,
    /// Time to exit after the signal before SIGKILL. Default: the top-level `grace`.
    pub grace: Option<HumanDuration>,
    /// Run (contained) before the signal is sent.
    pub command: Option<Command>,
}

/// A signal name: `TERM`, `SIGTERM` or `term`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signal(pub StopSignal);

impl JsonSchema for Signal {
    fn schema_name() -> Cow<'static, str> {
        "Signal".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let names: Vec<String> = crate::vocab::stop_signals()
            .flat_map(|s| [s.name.to_owned(), format!("SIG{}", s.name)])
            .collect();
        // The names for editors to offer; the pattern for every spelling the reader takes.
        json_schema!({
            "type": "string",
            "anyOf": [{ "enum": names }, { "pattern": format!("^{}$", signal_pattern()) }],
        })
    }
}

/// Restart (or signal) a service when files change.
#[derive(Debug, Clone, Default, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Watch {
    /// Files or directories to watch, relative to pk.yaml: one or a non-empty list.
    #[schemars(schema_with = "watch_paths_schema")]
    pub paths: Vec<String>,
    /// Glob patterns of paths to ignore.
    #[serde(default)]
    #[schemars(schema_with = "text_list")]
    pub ignore: Vec<String>,
    /// Quiet time before acting on a burst of changes. Default `200ms`.
    pub debounce: Option<HumanDuration>,
    /// `restart` (default) or `signal:NAME`, e.g. `signal:HUP`.
    pub action: Option<WatchAction>,
    /// Also restart the services that depend on this one. Default false.
    #[serde(default)]
    pub restart_dependents: bool,
}

/// `watch.paths`: a path or a non-empty list of paths.
fn watch_paths_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "oneOf": [path_schema(), { "type": "array", "items": path_schema(), "minItems": 1 }],
    })
}

/// A list of text.
fn text_list(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "array", "items": { "type": ["string", "number", "boolean"] } })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchAction {
    Restart,
    Signal(StopSignal),
}

impl JsonSchema for WatchAction {
    fn schema_name() -> Cow<'static, str> {
        "WatchAction".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": format!("^(restart|signal:{})$", signal_pattern()),
        })
    }
}
