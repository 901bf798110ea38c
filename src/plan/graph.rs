//! The dependency DAG: cycle checks, start order, selection, and text/Graphviz rendering.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt::Write as _;

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};

use super::build::LoadError;
use super::{Condition, Plan, ServiceId, ServiceSpec};
use crate::config::Config;
use crate::config::diag::{Diag, Span, did_you_mean};
use crate::vocab::fmt_duration;

/// Reports each dependency cycle (located at its `depends_on` entries) and returns a start order:
/// dependencies first, ties broken by file order.
pub(crate) fn check_and_order(
    config: &Config,
    services: &[ServiceSpec],
    diags: &mut Vec<Diag>,
) -> Vec<ServiceId> {
    let mut graph: DiGraph<ServiceId, ()> = DiGraph::new();
    let nodes: Vec<NodeIndex> = (0..services.len()).map(|id| graph.add_node(id)).collect();
    for (id, service) in services.iter().enumerate() {
        for dep in &service.depends_on {
            graph.add_edge(nodes[id], nodes[dep.service], ());
        }
    }
    let mut components: Vec<Vec<ServiceId>> = tarjan_scc(&graph)
        .into_iter()
        .filter(|c| c.len() > 1)
        .map(|c| c.into_iter().map(|n| graph[n]).collect())
        .collect();
    components.sort_by_key(|c| c.iter().copied().min());
    for component in components {
        let cycle = cycle_in(services, &component);
        let names: Vec<&str> = cycle.iter().map(|&id| services[id].name.as_str()).collect();
        let mut diag = Diag::error(format!("dependency cycle: {}", names.join(" → ")));
        for pair in cycle.windows(2) {
            let (from, to) = (pair[0], pair[1]);
            let span = entry_span(config, from, &services[to].name);
            diag = diag.label(
                span,
                format!("{} depends on {}", services[from].name, services[to].name),
            );
        }
        diags.push(diag.help(
            "services cannot wait for each other in a loop: remove one of these dependencies",
        ));
    }
    start_order(services)
}

/// A closed path (first = last) through `component`, starting at its first service in file order.
fn cycle_in(services: &[ServiceSpec], component: &[ServiceId]) -> Vec<ServiceId> {
    let start = component.iter().copied().min().unwrap_or_default();
    // Breadth-first search for the shortest way back to `start` inside the component.
    let mut previous: Vec<Option<ServiceId>> = vec![None; services.len()];
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(id) = queue.pop_front() {
        for dep in &services[id].depends_on {
            let next = dep.service;
            if !component.contains(&next) {
                continue;
            }
            if next == start {
                let mut path = vec![id];
                let mut at = id;
                while let Some(p) = previous[at] {
                    path.push(p);
                    at = p;
                }
                path.reverse();
                path.push(start);
                return path;
            }
            if previous[next].is_none() && next != start {
                previous[next] = Some(id);
                queue.push_back(next);
            }
        }
    }
    vec![start, start]
}

fn entry_span(config: &Config, from: ServiceId, to: &str) -> Span {
    config.services.0[from]
        .depends_on
        .0
        .iter()
        .find(|d| d.service.value == to)
        .map_or_else(Span::default, |d| d.service.span)
}

/// Kahn's algorithm, always taking the ready service that comes first in the file.
fn start_order(services: &[ServiceSpec]) -> Vec<ServiceId> {
    let mut waiting: Vec<usize> = services.iter().map(|s| s.depends_on.len()).collect();
    let mut ready: BinaryHeap<Reverse<ServiceId>> = (0..services.len())
        .filter(|&i| waiting[i] == 0)
        .map(Reverse)
        .collect();
    let mut order = Vec::with_capacity(services.len());
    while let Some(Reverse(id)) = ready.pop() {
        order.push(id);
        for (dependent, service) in services.iter().enumerate() {
            let edges = service
                .depends_on
                .iter()
                .filter(|d| d.service == id)
                .count();
            if edges > 0 {
                waiting[dependent] -= edges;
                if waiting[dependent] == 0 {
                    ready.push(Reverse(dependent));
                }
            }
        }
    }
    order
}

/// The plan with only the services in one of `namespaces` (a service without a namespace is in
/// `default`), as process-compose's `-n` does: dependencies on the services left out are
/// dropped (the dependent starts without waiting for them), each with a warning on stderr. No
/// service in any of them is an error naming the namespaces there are.
pub(crate) fn only_namespaces(plan: &Plan, namespaces: &[String]) -> Result<Plan, LoadError> {
    let in_ns = |s: &ServiceSpec| {
        if s.namespaces.is_empty() {
            namespaces.iter().any(|n| n == "default")
        } else {
            s.namespaces.iter().any(|n| namespaces.contains(n))
        }
    };
    let kept: Vec<ServiceId> = (0..plan.services.len())
        .filter(|&id| in_ns(&plan.services[id]))
        .collect();
    if kept.is_empty() {
        let mut all: Vec<&str> = plan
            .services
            .iter()
            .flat_map(|s| {
                if s.namespaces.is_empty() {
                    vec!["default"]
                } else {
                    s.namespaces.iter().map(String::as_str).collect()
                }
            })
            .collect();
        all.sort_unstable();
        all.dedup();
        return Err(LoadError::single(
            Diag::error(format!(
                "no service is in namespace {}",
                namespaces.join(", ")
            ))
            .help(format!("namespaces in this config: {}", all.join(", "))),
        ));
    }
    let new_id = |old: ServiceId| kept.iter().position(|&k| k == old);
    let mut services = Vec::with_capacity(kept.len());
    for &old in &kept {
        let mut spec = plan.services[old].clone();
        spec.depends_on = spec
            .depends_on
            .iter()
            .filter_map(|d| {
                let Some(id) = new_id(d.service) else {
                    eprintln!(
                        "pk: warning: {} does not wait for {}, which is not in namespace {}",
                        spec.name,
                        plan.services[d.service].name,
                        namespaces.join(", ")
                    );
                    return None;
                };
                Some(super::Dependency { service: id, ..*d })
            })
            .collect();
        services.push(spec);
    }
    let order = start_order(&services);
    Ok(Plan {
        services,
        order,
        ..plan.clone()
    })
}

/// Which services to run (indexed by `ServiceId`). No names: every service that is not
/// disabled; names: those. Either way, plus everything they depend on, transitively (disabled
/// services included when pulled in).
pub fn select(plan: &Plan, names: &[String]) -> Result<Vec<bool>, LoadError> {
    let mut wanted = vec![false; plan.services.len()];
    let mut stack: Vec<ServiceId> = Vec::new();
    if names.is_empty() {
        stack.extend(
            plan.services
                .iter()
                .enumerate()
                .filter(|(_, s)| !s.disabled)
                .map(|(i, _)| i),
        );
    } else {
        let mut unknown = Vec::new();
        for name in names {
            let ids = plan.service_ids(name);
            if ids.is_empty() {
                unknown.push(name.as_str());
            }
            stack.extend(ids);
        }
        if !unknown.is_empty() {
            return Err(unknown_services(plan, &unknown));
        }
    }
    while let Some(id) = stack.pop() {
        if !std::mem::replace(&mut wanted[id], true) {
            stack.extend(plan.services[id].depends_on.iter().map(|d| d.service));
        }
    }
    Ok(wanted)
}

fn unknown_services(plan: &Plan, unknown: &[&str]) -> LoadError {
    let all: Vec<&str> = plan.services.iter().map(|s| s.name.as_str()).collect();
    let hints: Vec<String> = unknown
        .iter()
        .filter_map(|u| {
            did_you_mean(u, all.iter().copied()).map(|s| format!("did you mean `{s}` for `{u}`?"))
        })
        .collect();
    let quoted: Vec<String> = unknown.iter().map(|u| format!("`{u}`")).collect();
    let message = if unknown.len() == 1 {
        format!(
            "no service named {} in {}",
            quoted[0],
            plan.config_path.display()
        )
    } else {
        format!(
            "no services named {} in {}",
            quoted.join(", "),
            plan.config_path.display()
        )
    };
    let help = if hints.is_empty() {
        format!("services: {}", all.join(", "))
    } else {
        hints.join(" ")
    };
    LoadError::single(Diag::error(message).help(help))
}

fn dependency_note(plan: &Plan, dep: &super::Dependency) -> String {
    let mut notes = vec![dep.condition.as_str()];
    if !dep.required {
        notes.push("optional");
    }
    if dep.restart {
        notes.push("restart");
    }
    format!(
        "{} ({})",
        label(&plan.services[dep.service]),
        notes.join(", ")
    )
}

/// A declared service in the graph: `web`, or `web ×3` for its copies (shown once).
fn label(service: &ServiceSpec) -> String {
    if service.replicas > 1 {
        format!("{} ×{}", service.group, service.replicas)
    } else {
        service.group.clone()
    }
}

/// The services shown in the graph: one per declared service (its first copy), in start order.
fn shown(plan: &Plan) -> impl Iterator<Item = &ServiceSpec> {
    plan.order
        .iter()
        .map(|&id| &plan.services[id])
        .filter(|s| s.replica == 0)
}

/// Dependencies of `service` with one entry per declared service (a dependency on a replicated
/// service is one per copy in the plan).
fn declared_deps<'p>(plan: &'p Plan, service: &'p ServiceSpec) -> Vec<&'p super::Dependency> {
    let mut out: Vec<&super::Dependency> = Vec::new();
    for dep in &service.depends_on {
        let group = &plan.services[dep.service].group;
        if !out.iter().any(|d| &plan.services[d.service].group == group) {
            out.push(dep);
        }
    }
    out
}

/// The DAG as readable text (services in start order with what each waits for), or as a
/// Graphviz `digraph` when `dot`.
pub fn render_graph(plan: &Plan, dot: bool) -> String {
    if dot {
        render_dot(plan)
    } else {
        render_text(plan)
    }
}

fn render_text(plan: &Plan) -> String {
    let width = shown(plan)
        .map(|s| label(s).chars().count())
        .max()
        .unwrap_or(0);
    let declared = shown(plan).count();
    let copies = if declared == plan.services.len() {
        String::new()
    } else {
        format!(" ({} with replicas)", plan.services.len())
    };
    let mut out = format!(
        "{}: {declared} services{copies} in start order\n",
        plan.name
    );
    for (position, service) in shown(plan).enumerate() {
        let mut line = format!("{:>3}. {:<width$}", position + 1, label(service));
        if !service.depends_on.is_empty() {
            let deps: Vec<String> = declared_deps(plan, service)
                .into_iter()
                .map(|d| dependency_note(plan, d))
                .collect();
            let _ = write!(line, "  ← {}", deps.join(", "));
        }
        let probes: Vec<String> = [("ready", &service.ready), ("alive", &service.alive)]
            .into_iter()
            .filter_map(|(what, p)| {
                p.as_ref()
                    .map(|p| format!("{what}: {}", p.check.describe()))
            })
            .collect();
        if !probes.is_empty() {
            let _ = write!(line, "  [{}]", probes.join("; "));
        }
        if let Some(limit) = service.timeout {
            let _ = write!(line, "  [timeout {}]", fmt_duration(limit));
        }
        if service.disabled {
            line.push_str("  [disabled]");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn render_dot(plan: &Plan) -> String {
    let mut out = format!(
        "digraph {} {{\n  rankdir=LR;\n  node [shape=box];\n",
        quote(&plan.name)
    );
    for service in shown(plan) {
        let mut attrs = Vec::new();
        let mut text = label(service);
        if let Some(limit) = service.timeout {
            text = format!("{text} (timeout {})", fmt_duration(limit));
        }
        if text != service.group {
            attrs.push(format!("label={}", quote(&text)));
        }
        if service.disabled {
            attrs.push("style=dashed".to_owned());
        }
        let attrs = if attrs.is_empty() {
            String::new()
        } else {
            format!(" [{}]", attrs.join(", "))
        };
        let _ = writeln!(out, "  {}{attrs};", quote(&service.group));
    }
    for service in shown(plan) {
        for dep in declared_deps(plan, service) {
            let mut attrs = Vec::new();
            if dep.condition != Condition::Started {
                attrs.push(format!("label={}", quote(dep.condition.as_str())));
            }
            if !dep.required {
                attrs.push("style=dashed".to_owned());
            }
            let attrs = if attrs.is_empty() {
                String::new()
            } else {
                format!(" [{}]", attrs.join(", "))
            };
            let _ = writeln!(
                out,
                "  {} -> {}{attrs};",
                quote(&service.group),
                quote(&plan.services[dep.service].group)
            );
        }
    }
    out.push_str("}\n");
    out
}
