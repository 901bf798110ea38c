//! Replicas: one declared service → N services, each its own contained tree.
//!
//! Naming follows process-compose exactly: one copy keeps the declared name; N > 1 copies are
//! `NAME-I` for I in 0..N, zero-padded to the number of digits of N (`web-0`…`web-2`,
//! `web-00`…`web-11`). Each copy has `PC_PROC_NAME` (the declared name) and `PC_REPLICA_NUM`
//! (I, not padded) in its environment, as process-compose sets them for every process, and a
//! Procfile's `PORT` + I.
//!
//! Invariants: after `expand`, a dependency on a replicated service is one dependency per copy
//! (so a dependent waits for every copy), the start order lists copies next to each other, and
//! every name is distinct (a clash with a declared name is a located error).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::build::LoadError;
use super::{Dependency, RunSpec, ServiceId, ServiceSpec};
use crate::config::diag::{Diag, Span, did_you_mean};
use crate::config::values::{MAX_REPLICAS, REPLICA_NUM_MARK};
use crate::vocab::{CommandSpec, ProbeCheck};

/// Name of copy `index` of `count` copies of `group`.
pub(super) fn replica_name(group: &str, index: u32, count: u32) -> String {
    if count <= 1 {
        return group.to_owned();
    }
    let width = count.to_string().len();
    format!("{group}-{index:0width$}")
}

/// Where a name sits in a run of copies (for the dashboard's grouping).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CopyPosition {
    First,
    Middle,
    Last,
}

/// For each name, its place in a run of consecutive copies named by `replica_name`
/// (`web-0`, `web-1`, `web-2`), or None. Works from names alone, so `pk attach` can group
/// what `pk ps` lists.
pub(crate) fn copy_positions(names: &[String]) -> Vec<Option<CopyPosition>> {
    let mut out = vec![None; names.len()];
    let mut i = 0;
    while i < names.len() {
        let Some((group, _)) = names[i].rsplit_once('-') else {
            i += 1;
            continue;
        };
        let run = (i..names.len())
            .take_while(|&j| names[j].rsplit_once('-').is_some_and(|(g, _)| g == group))
            .count();
        let count = (1..=run)
            .rev()
            .find(|&n| {
                let n32 = u32::try_from(n).unwrap_or(u32::MAX);
                (0..n).all(|k| {
                    names[i + k] == replica_name(group, u32::try_from(k).unwrap_or(u32::MAX), n32)
                })
            })
            .unwrap_or(0);
        if count < 2 {
            i += 1;
            continue;
        }
        for k in 0..count {
            out[i + k] = Some(match k {
                0 => CopyPosition::First,
                k if k + 1 == count => CopyPosition::Last,
                _ => CopyPosition::Middle,
            });
        }
        i += count;
    }
    out
}

/// `declared` (indexed by declared id, dependencies by declared id) with `counts[id]` copies
/// each → the services of the plan and their start order (from `order`, the declared order).
/// `spans[id]` locates the declared service for name clashes.
pub(crate) fn expand(
    declared: &[ServiceSpec],
    order: &[ServiceId],
    counts: &[u32],
    spans: &[Span],
    diags: &mut Vec<Diag>,
) -> (Vec<ServiceSpec>, Vec<ServiceId>) {
    // Declared id → its copies' ids.
    let mut ids: Vec<Vec<ServiceId>> = Vec::with_capacity(declared.len());
    let mut next = 0;
    for &count in counts {
        let count = count.max(1) as usize;
        ids.push((next..next + count).collect());
        next += count;
    }
    let mut services = Vec::with_capacity(next);
    for (id, spec) in declared.iter().enumerate() {
        let count = counts[id].max(1);
        // Copy 0, numbered. Strings that held the number mean each copy is made from the
        // declared form (the template); copy 0 tells whether there were any.
        let mut first = spec.template.as_deref().unwrap_or(spec).clone();
        let numbered = fill_replica_num(&mut first, "0");
        let template = (spec.template.clone()).or_else(|| numbered.then(|| Arc::new(spec.clone())));
        let base = template.as_deref().unwrap_or(spec);
        let mut first = Some(first);
        let numbered_log = base
            .log_file
            .as_ref()
            .is_some_and(|f| f.to_string_lossy().contains(REPLICA_NUM_MARK));
        let depends_on: Vec<Dependency> = spec
            .depends_on
            .iter()
            .flat_map(|d| {
                ids[d.service].iter().map(|&copy| Dependency {
                    service: copy,
                    ..*d
                })
            })
            .collect();
        for index in 0..count {
            let mut copy = first.take().unwrap_or_else(|| {
                let mut copy = base.clone();
                fill_replica_num(&mut copy, &index.to_string());
                copy
            });
            copy.template.clone_from(&template);
            copy.name = replica_name(&spec.group, index, count);
            copy.replica = index;
            copy.replicas = count;
            copy.depends_on.clone_from(&depends_on);
            let mut set = |key: &str, value: String| {
                copy.env.insert(key.into(), value.clone());
                // What an exporter must write too: the copy number tells copies apart.
                if count > 1 || key == "PORT" {
                    copy.env_source.vars.push((key.into(), Some(value)));
                }
            };
            set("PC_PROC_NAME", spec.group.clone());
            set("PC_REPLICA_NUM", index.to_string());
            if let Some(port) = spec.port {
                set("PORT", (port + index).to_string());
            }
            // A log file named with the copy's number is each copy's already.
            if count > 1 && !numbered_log {
                let suffix = &copy.name[spec.group.len()..];
                copy.log_file = spec.log_file.as_deref().map(|f| with_suffix(f, suffix));
            }
            services.push(copy);
        }
    }
    let declared_of = |id: ServiceId| ids.iter().position(|c| c.contains(&id));
    // Each name's first holder: one look-up per service (a stack of thousands).
    let mut first_named: std::collections::HashMap<&str, ServiceId> =
        std::collections::HashMap::with_capacity(services.len());
    for (i, service) in services.iter().enumerate() {
        let other = *first_named.entry(service.name.as_str()).or_insert(i);
        if other != i {
            let (copy, copy_id, plain_id) = if services[other].replicas > 1 {
                (&services[other], other, i)
            } else {
                (service, i, other)
            };
            let mut diag = Diag::error(format!(
                "copy `{}` of `{}` has the name of another service",
                copy.name, copy.group
            ))
            .help("rename the other service, or change the number of replicas");
            if let Some(at) = declared_of(copy_id).and_then(|d| spans.get(d)) {
                diag = diag.label(
                    *at,
                    format!("`{}` has {} replicas", copy.group, copy.replicas),
                );
            }
            if let Some(at) = declared_of(plain_id).and_then(|d| spans.get(d)) {
                diag = diag.label(*at, format!("`{}` is declared here", copy.name));
            }
            diags.push(diag);
        }
    }
    let order = order
        .iter()
        .flat_map(|&id| ids[id].iter().copied())
        .collect();
    (services, order)
}

/// The plan's services collapsed to one per declared service (copy 0), with dependencies on
/// any copy turned into one dependency on the declared service; and the declared order.
pub(crate) fn collapse(
    services: &[ServiceSpec],
    order: &[ServiceId],
) -> (Vec<ServiceSpec>, Vec<ServiceId>) {
    let mut declared: Vec<ServiceSpec> = Vec::new();
    let mut group_of: Vec<ServiceId> = Vec::with_capacity(services.len());
    for service in services {
        if let Some(g) = declared.iter().position(|d| d.group == service.group) {
            group_of.push(g);
        } else {
            group_of.push(declared.len());
            declared.push(service.clone());
        }
    }
    for spec in &mut declared {
        let mut deps: Vec<Dependency> = Vec::new();
        for d in &spec.depends_on {
            let target = group_of[d.service];
            if !deps.iter().any(|e| e.service == target) {
                deps.push(Dependency {
                    service: target,
                    ..*d
                });
            }
        }
        spec.depends_on = deps;
        if spec.replicas > 1 {
            let suffix = &spec.name[spec.group.len()..];
            spec.log_file = spec.log_file.as_deref().map(|f| without_suffix(f, suffix));
        }
        spec.name.clone_from(&spec.group);
    }
    let mut declared_order: Vec<ServiceId> = Vec::new();
    for &id in order {
        let g = group_of[id];
        if !declared_order.contains(&g) {
            declared_order.push(g);
        }
    }
    (declared, declared_order)
}

/// Writes `number` where a string of `spec` holds a copy's replica number
/// (`values::REPLICA_NUM_MARK`): what runs or places the copy, its environment, probes and
/// shutdown command. Whether there was any.
fn fill_replica_num(spec: &mut ServiceSpec, number: &str) -> bool {
    let text = |s: &mut String| {
        let found = s.contains(REPLICA_NUM_MARK);
        if found {
            *s = s.replace(REPLICA_NUM_MARK, number);
        }
        found
    };
    let path = |p: &mut PathBuf| {
        let mut s = p.to_string_lossy().into_owned();
        let found = text(&mut s);
        if found {
            *p = PathBuf::from(s);
        }
        found
    };
    let command = |c: &mut CommandSpec| match c {
        CommandSpec::Shell(s) => text(s),
        CommandSpec::Argv(argv) => argv.iter_mut().map(text).fold(false, |a, b| a | b),
    };
    let mut found = match &mut spec.run {
        RunSpec::Command(c) => command(c),
        RunSpec::Pipeline(stages) => stages
            .iter_mut()
            .flatten()
            .map(text)
            .fold(false, |a, b| a | b),
    };
    found |= path(&mut spec.working_dir);
    found |= spec.log_file.as_mut().is_some_and(path);
    found |= spec.env.values_mut().map(text).fold(false, |a, b| a | b);
    found |= (spec.env_source.vars.iter_mut())
        .filter_map(|(_, v)| v.as_mut())
        .map(text)
        .fold(false, |a, b| a | b);
    for probe in [&mut spec.ready, &mut spec.alive].into_iter().flatten() {
        found |= match &mut probe.check {
            ProbeCheck::Exec(c) => command(c),
            ProbeCheck::Http {
                host,
                path,
                headers,
                ..
            } => {
                let mut any = text(host) | text(path);
                for (_, value) in headers {
                    any |= text(value);
                }
                any
            }
            ProbeCheck::Tcp { address } => text(address),
            ProbeCheck::Log(_) => false,
        };
    }
    if let Some(c) = &mut spec.shutdown.command {
        found |= command(c);
    }
    found
}

/// `app.log` with `suffix` (`-1`) put before the extension: `app-1.log`.
fn with_suffix(file: &Path, suffix: &str) -> PathBuf {
    let (stem, ext) = stem_and_extension(file);
    file.with_file_name(format!("{stem}{suffix}{ext}"))
}

/// The inverse of `with_suffix`.
fn without_suffix(file: &Path, suffix: &str) -> PathBuf {
    let (stem, ext) = stem_and_extension(file);
    let stem = stem.strip_suffix(suffix).unwrap_or(&stem);
    file.with_file_name(format!("{stem}{ext}"))
}

fn stem_and_extension(file: &Path) -> (String, String) {
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = file
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    (stem, ext)
}

/// `plan` with the copies of each named declared service set to the given count
/// (`pk up --scale web=3`); every unknown name or bad count is reported at once.
pub fn scale(plan: super::Plan, counts: &[(String, u32)]) -> Result<super::Plan, LoadError> {
    if counts.is_empty() {
        return Ok(plan);
    }
    let (declared, order) = collapse(&plan.services, &plan.order);
    let mut wanted: Vec<u32> = declared.iter().map(|s| s.replicas).collect();
    let mut diags = Vec::new();
    for (name, count) in counts {
        let Some(id) = declared.iter().position(|s| &s.group == name) else {
            let groups = declared.iter().map(|s| s.group.as_str());
            let help = match did_you_mean(name, groups.clone()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("services: {}", groups.collect::<Vec<_>>().join(", ")),
            };
            diags.push(Diag::error(format!("--scale: no service named `{name}`")).help(help));
            continue;
        };
        if *count == 0 || *count > MAX_REPLICAS {
            diags.push(
                Diag::error(format!(
                    "--scale {name}={count}: the count must be between 1 and {MAX_REPLICAS}"
                ))
                .help("to leave a service out, name the services to start instead"),
            );
            continue;
        }
        wanted[id] = *count;
    }
    let (services, order) = expand(&declared, &order, &wanted, &[], &mut diags);
    if !diags.is_empty() {
        return Err(LoadError::unlocated(diags));
    }
    Ok(super::Plan {
        services,
        order,
        ..plan
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_positions_finds_runs_that_replica_name_makes() {
        let mut names: Vec<String> = vec!["db".into()];
        names.extend((0..3).map(|i| replica_name("web", i, 3)));
        names.extend((0..10).map(|i| replica_name("w", i, 10)));
        names.push("api-1".into());
        names.push("api-2".into());
        let p = copy_positions(&names);
        assert_eq!(p[0], None);
        assert_eq!(
            p[1..4],
            [
                Some(CopyPosition::First),
                Some(CopyPosition::Middle),
                Some(CopyPosition::Last)
            ]
        );
        assert_eq!(p[4], Some(CopyPosition::First));
        assert_eq!(p[13], Some(CopyPosition::Last));
        assert_eq!(p[14..], [None, None], "not numbered from 0: not copies");
    }
}
