//! Plain mode: every output line as `name | line`, lifecycle lines as `name * text`.
//!
//! Invariants: one thread owns stdout, so lines of concurrent services are never torn or
//! mixed; it writes whole batches and flushes when the queue is empty, so a flood costs one
//! write per batch, not per line. It gives the bytes of every output chunk back to the pumps'
//! `OutputGate` only once written: a slow stdout (`pk up | less`) makes the services wait on
//! their pipes instead of pk buffering. On a terminal, a service's escape sequences other than
//! colours are dropped (`tui::neutralise`).
//!
//! When stdout cannot be written (EPIPE: `pk up | head`; ENOSPC: a full disk), the printer says
//! so on stderr, reports it through `failed` (`pk up` then stops the stack and exits non-zero)
//! and from then on discards output, still giving the gate its bytes back.

use std::io::{self, Write};
use std::thread::JoinHandle;

use crate::logs::{LogEvent, LogReceiver, OutputGate};
use crate::vocab::service_colour;

pub(crate) struct PlainPrinter {
    prefixes: Vec<Vec<u8>>,
    notice_prefixes: Vec<Vec<u8>>,
    pk_notice: Vec<u8>,
    color: bool,
    notices_only: bool,
    /// Per service: its output was made for a terminal (`tty: true`), so without colours its
    /// escape sequences are removed.
    terminal_output: Vec<bool>,
    /// Drop escape sequences other than colours (the output goes to a terminal).
    neutralise: bool,
}

impl PlainPrinter {
    pub(crate) fn new(names: &[String], color: bool) -> PlainPrinter {
        let width = names.iter().map(String::len).max().unwrap_or(0).max(2);
        let pad = |name: &str, sep: char, colour: Option<u8>| -> Vec<u8> {
            let text = format!("{name:<width$} {sep} ");
            match colour {
                Some(c) if color => format!("\x1b[38;5;{c}m{text}\x1b[0m").into_bytes(),
                _ => text.into_bytes(),
            }
        };
        let prefixes = names
            .iter()
            .enumerate()
            .map(|(i, n)| pad(n, '|', Some(service_colour(i))))
            .collect();
        let notice_prefixes = names
            .iter()
            .enumerate()
            .map(|(i, n)| pad(n, '*', Some(service_colour(i))))
            .collect();
        PlainPrinter {
            prefixes,
            notice_prefixes,
            pk_notice: pad("pk", '*', Some(250)),
            color,
            notices_only: false,
            terminal_output: Vec::new(),
            neutralise: false,
        }
    }

    /// Which services write for a terminal (`tty: true`): without colours, their lines are
    /// printed as the dashboard shows them, every escape sequence removed.
    #[must_use]
    pub(crate) fn terminal_output(mut self, services: Vec<bool>) -> PlainPrinter {
        self.terminal_output = services;
        self
    }

    /// The output goes to a terminal: drop a service's escape sequences other than colours.
    #[must_use]
    pub(crate) fn terminal(mut self, yes: bool) -> PlainPrinter {
        self.neutralise = yes;
        self
    }

    /// Print lifecycle lines only, not service output.
    #[must_use]
    pub(crate) fn notices_only(mut self, yes: bool) -> PlainPrinter {
        self.notices_only = yes;
        self
    }

    /// Appends the rendering of `event` to `out`.
    pub(crate) fn render(&self, event: &LogEvent, out: &mut Vec<u8>) {
        match event {
            LogEvent::Output { .. } if self.notices_only => {}
            LogEvent::Output { service, data, .. } => {
                let prefix = &self.prefixes[*service];
                let strip = !self.color && self.terminal_output.get(*service) == Some(&true);
                for line in data.split_inclusive(|&b| b == b'\n') {
                    out.extend_from_slice(prefix);
                    if strip {
                        let text = line.strip_suffix(b"\n").unwrap_or(line);
                        out.extend_from_slice(crate::ui::tui::plain_text(text).as_bytes());
                        out.push(b'\n');
                    } else if self.neutralise {
                        crate::ui::tui::neutralise(line.strip_suffix(b"\n").unwrap_or(line), out);
                        out.push(b'\n');
                    } else {
                        out.extend_from_slice(line);
                    }
                }
            }
            LogEvent::Notice { service, text } => {
                self.render_line(*service, true, text.as_bytes(), out);
            }
            LogEvent::End => {}
        }
    }

    /// Appends one line (without its `\n`): output of `service`, or a lifecycle line
    /// (`notice`; `service` None: about pk itself).
    pub(crate) fn render_line(
        &self,
        service: Option<usize>,
        notice: bool,
        line: &[u8],
        out: &mut Vec<u8>,
    ) {
        let prefix = match (service, notice) {
            (Some(s), false) => self.prefixes.get(s),
            (Some(s), true) => self.notice_prefixes.get(s),
            (None, _) => Some(&self.pk_notice),
        };
        out.extend_from_slice(prefix.unwrap_or(&self.pk_notice));
        if notice && self.color {
            out.extend_from_slice(b"\x1b[2m");
        }
        if self.neutralise {
            crate::ui::tui::neutralise(line, out);
        } else {
            out.extend_from_slice(line);
        }
        if notice && self.color {
            out.extend_from_slice(b"\x1b[0m");
        }
        out.push(b'\n');
    }

    /// Prints events to stdout on a dedicated thread until `LogEvent::End` (or every sender is
    /// gone); see `print`.
    pub(crate) fn spawn(
        self,
        events: LogReceiver,
        gate: OutputGate,
        failed: tokio::sync::oneshot::Sender<()>,
    ) -> JoinHandle<io::Result<()>> {
        std::thread::Builder::new()
            .name("pk-plain".into())
            .spawn(move || self.print(events, &mut io::stdout(), &gate, failed))
            .expect("spawning the output thread")
    }

    /// Writes events to `out` until `LogEvent::End` (or every sender is gone), giving output
    /// bytes back to `gate` once written. The first write error is said on stderr, sent on
    /// `failed` and returned at the end; events are then discarded (and their bytes given back).
    pub(crate) fn print(
        &self,
        mut events: LogReceiver,
        out: &mut impl Write,
        gate: &OutputGate,
        failed: tokio::sync::oneshot::Sender<()>,
    ) -> io::Result<()> {
        let mut failed = Some(failed);
        let mut error = None;
        let mut buf = Vec::with_capacity(256 * 1024);
        while let Some(event) = events.blocking_recv() {
            let mut end = matches!(event, LogEvent::End);
            let mut taken = output_bytes(&event);
            if error.is_none() {
                self.render(&event, &mut buf);
            }
            while !end && buf.len() < 1 << 20 {
                let Ok(e) = events.try_recv() else { break };
                end = matches!(e, LogEvent::End);
                taken += output_bytes(&e);
                if error.is_none() {
                    self.render(&e, &mut buf);
                }
            }
            if error.is_none() && !buf.is_empty() {
                if let Err(e) = out.write_all(&buf).and_then(|()| out.flush()) {
                    eprintln!(
                        "pk: cannot write to stdout ({e}); stopping the stack, as its output would be lost"
                    );
                    if let Some(tx) = failed.take() {
                        // `pk up` may be ending already; then there is nothing left to stop.
                        let _ = tx.send(());
                    }
                    error = Some(e);
                }
            }
            buf.clear();
            gate.leave(taken);
            if end {
                break;
            }
        }
        error.map_or(Ok(()), Err)
    }
}

/// The bytes of `event` that count against the `OutputGate`.
fn output_bytes(event: &LogEvent) -> usize {
    match event {
        LogEvent::Output { data, .. } => data.len(),
        _ => 0,
    }
}
