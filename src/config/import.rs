//! `pk import`: a config of another format → the equivalent pk.yaml text, with a comment at
//! each place where the meaning changed or a key was dropped.
//!
//! The front end reads the file into the one `Config` model; `emit` writes it back as pk.yaml.
//! What the model cannot say in pk.yaml words (a Procfile's per-copy `PORT`, `.env` winning
//! over the shell) is written the closest way and commented. Warnings the front end gave (an
//! unsupported key, say) become comments above the service they point into.

use std::collections::BTreeMap;
use std::path::Path;

use super::diag::{Diag, Span};
use super::emit::{self, Note};
use super::model::{Config, EnvMap, Located, Paths};
use super::procfile::{self, DOTENV, PORT_STEP, Procfile};

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

/// The service whose block holds `span`: the last one declared at or before it (services are
/// contiguous in YAML maps).
fn service_at(config: &Config, span: Span) -> Option<String> {
    config
        .services
        .0
        .iter()
        .filter(|s| s.name.span.offset <= span.offset)
        .max_by_key(|s| s.name.span.offset)
        .map(|s| s.name.value.clone())
}
