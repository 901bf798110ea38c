//! Several pk.yaml files (`-f a -f b`) → one node tree, by docker compose's override rules.
//!
//! Rules, applied file by file in command-line order (later files win):
//! - maps merge by key, recursively (`services`, a service, `env`, `shutdown`, `watch`, …);
//! - `depends_on` merges by service name; a list is read as a map of names first;
//! - a probe (`ready`, `alive`) that names a check kind (`exec`, `http`, `tcp`, `log`) replaces
//!   the earlier file's check, and merges the other keys;
//! - scalars and lists (`command`, `pipeline`, `env_file`, `watch.paths`, …) replace.
//!
//! The merge works on located nodes and keeps each node's span, so every later diagnostic still
//! points into the file that wrote the value (spans carry their file).

use super::node::{Node, Value};

/// Check kinds of a probe: naming one in a later file replaces the earlier check.
const PROBE_KINDS: &[&str] = &["exec", "http", "tcp", "log", "status"];

/// `over` merged onto `base` (both whole files).
pub(crate) fn merge(base: Node, over: Node) -> Node {
    merge_at(base, over, &[])
}

fn merge_at(base: Node, over: Node, path: &[&str]) -> Node {
    let is_depends_on = matches!(path, ["services", _, "depends_on"]);
    let (base, over) = if is_depends_on {
        (depends_on_as_map(base), depends_on_as_map(over))
    } else {
        (base, over)
    };
    let is_probe = matches!(path, ["services", _, "ready" | "alive"]);
    match (base.value, over.value) {
        (Value::Map(mut entries), Value::Map(over_entries)) => {
            if is_probe
                && over_entries
                    .iter()
                    .any(|(k, _)| k.scalar_text().is_some_and(|k| PROBE_KINDS.contains(&k)))
            {
                entries.retain(|(k, _)| !k.scalar_text().is_some_and(|k| PROBE_KINDS.contains(&k)));
            }
            for (key, value) in over_entries {
                let name = key.scalar_text().unwrap_or_default().to_owned();
                match entries
                    .iter()
                    .position(|(k, _)| k.scalar_text() == Some(name.as_str()))
                {
                    Some(i) => {
                        // The first file's key: its place (service order) and its span.
                        let (old_key, old_value) = entries.remove(i);
                        let mut deeper = path.to_vec();
                        deeper.push(&name);
                        let merged = merge_at(old_value, value, &deeper);
                        entries.insert(i, (old_key, merged));
                    }
                    None => entries.push((key, value)),
                }
            }
            Node {
                value: Value::Map(entries),
                span: base.span,
                raw: base.raw,
            }
        }
        (_, value) => Node {
            value,
            span: over.span,
            raw: over.raw,
        },
    }
}

/// `depends_on: [a, b]` → `{a: null, b: null}` (null means the default condition), located at
/// the list items; a map or anything else is returned as it is (the reader reports bad types).
fn depends_on_as_map(node: Node) -> Node {
    match node.value {
        Value::Seq(items) => {
            let entries = items
                .into_iter()
                .map(|item| {
                    let null = Node {
                        value: Value::Null,
                        span: item.span,
                        raw: String::new(),
                    };
                    (item, null)
                })
                .collect();
            Node {
                value: Value::Map(entries),
                span: node.span,
                raw: node.raw,
            }
        }
        value => Node { value, ..node },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::node::parse;

    fn merged(a: &str, b: &str) -> Node {
        merge(parse(a).unwrap(), parse(b).unwrap())
    }

    fn get<'n>(node: &'n Node, path: &[&str]) -> &'n Node {
        path.iter().fold(node, |n, key| match &n.value {
            Value::Map(entries) => {
                &entries
                    .iter()
                    .find(|(k, _)| k.scalar_text() == Some(*key))
                    .unwrap_or_else(|| panic!("no {key}"))
                    .1
            }
            _ => panic!("not a map at {key}"),
        })
    }

    fn keys(node: &Node) -> Vec<&str> {
        match &node.value {
            Value::Map(entries) => entries
                .iter()
                .filter_map(|(k, _)| k.scalar_text())
                .collect(),
            _ => panic!("not a map"),
        }
    }

    #[test]
    fn maps_merge_scalars_and_lists_replace() {
        let a = "services:\n  web:\n    command: a\n    env: {A: '1', B: '2'}\n    env_file: [x, y]\n  db:\n    command: d\n";
        let b = "services:\n  web:\n    command: b\n    env: {B: '3', C: null}\n    env_file: [z]\n  new:\n    command: n\n";
        let m = merged(a, b);
        assert_eq!(keys(get(&m, &["services"])), ["web", "db", "new"]);
        assert_eq!(
            get(&m, &["services", "web", "command"]).scalar_text(),
            Some("b")
        );
        let env = get(&m, &["services", "web", "env"]);
        assert_eq!(keys(env), ["A", "B", "C"]);
        assert_eq!(get(env, &["B"]).scalar_text(), Some("3"));
        assert!(matches!(get(env, &["C"]).value, Value::Null));
        let Value::Seq(files) = &get(&m, &["services", "web", "env_file"]).value else {
            panic!("env_file is not a list");
        };
        assert_eq!(files.len(), 1);
    }

    #[test]
    fn depends_on_merges_by_name_across_list_and_map() {
        let a = "services:\n  web:\n    command: a\n    depends_on: [db, cache]\n";
        let b = "services:\n  web:\n    depends_on:\n      db: { condition: healthy }\n      queue: started\n";
        let m = merged(a, b);
        let deps = get(&m, &["services", "web", "depends_on"]);
        assert_eq!(keys(deps), ["db", "cache", "queue"]);
        assert_eq!(
            get(deps, &["db", "condition"]).scalar_text(),
            Some("healthy")
        );
        assert!(matches!(get(deps, &["cache"]).value, Value::Null));
    }

    #[test]
    fn a_probe_kind_replaces_the_earlier_check() {
        let a =
            "services:\n  web:\n    command: a\n    ready: { tcp: '127.0.0.1:1', retries: 5 }\n";
        let b = "services:\n  web:\n    ready: { http: 'http://127.0.0.1:1/' }\n";
        let m = merged(a, b);
        assert_eq!(
            keys(get(&m, &["services", "web", "ready"])),
            ["retries", "http"]
        );
    }
}
