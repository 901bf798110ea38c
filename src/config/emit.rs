//! `Config` → pk.yaml text (for `pk import`), with comments where a front end noted something.
//!
//! Invariant: reading the text back gives the same `Config` (values are already interpolated,
//! so every `$` is written as `$$`; strings are double-quoted JSON-style, which YAML reads
//! as written). Relative paths are written as they are: they resolve against the directory of
//! the file that is written, so it belongs next to the original.

use std::fmt::Write as _;
use std::time::Duration;

use super::model::{
    Command, Config, DependsOn, EnvMap, HumanDuration, Paths, Probe, Restart, Service, Watch,
    WatchAction,
};
use crate::vocab::{CommandSpec, Condition, ProbeCheck, RestartPolicy};

/// A comment for the written file: at the top (`service` None) or above a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Note {
    pub service: Option<String>,
    pub text: String,
}

impl Note {
    pub(crate) fn top(text: impl Into<String>) -> Note {
        Note {
            service: None,
            text: text.into(),
        }
    }

    pub(crate) fn service(service: impl Into<String>, text: impl Into<String>) -> Note {
        Note {
            service: Some(service.into()),
            text: text.into(),
        }
    }
}

/// The pk.yaml for `config`; `header` comment lines first, then each note where it belongs.
pub(crate) fn to_yaml(config: &Config, header: &[String], notes: &[Note]) -> String {
    let mut out = String::new();
    for line in header {
        comment(&mut out, 0, line);
    }
    for note in notes.iter().filter(|n| n.service.is_none()) {
        comment(&mut out, 0, &note.text);
    }
    if let Some(name) = &config.name {
        let _ = writeln!(out, "name: {}", string(name));
    }
    if let Some(grace) = config.grace {
        let _ = writeln!(out, "grace: {}", duration(grace.0));
    }
    env(&mut out, 0, "env", &config.env);
    paths(&mut out, 0, "env_file", &config.env_file);
    if let Some(dir) = &config.log_dir {
        let _ = writeln!(out, "log_dir: {}", string(dir));
    }
    out.push_str("services:\n");
    for service in &config.services.0 {
        for note in notes
            .iter()
            .filter(|n| n.service.as_deref() == Some(service.name.value.as_str()))
        {
            comment(&mut out, 2, &note.text);
        }
        write_service(&mut out, service);
    }
    out
}

fn write_service(out: &mut String, s: &Service) {
    let _ = writeln!(out, "  {}:", key(&s.name.value));
    let i = 4;
    if let Some(Command(c)) = &s.command {
        command(out, i, "command", c);
    }
    if let Some(stages) = &s.pipeline {
        line(out, i, "pipeline:");
        for stage in stages {
            let _ = writeln!(out, "{:i$}  - {}", "", list(stage), i = i);
        }
    }
    if let Some(dir) = &s.working_dir {
        line(out, i, &format!("working_dir: {}", string(dir)));
    }
    if let Some(file) = &s.log_file {
        line(out, i, &format!("log_file: {}", string(file)));
    }
    env(out, i, "env", &s.env);
    paths(out, i, "env_file", &s.env_file);
    depends_on(out, i, &s.depends_on);
    if let Some(p) = &s.ready {
        probe(out, i, "ready", p);
    }
    if let Some(p) = &s.alive {
        probe(out, i, "alive", p);
    }
    if let Some(r) = &s.restart {
        restart(out, i, r);
    }
    if let Some(sd) = &s.shutdown {
        line(out, i, "shutdown:");
        if let Some(sig) = sd.signal {
            line(out, i + 2, &format!("signal: {}", sig.0.name));
        }
        if let Some(g) = sd.grace {
            line(out, i + 2, &format!("grace: {}", duration(g.0)));
        }
        if let Some(Command(c)) = &sd.command {
            command(out, i + 2, "command", c);
        }
    }
    if s.disabled {
        line(out, i, "disabled: true");
    }
    if let Some(w) = &s.watch {
        watch(out, i, w);
    }
    if s.tty {
        line(out, i, "tty: true");
    }
    if let Some(t) = s.timeout {
        line(out, i, &format!("timeout: {}", duration(t.0)));
    }
    if let Some(r) = &s.replicas {
        line(out, i, &format!("replicas: {}", r.value));
    }
    if s.exit_on_end {
        line(out, i, "exit_on_end: true");
    }
}

fn command(out: &mut String, i: usize, key: &str, c: &CommandSpec) {
    match c {
        CommandSpec::Shell(text) => line(out, i, &format!("{key}: {}", string(text))),
        CommandSpec::Argv(argv) => line(out, i, &format!("{key}: {}", list(argv))),
    }
}

fn env(out: &mut String, i: usize, name: &str, env: &EnvMap) {
    if env.0.is_empty() {
        return;
    }
    line(out, i, &format!("{name}:"));
    for (k, v) in &env.0 {
        let value = v.as_deref().map_or_else(|| "null".to_owned(), string);
        line(out, i + 2, &format!("{}: {value}", key(k)));
    }
}

fn paths(out: &mut String, i: usize, name: &str, paths: &Paths) {
    if paths.0.is_empty() {
        return;
    }
    let items: Vec<String> = paths.0.iter().map(|p| p.value.clone()).collect();
    line(out, i, &format!("{name}: {}", list(&items)));
}

fn depends_on(out: &mut String, i: usize, deps: &DependsOn) {
    if deps.0.is_empty() {
        return;
    }
    line(out, i, "depends_on:");
    for d in &deps.0 {
        let condition = condition(d.condition.value);
        let name = key(&d.service.value);
        if d.required && !d.restart {
            line(out, i + 2, &format!("{name}: {condition}"));
        } else {
            line(
                out,
                i + 2,
                &format!(
                    "{name}: {{ condition: {condition}, required: {}, restart: {} }}",
                    d.required, d.restart
                ),
            );
        }
    }
}

fn condition(c: Condition) -> &'static str {
    c.as_str()
}

fn probe(out: &mut String, i: usize, name: &str, p: &Probe) {
    line(out, i, &format!("{name}:"));
    let j = i + 2;
    match &p.check.0 {
        ProbeCheck::Exec(c) => command(out, j, "exec", c),
        ProbeCheck::Http {
            host,
            port,
            path,
            status,
            headers,
        } => {
            let host = if host.contains(':') {
                format!("[{host}]")
            } else {
                host.clone()
            };
            line(
                out,
                j,
                &format!("http: {}", string(&format!("http://{host}:{port}{path}"))),
            );
            if !status.is_empty() {
                let codes: Vec<String> = status.iter().map(u16::to_string).collect();
                line(out, j, &format!("status: [{}]", codes.join(", ")));
            }
            if !headers.is_empty() {
                line(out, j, "headers:");
                for (name, value) in headers {
                    line(out, j + 2, &format!("{}: {}", key(name), string(value)));
                }
            }
        }
        ProbeCheck::Tcp { address } => line(out, j, &format!("tcp: {}", string(address))),
        ProbeCheck::Log(re) => line(out, j, &format!("log: {}", string(re.as_str()))),
    }
    for (key, value) in [
        ("initial_delay", p.initial_delay),
        ("interval", p.interval),
        ("timeout", p.timeout),
        ("deadline", p.deadline),
    ] {
        if let Some(HumanDuration(d)) = value {
            line(out, j, &format!("{key}: {}", duration(d)));
        }
    }
    if let Some(r) = p.retries {
        line(out, j, &format!("retries: {r}"));
    }
}

fn restart(out: &mut String, i: usize, r: &Restart) {
    let policy = match r.policy {
        RestartPolicy::No => "\"no\"",
        RestartPolicy::OnFailure => "on-failure",
        RestartPolicy::Always => "always",
    };
    let long = r.max.is_some()
        || r.window.is_some()
        || r.backoff_initial.is_some()
        || r.backoff_max.is_some();
    if !long {
        line(out, i, &format!("restart: {policy}"));
        return;
    }
    line(out, i, "restart:");
    line(out, i + 2, &format!("policy: {policy}"));
    if let Some(max) = r.max {
        line(out, i + 2, &format!("max: {max}"));
    }
    if let Some(w) = r.window {
        line(out, i + 2, &format!("window: {}", duration(w)));
    }
    if r.backoff_initial.is_some() || r.backoff_max.is_some() {
        line(out, i + 2, "backoff:");
        if let Some(d) = r.backoff_initial {
            line(out, i + 4, &format!("initial: {}", duration(d)));
        }
        if let Some(d) = r.backoff_max {
            line(out, i + 4, &format!("max: {}", duration(d)));
        }
    }
}

fn watch(out: &mut String, i: usize, w: &Watch) {
    line(out, i, "watch:");
    line(out, i + 2, &format!("paths: {}", list(&w.paths)));
    if !w.ignore.is_empty() {
        line(out, i + 2, &format!("ignore: {}", list(&w.ignore)));
    }
    if let Some(d) = w.debounce {
        line(out, i + 2, &format!("debounce: {}", duration(d.0)));
    }
    match w.action {
        None => {}
        Some(WatchAction::Restart) => line(out, i + 2, "action: restart"),
        Some(WatchAction::Signal(s)) => line(out, i + 2, &format!("action: signal:{}", s.name)),
    }
    if w.restart_dependents {
        line(out, i + 2, "restart_dependents: true");
    }
}

fn line(out: &mut String, indent: usize, text: &str) {
    let _ = writeln!(out, "{:indent$}{text}", "");
}

/// `# text`, one comment line per line of `text`.
fn comment(out: &mut String, indent: usize, text: &str) {
    for l in text.lines() {
        let _ = writeln!(out, "{:indent$}# {l}", "");
    }
}

/// A duration the reader parses back exactly: `1500ms`, `10s`, `5m`, `876000h`.
fn duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        match d.as_secs() {
            s if s >= 3600 && s % 3600 == 0 => format!("{}h", s / 3600),
            s if s >= 60 && s % 60 == 0 => format!("{}m", s / 60),
            s => format!("{s}s"),
        }
    } else if d.subsec_nanos() % 1_000_000 == 0 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}us", d.as_micros())
    }
}

/// A string value: double-quoted (JSON escapes are YAML escapes) with `$` doubled, because the
/// reader interpolates values and these are final.
fn string(s: &str) -> String {
    serde_json::to_string(&s.replace('$', "$$")).unwrap_or_default()
}

/// A key: plain when it is a plain word, else quoted (keys are not interpolated).
fn key(k: &str) -> String {
    let plain = !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !matches!(
            k,
            "y" | "Y" | "n" | "N" | "yes" | "no" | "on" | "off" | "true" | "false" | "null" | "~"
        );
    if plain {
        k.to_owned()
    } else {
        serde_json::to_string(k).unwrap_or_default()
    }
}

/// A flow list of strings.
fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| string(s)).collect();
    format!("[{}]", quoted.join(", "))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::{node, read};

    fn reread(text: &str) -> Config {
        let vars = BTreeMap::new();
        let mut reader = read::Reader::new(&vars);
        let root = node::parse(text).unwrap_or_else(|d| panic!("{d:?}\n{text}"));
        let config = reader.config(&root);
        let errors: Vec<_> = reader.diags.iter().filter(|d| !d.warning).collect();
        assert!(errors.is_empty(), "{errors:?}\n{text}");
        config.unwrap()
    }

    #[test]
    fn the_design_example_survives_a_round_trip() {
        let design = include_str!("../../tests/config_fixtures/design.yaml");
        let once = to_yaml(&reread(design), &[], &[]);
        let twice = to_yaml(&reread(&once), &[], &[]);
        assert_eq!(once, twice);
        for expected in [
            "\"http://127.0.0.1:8080/health\"",
            "db: { condition: healthy, required: true, restart: true }",
            "migrate: completed_successfully",
            "initial: 250ms",
            "command: [\"./migrate.sh\"]",
            "restart: \"no\"",
        ] {
            assert!(once.contains(expected), "{expected} missing from\n{once}");
        }
    }

    #[test]
    fn probe_headers_survive_a_round_trip() {
        let config = reread(
            "services:\n  web:\n    command: x\n    ready:\n      http: http://127.0.0.1:80/h\n      headers: { Authorization: 'Bearer $$T', X-N: 3 }\n",
        );
        let text = to_yaml(&config, &[], &[]);
        assert!(
            text.contains("headers:\n        Authorization: \"Bearer $$T\"\n        X-N: \"3\"\n"),
            "{text}"
        );
        assert_eq!(to_yaml(&reread(&text), &[], &[]), text);
    }

    #[test]
    fn dollars_are_kept_for_the_shell_and_notes_become_comments() {
        let config = reread(
            "services:\n  web:\n    command: puma -p $$PORT\n    replicas: 3\n    exit_on_end: true\n    env: { 'odd key': x, yes: y }\n",
        );
        let text = to_yaml(
            &config,
            &["from Procfile".into()],
            &[Note::service("web", "two\nlines"), Note::top("top note")],
        );
        assert_eq!(
            text,
            "# from Procfile\n# top note\nservices:\n  # two\n  # lines\n  web:\n    command: \"puma -p $$PORT\"\n    env:\n      \"odd key\": \"x\"\n      \"yes\": \"y\"\n    replicas: 3\n    exit_on_end: true\n"
        );
        assert_eq!(
            to_yaml(&reread(&text), &[], &[]),
            to_yaml(&config, &[], &[])
        );
    }
}
