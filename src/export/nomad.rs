//! Nomad back end: one job (HCL2) with one group, one task per service.
//!
//! Nomad orders the tasks of a group in three phases only: `prestart` tasks, then the main
//! tasks (once every ephemeral prestart task succeeded and every prestart sidecar runs), then
//! `poststart` tasks (once the main tasks run). The DAG is fitted onto them: services others
//! wait to complete are ephemeral prestart tasks; what those need runs as prestart sidecars;
//! of the rest, services with no dependency among themselves are main tasks and the others
//! poststart tasks. A `healthy` dependency on a prestart sidecar becomes a `<dep>-ready`
//! prestart task running `pk probe --wait`; any other `healthy` wait runs `pk probe --wait`
//! at the head of the dependent's own command. An edge none of that can honour is a warning
//! and a comment.
//!
//! Invariants: every string is written with HCL2 escapes (`"`, `\`, control characters,
//! `${` → `$${`, `%{` → `%%{`); every block and attribute written is on the list checked by
//! `tests/export_nomad.rs` against Nomad's job-specification pages.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use super::{
    Export, ExportFile, ProbeMode, anchor_program, duration_arg, probe_argv, run_argv, shell_line,
    shell_quote,
};
use crate::plan::{Plan, ProbeSpec, ServiceSpec};
use crate::vocab::{Condition, ProbeCheck, RestartPolicy, ServiceId};

/// Which Nomad driver runs the tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Driver {
    /// No isolation: the processes run as pk would run them.
    RawExec,
    /// Isolated (chroot, cgroups): paths outside the chroot are not visible.
    Exec,
}

impl Driver {
    fn name(self) -> &'static str {
        match self {
            Driver::RawExec => "raw_exec",
            Driver::Exec => "exec",
        }
    }
}

/// How to write the job.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub driver: Driver,
    /// The `pk` binary the tasks call for probes.
    pub pk: PathBuf,
}

/// Where a service runs in the group's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Phase {
    /// `lifecycle { hook = "prestart" }`: must complete successfully before the main tasks.
    PrestartOnce,
    /// `lifecycle { hook = "prestart", sidecar = true }`: running before the main tasks.
    PrestartSidecar,
    Main,
    /// `lifecycle { hook = "poststart" }`: started once the main tasks run.
    Poststart,
}

impl Phase {
    fn rank(self) -> u8 {
        match self {
            Phase::PrestartOnce | Phase::PrestartSidecar => 0,
            Phase::Main => 1,
            Phase::Poststart => 2,
        }
    }
}

/// The phase of each service (`None`: not in the job, being disabled and not needed).
pub(crate) fn phases(plan: &Plan) -> Vec<Option<Phase>> {
    let wanted = crate::plan::select(plan, &[]).unwrap_or_else(|_| vec![true; plan.services.len()]);
    let n = plan.services.len();
    let mut phase: Vec<Option<Phase>> = vec![None; n];
    for service in (0..n).filter(|&i| wanted[i]) {
        for dep in &plan.services[service].depends_on {
            if matches!(
                dep.condition,
                Condition::Completed | Condition::CompletedSuccessfully
            ) {
                phase[dep.service] = Some(Phase::PrestartOnce);
            }
        }
    }
    // What an ephemeral prestart task needs runs in the prestart phase too.
    let mut stack: Vec<ServiceId> = (0..n).filter(|&i| phase[i].is_some()).collect();
    while let Some(id) = stack.pop() {
        for dep in &plan.services[id].depends_on {
            if phase[dep.service].is_none() {
                phase[dep.service] = Some(Phase::PrestartSidecar);
                stack.push(dep.service);
            }
        }
    }
    for &id in &plan.order {
        if !wanted[id] || phase[id].is_some() {
            continue;
        }
        let after_main = plan.services[id]
            .depends_on
            .iter()
            .any(|d| matches!(phase[d.service], Some(Phase::Main | Phase::Poststart)));
        phase[id] = Some(if after_main {
            Phase::Poststart
        } else {
            Phase::Main
        });
    }
    phase
}

/// Writes the job for `plan`.
pub(crate) fn export(plan: &Plan, options: &Options) -> Export {
    let mut out = Export::default();
    let phases = phases(plan);
    let mut writer = Writer {
        plan,
        options,
        phases: &phases,
        hcl: Hcl::default(),
        ports: BTreeMap::new(),
    };
    let text = writer.job(&mut out);
    out.files.push(ExportFile {
        name: format!("{}.nomad.hcl", plan.name),
        text,
    });
    out
}

struct Writer<'a> {
    plan: &'a Plan,
    options: &'a Options,
    phases: &'a [Option<Phase>],
    hcl: Hcl,
    /// Static port → its label in the group's `network` block.
    ports: BTreeMap<u16, String>,
}

impl Writer<'_> {
    fn job(&mut self, out: &mut Export) -> String {
        let plan = self.plan;
        let mut tasks = Hcl {
            depth: 2,
            ..Hcl::default()
        };
        std::mem::swap(&mut self.hcl, &mut tasks);
        for &id in &plan.order {
            if self.phases[id].is_some() {
                self.task(id, out);
            }
        }
        self.ready_tasks(out);
        std::mem::swap(&mut self.hcl, &mut tasks);

        let h = &mut self.hcl;
        let _ = writeln!(
            h.out,
            "# Generated by `pk export nomad` from {}; edit pk.yaml and export again.\n# Run it: nomad job run {}.nomad.hcl (the client must enable the {} driver).",
            plan.config_path.display(),
            plan.name,
            self.options.driver.name()
        );
        h.open("job", &[&plan.name]);
        h.attr_str("type", "service");
        h.comment("One group keeps the stack on one node, so 127.0.0.1 in probes means what it meant to pk.");
        h.open("group", &[&plan.name]);
        h.attr_int("count", 1);
        h.comment("pk never moves a stack to another machine; drop this block to let Nomad do so.");
        h.open("reschedule", &[]);
        h.attr_int("attempts", 0);
        h.attr_bool("unlimited", false);
        h.close();
        if !self.ports.is_empty() {
            h.comment("Static ports for the service checks, taken from the probes' addresses.");
            h.open("network", &[]);
            for (port, label) in &self.ports {
                h.open("port", &[label]);
                h.attr_int("static", i64::from(*port));
                h.close();
            }
            h.close();
        }
        for (id, service) in plan.services.iter().enumerate() {
            if self.phases[id].is_none() {
                h.comment(&format!(
                    "`{}` is disabled in pk.yaml and nothing needs it: not in this job.",
                    service.name
                ));
            }
        }
        h.out.push_str(&tasks.out);
        h.close();
        h.close();
        std::mem::take(&mut h.out)
    }

    fn task(&mut self, id: ServiceId, out: &mut Export) {
        let plan = self.plan;
        let service = &plan.services[id];
        let phase = self.phases[id].unwrap_or(Phase::Main);
        let mut waits: Vec<Vec<String>> = Vec::new();
        let mut notes: Vec<String> = Vec::new();
        for dep in &service.depends_on {
            self.dependency(service, phase, dep, &mut waits, &mut notes, out);
        }
        let h = &mut self.hcl;
        h.blank();
        h.open("task", &[&service.name]);
        for note in &notes {
            h.comment(note);
        }
        h.attr_str("driver", self.options.driver.name());
        match phase {
            Phase::PrestartOnce => {
                h.comment(
                    "others wait for it to complete: it must succeed before the main tasks start",
                );
                h.open("lifecycle", &[]);
                h.attr_str("hook", "prestart");
                h.attr_bool("sidecar", false);
                h.close();
            }
            Phase::PrestartSidecar => {
                h.comment("a prestart task needs it: it runs before the main tasks, for the whole allocation");
                h.open("lifecycle", &[]);
                h.attr_str("hook", "prestart");
                h.attr_bool("sidecar", true);
                h.close();
            }
            Phase::Main => {}
            Phase::Poststart => {
                h.comment("it depends on main tasks: started once they run");
                h.open("lifecycle", &[]);
                h.attr_str("hook", "poststart");
                h.attr_bool("sidecar", service.restart.policy != RestartPolicy::No);
                h.close();
            }
        }
        // raw_exec has no working directory setting and wants absolute programs: a shell
        // changes directory, waits for what it must, then becomes the service.
        let argv = anchor_program(run_argv(&service.run), &service.working_dir);
        let mut script = String::new();
        for wait in &waits {
            script.push_str(&shell_line(wait));
            script.push_str(" && ");
        }
        let _ = write!(
            script,
            "cd {} && exec {}",
            shell_quote(&service.working_dir.display().to_string()),
            shell_line(&argv)
        );
        h.open("config", &[]);
        h.attr_str("command", "/bin/sh");
        h.attr_list("args", &["-c".to_owned(), script]);
        h.close();
        h.attr_str(
            "kill_signal",
            &format!("SIG{}", service.shutdown.signal.name),
        );
        h.attr_str("kill_timeout", &duration_arg(service.shutdown.grace));
        if service.shutdown.command.is_some() {
            h.comment("shutdown.command is not exported: Nomad runs nothing in a task before signalling it");
            out.warn(
                &service.name,
                "`shutdown.command` has no Nomad equivalent: not exported",
            );
        }
        Self::restart(h, service);
        self.env(id, out);
        self.checks(id, out);
        let h = &mut self.hcl;
        if service.log_file.is_some() {
            h.comment(
                "log_file is not exported: Nomad keeps task output itself (`nomad alloc logs`)",
            );
        }
        if service.watch.is_some() {
            h.comment("watch is not exported: Nomad does not restart tasks when files change");
        }
        if let Some(limit) = service.timeout {
            h.comment(&format!(
                "timeout ({}) is not exported: Nomad has no run-time limit for a service task",
                duration_arg(limit)
            ));
            out.warn(
                &service.name,
                "`timeout` has no Nomad equivalent for a service job: not exported",
            );
        }
        h.close();
    }

    /// How one `depends_on` entry of `service` (in `phase`) is honoured: by the lifecycle, by
    /// a wait at the head of its command, or not at all (a note and a warning).
    #[expect(
        clippy::single_match_else,
        reason = "each arm says how the edge is honoured"
    )]
    fn dependency(
        &self,
        service: &ServiceSpec,
        phase: Phase,
        dep: &crate::plan::Dependency,
        waits: &mut Vec<Vec<String>>,
        notes: &mut Vec<String>,
        out: &mut Export,
    ) {
        let target = &self.plan.services[dep.service];
        let dep_phase = self.phases[dep.service].unwrap_or(Phase::Main);
        let name = &target.name;
        let cond = dep.condition.as_str();
        let earlier = dep_phase.rank() < phase.rank();
        match dep.condition {
            Condition::Healthy if earlier && dep_phase == Phase::PrestartSidecar => {
                notes.push(format!(
                    "waits for {name} ({cond}): the `{name}-ready` prestart task"
                ));
            }
            Condition::Healthy => match self.ready_wait(dep.service) {
                Some(wait) => {
                    notes.push(format!(
                        "waits for {name} ({cond}): pk probe at the head of its command"
                    ));
                    waits.push(wait);
                }
                None => {
                    notes.push(format!("waits for {name} ({cond}): NOT honoured, its ready probe cannot be exported"));
                    out.warn(&service.name, format!("waits for `{name}` to be healthy, but its ready probe cannot be exported"));
                }
            },
            Condition::Started if earlier => {
                notes.push(format!(
                    "waits for {name} ({cond}): an earlier lifecycle phase"
                ));
            }
            Condition::CompletedSuccessfully if earlier && dep_phase == Phase::PrestartOnce => {
                notes.push(format!(
                    "waits for {name} ({cond}): an ephemeral prestart task"
                ));
            }
            Condition::Completed if earlier && dep_phase == Phase::PrestartOnce => {
                notes.push(format!("waits for {name} ({cond}): an ephemeral prestart task, which must succeed under Nomad"));
                out.warn(&service.name, format!("waits for `{name}` to complete with any exit code, but Nomad starts the main tasks only after a prestart task succeeded"));
            }
            _ => {
                notes.push(format!(
                    "waits for {name} ({cond}): NOT honoured, Nomad starts both in the same phase"
                ));
                out.warn(&service.name, format!("waits for `{name}` ({cond}), which Nomad cannot order: both start in the same lifecycle phase"));
            }
        }
    }

    /// `pk probe --wait` for the ready probe of `id`, if it can run outside pk.
    fn ready_wait(&self, id: ServiceId) -> Option<Vec<String>> {
        let service = &self.plan.services[id];
        probe_argv(
            &self.options.pk,
            &service.name,
            service.ready.as_ref()?,
            ProbeMode::Wait,
        )
    }

    /// One ephemeral prestart task per prestart sidecar that a later task waits for `healthy`.
    fn ready_tasks(&mut self, out: &mut Export) {
        let plan = self.plan;
        for id in 0..plan.services.len() {
            if self.phases[id] != Some(Phase::PrestartSidecar) {
                continue;
            }
            let awaited = plan.services.iter().enumerate().any(|(t, s)| {
                self.phases[t].is_some_and(|p| p.rank() > 0)
                    && s.depends_on
                        .iter()
                        .any(|d| d.service == id && d.condition == Condition::Healthy)
            });
            if !awaited {
                continue;
            }
            let Some(wait) = self.ready_wait(id) else {
                out.warn(&plan.services[id].name, "its ready probe cannot be exported: dependents waiting for `healthy` start once it runs");
                continue;
            };
            let name = &plan.services[id].name;
            let h = &mut self.hcl;
            h.blank();
            h.open("task", &[&format!("{name}-ready")]);
            h.comment(&format!("the main tasks start once {name} is healthy"));
            h.attr_str("driver", self.options.driver.name());
            h.open("lifecycle", &[]);
            h.attr_str("hook", "prestart");
            h.attr_bool("sidecar", false);
            h.close();
            h.open("config", &[]);
            h.attr_str("command", &wait[0]);
            h.attr_list("args", &wait[1..]);
            h.close();
            h.close();
        }
    }

    fn restart(h: &mut Hcl, service: &ServiceSpec) {
        let spec = &service.restart;
        h.open("restart", &[]);
        if spec.policy == RestartPolicy::No {
            h.attr_int("attempts", 0);
        } else {
            if spec.backoff_max > spec.backoff_initial {
                h.comment(&format!(
                    "pk backs off exponentially from {} to {}; Nomad waits `delay` (plus jitter) every time",
                    duration_arg(spec.backoff_initial),
                    duration_arg(spec.backoff_max)
                ));
            }
            h.attr_int("attempts", i64::from(spec.max));
            h.attr_str("interval", &duration_arg(spec.window));
            h.attr_str("delay", &duration_arg(spec.backoff_initial));
        }
        h.attr_str("mode", "fail");
        h.close();
    }

    fn env(&mut self, id: ServiceId, out: &mut Export) {
        let service = &self.plan.services[id];
        let h = &mut self.hcl;
        let mut last: Vec<(&str, Option<&str>)> = Vec::new();
        for (key, value) in &service.env_source.vars {
            last.retain(|(k, _)| k != key);
            last.push((key, value.as_deref()));
        }
        if last.iter().any(|(_, v)| v.is_some()) {
            h.open("env", &[]);
            for (key, value) in &last {
                if let Some(value) = value {
                    if is_identifier(key) {
                        h.attr_str(key, value);
                    } else {
                        out.warn(
                            &service.name,
                            format!(
                                "`{key}` is not a name an HCL env block can hold: not exported"
                            ),
                        );
                    }
                }
            }
            h.close();
        }
        for (key, _) in last.iter().filter(|(_, v)| v.is_none()) {
            h.comment(&format!(
                "env {key}: null (unset) is not exported: Nomad cannot unset a variable"
            ));
            out.warn(
                &service.name,
                format!("`{key}: null` (unset) has no Nomad equivalent"),
            );
        }
        for (i, file) in service.env_source.files.iter().enumerate() {
            h.comment("env_file: read on the client; a host path needs the client's template file sandbox disabled");
            h.open("template", &[]);
            h.attr_str("source", &file.display().to_string());
            h.attr_str("destination", &format!("local/pk-env-{i}.env"));
            h.attr_bool("env", true);
            h.close();
        }
    }

    /// `service` checks for the ready and alive probes (tcp and http; Nomad's own provider
    /// runs no scripts).
    #[expect(clippy::single_match_else, reason = "a check, or why there is none")]
    fn checks(&mut self, id: ServiceId, out: &mut Export) {
        let service = &self.plan.services[id];
        let probes: Vec<(&str, &ProbeSpec)> =
            [("ready", &service.ready), ("alive", &service.alive)]
                .into_iter()
                .filter_map(|(what, p)| Some((what, p.as_ref()?)))
                .collect();
        let mut checks = Vec::new();
        for (what, probe) in probes {
            match port_of(&probe.check) {
                Some(port) => {
                    let next = format!("{}-{port}", service.name);
                    let label = self.ports.entry(port).or_insert(next).clone();
                    checks.push((what, probe, label));
                }
                None => {
                    let kind = if matches!(probe.check, ProbeCheck::Log(_)) {
                        "log"
                    } else {
                        "exec"
                    };
                    self.hcl.comment(&format!("{what} probe `{}` is not a service check: Nomad's service provider runs only http and tcp checks", probe.check.describe()));
                    if what == "alive" || kind == "log" {
                        out.warn(&service.name, format!("{what} probe `{}` ({kind}) cannot be a Nomad service check: not exported", probe.check.describe()));
                    }
                }
            }
        }
        if checks.is_empty() {
            return;
        }
        let h = &mut self.hcl;
        h.comment("Nomad checks the port on the node's address: a service bound to 127.0.0.1 only fails it.");
        h.open("service", &[]);
        h.attr_str("provider", "nomad");
        h.attr_str("name", &service_name(&self.plan.name, &service.name));
        h.attr_str("port", &checks[0].2);
        for (what, probe, label) in &checks {
            h.open("check", &[]);
            h.attr_str("name", what);
            h.attr_str("port", label);
            match &probe.check {
                ProbeCheck::Http { path, headers, .. } => {
                    h.attr_str("type", "http");
                    h.attr_str("path", path);
                    if !headers.is_empty() {
                        h.open("header", &[]);
                        for (name, value) in headers {
                            let ident = name
                                .chars()
                                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
                            if ident {
                                h.attr_list(name, std::slice::from_ref(value));
                            } else {
                                h.comment(&format!(
                                    "header `{name}` is not an HCL name: add it by hand"
                                ));
                            }
                        }
                        h.close();
                    }
                }
                _ => h.attr_str("type", "tcp"),
            }
            h.attr_str(
                "interval",
                &duration_arg(probe.interval.max(Duration::from_secs(1))),
            );
            h.attr_str(
                "timeout",
                &duration_arg(probe.timeout.max(Duration::from_secs(1))),
            );
            if *what == "alive" {
                h.comment(&format!(
                    "restarts the task after {} failed checks in a row, as pk does",
                    probe.retries
                ));
                h.open("check_restart", &[]);
                h.attr_int("limit", i64::from(probe.retries));
                h.attr_str(
                    "grace",
                    &duration_arg(probe.initial_delay.max(Duration::from_secs(1))),
                );
                h.close();
            }
            h.close();
        }
        h.close();
    }
}

/// The port a tcp or http check connects to.
fn port_of(check: &ProbeCheck) -> Option<u16> {
    match check {
        ProbeCheck::Http { port, .. } => Some(*port),
        ProbeCheck::Tcp { address } => address.rsplit_once(':')?.1.parse().ok(),
        ProbeCheck::Exec(_) | ProbeCheck::Log(_) => None,
    }
}

/// A Nomad service name: lower-case letters, digits and dashes (RFC 1123).
fn service_name(project: &str, service: &str) -> String {
    format!("{project}-{service}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

fn is_identifier(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// A small HCL2 writer: blocks, attributes and comments, two-space indentation.
#[derive(Default)]
struct Hcl {
    out: String,
    depth: usize,
}

impl Hcl {
    fn indent(&mut self) {
        for _ in 0..self.depth {
            self.out.push_str("  ");
        }
    }

    fn blank(&mut self) {
        self.out.push('\n');
    }

    fn comment(&mut self, text: &str) {
        self.indent();
        let _ = writeln!(self.out, "# {}", text.replace('\n', " "));
    }

    fn open(&mut self, name: &str, labels: &[&str]) {
        self.indent();
        self.out.push_str(name);
        for label in labels {
            self.out.push(' ');
            self.out.push_str(&string(label));
        }
        self.out.push_str(" {\n");
        self.depth += 1;
    }

    fn close(&mut self) {
        self.depth -= 1;
        self.indent();
        self.out.push_str("}\n");
    }

    fn attr_str(&mut self, key: &str, value: &str) {
        self.indent();
        let _ = writeln!(self.out, "{key} = {}", string(value));
    }

    fn attr_int(&mut self, key: &str, value: i64) {
        self.indent();
        let _ = writeln!(self.out, "{key} = {value}");
    }

    fn attr_bool(&mut self, key: &str, value: bool) {
        self.indent();
        let _ = writeln!(self.out, "{key} = {value}");
    }

    fn attr_list(&mut self, key: &str, values: &[String]) {
        self.indent();
        let items: Vec<String> = values.iter().map(|v| string(v)).collect();
        let _ = writeln!(self.out, "{key} = [{}]", items.join(", "));
    }
}

/// An HCL2 quoted string: escapes, and `${`/`%{` doubled so they stay literal.
fn string(value: &str) -> String {
    let mut out = String::from("\"");
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '$' | '%' if chars.peek() == Some(&'{') => {
                out.push(c);
                out.push(c);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::string;

    #[test]
    fn strings_are_escaped_for_hcl2() {
        assert_eq!(string("plain"), "\"plain\"");
        assert_eq!(string("say \"hi\" \\ ok"), "\"say \\\"hi\\\" \\\\ ok\"");
        assert_eq!(
            string("${HOME} %{if} $x 100%"),
            "\"$${HOME} %%{if} $x 100%\""
        );
        assert_eq!(string("a\nb\u{1}"), "\"a\\nb\\u0001\"");
    }
}
