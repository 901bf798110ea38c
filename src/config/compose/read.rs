//! Walks a merged process-compose tree into a `Config`, giving each key process-compose's
//! meaning (docs/compatibility.md lists every key and what it maps to).
//!
//! Unknown keys and keys pk does not support are located warnings, as process-compose only
//! logs them; `is_strict: true` makes them errors. Wrong types and values that cannot work
//! are errors. Booleans may be written `yes`/`no` (YAML 1.1) and numbers as strings, since
//! `${VAR:-3}` expansion often leaves them quoted.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::super::diag::{Diag, Span, did_you_mean};
use super::super::fields::{Fields, join, place, type_error};
use super::super::model::{
    Check, Command, Config, Dependency, DependsOn, EnvCmd, EnvCmds, EnvMap, HumanDuration, Located,
    Paths, Probe, Restart, Service, Services, Shutdown, Signal, StackLog, Watch,
};
use super::super::node::{Node, Value};
use super::super::values;
use super::merge;
use super::template;
use crate::vocab::{CommandSpec, Condition, ProbeCheck, RestartPolicy};

const TOP_KEYS: &[&str] = &[
    "version",
    "name",
    "processes",
    "environment",
    "env_cmds",
    "vars",
    "log_location",
    "log_level",
    "log_length",
    "log_configuration",
    "log_format",
    "shell",
    "is_strict",
    "disable_env_expansion",
    "is_tui_disabled",
    "ordered_shutdown",
    "extends",
    "mcp_server",
];
const TOP_UNSUPPORTED: &[&str] = &["mcp_server"];
const PROCESS_KEYS: &[&str] = &[
    "command",
    "entrypoint",
    "args",
    "working_dir",
    "environment",
    "env_file",
    "is_dotenv_disabled",
    "description",
    "disabled",
    "is_disabled",
    "namespace",
    "depends_on",
    "availability",
    "success_exit_codes",
    "readiness_probe",
    "liveness_probe",
    "ready_log_line",
    "shutdown",
    "is_daemon",
    "launch_timeout_seconds",
    "replicas",
    "vars",
    "is_template_disabled",
    "log_location",
    "log_configuration",
    "truncate_log",
    "disable_ansi_colors",
    "watch",
    "extends",
    "is_tty",
    "is_interactive",
    "is_foreground",
    "is_elevated",
    "schedule",
    "monitor_for",
    "monitor_silence_threshold",
    "mcp",
];
/// Process keys whose `{{ .PC_REPLICA_NUM }}` is each copy's own number.
const PER_COPY_KEYS: &[&str] = &[
    "command",
    "entrypoint",
    "args",
    "working_dir",
    "environment",
    "log_location",
    "readiness_probe",
    "liveness_probe",
    "shutdown",
];
/// Accepted, but pk cannot do what they ask: one warning each (an error with `is_strict`).
const PROCESS_UNSUPPORTED: &[&str] = &[
    "is_interactive",
    "is_foreground",
    "is_elevated",
    "schedule",
    "monitor_for",
    "monitor_silence_threshold",
    "mcp",
];
/// Unsupported keys whose process would do harm if started with the others: it is disabled.
const NOT_STARTED_WHEN: &[&str] = &["is_foreground", "schedule", "mcp"];
const AVAILABILITY_KEYS: &[&str] = &[
    "restart",
    "backoff_seconds",
    "max_restarts",
    "exit_on_end",
    "exit_on_skipped",
];
const PROBE_KEYS: &[&str] = &[
    "exec",
    "http_get",
    "initial_delay_seconds",
    "period_seconds",
    "timeout_seconds",
    "failure_threshold",
    "success_threshold",
];
const EXEC_KEYS: &[&str] = &["command", "working_dir"];
const HTTP_KEYS: &[&str] = &["host", "scheme", "path", "port", "headers", "status_code"];
const SHUTDOWN_KEYS: &[&str] = &[
    "signal",
    "timeout_seconds",
    "command",
    "parent_only",
    "send_keys",
];
const DEPENDENCY_KEYS: &[&str] = &["condition"];
const LOG_CONFIGURATION_KEYS: &[&str] = &[
    "rotation",
    "fields_order",
    "disable_json",
    "timestamp_format",
    "no_color",
    "no_metadata",
    "add_timestamp",
    "flush_each_line",
];
const ROTATION_KEYS: &[&str] = &[
    "directory",
    "filename",
    "max_size_mb",
    "max_backups",
    "max_age_days",
    "compress",
];
const WATCH_KEYS: &[&str] = &[
    "paths",
    "cascade",
    "debounce",
    "max_entries",
    "buffer_size",
    "disable_default_excludes",
];
const WATCH_PATH_KEYS: &[&str] = &["path", "include", "exclude"];
const CONDITIONS: &[&str] = &[
    "process_started",
    "process_completed",
    "process_completed_successfully",
    "process_healthy",
    "process_log_ready",
];
/// "Runs until the first check passes": process-compose's readiness has no deadline.
const NO_DEADLINE: Duration = Duration::from_secs(365 * 24 * 3600);
/// `max_restarts` counts restarts over the whole run, not within a window.
const WHOLE_RUN: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

pub(super) struct Reader<'a> {
    cwd: &'a Path,
    diags: &'a mut Vec<Diag>,
    strict: bool,
    shell: (String, String),
    vars: BTreeMap<String, String>,
    /// `process_log_ready` dependencies seen: (target, where the condition is written).
    log_ready: Vec<(String, Span)>,
    /// The process being read has `replicas` above 1.
    replicated: bool,
}

impl<'a> Reader<'a> {
    pub(super) fn new(cwd: &'a Path, diags: &'a mut Vec<Diag>) -> Reader<'a> {
        Reader {
            cwd,
            diags,
            strict: false,
            shell: ("bash".into(), "-c".into()),
            vars: BTreeMap::new(),
            log_ready: Vec::new(),
            replicated: false,
        }
    }

    /// A warning, or an error under `is_strict: true`.
    fn lenient(&mut self, diag: Diag) {
        let mut diag = diag;
        if self.strict {
            diag.warning = false;
        }
        self.diags.push(diag);
    }

    fn type_error(&mut self, node: &Node, path: &str, expected: &str) {
        self.diags.push(type_error(node, path, expected));
    }

    /// Checks that `node` is a map; each key other than `known` ones and `x-*` is a warning.
    fn fields<'n>(&mut self, node: &'n Node, path: &str, known: &[&str]) -> Option<Fields<'n>> {
        let fields = Fields::of(node, path, known, true, self.diags)?;
        for &(name, key) in &fields.unknown {
            let help = match did_you_mean(name, known.iter().copied()) {
                Some(s) => format!(
                    "did you mean `{s}`? (process-compose ignores unknown keys; so does pk, with this warning)"
                ),
                None => format!("valid keys here: {}", known.join(", ")),
            };
            self.lenient(
                Diag::warning(format!("unknown key `{name}` {} is ignored", place(path)))
                    .label(key.span, "unknown key")
                    .help(help),
            );
        }
        Some(fields)
    }

    fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        match &node.value {
            Value::Str(s) => Some(s.clone()),
            Value::Bool(_) | Value::Int(_) | Value::Float(_) => Some(node.raw.clone()),
            _ => {
                self.type_error(node, path, "a string");
                None
            }
        }
    }

    fn bool(&mut self, node: &Node, path: &str) -> Option<bool> {
        match &node.value {
            Value::Bool(b) => Some(*b),
            Value::Str(s) => match s.to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" | "y" => Some(true),
                "false" | "no" | "off" | "n" | "" => Some(false),
                _ => {
                    self.type_error(node, path, "true or false");
                    None
                }
            },
            Value::Null => Some(false),
            _ => {
                self.type_error(node, path, "true or false");
                None
            }
        }
    }

    fn int(&mut self, node: &Node, path: &str) -> Option<i64> {
        let parsed = match &node.value {
            Value::Int(n) => i64::try_from(*n).ok(),
            Value::Str(s) => s
                .replace(values::REPLICA_NUM_MARK, "0")
                .trim()
                .parse::<i64>()
                .ok(),
            Value::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 =>
            {
                #[expect(clippy::cast_possible_truncation, reason = "checked whole and small")]
                Some(*f as i64)
            }
            _ => None,
        };
        if parsed.is_none() {
            self.type_error(node, path, "a whole number");
        }
        parsed
    }

    fn seconds(&mut self, node: &Node, path: &str) -> Option<HumanDuration> {
        let n = self.int(node, path)?;
        if let Ok(n) = u64::try_from(n) {
            return Some(HumanDuration(Duration::from_secs(n)));
        }
        self.diags.push(
            Diag::error(format!("`{path}` must not be negative")).label(node.span, "negative"),
        );
        None
    }

    fn u32(&mut self, node: &Node, path: &str) -> Option<u32> {
        let n = self.int(node, path)?;
        u32::try_from(n).ok().or_else(|| {
            self.diags.push(
                Diag::error(format!("`{path}` must be between 0 and {}", u32::MAX))
                    .label(node.span, "out of range"),
            );
            None
        })
    }

    fn shell_command(&self, text: String) -> Command {
        Command(CommandSpec::Argv(vec![
            self.shell.0.clone(),
            self.shell.1.clone(),
            text,
        ]))
    }

    fn command(&mut self, node: &Node, path: &str) -> Option<Command> {
        let text = self.string(node, path)?;
        if text.trim().is_empty() {
            self.diags
                .push(Diag::error(format!("`{path}` is empty")).label(node.span, "empty command"));
            return None;
        }
        Some(self.shell_command(text))
    }

    fn string_list(&mut self, node: &Node, path: &str) -> Vec<String> {
        match &node.value {
            Value::Seq(items) => items.iter().filter_map(|i| self.string(i, path)).collect(),
            Value::Null => Vec::new(),
            _ => self.string(node, path).into_iter().collect(),
        }
    }

    /// `environment` as a list of `K=V` or a map.
    fn env(&mut self, node: &Node, path: &str) -> EnvMap {
        let mut vars = Vec::new();
        match &node.value {
            Value::Seq(items) => {
                for item in items {
                    let Some(entry) = self.string(item, path) else {
                        continue;
                    };
                    match entry.split_once('=') {
                        Some((k, v)) if !k.is_empty() => {
                            vars.push((k.to_owned(), Some(v.to_owned())));
                        }
                        _ => self.diags.push(
                            Diag::error(format!("`{path}` entry `{entry}` is not `NAME=value`"))
                                .label(item.span, "no `=`")
                                .help("write it as `NAME=value`"),
                        ),
                    }
                }
            }
            Value::Map(entries) => {
                for (k, v) in entries {
                    let Some(name) = k.scalar_text().map(str::to_owned) else {
                        continue;
                    };
                    match v.value {
                        Value::Null => vars.push((name, Some(String::new()))),
                        _ => {
                            if let Some(value) = self.string(v, &join(path, &name)) {
                                vars.push((name, Some(value)));
                            }
                        }
                    }
                }
            }
            Value::Null => {}
            _ => self.type_error(node, path, "a list of `NAME=value` or a map"),
        }
        EnvMap(vars)
    }

    /// A path as process-compose resolves it: relative to the directory pk runs in.
    fn path_from_cwd(&self, text: &str) -> String {
        self.cwd.join(text).display().to_string()
    }

    /// The whole (merged) file.
    pub(super) fn config(&mut self, root: &Node) -> Option<Config> {
        if let Some(strict) = root.get("is_strict") {
            self.strict = self.bool(strict, "is_strict").unwrap_or(false);
        }
        let fields = self.fields(root, "", TOP_KEYS)?;
        let mut config = Config::default();
        let mut processes = None;
        let mut env_cmds = None;
        let mut log_configuration = None;
        for (key, k, value) in fields.iter() {
            match key {
                "name" => config.name = self.string(value, key),
                "environment" => config.env = self.env(value, key),
                "vars" => self.vars = self.vars_map(value, key),
                "shell" => self.shell(value),
                // Read once the shell is known, whatever the key order.
                "env_cmds" => env_cmds = Some(value),
                "processes" => processes = Some(value),
                "log_location" => {
                    config.stack_log = self.string(value, key).map(|l| StackLog {
                        path: self.cwd.join(l),
                        max_size: None,
                        keep: None,
                    });
                }
                "log_configuration" => log_configuration = Some(value),
                _ if TOP_UNSUPPORTED.contains(&key) => self.unsupported(k, key, "the MCP server"),
                // Accepted and ignored, as process-compose treats them or because pk has its
                // own equivalent (ordered teardown is always on).
                _ => {}
            }
        }
        if config.name.is_none() {
            config.name = self
                .cwd
                .file_name()
                .map(|n| n.to_string_lossy().into_owned());
        }
        let Some(processes) = processes else {
            self.diags.push(
                Diag::error("the process-compose file has no `processes`")
                    .label(
                        Span {
                            len: 0,
                            ..root.span
                        },
                        "expected a `processes:` map",
                    )
                    .help("processes:\n  web:\n    command: python3 -m http.server"),
            );
            return None;
        };
        config.services = self.processes(processes);
        if let Some(node) = env_cmds {
            config.env_cmds = EnvCmds {
                cmds: self.env_cmds(node),
                strict: self.strict,
            };
        }
        if let Some(node) = log_configuration {
            self.log_configuration(node, config.stack_log.as_mut());
        }
        Some(config)
    }

    /// `env_cmds: {NAME: command}`: run by `pk up`, not here (loading runs nothing).
    fn env_cmds(&mut self, node: &Node) -> Vec<EnvCmd> {
        let Value::Map(entries) = &node.value else {
            if !matches!(node.value, Value::Null) {
                self.type_error(node, "env_cmds", "a map of variable names to commands");
            }
            return Vec::new();
        };
        let mut cmds = Vec::new();
        for (k, v) in entries {
            let name = k.scalar_text().unwrap_or_default().to_owned();
            if name.is_empty() || name.contains(['=', '\0']) {
                self.diags.push(
                    Diag::error(format!("`{name}` is not a variable name"))
                        .label(k.span, "not a variable name")
                        .help("each key of `env_cmds` names the variable the command's output goes into"),
                );
                continue;
            }
            if let Some(command) = self.command(v, &join("env_cmds", &name)) {
                cmds.push(EnvCmd {
                    name: Located {
                        value: name,
                        span: k.span,
                    },
                    command,
                });
            }
        }
        cmds
    }

    /// Top-level `log_configuration`: its `rotation` sizes apply to the `log_location` file;
    /// the rest formats process-compose's own JSON log, which pk does not write.
    fn log_configuration(&mut self, node: &Node, log: Option<&mut StackLog>) {
        let Some(fields) = self.fields(node, "log_configuration", LOG_CONFIGURATION_KEYS) else {
            return;
        };
        let Some(rotation) = fields.get("rotation") else {
            return;
        };
        let Some(rotation) = self.fields(rotation, "log_configuration.rotation", ROTATION_KEYS)
        else {
            return;
        };
        let mut sizes = (None, None);
        for (key, k, value) in rotation.iter() {
            let path = join("log_configuration.rotation", key);
            match key {
                "max_size_mb" => sizes.0 = self.u32(value, &path).filter(|&n| n > 0),
                // 0 is "keep them all" in process-compose; pk keeps its default number then.
                "max_backups" => sizes.1 = self.u32(value, &path).filter(|&n| n > 0),
                "max_age_days" | "compress" => {
                    let on = match &value.value {
                        Value::Bool(b) => *b,
                        Value::Int(n) => *n != 0,
                        Value::Null => false,
                        _ => true,
                    };
                    if on {
                        self.unsupported(
                            k,
                            &path,
                            "pk rotates by size only: old files are neither aged out nor compressed",
                        );
                    }
                }
                // `directory` and `filename` place process-compose's own log.
                _ => {}
            }
        }
        if let Some(log) = log {
            if let Some(mb) = sizes.0 {
                log.max_size = Some(u64::from(mb) * 1024 * 1024);
            }
            if let Some(keep) = sizes.1 {
                log.keep = Some(keep as usize);
            }
        }
    }

    fn unsupported(&mut self, key: &Node, name: &str, what: &str) {
        self.lenient(
            Diag::warning(format!(
                "`{name}` is not supported by pk ({what}); it is ignored"
            ))
            .label(key.span, "not supported")
            .help("see docs/compatibility.md; `is_strict: true` makes this an error"),
        );
    }

    fn vars_map(&mut self, node: &Node, path: &str) -> BTreeMap<String, String> {
        let mut vars = BTreeMap::new();
        let Value::Map(entries) = &node.value else {
            self.type_error(node, path, "a map of names to values");
            return vars;
        };
        for (k, v) in entries {
            let name = k.scalar_text().unwrap_or_default().to_owned();
            if let Some(value) = self.string(v, &join(path, &name)) {
                vars.insert(name, value);
            }
        }
        vars
    }

    fn shell(&mut self, node: &Node) {
        let Some(fields) = self.fields(
            node,
            "shell",
            &[
                "shell_command",
                "shell_argument",
                "elevated_shell_command",
                "elevated_shell_argument",
            ],
        ) else {
            return;
        };
        if let Some(cmd) = fields.get("shell_command") {
            if let Some(s) = self.string(cmd, "shell.shell_command") {
                self.shell.0 = s;
            }
        }
        if let Some(arg) = fields.get("shell_argument") {
            if let Some(s) = self.string(arg, "shell.shell_argument") {
                self.shell.1 = s;
            }
        }
    }

    fn processes(&mut self, node: &Node) -> Services {
        let Value::Map(entries) = &node.value else {
            self.type_error(node, "processes", "a map of process names to processes");
            return Services::default();
        };
        let resolved = self.process_extends(entries);
        let mut services = Vec::new();
        for ((key, _), process) in entries.iter().zip(resolved) {
            let name = key.scalar_text().unwrap_or_default().to_owned();
            if !values::is_valid_service_name(&name) {
                self.diags.push(
                    Diag::error(format!("`{name}` is not a valid process name for pk"))
                        .label(key.span, "invalid name")
                        .help("a name starts with a letter, a digit or `_` and has only letters, digits, `_`, `.` and `-` (it names a cgroup and a log file)"),
                );
            }
            let located = Located {
                value: name,
                span: key.span,
            };
            if let Some(service) = self.process(&located, process) {
                services.push(service);
            }
        }
        for (target, span) in std::mem::take(&mut self.log_ready) {
            let Some(service) = services.iter().find(|s| s.name.value == target) else {
                continue;
            };
            let target_span = service.name.span;
            let has_line = matches!(
                service.ready.as_ref().map(|p| &p.check.0),
                Some(ProbeCheck::Log(_))
            );
            if !has_line {
                self.diags.push(
                    Diag::error(format!(
                        "`process_log_ready` waits for `{target}`'s `ready_log_line`, but it has none"
                    ))
                    .label(span, "needs a ready_log_line")
                    .label(target_span, format!("`{target}` is declared here"))
                    .help(format!("add `ready_log_line: …` to {target}, or wait for `process_started`")),
                );
                // Reported once: the dependency is dropped so that no second error follows.
                for s in &mut services {
                    s.depends_on.0.retain(|d| d.condition.span != span);
                }
            }
        }
        Services(services)
    }

    /// Process-level `extends: <process>`: each process merged over its (resolved) parent.
    fn process_extends(&mut self, entries: &[(Node, Node)]) -> Vec<Node> {
        let find = |name: &str| {
            entries
                .iter()
                .position(|(k, _)| k.scalar_text() == Some(name))
        };
        let mut out = Vec::new();
        for (i, (_, process)) in entries.iter().enumerate() {
            let mut chain = vec![i];
            let mut current = process.clone();
            let mut resolved = process.clone();
            while let Some(parent_node) = current.get("extends").cloned() {
                let parent_name = parent_node.scalar_text().unwrap_or_default().to_owned();
                let Some(parent) = find(&parent_name) else {
                    self.diags.push(
                        Diag::error(format!("`extends: {parent_name}` names no process"))
                            .label(parent_node.span, "unknown process"),
                    );
                    break;
                };
                if chain.contains(&parent) {
                    self.diags.push(
                        Diag::error(format!("`extends: {parent_name}` makes a loop"))
                            .label(parent_node.span, "extends a process that extends this one"),
                    );
                    break;
                }
                chain.push(parent);
                let mut base = entries[parent].1.clone();
                merge::merge(&mut base, resolved, "");
                resolved = base;
                current = entries[parent].1.clone();
            }
            if let Value::Map(keys) = &mut resolved.value {
                keys.retain(|(k, _)| k.scalar_text() != Some("extends"));
            }
            out.push(resolved);
        }
        out
    }

    /// Renders `{{ .VAR }}` in every string of a process (but its `vars`).
    fn render(&mut self, node: &mut Node, vars: &BTreeMap<String, String>) {
        match &mut node.value {
            Value::Str(s) if s.contains("{{") => match template::render(s, vars) {
                Ok(text) => *s = text,
                Err((_, why)) => self.diags.push(
                    Diag::error(format!("template cannot be rendered: {why}"))
                        .label(node.span, "in this value")
                        .help("pk renders `{{ .NAME }}` with the top-level and process `vars`; set `is_template_disabled: true` to keep `{{` as written"),
                ),
            },
            Value::Seq(items) => items.iter_mut().for_each(|n| self.render(n, vars)),
            Value::Map(entries) => {
                for (k, v) in entries {
                    if k.scalar_text() != Some("vars") {
                        self.render(v, vars);
                    }
                }
            }
            _ => {}
        }
    }

    #[expect(clippy::too_many_lines, reason = "one arm per process-compose key")]
    fn process(&mut self, name: &Located<String>, mut node: Node) -> Option<Service> {
        let path = format!("processes.{}", name.value);
        if matches!(node.value, Value::Null) {
            self.diags.push(
                Diag::error(format!("process `{}` is empty", name.value))
                    .label(name.span, "no command")
                    .help("give it a `command`"),
            );
            return None;
        }
        self.replicated = node.get("replicas").is_some_and(|n| match &n.value {
            Value::Int(n) => *n > 1,
            Value::Str(s) => s.trim().parse::<u32>().is_ok_and(|n| n > 1),
            _ => false,
        });
        let template_disabled = match node.get("is_template_disabled") {
            Some(n) => self
                .bool(n, &join(&path, "is_template_disabled"))
                .unwrap_or(false),
            None => false,
        };
        if !template_disabled {
            let mut vars = self.vars.clone();
            if let Some(local) = node.get("vars") {
                vars.extend(self.vars_map(local, &join(&path, "vars")));
            }
            vars.insert("PC_PROC_NAME".into(), name.value.clone());
            // Each copy its own number, as process-compose renders per replica: what runs or
            // places a copy keeps a mark that `plan::replicas` fills in per copy; the rest
            // (names, namespaces, numbers) is the same for every copy, rendered with 0.
            let mut per_copy = vars.clone();
            per_copy.insert("PC_REPLICA_NUM".into(), values::REPLICA_NUM_MARK.into());
            vars.insert("PC_REPLICA_NUM".into(), "0".into());
            if let Value::Map(entries) = &mut node.value {
                for (k, v) in entries {
                    match k.scalar_text() {
                        Some("vars") => {}
                        Some(key) if PER_COPY_KEYS.contains(&key) => self.render(v, &per_copy),
                        _ => self.render(v, &vars),
                    }
                }
            }
        }
        let fields = self.fields(&node, &path, PROCESS_KEYS)?;
        let mut service = Service {
            span: name.span,
            name: name.clone(),
            ..Service::default()
        };
        let mut working_dir: Option<String> = None;
        let mut entrypoint: Vec<String> = Vec::new();
        let mut ready_log_line: Option<(String, Span)> = None;
        for (key, k, value) in fields.iter() {
            let p = join(&path, key);
            match key {
                "command" => service.command = self.command(value, &p),
                "entrypoint" | "args" => entrypoint.extend(self.string_list(value, &p)),
                "working_dir" => working_dir = self.string(value, &p),
                "environment" => service.env = self.env(value, &p),
                "description" => service.description = self.string(value, &p),
                "disabled" | "is_disabled" => {
                    service.disabled |= self.bool(value, &p).unwrap_or(false);
                }
                "is_dotenv_disabled" => {
                    service.dotenv_disabled = self.bool(value, &p).unwrap_or(false);
                }
                "namespace" => service.namespaces = self.string_list(value, &p),
                "depends_on" => service.depends_on = self.depends_on(value, &p),
                "availability" => self.availability(value, &p, &mut service),
                "success_exit_codes" => service.success_exit_codes = self.exit_codes(value, &p),
                "readiness_probe" => service.ready = self.probe(value, &p, true),
                "liveness_probe" => service.alive = self.probe(value, &p, false),
                "ready_log_line" => {
                    ready_log_line = self.string(value, &p).map(|l| (l, value.span));
                }
                "shutdown" => service.shutdown = self.shutdown(value, &p),
                "replicas" => service.replicas = self.replicas(value, &p),
                "log_location" => {
                    // process-compose's placeholder for the copy's number in a log file name.
                    service.log_file = self.string(value, &p).map(|l| {
                        self.path_from_cwd(&l.replace("{PC_REPLICA_NUM}", values::REPLICA_NUM_MARK))
                    });
                }
                "watch" => service.watch = self.watch(value, &p),
                "is_tty" => service.tty = self.bool(value, &p).unwrap_or(false),
                "truncate_log" | "disable_ansi_colors" if self.bool(value, &p).unwrap_or(false) => {
                    let what = if key == "truncate_log" {
                        "the log file is appended to and rotated, never emptied at start"
                    } else {
                        "colours are kept in the output and log files"
                    };
                    self.unsupported(k, key, what);
                }
                _ if PROCESS_UNSUPPORTED.contains(&key) => {
                    let on = !matches!(value.value, Value::Bool(false) | Value::Null);
                    if on {
                        let what = match key {
                            "is_interactive" => "no interactive terminal pane; stdin is /dev/null",
                            "is_foreground" => "no foreground takeover; the process is not started",
                            "is_elevated" => "no sudo prompt; the command runs as you",
                            "schedule" => "no scheduled runs; the process is not started",
                            "mcp" => "no MCP tools; the process is not started",
                            _ => "no activity notifications",
                        };
                        self.unsupported(k, key, what);
                        if NOT_STARTED_WHEN.contains(&key) {
                            service.disabled = true;
                        }
                    }
                }
                // `env_file` is read below (it depends on `working_dir`); `vars`,
                // `is_template_disabled` and `extends` were applied before; the rest is
                // accepted and needs nothing from pk (a daemon's tree is watched whole).
                _ => {}
            }
        }
        let wd = working_dir.as_deref().map(|w| self.path_from_cwd(w));
        if let Some(env_file) = fields.get("env_file") {
            let dir = wd.clone().unwrap_or_else(|| self.cwd.display().to_string());
            let files = self.string_list(env_file, &join(&path, "env_file"));
            service.env_file = Paths(
                files
                    .into_iter()
                    .map(|f| Located {
                        value: Path::new(&dir).join(f).display().to_string(),
                        span: env_file.span,
                    })
                    .collect(),
            );
        }
        service.working_dir = Some(wd.unwrap_or_else(|| self.cwd.display().to_string()));
        service
            .env
            .0
            .insert(0, ("PC_PROC_NAME".into(), Some(name.value.clone())));
        service
            .env
            .0
            .insert(1, ("PC_REPLICA_NUM".into(), Some("0".into())));
        match (&service.command, entrypoint.is_empty()) {
            (Some(_), false) => self.lenient(
                Diag::warning(
                    "`entrypoint` is ignored when `command` is set (as in process-compose)",
                )
                .label(
                    fields
                        .key_span("entrypoint")
                        .or(fields.key_span("args"))
                        .unwrap_or(name.span),
                    "ignored",
                ),
            ),
            (None, false) => service.command = Some(Command(CommandSpec::Argv(entrypoint))),
            (None, true) => {
                // process-compose runs the empty command, which exits 0 at once.
                self.lenient(
                    Diag::warning(format!(
                        "process `{}` has no `command`; it exits at once when started",
                        name.value
                    ))
                    .label(name.span, "nothing to run")
                    .help("add `command: …` (run by `bash -c`) or an `entrypoint` list"),
                );
                service.command = Some(self.shell_command(String::new()));
            }
            (Some(_), true) => {}
        }
        if let Some((line, span)) = ready_log_line {
            if service.ready.is_some() {
                self.diags.push(
                    Diag::error(format!(
                        "process `{}` has both `ready_log_line` and `readiness_probe`",
                        name.value
                    ))
                    .label(span, "a ready line")
                    .label(
                        fields.key_span("readiness_probe").unwrap_or(span),
                        "and a probe",
                    )
                    .help("keep one (process-compose refuses both too)"),
                );
            } else {
                let regex = regex::Regex::new(&regex::escape(&line)).ok()?;
                service.ready = Some(Probe {
                    check: Check(ProbeCheck::Log(regex)),
                    initial_delay: None,
                    interval: None,
                    timeout: None,
                    retries: None,
                    deadline: Some(HumanDuration(NO_DEADLINE)),
                });
            }
        }
        Some(service)
    }

    fn depends_on(&mut self, node: &Node, path: &str) -> DependsOn {
        let mut deps = Vec::new();
        let Value::Map(entries) = &node.value else {
            if matches!(node.value, Value::Null) {
                return DependsOn(deps);
            }
            self.type_error(node, path, "a map of process names to `{ condition: … }`");
            return DependsOn(deps);
        };
        for (key, value) in entries {
            let target = key.scalar_text().unwrap_or_default().to_owned();
            let p = join(path, &target);
            let mut condition = Located {
                value: Condition::Started,
                span: key.span,
            };
            if let Some(fields) = match value.value {
                Value::Null => None,
                _ => self.fields(value, &p, DEPENDENCY_KEYS),
            } {
                if let Some(c) = fields.get("condition") {
                    let text = self.string(c, &join(&p, "condition")).unwrap_or_default();
                    let parsed = match text.as_str() {
                        "process_started" => Some(Condition::Started),
                        "process_completed" => Some(Condition::Completed),
                        "process_completed_successfully" => Some(Condition::CompletedSuccessfully),
                        "process_healthy" => Some(Condition::Healthy),
                        // The target's `ready_log_line` is its ready probe (a log match).
                        "process_log_ready" => {
                            self.log_ready.push((target.clone(), c.span));
                            Some(Condition::Healthy)
                        }
                        _ => None,
                    };
                    let Some(value) = parsed else {
                        let help = match did_you_mean(&text, CONDITIONS.iter().copied()) {
                            Some(s) => format!("did you mean `{s}`?"),
                            None => format!("use one of {}", CONDITIONS.join(", ")),
                        };
                        self.diags.push(
                            Diag::error(format!("`{text}` is not a dependency condition"))
                                .label(c.span, "unknown condition")
                                .help(help),
                        );
                        continue;
                    };
                    condition = Located {
                        value,
                        span: c.span,
                    };
                }
            }
            deps.push(Dependency {
                service: Located {
                    value: target,
                    span: key.span,
                },
                condition,
                required: true,
                restart: false,
            });
        }
        DependsOn(deps)
    }

    fn availability(&mut self, node: &Node, path: &str, service: &mut Service) {
        let Some(fields) = self.fields(node, path, AVAILABILITY_KEYS) else {
            return;
        };
        let mut restart = Restart {
            policy: RestartPolicy::No,
            max: None,
            window: Some(WHOLE_RUN),
            backoff_initial: Some(Duration::from_secs(1)),
            backoff_max: Some(Duration::from_secs(1)),
        };
        for (key, _, value) in fields.iter() {
            let p = join(path, key);
            match key {
                "restart" => {
                    let text = match value.value {
                        Value::Bool(false) => "no".to_owned(),
                        _ => self.string(value, &p).unwrap_or_default(),
                    };
                    restart.policy = match text.as_str() {
                        "no" | "" => RestartPolicy::No,
                        "always" => RestartPolicy::Always,
                        "on_failure" => RestartPolicy::OnFailure,
                        "exit_on_failure" => {
                            service.ends_stack.on_failure = true;
                            RestartPolicy::No
                        }
                        _ => {
                            let options = ["no", "always", "on_failure", "exit_on_failure"];
                            let help = match did_you_mean(&text, options) {
                                Some(s) => format!("did you mean `{s}`?"),
                                None => format!("use one of {}", options.join(", ")),
                            };
                            self.diags.push(
                                Diag::error(format!("`{text}` is not a restart policy"))
                                    .label(value.span, "unknown policy")
                                    .help(help),
                            );
                            RestartPolicy::No
                        }
                    };
                }
                "backoff_seconds" => {
                    if let Some(d) = self.seconds(value, &p) {
                        // process-compose waits at least a second.
                        let d = d.0.max(Duration::from_secs(1));
                        restart.backoff_initial = Some(d);
                        restart.backoff_max = Some(d);
                    }
                }
                "max_restarts" => {
                    restart.max = self
                        .u32(value, &p)
                        .map(|n| if n == 0 { u32::MAX } else { n });
                }
                "exit_on_end" => service.exit_on_end = self.bool(value, &p).unwrap_or(false),
                "exit_on_skipped" => {
                    service.ends_stack.on_skipped = self.bool(value, &p).unwrap_or(false);
                }
                _ => {}
            }
        }
        restart.max = Some(restart.max.unwrap_or(u32::MAX));
        service.restart = Some(restart);
    }

    /// `replicas`: 0 (Go's zero value) means unset, as in process-compose; at most
    /// `values::MAX_REPLICAS`.
    fn replicas(&mut self, node: &Node, path: &str) -> Option<Located<u32>> {
        let n = self.u32(node, path)?;
        if n > values::MAX_REPLICAS {
            self.diags.push(
                Diag::error(format!("`{path}` must be at most {}", values::MAX_REPLICAS))
                    .label(node.span, "too many copies"),
            );
            return None;
        }
        (n > 1).then_some(Located {
            value: n,
            span: node.span,
        })
    }

    fn exit_codes(&mut self, node: &Node, path: &str) -> Vec<i32> {
        let Value::Seq(items) = &node.value else {
            self.type_error(node, path, "a list of exit codes");
            return Vec::new();
        };
        let mut codes = Vec::new();
        for item in items {
            match self.int(item, path) {
                Some(n) if (0..=255).contains(&n) => codes.push(i32::try_from(n).unwrap_or(0)),
                Some(_) => self.diags.push(
                    Diag::error(format!("`{path}` must list exit codes (0-255)"))
                        .label(item.span, "not an exit code"),
                ),
                None => {}
            }
        }
        codes
    }

    fn probe(&mut self, node: &Node, path: &str, ready: bool) -> Option<Probe> {
        let fields = self.fields(node, path, PROBE_KEYS)?;
        let mut probe = Probe {
            check: Check(ProbeCheck::Tcp {
                address: String::new(),
            }),
            initial_delay: None,
            interval: Some(HumanDuration(Duration::from_secs(10))),
            timeout: Some(HumanDuration(Duration::from_secs(1))),
            retries: None,
            deadline: ready.then_some(HumanDuration(NO_DEADLINE)),
        };
        let check = match (fields.get("exec"), fields.get("http_get")) {
            (Some(exec), None) => self.exec_check(exec, &join(path, "exec")),
            (None, Some(http)) => self.http_check(http, &join(path, "http_get")),
            (Some(_), Some(_)) => {
                self.diags.push(
                    Diag::error(format!("probe `{path}` has both `exec` and `http_get`"))
                        .label(fields.key_span("exec").unwrap_or(node.span), "`exec`")
                        .label(
                            fields.key_span("http_get").unwrap_or(node.span),
                            "`http_get`",
                        )
                        .help("a probe checks one thing: keep one"),
                );
                None
            }
            (None, None) => {
                self.diags.push(
                    Diag::error(format!("probe `{path}` has nothing to check"))
                        .label(node.span, "no check")
                        .help("add `exec: { command: … }` or `http_get: { port: … }`"),
                );
                None
            }
        };
        for (key, _, value) in fields.iter() {
            let p = join(path, key);
            match key {
                "initial_delay_seconds" => probe.initial_delay = self.seconds(value, &p),
                "period_seconds" => {
                    probe.interval = self
                        .seconds(value, &p)
                        .filter(|d| !d.0.is_zero())
                        .or(probe.interval);
                }
                "timeout_seconds" => {
                    probe.timeout = self
                        .seconds(value, &p)
                        .filter(|d| !d.0.is_zero())
                        .or(probe.timeout);
                }
                "failure_threshold" => probe.retries = self.u32(value, &p).filter(|n| *n > 0),
                _ => {}
            }
        }
        probe.check = Check(check?);
        Some(probe)
    }

    fn exec_check(&mut self, node: &Node, path: &str) -> Option<ProbeCheck> {
        let fields = self.fields(node, path, EXEC_KEYS)?;
        let Some(command) = fields.get("command") else {
            self.diags.push(
                Diag::error(format!("`{path}` has no `command`"))
                    .label(node.span, "nothing to run"),
            );
            return None;
        };
        let mut text = self.string(command, &join(path, "command"))?;
        if let Some(wd) = fields.get("working_dir") {
            let dir = self.string(wd, &join(path, "working_dir"))?;
            let dir = self.path_from_cwd(&dir);
            text = format!("cd '{}' && {text}", dir.replace('\'', r"'\''"));
        }
        Some(ProbeCheck::Exec(self.shell_command(text).0))
    }

    /// A probe's port is read once per process: a copy's number in it is 0 for every copy
    /// (warned when there are several).
    fn one_port_for_every_copy(&mut self, text: String, node: &Node) -> String {
        if !text.contains(values::REPLICA_NUM_MARK) {
            return text;
        }
        if self.replicated {
            self.lenient(
                Diag::warning("`{{ .PC_REPLICA_NUM }}` in a probe's `port` is 0 in every copy (pk reads a probe's port once per process)")
                    .label(node.span, "the same port in every copy")
                    .help("probe each copy with an `exec` probe instead, e.g. `curl -f http://127.0.0.1:808$${PC_REPLICA_NUM}/`"),
            );
        }
        text.replace(values::REPLICA_NUM_MARK, "0")
    }

    fn http_check(&mut self, node: &Node, path: &str) -> Option<ProbeCheck> {
        let fields = self.fields(node, path, HTTP_KEYS)?;
        let host = match fields.get("host") {
            Some(h) => self.string(h, &join(path, "host"))?,
            None => "127.0.0.1".to_owned(),
        };
        let host = if host.is_empty() {
            "127.0.0.1".to_owned()
        } else {
            host
        };
        let Some(port_node) = fields.get("port") else {
            self.diags.push(
                Diag::error(format!("`{path}` has no `port`")).label(node.span, "which port?"),
            );
            return None;
        };
        let port_text = match port_node.value {
            Value::Null => String::new(),
            _ => self.string(port_node, &join(path, "port"))?,
        };
        let port_text = self.one_port_for_every_copy(port_text, port_node);
        let Some(port) = port_text.trim().parse::<u16>().ok().filter(|p| *p != 0) else {
            let why = if port_text.trim().is_empty() {
                "is empty (a variable it names is not set?)".to_owned()
            } else {
                format!("`{port_text}` is not a port (1-65535)")
            };
            self.diags.push(
                Diag::error(format!("`{path}.port` {why}"))
                    .label(port_node.span, "not a port")
                    .help("set the variable it is expanded from, or write a number"),
            );
            return None;
        };
        let mut url_path = match fields.get("path") {
            Some(p) => self.string(p, &join(path, "path"))?,
            None => "/".to_owned(),
        };
        if !url_path.starts_with('/') {
            url_path.insert(0, '/');
        }
        let status = match fields.get("status_code") {
            Some(s) => {
                let code = self.int(s, &join(path, "status_code"))?;
                let Some(c) = u16::try_from(code).ok().filter(|c| (100..=599).contains(c)) else {
                    self.diags.push(
                        Diag::error(format!(
                            "`{path}.status_code` must be an HTTP status (100-599)"
                        ))
                        .label(s.span, "not a status"),
                    );
                    return None;
                };
                vec![c]
            }
            None => Vec::new(),
        };
        let headers = fields
            .get("headers")
            .map(|n| self.headers(n, &join(path, "headers")))
            .unwrap_or_default();
        let scheme = match fields.get("scheme") {
            Some(s) => self.string(s, &join(path, "scheme"))?.to_ascii_lowercase(),
            None => "http".to_owned(),
        };
        match scheme.as_str() {
            "http" | "" => Some(ProbeCheck::Http {
                host,
                port,
                path: url_path,
                status,
                headers,
            }),
            "https" => {
                self.lenient(
                    Diag::warning(format!("pk's http probes speak plain http: this https probe only checks that {host}:{port} accepts a TCP connection (no TLS handshake, no request, so `path`, `headers` and `status_code` are not checked)"))
                        .label(fields.key_span("scheme").unwrap_or(node.span), "https")
                        .help("to check the answer, use an `exec` probe, e.g. `curl -fsk https://…`"),
                );
                let address = if host.contains(':') {
                    format!("[{host}]:{port}")
                } else {
                    format!("{host}:{port}")
                };
                Some(ProbeCheck::Tcp { address })
            }
            other => {
                let span = fields.get("scheme").map_or(node.span, |s| s.span);
                self.diags.push(
                    Diag::error(format!("`{other}` is not an http probe scheme"))
                        .label(span, "unknown scheme")
                        .help("use `http` or `https`"),
                );
                None
            }
        }
    }

    /// `http_get.headers`: a map of header names to values, each checked.
    fn headers(&mut self, node: &Node, p: &str) -> Vec<(String, String)> {
        let mut headers = Vec::new();
        match &node.value {
            Value::Map(entries) => {
                for (key, value) in entries {
                    let name = key.scalar_text().unwrap_or_default().to_owned();
                    let Some(text) = self.string(value, &join(p, &name)) else {
                        continue;
                    };
                    match values::http_header(&name, &text) {
                        Ok(()) => headers.push((name, text)),
                        Err((message, hint)) => self.diags.push(
                            Diag::error(format!("`{p}`: {message}"))
                                .label(key.span, "here")
                                .help_opt(hint),
                        ),
                    }
                }
            }
            Value::Null => {}
            _ => self.type_error(node, p, "a map of header names to values"),
        }
        headers
    }

    fn shutdown(&mut self, node: &Node, path: &str) -> Option<Shutdown> {
        let fields = self.fields(node, path, SHUTDOWN_KEYS)?;
        let mut shutdown = Shutdown::default();
        for (key, k, value) in fields.iter() {
            let p = join(path, key);
            match key {
                "signal" => {
                    let number = self.int(value, &p)?;
                    let found =
                        crate::vocab::stop_signals().find(|s| i64::from(s.number) == number);
                    if let Some(sig) = found {
                        shutdown.signal = Some(Signal(sig));
                    } else {
                        let known: Vec<String> = crate::vocab::stop_signals()
                            .map(|s| format!("{} ({})", s.number, s.name))
                            .collect();
                        self.diags.push(
                            Diag::error(format!(
                                "`{path}.signal`: pk cannot stop a process with signal {number}"
                            ))
                            .label(value.span, "unsupported signal")
                            .help(format!("use one of {}", known.join(", "))),
                        );
                    }
                }
                "timeout_seconds" => {
                    shutdown.grace = self.seconds(value, &p).filter(|d| !d.0.is_zero());
                }
                "command" => shutdown.command = self.command(value, &p),
                "parent_only" => {
                    let on = self.bool(value, &p).unwrap_or(false);
                    if on {
                        self.lenient(
                            Diag::warning(
                                "`parent_only` is not supported: pk signals the whole process tree",
                            )
                            .label(k.span, "the whole tree is signalled")
                            .help("pk's containment stops every process the service started"),
                        );
                    }
                }
                "send_keys" => self.unsupported(
                    k,
                    "send_keys",
                    "no PTY to type into; the stop signal is sent instead",
                ),
                _ => {}
            }
        }
        Some(shutdown)
    }

    fn watch(&mut self, node: &Node, path: &str) -> Option<Watch> {
        let fields = self.fields(node, path, WATCH_KEYS)?;
        let mut watch = Watch::default();
        for (key, _, value) in fields.iter() {
            let p = join(path, key);
            match key {
                "paths" => {
                    let Value::Seq(items) = &value.value else {
                        self.type_error(value, &p, "a list of `{ path, include, exclude }`");
                        continue;
                    };
                    for item in items {
                        if let Value::Str(s) = &item.value {
                            watch.paths.push(self.path_from_cwd(s));
                            continue;
                        }
                        let Some(entry) = self.fields(item, &p, WATCH_PATH_KEYS) else {
                            continue;
                        };
                        let Some(base) = entry
                            .get("path")
                            .and_then(|n| self.string(n, &join(&p, "path")))
                        else {
                            self.diags.push(
                                Diag::error(format!("an entry of `{p}` has no `path`"))
                                    .label(item.span, "no path"),
                            );
                            continue;
                        };
                        let base = self.path_from_cwd(&base);
                        let include = entry
                            .get("include")
                            .map(|n| self.string_list(n, &join(&p, "include")))
                            .unwrap_or_default();
                        if include.is_empty() {
                            watch.paths.push(base.clone());
                        }
                        for pattern in include {
                            let glob = if pattern.contains('/') {
                                format!("{base}/{pattern}")
                            } else {
                                format!("{base}/**/{pattern}")
                            };
                            watch.paths.push(glob);
                        }
                        if let Some(exclude) = entry.get("exclude") {
                            watch
                                .ignore
                                .extend(self.string_list(exclude, &join(&p, "exclude")));
                        }
                    }
                }
                "cascade" => watch.restart_dependents = self.bool(value, &p).unwrap_or(false),
                "debounce" => {
                    let text = self.string(value, &p)?;
                    match values::duration(&text) {
                        Ok(d) => watch.debounce = Some(HumanDuration(d)),
                        Err((message, hint)) => self.diags.push(
                            Diag::error(format!("`{p}`: {message}"))
                                .label(value.span, "here")
                                .help_opt(hint),
                        ),
                    }
                }
                _ => {}
            }
        }
        if watch.paths.is_empty() {
            self.diags.push(
                Diag::error(format!("`{path}` has no `paths`"))
                    .label(node.span, "nothing to watch"),
            );
            return None;
        }
        Some(watch)
    }
}
