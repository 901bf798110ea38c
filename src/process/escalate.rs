//! The one escalation driver both backends share: signal the tree, poll until it drains or the
//! grace passes, then hard-kill and poll until it drains.
//!
//! Invariants: uses only tokio's clock (so it runs under paused time in tests); never signals a
//! tree that already drained; the hard kill happens exactly at `start + grace`, not a poll later.

use std::time::Duration;

use tokio::time::{Instant, sleep, sleep_until};

/// First pause between two drain polls; it doubles up to `POLL_MAX`.
const POLL_MIN: Duration = Duration::from_millis(5);
const POLL_MAX: Duration = Duration::from_millis(50);
/// After the hard kill, how often to repeat it while the tree still has not drained.
const REKILL_EVERY: Duration = Duration::from_secs(1);

/// What the driver needs from a tree.
pub(crate) trait Drainable {
    /// Sends `signal` to every process of the tree.
    fn send_signal(&self, signal: i32) -> std::io::Result<()>;
    /// SIGKILLs the whole tree.
    fn hard_kill(&self);
    /// Reaps what can be reaped and says whether the whole tree is gone.
    fn poll_drained(&mut self) -> bool;
}

/// Poll intervals growing from `POLL_MIN` to `POLL_MAX`: quick for trees that end at once,
/// cheap for trees that take long.
struct Backoff(Duration);

impl Backoff {
    fn new() -> Self {
        Backoff(POLL_MIN)
    }

    fn next(&mut self) -> Duration {
        let current = self.0;
        self.0 = (self.0 * 2).min(POLL_MAX);
        current
    }
}

/// Signal → wait up to `grace` → hard kill → wait. Returns whether it had to kill.
pub(crate) async fn escalate<T: Drainable>(tree: &mut T, signal: i32, grace: Duration) -> bool {
    if tree.poll_drained() {
        return false;
    }
    if let Err(error) = tree.send_signal(signal) {
        tracing::warn!(signal, %error, "signalling the tree failed; escalating on schedule");
    }
    let deadline = Instant::now() + grace;
    let mut backoff = Backoff::new();
    loop {
        if tree.poll_drained() {
            return false;
        }
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        sleep_until((now + backoff.next()).min(deadline)).await;
    }
    tree.hard_kill();
    let mut last_kill = Instant::now();
    let mut backoff = Backoff::new();
    loop {
        if tree.poll_drained() {
            return true;
        }
        if last_kill.elapsed() >= REKILL_EVERY {
            tree.hard_kill();
            last_kill = Instant::now();
        }
        sleep(backoff.next()).await;
    }
}

/// Polls until the tree has drained. Cancel-safe: it keeps no state between polls.
pub(crate) async fn wait_drained<T: Drainable>(tree: &mut T) {
    let mut backoff = Backoff::new();
    while !tree.poll_drained() {
        sleep(backoff.next()).await;
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    /// A tree that drains at a fixed time after creation, or a fixed time after the hard kill.
    struct FakeTree {
        start: Instant,
        drains_after: Option<Duration>,
        drains_after_kill: Option<Duration>,
        already_gone: bool,
        signals: RefCell<Vec<(i32, Duration)>>,
        kills: RefCell<Vec<Duration>>,
    }

    impl FakeTree {
        fn new(drains_after: Option<Duration>, drains_after_kill: Option<Duration>) -> Self {
            FakeTree {
                start: Instant::now(),
                drains_after,
                drains_after_kill,
                already_gone: false,
                signals: RefCell::default(),
                kills: RefCell::default(),
            }
        }
    }

    impl Drainable for FakeTree {
        fn send_signal(&self, signal: i32) -> std::io::Result<()> {
            self.signals
                .borrow_mut()
                .push((signal, self.start.elapsed()));
            Err(std::io::Error::other("fake trees may fail to signal"))
        }

        fn hard_kill(&self) {
            self.kills.borrow_mut().push(self.start.elapsed());
        }

        fn poll_drained(&mut self) -> bool {
            let now = self.start.elapsed();
            let by_itself = self.drains_after.is_some_and(|at| now >= at);
            let by_kill = match (self.kills.borrow().first(), self.drains_after_kill) {
                (Some(killed), Some(after)) => now >= *killed + after,
                _ => false,
            };
            self.already_gone || by_itself || by_kill
        }
    }

    const GRACE: Duration = Duration::from_secs(10);

    #[tokio::test(start_paused = true)]
    async fn a_tree_that_drains_within_grace_is_not_killed() {
        let mut tree = FakeTree::new(Some(Duration::from_millis(1234)), None);
        let killed = escalate(&mut tree, 15, GRACE).await;
        assert!(!killed);
        assert_eq!(*tree.signals.borrow(), vec![(15, Duration::ZERO)]);
        assert!(tree.kills.borrow().is_empty());
        let took = tree.start.elapsed();
        assert!(took >= Duration::from_millis(1234), "{took:?}");
        assert!(took <= Duration::from_millis(1234) + POLL_MAX, "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_tree_that_never_drains_is_killed_exactly_at_grace() {
        let mut tree = FakeTree::new(None, Some(Duration::from_millis(30)));
        let killed = escalate(&mut tree, 2, GRACE).await;
        assert!(killed);
        assert_eq!(*tree.kills.borrow(), vec![GRACE]);
        assert!(tree.start.elapsed() >= GRACE + Duration::from_millis(30));
    }

    #[tokio::test(start_paused = true)]
    async fn a_tree_that_drains_just_after_grace_is_killed() {
        let mut tree = FakeTree::new(Some(GRACE + Duration::from_millis(1)), None);
        assert!(escalate(&mut tree, 15, GRACE).await);
        assert_eq!(*tree.kills.borrow(), vec![GRACE]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_drained_tree_is_not_signalled() {
        let mut tree = FakeTree::new(None, None);
        tree.already_gone = true;
        assert!(!escalate(&mut tree, 15, GRACE).await);
        assert!(tree.signals.borrow().is_empty());
        assert!(tree.kills.borrow().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn zero_grace_kills_at_once() {
        let mut tree = FakeTree::new(None, Some(Duration::ZERO));
        assert!(escalate(&mut tree, 15, Duration::ZERO).await);
        assert_eq!(*tree.kills.borrow(), vec![Duration::ZERO]);
        assert_eq!(tree.signals.borrow().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_kill_that_does_not_take_is_repeated() {
        let mut tree = FakeTree::new(None, Some(Duration::from_millis(2500)));
        assert!(escalate(&mut tree, 15, Duration::from_secs(1)).await);
        let kills = tree.kills.borrow();
        assert_eq!(kills.len(), 3, "{kills:?}");
        assert_eq!(kills[0], Duration::from_secs(1));
        assert!(kills[1] >= Duration::from_secs(2) && kills[1] < Duration::from_millis(2100));
    }

    #[tokio::test(start_paused = true)]
    async fn wait_drained_returns_soon_after_the_tree_drains() {
        let mut tree = FakeTree::new(Some(Duration::from_secs(3)), None);
        wait_drained(&mut tree).await;
        let took = tree.start.elapsed();
        assert!(took >= Duration::from_secs(3) && took <= Duration::from_secs(3) + POLL_MAX);
        assert!(tree.signals.borrow().is_empty());
    }
}
