//! The future of a call made from an async handler ([`Hub::call_async`]).

use crate::calls::{not_back, Hub};
use crate::exec;
use crate::pool::lock;
use crate::shared::{Shared, Slot};
use crate::Error;
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};


/// The future [`Hub::call_async`] returns.
pub struct Call {
    pub(crate) inner: CallInner,
}

pub(crate) enum CallInner {
    Failed(Option<Error>),
    /// Made while reconnecting: waits for the connection, within the call's timeout.
    Waiting {
        target: String,
        args: Option<Value>,
        timeout: Duration,
        started: Instant,
        waker: Arc<Mutex<Option<Waker>>>,
        timer: u64,
        shared: Weak<Shared>,
    },
    Open {
        id: String,
        slot: Arc<Slot>,
        timer: u64,
        shared: Weak<Shared>,
    },
    Done,
}

impl Future for Call {
    type Output = Result<Value, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(next) = self.poll_waiting(cx) {
            match next {
                Err(e) => {
                    self.inner = CallInner::Done;
                    return Poll::Ready(Err(e));
                }
                Ok(None) => return Poll::Pending,
                Ok(Some(open)) => self.inner = open,
            }
        }
        let result = match &mut self.inner {
            CallInner::Failed(e) => Some(Err(e
                .take()
                .unwrap_or_else(|| Error::plugin_error("call polled after it finished")))),
            CallInner::Done | CallInner::Waiting { .. } => Some(Err(Error::plugin_error("call polled after it finished"))),
            CallInner::Open { slot, timer, .. } => {
                let mut s = lock(&slot.state);
                match s.result.take() {
                    Some(r) => {
                        exec::cancel(*timer);
                        Some(r)
                    }
                    None => {
                        s.waker = Some(cx.waker().clone());
                        None
                    }
                }
            }
        };
        match result {
            Some(r) => {
                self.inner = CallInner::Done;
                Poll::Ready(r)
            }
            None => Poll::Pending,
        }
    }
}

impl Call {
    /// For a call waiting for a reconnect: `None` when it is not waiting; `Ok(None)` while
    /// it still waits; the call, sent, once connected again; an error when its timeout
    /// passed or `run` ended.
    pub(crate) fn poll_waiting(&mut self, cx: &mut Context<'_>) -> Option<Result<Option<CallInner>, Error>> {
        let (target, args, timeout, started, waker, timer, shared) = match &mut self.inner {
            CallInner::Waiting {
                target,
                args,
                timeout,
                started,
                waker,
                timer,
                shared,
            } => (target, args, *timeout, *started, waker, *timer, shared),
            _ => return None,
        };
        let shared = match shared.upgrade() {
            Some(s) => s,
            None => return Some(Err(Error::disconnected("the plugin is no longer running"))),
        };
        let waiting = {
            let mut c = lock(&shared.ctl);
            let waiting = c.reconnecting && !c.finished;
            if waiting {
                c.waiting.push(cx.waker().clone());
            }
            waiting
        };
        if waiting {
            if started.elapsed() >= timeout {
                exec::cancel(timer);
                return Some(Err(not_back(target, timeout)));
            }
            *lock(waker) = Some(cx.waker().clone());
            return Some(Ok(None));
        }
        exec::cancel(timer);
        let left = timeout.saturating_sub(started.elapsed()).max(Duration::from_millis(1));
        let mut call = Hub { shared }.open_call(target, args.take().unwrap_or(Value::Null), left);
        Some(Ok(Some(std::mem::replace(&mut call.inner, CallInner::Done))))
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        match &self.inner {
            CallInner::Open { id, timer, shared, .. } => {
                exec::cancel(*timer);
                if let Some(s) = shared.upgrade() {
                    lock(&s.pending).remove(id);
                }
            }
            CallInner::Waiting { timer, .. } => exec::cancel(*timer),
            _ => {}
        }
    }
}
