//! The Linux sampler: CPU and memory of whole service trees, read from /proc.
//!
//! A service's tree is its cgroup leaf's `cgroup.procs` (cgroup v2 backend), else every process
//! in the process group of its first pid, plus its known pids. CPU is the sum of utime+stime
//! over the tree, as a percentage of one core between two samples (the first sample of a run
//! averages since the run started); memory is the sum of `VmRSS`.
//!
//! Invariants: read-only (never signals or changes anything); a process that vanishes while
//! being read is skipped; cheap enough to call once a second.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::process::{Containment, ContainmentKind};

use super::{Run, Usage};

/// Keeps the previous CPU totals so that each sample can give a rate.
#[derive(Debug)]
pub(crate) struct Sampler {
    proc_root: PathBuf,
    ticks_per_second: u64,
    /// By service name: (the run it belongs to (`started_at_ms`), CPU ticks, when read).
    previous: HashMap<String, (u64, u64, Instant)>,
}

impl Default for Sampler {
    fn default() -> Self {
        Sampler::new()
    }
}

/// The fields pk reads from `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    pgrp: u32,
    /// utime + stime, in clock ticks.
    ticks: u64,
}

impl Sampler {
    pub(crate) fn new() -> Sampler {
        Sampler {
            proc_root: PathBuf::from("/proc"),
            ticks_per_second: rustix::param::clock_ticks_per_second().max(1),
            previous: HashMap::new(),
        }
    }

    /// One entry per service of `runs`, None for a service with no live tree.
    pub(crate) fn sample(
        &mut self,
        containment: &Containment,
        runs: &[Run<'_>],
    ) -> Vec<Option<Usage>> {
        let now = Instant::now();
        let now_ms = crate::vocab::now_ms();
        let groups = match containment.kind() {
            ContainmentKind::ProcessGroup => Some(self.process_groups()),
            ContainmentKind::Cgroup => None,
        };
        let usage = runs
            .iter()
            .map(|s| {
                let started = s.started_at_ms?;
                if s.pids.is_empty() {
                    return None;
                }
                let pids = Self::tree(containment, s, groups.as_ref());
                let (ticks, rss_bytes) = self.totals(&pids);
                let cpu_seconds = match self.previous.get(s.name) {
                    Some(&(run, before, at)) if run == started => (
                        ticks.saturating_sub(before),
                        now.duration_since(at).as_secs_f64(),
                    ),
                    #[expect(clippy::cast_precision_loss, reason = "ms since start, small")]
                    _ => (ticks, now_ms.saturating_sub(started) as f64 / 1000.0),
                };
                self.previous
                    .insert(s.name.to_owned(), (started, ticks, now));
                Some(Usage {
                    cpu_percent: self.percent(cpu_seconds.0, cpu_seconds.1),
                    rss_bytes,
                })
            })
            .collect();
        let live: HashSet<&str> = runs
            .iter()
            .filter(|s| s.started_at_ms.is_some())
            .map(|s| s.name)
            .collect();
        self.previous.retain(|name, _| live.contains(name.as_str()));
        usage
    }

    fn percent(&self, ticks: u64, seconds: f64) -> f64 {
        if seconds <= 0.0 {
            return 0.0;
        }
        #[expect(clippy::cast_precision_loss, reason = "tick counts are far below 2^52")]
        let cpu = ticks as f64 / self.ticks_per_second as f64;
        cpu / seconds * 100.0
    }

    /// Every pid of a service's tree.
    fn tree(
        containment: &Containment,
        service: &Run<'_>,
        groups: Option<&HashMap<u32, Vec<u32>>>,
    ) -> Vec<u32> {
        let mut pids: Vec<u32> = service.pids.to_vec();
        if let Some(leaf) = containment.leaf_dir(service.name)
            && let Ok(procs) = fs::read_to_string(leaf.join("cgroup.procs"))
        {
            pids.extend(procs.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
        }
        if let (Some(groups), Some(leader)) = (groups, service.pids.first())
            && let Some(members) = groups.get(leader)
        {
            pids.extend(members);
        }
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// Process group id → its members, over every process in /proc.
    fn process_groups(&self) -> HashMap<u32, Vec<u32>> {
        let mut groups: HashMap<u32, Vec<u32>> = HashMap::new();
        let Ok(entries) = fs::read_dir(&self.proc_root) else {
            return groups;
        };
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(stat) = read_stat(&self.proc_root, pid) {
                groups.entry(stat.pgrp).or_default().push(pid);
            }
        }
        groups
    }

    /// (CPU ticks, RSS bytes) summed over `pids`.
    fn totals(&self, pids: &[u32]) -> (u64, u64) {
        pids.iter().fold((0, 0), |(ticks, rss), &pid| {
            let t = read_stat(&self.proc_root, pid).map_or(0, |s| s.ticks);
            let r = read_rss(&self.proc_root, pid).unwrap_or(0);
            (ticks + t, rss + r)
        })
    }
}

fn read_stat(root: &Path, pid: u32) -> Option<Stat> {
    parse_stat(&fs::read_to_string(root.join(pid.to_string()).join("stat")).ok()?)
}

/// Parses `/proc/<pid>/stat`; the command name may contain spaces and parentheses, so fields
/// are counted after the last `)`.
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state) of proc(5).
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        pgrp: u32::try_from(field(5)?).ok()?,
        ticks: field(14)? + field(15)?,
    })
}

fn read_rss(root: &Path, pid: u32) -> Option<u64> {
    parse_rss(&fs::read_to_string(root.join(pid.to_string()).join("status")).ok()?)
}

/// `VmRSS:   1234 kB` from `/proc/<pid>/status`, in bytes (absent for kernel threads and
/// zombies).
fn parse_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let line = "42 (a (weird) name) S 1 40 40 0 -1 4194304 100 0 0 0 7 5 0 0 20 0 1 0 \
                    100 1000000 250 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                pgrp: 40,
                ticks: 12
            })
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn rss_comes_from_vmrss() {
        let status = "Name:\tx\nVmPeak:\t 9000 kB\nVmRSS:\t  1500 kB\nThreads: 1\n";
        assert_eq!(parse_rss(status), Some(1500 * 1024));
        assert_eq!(parse_rss("Name:\tkthreadd\n"), None);
    }

    #[test]
    fn samples_a_real_process_tree() {
        let containment = Containment::process_groups("test");
        let me = [std::process::id()];
        let snap = [
            Run {
                name: "me",
                pids: &me,
                started_at_ms: Some(crate::vocab::now_ms() - 1000),
            },
            Run {
                name: "idle",
                pids: &[],
                started_at_ms: None,
            },
        ];
        let mut sampler = Sampler::new();
        let first = sampler.sample(&containment, &snap);
        assert_eq!(first.len(), 2);
        assert!(first[1].is_none(), "no tree, no usage");
        let me = first[0].expect("this test's own process");
        assert!(me.rss_bytes > 1024 * 1024, "{me:?}");
        // Burn CPU until the rate shows; bounded by a deadline, not a fixed sleep.
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        let mut x = 0u64;
        loop {
            for i in 0..5_000_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
            let usage = sampler.sample(&containment, &snap)[0].expect("still alive");
            if usage.cpu_percent > 5.0 {
                break;
            }
            assert!(Instant::now() < deadline, "CPU never showed: {usage:?}");
        }
    }
}
