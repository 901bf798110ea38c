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

/// The pk.yaml documents of the agreement test: `@` is where a value goes, with a value that
/// the key accepts and values of the key's own kind that it may or may not accept.
const AGREEMENT: &[(&str, &str, &[&str])] = &[
    ("name: @\nservices: {a: {command: run}}", "demo", &[]),
    (
        "grace: @\nservices: {a: {command: run}}",
        "1s",
        &["'5'", "'-1s'"],
    ),
    ("log_dir: @\nservices: {a: {command: run}}", "logs", &[]),
    (
        "env: @\nservices: {a: {command: run}}",
        "x",
        &["{V: 1}", "{V: null}", "{V: [1]}", "{'': x}"],
    ),
    ("env: {V: @}\nservices: {a: {command: run}}", "x", &[]),
    (
        "env_file: @\nservices: {a: {command: run}}",
        ".env",
        &["[.env, x]"],
    ),
    (
        "services: @",
        "x",
        &["{a: {command: run}}", "{a: null}", "{'-a': {command: run}}"],
    ),
    (
        "services:\n  a:\n    command: @",
        "run",
        &["[run, 5]", "'  '", "[run, [x]]"],
    ),
    (
        "services:\n  a:\n    pipeline: @",
        "run",
        &[
            "[[a, b], [c]]",
            "[[a], b]",
            "[[], [c]]",
            "[[a]]",
            "[[a, 5], [true]]",
        ],
    ),
    (
        "services:\n  a:\n    command: run\n    pipeline: @",
        "run",
        &["[[a], [c]]"],
    ),
    (
        "services:\n  a:\n    command: run\n    working_dir: @",
        "dir",
        &[],
    ),
    (
        "services:\n  a:\n    command: run\n    log_file: @",
        "out.log",
        &[],
    ),
    (
        "services:\n  a:\n    command: run\n    env: {V: @}",
        "x",
        &[],
    ),
    (
        "services:\n  a:\n    command: run\n    env_file: @",
        "x.env",
        &["[a.env, b.env]"],
    ),
    (
        "services:\n  a:\n    command: run\n    depends_on: @",
        "b",
        &[
            "[b, c]",
            "[b, b]",
            "{b: healthy}",
            "{b: null}",
            "{b: {condition: healthy}}",
            "[5]",
        ],
    ),
    (
        "services:\n  a:\n    command: run\n    depends_on:\n      b: @",
        "healthy",
        &[
            "service_healthy",
            "process_completed_successfully",
            "{condition: healthy, required: false}",
            "{required: true}",
        ],
    ),
    (
        "services:\n  a:\n    command: run\n    depends_on:\n      b:\n        condition: @",
        "healthy",
        &[],
    ),
    (
        "services:\n  a:\n    command: run\n    depends_on:\n      b:\n        required: @",
        "x",
        &[],
    ),
    (
        "services:\n  a:\n    command: run\n    depends_on:\n      b:\n        restart: @",
        "x",
        &[],
    ),
    (
        "services:\n  a:\n    command: run\n    ready: @",
        "x",
        &[
            "{exec: x}",
            "{http: 'http://localhost/'}",
            "{exec: x, tcp: 'h:1'}",
            "{interval: 1s}",
        ],
    ),
    (
        "services:\n  a:\n    command: run\n    alive: @",
        "x",
        &["{tcp: 'h:1'}", "{exec: x, deadline: 1s}"],
    ),
    (
        "services:\n  a:\n    command: run\n    ready:\n      exec: @",
        "check",
        &["[check, 1]"],
    ),
    (
        "services:\n  a:\n    command: run\n    ready:\n      http: @",
        "http://localhost:8080/health",
        &["'http://x:99999/'", "'https://x/'"],
    ),
    (
        "services:\n  a:\n    command: run\n    ready:\n      tcp: @",
        "localhost:5432",
        &["localhost", "'h:0'"],
    ),
    // Regex syntax is not the schema's: only Rust's regex crate knows what it accepts.
    (
        "services:\n  a:\n    command: run\n    alive:\n      log: @",
        "ready",
        &[],
    ),
    (
        "services:\n  a:\n    command: run\n    ready:\n      exec: x\n      initial_delay: @",
        "1s",
        &[],
    ),
    (
        "services:\n  a:\n    command: run\n    alive:\n      exec: x\n      interval: @",
        "1s",
        &[],
    ),
    (
        "services:\n  a:\n    command: run\n    ready:\n      exec: x\n      timeout: @",
        "1s",
        &[],
    ),
    (
        "services:\n  a:\n    command: run\n    ready:\n      exec: x\n      deadline: @",
        "1s",
        &[],
    ),
    (
        "services:\n  a:\n    command: run\n    alive:\n      exec: x\n      deadline: @",
        "1s",
        &[],
    ),
    (
        "services:\n  a:\n    command: run\n    ready:\n      exec: x\n      retries: @",
        "x",
        &["3", "4294967296"],
    ),
    (
        "services:\n  a:\n    command: run\n    ready:\n      http: 'http://h/'\n      status: @",
        "x",
        &["[200, 301]", "[99]", "[600]", "['200']"],
    ),
    (
        "services:\n  a:\n    command: run\n    ready:\n      exec: x\n      status: @",
        "x",
        &["[200]"],
    ),
    (
        "services:\n  a:\n    command: run\n    ready:\n      http: 'http://h/'\n      headers: @",
        "{X-Token: x}",
        &[
            "{'X Token': a}",
            "{'': a}",
            "{X: 5}",
            "{X: true}",
            "{X: null}",
            "{X: [a]}",
            "{X: \"a\\nb\"}",
            "{X: \"a\\tb\"}",
        ],
    ),
    (
        "services:\n  a:\n    command: run\n    ready:\n      exec: x\n      headers: @",
        "x",
        &["{X: a}"],
    ),
    (
        "services:\n  a:\n    command: run\n    restart: @",
        "always",
        &[
            "on-failure",
            "no",
            "'no'",
            "{policy: always, max: 3}",
            "{max: 3}",
        ],
    ),
    (
        "services:\n  a:\n    command: run\n    restart:\n      policy: @",
        "on-failure",
        &["no"],
    ),
    (
        "services:\n  a:\n    command: run\n    restart:\n      policy: always\n      max: @",
        "x",
        &["3", "-1"],
    ),
    (
        "services:\n  a:\n    command: run\n    restart:\n      policy: always\n      window: @",
        "1m",
        &[],
    ),
    (
        "services:\n  a:\n    command: run\n    restart:\n      policy: always\n      backoff: @",
        "x",
        &["{initial: 1s, max: 10s}"],
    ),
    (
        "services:\n  a:\n    command: run\n    restart:\n      policy: always\n      backoff:\n        initial: @",
        "1s",
        &[],
    ),
    (
        "services:\n  a:\n    command: run\n    restart:\n      policy: always\n      backoff:\n        max: @",
        "1s",
        &[],
    ),
    (
        "services:\n  a:\n    command: run\n    shutdown: @",
        "x",
        &["{signal: INT, grace: 1s, command: stop}"],
    ),
    (
        "services:\n  a:\n    command: run\n    shutdown:\n      signal: @",
        "TERM",
        &["SIGINT", "hup", "SigUsr1", "' KILL '", "SIGFOO", "15"],
    ),
    (
        "services:\n  a:\n    command: run\n    shutdown:\n      grace: @",
        "500ms",
        &[],
    ),
    (
        "services:\n  a:\n    command: run\n    shutdown:\n      command: @",
        "stop",
        &[],
    ),
    (
        "services:\n  a:\n    command: run\n    disabled: @",
        "x",
        &[],
    ),
    (
        "services:\n  a:\n    command: run\n    exit_on_end: @",
        "x",
        &[],
    ),
    ("services:\n  a:\n    command: run\n    tty: @", "x", &[]),
    (
        "services:\n  a:\n    command: run\n    timeout: @",
        "1s",
        &[],
    ),
    (
        "services:\n  a:\n    command: run\n    replicas: @",
        "x",
        &["3", "1000", "1001"],
    ),
    (
        "services:\n  a:\n    command: run\n    watch: @",
        "x",
        &["{paths: [src]}", "{ignore: [x]}"],
    ),
    (
        "services:\n  a:\n    command: run\n    watch:\n      paths: @",
        "src",
        &["[src, 5]"],
    ),
    (
        "services:\n  a:\n    command: run\n    watch:\n      paths: [src]\n      ignore: @",
        "'*.tmp'",
        &["['*.tmp', target]"],
    ),
    (
        "services:\n  a:\n    command: run\n    watch:\n      paths: [src]\n      debounce: @",
        "100ms",
        &[],
    ),
    (
        "services:\n  a:\n    command: run\n    watch:\n      paths: [src]\n      action: @",
        "restart",
        &["'signal:HUP'", "'signal:sigusr1'", "'signal:FOO'", "signal"],
    ),
    (
        "services:\n  a:\n    command: run\n    watch:\n      paths: [src]\n      restart_dependents: @",
        "x",
        &[],
    ),
    ("services:\n  a:\n    command: run\n    x-note: @", "x", &[]),
];

/// Issue 11, defect 8: for every key, a value the key accepts and values of every YAML kind
/// (and a few of the key's mini-language), the reader accepts the document exactly when the
/// schema validates it.
#[test]
fn the_reader_accepts_exactly_what_the_schema_validates() {
    let schema: serde_json::Value = serde_json::from_str(&pk::config::schema()).unwrap();
    let validator = jsonschema::draft7::new(&schema).expect("a valid draft-07 schema");
    let dir = tempfile::tempdir().unwrap();
    for name in [".env", "x", "5", "0", "1.5", "true", "false", "zzz", "demo"] {
        std::fs::write(dir.path().join(name), "").unwrap();
    }
    let generic = [
        "zzz", "''", "5", "0", "1.5", "true", "false", "null", "[]", "[5]", "{zzz: 1}", "{}",
    ];
    let mut disagreements = Vec::new();
    let mut checked = 0;
    for &(doc, valid, extra) in AGREEMENT {
        let quoted = if valid.starts_with('\'') {
            valid.to_owned()
        } else {
            format!("'{valid}'")
        };
        let list = format!("[{quoted}]");
        let values = [valid, quoted.as_str(), list.as_str()]
            .into_iter()
            .chain(generic)
            .chain(extra.iter().copied());
        for value in values {
            let text = doc.replace('@', value);
            let reader = reader_verdict(&text, dir.path());
            let schema = schema_verdict(&validator, &text);
            checked += 1;
            if reader.is_ok() != schema.is_ok() {
                disagreements.push(format!(
                    "{text:?}\n  reader: {}\n  schema: {}",
                    reader.err().unwrap_or_else(|| "accepts".into()),
                    schema.err().unwrap_or_else(|| "accepts".into()),
                ));
            }
        }
    }
    assert!(checked > 500, "only {checked} documents");
    assert!(
        disagreements.is_empty(),
        "{} of {checked} documents: the reader and the schema disagree:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
}

/// Ok when the pk.yaml front end reads `text` without an error.
fn reader_verdict(text: &str, dir: &std::path::Path) -> Result<(), String> {
    let file = pk::config::load::File {
        path: dir.join("pk.yaml"),
        source: pk::config::diag::Source {
            name: "pk.yaml".into(),
            text: text.to_owned(),
        },
    };
    let loaded = pk::config::load::load(vec![file], dir, &std::collections::BTreeMap::new());
    let errors: Vec<String> = loaded
        .diags
        .iter()
        .filter(|d| !d.warning)
        .map(|d| d.message.clone())
        .collect();
    match (loaded.config, errors.is_empty()) {
        (Some(_), true) => Ok(()),
        (_, false) => Err(errors.join("; ")),
        (None, true) => Err("no config".into()),
    }
}

/// Ok when `text`, read as pk reads YAML, validates against the schema.
fn schema_verdict(validator: &jsonschema::Validator, text: &str) -> Result<(), String> {
    let node = pk::config::node::parse(text).map_err(|d| d.message)?;
    let errors: Vec<String> = validator
        .iter_errors(&node.to_json())
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// Issue 11, defect 8: every example (and the design's sample config) validates against the
/// schema, as an editor checks it.
#[test]
fn every_example_validates_against_the_schema() {
    let schema: serde_json::Value = serde_json::from_str(&pk::config::schema()).unwrap();
    let validator = jsonschema::draft7::new(&schema).expect("a valid draft-07 schema");
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut configs: Vec<std::path::PathBuf> = std::fs::read_dir(manifest.join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path().join("pk.yaml"))
        .filter(|p| p.is_file())
        .collect();
    assert!(configs.len() >= 2, "no examples found");
    configs.push(manifest.join("tests/config_fixtures/design.yaml"));
    for config in configs {
        let text = std::fs::read_to_string(&config).unwrap();
        if let Err(e) = schema_verdict(&validator, &text) {
            panic!(
                "{} does not validate against the schema: {e}",
                config.display()
            );
        }
    }
}
