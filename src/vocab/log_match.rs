//! The `log` probe's matcher: output pumps feed it lines; the probe asks whether a line matched.

use std::sync::atomic::{AtomicBool, Ordering};

use regex::bytes::Regex;
use tokio::sync::Notify;

pub(crate) struct LogMatcher {
    regex: Regex,
    seen: AtomicBool,
    notify: Notify,
}

impl LogMatcher {
    pub(crate) fn new(regex: &regex::Regex) -> LogMatcher {
        LogMatcher {
            // The pattern already compiled as a str regex; the bytes flavour accepts it too.
            regex: Regex::new(regex.as_str()).expect("a valid regex stays valid"),
            seen: AtomicBool::new(false),
            notify: Notify::new(),
        }
    }

    /// Scans a chunk of complete lines.
    pub(crate) fn feed(&self, chunk: &[u8]) {
        if !self.seen.load(Ordering::Relaxed)
            && chunk
                .split(|&b| b == b'\n')
                .any(|line| self.regex.is_match(line))
        {
            self.seen.store(true, Ordering::Relaxed);
            self.notify.notify_one();
        }
    }

    /// Resolves once a line has matched (immediately if one matched unobserved).
    pub(crate) async fn matched(&self) {
        self.notify.notified().await;
    }

    /// Whether a line matched since the last call.
    pub(crate) fn take_seen(&self) -> bool {
        self.seen.swap(false, Ordering::Relaxed)
    }
}
