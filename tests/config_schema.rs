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
