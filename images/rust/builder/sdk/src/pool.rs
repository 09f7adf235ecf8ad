//! A pool of worker threads that grows on demand: a job never waits behind a busy worker
//! while the pool is below its maximum, and workers stay for the next jobs, so steady
//! traffic starts no threads. Dropping the pool lets its workers finish the queued jobs
//! and exit.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;

type Job = Box<dyn FnOnce() + Send + 'static>;

struct State {
    jobs: VecDeque<Job>,
    /// Workers waiting for a job (not yet woken for one).
    idle: usize,
    total: usize,
    closing: bool,
}

struct Inner {
    state: Mutex<State>,
    ready: Condvar,
    max: usize,
    name: &'static str,
}

pub(crate) struct Pool {
    inner: Arc<Inner>,
}

impl Pool {
    pub(crate) fn new(max: usize, name: &'static str) -> Pool {
        Pool {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    jobs: VecDeque::new(),
                    idle: 0,
                    total: 0,
                    closing: false,
                }),
                ready: Condvar::new(),
                max: max.max(1),
                name,
            }),
        }
    }

    /// Queue a job. It starts at once on an idle worker or a new one; only when the pool
    /// is at its maximum does it wait for a worker to finish.
    pub(crate) fn submit(&self, job: Job) {
        let mut s = lock(&self.inner.state);
        s.jobs.push_back(job);
        if s.jobs.len() <= s.idle {
            drop(s);
            self.inner.ready.notify_one();
            return;
        }
        if s.total < self.inner.max {
            let inner = Arc::clone(&self.inner);
            let spawned = thread::Builder::new()
                .name(self.inner.name.to_string())
                .spawn(move || worker(inner));
            match spawned {
                Ok(_) => s.total += 1,
                // Out of threads (the pids limit): the job waits for a running worker.
                Err(e) if s.total > 0 => eprintln!("logomesh: cannot start another worker thread ({e}); the request waits"),
                Err(e) => {
                    // No worker at all: run it here rather than never.
                    eprintln!("logomesh: cannot start a worker thread ({e}); running the job inline");
                    let job = s.jobs.pop_back();
                    drop(s);
                    if let Some(job) = job {
                        job();
                    }
                }
            }
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        lock(&self.inner.state).closing = true;
        self.inner.ready.notify_all();
    }
}

fn worker(inner: Arc<Inner>) {
    let mut s = lock(&inner.state);
    loop {
        if let Some(job) = s.jobs.pop_front() {
            drop(s);
            job();
            s = lock(&inner.state);
            continue;
        }
        if s.closing {
            s.total -= 1;
            return;
        }
        s.idle += 1;
        s = inner.ready.wait(s).unwrap_or_else(|e| e.into_inner());
        s.idle -= 1;
    }
}

/// Lock a mutex, ignoring poisoning: every critical section here leaves its data valid.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    #[test]
    fn a_slow_job_does_not_hold_up_the_next() {
        let pool = Pool::new(4, "test-worker");
        let (tx, rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let release_rx = Arc::new(Mutex::new(release_rx));
        let r = Arc::clone(&release_rx);
        pool.submit(Box::new(move || {
            let _ = lock(&r).recv();
        }));
        let t = tx.clone();
        pool.submit(Box::new(move || t.send(1).unwrap()));
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), 1);
        release_tx.send(()).unwrap();
        // Workers are reused: many quick jobs, few threads.
        let start = Instant::now();
        for i in 0..100 {
            let t = tx.clone();
            pool.submit(Box::new(move || t.send(i).unwrap()));
        }
        let mut got: Vec<i32> = (0..100).map(|_| rx.recv_timeout(Duration::from_secs(5)).unwrap()).collect();
        got.sort_unstable();
        assert_eq!(got, (0..100).collect::<Vec<_>>());
        assert!(lock(&pool.inner.state).total <= 4);
        assert!(start.elapsed() < Duration::from_secs(5));
        // Dropped: the workers exit.
        let inner = Arc::clone(&pool.inner);
        drop(pool);
        let until = Instant::now() + Duration::from_secs(5);
        while lock(&inner.state).total > 0 && Instant::now() < until {
            thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(lock(&inner.state).total, 0);
    }
}
