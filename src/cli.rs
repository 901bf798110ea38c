//! Command-line definitions (clap) and dispatch to the library.
//!
//! Exit codes: 0 success, 1 a service failed (or `pk down` found nothing to stop), 2 usage or
//! config errors.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::control::{self, ControlError, DownEvent};
use crate::engine::{EngineHandle, Input, Intent, Runtime};
use crate::logs::LogEvent;
use crate::plan::{self, Plan};
use crate::process::Containment;
use crate::ui::ColorChoice;
use crate::ui::plain::PlainPrinter;

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
    },
    /// Stop a running stack (dependents first) and wait until everything has stopped.
    Down {
        /// Override every service's shutdown grace, e.g. `10s`, `500ms`.
        #[arg(long, value_parser = parse_duration)]
        grace: Option<Duration>,
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
            plain: _plain,
            color,
        } => {
            let plan = match load(cli.file.as_deref(), &cwd) {
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
            block_on(up(plan, selected, color.enabled()))
        }
        CliCommand::Down { grace } => {
            let plan = match load(cli.file.as_deref(), &cwd) {
                Ok(p) => p,
                Err(code) => return code,
            };
            block_on(down(&plan.config_path, grace))
        }
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

fn load(file: Option<&Path>, cwd: &Path) -> Result<Plan, i32> {
    plan::load(file, cwd).map_err(|e| {
        eprint!("{}", e.render(std::io::stderr().is_terminal()));
        2
    })
}

async fn up(plan: Plan, selected: Vec<bool>, color: bool) -> i32 {
    let server = match control::Server::bind(&plan.config_path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("pk: {e}");
            return 2;
        }
    };
    let socket = server.path().to_path_buf();
    let containment = Arc::new(Containment::detect());
    let names: Vec<String> = plan.services.iter().map(|s| s.name.clone()).collect();
    let (log_tx, log_rx) = tokio::sync::mpsc::unbounded_channel();
    let printer = PlainPrinter::new(&names, color).spawn(log_rx);
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
    let serving = server.serve(handle.clone());
    let signals = tokio::spawn(forward_signals(
        handle,
        Arc::clone(&containment),
        socket.clone(),
    ));
    let outcome = runtime.run().await;
    signals.abort();
    serving.abort();
    // Every tree has drained by now; this only guards against a bug leaving one behind.
    containment.kill_all();
    containment.cleanup();
    // Best effort: a leftover socket file is detected as stale by the next `pk up`.
    let _ = std::fs::remove_file(&socket);
    let _ = log_tx.send(LogEvent::End);
    // The printer only fails if stdout is gone, and then there is nothing to report to.
    let _ = printer.join();
    outcome.exit_code
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
            _ => {
                containment.kill_all();
                containment.cleanup();
                let _ = std::fs::remove_file(&socket);
                eprintln!("pk: exiting now; every service tree was killed");
                std::process::exit(130);
            }
        };
        // The engine only stops listening once everything has stopped.
        let _ = engine.inputs.send(Input::Intent(intent));
    }
}

async fn down(config: &Path, grace: Option<Duration>) -> i32 {
    let result = control::down(config, grace, |DownEvent::State { service, state }| {
        println!("{service}: {state}");
    })
    .await;
    match result {
        Ok(_) => {
            println!("stopped");
            0
        }
        Err(e @ ControlError::NotRunning { .. }) => {
            eprintln!("pk: {e}");
            1
        }
        Err(e) => {
            eprintln!("pk: {e}");
            2
        }
    }
}
