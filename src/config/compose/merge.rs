//! process-compose's merge rules, applied to located node trees (so every merged value keeps
//! the span of the file it came from).
//!
//! Rules (process-compose uses mergo with override + append, `PRIOR_ART` Part B §1.1): maps merge
//! by key; a scalar of the later file replaces the earlier one unless it is a zero value
//! (`false`, `0`, `""`, null: mergo skips those, which is why `disabled: false` cannot re-enable
//! a process and `is_disabled: "false"` exists); `environment` lists merge by variable name;
//! `namespace` and `watch.paths` are replaced; every other list is appended.

use super::super::node::{Node, Value};

/// Merges `over` into `base`; `key` is the key `base` is the value of.
pub(super) fn merge(base: &mut Node, over: Node, key: &str) {
    let Node {
        value: over_value,
        span: over_span,
        raw: over_raw,
    } = over;
    match (&mut base.value, over_value) {
        (Value::Map(entries), Value::Map(over_entries)) => {
            for (k, v) in over_entries {
                let name = k.scalar_text().unwrap_or_default().to_owned();
                match entries
                    .iter_mut()
                    .find(|(bk, _)| bk.scalar_text() == Some(name.as_str()))
                {
                    Some((_, bv)) => merge(bv, v, &name),
                    None => entries.push((k, v)),
                }
            }
        }
        (Value::Seq(items), Value::Seq(over_items)) if key == "environment" => {
            for item in over_items {
                let name = env_name(&item).map(str::to_owned);
                let existing = name
                    .as_deref()
                    .and_then(|n| items.iter_mut().find(|i| env_name(i) == Some(n)));
                match existing {
                    Some(slot) => *slot = item,
                    None => items.push(item),
                }
            }
        }
        (Value::Seq(items), Value::Seq(over_items)) if key != "namespace" && key != "paths" => {
            items.extend(over_items);
        }
        (_, value) if is_zero(&value) => {}
        (_, value) => {
            *base = Node {
                value,
                span: over_span,
                raw: over_raw,
            };
        }
    }
}

/// `K` of a `K=V` list entry.
fn env_name(node: &Node) -> Option<&str> {
    match &node.value {
        Value::Str(s) => Some(s.split_once('=').map_or(s.as_str(), |(k, _)| k)),
        _ => None,
    }
}

fn is_zero(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Int(n) => *n == 0,
        Value::Float(f) => *f == 0.0,
        Value::Str(s) => s.is_empty(),
        Value::Seq(_) | Value::Map(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::node::parse;

    fn merged(a: &str, b: &str) -> Node {
        let mut base = parse(a).unwrap();
        merge(&mut base, parse(b).unwrap(), "");
        base
    }

    fn text(node: &Node, path: &[&str]) -> String {
        let mut n = node;
        for key in path {
            n = n.get(key).unwrap();
        }
        match &n.value {
            Value::Seq(items) => items
                .iter()
                .map(|i| i.scalar_text().unwrap_or_default().to_owned())
                .collect::<Vec<_>>()
                .join(","),
            _ => n.scalar_text().unwrap_or_default().to_owned(),
        }
    }

    #[test]
    fn process_compose_rules() {
        let a = "processes:\n  p:\n    command: a\n    disabled: true\n    environment: [A=1, B=1]\n    entrypoint: [x]\n    namespace: [n1]\n    depends_on: { d: { condition: process_started } }\n";
        let b = "processes:\n  p:\n    command: b\n    disabled: false\n    environment: [B=2, C=2]\n    entrypoint: [y]\n    namespace: [n2]\n    depends_on: { e: { condition: process_healthy } }\n  q:\n    command: q\n";
        let m = merged(a, b);
        assert_eq!(text(&m, &["processes", "p", "command"]), "b");
        assert_eq!(text(&m, &["processes", "p", "disabled"]), "true");
        assert_eq!(text(&m, &["processes", "p", "environment"]), "A=1,B=2,C=2");
        assert_eq!(text(&m, &["processes", "p", "entrypoint"]), "x,y");
        assert_eq!(text(&m, &["processes", "p", "namespace"]), "n2");
        assert!(
            m.get("processes")
                .unwrap()
                .get("p")
                .unwrap()
                .get("depends_on")
                .unwrap()
                .get("d")
                .is_some()
        );
        assert_eq!(text(&m, &["processes", "q", "command"]), "q");
    }
}
