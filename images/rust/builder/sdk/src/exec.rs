//! Just enough async machinery for plugins, without a runtime crate: one executor thread
//! that polls every spawned task, one timer thread for deadlines and sleeps, and
//! `block_on` for running a future on the current thread.

use crate::pool::lock;
use std::any::Any;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

/// A boxed future that can move between threads.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

// --- executor ---------------------------------------------------------------------------

struct Task {
    future: Mutex<Option<BoxFuture<()>>>,
    queued: AtomicBool,
    exec: Arc<Executor>,
}

struct Executor {
    queue: Mutex<VecDeque<Arc<Task>>>,
    ready: Condvar,
}

impl Wake for Task {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            lock(&self.exec.queue).push_back(Arc::clone(self));
            self.exec.ready.notify_one();
        }
    }
}

static EXECUTOR: Mutex<Option<Arc<Executor>>> = Mutex::new(None);

fn executor() -> Arc<Executor> {
    let mut slot = lock(&EXECUTOR);
    if let Some(e) = slot.as_ref() {
        return Arc::clone(e);
    }
    let exec = Arc::new(Executor {
        queue: Mutex::new(VecDeque::new()),
        ready: Condvar::new(),
    });
    let e = Arc::clone(&exec);
    thread::Builder::new()
        .name("logomesh-async".into())
        .spawn(move || run_executor(e))
        .expect("logomesh: cannot start the async executor thread");
    *slot = Some(Arc::clone(&exec));
    exec
}

fn run_executor(exec: Arc<Executor>) {
    loop {
        let task = {
            let mut q = lock(&exec.queue);
            loop {
                if let Some(t) = q.pop_front() {
                    break t;
                }
                q = exec.ready.wait(q).unwrap_or_else(|e| e.into_inner());
            }
        };
        task.queued.store(false, Ordering::Release);
        let waker = Waker::from(Arc::clone(&task));
        let mut cx = Context::from_waker(&waker);
        let mut slot = lock(&task.future);
        if let Some(fut) = slot.as_mut() {
            // A panic in a task ends that task only, never the executor.
            match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(&mut cx))) {
                Ok(Poll::Pending) => {}
                Ok(Poll::Ready(())) => *slot = None,
                Err(p) => {
                    eprintln!("logomesh: an async task panicked: {}", panic_message(&*p));
                    *slot = None;
                }
            }
        }
    }
}

/// Run a future on the SDK's executor thread. Async method handlers run there; a task must
/// not block the thread (use a sync method for blocking work), only await.
pub fn spawn<F: Future<Output = ()> + Send + 'static>(future: F) {
    let exec = executor();
    let task = Arc::new(Task {
        future: Mutex::new(Some(Box::pin(future))),
        queued: AtomicBool::new(false),
        exec,
    });
    task.wake_by_ref();
}

struct ThreadWaker(thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Run a future to completion on the current thread, parking it while the future waits.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = Box::pin(future);
    let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = future.as_mut().poll(&mut cx) {
            return v;
        }
        thread::park();
    }
}

/// Wraps a future so that a panic while polling it becomes `Err(panic message)`.
pub(crate) struct CatchUnwind<F>(pub(crate) F);

impl<F: Future + Unpin> Future for CatchUnwind<F> {
    type Output = Result<F::Output, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.0;
        match catch_unwind(AssertUnwindSafe(|| Pin::new(inner).poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(p) => Poll::Ready(Err(panic_message(&*p))),
        }
    }
}

pub(crate) fn panic_message(p: &(dyn Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

// --- timer ------------------------------------------------------------------------------

type Action = Box<dyn FnOnce() + Send + 'static>;

struct TimerState {
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    actions: HashMap<u64, Action>,
    next: u64,
}

struct Timer {
    state: Mutex<TimerState>,
    changed: Condvar,
}

static TIMER: Mutex<Option<Arc<Timer>>> = Mutex::new(None);

fn timer() -> Arc<Timer> {
    let mut slot = lock(&TIMER);
    if let Some(t) = slot.as_ref() {
        return Arc::clone(t);
    }
    let t = Arc::new(Timer {
        state: Mutex::new(TimerState {
            heap: BinaryHeap::new(),
            actions: HashMap::new(),
            next: 0,
        }),
        changed: Condvar::new(),
    });
    let t2 = Arc::clone(&t);
    thread::Builder::new()
        .name("logomesh-timer".into())
        .spawn(move || run_timer(t2))
        .expect("logomesh: cannot start the timer thread");
    *slot = Some(Arc::clone(&t));
    t
}

fn run_timer(t: Arc<Timer>) {
    let mut s = lock(&t.state);
    loop {
        let now = Instant::now();
        match s.heap.peek() {
            Some(Reverse((when, id))) if *when <= now => {
                let id = *id;
                s.heap.pop();
                if let Some(action) = s.actions.remove(&id) {
                    drop(s);
                    if let Err(p) = catch_unwind(AssertUnwindSafe(action)) {
                        eprintln!("logomesh: a timer action panicked: {}", panic_message(&*p));
                    }
                    s = lock(&t.state);
                }
            }
            Some(Reverse((when, _))) => {
                let wait = *when - now;
                s = t.changed.wait_timeout(s, wait).unwrap_or_else(|e| e.into_inner()).0;
            }
            None => s = t.changed.wait(s).unwrap_or_else(|e| e.into_inner()),
        }
    }
}

/// Run `action` on the timer thread at `when` unless cancelled first. Returns its id.
pub(crate) fn schedule(when: Instant, action: Action) -> u64 {
    let t = timer();
    let mut s = lock(&t.state);
    s.next += 1;
    let id = s.next;
    s.heap.push(Reverse((when, id)));
    s.actions.insert(id, action);
    drop(s);
    t.changed.notify_one();
    id
}

pub(crate) fn cancel(id: u64) {
    if let Some(t) = lock(&TIMER).as_ref() {
        // The heap entry stays until its time and is skipped then.
        lock(&t.state).actions.remove(&id);
    }
}

struct SleepState {
    done: bool,
    waker: Option<Waker>,
}

/// The future [`sleep`] returns.
pub struct Sleep {
    until: Instant,
    state: Arc<Mutex<SleepState>>,
    timer: Option<u64>,
}

/// A future that completes after `duration`, for async handlers (it does not block the
/// executor the way `std::thread::sleep` would).
pub fn sleep(duration: Duration) -> Sleep {
    Sleep {
        until: Instant::now() + duration,
        state: Arc::new(Mutex::new(SleepState { done: false, waker: None })),
        timer: None,
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        {
            let mut s = lock(&self.state);
            if s.done || Instant::now() >= self.until {
                s.done = true;
                return Poll::Ready(());
            }
            s.waker = Some(cx.waker().clone());
        }
        if self.timer.is_none() {
            let state = Arc::clone(&self.state);
            let id = schedule(
                self.until,
                Box::new(move || {
                    let waker = {
                        let mut s = lock(&state);
                        s.done = true;
                        s.waker.take()
                    };
                    if let Some(w) = waker {
                        w.wake();
                    }
                }),
            );
            self.timer = Some(id);
        }
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(id) = self.timer {
            cancel(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn sleeps_run_concurrently_on_one_executor_thread() {
        let (tx, rx) = mpsc::channel();
        let start = Instant::now();
        for i in 0..20u64 {
            let tx = tx.clone();
            spawn(async move {
                sleep(Duration::from_millis(200 - i * 5)).await;
                tx.send(i).unwrap();
            });
        }
        let got: Vec<u64> = (0..20).map(|_| rx.recv_timeout(Duration::from_secs(5)).unwrap()).collect();
        assert_eq!(got[0], 19, "the shortest sleep ends first");
        assert!(start.elapsed() < Duration::from_millis(1000), "{:?}", start.elapsed());
    }

    #[test]
    fn block_on_waits_for_a_sleep() {
        let start = Instant::now();
        let v = block_on(async {
            sleep(Duration::from_millis(50)).await;
            7
        });
        assert_eq!(v, 7);
        assert!(start.elapsed() >= Duration::from_millis(50));
    }

    #[test]
    fn a_panicking_task_does_not_stop_the_executor() {
        spawn(async { panic!("boom") });
        let (tx, rx) = mpsc::channel();
        spawn(async move { tx.send(1).unwrap() });
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), 1);
    }
}
