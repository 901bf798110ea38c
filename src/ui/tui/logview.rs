//! Which log lines a pane shows: one service's ring or all of them merged by sequence
//! number, optionally filtered, and the window of lines that fills a pane of a given height.
//!
//! Invariants: pure reads of a `LogStore`; work is proportional to the lines visited (a
//! window visits about one screen of lines unless a filter skips many), never to the whole
//! history, so a frame stays cheap under a flood.

use std::ops::Range;

use super::history::{LogLine, LogStore};

/// Whose lines a pane shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    Service(usize),
    /// Every service and pk's own lines, in arrival order.
    Merged,
}

/// A search or filter text. Smart case: case-insensitive (ASCII) unless it has an uppercase
/// letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Query {
    text: String,
    ignore_case: bool,
}

impl Query {
    /// None for an empty text.
    pub(crate) fn new(text: &str) -> Option<Query> {
        (!text.is_empty()).then(|| Query {
            text: if text.chars().any(char::is_uppercase) {
                text.to_owned()
            } else {
                text.to_ascii_lowercase()
            },
            ignore_case: !text.chars().any(char::is_uppercase),
        })
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    pub(crate) fn matches(&self, haystack: &str) -> bool {
        self.find_iter(haystack).next().is_some()
    }

    /// Byte ranges of non-overlapping matches in `haystack`.
    pub(crate) fn find_iter<'h>(
        &'h self,
        haystack: &'h str,
    ) -> impl Iterator<Item = Range<usize>> + 'h {
        let needle = self.text.as_bytes();
        let hay = haystack.as_bytes();
        let mut at = 0;
        std::iter::from_fn(move || {
            while at + needle.len() <= hay.len() {
                let window = &hay[at..at + needle.len()];
                let hit = if self.ignore_case {
                    window.eq_ignore_ascii_case(needle)
                } else {
                    window == needle
                };
                if hit && haystack.is_char_boundary(at) {
                    let m = at..at + needle.len();
                    at += needle.len();
                    return Some(m);
                }
                at += 1;
            }
            None
        })
    }
}

/// The lines of one scope, with an optional filter.
#[derive(Clone, Copy)]
pub(crate) struct LogView<'a> {
    pub store: &'a LogStore,
    pub scope: Scope,
    pub filter: Option<&'a Query>,
}

/// The lines that fill a pane.
#[derive(Debug)]
pub(crate) struct Window<'a> {
    /// Oldest first.
    pub lines: Vec<&'a LogLine>,
    /// Rows of the first line hidden above the pane (a wrapped line cut at the top).
    pub skip_rows: usize,
    /// The pane shows the newest line: new output would scroll it.
    pub at_bottom: bool,
}

impl<'a> LogView<'a> {
    fn sources(&self) -> Range<usize> {
        match self.scope {
            Scope::Service(s) => s..s + 1,
            Scope::Merged => 0..self.store.sources(),
        }
    }

    fn keep(&self, line: &LogLine) -> bool {
        self.filter.is_none_or(|f| f.matches(&line.text))
    }

    /// Lines with `seq < before`, newest first.
    pub(crate) fn back(self, before: u64) -> impl Iterator<Item = &'a LogLine> {
        let sources = self.sources();
        let mut cursors: Vec<usize> = sources
            .clone()
            .map(|s| self.store.ring(s).index_of(before))
            .collect();
        std::iter::from_fn(move || {
            let (slot, _) = cursors
                .iter()
                .enumerate()
                .filter(|&(_, &c)| c > 0)
                .map(|(slot, &c)| (slot, self.store.ring(sources.start + slot).lines[c - 1].seq))
                .max_by_key(|&(_, seq)| seq)?;
            cursors[slot] -= 1;
            Some(&self.store.ring(sources.start + slot).lines[cursors[slot]])
        })
        .filter(move |l| self.keep(l))
    }

    /// Lines with `seq >= from`, oldest first.
    pub(crate) fn forward(self, from: u64) -> impl Iterator<Item = &'a LogLine> {
        let sources = self.sources();
        let mut cursors: Vec<usize> = sources
            .clone()
            .map(|s| self.store.ring(s).index_of(from))
            .collect();
        std::iter::from_fn(move || {
            let (slot, _) = cursors
                .iter()
                .enumerate()
                .filter_map(|(slot, &c)| {
                    let line = self.store.ring(sources.start + slot).lines.get(c)?;
                    Some((slot, line.seq))
                })
                .min_by_key(|&(_, seq)| seq)?;
            cursors[slot] += 1;
            Some(&self.store.ring(sources.start + slot).lines[cursors[slot] - 1])
        })
        .filter(move |l| self.keep(l))
    }

    /// Lines dropped from the rings this view reads.
    pub(crate) fn dropped(&self) -> u64 {
        self.sources().map(|s| self.store.ring(s).dropped).sum()
    }

    /// The window of a pane `height` rows high: the newest lines when `top` is None (follow),
    /// else the lines from `top` on — or the newest lines if fewer than a pane remain.
    pub(crate) fn window(
        self,
        top: Option<u64>,
        height: usize,
        rows_of: impl Fn(&LogLine) -> usize,
    ) -> Window<'a> {
        if let Some(top) = top {
            let mut lines = Vec::new();
            let mut rows = 0;
            let mut rest = self.forward(top);
            for line in rest.by_ref() {
                rows += rows_of(line);
                lines.push(line);
                if rows >= height {
                    break;
                }
            }
            if rows >= height {
                let at_bottom = rest.next().is_none();
                return Window {
                    lines,
                    skip_rows: 0,
                    at_bottom,
                };
            }
        }
        let mut lines = Vec::new();
        let mut rows = 0;
        for line in self.back(u64::MAX) {
            if rows >= height {
                break;
            }
            rows += rows_of(line);
            lines.push(line);
        }
        lines.reverse();
        Window {
            lines,
            skip_rows: rows.saturating_sub(height),
            at_bottom: true,
        }
    }

    /// The sequence number `n` lines before `seq` (or the oldest line's).
    pub(crate) fn up_from(self, seq: u64, n: usize) -> Option<u64> {
        let mut last = None;
        for line in self.back(seq).take(n) {
            last = Some(line.seq);
        }
        last.or_else(|| self.forward(0).next().map(|l| l.seq))
    }

    /// The sequence number `n` lines after `seq` (or the newest line's).
    pub(crate) fn down_from(self, seq: u64, n: usize) -> Option<u64> {
        let mut last = None;
        for line in self.forward(seq.saturating_add(1)).take(n) {
            last = Some(line.seq);
        }
        last
    }

    /// The next line after `seq` (newer; `forward`) or before it that matches `query`,
    /// wrapping around the ends.
    pub(crate) fn find(self, query: &Query, seq: Option<u64>, forward: bool) -> Option<u64> {
        let hit = |l: &&LogLine| query.matches(&l.text);
        let seq_of = |l: &LogLine| l.seq;
        if forward {
            let from = seq.map_or(0, |s| s + 1);
            self.forward(from)
                .find(hit)
                .or_else(|| self.forward(0).find(hit))
                .map(seq_of)
        } else {
            let before = seq.unwrap_or(u64::MAX);
            self.back(before)
                .find(hit)
                .or_else(|| self.back(u64::MAX).find(hit))
                .map(seq_of)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::Stream;

    fn store() -> LogStore {
        let mut s = LogStore::new(2, 1 << 20);
        for i in 0..10 {
            s.push_output(i % 2, Stream::Stdout, format!("line {i}\n").as_bytes(), 0);
        }
        s
    }

    fn texts(lines: &[&LogLine]) -> Vec<String> {
        lines.iter().map(|l| l.text.to_string()).collect()
    }

    #[test]
    fn merged_view_interleaves_by_arrival() {
        let s = store();
        let v = LogView {
            store: &s,
            scope: Scope::Merged,
            filter: None,
        };
        let w = v.window(None, 3, |_| 1);
        assert_eq!(texts(&w.lines), ["line 7", "line 8", "line 9"]);
        let w = v.window(Some(2), 3, |_| 1);
        assert_eq!(texts(&w.lines), ["line 2", "line 3", "line 4"]);
        assert!(!w.at_bottom);
    }

    #[test]
    fn single_view_and_filter() {
        let s = store();
        let q = Query::new("LINE 3").unwrap();
        let v = LogView {
            store: &s,
            scope: Scope::Service(1),
            filter: None,
        };
        assert_eq!(texts(&v.window(None, 2, |_| 1).lines), ["line 7", "line 9"]);
        let q2 = Query::new("line 3").unwrap();
        let f = LogView {
            filter: Some(&q2),
            ..v
        };
        assert_eq!(texts(&f.window(None, 5, |_| 1).lines), ["line 3"]);
        assert_eq!(
            v.find(&q, None, true),
            None,
            "uppercase query is case-sensitive"
        );
    }

    #[test]
    fn scrolling_and_search_wrap_around() {
        let s = store();
        let v = LogView {
            store: &s,
            scope: Scope::Merged,
            filter: None,
        };
        assert_eq!(v.up_from(5, 2), Some(3));
        assert_eq!(v.up_from(1, 5), Some(0));
        assert_eq!(v.down_from(5, 2), Some(7));
        let q = Query::new("line 1").unwrap();
        assert_eq!(
            v.find(&q, Some(1), true),
            Some(1),
            "wraps to the only match"
        );
        assert_eq!(v.find(&q, None, false), Some(1));
        let near_end = v.window(Some(8), 5, |_| 1);
        assert!(near_end.at_bottom);
        assert_eq!(
            near_end.lines.len(),
            5,
            "a short tail shows the newest pane instead"
        );
    }

    #[test]
    fn wrapped_lines_cut_at_the_top() {
        let s = store();
        let v = LogView {
            store: &s,
            scope: Scope::Merged,
            filter: None,
        };
        let w = v.window(None, 5, |_| 2);
        assert_eq!(w.lines.len(), 3);
        assert_eq!(w.skip_rows, 1);
    }

    #[test]
    fn query_finds_non_overlapping_ranges() {
        let q = Query::new("ab").unwrap();
        assert_eq!(q.find_iter("xABab").collect::<Vec<_>>(), [1..3, 3..5]);
    }
}
