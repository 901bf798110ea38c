//! The async side of the engine: one loop that takes inputs from one channel, steps the state
//! machine, carries out its effects and publishes snapshots.
//!
//! Invariants: this task is the only owner of the `Engine`; supervisors, timers, signal
//! handlers and the control socket only send `Input`s. Snapshots are coalesced: every input
//! already queued is applied before one is published, and while inputs keep coming at most
//! one is published per `PUBLISH_EVERY` — but never later than that after a change, at once
//! when a barrier (`EngineHandle::sync`) waits, and always when the run ends.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::snapshot::{Snapshot, Snapshots};
use super::step::{Effect, Engine, Input};
use crate::logs::{LogEvent, LogSender, OutputGate, OutputSink};
use crate::plan::Plan;
use crate::process::{Containment, WinSize};
use crate::supervisor::{Context, Control, Report, Supervisor};
use crate::vocab::ServiceId;

/// What other tasks hold to talk to a running engine.
#[derive(Clone)]
pub(crate) struct EngineHandle {
    pub inputs: mpsc::UnboundedSender<Input>,
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
}

impl EngineHandle {
    /// Resolves once every input this handle sent before has been applied and the resulting
    /// snapshot published (at once when the engine is gone): after it, `snapshots` shows the
    /// engine's verdict on those inputs, never an older state.
    pub(crate) async fn sync(&self) {
        let (tx, rx) = oneshot::channel();
        if self.inputs.send(Input::Barrier(tx)).is_ok() {
            // An error means the engine ended; nothing is pending then.
            let _ = rx.await;
        }
    }
}

/// The most often a snapshot is published while inputs keep coming (a burst of 2,000 starts
/// publishes a few hundred, not 2,000); a change is published no later than this.
const PUBLISH_EVERY: Duration = Duration::from_millis(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RunOutcome {
    pub exit_code: i32,
}

pub(crate) struct Runtime {
    engine: Engine,
    ctx: Arc<Context>,
    inputs: mpsc::UnboundedReceiver<Input>,
    /// Where armed timers send `Input::Timer`.
    timers: mpsc::UnboundedSender<Input>,
    supervisors: HashMap<ServiceId, Supervisor>,
    snapshots: watch::Sender<Arc<Snapshot>>,
    /// Builds each snapshot from the last one and the services that changed.
    builder: Snapshots,
    /// Keep running once everything has settled, until a teardown (a detached stack).
    hold_open: bool,
}

impl Runtime {
    pub(crate) fn new(
        plan: Arc<Plan>,
        selected: &[bool],
        containment: Arc<Containment>,
        logs: LogSender,
        gate: OutputGate,
    ) -> (Runtime, EngineHandle) {
        let (tx, rx) = mpsc::unbounded_channel();
        let seed = u64::from(std::process::id()) ^ 0x9e37_79b9_7f4a_7c15;
        let mut engine = Engine::new(Arc::clone(&plan), selected, seed);
        let mut builder = Snapshots::default();
        let snapshot = Arc::new(builder.next(&mut engine, Instant::now()));
        let (snap_tx, snap_rx) = watch::channel(snapshot);
        let ctx = Arc::new(Context {
            plan,
            containment,
            report: {
                let tx = tx.clone();
                Box::new(move |service, generation, report| {
                    // The engine outlives every supervisor and probe loop except during a
                    // forced exit.
                    let _ = tx.send(Input::Report {
                        service,
                        generation,
                        report,
                    });
                })
            },
            output: OutputSink {
                tx: logs.clone(),
                gate,
            },
            logs,
            pty_size: watch::channel(WinSize::DEFAULT).1,
        });
        let runtime = Runtime {
            engine,
            ctx,
            timers: tx.clone(),
            inputs: rx,
            supervisors: HashMap::new(),
            snapshots: snap_tx,
            builder,
            hold_open: false,
        };
        let handle = EngineHandle {
            inputs: tx,
            snapshots: snap_rx,
        };
        (runtime, handle)
    }

    /// Keeps the stack (and its control socket) up after every service has ended, until a
    /// teardown is asked for: what a detached stack does, so `pk logs` still works.
    #[must_use]
    pub(crate) fn hold_open(mut self, yes: bool) -> Runtime {
        self.hold_open = yes;
        self
    }

    /// Where `tty: true` services take their window size from (default: 120×24, fixed).
    #[must_use]
    pub(crate) fn pty_size(mut self, sizes: watch::Receiver<WinSize>) -> Runtime {
        Arc::get_mut(&mut self.ctx)
            .expect("no supervisor runs before `run`")
            .pty_size = sizes;
        self
    }

    fn done(&self) -> bool {
        self.engine.settled() && (!self.hold_open || self.engine.shutting_down())
    }

    /// Runs the stack until every service is settled; returns `pk up`'s exit code.
    pub(crate) async fn run(mut self) -> RunOutcome {
        let effects = self.engine.start(Instant::now());
        self.apply(effects);
        self.publish();
        let mut last_publish = Instant::now();
        // A change not published yet (the last one was less than `PUBLISH_EVERY` ago).
        let mut unpublished = false;
        let mut barriers = Vec::new();
        while !self.done() {
            let input = if unpublished {
                tokio::select! {
                    input = self.inputs.recv() => input,
                    () = tokio::time::sleep_until(last_publish + PUBLISH_EVERY) => {
                        self.publish();
                        last_publish = Instant::now();
                        unpublished = false;
                        continue;
                    }
                }
            } else {
                self.inputs.recv().await
            };
            let Some(input) = input else {
                break;
            };
            self.take(input, &mut barriers);
            // Apply whatever else is already queued before publishing once.
            while let Ok(input) = self.inputs.try_recv() {
                self.take(input, &mut barriers);
            }
            let now = Instant::now();
            if barriers.is_empty() && now < last_publish + PUBLISH_EVERY && !self.done() {
                unpublished = true;
                continue;
            }
            self.publish();
            last_publish = now;
            unpublished = false;
            for barrier in barriers.drain(..) {
                // The waiter may have gone away; nothing to answer then.
                let _ = barrier.send(());
            }
        }
        if unpublished {
            self.publish();
        }
        RunOutcome {
            exit_code: self.engine.exit_code(),
        }
    }

    /// Steps the engine with `input`, or keeps a barrier to answer after publishing.
    fn take(&mut self, input: Input, barriers: &mut Vec<oneshot::Sender<()>>) {
        if let Input::Barrier(tx) = input {
            barriers.push(tx);
            return;
        }
        self.forget_ended(&input);
        let effects = self.engine.step(input, Instant::now());
        self.apply(effects);
    }

    fn forget_ended(&mut self, input: &Input) {
        if let Input::Report {
            service,
            generation,
            report: Report::Exited { .. } | Report::SpawnFailed { .. } | Report::Cancelled,
        } = input
            && self
                .supervisors
                .get(service)
                .is_some_and(|s| s.generation == *generation)
        {
            self.supervisors.remove(service);
        }
    }

    fn apply(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Spawn {
                    service,
                    generation,
                } => {
                    let sup = Supervisor::start(&self.ctx, service, generation);
                    self.supervisors.insert(service, sup);
                }
                // The deadline (`grace`) is the engine's timer, armed alongside.
                Effect::Stop {
                    service,
                    generation,
                    signal,
                    ..
                } => self.control(service, generation, Control::Stop { signal }),
                Effect::Kill {
                    service,
                    generation,
                } => self.control(service, generation, Control::Kill),
                Effect::Signal {
                    service,
                    generation,
                    signal,
                } => self.control(service, generation, Control::Signal(signal)),
                Effect::ArmTimer {
                    service,
                    epoch,
                    after,
                } => {
                    let tx = self.timers.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(after).await;
                        // The engine may have exited meanwhile; the timer is moot then.
                        let _ = tx.send(Input::Timer { service, epoch });
                    });
                }
                Effect::Notice { service, text } => {
                    // The UI may be gone during exit; the notice is moot then.
                    let _ = self.ctx.logs.send(LogEvent::Notice { service, text });
                }
            }
        }
    }

    fn control(&self, service: ServiceId, generation: u64, control: Control) {
        if let Some(sup) = self.supervisors.get(&service)
            && sup.generation == generation
        {
            sup.send(control);
        }
    }

    fn publish(&mut self) {
        let snap = self.builder.next(&mut self.engine, Instant::now());
        self.snapshots.send_replace(Arc::new(snap));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::engine::Intent;
    use crate::logs::LogEvent;

    /// The runtime with real processes: a teardown that comes while a spawn is queued (the
    /// supervisor task has not run yet) starts nothing. On a current-thread runtime the
    /// supervisor runs only once the loop waits, after it has taken the teardown.
    #[tokio::test(flavor = "current_thread")]
    async fn a_teardown_before_the_spawn_starts_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = "services:\n  api:\n    command: 'echo started; exec sleep 1000'\n";
        let plan = crate::plan::load_str(yaml, &dir.path().join("pk.yaml"), &BTreeMap::new())
            .unwrap_or_else(|e| panic!("{}", e.render(false)));
        let containment = Arc::new(Containment::detect());
        let (logs, mut events) = mpsc::unbounded_channel();
        let (runtime, handle) = Runtime::new(
            Arc::new(plan),
            &[true],
            Arc::clone(&containment),
            logs,
            OutputGate::default(),
        );
        let shutdown = Input::Intent(Intent::Shutdown { grace: None });
        handle.inputs.send(shutdown).unwrap();
        let outcome = runtime.run().await;
        assert_eq!(outcome.exit_code, 0);
        let mut notices = Vec::new();
        while let Ok(event) = events.try_recv() {
            if let LogEvent::Notice { text, .. } = event {
                notices.push(text);
            }
        }
        assert!(
            !notices.iter().any(|n| n.starts_with("started")),
            "{notices:?}"
        );
        assert!(notices.contains(&"not started (stopping)".to_owned()));
    }
}
