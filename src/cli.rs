//! Command-line definitions (clap) and dispatch to the library.
//!
//! Exit codes: 0 success, 1 a service failed (or `pk down` found nothing to stop), 2 usage or
//! config errors.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, Subcommand};

mod attach;
pub(crate) mod completions;
mod export;
mod import;
mod probe;
mod remote;
mod up;

pub(crate) use up::UpOptions;

use crate::control::{Op, WaitFor};
use crate::plan::{self, Plan};
use crate::ui::ColorChoice;

#[derive(Debug, Parser)]
#[command(
    name = "pk",
    version,
    about = "A declarative process orchestrator for local development stacks"
)]
pub struct Cli {
    /// The config file; repeat to merge several of one format in order (default: `$PK_FILE`,
    /// else pk.yaml / pk.yml in this or a parent directory, else process-compose.yaml (+ its
    /// override file) or a Procfile in this directory).
    #[arg(short = 'f', long = "file", global = true, value_name = "FILE")]
    pub(crate) file: Vec<PathBuf>,
    #[command(subcommand)]
    pub(crate) command: CliCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum CliCommand {
    /// Start the stack (or the named services and what they depend on).
    Up {
        /// Services to start; default: every service that is not `disabled`.
        #[arg(value_name = completions::SERVICE)]
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
        /// Only the services in this namespace (repeatable; process-compose's `namespace:`);
        /// dependencies on services outside it are not waited for.
        #[arg(short = 'n', long = "namespace", value_name = "NS")]
        namespace: Vec<String>,
        /// Restart (or signal) services whose `watch:` paths change.
        #[arg(long, overrides_with = "no_watch")]
        watch: bool,
        /// Ignore every `watch:` block (the default; overrides an earlier --watch).
        #[arg(long, overrides_with = "watch")]
        no_watch: bool,
        /// Dashboard: output kept per service (older lines are dropped), e.g. `8MiB`, `512K`.
        #[arg(long, value_name = "SIZE", default_value = "8MiB", value_parser = crate::ui::tui::parse_size)]
        history: usize,
        /// Run this many copies of services, e.g. `--scale web=3,worker=2` (overrides
        /// `replicas:`); copy N of `web` is `web-N`.
        #[arg(long, value_name = "NAME=N", value_delimiter = ',', value_parser = parse_scale)]
        scale: Vec<(String, u32)>,
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
        #[arg(value_name = completions::SERVICE)]
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
        #[arg(required = true, value_name = completions::SERVICE)]
        services: Vec<String>,
    },
    /// Stop services of a running stack (after what depends on them); returns when stopped.
    Stop {
        #[arg(required = true, value_name = completions::SERVICE)]
        services: Vec<String>,
    },
    /// Restart services of a running stack; returns when they are up again.
    Restart {
        #[arg(required = true, value_name = completions::SERVICE)]
        services: Vec<String>,
    },
    /// Wait until services of a running stack reach a condition (for scripts and CI).
    Wait {
        #[arg(required = true, value_name = completions::SERVICE)]
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
    /// Run one readiness check (for scripts, CI and exported units); exit 0 when it passes,
    /// 1 when it fails (naming what failed).
    Probe(probe::ProbeArgs),
    /// Write the stack out for another engine (systemd units, a Nomad job).
    Export {
        #[command(subcommand)]
        target: export::ExportTarget,
    },
    /// Translate a Procfile or process-compose file into pk.yaml, with a comment wherever the
    /// meaning changed or a key was dropped.
    Import {
        /// What to translate: a Procfile, or process-compose files (several merge in order,
        /// as `-f a -f b` does).
        #[arg(required = true, num_args = 1..)]
        files: Vec<PathBuf>,
        /// Write here instead of to stdout (refuses to overwrite an existing file).
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Print a shell completion script (service names complete from the config).
    Completions {
        #[arg(value_enum)]
        shell: completions::Shell,
    },
    /// Print pk's man page (roff; `pk man | man -l -`).
    Man,
    /// The service names of the config, one a line: what the completion scripts call.
    #[command(name = "__complete-services", hide = true)]
    CompleteServices,
}

/// `NAME=N` of `--scale`.
fn parse_scale(text: &str) -> Result<(String, u32), String> {
    let (name, count) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not NAME=N, e.g. web=3"))?;
    let count = count
        .trim()
        .parse()
        .map_err(|_| format!("`{count}` in `{text}` is not a whole number"))?;
    Ok((name.trim().to_owned(), count))
}

impl Cli {
    /// Whether this command runs a stack in this process (`pk up` without `-d`; the background
    /// pk that `-d` starts runs it): such a pk gets a crash guard.
    pub fn runs_a_stack(&self) -> bool {
        matches!(self.command, CliCommand::Up { detach: false, .. })
    }
}

/// Parses a human duration (`250ms`, `10s`, `1m30s`).
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let d: jiff::SignedDuration = text
        .trim()
        .parse()
        .map_err(|e| format!("`{text}` is not a duration like 500ms, 10s or 1m30s ({e})"))?;
    Duration::try_from(d).map_err(|_| format!("`{text}` is negative"))
}

/// Where pk's own diagnostics go (`tracing` events from containment, cgroups, the watcher):
/// stderr, as `pk: warn: …` lines, filtered by `PK_LOG` (default `warn`: warnings and errors
/// always reach the user; `PK_LOG=debug` shows more, `PK_LOG=off` nothing). On the dashboard,
/// stderr is captured into pk's own log lines; detached, it goes to `<socket>.log`.
pub(crate) fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("PK_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    // A second call (tests calling `run` twice) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .event_format(PkFormat)
        .try_init();
}

/// `pk: <level>: <message> <fields>`.
struct PkFormat;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for PkFormat
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let level = event.metadata().level().as_str().to_ascii_lowercase();
        write!(writer, "pk: {level}: ")?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Runs the command line; returns the process exit code.
#[expect(clippy::too_many_lines, reason = "one arm per command, no catch-all")]
pub fn run(cli: Cli) -> i32 {
    init_logging();
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let file = cli.file.as_slice();
    match cli.command {
        CliCommand::Schema => {
            print_out(&crate::config::schema());
            0
        }
        CliCommand::Completions { shell } => {
            print_out(&completions::script(shell));
            0
        }
        CliCommand::Man => {
            use std::io::Write;
            // A closed pipe (`pk man | head`) is not an error worth reporting.
            let _ = std::io::stdout().lock().write_all(&completions::man_page());
            0
        }
        CliCommand::CompleteServices => completions::complete_services(&cli.file, &cwd),
        CliCommand::Check => match load(&cli.file, &cwd) {
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
        CliCommand::Graph { dot } => match load(&cli.file, &cwd) {
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
            scale,
            namespace,
        } => up::up_command(
            &cli.file,
            &cwd,
            services,
            UpOptions {
                plain,
                color: color.enabled(),
                detach,
                timeout,
                watch: watch && !no_watch,
                history,
                scale,
                namespaces: namespace,
            },
        ),
        CliCommand::Probe(args) => probe::probe_command(args, &cwd),
        CliCommand::Export { target } => export::export_command(target, &cli.file, &cwd),
        CliCommand::Down { grace } => remote::remote_call(file, &cwd, |c| async move {
            let reaped = up::reap_leftovers(&c);
            match remote::down(&c, grace).await {
                1 if reaped => 0,
                code => code,
            }
        }),
        CliCommand::Attach { history } => {
            if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
                eprintln!("pk: attach needs a terminal (use `pk logs -F` or `pk ps` in scripts)");
                return 2;
            }
            remote::remote_call(
                file,
                &cwd,
                |c| async move { attach::attach(&c, history).await },
            )
        }
        CliCommand::Ps { json } => {
            remote::remote_call(file, &cwd, |c| async move { remote::ps(&c, json).await })
        }
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
            remote::remote_call(file, &cwd, |c| async move { remote::logs(&c, args).await })
        }
        CliCommand::Start { services } => remote::remote_call(file, &cwd, |c| async move {
            remote::act(&c, Op::Start { services }).await
        }),
        CliCommand::Stop { services } => remote::remote_call(file, &cwd, |c| async move {
            remote::act(&c, Op::Stop { services }).await
        }),
        CliCommand::Restart { services } => remote::remote_call(file, &cwd, |c| async move {
            let op = Op::Restart {
                services,
                dependents: false,
            };
            remote::act(&c, op).await
        }),
        CliCommand::Wait {
            services,
            until,
            timeout,
        } => remote::remote_call(file, &cwd, |c| async move {
            remote::wait(&c, services, until, timeout).await
        }),
        CliCommand::Import { files, output } => import::run(&files, output.as_deref(), &cwd),
    }
}

/// Prints to stdout; a closed pipe (`pk schema | head`) is not an error worth a panic.
fn print_out(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    // The reader went away; there is nobody left to tell.
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// Runs `fut` on a runtime with two workers. A single-threaded runtime (3 threads at rest
/// instead of 5) was measured: teardowns of 200 and 1,000 services took 2–3× longer on a busy
/// machine, since the signalling, reaping and cgroup work of every tree then share one thread
/// (docs/decisions/0006-o1-engine-and-teardown.md).
pub(crate) fn block_on<F: Future<Output = i32>>(fut: F) -> i32 {
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

pub(crate) fn load(file: &[PathBuf], cwd: &Path) -> Result<Plan, i32> {
    plan::load(file, cwd).map_err(|e| {
        eprint!("{}", e.render(std::io::stderr().is_terminal()));
        2
    })
}
