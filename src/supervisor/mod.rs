//! One task per running service generation: spawn the contained tree, pump its output, wait for
//! it to end, carry out stop and kill requests, and report facts to the engine.
//!
//! Invariants: a supervisor never decides policy (restart, order); it reports exactly one
//! `Cancelled` (stopped before it spawned), `SpawnFailed`, or `Spawned` followed by exactly one
//! `Exited` once the whole tree has drained.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::logs::{self, LogEvent, LogSender, OutputSink, Stream};
use crate::plan::{Plan, ProbeSpec, RunSpec, ServiceSpec};
use crate::probe::{self, ProbeContext, ReadyOutcome};
use crate::process::{Containment, OwnedSpawnSpec, ProcessTree, Pty, WinSize};
use crate::vocab::{
    CommandSpec, ExitInfo, ExitStatus, LogMatcher, ProbeCheck, ServiceId, StopSignal, command_argv,
};

/// How long output readers may keep going after the tree drained (an escaped process may
/// hold the pipe open; it must not delay the exit).
const OUTPUT_DRAIN: Duration = Duration::from_millis(200);

/// A fact a supervisor (or its probe loop) reports about its spawn generation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Report {
    Spawned {
        pids: Vec<u32>,
    },
    SpawnFailed {
        error: String,
    },
    /// A stop reached the supervisor before it spawned anything: there is no tree.
    Cancelled,
    /// The `ready` probe passed.
    Ready,
    /// The `ready` probe did not pass before its deadline.
    NotReady {
        reason: String,
    },
    /// The `alive` probe failed `retries` times in a row.
    Unhealthy {
        reason: String,
    },
    /// The whole tree has ended.
    Exited {
        exit: ExitInfo,
    },
}

/// Where supervisors send their reports: `(service, generation, report)`.
pub(crate) type ReportFn = dyn Fn(ServiceId, u64, Report) + Send + Sync;

/// A request from the runtime to a supervisor.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Control {
    /// Shutdown command, then the signal; the engine's deadline comes as `Kill`.
    Stop {
        signal: StopSignal,
    },
    Kill,
    /// Send a signal to the whole tree and keep supervising it.
    Signal(StopSignal),
}

/// What every supervisor needs; shared by the runtime.
pub(crate) struct Context {
    pub plan: Arc<Plan>,
    pub containment: Arc<Containment>,
    /// Delivers reports to the engine (in order with everything else it is told).
    pub report: Box<ReportFn>,
    pub logs: LogSender,
    /// Where the output pumps send (the same channel as `logs`, with flow control).
    pub output: OutputSink,
    /// The window size of `tty: true` services (the dashboard's log pane, else the terminal's
    /// or 120 columns); each follows its changes.
    pub pty_size: watch::Receiver<WinSize>,
}

/// The runtime's handle on one supervisor task.
pub(crate) struct Supervisor {
    pub generation: u64,
    control: mpsc::UnboundedSender<Control>,
}

impl Supervisor {
    pub(crate) fn start(ctx: &Arc<Context>, service: ServiceId, generation: u64) -> Supervisor {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(supervise(Arc::clone(ctx), service, generation, rx));
        Supervisor {
            generation,
            control: tx,
        }
    }

    pub(crate) fn send(&self, control: Control) {
        // A supervisor that already reported its exit needs no more requests.
        let _ = self.control.send(control);
    }
}

/// Sends facts about `service`'s spawn `generation` to the engine.
fn reporter(ctx: &Context, service: ServiceId, generation: u64) -> impl Fn(Report) + '_ {
    move |report| {
        (ctx.report)(service, generation, report);
    }
}

/// The argv of every stage of a service's run spec.
pub(crate) fn stages(run: &RunSpec) -> Vec<Vec<String>> {
    match run {
        RunSpec::Command(cmd) => vec![command_argv(cmd)],
        RunSpec::Pipeline(stages) => stages.clone(),
    }
}

async fn supervise(
    ctx: Arc<Context>,
    service: ServiceId,
    generation: u64,
    mut control: mpsc::UnboundedReceiver<Control>,
) {
    let spec = &ctx.plan.services[service];
    let report = reporter(&ctx, service, generation);
    // A stop that came before the tree exists (teardown began while the spawn was queued)
    // means no tree at all: nothing is started once pk is shutting down.
    if let Ok(Control::Stop { .. } | Control::Kill) = control.try_recv() {
        report(Report::Cancelled);
        return;
    }
    let stage_argv = stages(&spec.run);
    let spawned = ctx
        .containment
        .spawn_async(
            spec.name.clone(),
            OwnedSpawnSpec {
                stages: stage_argv.clone(),
                cwd: spec.working_dir.clone(),
                env: spec.env.clone(),
                tty: spec.tty.then(|| *ctx.pty_size.borrow()),
            },
        )
        .await;
    let spawned = match spawned {
        Ok(s) => s,
        Err(e) => {
            report(Report::SpawnFailed {
                error: e.to_string(),
            });
            return;
        }
    };
    let mut tree = spawned.tree;
    let started = tokio::time::Instant::now();
    let pids = tree.pids();
    // Sent here, before the output pumps start, so it precedes the service's first line.
    let _ = ctx.logs.send(LogEvent::Notice {
        service: Some(service),
        text: started_text(&pids),
    });
    report(Report::Spawned { pids });
    let ready_log = log_matcher(spec.ready.as_ref());
    let alive_log = log_matcher(spec.alive.as_ref());
    let taps: Vec<_> = ready_log.iter().chain(&alive_log).cloned().collect();
    let out = tokio::spawn(logs::pump(
        spawned.stdout,
        service,
        Stream::Stdout,
        ctx.output.clone(),
        taps.clone(),
    ));
    let err = tokio::spawn(logs::pump(
        spawned.stderr,
        service,
        Stream::Stderr,
        ctx.output.clone(),
        taps,
    ));
    let resize = spawned
        .pty
        .map(|pty| tokio::spawn(follow_size(pty, ctx.pty_size.clone())));
    let probes = tokio::spawn(run_probes(
        Arc::clone(&ctx),
        service,
        generation,
        started,
        ready_log,
        alive_log,
    ));

    let statuses = run_until_ended(&ctx, spec, service, &mut tree, &mut control).await;
    probes.abort();
    if let Some(resize) = resize {
        resize.abort();
    }
    // Output written before the tree ended is shown before the exit notice.
    let _ = tokio::time::timeout(OUTPUT_DRAIN, async {
        let _ = out.await;
        let _ = err.await;
    })
    .await;
    report(Report::Exited {
        exit: pipefail(&stage_argv, &statuses),
    });
}

/// Keeps a service's terminal at the size pk shows it in (the kernel sends it SIGWINCH).
/// Aborted when the tree ends.
async fn follow_size(pty: Pty, mut sizes: watch::Receiver<WinSize>) {
    while sizes.changed().await.is_ok() {
        let size = *sizes.borrow_and_update();
        // The tree may be ending; a size it never sees is moot.
        let _ = pty.resize(size);
    }
    // Nobody will change the size any more; the terminal stays as it is.
    std::future::pending::<()>().await;
}

fn log_matcher(probe: Option<&ProbeSpec>) -> Option<Arc<LogMatcher>> {
    match probe.map(|p| &p.check) {
        Some(ProbeCheck::Log(re)) => Some(Arc::new(LogMatcher::new(re))),
        _ => None,
    }
}

/// The `ready` probe until it passes (or its deadline passes), then the `alive` probe until it
/// fails; each outcome is reported to the engine. Aborted when the tree ends.
async fn run_probes(
    ctx: Arc<Context>,
    service: ServiceId,
    generation: u64,
    started: tokio::time::Instant,
    ready_log: Option<Arc<LogMatcher>>,
    alive_log: Option<Arc<LogMatcher>>,
) {
    let spec = &ctx.plan.services[service];
    let report = reporter(&ctx, service, generation);
    if let Some(ready) = &spec.ready {
        let pctx = ProbeContext {
            containment: Arc::clone(&ctx.containment),
            log: ready_log,
        };
        match probe::until_ready(ready, spec, &pctx, started).await {
            ReadyOutcome::Ready => report(Report::Ready),
            ReadyOutcome::NotReady(reason) => {
                report(Report::NotReady { reason });
                return;
            }
        }
    }
    if let Some(alive) = &spec.alive {
        let pctx = ProbeContext {
            containment: Arc::clone(&ctx.containment),
            log: alive_log,
        };
        let reason = probe::until_dead(alive, spec, &pctx).await;
        report(Report::Unhealthy { reason });
    }
}

/// Waits until the tree has ended on its own or was stopped; returns the stage statuses.
///
/// A stop runs the shutdown command, then sends the stop signal, and waits for the tree to
/// drain. The deadline is the engine's (a timer that sends `Kill`), so a `Kill` — the deadline
/// or a second Ctrl-C — ends whichever step is under way at once.
async fn run_until_ended(
    ctx: &Context,
    spec: &ServiceSpec,
    service: ServiceId,
    tree: &mut ProcessTree,
    control: &mut mpsc::UnboundedReceiver<Control>,
) -> Vec<std::process::ExitStatus> {
    let (statuses, request) = 'run: {
        let st = loop {
            tokio::select! {
                st = tree.wait_stages() => break st,
                Some(req) = control.recv() => match req {
                    Control::Signal(signal) => send_signal(ctx, service, tree, signal),
                    req => break 'run (None, req),
                },
            }
        };
        loop {
            tokio::select! {
                () = tree.wait_drained() => return st,
                Some(req) = control.recv() => match req {
                    Control::Signal(signal) => send_signal(ctx, service, tree, signal),
                    req => break 'run (Some(st), req),
                },
            }
        }
    };
    let kill = match request {
        Control::Kill => true,
        Control::Signal(_) => unreachable!("a signal is handled while the tree runs"),
        Control::Stop { signal } => {
            let interrupted = match &spec.shutdown.command {
                Some(cmd) => run_shutdown_command(ctx, spec, service, cmd, tree, control).await,
                None => false,
            };
            interrupted || {
                if !tree.is_drained() {
                    send_signal(ctx, service, tree, signal);
                }
                until_drained_or_killed(ctx, service, tree, control).await
            }
        }
    };
    if kill {
        tree.stop(StopSignal::KILL.number, Duration::ZERO).await;
    }
    match statuses {
        Some(st) => st,
        None => tree.wait_stages().await,
    }
}

/// Waits until `tree` has drained (false) or a `Kill` arrives (true); signals are passed on.
async fn until_drained_or_killed(
    ctx: &Context,
    service: ServiceId,
    tree: &mut ProcessTree,
    control: &mut mpsc::UnboundedReceiver<Control>,
) -> bool {
    loop {
        tokio::select! {
            () = tree.wait_drained() => return false,
            req = control.recv() => match req {
                Some(Control::Kill) => return true,
                Some(Control::Signal(signal)) => send_signal(ctx, service, tree, signal),
                // Already stopping.
                Some(Control::Stop { .. }) => {}
                // The runtime is gone (a forced exit): nobody will ask for more.
                None => {
                    tree.wait_drained().await;
                    return false;
                }
            },
        }
    }
}

/// Signals the whole tree; a failure is shown, never fatal.
fn send_signal(ctx: &Context, service: ServiceId, tree: &ProcessTree, signal: StopSignal) {
    if let Err(e) = tree.signal(signal.number) {
        // The UI may be gone during exit; the notice is moot then.
        let _ = ctx.logs.send(LogEvent::Notice {
            service: Some(service),
            text: format!("could not send {}: {e}", signal.name),
        });
    }
}

/// Runs the service's `shutdown.command` as its own contained tree until it exits or a `Kill`
/// arrives (the stop deadline, or a second Ctrl-C); returns whether it was killed. Signals
/// for the service meanwhile go to the service's tree.
async fn run_shutdown_command(
    ctx: &Context,
    spec: &ServiceSpec,
    service: ServiceId,
    cmd: &CommandSpec,
    service_tree: &ProcessTree,
    control: &mut mpsc::UnboundedReceiver<Control>,
) -> bool {
    let argv = vec![command_argv(cmd)];
    let leaf = crate::process::leaf_name(&spec.name, crate::process::Role::Shutdown);
    let notice = |text: String| {
        let _ = ctx.logs.send(LogEvent::Notice {
            service: Some(service),
            text,
        });
    };
    // On the containment's spawner, like every service: never on this runtime worker.
    let spawned = ctx
        .containment
        .spawn_async(
            leaf,
            OwnedSpawnSpec {
                stages: argv,
                cwd: spec.working_dir.clone(),
                env: spec.env.clone(),
                tty: None,
            },
        )
        .await;
    let sp = match spawned {
        Ok(sp) => sp,
        Err(e) => {
            notice(format!("shutdown command failed to start: {e}"));
            return false;
        }
    };
    let mut tree = sp.tree;
    tokio::spawn(logs::pump(
        sp.stdout,
        service,
        Stream::Stdout,
        ctx.output.clone(),
        Vec::new(),
    ));
    tokio::spawn(logs::pump(
        sp.stderr,
        service,
        Stream::Stderr,
        ctx.output.clone(),
        Vec::new(),
    ));
    notice(format!("running shutdown command: {}", cmd.display()));
    let killed = loop {
        tokio::select! {
            _ = tree.wait_stages() => break false,
            req = control.recv() => match req {
                Some(Control::Kill) => break true,
                Some(Control::Signal(signal)) => send_signal(ctx, service, service_tree, signal),
                Some(Control::Stop { .. }) => {}
                None => {
                    tree.wait_stages().await;
                    break false;
                }
            },
        }
    };
    if killed {
        notice("shutdown command still running; killing it".into());
    }
    // Whatever the command left behind goes with it.
    tree.stop(StopSignal::KILL.number, Duration::ZERO).await;
    killed
}

/// `started (pid 12)`, or for a pipeline `started (pids 12, 13, 14)`.
fn started_text(pids: &[u32]) -> String {
    match pids {
        [pid] => format!("started (pid {pid})"),
        _ => format!(
            "started (pids {})",
            pids.iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The exit of a pipeline under `pipefail`: the last stage that failed decides.
pub(crate) fn pipefail(stages: &[Vec<String>], statuses: &[std::process::ExitStatus]) -> ExitInfo {
    let statuses: Vec<ExitStatus> = statuses.iter().copied().map(ExitStatus::from_std).collect();
    if statuses.len() <= 1 {
        return ExitInfo::new(statuses.first().copied().unwrap_or(ExitStatus::Code(0)));
    }
    match statuses.iter().rposition(|s| !s.success()) {
        None => ExitInfo::new(ExitStatus::Code(0)),
        Some(i) => ExitInfo {
            status: statuses[i],
            stage: Some((
                i + 1,
                stages
                    .get(i)
                    .and_then(|argv| argv.first())
                    .cloned()
                    .unwrap_or_default(),
            )),
            allowed: false,
        },
    }
}
