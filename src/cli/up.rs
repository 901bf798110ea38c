//! `pk up`: load and select, then run the stack in the foreground (runtime, renderer, control
//! socket, watcher, signals) or start it in the background.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::{block_on, load, remote};
use crate::control;
use crate::engine::{EngineHandle, Input, Intent, Runtime};
use crate::logs::LogEvent;
use crate::plan::{self, Plan};
use crate::process::{Containment, WinSize};
use crate::ui::plain::PlainPrinter;
use crate::ui::{Renderer, tui};

/// How `pk up` runs.
#[expect(clippy::struct_excessive_bools, reason = "mirrors the command line")]
pub(crate) struct UpOptions {
    pub plain: bool,
    pub color: bool,
    pub detach: bool,
    /// With `detach`: how long to wait for the services to come up.
    pub timeout: Duration,
    pub watch: bool,
    /// The dashboard's history budget per service.
    pub history: usize,
    /// `--scale NAME=N`: copies per declared service, over `replicas:`.
    pub scale: Vec<(String, u32)>,
    /// `-n`: only the services in these namespaces.
    pub namespaces: Vec<String>,
}

/// `pk up`: load, select, then run in the foreground or start in the background.
pub(super) fn up_command(
    file: &[PathBuf],
    cwd: &Path,
    services: Vec<String>,
    opts: UpOptions,
) -> i32 {
    let plan = match load(file, cwd).and_then(|p| {
        plan::scale(p, &opts.scale).map_err(|e| {
            eprint!("{}", e.render(std::io::stderr().is_terminal()));
            2
        })
    }) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let plan = if opts.namespaces.is_empty() {
        plan
    } else {
        match plan::only_namespaces(&plan, &opts.namespaces) {
            Ok(p) => p,
            Err(e) => {
                eprint!("{}", e.render(std::io::stderr().is_terminal()));
                return 2;
            }
        }
    };
    let selected = match plan::select(&plan, &services) {
        Ok(s) => s,
        Err(e) => {
            eprint!("{}", e.render(std::io::stderr().is_terminal()));
            return 2;
        }
    };
    if opts.detach {
        let names = plan
            .services
            .iter()
            .zip(&selected)
            .filter(|&(_, &on)| on)
            .map(|(s, _)| s.name.clone())
            .collect();
        let mut args = services;
        if opts.watch {
            args.push("--watch".into());
        }
        for (name, count) in &opts.scale {
            args.push(format!("--scale={name}={count}"));
        }
        for ns in &opts.namespaces {
            args.extend(["-n".to_owned(), ns.clone()]);
        }
        let files = match plan::find_configs(file, cwd) {
            Ok(f) => f,
            Err(e) => {
                eprint!("{}", e.render(std::io::stderr().is_terminal()));
                return 2;
            }
        };
        return block_on(up_detached(
            &plan.config_path,
            &files,
            args,
            names,
            opts.timeout,
        ));
    }
    // Before the runtime's threads exist: see `reserve_descriptors`.
    crate::process::reserve_descriptors(plan.services.len());
    block_on(up(plan, selected, opts))
}

/// Kills what a pk killed with SIGKILL left of this stack, and says so.
pub(super) fn reap_leftovers(config: &Path) -> bool {
    if control::ensure_socket_dir().is_err() {
        return false;
    }
    match crate::process::leftovers::reap(&control::record_path(config)) {
        Ok(Some(r)) => {
            // The dead pk's socket and lock file, unless a live pk serves them by now.
            if let Err(e) = control::Server::remove_stale(config) {
                eprintln!("pk: cannot remove the control socket of a previous run: {e}");
            }
            eprintln!(
                "pk: a previous pk (pid {}) for this config died without cleaning up; killed {} leftover {}",
                r.owner,
                r.killed,
                if r.killed == 1 {
                    "process"
                } else {
                    "processes"
                }
            );
            true
        }
        Ok(None) => false,
        Err(e) => {
            eprintln!("pk: cannot check for leftovers of a previous run: {e}");
            false
        }
    }
}

/// Set in the environment of the background pk that `pk up -d` starts.
pub(crate) const DETACHED_ENV: &str = "PK_DETACHED";

/// The short name of a containment for the dashboard.
pub(crate) fn containment_label(containment: &Containment) -> String {
    match containment.kind() {
        crate::process::ContainmentKind::Cgroup => "cgroup v2".into(),
        crate::process::ContainmentKind::ProcessGroup => "process groups".into(),
    }
}

/// What a renderer is fed from and reports to.
struct RendererIo {
    ui_rx: crate::logs::LogReceiver,
    /// The dashboard's own notices go back through the hub.
    log_tx: crate::logs::LogSender,
    /// The dashboard's queue, for the hub to shed from.
    backlog: crate::logs::Backlog,
    /// The plain printer gives written output bytes back here.
    gate: crate::logs::OutputGate,
    /// The plain printer could not write stdout.
    failed: tokio::sync::oneshot::Sender<()>,
}

/// The dashboard may lag under a flood and then sheds lines; the plain printer never does: the
/// pumps wait for it.
fn ui_budget(renderer: &Renderer, backlog: crate::logs::Backlog) -> crate::logs::hub::UiBudget {
    use crate::logs::hub::{LaggingRenderer, UiBudget};
    if matches!(renderer, Renderer::Pending(_)) {
        UiBudget::Lagging(LaggingRenderer {
            backlog,
            budget: crate::logs::DASHBOARD_BACKLOG,
        })
    } else {
        UiBudget::Printer
    }
}

/// Services never run unseen: once the plain printer could not write stdout, stop the stack.
fn stop_when_output_lost(engine: EngineHandle, lost: tokio::sync::oneshot::Receiver<()>) {
    tokio::spawn(async move {
        if lost.await.is_ok() {
            // The engine only stops listening once everything has stopped.
            let _ = engine
                .inputs
                .send(Input::Intent(Intent::Shutdown { grace: None }));
        }
    });
}

/// The dashboard when stdout and stdin are a terminal (and neither `--plain` nor detached),
/// else the plain printer; None if the terminal cannot be set up (reported).
///
/// With it, the window size of `tty: true` services: the dashboard's log pane (which the
/// dashboard keeps up to date), else pk's terminal size, else 120×24.
fn start_renderer(
    plan: &Plan,
    opts: &UpOptions,
    containment: &Arc<Containment>,
    socket: &Path,
    io: RendererIo,
) -> Option<(Renderer, tokio::sync::watch::Receiver<WinSize>)> {
    let RendererIo {
        ui_rx,
        log_tx,
        backlog,
        gate,
        failed,
    } = io;
    let detached = std::env::var_os(DETACHED_ENV).is_some();
    let names: Vec<String> = plan.services.iter().map(|s| s.name.clone()).collect();
    let dashboard = !opts.plain
        && !detached
        && std::io::stdout().is_terminal()
        && std::io::stdin().is_terminal();
    if !dashboard {
        let size = WinSize::of_terminal(std::io::stdout()).unwrap_or(WinSize::DEFAULT);
        // Detached, stdout is pk's log file: lifecycle lines only; output stays in `pk logs`.
        let color = opts.color && !detached;
        let printer = PlainPrinter::new(&names, color)
            .terminal_output(plan.services.iter().map(|s| s.tty).collect())
            .notices_only(detached)
            .terminal(std::io::stdout().is_terminal())
            .spawn(ui_rx, gate, failed);
        return Some((
            Renderer::Plain(printer),
            tokio::sync::watch::channel(size).1,
        ));
    }
    let (cols, rows) = crossterm::terminal::size().unwrap_or((120, 24));
    let (pty_size, pty_sizes) =
        tokio::sync::watch::channel(tui::log_pane_size(cols, rows, plan.services.len()));
    let config = tui::TuiConfig {
        stack: plan.name.clone(),
        names,
        containment: Some(Arc::clone(containment)),
        containment_label: containment_label(containment),
        history_bytes: opts.history,
        backlog: Some(backlog.clone()),
        exit_now: {
            let containment = Arc::clone(containment);
            let socket = socket.to_path_buf();
            Box::new(move || exit_now(&containment, &socket))
        },
        pty_size: Some(pty_size),
    };
    match tui::spawn(config, ui_rx, log_tx) {
        Ok(pending) => Some((Renderer::Pending(pending), pty_sizes)),
        Err(e) => {
            eprintln!("pk: cannot set up the terminal for the dashboard: {e} (try --plain)");
            None
        }
    }
}

async fn up(plan: Plan, selected: Vec<bool>, opts: UpOptions) -> i32 {
    let detached = std::env::var_os(DETACHED_ENV).is_some();
    let server = match control::Server::bind(&plan.config_path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("pk: {e}");
            return 2;
        }
    };
    reap_leftovers(&plan.config_path);
    let socket = server.path().to_path_buf();
    let containment = Arc::new(Containment::detect());
    keep_crash_records(&containment, &plan.config_path, &socket);
    let mut plan = plan;
    if let Err(code) = run_env_cmds(&mut plan, &containment).await {
        clean_up(&containment, &socket);
        return code;
    }
    let (ui_tx, ui_rx) = tokio::sync::mpsc::unbounded_channel();
    let (log_tx, log_rx) = tokio::sync::mpsc::unbounded_channel();
    let backlog = crate::logs::Backlog::default();
    let gate = crate::logs::OutputGate::default();
    let (output_failed, output_lost) = tokio::sync::oneshot::channel();
    let io = RendererIo {
        ui_rx,
        log_tx: log_tx.clone(),
        backlog: backlog.clone(),
        gate: gate.clone(),
        failed: output_failed,
    };
    let renderer = start_renderer(&plan, &opts, &containment, &socket, io);
    let Some((printer, pty_sizes)) = renderer else {
        clean_up(&containment, &socket);
        return 2;
    };
    let log_files = log_files(&plan);
    let budget = ui_budget(&printer, backlog);
    let hub = crate::logs::hub::spawn(log_files, log_rx, gate.clone(), ui_tx, budget);
    // Sent first so the mechanism in use is the first thing a user sees.
    let _ = log_tx.send(LogEvent::Notice {
        service: None,
        text: format!("containment: {}", containment.describe()),
    });
    let plan = kept_to_the_exit(plan);
    let (runtime, handle) = Runtime::new(
        Arc::clone(&plan),
        &selected,
        Arc::clone(&containment),
        log_tx.clone(),
        gate,
    );
    let runtime = runtime.hold_open(detached).pty_size(pty_sizes);
    let printer = printer.attach(handle.clone());
    if !detached {
        stop_when_output_lost(handle.clone(), output_lost);
    }
    let watcher = if opts.watch {
        match crate::watch::start(&plan, &selected, handle.clone(), &log_tx) {
            Ok(w) => w,
            Err(e) => {
                eprintln!("pk: {e}");
                clean_up(&containment, &socket);
                let _ = log_tx.send(LogEvent::End);
                let _ = finish(printer).await;
                return 2;
            }
        }
    } else {
        None
    };
    let serving = server.serve(control::ServerContext {
        engine: handle.clone(),
        hub,
        plan: Arc::clone(&plan),
        containment: Arc::clone(&containment),
        metrics: ps_metrics(&containment),
    });
    // Once a burst of starts (or restarts) is over, pk gives back the pages start-up touched.
    let resting = tokio::spawn(crate::memory::rest_after_bursts(handle.snapshots.clone()));
    let signals = tokio::spawn(forward_signals(
        handle,
        Arc::clone(&containment),
        socket.clone(),
    ));
    let outcome = runtime.run().await;
    stop_escapees(&plan, &containment, &log_tx).await;
    drop(watcher);
    resting.abort();
    signals.abort();
    serving.abort();
    // Every tree has drained by now; this only guards against a bug leaving one behind.
    containment.kill_all();
    clean_up(&containment, &socket);
    let _ = log_tx.send(LogEvent::End);
    // The printer has said on stderr what went wrong; the exit code says output was lost.
    let exit_code = match finish(printer).await {
        Err(_) if outcome.exit_code == 0 => 1,
        _ => outcome.exit_code,
    };
    if detached && exit_code == 0 {
        // A background run that ended well leaves no log behind; a failed one keeps it.
        let _ = std::fs::remove_file(socket.with_extension("log"));
    }
    exit_code
}

/// The plan, shared, and never freed: pk exits when `up` returns, and freeing it (a
/// `ServiceSpec` per service, each with its own environment) an allocation at a time on the way
/// out was ~25 ms of a 1,000-service teardown (docs/decisions/0010-clone-into-cgroup.md).
fn kept_to_the_exit(plan: Plan) -> Arc<Plan> {
    let plan = Arc::new(plan);
    std::mem::forget(Arc::clone(&plan));
    plan
}

/// Where the hub keeps output: each service's `log_file`, and the stack's file (process-compose's
/// top-level `log_location`).
fn log_files(plan: &Plan) -> crate::logs::hub::LogFiles {
    crate::logs::hub::LogFiles {
        services: plan.services.iter().map(|s| s.log_file.clone()).collect(),
        stack: plan
            .stack_log
            .as_ref()
            .map(|log| crate::logs::hub::StackFile {
                path: log.path.clone(),
                max_size: log.max_size,
                keep: log.keep,
                names: plan.services.iter().map(|s| s.name.clone()).collect(),
            }),
    }
}

/// process-compose `env_cmds`: before any service starts, each command runs in turn, contained
/// like a service, for at most `EnvCmdSpec::TIMEOUT`; its output becomes a variable of the
/// services. A failure is a located warning and leaves the variable unset (as process-compose
/// logs it and goes on); with `is_strict: true` it is an error and nothing starts (exit 2).
async fn run_env_cmds(plan: &mut Plan, containment: &Arc<Containment>) -> Result<(), i32> {
    use crate::process::{OwnedSpawnSpec, Role, leaf_name};
    use crate::vocab::{ExitStatus, command_argv, fmt_duration};
    let color = std::io::stderr().is_terminal();
    for i in 0..plan.env_cmds.len() {
        let cmd = &plan.env_cmds[i];
        let spec = OwnedSpawnSpec {
            stages: vec![command_argv(&cmd.command)],
            cwd: cmd.cwd.clone(),
            env: cmd.env.clone(),
            tty: None,
        };
        let leaf = leaf_name(&cmd.name, Role::Env);
        let timeout = plan::EnvCmdSpec::TIMEOUT;
        let (why, stderr) = match containment.run_captured(leaf, spec, timeout).await {
            Ok(run) => match run.status {
                Some(status) if status.success() => {
                    plan.set_env_cmd_output(i, &String::from_utf8_lossy(&run.stdout));
                    continue;
                }
                Some(status) => (ExitStatus::from_std(status).to_string(), run.stderr),
                None => (
                    format!("timed out after {}", fmt_duration(timeout)),
                    run.stderr,
                ),
            },
            Err(e) => (format!("could not start: {e}"), Vec::new()),
        };
        eprint!(
            "{}",
            cmd.failure(&why, &String::from_utf8_lossy(&stderr), color)
        );
        if cmd.strict {
            return Err(2);
        }
    }
    Ok(())
}

/// Removes what this run created: its cgroups, run record and socket file.
fn clean_up(containment: &Containment, socket: &Path) {
    containment.cleanup();
    containment.drop_record();
    // Best effort: a leftover socket file is detected as stale by the next `pk up`.
    let _ = std::fs::remove_file(socket);
}

/// Before anything is spawned: the run record, and what pk's guard must clean if pk dies.
fn keep_crash_records(containment: &Containment, config: &Path, socket: &Path) {
    crate::process::guard::note_socket(socket, &control::lock_path(config));
    if let Err(e) = containment.keep_record(&control::record_path(config), config) {
        eprintln!("pk: cannot write the run record (crash recovery will not work): {e}");
    }
}

/// Process groups: what left its service's group (pk adopted it as a child subreaper, or it
/// carries the run marker) is stopped last, with the longest grace of the stack, and said so.
async fn stop_escapees(plan: &Plan, containment: &Containment, log_tx: &crate::logs::LogSender) {
    let grace = plan
        .services
        .iter()
        .map(|s| s.shutdown.grace)
        .max()
        .unwrap_or_default();
    let escaped = containment.stop_escapees(grace).await;
    if escaped > 0 {
        // The printer is still attached here; a failed send means it is gone already.
        let _ = log_tx.send(LogEvent::Notice {
            service: None,
            text: format!(
                "stopped {escaped} {} that had left {} service's process group",
                if escaped == 1 { "process" } else { "processes" },
                if escaped == 1 { "its" } else { "their" },
            ),
        });
    }
}

/// CPU and memory of every service's tree for `pk ps`, from one sampler (CPU % is the change
/// since the previous call).
fn ps_metrics(containment: &Arc<Containment>) -> Arc<control::MetricsFn> {
    let sampler = std::sync::Mutex::new(crate::metrics::Sampler::new());
    let containment = Arc::clone(containment);
    Arc::new(move |snap: &crate::engine::Snapshot| {
        let Ok(mut sampler) = sampler.lock() else {
            return vec![(None, None); snap.services.len()];
        };
        sampler
            .sample(&containment, &snap.runs())
            .into_iter()
            .map(|u| (u.map(|u| u.cpu_percent), u.map(|u| u.rss_bytes)))
            .collect()
    })
}

/// The third Ctrl-C: kill every tree, give the terminal back, exit at once.
fn exit_now(containment: &Containment, socket: &Path) -> ! {
    tui::restore_terminal();
    containment.kill_all();
    containment.cleanup();
    containment.drop_record();
    let _ = std::fs::remove_file(socket);
    crate::process::guard::dismiss();
    eprintln!("pk: exiting now; every service tree was killed");
    std::process::exit(130);
}

/// Ctrl-C (and SIGTERM/SIGHUP): 1st graceful teardown, 2nd kill what is left, 3rd exit now.
async fn forward_signals(engine: EngineHandle, containment: Arc<Containment>, socket: PathBuf) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        eprintln!("pk: cannot install signal handlers; Ctrl-C will not tear down gracefully");
        return;
    };
    let mut presses = 0;
    loop {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
            _ = hup.recv() => {}
        }
        presses += 1;
        let intent = match presses {
            1 => Intent::Shutdown { grace: None },
            2 => Intent::ForceKill,
            _ => exit_now(&containment, &socket),
        };
        // The engine only stops listening once everything has stopped.
        let _ = engine.inputs.send(Input::Intent(intent));
    }
}

/// `pk up -d`: starts pk in the background on the same config and returns once every selected
/// service is up (0), or says which did not (1).
pub(super) async fn up_detached(
    config: &Path,
    files: &[PathBuf],
    requested: Vec<String>,
    names: Vec<String>,
    timeout: Duration,
) -> i32 {
    let log = control::socket_path(config).with_extension("log");
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("pk: cannot find pk's own executable: {e}");
            return 2;
        }
    };
    if let Err(e) = control::ensure_socket_dir() {
        return remote::fail(&e);
    }
    if control::ps(config).await.is_ok() {
        eprintln!("pk: pk is already running for {}", config.display());
        return 2;
    }
    let mut args: Vec<String> = files
        .iter()
        .flat_map(|f| ["-f".to_owned(), f.display().to_string()])
        .collect();
    args.extend(["up".into(), "--plain".into()]);
    args.extend(requested);
    let pid = match crate::process::spawn_detached(&exe, &args, &[(DETACHED_ENV, "1")], &log) {
        Ok(pid) => pid,
        Err(e) => {
            eprintln!("pk: cannot start pk in the background: {e}");
            return 2;
        }
    };
    // The background pk binds its socket first thing; poll for it, bounded.
    let deadline = tokio::time::Instant::now() + control::QUICK_TIMEOUT;
    loop {
        match control::ps(config).await {
            Ok(_) => break,
            Err(_)
                if tokio::time::Instant::now() < deadline
                    && crate::process::leftovers::is_running(pid) =>
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => {
                eprintln!(
                    "pk: the background pk (pid {pid}) did not come up: {e}; see {}",
                    log.display()
                );
                return 2;
            }
        }
    }
    println!(
        "pk: started in the background (pid {pid}); log: {}",
        log.display()
    );
    let code = remote::wait(config, names, control::WaitFor::Up, timeout).await;
    if code == 0 {
        println!("pk: every service is up; `pk ps`, `pk logs -F`, `pk down`");
    }
    code
}

/// Waits until the renderer has shown everything, off the runtime's threads: the renderer
/// finishes only after the log hub, a task on this runtime, has passed it `LogEvent::End`
/// (a blocking join would deadlock a single-threaded runtime).
async fn finish(printer: Renderer) -> std::io::Result<()> {
    tokio::task::spawn_blocking(move || printer.join())
        .await
        .unwrap_or_else(|_| Err(std::io::Error::other("the renderer panicked")))
}
