//! CPU and memory of whole service trees: for `pk up`'s dashboard and `pk ps`.
//!
//! On Linux a [`Sampler`] reads them from /proc (`procfs.rs`). The portable build (`--features
//! portable`, or any OS but Linux; see build.rs) measures nothing: every usage is unknown
//! (`None`), which the dashboard and `pk ps` show as such.
//!
//! Invariants: read-only (never signals or changes anything); cheap enough to call once a
//! second.

#[cfg(native_linux)]
mod procfs;

#[cfg(native_linux)]
pub(crate) use procfs::Sampler;

#[cfg(not(native_linux))]
use crate::process::Containment;

/// What the sampler needs to know of one service: its name (its cgroup leaf), the pids pk
/// spawned, and when the current run started (None: no live tree).
#[derive(Debug, Clone, Copy)]
#[cfg_attr(
    not(native_linux),
    expect(dead_code, reason = "the portable build measures nothing")
)]
pub(crate) struct Run<'a> {
    pub name: &'a str,
    pub pids: &'a [u32],
    pub started_at_ms: Option<u64>,
}

/// Resource use of one service's whole tree.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    /// Percent of one core (a tree using two cores fully shows 200).
    pub cpu_percent: f64,
    pub rss_bytes: u64,
}

/// The portable build's sampler: it measures nothing.
#[cfg(not(native_linux))]
#[derive(Debug, Default)]
pub(crate) struct Sampler;

#[cfg(not(native_linux))]
impl Sampler {
    pub(crate) fn new() -> Sampler {
        Sampler
    }

    /// One `None` (unknown) per service of `runs`.
    #[expect(clippy::unused_self, reason = "the Linux sampler's signature")]
    pub(crate) fn sample(&mut self, _: &Containment, runs: &[Run<'_>]) -> Vec<Option<Usage>> {
        vec![None; runs.len()]
    }
}
