//! `pk attach`: the dashboard on a stack that another pk runs (detached or not).
//!
//! The dashboard is the same one `pk up` shows; here its engine is the control socket:
//! snapshots come from a `watch` stream, output from `logs --follow`, and its intents become
//! `start`/`stop`/`restart` requests. Quitting (`q`, Ctrl-C) leaves the stack running.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use crate::control::{Call, ControlError, Op, Response};
use crate::engine::{EngineHandle, Input, Intent, Snapshot};
use crate::logs::hub::RecordKind;
use crate::logs::{Backlog, DASHBOARD_BACKLOG, LogEvent, LogSender, Shedder, Stream};
use crate::ui::tui;

/// Lines of history the dashboard starts with.
const BACKLOG: usize = 5000;

pub(super) async fn attach(config: &Path, history_bytes: usize) -> i32 {
    match run(config, history_bytes).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("pk: {e}");
            match e {
                ControlError::NotRunning { .. } => 1,
                _ => 2,
            }
        }
    }
}

async fn run(config: &Path, history_bytes: usize) -> Result<(), ControlError> {
    let Response::Ps {
        name,
        containment,
        services,
        ..
    } = crate::control::ps(config).await?
    else {
        return Err(ControlError::Protocol("no answer to ps".into()));
    };
    let names: Vec<String> = services.into_iter().map(|r| r.service.name).collect();
    let mut snapshots = Call::open(config, Op::Watch).await?;
    let Some(Response::Snapshot {
        snapshot: first, ..
    }) = snapshots.next().await?
    else {
        return Err(ControlError::Protocol("no snapshot from the stack".into()));
    };
    let logs = Call::open(
        config,
        Op::Logs {
            services: Vec::new(),
            tail: Some(BACKLOG),
            since_ms: None,
            follow: true,
        },
    )
    .await?;

    let (snap_tx, snap_rx) = watch::channel(Arc::new(first));
    let (input_tx, input_rx) = mpsc::unbounded_channel();
    let (log_tx, log_rx) = mpsc::unbounded_channel();
    // What the socket brings is queued for the dashboard up to a budget, then shed (counted).
    let backlog = Backlog::default();
    let label = containment
        .split(" (")
        .next()
        .unwrap_or(&containment)
        .to_string();
    let dashboard = tui::spawn(
        tui::TuiConfig {
            stack: name,
            names: names.clone(),
            containment: None,
            containment_label: label,
            history_bytes,
            backlog: Some(backlog.clone()),
            exit_now: Box::new(|| {
                tui::restore_terminal();
                std::process::exit(0);
            }),
            pty_size: None,
        },
        log_rx,
        log_tx.clone(),
    )
    .map_err(|e| ControlError::Protocol(format!("cannot set up the terminal: {e}")))?;
    let thread = dashboard.start(EngineHandle {
        inputs: input_tx,
        snapshots: snap_rx,
    });
    tokio::spawn(follow_snapshots(snapshots, snap_tx, log_tx.clone()));
    let shedder = Shedder::new(backlog, DASHBOARD_BACKLOG);
    tokio::spawn(follow_logs(logs, names.clone(), log_tx.clone(), shedder));
    tokio::spawn(forward_intents(
        config.to_path_buf(),
        names,
        input_rx,
        log_tx,
    ));
    // The dashboard thread ends after `LogEvent::End`: on quit, or when the stack goes away.
    tokio::task::spawn_blocking(move || thread.join())
        .await
        .map_err(|e| ControlError::Protocol(e.to_string()))?
        .map_err(|_| ControlError::Protocol("the dashboard failed".into()))
}

/// Publishes each snapshot of the stack; when the stack ends, ends the dashboard too.
async fn follow_snapshots(mut call: Call, tx: watch::Sender<Arc<Snapshot>>, logs: LogSender) {
    while let Ok(Some(resp)) = call.next().await {
        if let Response::Snapshot { snapshot, .. } = resp {
            tx.send_replace(Arc::new(snapshot));
        }
    }
    let _ = logs.send(LogEvent::Notice {
        service: None,
        text: "the stack has stopped".into(),
    });
    // The dashboard may already be gone.
    let _ = logs.send(LogEvent::End);
}

/// Turns the stack's log lines into the events the dashboard renders (shed past the budget
/// when the dashboard falls behind the socket).
async fn follow_logs(mut call: Call, names: Vec<String>, logs: LogSender, mut shedder: Shedder) {
    while let Ok(Some(resp)) = call.next().await {
        if let Response::Shed { lines, .. } = resp {
            let text =
                format!("… {lines} lines dropped: this dashboard fell behind (`pk logs` has them)");
            if logs
                .send(LogEvent::Notice {
                    service: None,
                    text,
                })
                .is_err()
            {
                return;
            }
            continue;
        }
        let Response::Log {
            service,
            kind,
            line,
            ..
        } = resp
        else {
            continue;
        };
        let id = service.and_then(|n| names.iter().position(|x| *x == n));
        let event = match (kind, id) {
            (RecordKind::Notice, _) | (_, None) => LogEvent::Notice {
                service: id,
                text: line,
            },
            (RecordKind::Stdout | RecordKind::Stderr, Some(service)) => {
                let mut data = line.into_bytes();
                data.push(b'\n');
                LogEvent::Output {
                    service,
                    stream: if kind == RecordKind::Stderr {
                        Stream::Stderr
                    } else {
                        Stream::Stdout
                    },
                    data,
                }
            }
        };
        for event in shedder.admit(event) {
            if logs.send(event).is_err() {
                return;
            }
        }
    }
}

/// Carries the dashboard's intents to the stack; a teardown request only detaches.
async fn forward_intents(
    config: PathBuf,
    names: Vec<String>,
    mut inputs: mpsc::UnboundedReceiver<Input>,
    logs: LogSender,
) {
    while let Some(Input::Intent(intent)) = inputs.recv().await {
        let name = |id: usize| names.get(id).cloned().unwrap_or_default();
        let op = match intent {
            Intent::Shutdown { .. } | Intent::ForceKill => {
                // Quitting an attached dashboard leaves the stack running (`pk down` stops it).
                let _ = logs.send(LogEvent::End);
                return;
            }
            Intent::Start { service } => Op::Start {
                services: vec![name(service)],
            },
            Intent::Stop { service } => Op::Stop {
                services: vec![name(service)],
            },
            Intent::Restart {
                service,
                dependents,
                ..
            } => Op::Restart {
                services: vec![name(service)],
                dependents,
            },
            Intent::Signal { .. } => continue,
        };
        let config = config.clone();
        let logs = logs.clone();
        tokio::spawn(async move {
            let result = async { Call::open(&config, op).await?.finish(|_| {}).await }.await;
            if let Err(e) = result {
                let _ = logs.send(LogEvent::Notice {
                    service: None,
                    text: format!("request failed: {e}"),
                });
            }
        });
    }
}
