//! `pk import`: a config of another format → the equivalent pk.yaml text, with a comment at
//! each place where the meaning changed or a key was dropped.
//!
//! The front end reads the file into the one `Config` model; `emit` writes it back as pk.yaml.
//! What the model cannot say in pk.yaml words (a Procfile's per-copy `PORT`, `.env` winning
//! over the shell, process-compose's `success_exit_codes`, namespaces and exit code rules) is
//! written the closest way, or dropped, and commented. Warnings the front end gave (an
//! unsupported key, say) become comments above the service they point into.
//!
//! Invariant: apart from what a comment names, the written pk.yaml builds the same plan as the
//! original (`tests/compat_realworld.rs` and `tests/realworld_procfile.rs` check it on every
//! real file).

use std::collections::BTreeMap;
use std::path::Path;

use super::diag::{Diag, Span};
use super::emit::{self, Note};
use super::load::{Format, Loaded};
use super::model::{Config, EnvMap, Located, Paths};
use super::procfile::{self, DOTENV, PORT_STEP, Procfile};
use crate::vocab::CommandSpec;

/// The pk.yaml for a Procfile (`path`, shown as `shown`, text `text`), or every problem in it.
pub(crate) fn procfile(
    path: &Path,
    shown: &str,
    text: &str,
    env: &BTreeMap<String, String>,
) -> Result<String, Vec<Diag>> {
    let (read, diags) = procfile::read(path, shown, text, env);
    let Some(Procfile {
        mut config,
        dotenv,
        port_base,
    }) = read
    else {
        return Err(diags);
    };
    // The stack keeps its name (the Procfile's directory), wherever the pk.yaml is written.
    config.name = std::fs::canonicalize(path).ok().and_then(|p| {
        p.parent()?
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
    });
    let mut notes = vec![Note::top(
        "foreman and honcho stop every process when one of them exits, and exit with its exit code: every service has `exit_on_end: true`.",
    )];
    if let Some((_, vars)) = &dotenv {
        config.env = EnvMap::default();
        config.env_file = Paths(vec![Located {
            value: DOTENV.to_owned(),
            span: Span::default(),
        }]);
        let names: Vec<&str> = vars.iter().map(|(k, _)| k.as_str()).collect();
        notes.push(Note::top(format!(
            "`{DOTENV}` ({}) goes into every service, as with foreman and honcho. Changed: there, its values win over the shell's environment; in pk.yaml an `env_file` only fills in what the environment does not set.",
            names.join(", ")
        )));
    }
    notes.push(Note::top(format!(
        "PORT: foreman and honcho give each process type PORT = {port_base} + {PORT_STEP} × its position in the Procfile; it is written below as each service's `env: PORT`. Changed: under `pk up --scale NAME=N` every copy gets that same PORT, where foreman gives copy N PORT+N; tell copies apart with `$${{PC_REPLICA_NUM}}` in the command (`$$` is how pk.yaml passes a `$` to the shell)."
    )));
    for service in &mut config.services.0 {
        let Some(port) = service.port.take() else {
            continue;
        };
        service
            .env
            .0
            .push(("PORT".to_owned(), Some(port.to_string())));
        notes.push(Note::service(
            service.name.value.clone(),
            format!(
                "PORT {port}: every copy under --scale gets it (foreman: {port}+N for copy N)."
            ),
        ));
    }
    let header = [format!(
        "pk.yaml written by `pk import {shown}` (from a Procfile); check it with `pk check`."
    )];
    Ok(emit::to_yaml(&config, &header, &notes))
}

/// The pk.yaml for process-compose files that `compose::load` read into `loaded` (run from
/// `cwd`; `from` names them in the header).
pub(crate) fn compose(loaded: &Loaded, cwd: &Path, from: &str) -> Option<String> {
    debug_assert_eq!(loaded.format, Format::ProcessCompose);
    let mut config = loaded.config.clone()?;
    let mut notes = vec![Note::top(
        "Exit code: process-compose exits 0 even when processes fail or are skipped (unless `exit_on_failure`, `exit_on_end` or `exit_on_skipped` ends it); pk.yaml exits 1 when a service failed, crashed or was skipped.",
    )];
    let relative = |path: &str| -> Option<String> {
        match Path::new(path).strip_prefix(cwd) {
            Ok(rest) if rest.as_os_str().is_empty() => None,
            Ok(rest) => Some(rest.display().to_string()),
            Err(_) => Some(path.to_owned()),
        }
    };
    let relative_paths = |paths: &mut Paths| {
        for p in &mut paths.0 {
            p.value = relative(&p.value).unwrap_or_else(|| ".".to_owned());
        }
    };
    let mut relocated = false;
    notes.extend(top_level_drops(&mut config, &relative));
    if !loaded.top_file_vars.is_empty() {
        config.env_file = Paths(vec![Located {
            value: ".env".to_owned(),
            span: Span::default(),
        }]);
        let names: Vec<&str> = loaded
            .top_file_vars
            .iter()
            .map(|(k, _)| k.as_str())
            .collect();
        notes.push(Note::top(format!(
            "`.env` ({}) is read as a top-level `env_file`: it goes into every service and the shell's environment wins over it, as in process-compose. process-compose reads it from the directory it runs in; pk.yaml from its own directory.",
            names.join(", ")
        )));
        relocated = true;
    }
    for service in &mut config.services.0 {
        let name = service.name.value.clone();
        let mut note = |text: String| notes.push(Note::service(name.clone(), text));
        // pk sets both for every service (and every copy) itself.
        service
            .env
            .0
            .retain(|(k, _)| k != "PC_PROC_NAME" && k != "PC_REPLICA_NUM");
        if let Some(text) = service.description.take() {
            note(format!("description: {text}"));
        }
        if !service.namespaces.is_empty() {
            note(format!(
                "Dropped: namespace {}. pk.yaml has no namespaces; `pk up NAME…` starts a selection.",
                service.namespaces.join(", ")
            ));
        }
        if !service.success_exit_codes.is_empty() {
            let codes: Vec<String> = service
                .success_exit_codes
                .iter()
                .map(i32::to_string)
                .collect();
            note(format!(
                "Dropped: success_exit_codes [{}]. In pk.yaml only 0 is success: these codes now count as failures (restarts, `completed_successfully`, the exit code).",
                codes.join(", ")
            ));
        }
        if service.ends_stack.on_failure {
            note("Dropped: `restart: exit_on_failure` (when it fails, the stack stops and pk exits with its code). pk.yaml has `exit_on_end: true`, which also ends the stack when it succeeds.".to_owned());
        }
        if service.ends_stack.on_skipped {
            note(
                "Dropped: `exit_on_skipped` (when it is skipped, the stack stops and pk exits 1)."
                    .to_owned(),
            );
        }
        if service.dotenv_disabled && !loaded.top_file_vars.is_empty() {
            note("Changed: `is_dotenv_disabled` has no pk.yaml equivalent; the top-level `env_file: .env` reaches this service too.".to_owned());
        }
        service.working_dir = service.working_dir.as_deref().and_then(relative);
        service.log_file = service
            .log_file
            .as_deref()
            .map(|f| relative(f).unwrap_or_else(|| ".".to_owned()));
        relative_paths(&mut service.env_file);
        if let Some(watch) = &mut service.watch {
            for p in &mut watch.paths {
                *p = relative(p).unwrap_or_else(|| ".".to_owned());
            }
        }
        relocated = true;
    }
    if relocated {
        notes.push(Note::top(
            "Paths are written relative to the directory `pk import` ran in (process-compose resolves them against the directory it runs in): keep this pk.yaml there.",
        ));
    }
    let warnings: Vec<Diag> = loaded.diags.iter().filter(|d| d.warning).cloned().collect();
    Some(one_number_for_every_copy(self::config(
        &config, from, &warnings, notes,
    )))
}

/// pk.yaml has no per-copy templates: a copy's number (`{{ .PC_REPLICA_NUM }}`) left in `yaml`
/// is written as 0, and said so; each copy reads its own from its environment.
fn one_number_for_every_copy(yaml: String) -> String {
    if !yaml.contains(super::values::REPLICA_NUM_MARK) {
        return yaml;
    }
    let note = "# Changed: `{{ .PC_REPLICA_NUM }}` (each copy's number) is written as 0, the same in every copy; in a `command`, `$${PC_REPLICA_NUM}` is each copy's number.\n";
    format!(
        "{note}{}",
        yaml.replace(super::values::REPLICA_NUM_MARK, "0")
    )
}

/// Notes for process-compose's top-level keys pk.yaml has no word for (`env_cmds`, the
/// stack-wide `log_location`), which are taken out of `config`.
fn top_level_drops(config: &mut Config, relative: &dyn Fn(&str) -> Option<String>) -> Vec<Note> {
    let mut out = Vec::new();
    if !config.env_cmds.cmds.is_empty() {
        let cmds: Vec<String> = (config.env_cmds.cmds.iter())
            .map(|c| {
                // Run by the shell: the text is the shell's last argument.
                let text = match &c.command.0 {
                    CommandSpec::Argv(argv) => argv.last().cloned().unwrap_or_default(),
                    CommandSpec::Shell(text) => text.clone(),
                };
                format!("{}: {text}", c.name.value)
            })
            .collect();
        out.push(Note::top(format!(
            "Dropped: env_cmds ({}). pk.yaml has no commands that make variables: `pk up` of the process-compose file runs them; for this pk.yaml, set the variables in the environment or an `env_file`.",
            cmds.join("; ")
        )));
    }
    if let Some(log) = config.stack_log.take() {
        out.push(Note::top(format!(
            "Dropped: the top-level log_location ({}), one file with every process's output. pk.yaml keeps a file per service (`log_dir`, `log_file`); `pk logs` shows them all.",
            relative(&log.path.display().to_string()).unwrap_or_else(|| ".".to_owned())
        )));
    }
    out
}

/// The pk.yaml for a config some front end read: `warnings` it gave (located in `file`, which
/// holds `config`'s service spans) become comments above the service they point into.
#[allow(
    dead_code,
    reason = "used once `pk import` reads process-compose files (issue 10)"
)]
pub(crate) fn config(config: &Config, from: &str, warnings: &[Diag], notes: Vec<Note>) -> String {
    let mut notes = notes;
    for w in warnings {
        let at = w.labels.first().map(|(span, _)| *span);
        let service = at.and_then(|span| service_at(config, span));
        let text = match &w.help {
            Some(help) => format!("{} ({help})", w.message),
            None => w.message.clone(),
        };
        notes.push(Note { service, text });
    }
    let header = [format!(
        "pk.yaml written by `pk import {from}`; check it with `pk check`."
    )];
    emit::to_yaml(config, &header, &notes)
}

/// The service whose block holds `span`: the last one declared at or before it in the same
/// file (services are contiguous in YAML maps).
fn service_at(config: &Config, span: Span) -> Option<String> {
    config
        .services
        .0
        .iter()
        .filter(|s| s.name.span.file == span.file && s.name.span.offset <= span.offset)
        .max_by_key(|s| s.name.span.offset)
        .map(|s| s.name.value.clone())
}
