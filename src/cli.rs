//! Command-line definitions (clap) and dispatch to the library.
//!
//! Exit codes: 0 success, 1 a service failed (or `pk down` found nothing to stop), 2 usage or
//! config errors.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

mod attach;
mod remote;

use crate::control::{self, Op, WaitFor};
use crate::engine::{EngineHandle, Input, Intent, Runtime};
use crate::logs::LogEvent;
use crate::plan::{self, Plan};
use crate::process::Containment;
use crate::ui::ColorChoice;
use crate::ui::plain::PlainPrinter;
use crate::ui::{Renderer, tui};

#[derive(Debug, Parser)]
#[command(
    name = "pk",
    version,
    about = "A declarative process orchestrator for local development stacks"
)]
pub struct Cli {
    /// The config file (default: `$PK_FILE`, else pk.yaml / pk.yml in this or a parent directory).
    #[arg(short = 'f', long = "file", global = true, value_name = "FILE")]
    pub file: Option<PathBuf>,
    #[command(subcommand)]
    pub command: CliCommand,
}

#[derive(Debug, Subcommand)]
pub enum CliCommand {
    /// Start the stack (or the named services and what they depend on).
    Up {
        /// Services to start; default: every service that is not `disabled`.
        services: Vec<String>,
        /// Prefixed log lines on stdout instead of the dashboard.
        #[arg(long)]
        plain: bool,
        /// Colour the service prefixes.
        #[arg(long, value_enum, default_value = "auto")]
        color: ColorChoice,
        /// Run in the background; return once every service is up (see `pk ps`, `pk logs`,
        /// `pk down`).
        #[arg(short = 'd', long)]
        detach: bool,
        /// With -d: how long to wait for the services to come up.
        #[arg(long, value_parser = parse_duration, default_value = "60s", requires = "detach")]
        timeout: Duration,
        /// Restart (or signal) services whose `watch:` paths change.
        #[arg(long, overrides_with = "no_watch")]
        watch: bool,
        /// Ignore every `watch:` block (the default; overrides an earlier --watch).
        #[arg(long, overrides_with = "watch")]
        no_watch: bool,
        /// Dashboard: output kept per service (older lines are dropped), e.g. `8MiB`, `512K`.
        #[arg(long, value_name = "SIZE", default_value = "8MiB", value_parser = crate::ui::tui::parse_size)]
        history: usize,
    },
    /// Stop a running stack (dependents first) and wait until everything has stopped.
    Down {
        /// Override every service's shutdown grace, e.g. `10s`, `500ms`.
        #[arg(long, value_parser = parse_duration)]
        grace: Option<Duration>,
    },
    /// Open the dashboard on a running stack; quitting it leaves the stack running.
    Attach {
        /// Output kept per service, e.g. `8MiB`, `512K`.
        #[arg(long, value_name = "SIZE", default_value = "8MiB", value_parser = crate::ui::tui::parse_size)]
        history: usize,
    },
    /// The services of a running stack: state, pid, uptime, restarts, health, CPU, memory.
    Ps {
        /// JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Output of a running stack (history, then with -F what comes next).
    Logs {
        /// Services to show; default: all.
        services: Vec<String>,
        /// Keep printing new lines.
        #[arg(short = 'F', long)]
        follow: bool,
        /// Only the last N lines.
        #[arg(short = 'n', long = "tail", value_name = "N")]
        tail: Option<usize>,
        /// Only lines from this long ago, e.g. `5m`.
        #[arg(long, value_parser = parse_duration)]
        since: Option<Duration>,
        /// Prefix each line with its time (UTC).
        #[arg(short = 't', long)]
        timestamps: bool,
        #[arg(long, value_enum, default_value = "auto")]
        color: ColorChoice,
    },
    /// Start services of a running stack (and what they depend on); returns when they are up.
    Start {
        #[arg(required = true)]
        services: Vec<String>,
    },
    /// Stop services of a running stack (after what depends on them); returns when stopped.
    Stop {
        #[arg(required = true)]
        services: Vec<String>,
    },
    /// Restart services of a running stack; returns when they are up again.
    Restart {
        #[arg(required = true)]
        services: Vec<String>,
    },
    /// Wait until services of a running stack reach a condition (for scripts and CI).
    Wait {
        #[arg(required = true)]
        services: Vec<String>,
        /// The condition: started, healthy, completed, or up (what `pk up -d` waits for).
        #[arg(long = "for", value_enum, default_value = "up")]
        until: WaitFor,
        #[arg(long, value_parser = parse_duration, default_value = "60s")]
        timeout: Duration,
    },
    /// Validate the config: every error at once, with `file:line:col`.
    Check,
    /// Print the dependency graph.
    Graph {
        /// Graphviz dot instead of text.
        #[arg(long)]
        dot: bool,
    },
    /// Print the JSON Schema of pk.yaml.
    Schema,
}

/// Parses a human duration (`250ms`, `10s`, `1m30s`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let d: jiff::SignedDuration = text
        .trim()
        .parse()
        .map_err(|e| format!("`{text}` is not a duration like 500ms, 10s or 1m30s ({e})"))?;
    Duration::try_from(d).map_err(|_| format!("`{text}` is negative"))
}

/// Runs the command line; returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    match cli.command {
        CliCommand::Schema => {
            print_out(&crate::config::schema());
            0
        }
        CliCommand::Check => match load(cli.file.as_deref(), &cwd) {
            Ok(plan) => {
                print_out(&format!(
                    "{}: ok ({} services)\n",
                    plan.config_path.display(),
                    plan.services.len()
                ));
                0
            }
            Err(code) => code,
        },
        CliCommand::Graph { dot } => match load(cli.file.as_deref(), &cwd) {
            Ok(plan) => {
                print_out(&plan::render_graph(&plan, dot));
                0
            }
            Err(code) => code,
        },
        CliCommand::Up {
            services,
            plain,
            color,
            detach,
            timeout,
            watch,
            no_watch,
            history,
        } => up_command(
            cli.file.as_deref(),
            &cwd,
            services,
            UpOptions {
                plain,
                color: color.enabled(),
                detach,
                timeout,
                watch: watch && !no_watch,
                history,
            },
        ),
        CliCommand::Down { grace } => remote_call(cli.file.as_deref(), &cwd, |c| async move {
            let reaped = reap_leftovers(&c);
            match remote::down(&c, grace).await {
                1 if reaped => 0,
                code => code,
            }
        }),
        CliCommand::Attach { history } => {
            use std::io::IsTerminal as _;
            if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
                eprintln!("pk: attach needs a terminal (use `pk logs -F` or `pk ps` in scripts)");
                return 2;
            }
            remote_call(cli.file.as_deref(), &cwd, |c| async move {
                attach::attach(&c, history).await
            })
        }
        CliCommand::Ps { json } => remote_call(cli.file.as_deref(), &cwd, |c| async move {
            remote::ps(&c, json).await
        }),
        CliCommand::Logs {
            services,
            follow,
            tail,
            since,
            timestamps,
            color,
        } => {
            let args = remote::LogsArgs {
                services,
                follow,
                tail,
                since,
                timestamps,
                color: color.enabled(),
            };
            remote_call(cli.file.as_deref(), &cwd, |c| async move {
                remote::logs(&c, args).await
            })
        }
        CliCommand::Start { services } => remote_call(cli.file.as_deref(), &cwd, |c| async move {
            remote::act(&c, Op::Start { services }).await
        }),
        CliCommand::Stop { services } => remote_call(cli.file.as_deref(), &cwd, |c| async move {
            remote::act(&c, Op::Stop { services }).await
        }),
        CliCommand::Restart { services } => {
            remote_call(cli.file.as_deref(), &cwd, |c| async move {
                remote::act(
                    &c,
                    Op::Restart {
                        services,
                        dependents: false,
                    },
                )
                .await
            })
        }
        CliCommand::Wait {
            services,
            until,
            timeout,
        } => remote_call(cli.file.as_deref(), &cwd, |c| async move {
            remote::wait(&c, services, until, timeout).await
        }),
    }
}

/// Prints to stdout; a closed pipe (`pk schema | head`) is not an error worth a panic.
fn print_out(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    // The reader went away; there is nobody left to tell.
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

fn block_on<F: Future<Output = i32>>(fut: F) -> i32 {
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(fut),
        Err(e) => {
            eprintln!("pk: cannot start the async runtime: {e}");
            2
        }
    }
}

/// How `pk up` runs.
#[expect(clippy::struct_excessive_bools, reason = "mirrors the command line")]
pub struct UpOptions {
    pub plain: bool,
    pub color: bool,
    pub detach: bool,
    /// With `detach`: how long to wait for the services to come up.
    pub timeout: Duration,
    pub watch: bool,
    /// The dashboard's history budget per service.
    pub history: usize,
}

/// `pk up`: load, select, then run in the foreground or start in the background.
fn up_command(file: Option<&Path>, cwd: &Path, services: Vec<String>, opts: UpOptions) -> i32 {
    let plan = match load(file, cwd) {
        Ok(p) => p,
        Err(code) => return code,
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
        return block_on(remote::up_detached(
            &plan.config_path,
            args,
            names,
            opts.timeout,
        ));
    }
    block_on(up(plan, selected, opts))
}

/// Runs a client command against the stack of the config file found like `up` finds it (the
/// file is not parsed: a broken config must not stop `pk down`).
fn remote_call<F, Fut>(file: Option<&Path>, cwd: &Path, call: F) -> i32
where
    F: FnOnce(PathBuf) -> Fut,
    Fut: Future<Output = i32>,
{
    match plan::find_config(file, cwd) {
        Ok(path) => block_on(call(path)),
        Err(e) => {
            eprint!("{}", e.render(std::io::stderr().is_terminal()));
            2
        }
    }
}

fn load(file: Option<&Path>, cwd: &Path) -> Result<Plan, i32> {
    plan::load(file, cwd).map_err(|e| {
        eprint!("{}", e.render(std::io::stderr().is_terminal()));
        2
    })
}

/// Kills what a killed with SIGKILL pk left of this stack, and says so.
fn reap_leftovers(config: &Path) -> bool {
    if control::ensure_socket_dir().is_err() {
        return false;
    }
    match crate::process::leftovers::reap(&control::record_path(config)) {
        Ok(Some(r)) => {
            eprintln!(
                "pk: a previous pk (pid {}) for this config died without cleaning up; killed {} leftover {}",
                r.owner,
                r.killed,
                if r.cgroup.is_some() {
                    "processes"
                } else {
                    "process groups"
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
pub const DETACHED_ENV: &str = "PK_DETACHED";

/// The dashboard when stdout and stdin are a terminal (and neither `--plain` nor detached),
/// else the plain printer; None if the terminal cannot be set up (reported).
/// The short name of a containment for the dashboard.
pub fn containment_label(containment: &Containment) -> String {
    match containment.kind() {
        crate::process::ContainmentKind::Cgroup => "cgroup v2".into(),
        crate::process::ContainmentKind::ProcessGroup => "process groups".into(),
    }
}

fn start_renderer(
    plan: &Plan,
    opts: &UpOptions,
    containment: &Arc<Containment>,
    socket: &Path,
    ui_rx: crate::logs::LogReceiver,
    log_tx: &crate::logs::LogSender,
) -> Option<Renderer> {
    let detached = std::env::var_os(DETACHED_ENV).is_some();
    let names: Vec<String> = plan.services.iter().map(|s| s.name.clone()).collect();
    let dashboard = !opts.plain
        && !detached
        && std::io::stdout().is_terminal()
        && std::io::stdin().is_terminal();
    if !dashboard {
        // Detached, stdout is pk's log file: lifecycle lines only; output stays in `pk logs`.
        let color = opts.color && !detached;
        return Some(Renderer::Plain(
            PlainPrinter::new(&names, color)
                .notices_only(detached)
                .spawn(ui_rx),
        ));
    }
    let config = tui::TuiConfig {
        stack: plan.name.clone(),
        names,
        containment: Some(Arc::clone(containment)),
        containment_label: containment_label(containment),
        history_bytes: opts.history,
        exit_now: {
            let containment = Arc::clone(containment);
            let socket = socket.to_path_buf();
            Box::new(move || exit_now(&containment, &socket))
        },
    };
    match tui::spawn(config, ui_rx, log_tx.clone()) {
        Ok(pending) => Some(Renderer::Pending(pending)),
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
    if let Err(e) =
        containment.keep_record(&control::record_path(&plan.config_path), &plan.config_path)
    {
        eprintln!("pk: cannot write the run record (crash recovery will not work): {e}");
    }
    let (ui_tx, ui_rx) = tokio::sync::mpsc::unbounded_channel();
    let (log_tx, log_rx) = tokio::sync::mpsc::unbounded_channel();
    let renderer = start_renderer(&plan, &opts, &containment, &socket, ui_rx, &log_tx);
    let Some(printer) = renderer else {
        containment.cleanup();
        containment.drop_record();
        // Best effort, as below.
        let _ = std::fs::remove_file(&socket);
        return 2;
    };
    let log_files = plan.services.iter().map(|s| s.log_file.clone()).collect();
    let hub = crate::logs::hub::spawn(log_files, log_rx, ui_tx);
    // Sent first so the mechanism in use is the first thing a user sees.
    let _ = log_tx.send(LogEvent::Notice {
        service: None,
        text: format!("containment: {}", containment.describe()),
    });
    let plan = Arc::new(plan);
    let (runtime, handle) = Runtime::new(
        Arc::clone(&plan),
        &selected,
        Arc::clone(&containment),
        log_tx.clone(),
    );
    let runtime = runtime.hold_open(detached);
    let printer = printer.attach(handle.clone());
    let watcher = if opts.watch {
        match crate::watch::start(&plan, &selected, handle.clone(), &log_tx) {
            Ok(w) => w,
            Err(e) => {
                eprintln!("pk: {e}");
                containment.cleanup();
                containment.drop_record();
                // Best effort, as below.
                let _ = std::fs::remove_file(&socket);
                let _ = log_tx.send(LogEvent::End);
                let _ = printer.join();
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
        metrics: {
            let sampler = std::sync::Mutex::new(crate::metrics::Sampler::new());
            let containment = Arc::clone(&containment);
            Arc::new(move |snap: &crate::engine::Snapshot| {
                let Ok(mut sampler) = sampler.lock() else {
                    return vec![(None, None); snap.services.len()];
                };
                sampler
                    .sample(&containment, snap)
                    .into_iter()
                    .map(|u| (u.map(|u| u.cpu_percent), u.map(|u| u.rss_bytes)))
                    .collect()
            })
        },
    });
    let signals = tokio::spawn(forward_signals(
        handle,
        Arc::clone(&containment),
        socket.clone(),
    ));
    let outcome = runtime.run().await;
    drop(watcher);
    signals.abort();
    serving.abort();
    // Every tree has drained by now; this only guards against a bug leaving one behind.
    containment.kill_all();
    containment.cleanup();
    containment.drop_record();
    // Best effort: a leftover socket file is detected as stale by the next `pk up`.
    let _ = std::fs::remove_file(&socket);
    let _ = log_tx.send(LogEvent::End);
    // The printer only fails if stdout is gone, and then there is nothing to report to.
    let _ = printer.join();
    outcome.exit_code
}

/// The third Ctrl-C: kill every tree, give the terminal back, exit at once.
fn exit_now(containment: &Containment, socket: &Path) -> ! {
    tui::restore_terminal();
    containment.kill_all();
    containment.cleanup();
    containment.drop_record();
    let _ = std::fs::remove_file(socket);
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
