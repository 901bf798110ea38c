//! The checked-in JSON Schema must match the one generated from the config types.

#[test]
fn checked_in_schema_is_current() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/pk.schema.json");
    let generated = pk::config::schema();
    if std::env::var_os("PK_UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "schemas/pk.schema.json is stale; regenerate it with\n    \
         PK_UPDATE_SCHEMA=1 cargo test --test config_schema\n(or `pk schema > schemas/pk.schema.json`)"
    );
}

#[test]
fn schema_is_draft07_and_describes_services() {
    let schema: serde_json::Value = serde_json::from_str(&pk::config::schema()).unwrap();
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    assert_eq!(schema["title"], "pk.yaml");
    assert_eq!(schema["additionalProperties"], false);
    assert!(schema["patternProperties"]["^x-"].is_object());
    assert_eq!(schema["required"], serde_json::json!(["services"]));
    let service = &schema["definitions"]["Service"]["properties"];
    for key in [
        "command",
        "pipeline",
        "depends_on",
        "ready",
        "alive",
        "restart",
        "shutdown",
        "watch",
        "disabled",
    ] {
        assert!(service[key].is_object(), "Service schema lacks {key}");
    }
}

/// `node` with `$ref`s resolved against the schema's definitions.
fn resolve<'a>(
    schema: &'a serde_json::Value,
    node: &'a serde_json::Value,
) -> &'a serde_json::Value {
    match node.get("$ref").and_then(serde_json::Value::as_str) {
        Some(r) => {
            let name = r.rsplit('/').next().unwrap();
            resolve(schema, &schema["definitions"][name])
        }
        None => node,
    }
}

/// `node` and every `allOf`/`anyOf`/`oneOf` branch below it, resolved.
fn branches<'a>(
    schema: &'a serde_json::Value,
    node: &'a serde_json::Value,
) -> Vec<&'a serde_json::Value> {
    let node = resolve(schema, node);
    let mut all = vec![node];
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(list) = node.get(key).and_then(serde_json::Value::as_array) {
            for branch in list {
                all.extend(branches(schema, branch));
            }
        }
    }
    all
}

/// The schema of `path` (`services.*.ready`; `*` is any map key).
fn at<'a>(schema: &'a serde_json::Value, path: &str) -> Vec<&'a serde_json::Value> {
    let mut nodes = vec![schema];
    for seg in path.split('.').filter(|s| !s.is_empty()) {
        nodes = nodes
            .into_iter()
            .flat_map(|n| branches(schema, n))
            .filter_map(|n| {
                if seg == "*" {
                    n.get("additionalProperties").filter(|a| a.is_object())
                } else {
                    n.get("properties").and_then(|p| p.get(seg))
                }
            })
            .collect();
        assert!(!nodes.is_empty(), "the schema has no `{path}`");
    }
    nodes
}

#[test]
fn the_reader_and_the_schema_accept_the_same_keys() {
    let schema: serde_json::Value = serde_json::from_str(&pk::config::schema()).unwrap();
    for (path, keys) in pk::config::read::ACCEPTED_KEYS {
        let mut described = std::collections::BTreeSet::new();
        for node in at(&schema, path) {
            for branch in branches(&schema, node) {
                if let Some(props) = branch.get("properties").and_then(|p| p.as_object()) {
                    described.extend(props.keys().cloned());
                }
            }
        }
        let accepted: std::collections::BTreeSet<String> =
            keys.iter().map(|&k| k.to_owned()).collect();
        assert_eq!(
            accepted, described,
            "`{path}`: the reader accepts the left, the schema describes the right"
        );
    }
}

#[test]
fn every_example_passes_pk_check() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&root).unwrap() {
        let config = entry.unwrap().path().join("pk.yaml");
        if !config.is_file() {
            continue;
        }
        seen += 1;
        if let Err(e) = pk::plan::load(std::slice::from_ref(&config), &root) {
            panic!("{}:\n{}", config.display(), e.render(false));
        }
    }
    assert!(seen >= 2, "no examples found in {}", root.display());
}
