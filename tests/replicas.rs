//! Replicas in the plan: names, environment, dependencies on every copy, graph, `--scale`.

use std::collections::BTreeMap;
use std::path::Path;

use pk::plan::{Plan, load_str, render_graph, scale, select};

fn load(yaml: &str) -> Plan {
    load_str(yaml, Path::new("/project/pk.yaml"), &BTreeMap::new())
        .unwrap_or_else(|e| panic!("{}", e.render(false)))
}

fn names(plan: &Plan) -> Vec<&str> {
    plan.order
        .iter()
        .map(|&id| plan.services[id].name.as_str())
        .collect()
}

const STACK: &str = "services:
  db:
    command: db
  web:
    command: web
    replicas: 3
    depends_on: [db]
  proxy:
    command: proxy
    depends_on: { web: started }
";

#[test]
fn copies_are_named_like_process_compose_and_know_who_they_are() {
    let plan = load(STACK);
    assert_eq!(names(&plan), ["db", "web-0", "web-1", "web-2", "proxy"]);
    for (i, name) in ["web-0", "web-1", "web-2"].iter().enumerate() {
        let copy = &plan.services[plan.service_id(name).unwrap()];
        assert_eq!(copy.group, "web");
        assert_eq!(copy.env["PC_PROC_NAME"], "web");
        assert_eq!(copy.env["PC_REPLICA_NUM"], i.to_string());
    }
    let db = &plan.services[plan.service_id("db").unwrap()];
    assert_eq!(db.env["PC_PROC_NAME"], "db");
    assert_eq!(db.env["PC_REPLICA_NUM"], "0");
    let ten = load("services:\n  w:\n    command: w\n    replicas: 10\n");
    assert_eq!(names(&ten)[..2], ["w-00", "w-01"]);
    assert_eq!(names(&ten)[9], "w-09");
}

#[test]
fn a_dependent_waits_for_every_copy() {
    let plan = load(STACK);
    let proxy = &plan.services[plan.service_id("proxy").unwrap()];
    let deps: Vec<&str> = proxy
        .depends_on
        .iter()
        .map(|d| plan.services[d.service].name.as_str())
        .collect();
    assert_eq!(deps, ["web-0", "web-1", "web-2"]);
}

#[test]
fn a_name_means_one_copy_or_every_copy() {
    let plan = load(STACK);
    assert_eq!(plan.service_ids("web").len(), 3);
    assert_eq!(
        plan.service_ids("web-1"),
        vec![plan.service_id("web-1").unwrap()]
    );
    assert!(plan.service_ids("web-7").is_empty());
    let wanted = select(&plan, &["web-1".into()]).unwrap();
    let on: Vec<&str> = plan
        .services
        .iter()
        .zip(&wanted)
        .filter(|(_, on)| **on)
        .map(|(s, _)| s.name.as_str())
        .collect();
    assert_eq!(on, ["db", "web-1"]);
}

#[test]
fn the_graph_shows_each_declared_service_once() {
    let plan = load(STACK);
    insta::assert_snapshot!(render_graph(&plan, false), @r"
    project: 3 services (5 with replicas) in start order
      1. db
      2. web ×3  ← db (started)
      3. proxy   ← web ×3 (started)
    ");
    let dot = render_graph(&plan, true);
    assert!(dot.contains("\"web\" [label=\"web ×3\"];"), "{dot}");
    assert_eq!(dot.matches("\"proxy\" -> \"web\"").count(), 1, "{dot}");
}

#[test]
fn scale_changes_the_number_of_copies() {
    let plan = scale(load(STACK), &[("web".into(), 2), ("db".into(), 2)]).unwrap();
    assert_eq!(names(&plan), ["db-0", "db-1", "web-0", "web-1", "proxy"]);
    let web1 = &plan.services[plan.service_id("web-1").unwrap()];
    assert_eq!(web1.depends_on.len(), 2, "every copy of db");
    let one = scale(plan, &[("web".into(), 1)]).unwrap();
    assert!(one.service_id("web").is_some());
    let err = scale(one, &[("wbe".into(), 2), ("db".into(), 0)]).unwrap_err();
    insta::assert_snapshot!(err.render(false));
}

#[test]
fn a_copy_may_not_take_another_service_s_name() {
    let err = load_str(
        "services:\n  web-1:\n    command: x\n  web:\n    command: y\n    replicas: 2\n",
        Path::new("/project/pk.yaml"),
        &BTreeMap::new(),
    )
    .unwrap_err();
    insta::assert_snapshot!(err.render(false));
}

#[test]
fn replicas_out_of_range_is_located() {
    let err = load_str(
        "services:\n  web:\n    command: x\n    replicas: 0\n",
        Path::new("/project/pk.yaml"),
        &BTreeMap::new(),
    )
    .unwrap_err();
    insta::assert_snapshot!(err.render(false));
}

#[test]
fn process_compose_renders_pc_replica_num_per_copy_and_again_under_scale() {
    // process-compose's issue 420 shape, with the number in the command and the log file too.
    let yaml = "is_strict: true\nprocesses:\n  test:\n    replicas: 3\n    log_location: ./test.{PC_REPLICA_NUM}.log\n    environment:\n      - \"REPL={{.PC_REPLICA_NUM}}\"\n    command: echo {{ .PC_REPLICA_NUM }} [$$REPL]\n";
    let (plan, _) = pk::plan::load_strs_with_warnings(
        &[(Path::new("/project/process-compose.yaml"), yaml)],
        Path::new("/project"),
        &BTreeMap::new(),
    )
    .unwrap_or_else(|e| panic!("{}", e.render(false)));
    let check = |plan: &Plan, count: usize| {
        assert_eq!(plan.services.len(), count);
        for (i, copy) in plan.services.iter().enumerate() {
            assert_eq!(copy.env["REPL"], i.to_string());
            assert_eq!(
                copy.log_file.as_deref(),
                Some(Path::new(&format!("/project/test.{i}.log")))
            );
            let pk::plan::RunSpec::Command(pk::vocab::CommandSpec::Argv(argv)) = &copy.run else {
                panic!("{:?}", copy.run)
            };
            assert_eq!(argv.last().unwrap(), &format!("echo {i} [$REPL]"));
        }
    };
    check(&plan, 3);
    check(&scale(plan, &[("test".into(), 5)]).unwrap(), 5);
}
