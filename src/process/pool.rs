//! A pool of long-lived threads that run spawns, so that many services can be between fork and
//! exec at once without blocking the async runtime's workers.
//!
//! Invariants: pool threads live as long as their `Containment` (a child's parent-death signal
//! fires when the thread that forked it exits, so spawning threads must not come and go), and
//! each enters the tokio runtime it was created from, which tokio's child reaping needs.

use std::sync::Mutex;
use std::sync::mpsc;

/// Threads in the pool when pk forks and execs itself (`PK_SPAWN=fork`, or no spawner process):
/// spawns mostly wait for the child's exec, so more than the cores.
const THREADS: usize = 4;

type Job = Box<dyn FnOnce() + Send>;

pub(crate) struct Pool {
    jobs: Mutex<mpsc::Sender<Job>>,
}

impl Pool {
    /// Starts the pool on the current tokio runtime. Must be called within one.
    pub(super) fn start() -> Pool {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = std::sync::Arc::new(Mutex::new(rx));
        let runtime = tokio::runtime::Handle::current();
        // With the spawner process, a spawn here is one request to it, served one at a time.
        #[cfg(native_linux)]
        let threads = if super::spawn::uses_spawner() {
            1
        } else {
            THREADS
        };
        #[cfg(not(native_linux))]
        let threads = THREADS;
        for i in 0..threads {
            let rx = std::sync::Arc::clone(&rx);
            let runtime = runtime.clone();
            std::thread::Builder::new()
                .name(format!("pk-spawn-{i}"))
                .spawn(move || {
                    let _runtime = runtime.enter();
                    loop {
                        // The lock is held only to take one job, not while running it.
                        let job = rx
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })
                .expect("starting a spawner thread");
        }
        Pool {
            jobs: Mutex::new(tx),
        }
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
        self.jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .send(boxed)
            .expect("spawner threads live as long as the pool");
        rx.await.expect("a spawner thread ran the job")
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pool")
    }
}
