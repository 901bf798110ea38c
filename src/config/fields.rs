//! A map node read as fields: what every config reader (pk.yaml's, process-compose's) needs
//! before it gives keys their meaning.
//!
//! Invariants: a node that is not a map is one located type error and no fields; a key that is
//! not a plain scalar is one located error and is skipped; every other key is either a known
//! field (in file order) or handed back as unknown, for the reader to report in its own words
//! (pk.yaml: an error; process-compose: a warning). `x-*` keys are neither when extensions are
//! allowed.

use super::diag::{Diag, Span};
use super::node::{Node, Value};

/// A map's entries by key, and the keys that are not known there.
pub(crate) struct Fields<'n> {
    entries: Vec<(&'n str, &'n Node, &'n Node)>,
    /// Keys not in the known list (and not `x-*` where extensions are allowed), with their node.
    pub unknown: Vec<(&'n str, &'n Node)>,
    /// Known keys the reader suggested for unknown ones (it then does not also report them
    /// missing).
    pub suggested: Vec<String>,
}

impl<'n> Fields<'n> {
    /// Splits the map `node` at `path` into known fields and unknown keys; `None` (and a
    /// located error in `diags`) when it is not a map.
    pub(crate) fn of(
        node: &'n Node,
        path: &str,
        known: &[&str],
        extensions: bool,
        diags: &mut Vec<Diag>,
    ) -> Option<Fields<'n>> {
        let Value::Map(entries) = &node.value else {
            diags.push(type_error(node, path, "a map"));
            return None;
        };
        let mut fields = Fields {
            entries: Vec::new(),
            unknown: Vec::new(),
            suggested: Vec::new(),
        };
        for (key, value) in entries {
            let Some(name) = key.scalar_text() else {
                diags.push(
                    Diag::error(format!("a key in `{path}` is {}", key.kind()))
                        .label(key.span, "keys are plain words"),
                );
                continue;
            };
            if known.contains(&name) {
                fields.entries.push((name, key, value));
            } else if !(extensions && name.starts_with("x-")) {
                fields.unknown.push((name, key));
            }
        }
        Some(fields)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&'n str, &'n Node, &'n Node)> + '_ {
        self.entries.iter().copied()
    }

    pub(crate) fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|(_, _, v)| *v)
    }

    pub(crate) fn key_span(&self, key: &str) -> Option<Span> {
        self.entries
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|(_, k, _)| k.span)
    }
}

/// "`path` must be `expected`, not …", located at `node`.
pub(crate) fn type_error(node: &Node, path: &str, expected: &str) -> Diag {
    let found = node.kind();
    Diag::error(format!("`{path}` must be {expected}, not {found}"))
        .label(node.span, format!("expected {expected}"))
}

/// The path of `key` inside the map at `path` (`""` is the top level).
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// "at the top level" or "in `path`", for messages about a key.
pub(crate) fn place(path: &str) -> String {
    if path.is_empty() {
        "at the top level".to_owned()
    } else {
        format!("in `{path}`")
    }
}
