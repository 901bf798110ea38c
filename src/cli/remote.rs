//! The commands that talk to a running stack over its control socket: `down`, `ps`, `logs`,
//! `start`, `stop`, `restart`, `wait`.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::block_on;
use crate::control::{self, Call, ControlError, Failure, Op, PsRow, Response, WaitFor};
use crate::logs::hub::RecordKind;
use crate::ui::plain::PlainPrinter;
use crate::vocab::{State, fmt_duration, now_ms};

/// Runs a client command against the stack of the config file found like `up` finds it (the
/// file is not parsed: a broken config must not stop `pk down`).
pub(super) fn remote_call<F, Fut>(file: &[PathBuf], cwd: &Path, call: F) -> i32
where
    F: FnOnce(PathBuf) -> Fut,
    Fut: Future<Output = i32>,
{
    match crate::plan::find_config(file, cwd) {
        Ok(path) => block_on(call(path)),
        Err(e) => {
            eprint!("{}", e.render(std::io::stderr().is_terminal()));
            2
        }
    }
}

/// Maps a control error to a message and `pk`'s exit code (1: nothing running, 2: other).
pub(super) fn fail(e: &ControlError) -> i32 {
    eprintln!("pk: {e}");
    match e {
        ControlError::NotRunning { .. } => 1,
        _ => 2,
    }
}

fn print_state(resp: &Response) {
    if let Response::State { service, state, .. } = resp {
        println!("{service}: {state}");
    }
}

fn report_failures(failed: &[Failure]) -> i32 {
    for f in failed {
        eprintln!("pk: {} is {}: {}", f.service, f.state, f.reason);
    }
    i32::from(!failed.is_empty())
}

pub(super) async fn down(config: &Path, grace: Option<Duration>) -> i32 {
    match control::down(config, grace, print_state).await {
        Ok(_) => {
            println!("stopped");
            0
        }
        Err(e) => fail(&e),
    }
}

/// `start`, `stop` or `restart`: returns when done, 1 if a service did not get there.
pub(super) async fn act(config: &Path, op: Op) -> i32 {
    let result = async { Call::open(config, op).await?.finish(print_state).await }.await;
    match result {
        Ok(Some(Response::Ok { failed, .. })) => report_failures(&failed),
        Ok(_) => {
            eprintln!("pk: the stack went away before answering");
            1
        }
        Err(e) => fail(&e),
    }
}

pub(super) async fn wait(
    config: &Path,
    services: Vec<String>,
    until: WaitFor,
    timeout: Duration,
) -> i32 {
    let timeout_ms = Some(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX));
    let op = Op::Wait {
        services,
        until,
        timeout_ms,
    };
    let result = async { Call::open(config, op).await?.finish(|_| {}).await }.await;
    match result {
        Ok(Some(Response::Ok { failed, .. })) => report_failures(&failed),
        Ok(_) => {
            eprintln!("pk: the stack went away before answering");
            1
        }
        Err(e) => fail(&e),
    }
}

/// Fetches `pk ps` data, bounded by a timeout.
pub(super) async fn ps(config: &Path, json: bool) -> i32 {
    let resp = match control::ps(config).await {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    let mut out = std::io::stdout().lock();
    // A closed stdout (`pk ps | head`) leaves nobody to tell.
    let _ = if json {
        serde_json::to_writer_pretty(&mut out, &resp)
            .map_err(std::io::Error::other)
            .and_then(|()| writeln!(out))
    } else {
        out.write_all(render_ps(&resp, now_ms()).as_bytes())
    };
    0
}

/// The `pk ps` table.
pub(super) fn render_ps(resp: &Response, now_ms: u64) -> String {
    let Response::Ps {
        name,
        containment,
        pid,
        services,
        ..
    } = resp
    else {
        return String::new();
    };
    let mut rows = vec![
        [
            "NAME",
            "STATE",
            "PID",
            "UPTIME",
            "RESTARTS",
            "LAST EXIT",
            "HEALTH",
            "CPU",
            "MEM",
        ]
        .map(String::from),
    ];
    for row in services
        .iter()
        .filter(|r| r.service.state != State::Inactive)
    {
        rows.push(ps_row(row, now_ms));
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut text = format!("{name} (pk pid {pid}, containment: {containment})\n");
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        text.push_str(line.join("  ").trim_end());
        text.push('\n');
    }
    text
}

fn ps_row(row: &PsRow, now_ms: u64) -> [String; 9] {
    let s = &row.service;
    let dash = || "-".to_string();
    let left = |at: u64| fmt_duration(Duration::from_millis(at.saturating_sub(now_ms)));
    let state = match (
        &s.waiting_for,
        s.restart_at_ms,
        s.kill_at_ms,
        s.timeout_at_ms,
    ) {
        (Some(w), _, _, _) => format!("{} ({w})", s.state),
        (_, Some(at), _, _) => format!("{} in {}", s.state, left(at)),
        (_, _, Some(at), _) => format!("{} (kill in {})", s.state, left(at)),
        (_, _, _, Some(at)) => format!("{} (timeout in {})", s.state, left(at)),
        _ => match &s.reason {
            Some(reason) if s.state == State::TimedOut => reason.clone(),
            _ => s.state.to_string(),
        },
    };
    [
        s.name.clone(),
        state,
        s.pids.first().map_or_else(dash, ToString::to_string),
        s.started_at_ms.map_or_else(dash, |t| {
            fmt_duration(Duration::from_secs(now_ms.saturating_sub(t) / 1000))
        }),
        s.restarts.to_string(),
        s.last_exit.clone().unwrap_or_else(dash),
        s.health.map_or_else(dash, |h| h.to_string()),
        row.cpu_percent.map_or_else(dash, |c| format!("{c:.1}%")),
        row.memory_bytes.map_or_else(dash, human_bytes),
    ]
}

pub(super) fn human_bytes(b: u64) -> String {
    #[expect(clippy::cast_precision_loss, reason = "a size for display")]
    let f = b as f64;
    if b >= 1 << 30 {
        format!("{:.1}G", f / f64::from(1u32 << 30))
    } else if b >= 1 << 20 {
        format!("{:.1}M", f / f64::from(1u32 << 20))
    } else {
        format!("{}K", b >> 10)
    }
}

pub(super) struct LogsArgs {
    pub services: Vec<String>,
    pub follow: bool,
    pub tail: Option<usize>,
    pub since: Option<Duration>,
    pub timestamps: bool,
    pub color: bool,
}

pub(super) async fn logs(config: &Path, args: LogsArgs) -> i32 {
    let since_ms = args
        .since
        .map(|d| now_ms().saturating_sub(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)));
    // Names for prefixes come from the stack itself.
    let names: Vec<String> = match control::ps(config).await {
        Ok(Response::Ps { services, .. }) => services.into_iter().map(|r| r.service.name).collect(),
        Ok(_) => Vec::new(),
        Err(e) => return fail(&e),
    };
    let op = Op::Logs {
        services: args.services,
        tail: args.tail,
        since_ms,
        follow: args.follow,
    };
    let mut call = match Call::open(config, op).await {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let printer = PlainPrinter::new(&names, args.color)
        .terminal(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    let mut out = std::io::stdout().lock();
    let mut buf = Vec::new();
    loop {
        let resp = match call.next().await {
            Ok(Some(r)) => r,
            Ok(None) => return 0,
            Err(e) => return fail(&e),
        };
        buf.clear();
        match resp {
            Response::Log {
                service,
                kind,
                ts_ms,
                line,
                ..
            } => {
                if args.timestamps {
                    buf.extend_from_slice(crate::logs::timestamp(ts_ms).as_bytes());
                    buf.push(b' ');
                }
                let id = service.and_then(|n| names.iter().position(|x| *x == n));
                printer.render_line(id, kind == RecordKind::Notice, line.as_bytes(), &mut buf);
            }
            Response::Dropped { lines, .. } => {
                buf.extend_from_slice(
                    format!("… {lines} older lines were dropped from pk's history\n").as_bytes(),
                );
            }
            Response::Shed { lines, .. } => {
                buf.extend_from_slice(
                    format!(
                        "… {lines} lines dropped: this `pk logs -F` fell behind (`pk logs` has them)\n"
                    )
                    .as_bytes(),
                );
            }
            Response::Ok { .. } => return 0,
            Response::Error { message, .. } => {
                eprintln!("pk: {message}");
                return 2;
            }
            _ => {}
        }
        if out.write_all(&buf).and_then(|()| out.flush()).is_err() {
            return 0;
        }
    }
}
