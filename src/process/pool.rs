//! Threads that run spawns, so that many services can be between fork and exec at once without
//! blocking the async runtime's workers.
//!
//! Two kinds. A **lasting** pool keeps its threads as long as its `Containment`: a child spawned
//! in pk itself gets its parent-death signal when the thread that cloned it exits, so those
//! threads must not come and go. A **passing** pool is for spawns through the spawner processes
//! (whose services' parent-death signal follows pk's main thread, see `spawner.rs`): it starts
//! a thread when a job finds none idle (at most one per spawner process), and a thread idle for
//! [`IDLE_EXIT`] exits, so pk holds no spawning thread at rest. A spawn that must run in pk
//! itself is refused on a passing thread ([`refuse_in_process`]) and run again on a lasting one.
//!
//! Invariants: each pool thread enters the tokio runtime the pool was created from (the output
//! pipes register with its reactor); the job queue is bounded by the callers waiting on it
//! (each awaits its own job: lossless, no shedding).

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

/// Threads in a lasting pool (pk forks and execs itself: `PK_SPAWN=fork`, or no spawner
/// process): spawns mostly wait for the child's exec, so more than the cores.
pub(super) const LASTING_THREADS: usize = 4;

/// The name of passing threads (a number follows).
pub(super) const PASSING_NAME: &str = "pk-spawn-pass";

/// How long a passing thread waits for another job before it exits.
const IDLE_EXIT: Duration = Duration::from_millis(200);

type Job = Box<dyn FnOnce() + Send>;

thread_local! {
    /// Set on passing pool threads: nothing spawned from them may depend on them living.
    static PASSING: Cell<bool> = const { Cell::new(false) };
}

/// Whether this thread may exit while what it spawned in-process still runs (a passing pool
/// thread): such a spawn must go to a lasting thread instead.
#[cfg_attr(
    all(not(native_linux), not(test)),
    expect(dead_code, reason = "the portable build has no passing threads")
)]
pub(super) fn refuse_in_process() -> bool {
    PASSING.with(Cell::get)
}

struct Queue {
    jobs: VecDeque<Job>,
    idle: usize,
    live: usize,
    /// The pool was dropped: its threads exit once the queue is empty.
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
    runtime: tokio::runtime::Handle,
    /// Most threads at once.
    max: usize,
    /// Threads exit after [`IDLE_EXIT`] without a job (a passing pool).
    passing: bool,
    name: &'static str,
}

pub(crate) struct Pool {
    shared: Arc<Shared>,
}

impl Pool {
    /// A lasting pool of `threads` threads, started now on the current tokio runtime. Must be
    /// called within one.
    pub(super) fn lasting(threads: usize) -> Pool {
        let pool = Pool::new(threads, false, "pk-spawn");
        {
            let mut queue = pool.lock();
            for _ in 0..threads {
                queue.live += 1;
                pool.start_thread(queue.live);
            }
        }
        pool
    }

    /// A passing pool of up to `threads` threads, none started yet. Must be called within a
    /// tokio runtime.
    pub(super) fn passing(threads: usize) -> Pool {
        Pool::new(threads, true, PASSING_NAME)
    }

    fn new(max: usize, passing: bool, name: &'static str) -> Pool {
        Pool {
            shared: Arc::new(Shared {
                queue: Mutex::new(Queue {
                    jobs: VecDeque::new(),
                    idle: 0,
                    live: 0,
                    closed: false,
                }),
                ready: Condvar::new(),
                runtime: tokio::runtime::Handle::current(),
                max: max.max(1),
                passing,
                name,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.shared
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn start_thread(&self, number: usize) {
        let shared = Arc::clone(&self.shared);
        std::thread::Builder::new()
            .name(format!("{}-{}", shared.name, number - 1))
            .spawn(move || shared.work())
            .expect("starting a spawning thread");
    }

    /// Runs `job` on a pool thread; resolves with its result.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> T {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let boxed: Job = Box::new(move || {
            // The caller may have stopped waiting; the result is then moot.
            let _ = tx.send(job());
        });
        {
            let mut queue = self.lock();
            queue.jobs.push_back(boxed);
            // More jobs waiting than idle threads to take them: one more thread, within bounds.
            if queue.jobs.len() > queue.idle && queue.live < self.shared.max {
                queue.live += 1;
                self.start_thread(queue.live);
            }
        }
        self.shared.ready.notify_one();
        rx.await.expect("a pool thread ran the job")
    }
}

impl Shared {
    fn work(&self) {
        let _runtime = self.runtime.enter();
        PASSING.with(|passing| passing.set(self.passing));
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(job) = queue.jobs.pop_front() {
                drop(queue);
                job();
                queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            if queue.closed {
                queue.live -= 1;
                return;
            }
            queue.idle += 1;
            if self.passing {
                let (back, waited) = self
                    .ready
                    .wait_timeout(queue, IDLE_EXIT)
                    .unwrap_or_else(PoisonError::into_inner);
                queue = back;
                queue.idle -= 1;
                if waited.timed_out() && queue.jobs.is_empty() {
                    queue.live -= 1;
                    return;
                }
            } else {
                queue = self
                    .ready
                    .wait(queue)
                    .unwrap_or_else(PoisonError::into_inner);
                queue.idle -= 1;
            }
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.lock().closed = true;
        self.shared.ready.notify_all();
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pool")
    }
}

/// Threads of this process whose name starts with `prefix` (tests: pool threads come and go).
#[cfg(test)]
pub(super) fn threads_named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .flatten()
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|comm| comm.starts_with(prefix))
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_passing_pool_runs_jobs_on_passing_threads_that_exit_when_idle() {
        let pool = Pool::new(2, true, "pk-test-pass");
        let on_passing = pool.run(refuse_in_process).await;
        assert!(on_passing, "a passing thread refuses in-process spawns");
        assert!(!refuse_in_process(), "other threads do not");
        let pool = Arc::new(pool);
        let mut jobs = tokio::task::JoinSet::new();
        for i in 0..8 {
            let pool = Arc::clone(&pool);
            jobs.spawn(async move {
                pool.run(move || {
                    std::thread::sleep(Duration::from_millis(5));
                    (i, threads_named("pk-test-pass"))
                })
                .await
            });
        }
        let mut done = jobs.join_all().await;
        done.sort_unstable();
        assert_eq!(
            done.iter().map(|&(i, _)| i).collect::<Vec<_>>(),
            (0..8).collect::<Vec<_>>()
        );
        assert!(
            done.iter().all(|&(_, threads)| (1..=2).contains(&threads)),
            "at most 2 threads: {done:?}"
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while threads_named("pk-test-pass") > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "idle passing threads did not exit"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // A job after they all left starts a thread again.
        assert_eq!(pool.run(|| 7).await, 7);
    }

    #[tokio::test]
    async fn a_lasting_pool_keeps_its_threads_until_dropped() {
        let pool = Pool::lasting(2);
        assert!(!pool.run(refuse_in_process).await);
        assert_eq!(pool.run(|| 1).await, 1);
        assert_eq!(pool.lock().live, 2);
        let shared = Arc::clone(&pool.shared);
        drop(pool);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while shared.queue.lock().unwrap().live > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the threads of a dropped pool stay"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
