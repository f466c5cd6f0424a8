//! A fixed pool of password-hashing threads with a bounded queue.
//!
//! Argon2id takes tens of milliseconds of CPU; run on the async runtime it would stall
//! every request on that thread. Here it runs on its own threads, and when the queue is
//! full new logins are refused at once with 503 instead of piling up (seed 001's worry
//! that slow hashing makes a DDoS easy).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// The queue is full: answer 503 `overloaded`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overloaded;

/// The hashing pool.
#[derive(Clone)]
pub struct HashPool {
    tx: SyncSender<Job>,
    queued: Arc<AtomicUsize>,
    workers: usize,
}

impl std::fmt::Debug for HashPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashPool")
            .field("workers", &self.workers)
            .field("queued", &self.queued.load(Ordering::Relaxed))
            .finish()
    }
}

impl HashPool {
    /// `workers` threads (0 = one per core) at niceness `nice`, and room for `queue`
    /// waiting jobs.
    pub fn new(workers: usize, queue: usize, nice: i32) -> std::io::Result<Self> {
        let workers = if workers == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            workers
        };
        let (tx, rx) = sync_channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..workers {
            let rx = Arc::clone(&rx);
            std::thread::Builder::new()
                .name(format!("tessera-hash-{i}"))
                .spawn(move || {
                    if !set_this_thread_nice(nice) {
                        tracing::warn!(nice, "could not lower the hashing thread's priority");
                    }
                    tessera_core::password::keep_memory_on_this_thread();
                    hashing_loop(&rx)
                })?;
        }
        Ok(HashPool {
            tx,
            queued: Arc::new(AtomicUsize::new(0)),
            workers,
        })
    }

    /// Number of hashing threads.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Runs `f` on the pool; `Err(Overloaded)` at once if the queue is full.
    pub async fn run<R, F>(&self, f: F) -> Result<R, Overloaded>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let (done, wait) = oneshot::channel();
        let queued = Arc::clone(&self.queued);
        queued.fetch_add(1, Ordering::Relaxed);
        let job: Job = Box::new(move || {
            queued.fetch_sub(1, Ordering::Relaxed);
            let _ = done.send(f());
        });
        match self.tx.try_send(job) {
            Ok(()) => wait.await.map_err(|_| Overloaded),
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.queued.fetch_sub(1, Ordering::Relaxed);
                Err(Overloaded)
            }
        }
    }
}

/// Sets the calling thread's niceness (Linux: `setpriority` on the thread id changes that
/// thread only). A hashing thread holds a core for a whole hash (~20 ms); at equal weight
/// the scheduler lets it run a full time slice while requests wait, which is what made
/// authenticated p99 rise under a login flood. Elsewhere a no-op that reports success.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn set_this_thread_nice(nice: i32) -> bool {
    if nice == 0 {
        return true;
    }
    // SAFETY: gettid and setpriority take plain integers and touch no memory of ours.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice) == 0
    }
}

#[cfg(not(target_os = "linux"))]
fn set_this_thread_nice(_nice: i32) -> bool {
    true
}

/// A hashing thread: runs jobs until the pool is dropped.
fn hashing_loop(rx: &Mutex<Receiver<Job>>) {
    loop {
        let job = match rx.lock() {
            Ok(guard) => guard.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_jobs_and_refuses_when_full() {
        let pool = HashPool::new(1, 1, 0).unwrap();
        assert_eq!(pool.run(|| 2 + 2).await, Ok(4));
        // Block the worker, fill the queue, then the next job is refused at once.
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let p = pool.clone();
        let blocker = tokio::spawn(async move { p.run(move || rx.recv().ok()).await });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let p = pool.clone();
        let queued = tokio::spawn(async move { p.run(|| 1).await });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(pool.run(|| 3).await, Err(Overloaded));
        tx.send(()).unwrap();
        assert!(blocker.await.unwrap().is_ok());
        assert_eq!(queued.await.unwrap(), Ok(1));
    }

    /// The hashing threads run at the configured niceness (read back from procfs).
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashing_threads_are_niced() {
        let pool = HashPool::new(1, 1, 7).unwrap();
        let stat = pool
            .run(|| std::fs::read_to_string("/proc/thread-self/stat").unwrap())
            .await
            .unwrap();
        // Field 19 is the nice value; fields after the parenthesised name.
        let after_name = stat.rsplit_once(')').unwrap().1;
        let nice: i32 = after_name
            .split_whitespace()
            .nth(16)
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(nice, 7, "{stat}");
    }
}
