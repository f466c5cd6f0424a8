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
    /// `workers` threads (0 = one per core) and room for `queue` waiting jobs.
    pub fn new(workers: usize, queue: usize) -> std::io::Result<Self> {
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
        let pool = HashPool::new(1, 1).unwrap();
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
}
