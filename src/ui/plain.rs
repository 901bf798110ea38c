//! Plain mode: every output line as `name | line`, lifecycle lines as `name * text`.
//!
//! Invariants: one thread owns stdout, so lines of concurrent services are never torn or
//! mixed; it writes whole batches and flushes when the queue is empty, so a flood costs one
//! write per batch, not per line.

use std::io::{self, Write};
use std::thread::JoinHandle;

use crate::logs::{LogEvent, LogReceiver};
use crate::vocab::service_colour;

pub struct PlainPrinter {
    prefixes: Vec<Vec<u8>>,
    notice_prefixes: Vec<Vec<u8>>,
    pk_notice: Vec<u8>,
    color: bool,
    notices_only: bool,
}

impl PlainPrinter {
    pub fn new(names: &[String], color: bool) -> PlainPrinter {
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
        }
    }

    /// Print lifecycle lines only, not service output.
    #[must_use]
    pub fn notices_only(mut self, yes: bool) -> PlainPrinter {
        self.notices_only = yes;
        self
    }

    /// Appends the rendering of `event` to `out`.
    pub fn render(&self, event: &LogEvent, out: &mut Vec<u8>) {
        match event {
            LogEvent::Output { .. } if self.notices_only => {}
            LogEvent::Output { service, data, .. } => {
                let prefix = &self.prefixes[*service];
                for line in data.split_inclusive(|&b| b == b'\n') {
                    out.extend_from_slice(prefix);
                    out.extend_from_slice(line);
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
    pub fn render_line(
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
            out.extend_from_slice(line);
            out.extend_from_slice(b"\x1b[0m");
        } else {
            out.extend_from_slice(line);
        }
        out.push(b'\n');
    }

    /// Prints events on a dedicated thread until `LogEvent::End` (or every sender is gone).
    pub fn spawn(self, mut events: LogReceiver) -> JoinHandle<()> {
        std::thread::Builder::new()
            .name("pk-plain".into())
            .spawn(move || {
                let stdout = io::stdout();
                let mut buf = Vec::with_capacity(256 * 1024);
                'outer: while let Some(event) = events.blocking_recv() {
                    let mut end = matches!(event, LogEvent::End);
                    self.render(&event, &mut buf);
                    while !end && buf.len() < 1 << 20 {
                        match events.try_recv() {
                            Ok(e) => {
                                end = matches!(e, LogEvent::End);
                                self.render(&e, &mut buf);
                            }
                            Err(_) => break,
                        }
                    }
                    let mut lock = stdout.lock();
                    if lock.write_all(&buf).and_then(|()| lock.flush()).is_err() {
                        // stdout is gone (closed pipe): nothing more can be shown.
                        break 'outer;
                    }
                    buf.clear();
                    if end {
                        break;
                    }
                }
            })
            .expect("spawning the output thread")
    }
}
