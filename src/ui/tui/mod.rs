//! The dashboard for `pk up` on a terminal: a service table, a log pane and a status line.
//!
//! Invariants: a read-only consumer of engine snapshots and log events that turns keys into
//! intents; it owns the terminal only between `terminal::enter` and `terminal::restore`, and
//! while it does nothing else in pk writes to it (stderr is captured into pk's log).

mod ansi;
mod app;
mod history;
mod logview;
mod run;
mod terminal;
mod view;

pub(crate) use ansi::neutralise;
pub use app::{App, Outcome};
pub use history::{DEFAULT_HISTORY_BYTES, LogStore};
pub use run::log_pane_size;
pub(crate) use run::{PendingTui, TuiConfig, spawn};
pub(crate) use terminal::restore as restore_terminal;
pub use view::draw;

/// One output line (without its `\n`) as the dashboard shows it, without colours: every
/// escape sequence and control character removed, `\r` rewrites collapsed.
pub(crate) fn plain_text(line: &[u8]) -> String {
    ansi::parse_line(line).0
}

/// Parses a history size: `8MiB`, `512K`, `1000000` (bytes).
pub(crate) fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: usize = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size like 8MiB, 512K or 1000000"))?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("`{text}`: unknown unit (use K, M or G)")),
    };
    n.checked_mul(scale)
        .ok_or_else(|| format!("`{text}` is too large"))
}
