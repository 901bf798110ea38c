//! Turns a stream of relevant changes into at most one action per service per burst: a
//! trailing debounce (fire once a service's changes have been quiet for its `debounce`) capped
//! by a maximum wait (so a never-ending stream still fires).
//!
//! Invariants: only already-filtered changes come in (ignored paths never open a window); time
//! is tokio's clock, so the behaviour is tested under paused time; a batch fires exactly once.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use crate::vocab::ServiceId;

/// Distinct paths remembered per batch; beyond that they are only counted.
const MAX_PATHS: usize = 10_000;

/// The longest a burst can delay its action: 10 × `debounce`, at least 1 s.
pub(crate) fn max_wait(debounce: Duration) -> Duration {
    (debounce * 10).max(Duration::from_secs(1))
}

/// A relevant change, as reported by the watcher thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Change {
    pub service: ServiceId,
    /// Relative to the config directory where possible.
    pub path: PathBuf,
}

/// The changes of one burst for one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Batch {
    pub first: PathBuf,
    /// Distinct paths after `first`.
    pub more: usize,
}

impl Batch {
    /// `src/main.rs changed (+3 more)`.
    pub(crate) fn describe(&self) -> String {
        let first = self.first.display();
        match self.more {
            0 => format!("{first} changed"),
            n => format!("{first} changed (+{n} more)"),
        }
    }
}

#[derive(Debug)]
struct Pending {
    opened: Instant,
    last: Instant,
    first: PathBuf,
    seen: HashSet<PathBuf>,
    more: usize,
}

/// Per-service trailing debounce with a maximum wait.
#[derive(Debug)]
pub(crate) struct Debouncer {
    debounce: Vec<Duration>,
    pending: BTreeMap<ServiceId, Pending>,
}

impl Debouncer {
    /// `debounce[service]`: that service's quiet period.
    pub(crate) fn new(debounce: Vec<Duration>) -> Debouncer {
        Debouncer {
            debounce,
            pending: BTreeMap::new(),
        }
    }

    pub(crate) fn record(&mut self, change: Change, now: Instant) {
        let p = self
            .pending
            .entry(change.service)
            .or_insert_with(|| Pending {
                opened: now,
                last: now,
                first: change.path.clone(),
                seen: HashSet::from([change.path.clone()]),
                more: 0,
            });
        p.last = now;
        if p.seen.len() < MAX_PATHS {
            if p.seen.insert(change.path) {
                p.more += 1;
            }
        } else if !p.seen.contains(&change.path) {
            p.more += 1;
        }
    }

    fn due_at(&self, service: ServiceId, p: &Pending) -> Instant {
        let debounce = self.debounce.get(service).copied().unwrap_or_default();
        (p.last + debounce).min(p.opened + max_wait(debounce))
    }

    /// When the next batch is due, if any is pending.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.pending.iter().map(|(s, p)| self.due_at(*s, p)).min()
    }

    /// Takes every batch due at `now`.
    pub(crate) fn take_due(&mut self, now: Instant) -> Vec<(ServiceId, Batch)> {
        let due: Vec<ServiceId> = self
            .pending
            .iter()
            .filter(|(s, p)| self.due_at(**s, p) <= now)
            .map(|(s, _)| *s)
            .collect();
        due.into_iter()
            .filter_map(|s| {
                let p = self.pending.remove(&s)?;
                Some((
                    s,
                    Batch {
                        first: p.first,
                        more: p.more,
                    },
                ))
            })
            .collect()
    }
}

/// Debounces `changes` until the channel closes; calls `fire` for every batch that is due.
pub(crate) async fn run(
    mut debouncer: Debouncer,
    mut changes: mpsc::UnboundedReceiver<Change>,
    mut fire: impl FnMut(ServiceId, Batch),
) {
    loop {
        let deadline = debouncer.deadline();
        let wake = async {
            match deadline {
                Some(at) => sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            change = changes.recv() => match change {
                Some(change) => debouncer.record(change, Instant::now()),
                None => return,
            },
            () = wake => {
                for (service, batch) in debouncer.take_due(Instant::now()) {
                    fire(service, batch);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBOUNCE: Duration = Duration::from_millis(100);

    fn change(service: ServiceId, path: &str) -> Change {
        Change {
            service,
            path: PathBuf::from(path),
        }
    }

    /// Runs the debouncer on a task; fired batches arrive with the time they fired at.
    fn start() -> (
        mpsc::UnboundedSender<Change>,
        mpsc::UnboundedReceiver<(Instant, ServiceId, Batch)>,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let debouncer = Debouncer::new(vec![DEBOUNCE, DEBOUNCE * 2]);
        tokio::spawn(run(debouncer, rx, move |s, b| {
            out_tx.send((Instant::now(), s, b)).unwrap();
        }));
        (tx, out_rx)
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_fires_once_after_the_quiet_period() {
        let (tx, mut fired) = start();
        let t0 = Instant::now();
        for i in 0..100 {
            tx.send(change(0, &format!("src/f{}.rs", i % 4))).unwrap();
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let (at, service, batch) = fired.recv().await.unwrap();
        assert_eq!(service, 0);
        assert_eq!(batch.describe(), "src/f0.rs changed (+3 more)");
        let last_write = t0 + Duration::from_millis(100);
        assert!(
            at >= last_write + DEBOUNCE - Duration::from_millis(2)
                && at <= last_write + DEBOUNCE + Duration::from_millis(2),
            "trailing: {:?} after the last write",
            at - last_write
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(fired.try_recv().is_err(), "exactly one batch");
    }

    #[tokio::test(start_paused = true)]
    async fn a_continuous_stream_fires_at_the_maximum_wait() {
        let (tx, mut fired) = start();
        let t0 = Instant::now();
        let feeder = tokio::spawn(async move {
            for i in 0..300 {
                tx.send(change(0, &format!("log{i}"))).unwrap();
                tokio::time::sleep(DEBOUNCE / 2).await;
            }
        });
        let (at, _, batch) = fired.recv().await.unwrap();
        assert_eq!(at - t0, max_wait(DEBOUNCE));
        assert_eq!(max_wait(DEBOUNCE), Duration::from_secs(1));
        assert!(batch.more >= 19, "{batch:?}");
        let (at2, _, _) = fired.recv().await.unwrap();
        let gap = at2 - at;
        assert!(
            gap >= max_wait(DEBOUNCE) && gap <= max_wait(DEBOUNCE) + DEBOUNCE / 2,
            "and again while it goes on (the next window opens with the next write): {gap:?}"
        );
        feeder.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn services_are_debounced_independently_with_their_own_period() {
        let (tx, mut fired) = start();
        let t0 = Instant::now();
        tx.send(change(1, "b")).unwrap();
        tx.send(change(0, "a")).unwrap();
        let (at, s, _) = fired.recv().await.unwrap();
        assert_eq!((s, at - t0), (0, DEBOUNCE));
        let (at, s, batch) = fired.recv().await.unwrap();
        assert_eq!((s, at - t0), (1, DEBOUNCE * 2));
        assert_eq!(batch.describe(), "b changed");
    }

    #[test]
    fn the_maximum_wait_is_ten_debounces_but_at_least_a_second() {
        assert_eq!(max_wait(Duration::from_millis(50)), Duration::from_secs(1));
        assert_eq!(max_wait(Duration::from_millis(200)), Duration::from_secs(2));
    }
}
