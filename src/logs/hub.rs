//! The log hub: sits between the supervisors and the UI, keeps a bounded history per service
//! (for `pk logs`), and fans new lines out to followers (`pk logs -F`).
//!
//! Invariants: the hub never waits on a consumer, and nothing it queues is unbounded:
//! - the plain printer gives the output bytes it was sent back to the pumps' `OutputGate` only
//!   once it has written them (`UiBudget::Printer`): a slow stdout makes the pumps wait, the
//!   services block on their pipes, nothing is lost and at most `OUTPUT_BUDGET` is queued;
//! - a dashboard that lags past its budget gets a count of shed lines (`UiBudget::Lagging`);
//! - a follower (`pk logs -F`) that lags past `FOLLOWER_BUDGET` bytes gets a count of shed lines
//!   (`Follow::Shed`) once it catches up; one that went away is dropped;
//! - history is bounded by bytes per service, and when old lines are dropped the count is kept
//!   so readers can say so.

use std::collections::VecDeque;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use super::file::RotatingFile;
use super::{LogEvent, LogReceiver, LogSender, Stream};
use crate::vocab::{ServiceId, now_ms};

/// Bytes of history kept per service (and for pk's own notices).
pub(crate) const HISTORY_BYTES: usize = 4 * 1024 * 1024;

/// One line of history, as `pk logs` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LogRecord {
    /// None: a line about pk itself.
    pub service: Option<ServiceId>,
    pub kind: RecordKind,
    pub ts_ms: u64,
    pub line: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RecordKind {
    Stdout,
    Stderr,
    /// A lifecycle line (`started (pid 12)`).
    Notice,
}

/// A question to the hub.
pub(crate) struct LogQuery {
    /// Empty: every service.
    pub services: Vec<ServiceId>,
    /// At most this many of the newest lines.
    pub tail: Option<usize>,
    /// Only lines at or after this time.
    pub since_ms: Option<u64>,
    /// Also send every new line here, after the history.
    pub follow: Option<FollowSender>,
    pub reply: oneshot::Sender<LogReply>,
}

pub(crate) struct LogReply {
    pub records: Vec<LogRecord>,
    /// Lines dropped from the history of the asked-for services because it was full.
    pub dropped: u64,
}

/// Bytes of lines queued for one follower and not yet taken by it (each line counted with its
/// overhead), past which its lines are shed (and counted) instead of queued.
pub(crate) const FOLLOWER_BUDGET: usize = 4 * 1024 * 1024;

/// What a queued record costs beyond its text (the `String`, the enum, the channel's node):
/// short lines (`yes`) would otherwise queue several times the budget.
const RECORD_OVERHEAD: usize = 96;

fn cost(record: &LogRecord) -> usize {
    record.line.len() + RECORD_OVERHEAD
}

/// What a follower receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Follow {
    Record(LogRecord),
    /// This many lines were not sent because the follower fell behind.
    Shed(u64),
}

/// The hub's end of a follower's queue: unbounded as a channel, bounded by the bytes the
/// follower has not taken yet (`FollowReceiver::recv` takes them).
pub(crate) struct FollowSender {
    tx: mpsc::UnboundedSender<Follow>,
    backlog: super::Backlog,
    budget: usize,
    shed: u64,
}

/// The follower's end.
pub(crate) struct FollowReceiver {
    rx: mpsc::UnboundedReceiver<Follow>,
    backlog: super::Backlog,
}

/// A follower queue that sheds lines once `budget` bytes are waiting in it.
pub(crate) fn follow_channel(budget: usize) -> (FollowSender, FollowReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let backlog = super::Backlog::default();
    let sender = FollowSender {
        tx,
        backlog: backlog.clone(),
        budget,
        shed: 0,
    };
    (sender, FollowReceiver { rx, backlog })
}

impl FollowSender {
    /// Queues `record`, or counts it as shed while the follower is over budget; false once the
    /// follower has gone away.
    fn send(&mut self, record: LogRecord) -> bool {
        if self.backlog.bytes() > self.budget {
            self.shed += 1;
            return !self.tx.is_closed();
        }
        if self.shed > 0 {
            let shed = std::mem::take(&mut self.shed);
            if self.tx.send(Follow::Shed(shed)).is_err() {
                return false;
            }
        }
        self.backlog.add(cost(&record));
        self.tx.send(Follow::Record(record)).is_ok()
    }
}

impl FollowReceiver {
    pub(crate) async fn recv(&mut self) -> Option<Follow> {
        let item = self.rx.recv().await;
        self.taken(item.as_ref());
        item
    }

    pub(crate) fn try_recv(&mut self) -> Option<Follow> {
        let item = self.rx.try_recv().ok();
        self.taken(item.as_ref());
        item
    }

    fn taken(&self, item: Option<&Follow>) {
        if let Some(Follow::Record(r)) = item {
            self.backlog.take(cost(r));
        }
    }
}

/// How output sent to the UI is accounted for.
pub(crate) enum UiBudget {
    /// The plain printer: it gives the bytes back to the `OutputGate` once written (lossless;
    /// the pumps wait for it).
    Printer,
    /// A renderer that may lag: output beyond the budget is shed and counted.
    Lagging(LaggingRenderer),
}

/// How other tasks reach the hub.
#[derive(Clone)]
pub(crate) struct HubHandle {
    queries: mpsc::UnboundedSender<LogQuery>,
}

impl HubHandle {
    /// The history matching the query (and, with `follow`, a subscription).
    pub(crate) async fn query(&self, mut query: LogQuery) -> Option<LogReply> {
        let (tx, rx) = oneshot::channel();
        query.reply = tx;
        self.queries.send(query).ok()?;
        rx.await.ok()
    }
}

#[derive(Default)]
struct History {
    chunks: VecDeque<Chunk>,
    bytes: usize,
    dropped_lines: u64,
}

struct Chunk {
    kind: RecordKind,
    ts_ms: u64,
    /// Complete lines, each ending in `\n`.
    data: Vec<u8>,
}

impl History {
    fn push(&mut self, chunk: Chunk) {
        self.bytes += chunk.data.len();
        self.chunks.push_back(chunk);
        while self.bytes > HISTORY_BYTES && self.chunks.len() > 1 {
            let old = self.chunks.pop_front().expect("non-empty");
            self.bytes -= old.data.len();
            self.dropped_lines += old.data.split(|&b| b == b'\n').count() as u64 - 1;
        }
    }
}

/// A renderer that may lag: output beyond `budget` bytes in its queue is not sent to it.
pub(crate) struct LaggingRenderer {
    pub backlog: super::Backlog,
    pub budget: usize,
}

struct Hub {
    /// Given back the bytes of each output chunk once handled (flow control with the pumps).
    gate: super::OutputGate,
    budget: UiBudget,
    /// Per slot, lines not sent to a lagging renderer since it last caught up.
    unshown: Vec<u64>,
    /// Per service, where its output is also kept (`log_file` / `log_dir`).
    files: Vec<Option<RotatingFile>>,
    /// Where every service's output is also kept, each line under its service's name.
    stack: Option<(RotatingFile, Vec<String>)>,
    /// Index `n` is service `n`; the last entry holds pk's own notices.
    histories: Vec<History>,
    followers: Vec<(Vec<ServiceId>, FollowSender)>,
    ui: LogSender,
}

/// Where the hub keeps output besides its histories.
#[derive(Debug, Default)]
pub(crate) struct LogFiles {
    /// Per service (index = `ServiceId`), its own log file.
    pub services: Vec<Option<PathBuf>>,
    /// One file for the whole stack (process-compose's top-level `log_location`).
    pub stack: Option<StackFile>,
}

impl From<Vec<Option<PathBuf>>> for LogFiles {
    fn from(services: Vec<Option<PathBuf>>) -> LogFiles {
        LogFiles {
            services,
            stack: None,
        }
    }
}

/// The stack's log file: every line of every service, as `<time> <service> | <line>`, and the
/// lifecycle lines as `<time> <service> * <text>` (`pk` for pk's own).
#[derive(Debug)]
pub(crate) struct StackFile {
    pub path: PathBuf,
    /// Rotation size and old files kept; `None`: as a service's log file.
    pub max_size: Option<u64>,
    pub keep: Option<usize>,
    /// Index = `ServiceId`.
    pub names: Vec<String>,
}

/// Starts the hub: events from `input` are recorded (and written to the services' log files,
/// `files.services[service]`, and the stack's, `files.stack`) and passed on to `ui` unchanged.
pub(crate) fn spawn(
    files: impl Into<LogFiles>,
    input: LogReceiver,
    gate: super::OutputGate,
    ui: LogSender,
    budget: UiBudget,
) -> HubHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    let LogFiles {
        services: files,
        stack,
    } = files.into();
    let services = files.len();
    let hub = Hub {
        gate,
        budget,
        unshown: vec![0; services + 1],
        stack: stack.map(|s| {
            let file = RotatingFile::with_limits(
                s.path,
                s.max_size.unwrap_or(super::file::MAX_SIZE),
                s.keep.unwrap_or(super::file::KEEP),
            );
            (file, s.names)
        }),
        files: files
            .into_iter()
            .map(|f| f.map(RotatingFile::new))
            .collect(),
        histories: (0..=services).map(|_| History::default()).collect(),
        followers: Vec::new(),
        ui,
    };
    tokio::spawn(hub.run(input, rx));
    HubHandle { queries: tx }
}

impl Hub {
    async fn run(mut self, mut input: LogReceiver, mut queries: mpsc::UnboundedReceiver<LogQuery>) {
        loop {
            tokio::select! {
                event = input.recv() => match event {
                    Some(event) => self.record(event),
                    None => return,
                },
                Some(query) = queries.recv() => self.answer(query),
            }
        }
    }

    fn record(&mut self, event: LogEvent) {
        let ts_ms = now_ms();
        let (slot, chunk) = match &event {
            LogEvent::Output {
                service,
                stream,
                data,
            } => {
                let kind = match stream {
                    Stream::Stdout => RecordKind::Stdout,
                    Stream::Stderr => RecordKind::Stderr,
                };
                (
                    *service,
                    Chunk {
                        kind,
                        ts_ms,
                        data: data.clone(),
                    },
                )
            }
            LogEvent::Notice { service, text } => {
                let mut data = text.clone().into_bytes();
                data.push(b'\n');
                let slot = service.unwrap_or(self.histories.len() - 1);
                (
                    slot,
                    Chunk {
                        kind: RecordKind::Notice,
                        ts_ms,
                        data,
                    },
                )
            }
            LogEvent::End => {
                // The UI may be gone; nothing more to render then.
                let _ = self.ui.send(event);
                return;
            }
        };
        if !self.followers.is_empty() {
            let owner = (slot < self.histories.len() - 1).then_some(slot);
            let records = records_of(owner, &chunk);
            self.followers.retain_mut(|(services, tx)| {
                let wants = services.is_empty() || owner.is_some_and(|s| services.contains(&s));
                if wants {
                    records.iter().all(|r| tx.send(r.clone()))
                } else {
                    !tx.tx.is_closed()
                }
            });
        }
        self.write_file(slot, &chunk);
        self.write_stack_file(slot, &chunk);
        if let Some(history) = self.histories.get_mut(slot) {
            history.push(chunk);
        }
        self.forward(slot, event);
    }

    /// Passes `event` on, unless the renderer lags past its budget: then an output chunk is
    /// only counted, and said once the renderer has caught up. The gate gets the bytes of an
    /// output chunk back here, unless the printer gives them back once it has written them.
    fn forward(&mut self, slot: usize, event: LogEvent) {
        let output = match &event {
            LogEvent::Output { data, .. } => Some(data.len()),
            _ => None,
        };
        match (&self.budget, output) {
            (_, None) => {}
            (UiBudget::Printer, Some(bytes)) => {
                if self.ui.send(event).is_err() {
                    // No printer to give them back.
                    self.gate.leave(bytes);
                }
                return;
            }
            (UiBudget::Lagging(lag), Some(bytes)) => {
                self.gate.leave(bytes);
                if lag.backlog.bytes() > lag.budget {
                    if let LogEvent::Output { data, .. } = &event {
                        self.unshown[slot] += data.split(|&b| b == b'\n').count() as u64 - 1;
                    }
                    return;
                }
                lag.backlog.add(bytes);
            }
        }
        if self.unshown[slot] > 0 {
            let lines = std::mem::take(&mut self.unshown[slot]);
            // The UI may be gone during exit; it then has nothing left to show.
            let _ = self.ui.send(LogEvent::Notice {
                service: (slot < self.unshown.len() - 1).then_some(slot),
                text: super::not_shown(lines),
            });
        }
        // The UI may be gone during exit; it then has nothing left to show.
        let _ = self.ui.send(event);
    }

    /// Appends a chunk to its service's log file; a failing file is reported once and dropped.
    fn write_file(&mut self, slot: usize, chunk: &Chunk) {
        let Some(Some(file)) = self.files.get_mut(slot) else {
            return;
        };
        let result = if chunk.kind == RecordKind::Notice {
            let mut line = format!("--- pk {}: ", super::timestamp(chunk.ts_ms)).into_bytes();
            line.extend_from_slice(&chunk.data);
            file.write(&line)
        } else {
            file.write(&chunk.data)
        };
        if let Err(e) = result {
            let text = format!("log file {} disabled: {e}", file.path().display());
            self.files[slot] = None;
            // The UI may be gone during exit; the warning is moot then.
            let _ = self.ui.send(LogEvent::Notice {
                service: Some(slot),
                text,
            });
        }
    }

    /// Appends a chunk to the stack's log file, each line under its service's name; a failing
    /// file is reported once and dropped.
    fn write_stack_file(&mut self, slot: usize, chunk: &Chunk) {
        let Some((file, names)) = &mut self.stack else {
            return;
        };
        let name = names.get(slot).map_or("pk", String::as_str);
        let mark = if chunk.kind == RecordKind::Notice {
            '*'
        } else {
            '|'
        };
        let head = format!("{} {name} {mark} ", super::timestamp(chunk.ts_ms));
        let mut text = Vec::with_capacity(chunk.data.len() + head.len());
        for line in chunk.data.split_inclusive(|&b| b == b'\n') {
            text.extend_from_slice(head.as_bytes());
            text.extend_from_slice(line);
        }
        if let Err(e) = file.write(&text) {
            let text = format!("log file {} disabled: {e}", file.path().display());
            self.stack = None;
            // The UI may be gone during exit; the warning is moot then.
            let _ = self.ui.send(LogEvent::Notice {
                service: None,
                text,
            });
        }
    }

    fn answer(&mut self, query: LogQuery) {
        let pk_slot = self.histories.len() - 1;
        let wanted = |slot: usize| query.services.is_empty() || query.services.contains(&slot);
        let mut records = Vec::new();
        let mut dropped = 0;
        for (slot, history) in self.histories.iter().enumerate() {
            if !wanted(slot) {
                continue;
            }
            dropped += history.dropped_lines;
            let owner = (slot < pk_slot).then_some(slot);
            for chunk in &history.chunks {
                if query.since_ms.is_some_and(|s| chunk.ts_ms < s) {
                    continue;
                }
                records.extend(records_of(owner, chunk));
            }
        }
        // Histories are each in order; merge them by time (stable, so same-chunk order holds).
        records.sort_by_key(|r| r.ts_ms);
        if let Some(n) = query.tail {
            let skip = records.len().saturating_sub(n);
            records.drain(..skip);
        }
        if let Some(tx) = query.follow {
            self.followers.push((query.services, tx));
        }
        // The asker may have given up waiting; nothing to do then.
        let _ = query.reply.send(LogReply { records, dropped });
    }
}

fn records_of(service: Option<ServiceId>, chunk: &Chunk) -> Vec<LogRecord> {
    chunk
        .data
        .split_inclusive(|&b| b == b'\n')
        .map(|line| LogRecord {
            service,
            kind: chunk.kind,
            ts_ms: chunk.ts_ms,
            line: String::from_utf8_lossy(line.strip_suffix(b"\n").unwrap_or(line)).into_owned(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::sync::mpsc;

    use super::{LaggingRenderer, LogQuery, UiBudget, spawn};
    use crate::logs::{Backlog, LogEvent, OutputGate, Stream};

    fn output(data: &str) -> LogEvent {
        LogEvent::Output {
            service: 0,
            stream: Stream::Stdout,
            data: data.as_bytes().to_vec(),
        }
    }

    #[tokio::test]
    async fn a_lagging_renderer_gets_a_count_instead_of_the_lines() {
        let (in_tx, in_rx) = mpsc::unbounded_channel();
        let (ui_tx, mut ui_rx) = mpsc::unbounded_channel();
        let backlog = Backlog::default();
        let lag = LaggingRenderer {
            backlog: backlog.clone(),
            budget: 10,
        };
        let hub = spawn(
            vec![None],
            in_rx,
            OutputGate::default(),
            ui_tx,
            UiBudget::Lagging(lag),
        );
        in_tx.send(output("first line\n")).unwrap();
        let Some(LogEvent::Output { data, .. }) = ui_rx.recv().await else {
            panic!("the first chunk is shown");
        };
        assert_eq!(data, b"first line\n");
        assert_eq!(backlog.bytes(), 11, "not taken yet: over the budget of 10");
        in_tx.send(output("a\nb\nc\n")).unwrap();
        in_tx.send(output("d\n")).unwrap();
        // Once the hub has handled `d` (it is in the history), the renderer catches up; the
        // next line is shown after a count of what was shed.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let (reply, _) = tokio::sync::oneshot::channel();
            let query = LogQuery {
                services: vec![0],
                tail: None,
                since_ms: None,
                follow: None,
                reply,
            };
            let records = hub.query(query).await.expect("hub answers").records;
            if records.iter().any(|r| r.line == "d") {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the hub never handled `d`"
            );
            tokio::task::yield_now().await;
        }
        backlog.take(11);
        in_tx.send(output("e\n")).unwrap();
        let Some(LogEvent::Notice { text, .. }) = ui_rx.recv().await else {
            panic!("a count of the shed lines");
        };
        assert!(text.starts_with("… 4 lines not shown here"), "{text}");
        let Some(LogEvent::Output { data, .. }) = ui_rx.recv().await else {
            panic!("then the line");
        };
        assert_eq!(data, b"e\n");
    }

    /// Waits until the hub has `line` in service 0's history.
    async fn handled(hub: &super::HubHandle, line: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let (reply, _) = tokio::sync::oneshot::channel();
            let query = LogQuery {
                services: vec![0],
                tail: None,
                since_ms: None,
                follow: None,
                reply,
            };
            let records = hub.query(query).await.expect("hub answers").records;
            if records.iter().any(|r| r.line == line) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "never handled {line}"
            );
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn with_the_printer_the_pumps_wait_until_it_has_written() {
        let (in_tx, in_rx) = mpsc::unbounded_channel();
        let (ui_tx, mut ui_rx) = mpsc::unbounded_channel();
        let gate = OutputGate::default();
        let hub = spawn(vec![None], in_rx, gate.clone(), ui_tx, UiBudget::Printer);
        // A pump has the whole budget in flight.
        let mut data = vec![b'x'; crate::logs::OUTPUT_BUDGET - 1];
        data.push(b'\n');
        gate.enter(data.len()).await;
        in_tx
            .send(LogEvent::Output {
                service: 0,
                stream: Stream::Stdout,
                data,
            })
            .unwrap();
        in_tx.send(output("marker\n")).unwrap();
        handled(&hub, "marker").await;
        let waiting = tokio::spawn({
            let gate = gate.clone();
            async move { gate.enter(1).await }
        });
        tokio::task::yield_now().await;
        assert!(
            !waiting.is_finished(),
            "the hub handled the chunk, but the printer has not written it: the pump waits"
        );
        let Some(LogEvent::Output { data, .. }) = ui_rx.recv().await else {
            panic!("the printer gets the chunk");
        };
        gate.leave(data.len());
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("released once the printer wrote the chunk")
            .unwrap();
    }

    #[tokio::test]
    async fn a_lagging_follower_gets_a_count_of_shed_lines() {
        let (in_tx, in_rx) = mpsc::unbounded_channel();
        let (ui_tx, _ui_rx) = mpsc::unbounded_channel();
        let hub = spawn(
            vec![None],
            in_rx,
            OutputGate::default(),
            ui_tx,
            UiBudget::Printer,
        );
        let (follow, mut followed) = super::follow_channel(4 + super::RECORD_OVERHEAD);
        let (reply, _) = tokio::sync::oneshot::channel();
        let query = LogQuery {
            services: vec![],
            tail: Some(0),
            since_ms: None,
            follow: Some(follow),
            reply,
        };
        hub.query(query).await.expect("subscribed");
        // 5 bytes queued: over the budget of 4; the next three lines are shed.
        in_tx
            .send(output("first\nsecond\nthird\nfourth\n"))
            .unwrap();
        handled(&hub, "fourth").await;
        let line = |f: Option<super::Follow>| match f {
            Some(super::Follow::Record(r)) => r.line,
            other => panic!("{other:?}"),
        };
        assert_eq!(line(followed.recv().await), "first");
        assert_eq!(followed.try_recv(), None, "the rest was shed");
        in_tx.send(output("fifth\n")).unwrap();
        assert_eq!(followed.recv().await, Some(super::Follow::Shed(3)));
        assert_eq!(line(followed.recv().await), "fifth");
    }

    #[tokio::test]
    async fn the_gate_holds_pumps_back_until_the_hub_has_caught_up() {
        let gate = OutputGate::default();
        gate.enter(crate::logs::OUTPUT_BUDGET).await;
        let waiting = tokio::spawn({
            let gate = gate.clone();
            async move { gate.enter(1).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "over budget: the pump waits");
        gate.leave(1);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("released once the hub handled a byte")
            .unwrap();
    }
}
