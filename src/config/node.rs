//! YAML text → a generic tree of located nodes (the only place that touches serde-saphyr).
//!
//! serde-saphyr resolves anchors, aliases and merge keys and gives each node its location via
//! `Spanned`; we keep the untyped tree so that the typed pass can report every error at once.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Location, Spanned};

use super::diag::{Diag, Span};

#[derive(Debug, Clone)]
pub struct Node {
    pub value: Value,
    /// Where the value is defined (for aliases and merges: the anchored definition).
    pub span: Span,
    /// The scalar exactly as written (quotes included); empty for collections.
    pub raw: String,
}

#[derive(Debug, Clone)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// "a string", "a list", … for "expected X, found Y" messages.
    pub(crate) fn kind(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) | Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a map",
        }
    }

    /// The text of a scalar as a key or plain word: strings as parsed, other scalars as written
    /// (`n`, `on`, `0755` stay what the user typed).
    pub(crate) fn scalar_text(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            Value::Null | Value::Bool(_) | Value::Int(_) | Value::Float(_) => Some(&self.raw),
            Value::Seq(_) | Value::Map(_) => None,
        }
    }

    /// The tree as JSON, as a JSON-schema validator (or an editor) sees the document: scalars
    /// by their YAML type, map keys as their text.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(n) => i64::try_from(*n)
                .map(J::from)
                .or_else(|_| u64::try_from(*n).map(J::from))
                .ok()
                .or_else(|| n.to_string().parse::<f64>().ok().map(J::from))
                .unwrap_or(J::Null),
            // `.nan` and `.inf` have no JSON number: their text stands in.
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map_or_else(|| J::String(self.raw.clone()), J::Number),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.scalar_text().unwrap_or_default().to_owned(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// Moves every span of the tree into source number `file`.
    pub(crate) fn set_file(&mut self, file: u16) {
        self.span = self.span.in_file(file);
        match &mut self.value {
            Value::Seq(items) => items.iter_mut().for_each(|n| n.set_file(file)),
            Value::Map(entries) => entries.iter_mut().for_each(|(k, v)| {
                k.set_file(file);
                v.set_file(file);
            }),
            _ => {}
        }
    }

    /// The value of `key` in a map node.
    pub(crate) fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.scalar_text() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    fn fill_raw(&mut self, source: &str) {
        match &mut self.value {
            Value::Seq(items) => items.iter_mut().for_each(|n| n.fill_raw(source)),
            Value::Map(entries) => entries.iter_mut().for_each(|(k, v)| {
                k.fill_raw(source);
                v.fill_raw(source);
            }),
            _ => {
                let text = source.get(self.span.offset..self.span.offset + self.span.len);
                text.unwrap_or("").clone_into(&mut self.raw);
            }
        }
    }
}

/// Parses YAML into a node tree; a syntax error is one located diagnostic.
pub fn parse(source: &str) -> Result<Node, Diag> {
    parse_file(source, 0)
}

/// `parse` for source number `file` of a load: every span (and a syntax error's) points there.
pub(crate) fn parse_file(source: &str, file: u16) -> Result<Node, Diag> {
    let mut parsed = parse_first(source);
    match &mut parsed {
        Ok(node) => node.set_file(file),
        Err(diag) => diag
            .labels
            .iter_mut()
            .for_each(|(span, _)| *span = span.in_file(file)),
    }
    parsed
}

fn parse_first(source: &str) -> Result<Node, Diag> {
    let options = serde_saphyr::options! { with_snippet: false };
    match serde_saphyr::from_str_with_options::<Option<Node>>(source, options) {
        Ok(Some(mut node)) => {
            node.fill_raw(source);
            Ok(node)
        }
        Ok(None) => Err(Diag::error("the config file is empty")
            .label(Span::new(0, 0), "no YAML document in this file")
            .help("a pk.yaml needs at least a `services:` map, e.g.\nservices:\n  web:\n    command: python3 -m http.server")),
        Err(err) => Err(syntax_error(source, &err)),
    }
}

fn syntax_error(source: &str, err: &serde_saphyr::Error) -> Diag {
    let text = err.to_string();
    let message = text
        .rfind(" at line ")
        .map_or(text.as_str(), |i| &text[..i]);
    let message = message
        .split(", set DuplicateKeyPolicy")
        .next()
        .unwrap_or(message);
    let mut diag = Diag::error(format!("invalid YAML: {message}"));
    if let Some(loc) = err.location() {
        diag = diag.label(span_of(source, loc), message.to_owned());
    }
    diag
}

/// Byte span of a location (syntax errors only carry character offsets).
fn span_of(source: &str, loc: Location) -> Span {
    let span = loc.span();
    if let (Some(off), Some(len)) = (span.byte_offset(), span.byte_len()) {
        return Span::new(to_usize(off), to_usize(len));
    }
    let start = to_usize(span.offset());
    let byte_at = |chars: usize| {
        source
            .char_indices()
            .nth(chars)
            .map_or(source.len(), |(i, _)| i)
    };
    let begin = byte_at(start);
    let end = byte_at(start + to_usize(span.len()));
    Span::new(begin, end - begin)
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<Value>::deserialize(deserializer)?;
        let span = spanned.defined.span();
        let span = match (span.byte_offset(), span.byte_len()) {
            (Some(off), Some(len)) => Span::new(to_usize(off), to_usize(len)),
            _ => Span::default(),
        };
        Ok(Node {
            value: spanned.value,
            span,
            raw: String::new(),
        })
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::Int(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::Int(n.into()))
    }

    fn visit_i128<E>(self, n: i128) -> Result<Value, E> {
        Ok(Value::Int(n))
    }

    fn visit_u128<E>(self, n: u128) -> Result<Value, E> {
        Ok(i128::try_from(n).map_or(Value::Float(0.0), Value::Int))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Value, E> {
        Ok(Value::Float(n))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::Str(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::Str(s))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Value::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Node>()? {
            let value = map.next_value::<Node>()?;
            entries.push((key, value));
        }
        Ok(Value::Map(entries))
    }
}
