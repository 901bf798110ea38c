//! Service output as line-aligned chunks, and the events the UI renders.
//!
//! Invariant: output is read continuously and forwarded without waiting on any consumer, so a
//! chatty service never blocks and a line is never split between two chunks (a line longer
//! than `MAX_LINE` is cut into pieces of that size).

pub(crate) mod file;
pub(crate) mod hub;

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;

use crate::vocab::{LogMatcher, ServiceId};

/// Longest line kept whole; longer ones are cut.
pub(crate) const MAX_LINE: usize = 64 * 1024;
/// Reads start small (an idle service costs little memory) and double while they come back
/// full, up to this (a flood is read in big chunks).
const READ_MAX: usize = 64 * 1024;
const READ_MIN: usize = 4 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// What the UI renders, in the order it happened.
#[derive(Debug)]
pub enum LogEvent {
    /// One or more complete lines of a service's output, each ending in `\n`.
    Output {
        service: ServiceId,
        stream: Stream,
        data: Vec<u8>,
    },
    /// A lifecycle line (`service` None: about pk itself).
    Notice {
        service: Option<ServiceId>,
        text: String,
    },
    /// Nothing more will be sent; the renderer may finish.
    End,
}

pub(crate) type LogSender = mpsc::UnboundedSender<LogEvent>;

/// Bytes of output the hub may fall behind the pumps before they wait.
pub(crate) const OUTPUT_BUDGET: usize = 16 * 1024 * 1024;

/// Flow control between the output pumps and the hub: a pump takes permits for the bytes it
/// sends, the hub gives them back once it has handled them. When the hub falls behind by
/// `OUTPUT_BUDGET`, the pumps wait and the services block on their own pipes (the kernel's
/// backpressure) instead of pk buffering without bound. Renderers never cause this: a lagging
/// dashboard sheds lines (`Backlog`).
#[derive(Debug, Clone)]
pub(crate) struct OutputGate(Arc<tokio::sync::Semaphore>);

impl Default for OutputGate {
    fn default() -> Self {
        OutputGate(Arc::new(tokio::sync::Semaphore::new(OUTPUT_BUDGET)))
    }
}

impl OutputGate {
    /// Waits until `bytes` more may be in flight to the hub.
    pub(crate) async fn enter(&self, bytes: usize) {
        let n = u32::try_from(bytes.min(OUTPUT_BUDGET)).unwrap_or(u32::MAX);
        if let Ok(permit) = self.0.acquire_many(n).await {
            // Given back by `leave` once the hub has handled the chunk.
            permit.forget();
        }
    }

    /// The hub has handled `bytes`.
    pub(crate) fn leave(&self, bytes: usize) {
        self.0.add_permits(bytes.min(OUTPUT_BUDGET));
    }
}

/// Where output pumps send: the log channel, through the gate.
#[derive(Debug, Clone)]
pub(crate) struct OutputSink {
    pub tx: LogSender,
    pub gate: OutputGate,
}

/// Bytes of output handed to a renderer and not yet taken by it. The hub sheds lines (counted,
/// and said) for a renderer that lags past its budget instead of queueing without bound; the
/// history and log files still get every line.
#[derive(Debug, Clone, Default)]
pub struct Backlog(Arc<std::sync::atomic::AtomicUsize>);

impl Backlog {
    pub(crate) fn add(&self, bytes: usize) {
        self.0
            .fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    /// The renderer took `bytes` off its queue.
    pub(crate) fn take(&self, bytes: usize) {
        self.0
            .fetch_sub(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn bytes(&self) -> usize {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}
pub(crate) type LogReceiver = mpsc::UnboundedReceiver<LogEvent>;

/// Output a dashboard may have queued (not yet taken) before lines for it are shed.
pub const DASHBOARD_BACKLOG: usize = 16 * 1024 * 1024;

/// What a lagging renderer is told about the lines it was not given.
pub fn not_shown(lines: u64) -> String {
    format!("… {lines} lines not shown here: the dashboard fell behind (`pk logs` has them)")
}

/// Bounds the queue to a renderer that is fed from elsewhere than the hub (`pk attach`):
/// output past `budget` bytes not yet taken (the `Backlog` the renderer takes from) is shed,
/// counted, and said with the next line that fits.
#[derive(Debug)]
pub struct Shedder {
    backlog: Backlog,
    budget: usize,
    unshown: u64,
}

impl Shedder {
    pub fn new(backlog: Backlog, budget: usize) -> Shedder {
        Shedder {
            backlog,
            budget,
            unshown: 0,
        }
    }

    /// What to send for `event`: nothing (shed), the event, or a notice of the lines shed
    /// before it and the event.
    pub fn admit(&mut self, event: LogEvent) -> Vec<LogEvent> {
        if let LogEvent::Output { data, .. } = &event {
            if self.backlog.bytes() > self.budget {
                self.unshown += u64::try_from(data.split(|&b| b == b'\n').count() - 1)
                    .unwrap_or(0)
                    .max(1);
                return Vec::new();
            }
            self.backlog.add(data.len());
        }
        let mut out = Vec::with_capacity(2);
        if self.unshown > 0 {
            out.push(LogEvent::Notice {
                service: None,
                text: not_shown(std::mem::take(&mut self.unshown)),
            });
        }
        out.push(event);
        out
    }
}

/// Forwards everything `reader` yields as line-aligned chunks until EOF; a last unterminated
/// line gets a `\n`. Every chunk is also shown to `taps` (the `log` probes).
pub(crate) async fn pump<R: AsyncRead + Unpin>(
    mut reader: R,
    service: ServiceId,
    stream: Stream,
    sink: OutputSink,
    taps: Vec<Arc<LogMatcher>>,
) {
    let send = async |data: Vec<u8>| {
        for tap in &taps {
            tap.feed(&data);
        }
        sink.gate.enter(data.len()).await;
        // The UI may be gone during exit; output is then dropped on purpose.
        let _ = sink.tx.send(LogEvent::Output {
            service,
            stream,
            data,
        });
    };
    let mut buf: Vec<u8> = Vec::new();
    let mut read_size = READ_MIN;
    loop {
        let start = buf.len();
        buf.resize(start + read_size, 0);
        let n = match reader.read(&mut buf[start..]).await {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                buf.truncate(start);
                continue;
            }
            // A broken pipe reads like the end of output.
            Err(_) => 0,
        };
        buf.truncate(start + n);
        if n == read_size {
            read_size = (read_size * 2).min(READ_MAX);
        }
        if n == 0 {
            if !buf.is_empty() {
                buf.push(b'\n');
                send(std::mem::take(&mut buf)).await;
            }
            return;
        }
        let cut = match buf.iter().rposition(|&b| b == b'\n') {
            Some(i) => i + 1,
            None if buf.len() >= MAX_LINE => {
                buf.push(b'\n');
                buf.len()
            }
            None => continue,
        };
        let rest = buf.split_off(cut);
        let chunk = std::mem::replace(&mut buf, rest);
        send(chunk).await;
    }
}

/// An RFC 3339 UTC time with milliseconds, for timestamps in logs.
pub(crate) fn timestamp(ts_ms: u64) -> String {
    i64::try_from(ts_ms)
        .ok()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map_or_else(String::new, |t| format!("{t:.3}"))
}

#[cfg(test)]
mod shedder_tests {
    use super::*;

    fn line(text: &str) -> LogEvent {
        LogEvent::Output {
            service: 0,
            stream: Stream::Stdout,
            data: format!("{text}\n").into_bytes(),
        }
    }

    /// `pk attach`'s queue to its dashboard is bounded: past the budget lines are shed and
    /// counted, and the count is said before the next line that fits.
    #[test]
    fn a_lagging_renderer_gets_a_count_of_the_lines_it_was_not_given() {
        let backlog = Backlog::default();
        let mut shedder = Shedder::new(backlog.clone(), 10);
        assert_eq!(shedder.admit(line("0123456789")).len(), 1);
        assert_eq!(backlog.bytes(), 11);
        assert!(shedder.admit(line("a")).is_empty(), "over the budget: shed");
        assert!(shedder.admit(line("b")).is_empty());
        assert_eq!(backlog.bytes(), 11, "shed lines are not queued");
        backlog.take(11);
        let out = shedder.admit(line("c"));
        assert_eq!(out.len(), 2);
        assert!(
            matches!(&out[0], LogEvent::Notice { text, .. } if text.starts_with("… 2 lines not shown here")),
            "{:?}",
            out[0]
        );
        assert!(matches!(&out[1], LogEvent::Output { data, .. } if data == b"c\n"));
    }
}
