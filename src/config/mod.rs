//! pk.yaml → typed `Config`: file discovery, interpolation, env files, located errors.
//!
//! Design: two passes, so that one run reports every problem. serde-saphyr stops at the first
//! deserialisation error, so it is only asked for a generic tree of located nodes
//! (`node::parse`, via its `Spanned` wrapper; it resolves anchors, aliases and `<<` merge keys
//! and rejects duplicate keys). Only a YAML syntax error ends that pass. `read::Reader` then
//! walks the tree by hand into the typed `Config`, interpolating string values and pushing a
//! located `Diag` for each problem instead of stopping. `plan::build` adds the cross-reference
//! checks (`depends_on` targets, cycles, `healthy` without a probe) to the same list.

pub(crate) mod compose;
pub mod diag;
pub(crate) mod discover;
pub(crate) mod emit;
pub(crate) mod envfile;
pub(crate) mod fields;
pub(crate) mod import;
pub mod interpolate;
pub mod load;
pub(crate) mod merge;
pub(crate) mod model;
pub mod node;
pub(crate) mod procfile;
pub mod read;
pub(crate) mod source;
pub mod values;

pub(crate) use model::Config;

/// The JSON Schema (draft-07) of pk.yaml, pretty-printed.
pub fn schema() -> String {
    let generator = schemars::generate::SchemaSettings::draft07().into_generator();
    let mut schema = generator.into_root_schema_for::<Config>().to_value();
    drop_option_nulls(&mut schema);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

/// schemars lets every `Option` field be `null` (and gives a field with a custom schema a
/// `null` default); pk rejects `key: null` (omit the key instead).
fn drop_option_nulls(value: &mut serde_json::Value) {
    use serde_json::Value;
    let null = serde_json::json!({ "type": "null" });
    if let Value::Object(map) = value {
        if map.get("default") == Some(&Value::Null) {
            map.remove("default");
        }
        if let Some(Value::Array(types)) = map.get("type") {
            if let [a, b] = types.as_slice() {
                if b == "null" {
                    let single = a.clone();
                    map.insert("type".into(), single);
                }
            }
        }
        if let Some(Value::Array(options)) = map.get("anyOf") {
            if let [a, b] = options.as_slice() {
                if *b == null {
                    let single = a.clone();
                    map.remove("anyOf");
                    map.insert("allOf".into(), Value::Array(vec![single]));
                }
            }
        }
        map.values_mut().for_each(drop_option_nulls);
    } else if let Value::Array(items) = value {
        items.iter_mut().for_each(drop_option_nulls);
    }
}
