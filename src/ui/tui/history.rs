//! The dashboard's log history: per source (each service, plus pk itself) a ring of parsed
//! lines bounded by bytes, with one sequence number across all sources for the merged view.
//!
//! Invariants: a ring never holds more than its byte budget (the newest line is always kept);
//! every line evicted is counted in `dropped`; sequence numbers increase strictly in arrival
//! order, so each ring is sorted by `seq`. Appending never blocks and does no I/O.

use std::collections::VecDeque;

use super::ansi::{self, Run};
use crate::logs::{LogEvent, Stream};

/// Default byte budget of one service's history.
pub const DEFAULT_HISTORY_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    Stdout,
    Stderr,
    /// A lifecycle line from pk (`started (pid 12)`).
    Notice,
}

#[derive(Debug, Clone)]
pub struct LogLine {
    pub seq: u64,
    /// Wall-clock ms when pk received the line.
    pub ts_ms: u64,
    pub source: usize,
    pub kind: LineKind,
    /// Plain text, escapes removed.
    pub text: Box<str>,
    /// Style runs over `text` (empty: default style).
    pub runs: Box<[Run]>,
}

impl LogLine {
    /// What this line costs in memory, as charged against the budget.
    pub(crate) fn cost(&self) -> usize {
        size_of::<LogLine>() + self.text.len() + self.runs.len() * size_of::<Run>()
    }
}

#[derive(Debug, Default)]
pub struct Ring {
    pub lines: VecDeque<LogLine>,
    pub bytes: usize,
    /// Lines evicted to stay within budget.
    pub dropped: u64,
}

impl Ring {
    /// Index of the first line with `seq >= seq`.
    pub(crate) fn index_of(&self, seq: u64) -> usize {
        self.lines.partition_point(|l| l.seq < seq)
    }
}

#[derive(Debug)]
pub struct LogStore {
    /// `0..services` are services; the last one is pk itself.
    rings: Vec<Ring>,
    next_seq: u64,
    budget: usize,
}

impl LogStore {
    /// A store for `services` services plus pk's own notices, each ring bounded by `budget`
    /// bytes.
    pub fn new(services: usize, budget: usize) -> LogStore {
        LogStore {
            rings: (0..=services).map(|_| Ring::default()).collect(),
            next_seq: 0,
            budget,
        }
    }

    /// The source index of pk's own lines.
    pub(crate) fn pk_source(&self) -> usize {
        self.rings.len() - 1
    }

    pub(crate) fn sources(&self) -> usize {
        self.rings.len()
    }

    pub fn ring(&self, source: usize) -> &Ring {
        &self.rings[source]
    }

    /// Bytes held by every ring together.
    pub fn bytes(&self) -> usize {
        self.rings.iter().map(|r| r.bytes).sum()
    }

    /// Appends every `\n`-terminated line of `data` (a trailing piece without `\n` too).
    pub fn push_output(&mut self, source: usize, stream: Stream, data: &[u8], ts_ms: u64) {
        self.push_output_skipping(source, stream, data, ts_ms, &mut 0);
    }

    /// Like `push_output`, but the first `*skip` lines are only counted as dropped.
    fn push_output_skipping(
        &mut self,
        source: usize,
        stream: Stream,
        data: &[u8],
        ts_ms: u64,
        skip: &mut usize,
    ) {
        let kind = match stream {
            Stream::Stdout => LineKind::Stdout,
            Stream::Stderr => LineKind::Stderr,
        };
        if *skip > 0 {
            // Fast path under a flood: a whole chunk is skipped with one vectorised count.
            let n = count_lines(data);
            if n <= *skip {
                *skip -= n;
                self.rings[source].dropped += n as u64;
                return;
            }
        }
        for raw in lines(data) {
            if *skip > 0 {
                *skip -= 1;
                self.rings[source].dropped += 1;
                continue;
            }
            let (text, runs) = ansi::parse_line(raw);
            self.push(source, kind, text, runs, ts_ms);
        }
    }

    /// Stores a batch of events in order; true if it contains `LogEvent::End`. Lines a ring
    /// would evict before the batch ends anyway are counted as dropped without being parsed,
    /// so a flood costs about one ring's worth of parsing per batch, whatever its size.
    pub fn ingest(&mut self, batch: Vec<LogEvent>, ts_ms: u64) -> bool {
        let mut skip = vec![0usize; self.rings.len()];
        for (source, skip) in skip.iter_mut().enumerate() {
            *skip = self.lines_beyond_budget(&batch, source);
        }
        let mut ended = false;
        for event in batch {
            match event {
                LogEvent::Output {
                    service,
                    stream,
                    data,
                } if service < skip.len() => {
                    self.push_output_skipping(service, stream, &data, ts_ms, &mut skip[service]);
                }
                LogEvent::Output { .. } => {}
                LogEvent::Notice { service, text } => self.push_notice(service, &text, ts_ms),
                LogEvent::End => ended = true,
            }
        }
        ended
    }

    /// How many of `source`'s output lines in `batch`, oldest first, would not fit its budget
    /// next to the newer ones (estimated from raw lengths, which are never below the parsed).
    fn lines_beyond_budget(&self, batch: &[LogEvent], source: usize) -> usize {
        let chunks = || {
            batch.iter().filter_map(move |e| match e {
                LogEvent::Output { service, data, .. } if *service == source => Some(data),
                _ => None,
            })
        };
        let mut cost = 0;
        let mut kept = 0;
        'newest_first: for data in chunks().rev() {
            for line in lines(data).rev() {
                cost += size_of::<LogLine>() + line.len();
                if cost > self.budget && kept > 0 {
                    break 'newest_first;
                }
                kept += 1;
            }
        }
        let total: usize = chunks().map(|d| count_lines(d)).sum();
        total - kept
    }

    /// Appends a lifecycle line (`source` None: about pk itself).
    pub fn push_notice(&mut self, source: Option<usize>, text: &str, ts_ms: u64) {
        let source = source.unwrap_or(self.pk_source());
        let (text, runs) = ansi::parse_line(text.as_bytes());
        self.push(source, LineKind::Notice, text, runs, ts_ms);
    }

    fn push(&mut self, source: usize, kind: LineKind, text: String, runs: Vec<Run>, ts_ms: u64) {
        let line = LogLine {
            seq: self.next_seq,
            ts_ms,
            source,
            kind,
            text: text.into_boxed_str(),
            runs: runs.into_boxed_slice(),
        };
        self.next_seq += 1;
        let ring = &mut self.rings[source];
        ring.bytes += line.cost();
        ring.lines.push_back(line);
        while ring.bytes > self.budget && ring.lines.len() > 1 {
            let old = ring.lines.pop_front().expect("more than one line");
            ring.bytes -= old.cost();
            ring.dropped += 1;
        }
    }

    /// The last `n` lines of `source` as plain text (for the summary printed at exit).
    pub(crate) fn tail(&self, source: usize, n: usize) -> Vec<&str> {
        let lines = &self.rings[source].lines;
        lines
            .iter()
            .skip(lines.len().saturating_sub(n))
            .map(|l| &*l.text)
            .collect()
    }
}

/// How many items `lines(data)` yields.
fn count_lines(data: &[u8]) -> usize {
    let data = data.strip_suffix(b"\n").unwrap_or(data);
    #[expect(
        clippy::naive_bytecount,
        reason = "LLVM vectorises this loop; fast enough without another crate"
    )]
    let newlines = data.iter().filter(|&&b| b == b'\n').count();
    newlines + 1
}

/// The lines of an output chunk, without their `\n`.
fn lines(data: &[u8]) -> impl DoubleEndedIterator<Item = &[u8]> {
    data.strip_suffix(b"\n")
        .unwrap_or(data)
        .split(|&b| b == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_parsed_and_numbered() {
        let mut store = LogStore::new(2, 1 << 20);
        store.push_output(1, Stream::Stdout, b"a\n\x1b[32mb\x1b[0m\n", 5);
        store.push_notice(None, "hello", 6);
        assert_eq!(store.tail(1, 10), ["a", "b"]);
        assert_eq!(store.tail(store.pk_source(), 10), ["hello"]);
        let seqs: Vec<u64> = store.ring(1).lines.iter().map(|l| l.seq).collect();
        assert_eq!(seqs, [0, 1]);
        assert_eq!(store.ring(2).lines[0].seq, 2);
    }

    #[test]
    fn the_budget_evicts_old_lines_and_counts_them() {
        let per_line = size_of::<LogLine>() + 4;
        let mut store = LogStore::new(1, per_line * 10);
        for i in 0..25 {
            store.push_output(0, Stream::Stdout, format!("{i:04}\n").as_bytes(), 0);
        }
        let ring = store.ring(0);
        assert_eq!(ring.lines.len(), 10);
        assert_eq!(ring.dropped, 15);
        assert!(ring.bytes <= per_line * 10);
        assert_eq!(store.tail(0, 1), ["0024"]);
        assert_eq!(ring.index_of(20), 5);
    }

    #[test]
    fn a_line_larger_than_the_budget_is_still_kept() {
        let mut store = LogStore::new(1, 8);
        store.push_output(0, Stream::Stdout, b"a long line\n", 0);
        assert_eq!(store.tail(0, 5), ["a long line"]);
    }

    #[test]
    fn a_batch_larger_than_the_budget_skips_what_would_be_evicted() {
        let per_line = size_of::<LogLine>() + 4;
        let mut store = LogStore::new(2, per_line * 10);
        let out = |service, text: String| LogEvent::Output {
            service,
            stream: Stream::Stdout,
            data: text.into_bytes(),
        };
        let flood: String = (0..100)
            .map(|i: u32| format!("{i:04}\n"))
            .collect::<Vec<_>>()
            .concat();
        let batch = vec![
            out(0, flood.clone()),
            LogEvent::Notice {
                service: Some(1),
                text: "started".into(),
            },
            out(1, "b\n".into()),
            out(0, flood),
            LogEvent::End,
        ];
        assert!(store.ingest(batch, 0));
        let ring = store.ring(0);
        assert_eq!(ring.lines.len(), 10);
        assert_eq!(ring.dropped, 190);
        assert_eq!(store.tail(0, 2), ["0098", "0099"]);
        assert_eq!(store.tail(1, 5), ["started", "b"]);
        // Order across sources is kept: service 1's lines came before the second flood.
        assert!(store.ring(1).lines[1].seq < store.ring(0).lines[0].seq);
    }
}
