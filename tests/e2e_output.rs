//! Service output through `pk up --plain` (issue #2): concurrent floods are never torn or
//! mixed, and nothing is lost.

mod support;

use std::time::Duration;

use support::{Project, notice_at, parse};

#[test]
fn lines_of_concurrent_chatty_services_are_never_torn() {
    // Python's 8 KiB stdout buffer cuts lines at arbitrary places between writes.
    let service = |name: &str| {
        format!(
            "  {name}:\n    command: [\"${{PYTHON}}\", -c, \"import sys\\nfor i in range(20000): sys.stdout.write('{name}' + 'abcdefghij' * 7 + '\\\\n')\"]\n"
        )
    };
    let yaml = format!(
        "services:\n{}{}{}",
        service("aa"),
        service("bb"),
        service("cc")
    );
    let out = Project::new(&yaml).up().run_within(Duration::from_secs(60));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mut counts = std::collections::HashMap::new();
    for line in &out.lines {
        let l = parse(line).unwrap_or_else(|| panic!("not a plain line: {line:?}"));
        if l.notice {
            continue;
        }
        let expected = format!("{}{}", l.service, "abcdefghij".repeat(7));
        assert_eq!(l.text, expected, "torn or mixed line: {line:?}");
        assert_eq!(line, &format!("{} | {expected}", l.service));
        *counts.entry(l.service.to_owned()).or_insert(0) += 1;
    }
    for name in ["aa", "bb", "cc"] {
        assert_eq!(counts.get(name), Some(&20_000), "lines of {name}");
        notice_at(&out.lines, name, "completed");
    }
}

#[test]
fn no_line_is_lost_and_order_is_kept() {
    let out = Project::new("services:\n  counter: { command: [seq, \"100000\"] }\n")
        .up()
        .run_within(Duration::from_secs(60));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let numbers: Vec<&str> = out
        .lines
        .iter()
        .filter_map(|l| l.strip_prefix("counter | "))
        .collect();
    assert_eq!(numbers.len(), 100_000);
    for (i, n) in numbers.iter().enumerate() {
        assert_eq!(*n, (i + 1).to_string(), "line {i}");
    }
    // The exit notice comes after the last line of output.
    let last = out
        .lines
        .iter()
        .position(|l| l == "counter | 100000")
        .unwrap();
    assert!(notice_at(&out.lines, "counter", "completed") > last);
}

#[test]
fn stderr_and_an_unterminated_last_line_are_shown() {
    let out = Project::new("services:\n  s: { command: \"echo to-err >&2; printf no-newline\" }\n")
        .up()
        .run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    support::output_at(&out.lines, "s", "to-err");
    support::output_at(&out.lines, "s", "no-newline");
}
