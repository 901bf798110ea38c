//! `pk probe`: one `ready`-style check from the command line, once or until it passes.
//!
//! The check runs through `probe::check` / `probe::until_ready` / `probe::until_dead`, the
//! code pk's own `ready` and `alive` probes use, so a failure reads exactly like one of pk's
//! (`tcp 127.0.0.1:5432: refused`, `db not ready after 60s: …`). Exported systemd units and
//! Nomad jobs call it; so can scripts and CI jobs.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::parse_duration;
use crate::config::values;
use crate::plan::{ProbeSpec, RestartSpec, RunSpec, ServiceSpec, ShutdownSpec};
use crate::probe::{self, ProbeContext, ReadyOutcome};
use crate::process::Containment;
use crate::vocab::{CommandSpec, ProbeCheck, StopSignal};

/// What `pk probe` was asked to do: its arguments, parsed by clap.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ProbeArgs {
    /// `tcp HOST:PORT`, `http URL`, or `exec CMD…` (one word runs under `sh -c`, several
    /// are an argv; put `--` before a command whose arguments start with `-`).
    #[arg(required = true, num_args = 2.., value_name = "CHECK")]
    check: Vec<String>,
    /// http: accepted status codes (repeatable); default any 2xx or 3xx.
    #[arg(long, value_name = "CODE")]
    status: Vec<u16>,
    /// http: a request header `Name: value` (repeatable).
    #[arg(long, value_name = "HEADER")]
    header: Vec<String>,
    /// Retry every --interval until the check passes or --deadline has passed.
    #[arg(long, conflicts_with = "alive")]
    wait: bool,
    /// Liveness: check every --interval, exit 1 after --retries failures in a row.
    #[arg(long)]
    alive: bool,
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    deadline: Duration,
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    interval: Duration,
    /// Bound of one attempt.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    timeout: Duration,
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    initial_delay: Duration,
    /// With --alive: failures in a row that count as dead.
    #[arg(long, default_value_t = 3)]
    retries: u32,
    /// The service named in messages.
    #[arg(long, default_value = "probe")]
    name: String,
}

/// Runs the probe; 0 when it passed, 1 when it failed, 2 for a check that does not parse.
pub(super) fn probe_command(args: ProbeArgs, cwd: &Path) -> i32 {
    let check = match parse_check(&args.check, &args.status, &args.header) {
        Ok(check) => check,
        Err((message, hint)) => {
            eprintln!("pk probe: {message}");
            if let Some(hint) = hint {
                eprintln!("  help: {hint}");
            }
            return 2;
        }
    };
    let spec = ProbeSpec {
        check,
        initial_delay: args.initial_delay,
        interval: args.interval,
        timeout: args.timeout,
        retries: args.retries.max(1),
        deadline: Some(args.deadline),
    };
    let subject = subject(&args.name, cwd);
    super::block_on(async move {
        let ctx = ProbeContext {
            containment: Arc::new(Containment::detect()),
            log: None,
        };
        let described = spec.check.describe();
        let result = if args.alive {
            let reason = probe::until_dead(&spec, &subject, &ctx).await;
            Err(format!("{}: {reason}", args.name))
        } else if args.wait {
            let mut said = String::new();
            // Each new reason once, so that a log shows what is awaited without a line per try.
            let note = |reason: &str| {
                if reason != said {
                    eprintln!("pk probe: waiting: {reason}");
                    reason.clone_into(&mut said);
                }
            };
            let started = tokio::time::Instant::now();
            match probe::until_ready_noting(&spec, &subject, &ctx, started, note).await {
                ReadyOutcome::Ready => Ok(()),
                ReadyOutcome::NotReady(reason) => Err(reason),
            }
        } else {
            probe::check(&spec, &subject, &ctx).await
        };
        ctx.containment.cleanup();
        match result {
            Ok(()) => {
                println!("{}: {described}: ok", args.name);
                0
            }
            Err(reason) => {
                eprintln!("pk probe: {reason}");
                1
            }
        }
    })
}

/// `tcp HOST:PORT`, `http URL`, or `exec CMD…` (one word runs under `sh -c`, several are an
/// argv), parsed by the same functions that read probes in pk.yaml.
fn parse_check(
    words: &[String],
    status: &[u16],
    header: &[String],
) -> Result<ProbeCheck, values::Problem> {
    let usage = || {
        Some(
            "write `tcp HOST:PORT`, `http URL` or `exec CMD…`, e.g. `pk probe tcp 127.0.0.1:5432`"
                .to_owned(),
        )
    };
    let Some((kind, rest)) = words.split_first() else {
        return Err(("no check given".to_owned(), usage()));
    };
    if !status.is_empty() && kind != "http" {
        return Err((
            "`--status` applies only to an `http` check".to_owned(),
            None,
        ));
    }
    if !header.is_empty() && kind != "http" {
        return Err((
            "`--header` applies only to an `http` check".to_owned(),
            None,
        ));
    }
    let mut headers = Vec::new();
    for h in header {
        let Some((name, value)) = h.split_once(':') else {
            return Err((
                format!("`--header {h}` is not `Name: value`"),
                Some("e.g. `--header \"Authorization: Bearer x\"`".to_owned()),
            ));
        };
        let (name, value) = (name.trim(), value.trim());
        values::http_header(name, value)?;
        headers.push((name.to_owned(), value.to_owned()));
    }
    match (kind.as_str(), rest) {
        ("tcp", [address]) => {
            values::tcp_address(address).map(|address| ProbeCheck::Tcp { address })
        }
        ("http", [url]) => values::http_url(url).map(|t| ProbeCheck::Http {
            host: t.host,
            port: t.port,
            path: t.path,
            status: status.to_vec(),
            headers,
        }),
        ("exec", [command]) => Ok(ProbeCheck::Exec(CommandSpec::Shell(command.clone()))),
        ("exec", argv) if !argv.is_empty() => {
            Ok(ProbeCheck::Exec(CommandSpec::Argv(argv.to_vec())))
        }
        ("tcp" | "http", _) => Err((
            format!("`{kind}` takes exactly one target, got {}", rest.len()),
            usage(),
        )),
        ("exec", _) => Err(("`exec` needs a command".to_owned(), usage())),
        (other, _) => Err((
            format!("`{other}` is not a check pk probe can run"),
            if other == "log" {
                Some(
                    "a `log` check reads a service's output, which only a running pk sees"
                        .to_owned(),
                )
            } else {
                usage()
            },
        )),
    }
}

/// The service an ad-hoc check runs for: named for messages, in this directory, with this
/// process's environment (an exec check sees what a unit's `ExecStartPost=` would).
fn subject(name: &str, cwd: &Path) -> ServiceSpec {
    let env: BTreeMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    ServiceSpec {
        name: name.to_owned(),
        run: RunSpec::Command(CommandSpec::Argv(vec!["true".to_owned()])),
        working_dir: cwd.to_path_buf(),
        env,
        env_source: crate::plan::EnvSource::default(),
        depends_on: Vec::new(),
        restart: RestartSpec::default(),
        shutdown: ShutdownSpec {
            signal: StopSignal::TERM,
            grace: Duration::ZERO,
            command: None,
        },
        disabled: false,
        log_file: None,
        ready: None,
        alive: None,
        watch: None,
        timeout: None,
        tty: false,
        group: name.to_owned(),
        replica: 0,
        replicas: 1,
        port: None,
        exit_on_end: false,
        success_codes: Vec::new(),
        namespaces: Vec::new(),
        ends_stack: crate::plan::EndsStack::default(),
        template: None,
    }
}

#[cfg(test)]
mod tests {
    use super::parse_check;

    fn words(text: &str) -> Vec<String> {
        text.split(' ').map(str::to_owned).collect()
    }

    #[test]
    fn checks_parse_like_pk_yaml_probes() {
        let describe = |t: &str| parse_check(&words(t), &[], &[]).map(|c| c.describe());
        assert_eq!(
            describe("tcp 127.0.0.1:5432").unwrap(),
            "tcp 127.0.0.1:5432"
        );
        assert_eq!(
            describe("http http://localhost:8080/health").unwrap(),
            "http http://localhost:8080/health"
        );
        assert_eq!(
            describe("exec pg_isready -q").unwrap(),
            "exec pg_isready -q"
        );
        assert!(
            describe("tcp 127.0.0.1")
                .unwrap_err()
                .0
                .contains("port is missing")
        );
        assert!(
            describe("http https://x/")
                .unwrap_err()
                .0
                .contains("uses https")
        );
        assert!(
            describe("log ready")
                .unwrap_err()
                .1
                .unwrap()
                .contains("running pk")
        );
        assert!(
            describe("tcp a:1 b:2")
                .unwrap_err()
                .0
                .contains("exactly one")
        );
        assert!(parse_check(&words("tcp a:1"), &[200], &[]).is_err());
        assert!(parse_check(&words("tcp a:1"), &[], &["X: y".into()]).is_err());
        let with = parse_check(&words("http http://h:1/"), &[], &["X-Token: a b".into()]);
        assert!(
            matches!(with, Ok(crate::vocab::ProbeCheck::Http { ref headers, .. }) if headers == &[("X-Token".to_owned(), "a b".to_owned())]),
            "{with:?}"
        );
        assert!(parse_check(&words("http http://h:1/"), &[], &["X-Token".into()]).is_err());
    }
}
