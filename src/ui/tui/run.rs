//! The dashboard's loop, on its own thread: ingests log events, follows snapshots, reads keys
//! and mouse events, samples CPU/memory once a second, and redraws when something changed.
//!
//! Invariants: the log channel is drained in bounded batches whose parsing costs at most about
//! one history budget per service, so input is read between batches even under a flood; frames are drawn at most every `FRAME` (dropped frames, never
//! dropped lines); the terminal is restored before this thread ends, whatever the path.

use std::io::{self, BufWriter};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossterm::event::{Event, EventStream};
use futures_util::StreamExt;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use tokio::time::Instant;

use super::app::{App, Outcome};
use super::history::LogStore;
use super::terminal;
use super::view;
use crate::engine::{EngineHandle, Input, Intent, Snapshot};
use crate::logs::{LogEvent, LogReceiver};
use crate::metrics::{Sampler, Usage};
use crate::process::{Containment, WinSize};

/// Shortest time between two frames (≤ 30 fps).
const FRAME: Duration = Duration::from_millis(33);
/// Most output taken from the channel in one batch before input is looked at again.
const MAX_BATCH: usize = 32 * 1024 * 1024;
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// Lines of each failed service printed after the dashboard closes.
const EPITAPH_LINES: usize = 20;

/// What the dashboard needs besides the engine handle and the log events.
pub(crate) struct TuiConfig {
    pub stack: String,
    pub names: Vec<String>,
    /// The run's containment, for CPU and memory; None when attached to a stack of another
    /// process (`pk attach`), which shows `containment_label` only.
    pub containment: Option<Arc<Containment>>,
    /// `cgroup v2` or `process groups`.
    pub containment_label: String,
    /// Byte budget of each service's history.
    pub history_bytes: usize,
    /// Output queued for the dashboard and not yet taken (the hub sheds lines past a budget).
    pub backlog: Option<crate::logs::Backlog>,
    /// Third Ctrl-C: kill every tree and exit the process (the terminal is restored first).
    pub exit_now: Box<dyn Fn() + Send>,
    /// Where the log pane's size goes, for `tty: true` services (None: `pk attach`, whose
    /// pane the services of another process do not follow).
    pub pty_size: Option<tokio::sync::watch::Sender<WinSize>>,
}

/// The dashboard between taking the terminal over and having an engine to show.
pub(crate) struct PendingTui {
    config: TuiConfig,
    logs: LogReceiver,
}

/// Takes the terminal over (and captures stderr into `log_tx`); `PendingTui::start` then runs
/// the dashboard once the engine exists.
pub(crate) fn spawn(
    config: TuiConfig,
    logs: LogReceiver,
    log_tx: crate::logs::LogSender,
) -> io::Result<PendingTui> {
    terminal::enter()?;
    if let Err(e) = terminal::capture_stderr(log_tx) {
        terminal::restore();
        return Err(e);
    }
    Ok(PendingTui { config, logs })
}

impl PendingTui {
    /// Starts the dashboard thread. It ends after `LogEvent::End`, restores the terminal and
    /// prints the last lines of services that ended badly.
    pub(crate) fn start(self, engine: EngineHandle) -> JoinHandle<()> {
        let PendingTui { config, logs } = self;
        let spawned = std::thread::Builder::new()
            .name("pk-tui".into())
            .spawn(move || {
                let result = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .and_then(|rt| rt.block_on(run(config, engine.clone(), logs)));
                terminal::restore();
                match result {
                    Ok(Some(epitaph)) if !epitaph.is_empty() => print!("{epitaph}"),
                    Ok(_) => {}
                    Err(e) => {
                        eprintln!("pk: the dashboard failed ({e}); stopping the stack");
                        // The engine only stops listening once everything has stopped.
                        let _ = engine
                            .inputs
                            .send(Input::Intent(Intent::Shutdown { grace: None }));
                    }
                }
            });
        match spawned {
            Ok(thread) => thread,
            Err(e) => {
                terminal::restore();
                // Without a renderer pk cannot be controlled: panic like the plain printer.
                panic!("spawning the dashboard thread: {e}");
            }
        }
    }
}

struct Loop {
    app: App,
    store: LogStore,
    snap: Arc<Snapshot>,
    usage: Vec<Option<Usage>>,
    dirty: bool,
}

/// Runs until the log channel ends; returns what to print on the normal screen.
async fn run(
    config: TuiConfig,
    mut engine: EngineHandle,
    mut logs: LogReceiver,
) -> io::Result<Option<String>> {
    let backend = CrosstermBackend::new(BufWriter::with_capacity(1 << 16, io::stdout()));
    let mut term = Terminal::new(backend)?;
    let mut app = App::new(
        &config.stack,
        config.names.clone(),
        &config.containment_label,
    );
    app.utc_offset_s = local_utc_offset();
    let snap = engine.snapshots.borrow_and_update().clone();
    let mut sampler = Sampler::new();
    let mut sample = |snap: &Snapshot| match &config.containment {
        Some(c) => sampler.sample(c, &snap.runs()),
        None => vec![None; snap.services.len()],
    };
    let usage = sample(&snap);
    let mut state = Loop {
        app,
        store: LogStore::new(config.names.len(), config.history_bytes),
        snap,
        usage,
        dirty: true,
    };
    let mut events = EventStream::new();
    let mut events_open = true;
    let mut snaps_open = true;
    let mut next_frame = Instant::now();
    let mut next_sample = Instant::now() + SAMPLE_EVERY;
    loop {
        let now = Instant::now();
        if now >= next_sample {
            state.usage = sample(&state.snap);
            next_sample = now + SAMPLE_EVERY;
            state.dirty = true;
        }
        if state.dirty && now >= next_frame {
            let size = term.size()?;
            state.app.size = ratatui::layout::Rect::new(0, 0, size.width, size.height);
            if let Some(sizes) = &config.pty_size {
                let pane = log_pane_size(size.width, size.height, config.names.len());
                sizes.send_if_modified(|s| std::mem::replace(s, pane) != pane);
            }
            let now_ms = crate::vocab::now_ms();
            term.draw(|f| {
                view::draw(
                    f,
                    &state.app,
                    &state.store,
                    &state.snap,
                    &state.usage,
                    now_ms,
                );
            })?;
            state.dirty = false;
            next_frame = now + FRAME;
        }
        // Countdowns (grace left, restart in) tick every 100 ms; uptimes every second.
        let counting = state
            .snap
            .services
            .iter()
            .any(|s| s.kill_at_ms.is_some() || s.restart_at_ms.is_some());
        let wake = if state.dirty {
            next_frame
        } else if counting {
            (now + Duration::from_millis(100)).min(next_sample)
        } else {
            next_sample
        };
        tokio::select! {
            biased;
            event = events.next(), if events_open => match event {
                Some(Ok(event)) => {
                    if on_event(&mut state, &event, &engine, &config.exit_now) {
                        state.dirty = true;
                    }
                }
                // The terminal's input is gone; keep rendering until the stack ends.
                Some(Err(_)) | None => events_open = false,
            },
            changed = engine.snapshots.changed(), if snaps_open => {
                if changed.is_ok() {
                    state.snap = engine.snapshots.borrow_and_update().clone();
                    state.dirty = true;
                } else {
                    snaps_open = false;
                }
            }
            event = logs.recv() => {
                let Some(event) = event else { break };
                if ingest(&mut state, event, &mut logs, config.backlog.as_ref()) {
                    break;
                }
            }
            () = tokio::time::sleep_until(wake) => state.dirty = true,
        }
    }
    let epitaph = view::epitaph(&state.snap, &state.store, EPITAPH_LINES);
    Ok(Some(epitaph))
}

/// The size of the log pane on a `cols`×`rows` terminal showing `services` services: the
/// window size of `tty: true` services.
pub fn log_pane_size(cols: u16, rows: u16, services: usize) -> WinSize {
    let logs = view::areas(ratatui::layout::Rect::new(0, 0, cols, rows), services).logs;
    WinSize {
        rows: logs.height.max(1),
        cols: logs.width.max(1),
    }
}

/// Handles one terminal event; true when the screen must be redrawn.
fn on_event(
    state: &mut Loop,
    event: &Event,
    engine: &EngineHandle,
    exit_now: &(dyn Fn() + Send),
) -> bool {
    let outcome = match event {
        Event::Key(key) => state.app.on_key(*key, &state.store, &state.snap),
        Event::Mouse(mouse) => state.app.on_mouse(*mouse, &state.store),
        Event::Resize(..) => Outcome::Redraw,
        _ => Outcome::Nothing,
    };
    match outcome {
        Outcome::Nothing => false,
        Outcome::Redraw => true,
        Outcome::Send(intent) => {
            // The engine stops listening only once everything has stopped; then it is moot.
            let _ = engine.inputs.send(Input::Intent(intent));
            true
        }
        Outcome::ExitNow => {
            terminal::restore();
            exit_now();
            true
        }
    }
}

/// Stores `first` and whatever else is queued (up to `MAX_BATCH` bytes of output) as one
/// batch; true at the end of the stream.
fn ingest(
    state: &mut Loop,
    first: LogEvent,
    logs: &mut LogReceiver,
    backlog: Option<&crate::logs::Backlog>,
) -> bool {
    let mut bytes = 0;
    let mut batch = vec![first];
    while bytes < MAX_BATCH {
        match logs.try_recv() {
            Ok(event) => {
                if let LogEvent::Output { data, .. } = &event {
                    bytes += data.len();
                }
                batch.push(event);
            }
            Err(_) => break,
        }
    }
    state.dirty = true;
    if let Some(backlog) = backlog {
        let taken: usize = batch
            .iter()
            .map(|e| match e {
                LogEvent::Output { data, .. } => data.len(),
                _ => 0,
            })
            .sum();
        backlog.take(taken);
    }
    state.store.ingest(batch, crate::vocab::now_ms())
}

/// Seconds east of UTC here, from the `TZ`/`/etc/localtime` rules (0 if unknown).
fn local_utc_offset() -> i32 {
    jiff::tz::TimeZone::try_system().map_or(0, |tz| tz.to_offset(jiff::Timestamp::now()).seconds())
}
