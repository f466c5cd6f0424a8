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

/// How the hashing threads are scheduled against the request threads (Linux).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// `SCHED_IDLE`: hashing runs on CPU time the request threads leave free, and a
    /// request thread that wakes takes the core back at once.
    Idle,
    /// `SCHED_OTHER` at this niceness (0–19).
    Nice(i32),
}

impl Priority {
    /// The scheduling `passwords.worker_priority` and `passwords.worker_nice` ask for.
    pub fn of(config: &crate::config::PasswordConfig) -> Priority {
        match config.worker_priority {
            crate::config::WorkerPriority::Idle => Priority::Idle,
            crate::config::WorkerPriority::Nice => Priority::Nice(config.worker_nice),
        }
    }
}

/// The hashing pool.
#[derive(Clone)]
pub struct HashPool {
    tx: SyncSender<Job>,
    /// Jobs admitted (waiting or running); at most `capacity`.
    admitted: Arc<AtomicUsize>,
    capacity: usize,
    workers: usize,
}

impl std::fmt::Debug for HashPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashPool")
            .field("workers", &self.workers)
            .field("admitted", &self.admitted.load(Ordering::Relaxed))
            .field("capacity", &self.capacity)
            .finish()
    }
}

/// A place in the pool, taken before any other work for a login is done, so that a flood
/// is turned away before it costs a store lookup. Dropping it gives the place back.
#[derive(Debug)]
pub struct Permit {
    pool: HashPool,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.pool.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

impl HashPool {
    /// `workers` threads (0 = one per core) scheduled at `priority`, and room for `queue`
    /// jobs waiting beyond those running.
    pub fn new(workers: usize, queue: usize, priority: Priority) -> std::io::Result<Self> {
        let workers = if workers == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            workers
        };
        let capacity = workers + queue;
        // Permits bound what is sent, so the channel never fills.
        let (tx, rx) = sync_channel::<Job>(capacity);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..workers {
            let rx = Arc::clone(&rx);
            std::thread::Builder::new()
                .name(format!("tessera-hash-{i}"))
                .spawn(move || {
                    if let Err(e) = set_this_thread_priority(priority) {
                        tracing::warn!(?priority, error = %e, "could not lower the hashing thread's priority");
                    }
                    tessera_core::password::keep_memory_on_this_thread();
                    hashing_loop(&rx)
                })?;
        }
        Ok(HashPool {
            tx,
            admitted: Arc::new(AtomicUsize::new(0)),
            capacity,
            workers,
        })
    }

    /// Number of hashing threads.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Takes a place in the pool; `Err(Overloaded)` at once if every place is taken.
    pub fn admit(&self) -> Result<Permit, Overloaded> {
        let mut n = self.admitted.load(Ordering::Relaxed);
        loop {
            if n >= self.capacity {
                return Err(Overloaded);
            }
            match self
                .admitted
                .compare_exchange_weak(n, n + 1, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return Ok(Permit { pool: self.clone() }),
                Err(now) => n = now,
            }
        }
    }

    /// Runs `f` on the pool; `Err(Overloaded)` at once if every place is taken.
    pub async fn run<R, F>(&self, f: F) -> Result<R, Overloaded>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.admit()?.run(f).await
    }
}

impl Permit {
    /// Runs `f` on the pool in this permit's place. If the caller has gone away (the
    /// client hung up) before a thread takes the job, the job is dropped unrun: a flood
    /// that gives up does not keep the threads busy.
    pub async fn run<R, F>(self, f: F) -> Result<R, Overloaded>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let (done, wait) = oneshot::channel();
        let tx = self.pool.tx.clone();
        let job: Job = Box::new(move || {
            let place = self;
            if !done.is_closed() {
                let out = f();
                // The place is free before the caller hears back.
                drop(place);
                let _ = done.send(out);
            }
        });
        match tx.try_send(job) {
            Ok(()) => wait.await.map_err(|_| Overloaded),
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => Err(Overloaded),
        }
    }
}

/// Sets the calling thread's scheduling (Linux: `sched_setscheduler` and `setpriority` on
/// the thread id change that thread only). A hashing thread holds a core for a whole hash
/// (~20 ms). The kernel switches between two runnable threads of one core only at its
/// tick (4 ms at `HZ=250`) unless one of them wakes, so whenever the scheduler hands a
/// request thread's core to a hashing thread, every request on that core waits up to a
/// tick. At niceness 10 that happens about every tenth tick; `SCHED_IDLE` leaves the
/// hashing thread only the time the request threads do not use. Elsewhere a no-op.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn set_this_thread_priority(priority: Priority) -> std::io::Result<()> {
    // SAFETY: gettid, sched_setscheduler and setpriority take plain integers and a
    // pointer to a sched_param that lives across the call.
    let ok = unsafe {
        let tid = libc::gettid();
        match priority {
            Priority::Idle => {
                let param = libc::sched_param { sched_priority: 0 };
                libc::sched_setscheduler(tid, libc::SCHED_IDLE, &param) == 0
            }
            Priority::Nice(0) => true,
            Priority::Nice(n) => libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, n) == 0,
        }
    };
    if ok {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn set_this_thread_priority(_priority: Priority) -> std::io::Result<()> {
    Ok(())
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
        let pool = HashPool::new(1, 1, Priority::Nice(0)).unwrap();
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
        // Every place is free again.
        let a = pool.admit().unwrap();
        let b = pool.admit().unwrap();
        assert_eq!(pool.admit().unwrap_err(), Overloaded);
        drop((a, b));
        assert!(pool.admit().is_ok());
    }

    /// A place is taken before the work is handed over, and a job whose caller has gone
    /// away is not run.
    #[tokio::test]
    async fn admits_first_and_skips_abandoned_jobs() {
        let pool = HashPool::new(1, 1, Priority::Nice(0)).unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let p = pool.clone();
        let blocker = tokio::spawn(async move { p.run(move || rx.recv().ok()).await });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let r = Arc::clone(&ran);
        let permit = pool.admit().unwrap();
        let abandoned = tokio::spawn(async move {
            permit
                .run(move || r.store(true, std::sync::atomic::Ordering::SeqCst))
                .await
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        abandoned.abort();
        let _ = abandoned.await;
        tx.send(()).unwrap();
        assert!(blocker.await.unwrap().is_ok());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        // The next job runs after the abandoned one was taken off the queue.
        assert_eq!(pool.run(|| 5).await, Ok(5));
        assert!(!ran.load(std::sync::atomic::Ordering::SeqCst));
    }

    /// With `Priority::Idle` the hashing threads run under `SCHED_IDLE`.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashing_threads_can_run_idle() {
        let pool = HashPool::new(1, 1, Priority::Idle).unwrap();
        #[allow(unsafe_code)]
        // SAFETY: sched_getscheduler(0) reads the calling thread's policy.
        let policy = pool
            .run(|| unsafe { libc::sched_getscheduler(0) })
            .await
            .unwrap();
        assert_eq!(policy, libc::SCHED_IDLE);
    }

    /// The hashing threads run at the configured niceness (read back from procfs).
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashing_threads_are_niced() {
        let pool = HashPool::new(1, 1, Priority::Nice(7)).unwrap();
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
