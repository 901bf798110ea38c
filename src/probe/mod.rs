//! Readiness and liveness checks: one probe attempt (`check`) and the loops that run attempts
//! on a schedule and report the outcome to the engine.
//!
//! Invariants: a probe never blocks the engine (each loop is its own task, every attempt is
//! bounded by its `timeout`), and an `exec` probe runs as its own contained tree that is
//! killed when the attempt ends.

mod http;

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::plan::{ProbeSpec, ServiceSpec};
use crate::process::{Containment, OwnedSpawnSpec};
use crate::vocab::{CommandSpec, ExitStatus, LogMatcher, ProbeCheck, command_argv, fmt_duration};

/// What an attempt needs besides the check itself.
pub(crate) struct ProbeContext {
    pub containment: Arc<Containment>,
    /// The log probe's matcher, fed by the service's output pump.
    pub log: Option<Arc<LogMatcher>>,
}

/// One attempt: `Ok` on success, else a short reason (`tcp 127.0.0.1:5432: refused`).
pub(crate) async fn check(
    spec: &ProbeSpec,
    service: &ServiceSpec,
    ctx: &ProbeContext,
) -> Result<(), String> {
    if let ProbeCheck::Exec(cmd) = &spec.check {
        // Bounds itself, so that a timed-out probe's tree is killed, not just forgotten.
        return exec(cmd, spec.timeout, service, ctx).await;
    }
    let attempt = async {
        match &spec.check {
            ProbeCheck::Tcp { address } => tokio::net::TcpStream::connect(address.as_str())
                .await
                .map(drop)
                .map_err(|e| format!("tcp {address}: {}", short_io(&e))),
            ProbeCheck::Http {
                host,
                port,
                path,
                status,
                headers,
            } => http::get(host, *port, path, status, headers).await,
            ProbeCheck::Exec(_) => Ok(()),
            ProbeCheck::Log(re) => match &ctx.log {
                Some(m) if m.take_seen() => Ok(()),
                _ => Err(format!("log: no line matched /{}/ yet", re.as_str())),
            },
        }
    };
    match tokio::time::timeout(spec.timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "{} timed out after {}",
            spec.check.describe(),
            fmt_duration(spec.timeout)
        )),
    }
}

async fn exec(
    cmd: &CommandSpec,
    timeout: Duration,
    service: &ServiceSpec,
    ctx: &ProbeContext,
) -> Result<(), String> {
    // On the containment's spawner, like every service: never on this runtime worker. Nothing
    // the attempt started outlives it, whatever its outcome.
    let run = ctx
        .containment
        .run_captured(
            crate::process::leaf_name(&service.name, crate::process::Role::Probe),
            OwnedSpawnSpec {
                stages: vec![command_argv(cmd)],
                cwd: service.working_dir.clone(),
                env: service.env.clone(),
                tty: None,
            },
            timeout,
        )
        .await
        .map_err(|e| format!("exec {}: {e}", cmd.display()))?;
    let Some(status) = run.status else {
        return Err(format!(
            "exec {} timed out after {}",
            cmd.display(),
            fmt_duration(timeout)
        ));
    };
    let status = ExitStatus::from_std(status);
    if status.success() {
        Ok(())
    } else {
        Err(format!("exec {}: {status}", cmd.display()))
    }
}

fn short_io(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "refused".into(),
        std::io::ErrorKind::TimedOut => "timed out".into(),
        _ => e.to_string(),
    }
}

/// How a `ready` loop ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReadyOutcome {
    Ready,
    /// The deadline passed; the reason names the probe and its last failure.
    NotReady(String),
}

/// Runs `ready` attempts from `started` until one passes or the deadline passes.
pub(crate) async fn until_ready(
    spec: &ProbeSpec,
    service: &ServiceSpec,
    ctx: &ProbeContext,
    started: Instant,
) -> ReadyOutcome {
    until_ready_noting(spec, service, ctx, started, |_| {}).await
}

/// `until_ready`, calling `failed` with the reason of each failed attempt (`pk probe --wait`
/// reports progress with it).
pub(crate) async fn until_ready_noting(
    spec: &ProbeSpec,
    service: &ServiceSpec,
    ctx: &ProbeContext,
    started: Instant,
    mut failed: impl FnMut(&str),
) -> ReadyOutcome {
    let deadline = spec.deadline.map(|d| started + d);
    tokio::time::sleep_until(started + spec.initial_delay).await;
    let mut last = String::from("no attempt finished");
    loop {
        let attempt_start = Instant::now();
        if deadline.is_some_and(|d| attempt_start >= d) {
            break;
        }
        match check(spec, service, ctx).await {
            Ok(()) => return ReadyOutcome::Ready,
            Err(reason) => {
                failed(&reason);
                last = reason;
            }
        }
        let next = match deadline {
            Some(d) => (attempt_start + spec.interval).min(d),
            None => attempt_start + spec.interval,
        };
        // A log probe re-checks as soon as a line matched instead of waiting out the interval.
        match &ctx.log {
            Some(m) => tokio::select! {
                () = tokio::time::sleep_until(next) => {}
                () = m.matched() => {}
            },
            None => tokio::time::sleep_until(next).await,
        }
    }
    let after = spec.deadline.unwrap_or(Duration::ZERO);
    ReadyOutcome::NotReady(format!(
        "{} not ready after {}: {last}",
        service.name,
        fmt_duration(after)
    ))
}

/// Runs `alive` attempts every interval; returns the reason once `retries` consecutive
/// attempts failed.
pub(crate) async fn until_dead(
    spec: &ProbeSpec,
    service: &ServiceSpec,
    ctx: &ProbeContext,
) -> String {
    tokio::time::sleep(spec.initial_delay).await;
    let mut failures = 0u32;
    loop {
        let attempt_start = Instant::now();
        match check(spec, service, ctx).await {
            Ok(()) => failures = 0,
            Err(reason) => {
                failures += 1;
                if failures >= spec.retries.max(1) {
                    return format!("alive probe failed {failures}×: {reason}");
                }
            }
        }
        tokio::time::sleep_until(attempt_start + spec.interval).await;
    }
}
