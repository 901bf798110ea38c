//! The async side of the engine: one loop that takes inputs from one channel, steps the state
//! machine, carries out its effects and publishes a snapshot.
//!
//! Invariant: this task is the only owner of the `Engine`; supervisors, timers, signal
//! handlers and the control socket only send `Input`s.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::snapshot::Snapshot;
use super::step::{Effect, Engine, Input, Report};
use crate::logs::{LogEvent, LogSender, OutputGate, OutputSink};
use crate::plan::Plan;
use crate::process::{Containment, WinSize};
use crate::supervisor::{Context, Control, Supervisor};
use crate::vocab::ServiceId;

/// What other tasks hold to talk to a running engine.
#[derive(Clone)]
pub struct EngineHandle {
    pub inputs: mpsc::UnboundedSender<Input>,
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunOutcome {
    pub exit_code: i32,
}

pub struct Runtime {
    engine: Engine,
    ctx: Arc<Context>,
    inputs: mpsc::UnboundedReceiver<Input>,
    supervisors: HashMap<ServiceId, Supervisor>,
    snapshots: watch::Sender<Arc<Snapshot>>,
    /// Keep running once everything has settled, until a teardown (a detached stack).
    hold_open: bool,
}

impl Runtime {
    pub fn new(
        plan: Arc<Plan>,
        selected: &[bool],
        containment: Arc<Containment>,
        logs: LogSender,
        gate: OutputGate,
    ) -> (Runtime, EngineHandle) {
        let (tx, rx) = mpsc::unbounded_channel();
        let seed = u64::from(std::process::id()) ^ 0x9e37_79b9_7f4a_7c15;
        let engine = Engine::new(Arc::clone(&plan), selected, seed);
        let snapshot = Arc::new(Snapshot::of(&engine, Instant::now()));
        let (snap_tx, snap_rx) = watch::channel(snapshot);
        let ctx = Arc::new(Context {
            plan,
            containment,
            inputs: tx.clone(),
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
            inputs: rx,
            supervisors: HashMap::new(),
            snapshots: snap_tx,
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
    pub fn hold_open(mut self, yes: bool) -> Runtime {
        self.hold_open = yes;
        self
    }

    /// Where `tty: true` services take their window size from (default: 120×24, fixed).
    #[must_use]
    pub fn pty_size(mut self, sizes: watch::Receiver<WinSize>) -> Runtime {
        Arc::get_mut(&mut self.ctx)
            .expect("no supervisor runs before `run`")
            .pty_size = sizes;
        self
    }

    fn done(&self) -> bool {
        self.engine.settled() && (!self.hold_open || self.engine.shutting_down())
    }

    /// Runs the stack until every service is settled; returns `pk up`'s exit code.
    pub async fn run(mut self) -> RunOutcome {
        let effects = self.engine.start(Instant::now());
        self.apply(effects);
        self.publish();
        while !self.done() {
            let Some(input) = self.inputs.recv().await else {
                break;
            };
            self.forget_ended(&input);
            let effects = self.engine.step(input, Instant::now());
            self.apply(effects);
            // Apply whatever else is already queued before publishing once.
            while let Ok(input) = self.inputs.try_recv() {
                self.forget_ended(&input);
                let effects = self.engine.step(input, Instant::now());
                self.apply(effects);
            }
            self.publish();
        }
        RunOutcome {
            exit_code: self.engine.exit_code(),
        }
    }

    fn forget_ended(&mut self, input: &Input) {
        if let Input::Report {
            service,
            generation,
            report: Report::Exited { .. } | Report::SpawnFailed { .. },
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
                Effect::Stop {
                    service,
                    generation,
                    signal,
                    grace,
                } => self.control(service, generation, Control::Stop { signal, grace }),
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
                    let tx = self.ctx.inputs.clone();
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

    fn publish(&self) {
        let snap = Snapshot::of(&self.engine, Instant::now());
        self.snapshots.send_replace(Arc::new(snap));
    }
}
