//! Walks the located node tree into a typed `Config`, collecting every problem it finds.
//!
//! Checks here are local to one value: unknown keys, types, scalar syntax (durations, signals,
//! URLs, regexes), "exactly one of". Every string value is interpolated on the way in; keys never
//! are. Cross-references (`depends_on` targets, cycles) are `plan::build`'s job.

use std::collections::BTreeMap;
use std::time::Duration;

use super::diag::{Diag, Span, did_you_mean};
use super::fields::{Fields, join, place, type_error};
use super::interpolate::{InterpolateError, interpolate};
use super::model::{
    Check, Command, Config, Dependency, DependsOn, EnvMap, HumanDuration, Located, Paths, Probe,
    Restart, Service, Services, Shutdown, Signal, Watch, WatchAction,
};
use super::node::{Node, Value};
use super::values;
use crate::vocab::{CommandSpec, Condition, ProbeCheck, RestartPolicy};

/// `text` cut to at most `max` characters (with `…`), for messages quoting user input.
fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

pub(crate) const TOP_KEYS: &[&str] = &["name", "grace", "env", "env_file", "log_dir", "services"];
pub(crate) const SERVICE_KEYS: &[&str] = &[
    "command",
    "pipeline",
    "working_dir",
    "env",
    "env_file",
    "depends_on",
    "ready",
    "alive",
    "restart",
    "shutdown",
    "disabled",
    "watch",
    "log_file",
    "replicas",
    "exit_on_end",
    "timeout",
    "tty",
];
pub(crate) const READY_KEYS: &[&str] = &[
    "exec",
    "http",
    "tcp",
    "log",
    "initial_delay",
    "interval",
    "timeout",
    "retries",
    "deadline",
    "status",
    "headers",
];
pub(crate) const ALIVE_KEYS: &[&str] = &[
    "exec",
    "http",
    "tcp",
    "log",
    "initial_delay",
    "interval",
    "timeout",
    "retries",
    "status",
    "headers",
];
const PROBE_KINDS: &[&str] = &["exec", "http", "tcp", "log"];
pub(crate) const DEPENDENCY_KEYS: &[&str] = &["condition", "required", "restart"];
pub(crate) const RESTART_KEYS: &[&str] = &["policy", "max", "window", "backoff"];
pub(crate) const BACKOFF_KEYS: &[&str] = &["initial", "max"];
pub(crate) const SHUTDOWN_KEYS: &[&str] = &["signal", "grace", "command"];
pub(crate) const WATCH_KEYS: &[&str] = &[
    "paths",
    "ignore",
    "debounce",
    "action",
    "restart_dependents",
];

/// Every map the reader walks and the keys it accepts there, by schema path (`alive` is the
/// `alive` property of a service): the schema must describe exactly these
/// (`tests/config_schema.rs`).
pub const ACCEPTED_KEYS: &[(&str, &[&str])] = &[
    ("", TOP_KEYS),
    ("services.*", SERVICE_KEYS),
    ("services.*.ready", READY_KEYS),
    ("services.*.alive", ALIVE_KEYS),
    ("services.*.depends_on.*", DEPENDENCY_KEYS),
    ("services.*.restart", RESTART_KEYS),
    ("services.*.restart.backoff", BACKOFF_KEYS),
    ("services.*.shutdown", SHUTDOWN_KEYS),
    ("services.*.watch", WATCH_KEYS),
];

/// The walker's state: interpolation variables and the diagnostics found so far.
pub(crate) struct Reader<'a> {
    vars: &'a BTreeMap<String, String>,
    pub diags: Vec<Diag>,
    /// Services whose `ready` block was given but is invalid (already reported): later checks
    /// must not also call them probe-less.
    pub invalid_ready: Vec<String>,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(vars: &'a BTreeMap<String, String>) -> Reader<'a> {
        Reader {
            vars,
            diags: Vec::new(),
            invalid_ready: Vec::new(),
        }
    }

    fn type_error(&mut self, node: &Node, path: &str, expected: &str) {
        self.diags.push(type_error(node, path, expected));
    }

    fn problem(&mut self, node: &Node, path: &str, (message, hint): values::Problem) {
        self.diags.push(
            Diag::error(format!("`{path}`: {message}"))
                .label(node.span, "here")
                .help_opt(hint),
        );
    }

    /// Checks that `node` is a map with only `known` keys (plus `x-*` if `extensions`); reports
    /// each unknown key.
    fn fields<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        known: &[&str],
        extensions: bool,
    ) -> Option<Fields<'n>> {
        let mut fields = Fields::of(node, path, known, extensions, &mut self.diags)?;
        for &(name, key) in &fields.unknown {
            fields
                .suggested
                .extend(self.unknown_key(key, name, path, known));
        }
        Some(fields)
    }

    /// Reports an unknown key; returns the known key suggested instead, if any.
    fn unknown_key(
        &mut self,
        key: &Node,
        name: &str,
        path: &str,
        known: &[&str],
    ) -> Option<String> {
        let place = place(path);
        let suggestion = did_you_mean(name, known.iter().copied());
        let help = if name == "deadline" && known == ALIVE_KEYS {
            "`deadline` applies only to a `ready` probe".to_owned()
        } else if let Some(s) = suggestion {
            format!("did you mean `{s}`?")
        } else {
            format!("valid keys here: {}", known.join(", "))
        };
        self.diags.push(
            Diag::error(format!("unknown key `{name}` {place}"))
                .label(key.span, "unknown key")
                .help(help),
        );
        suggestion.map(str::to_owned)
    }

    /// A scalar as text; strings are interpolated, numbers and booleans kept as written.
    fn text(&mut self, node: &Node, path: &str, expected: &str) -> Option<String> {
        match &node.value {
            Value::Str(s) => self.interpolate(s, node.span),
            Value::Bool(_) | Value::Int(_) | Value::Float(_) => Some(node.raw.clone()),
            Value::Null | Value::Seq(_) | Value::Map(_) => {
                self.type_error(node, path, expected);
                None
            }
        }
    }

    fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        self.text(node, path, "a string")
    }

    fn located_string(&mut self, node: &Node, path: &str) -> Option<Located<String>> {
        self.string(node, path).map(|value| Located {
            value,
            span: node.span,
        })
    }

    fn interpolate(&mut self, text: &str, span: Span) -> Option<String> {
        match interpolate(text, self.vars) {
            Ok(expanded) => {
                for name in expanded.unset {
                    self.diags.push(
                        Diag::warning(format!("variable `{name}` is not set; using an empty string"))
                            .label(span, format!("`{name}` is used here"))
                            .help(format!(
                                "set it in the environment or an env_file, give a default (`${{{name}:-value}}`), or write `$${name}` to leave it to the service's shell"
                            )),
                    );
                }
                Some(expanded.text)
            }
            Err(InterpolateError::Required { name, message }) => {
                let message = if message.is_empty() {
                    format!("variable `{name}` is required")
                } else {
                    message
                };
                self.diags.push(
                    Diag::error(format!("required variable `{name}` is not set: {message}"))
                        .label(span, format!("`{name}` is required here"))
                        .help(format!(
                            "set `{name}` in the environment or a top-level env_file"
                        )),
                );
                None
            }
            Err(InterpolateError::TooDeep) => {
                self.diags.push(
                    Diag::error(format!(
                        "interpolation defaults nested more than {} deep",
                        super::interpolate::MAX_DEPTH
                    ))
                    .label(span, "in this value")
                    .help("flatten the `${VAR:-${OTHER:-…}}` chain"),
                );
                None
            }
            Err(InterpolateError::Invalid { text }) => {
                let text = shorten(&text, 60);
                self.diags.push(
                    Diag::error(format!("invalid interpolation `{text}`"))
                        .label(span, "in this value")
                        .help("use `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?message}` or `${VAR?message}`; write `$$` for a literal `$`"),
                );
                None
            }
        }
    }

    fn bool(&mut self, node: &Node, path: &str) -> Option<bool> {
        if let Value::Bool(b) = node.value {
            Some(b)
        } else {
            self.type_error(node, path, "true or false");
            None
        }
    }

    fn u32(&mut self, node: &Node, path: &str) -> Option<u32> {
        let Value::Int(n) = node.value else {
            self.type_error(node, path, "a whole number");
            return None;
        };
        u32::try_from(n).ok().or_else(|| {
            self.diags.push(
                Diag::error(format!("`{path}` must be between 0 and {}", u32::MAX))
                    .label(node.span, "out of range"),
            );
            None
        })
    }

    fn duration(&mut self, node: &Node, path: &str) -> Option<HumanDuration> {
        let text = match &node.value {
            Value::Int(_) | Value::Float(_) => node.raw.clone(),
            _ => self.text(node, path, "a duration like `10s`")?,
        };
        match values::duration(&text) {
            Ok(d) => Some(HumanDuration(d)),
            Err(problem) => {
                self.problem(node, path, problem);
                None
            }
        }
    }

    fn command(&mut self, node: &Node, path: &str) -> Option<Command> {
        if let Value::Seq(_) = node.value {
            let argv = self.argv(node, path)?;
            return Some(Command(CommandSpec::Argv(argv)));
        }
        let text = self.text(node, path, "a string or a list of strings")?;
        if text.trim().is_empty() {
            self.diags
                .push(Diag::error(format!("`{path}` is empty")).label(node.span, "empty command"));
            return None;
        }
        Some(Command(CommandSpec::Shell(text)))
    }

    /// A non-empty list of words.
    fn argv(&mut self, node: &Node, path: &str) -> Option<Vec<String>> {
        let Value::Seq(items) = &node.value else {
            self.type_error(node, path, "a list of strings");
            return None;
        };
        if items.is_empty() {
            self.diags.push(
                Diag::error(format!("`{path}` is an empty list"))
                    .label(node.span, "needs at least the program"),
            );
            return None;
        }
        let words: Vec<Option<String>> = items
            .iter()
            .map(|item| self.text(item, path, "a string"))
            .collect();
        words.into_iter().collect()
    }

    fn string_list(&mut self, node: &Node, path: &str) -> Option<Vec<String>> {
        let Value::Seq(items) = &node.value else {
            self.type_error(node, path, "a list of strings");
            return None;
        };
        items
            .iter()
            .map(|item| self.string(item, path))
            .collect::<Vec<_>>()
            .into_iter()
            .collect()
    }

    /// One path or a list of paths; an empty path is an error.
    fn paths(&mut self, node: &Node, path: &str) -> Paths {
        let items = match &node.value {
            Value::Seq(items) => items.iter().collect(),
            _ => vec![node],
        };
        Paths(
            items
                .into_iter()
                .filter_map(|item| {
                    let p = self.located_string(item, path)?;
                    if p.value.is_empty() {
                        self.diags.push(
                            Diag::error(format!("`{path}` names an empty path"))
                                .label(item.span, "empty")
                                .help("give a file or directory, relative to pk.yaml"),
                        );
                        return None;
                    }
                    Some(p)
                })
                .collect(),
        )
    }

    fn env(&mut self, node: &Node, path: &str) -> EnvMap {
        let Value::Map(entries) = &node.value else {
            self.type_error(node, path, "a map of variables");
            if let (Value::Seq(_), Some(diag)) = (&node.value, self.diags.last_mut()) {
                diag.help =
                    Some("write it as a map, e.g. `env: { PORT: \"8080\", DEBUG: null }`".into());
            }
            return EnvMap::default();
        };
        let mut vars = Vec::new();
        for (key, value) in entries {
            let Some(name) = key
                .scalar_text()
                .filter(|n| !n.is_empty() && !n.contains('='))
            else {
                self.diags.push(
                    Diag::error(format!("invalid variable name in `{path}`"))
                        .label(key.span, "not a variable name"),
                );
                continue;
            };
            let name = name.to_owned();
            match value.value {
                Value::Null => vars.push((name, None)),
                _ => {
                    if let Some(v) = self.text(
                        value,
                        &join(path, &name),
                        "a string, a number, a boolean or null",
                    ) {
                        vars.push((name, Some(v)));
                    }
                }
            }
        }
        EnvMap(vars)
    }

    /// The whole file.
    pub(crate) fn config(&mut self, root: &Node) -> Option<Config> {
        if !matches!(root.value, Value::Map(_)) {
            self.diags.push(
                Diag::error(format!(
                    "pk.yaml must be a map with a `services` key, not {}",
                    root.kind()
                ))
                .label(root.span, "the document starts here")
                .help("services:\n  web:\n    command: python3 -m http.server"),
            );
            return None;
        }
        let fields = self.fields(root, "", TOP_KEYS, true)?;
        let mut config = Config::default();
        for (key, _, value) in fields.iter() {
            match key {
                "name" => config.name = self.string(value, key),
                "grace" => config.grace = self.duration(value, key),
                "log_dir" => config.log_dir = self.string(value, key),
                "env" => config.env = self.env(value, key),
                // Read earlier by `top_env_files`, with the inherited environment only.
                "env_file" => {}
                "services" => config.services = self.services(value),
                _ => unreachable!("key checked against TOP_KEYS"),
            }
        }
        if fields.get("services").is_none() && !fields.suggested.iter().any(|s| s == "services") {
            self.diags.push(
                Diag::error("pk.yaml has no `services`")
                    .label(Span::new(root.span.offset, 0), "expected a `services:` map in this document")
                    .help("add at least one service:\nservices:\n  web:\n    command: python3 -m http.server"),
            );
        }
        Some(config)
    }

    fn services(&mut self, node: &Node) -> Services {
        let Value::Map(entries) = &node.value else {
            self.type_error(node, "services", "a map of service names to services");
            return Services::default();
        };
        if entries.is_empty() {
            self.diags.push(
                Diag::error("`services` is empty")
                    .label(node.span, "no services")
                    .help("declare at least one service"),
            );
        }
        let mut services = Vec::new();
        for (key, value) in entries {
            let name = key.scalar_text().unwrap_or_default().to_owned();
            if !values::is_valid_service_name(&name) {
                self.diags.push(
                    Diag::error(format!("`{name}` is not a valid service name"))
                        .label(key.span, "invalid name")
                        .help("a service name starts with a letter, a digit or `_` and has only letters, digits, `_`, `.` and `-`"),
                );
            }
            let name = Located {
                value: name,
                span: key.span,
            };
            if let Some(service) = self.service(name, value) {
                services.push(service);
            }
        }
        Services(services)
    }

    fn service(&mut self, name: Located<String>, node: &Node) -> Option<Service> {
        let path = format!("services.{}", name.value);
        if matches!(node.value, Value::Null) {
            self.diags.push(
                Diag::error(format!("service `{}` is empty", name.value))
                    .label(name.span, "no command")
                    .help("give it a `command` (or a `pipeline`)"),
            );
            return None;
        }
        let fields = self.fields(node, &path, SERVICE_KEYS, true)?;
        let mut service = Service {
            span: name.span,
            name,
            ..Service::default()
        };
        for (key, _, value) in fields.iter() {
            let p = join(&path, key);
            match key {
                "command" => service.command = self.command(value, &p),
                "pipeline" => service.pipeline = self.pipeline(value, &p),
                "working_dir" => service.working_dir = self.string(value, &p),
                "env" => service.env = self.env(value, &p),
                "env_file" => service.env_file = self.paths(value, &p),
                "depends_on" => service.depends_on = self.depends_on(value, &p),
                "ready" => {
                    service.ready = self.probe(value, &p, READY_KEYS);
                    if service.ready.is_none() {
                        self.invalid_ready.push(service.name.value.clone());
                    }
                }
                "alive" => service.alive = self.probe(value, &p, ALIVE_KEYS),
                "restart" => service.restart = self.restart(value, &p),
                "shutdown" => service.shutdown = self.shutdown(value, &p),
                "disabled" => service.disabled = self.bool(value, &p).unwrap_or(false),
                "watch" => service.watch = self.watch(value, &p),
                "log_file" => service.log_file = self.string(value, &p),
                "replicas" => service.replicas = self.replicas(value, &p),
                "exit_on_end" => service.exit_on_end = self.bool(value, &p).unwrap_or(false),
                "tty" => service.tty = self.bool(value, &p).unwrap_or(false),
                "timeout" => {
                    service.timeout = self.duration(value, &p);
                    if service.timeout.is_some_and(|t| t.0.is_zero()) {
                        self.diags.push(
                            Diag::error(format!("`{p}` must be more than 0"))
                                .label(value.span, "zero")
                                .help("leave `timeout` out for no limit"),
                        );
                    }
                }
                _ => unreachable!("key checked against SERVICE_KEYS"),
            }
        }
        match (fields.key_span("command"), fields.key_span("pipeline")) {
            (Some(c), Some(p)) => self.diags.push(
                Diag::error(format!("service `{}` has both `command` and `pipeline`", service.name.value))
                    .label(c, "a command")
                    .label(p, "and a pipeline")
                    .help("keep one: `command` runs one program, `pipeline` chains several"),
            ),
            (None, None) if !fields.suggested.iter().any(|s| s == "command" || s == "pipeline") => self.diags.push(
                Diag::error(format!("service `{}` has no `command`", service.name.value))
                    .label(service.name.span, "nothing to run")
                    .help("add `command: …` (a string for `sh -c`, or a list for an argv) or a `pipeline`"),
            ),
            _ => {}
        }
        if let (true, Some(t), Some(p)) = (
            service.tty,
            fields.key_span("tty"),
            fields.key_span("pipeline"),
        ) {
            self.diags.push(
                Diag::error(format!("service `{}` has `tty: true` and a `pipeline`", service.name.value))
                    .label(t, "a terminal")
                    .label(p, "for several programs")
                    .help("a terminal runs one program: use `command` (e.g. `command: a | b` runs both under `sh -c`)"),
            );
        }
        Some(service)
    }

    /// `replicas`: a whole number from 1 to `values::MAX_REPLICAS`.
    fn replicas(&mut self, node: &Node, path: &str) -> Option<Located<u32>> {
        let n = self.u32(node, path)?;
        if n == 0 || n > values::MAX_REPLICAS {
            self.diags.push(
                Diag::error(format!(
                    "`{path}` must be between 1 and {}",
                    values::MAX_REPLICAS
                ))
                .label(node.span, "out of range")
                .help("to keep a service from starting, use `disabled: true`"),
            );
            return None;
        }
        Some(Located {
            value: n,
            span: node.span,
        })
    }

    fn pipeline(&mut self, node: &Node, path: &str) -> Option<Vec<Vec<String>>> {
        let Value::Seq(stages) = &node.value else {
            self.type_error(node, path, "a list of argv lists");
            return None;
        };
        if stages.len() < 2 {
            self.diags.push(
                Diag::error(format!("`{path}` needs at least two stages"))
                    .label(node.span, format!("{} stage(s)", stages.len()))
                    .help("a single program is a `command`"),
            );
            return None;
        }
        let mut out = Vec::new();
        for stage in stages {
            if let Value::Seq(_) = stage.value {
                out.push(self.argv(stage, path));
            } else {
                self.diags.push(
                    Diag::error(format!(
                        "a stage of `{path}` must be an argv list, not {}",
                        stage.kind()
                    ))
                    .label(stage.span, "expected a list like [grep, ERROR]")
                    .help("pipeline stages run without a shell; write each one as a list of words"),
                );
                out.push(None);
            }
        }
        out.into_iter().collect()
    }

    fn depends_on(&mut self, node: &Node, path: &str) -> DependsOn {
        let mut deps: Vec<Dependency> = Vec::new();
        match &node.value {
            Value::Seq(items) => {
                for item in items {
                    let Some(service) = self.located_string(item, path) else {
                        continue;
                    };
                    if deps.iter().any(|d| d.service.value == service.value) {
                        self.diags.push(
                            Diag::error(format!("`{}` is listed twice in `{path}`", service.value))
                                .label(item.span, "again"),
                        );
                        continue;
                    }
                    let condition = Located {
                        value: Condition::Started,
                        span: item.span,
                    };
                    deps.push(Dependency {
                        service,
                        condition,
                        required: true,
                        restart: false,
                    });
                }
            }
            Value::Map(entries) => {
                for (key, value) in entries {
                    let service = Located {
                        value: key.scalar_text().unwrap_or_default().to_owned(),
                        span: key.span,
                    };
                    if let Some(dep) = self.dependency(
                        service,
                        value,
                        &join(path, key.scalar_text().unwrap_or_default()),
                    ) {
                        deps.push(dep);
                    }
                }
            }
            _ => self.type_error(node, path, "a list of service names or a map of conditions"),
        }
        DependsOn(deps)
    }

    fn dependency(
        &mut self,
        service: Located<String>,
        node: &Node,
        path: &str,
    ) -> Option<Dependency> {
        let mut dep = Dependency {
            condition: Located {
                value: Condition::Started,
                span: service.span,
            },
            service,
            required: true,
            restart: false,
        };
        match &node.value {
            Value::Map(_) => {
                let fields = self.fields(node, path, DEPENDENCY_KEYS, false)?;
                for (key, _, value) in fields.iter() {
                    let p = join(path, key);
                    match key {
                        "condition" => dep.condition = self.condition(value, &p)?,
                        "required" => dep.required = self.bool(value, &p)?,
                        "restart" => dep.restart = self.bool(value, &p)?,
                        _ => unreachable!("key checked against DEPENDENCY_KEYS"),
                    }
                }
            }
            Value::Null => {}
            _ => dep.condition = self.condition(node, path)?,
        }
        Some(dep)
    }

    fn condition(&mut self, node: &Node, path: &str) -> Option<Located<Condition>> {
        let text = self.text(node, path, "a condition")?;
        match values::condition(&text) {
            Ok(value) => Some(Located {
                value,
                span: node.span,
            }),
            Err(problem) => {
                self.problem(node, path, problem);
                None
            }
        }
    }

    fn probe(&mut self, node: &Node, path: &str, keys: &[&str]) -> Option<Probe> {
        let fields = self.fields(node, path, keys, false)?;
        let kinds: Vec<&str> = PROBE_KINDS
            .iter()
            .copied()
            .filter(|k| fields.get(k).is_some())
            .collect();
        match kinds.as_slice() {
            [] => {
                self.diags.push(
                    Diag::error(format!("probe `{path}` has nothing to check"))
                        .label(node.span, "no check")
                        .help("add one of `exec`, `http`, `tcp`, `log`"),
                );
                return None;
            }
            [_] => {}
            [first, second, ..] => {
                let mut diag = Diag::error(format!("probe `{path}` has more than one check"));
                for kind in &kinds {
                    diag = diag.label(
                        fields.key_span(kind).unwrap_or_default(),
                        format!("`{kind}`"),
                    );
                }
                self.diags.push(diag.help(format!(
                    "a probe checks one thing: keep `{first}` or `{second}`"
                )));
                return None;
            }
        }
        let mut status = None;
        if let Some(node) = fields.get("status") {
            status = self.status(node, &join(path, "status"));
            if kinds != ["http"] {
                self.diags.push(
                    Diag::error(format!("`{path}.status` applies only to an `http` probe")).label(
                        fields.key_span("status").unwrap_or_default(),
                        "not an http probe",
                    ),
                );
            }
        }
        let mut headers = Vec::new();
        if let Some(node) = fields.get("headers") {
            headers = self.headers(node, &join(path, "headers"));
            if kinds != ["http"] {
                self.diags.push(
                    Diag::error(format!("`{path}.headers` applies only to an `http` probe")).label(
                        fields.key_span("headers").unwrap_or_default(),
                        "not an http probe",
                    ),
                );
            }
        }
        let check = self.check(
            kinds[0],
            fields.get(kinds[0])?,
            &join(path, kinds[0]),
            status.unwrap_or_default(),
            headers,
        );
        let mut probe = Probe {
            check: Check(ProbeCheck::Tcp {
                address: String::new(),
            }),
            initial_delay: None,
            interval: None,
            timeout: None,
            retries: None,
            deadline: None,
        };
        for (key, _, value) in fields.iter() {
            let p = join(path, key);
            match key {
                "initial_delay" => probe.initial_delay = self.duration(value, &p),
                "interval" => probe.interval = self.duration(value, &p),
                "timeout" => probe.timeout = self.duration(value, &p),
                "deadline" => probe.deadline = self.duration(value, &p),
                "retries" => {
                    probe.retries = self.u32(value, &p);
                    if probe.retries == Some(0) {
                        self.diags.push(
                            Diag::error(format!("`{p}` must be at least 1"))
                                .label(value.span, "zero"),
                        );
                    }
                }
                _ => {}
            }
        }
        probe.check = Check(check?);
        Some(probe)
    }

    /// `headers: {Name: value}` of an http probe, in order.
    fn headers(&mut self, node: &Node, path: &str) -> Vec<(String, String)> {
        let Value::Map(entries) = &node.value else {
            self.type_error(node, path, "a map of header names to values");
            return Vec::new();
        };
        let mut headers = Vec::new();
        for (key, value) in entries {
            let name = key.scalar_text().unwrap_or_default().to_owned();
            let Some(text) = self.text(value, &join(path, &name), "a header value") else {
                continue;
            };
            match values::http_header(&name, &text) {
                Ok(()) => headers.push((name, text)),
                Err(problem) => self.problem(key, path, problem),
            }
        }
        headers
    }

    fn status(&mut self, node: &Node, path: &str) -> Option<Vec<u16>> {
        let Value::Seq(items) = &node.value else {
            self.type_error(node, path, "a list of status codes");
            return None;
        };
        let mut codes = Vec::new();
        for item in items {
            match item.value {
                Value::Int(n) if (100..=599).contains(&n) => codes.push(u16::try_from(n).ok()?),
                _ => {
                    self.diags.push(
                        Diag::error(format!("`{path}` must list HTTP status codes (100-599)"))
                            .label(item.span, "not a status code"),
                    );
                    return None;
                }
            }
        }
        Some(codes)
    }

    fn check(
        &mut self,
        kind: &str,
        node: &Node,
        path: &str,
        status: Vec<u16>,
        headers: Vec<(String, String)>,
    ) -> Option<ProbeCheck> {
        if kind == "exec" {
            return self.command(node, path).map(|c| ProbeCheck::Exec(c.0));
        }
        let text = self.string(node, path)?;
        let parsed = match kind {
            "http" => values::http_url(&text).map(|t| ProbeCheck::Http {
                host: t.host,
                port: t.port,
                path: t.path,
                status,
                headers,
            }),
            "tcp" => values::tcp_address(&text).map(|address| ProbeCheck::Tcp { address }),
            _ => regex::Regex::new(&text).map(ProbeCheck::Log).map_err(|e| {
                let detail = e.to_string();
                let last = detail
                    .lines()
                    .last()
                    .unwrap_or_default()
                    .trim()
                    .trim_start_matches("error: ")
                    .to_owned();
                (
                    format!("`{text}` is not a valid regex: {last}"),
                    Some("pk uses Rust regex syntax (https://docs.rs/regex)".to_owned()),
                )
            }),
        };
        parsed
            .map_err(|problem| self.problem(node, path, problem))
            .ok()
    }

    fn restart(&mut self, node: &Node, path: &str) -> Option<Restart> {
        let policy_only = |policy| Restart {
            policy,
            max: None,
            window: None,
            backoff_initial: None,
            backoff_max: None,
        };
        match &node.value {
            Value::Map(_) => self.restart_long(node, path),
            _ => self.restart_policy(node, path).map(policy_only),
        }
    }

    fn restart_policy(&mut self, node: &Node, path: &str) -> Option<RestartPolicy> {
        // YAML 1.1 reads a bare `no` as false.
        let text = match node.value {
            Value::Bool(false) => "no".to_owned(),
            Value::Bool(true) => {
                self.diags.push(
                    Diag::error(format!(
                        "`{path}` must be a restart policy, not `{}`",
                        node.raw
                    ))
                    .label(node.span, "ambiguous")
                    .help("use `always` or `on-failure`"),
                );
                return None;
            }
            _ => self.text(node, path, "`no`, `on-failure` or `always`")?,
        };
        values::restart_policy(&text)
            .map_err(|problem| self.problem(node, path, problem))
            .ok()
    }

    fn restart_long(&mut self, node: &Node, path: &str) -> Option<Restart> {
        let fields = self.fields(node, path, RESTART_KEYS, false)?;
        let mut restart = Restart {
            policy: RestartPolicy::No,
            max: None,
            window: None,
            backoff_initial: None,
            backoff_max: None,
        };
        let Some(policy) = fields.get("policy") else {
            self.diags.push(
                Diag::error(format!("`{path}` has no `policy`"))
                    .label(node.span, "policy missing")
                    .help("add `policy: on-failure` (or `always`, `no`)"),
            );
            return None;
        };
        restart.policy = self.restart_policy(policy, &join(path, "policy"))?;
        for (key, _, value) in fields.iter() {
            let p = join(path, key);
            match key {
                "max" => restart.max = self.u32(value, &p),
                "window" => restart.window = self.duration(value, &p).map(|d| d.0),
                "backoff" => {
                    let Some(backoff) = self.fields(value, &p, BACKOFF_KEYS, false) else {
                        continue;
                    };
                    for (key, _, value) in backoff.iter() {
                        let d = self.duration(value, &join(&p, key)).map(|d| d.0);
                        if key == "initial" {
                            restart.backoff_initial = d;
                        } else {
                            restart.backoff_max = d;
                        }
                    }
                }
                _ => {}
            }
        }
        if let (Some(initial), Some(max)) = (restart.backoff_initial, restart.backoff_max) {
            if initial > max {
                self.diags.push(
                    Diag::error(format!(
                        "`{path}.backoff.initial` is longer than `{path}.backoff.max`"
                    ))
                    .label(node.span, "in this restart policy"),
                );
            }
        }
        Some(restart)
    }

    fn signal(&mut self, node: &Node, path: &str) -> Option<Signal> {
        let text = self.string(node, path)?;
        values::signal(&text)
            .map(Signal)
            .map_err(|problem| self.problem(node, path, problem))
            .ok()
    }

    fn shutdown(&mut self, node: &Node, path: &str) -> Option<Shutdown> {
        let fields = self.fields(node, path, SHUTDOWN_KEYS, false)?;
        let mut shutdown = Shutdown::default();
        for (key, _, value) in fields.iter() {
            let p = join(path, key);
            match key {
                "signal" => shutdown.signal = self.signal(value, &p),
                "grace" => shutdown.grace = self.duration(value, &p),
                "command" => shutdown.command = self.command(value, &p),
                _ => {}
            }
        }
        Some(shutdown)
    }

    fn watch(&mut self, node: &Node, path: &str) -> Option<Watch> {
        let fields = self.fields(node, path, WATCH_KEYS, false)?;
        let mut watch = Watch::default();
        for (key, _, value) in fields.iter() {
            let p = join(path, key);
            match key {
                "paths" => {
                    if matches!(&value.value, Value::Seq(items) if items.is_empty()) {
                        self.diags.push(
                            Diag::error(format!("`{p}` is an empty list"))
                                .label(value.span, "nothing to watch")
                                .help("add `paths: [src]` (relative to pk.yaml)"),
                        );
                    }
                    watch.paths = self
                        .paths(value, &p)
                        .0
                        .into_iter()
                        .map(|l| l.value)
                        .collect();
                }
                "ignore" => watch.ignore = self.string_list(value, &p).unwrap_or_default(),
                "debounce" => watch.debounce = self.duration(value, &p),
                "restart_dependents" => {
                    watch.restart_dependents = self.bool(value, &p).unwrap_or(false);
                }
                "action" => watch.action = self.watch_action(value, &p),
                _ => {}
            }
        }
        if fields.get("paths").is_none() {
            self.diags.push(
                Diag::error(format!("`{path}` has no `paths`"))
                    .label(node.span, "nothing to watch")
                    .help("add `paths: [src]` (relative to pk.yaml)"),
            );
            return None;
        }
        Some(watch)
    }

    fn watch_action(&mut self, node: &Node, path: &str) -> Option<WatchAction> {
        let text = self.string(node, path)?;
        if text == "restart" {
            return Some(WatchAction::Restart);
        }
        if let Some(sig) = text.strip_prefix("signal:") {
            return values::signal(sig)
                .map(WatchAction::Signal)
                .map_err(|problem| self.problem(node, path, problem))
                .ok();
        }
        self.problem(
            node,
            path,
            (
                format!("`{text}` is not a watch action"),
                Some("use `restart` or `signal:NAME`, e.g. `signal:HUP`".into()),
            ),
        );
        None
    }
}

/// The top-level `env_file` entries, interpolated with the inherited environment only (they
/// are read before the variables they define exist).
pub(crate) fn top_env_files(
    root: &Node,
    inherited: &BTreeMap<String, String>,
) -> (Paths, Vec<Diag>) {
    let mut reader = Reader::new(inherited);
    let mut paths = Paths::default();
    if let Value::Map(entries) = &root.value {
        for (key, value) in entries {
            if key.scalar_text() == Some("env_file") {
                paths = reader.paths(value, "env_file");
            }
        }
    }
    (paths, reader.diags)
}

/// Resolved defaults for probe timings.
pub(crate) fn or(d: Option<HumanDuration>, default: Duration) -> Duration {
    d.map_or(default, |d| d.0)
}
