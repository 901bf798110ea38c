//! pk.yaml `watch:` → `plan::WatchSpec`: paths resolved against the config directory, globs
//! split at their first glob component, defaults, actions, and bad patterns reported at load.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pk::plan::{WatchAction, WatchPath, WatchSpec, load_str};
use pk::vocab::StopSignal;

fn watch_of(yaml: &str) -> WatchSpec {
    let plan = load_str(yaml, Path::new("/project/pk.yaml"), &BTreeMap::new())
        .unwrap_or_else(|e| panic!("{}", e.render(false)));
    plan.services[0].watch.clone().expect("a watch block")
}

#[test]
fn paths_resolve_against_the_config_directory_and_globs_split() {
    let w = watch_of(
        "services:\n  api:\n    command: x\n    \
         watch: { paths: [src, ./Cargo.toml, '../shared/**/*.proto'] }\n",
    );
    assert_eq!(
        w.paths,
        vec![
            WatchPath {
                path: PathBuf::from("/project/src"),
                glob: None
            },
            WatchPath {
                path: PathBuf::from("/project/Cargo.toml"),
                glob: None
            },
            WatchPath {
                path: PathBuf::from("/shared"),
                glob: Some("/shared/**/*.proto".into())
            },
        ]
    );
    assert_eq!(w.debounce, Duration::from_millis(200), "default");
    assert_eq!(w.action, WatchAction::Restart);
    assert!(!w.restart_dependents);
}

#[test]
fn a_single_path_action_signal_and_options() {
    let w = watch_of(
        "services:\n  api:\n    command: x\n    \
         watch: { paths: conf, ignore: ['*.bak'], debounce: 50ms, action: 'signal:SIGHUP', \
         restart_dependents: true }\n",
    );
    assert_eq!(w.paths.len(), 1);
    assert_eq!(w.ignore, vec!["*.bak".to_owned()]);
    assert_eq!(w.debounce, Duration::from_millis(50));
    assert_eq!(
        w.action,
        WatchAction::Signal(StopSignal {
            number: 1,
            name: "HUP"
        })
    );
    assert!(w.restart_dependents);
}

#[test]
fn bad_globs_and_patterns_are_load_errors() {
    let err = load_str(
        "services:\n  api:\n    command: x\n    \
         watch: { paths: ['src/[a'], ignore: ['{a'] }\n",
        Path::new("/project/pk.yaml"),
        &BTreeMap::new(),
    )
    .expect_err("invalid");
    let text = err.render(false);
    assert!(text.contains("`src/[a` is not a valid glob"), "{text}");
    assert!(text.contains("`{a` is not a valid pattern"), "{text}");
}

#[test]
fn without_watch_there_is_none() {
    let plan = load_str(
        "services:\n  api:\n    command: x\n",
        Path::new("/project/pk.yaml"),
        &BTreeMap::new(),
    )
    .unwrap();
    assert_eq!(plan.services[0].watch, None);
}
