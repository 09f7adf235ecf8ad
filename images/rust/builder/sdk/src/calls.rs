//! Outbound messages: calls to other plugins and the host, events and broadcasts, and the
//! subscriptions that bring events in, through a [`Hub`] handle.

use crate::call_future::{Call, CallInner};
use crate::connection::refused;
use crate::dispatch::{Event, EventHandler};
use crate::exec;
use crate::options::{LOCAL_TIMEOUT_SLACK, SUBSCRIBE_TIMEOUT};
use crate::pool::lock;
use crate::protocol::{valid_method, valid_pattern, MAX_TIMEOUT};
use crate::shared::{Shared, Slot, Via, LOST};
use crate::Error;
use serde_json::{json, Map, Value};
use std::sync::{Arc, Mutex};
use std::task::Waker;
use std::time::{Duration, Instant};

/// How long an acknowledged event waits for the hub's answer (as the other SDKs): the hub
/// answers at once, so only a hub in trouble takes this long.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);


impl Shared {
    /// While reconnecting, wait (at most `timeout`) for the connection to be back; the
    /// time left of `timeout`.
    pub(crate) fn await_online(&self, timeout: Duration, what: &str) -> Result<Duration, Error> {
        let mut c = lock(&self.ctl);
        if !c.reconnecting || c.finished {
            return Ok(timeout);
        }
        let deadline = Instant::now() + timeout;
        while c.reconnecting && !c.finished {
            let now = Instant::now();
            if now >= deadline {
                return Err(not_back(what, timeout));
            }
            c = self.changed.wait_timeout(c, deadline - now).unwrap_or_else(|e| e.into_inner()).0;
        }
        Ok(deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1)))
    }


    pub(crate) fn start_call(&self, target: &str, args: Value, timeout: Duration) -> Result<(String, Arc<Slot>), Error> {
        self.start_call_with(target, args, timeout, Vec::new())
    }

    pub(crate) fn start_call_with(&self, target: &str, args: Value, timeout: Duration, segments: Vec<Value>) -> Result<(String, Arc<Slot>), Error> {
        let (to, method) = split_target(target)?;
        let ms = timeout.min(MAX_TIMEOUT).as_millis().max(1) as u64;
        let id = self.next_id();
        let mut msg = message(&[("type", json!("request")), ("id", json!(id)), ("to", json!([to])), ("method", json!(method)), ("timeout", json!(ms))], args);
        if !segments.is_empty() {
            msg["segments"] = Value::Array(segments);
        }
        let slot = Slot::new();
        lock(&self.pending).insert(id.clone(), Arc::clone(&slot));
        if let Err(e) = self.send(msg) {
            lock(&self.pending).remove(&id);
            return Err(e);
        }
        Ok((id, slot))
    }


    /// Send a request that expects a response (hello, subscribe) and wait for it.
    /// Send a request that expects a response (hello, subscribe) and wait for it. The
    /// message keeps an `id` it already has.
    pub(crate) fn exchange(&self, mut msg: Map<String, Value>, timeout: Duration) -> Result<Value, Error> {
        let id = match msg.get("id").and_then(Value::as_str) {
            Some(id) => id.to_string(),
            None => self.next_id(),
        };
        msg.insert("id".into(), id.clone().into());
        let slot = Slot::new();
        lock(&self.pending).insert(id.clone(), Arc::clone(&slot));
        if let Err(e) = self.send_via(Value::Object(msg), Via::Any) {
            lock(&self.pending).remove(&id);
            return Err(e);
        }
        self.wait(&id, &slot, timeout, timeout, "the hub")
    }

    /// Wait for a slot's result; `timeout` is what the error names, `patience` how long.
    pub(crate) fn wait(&self, id: &str, slot: &Slot, timeout: Duration, patience: Duration, what: &str) -> Result<Value, Error> {
        let s = lock(&slot.state);
        let (mut s, _) = slot
            .done
            .wait_timeout_while(s, patience, |s| s.result.is_none())
            .unwrap_or_else(|e| e.into_inner());
        match s.result.take() {
            Some(r) => r,
            None => {
                drop(s);
                lock(&self.pending).remove(id);
                Err(timeout_error(what, timeout))
            }
        }
    }
}

/// A message with these fields and `data`. Built by hand: `json!` would copy `data` by
/// serializing it, which recurses once per level of however deep it is.
fn message(fields: &[(&str, Value)], data: Value) -> Value {
    let mut m = Map::new();
    for (k, v) in fields {
        m.insert((*k).to_string(), v.clone());
    }
    m.insert("data".to_string(), data);
    Value::Object(m)
}

pub(crate) fn timeout_error(what: &str, timeout: Duration) -> Error {
    Error::new("LM_TIMEOUT", format!("no response from {what} within {} ms", timeout.as_millis()))
}

pub(crate) fn not_back(what: &str, timeout: Duration) -> Error {
    Error::new(
        "LM_PLUGIN_UNAVAILABLE",
        format!(
            "{what}: {LOST}, and not back within the call's timeout ({} ms)",
            timeout.as_millis()
        ),
    )
}

/// `plugin.method` as (plugin, method); a name without a dot is a host method.
pub(crate) fn split_target(target: &str) -> Result<(&str, &str), Error> {
    let (to, method) = match target.split_once('.') {
        Some((plugin, method)) => (plugin, method),
        None => ("host", target),
    };
    if !valid_method(method) || to.is_empty() {
        return Err(Error::invalid_argument(format!(
            "'{target}' is not a method: write plugin.method, or a host method's name"
        )));
    }
    Ok((to, method))
}

/// A handle on the connection for calling methods and sending events, from anywhere:
/// inside method and event handlers, other threads, async tasks. Cheap to clone. Obtained
/// with [`Plugin::hub`](crate::Plugin::hub); usable once [`Plugin::run`](crate::Plugin::run) has connected.
#[derive(Clone)]
pub struct Hub {
    pub(crate) shared: Arc<Shared>,
}

impl Hub {
    /// This plugin's id (from `LOGOMESH_PLUGIN_ID`).
    pub fn plugin_id(&self) -> &str {
        &self.shared.plugin_id
    }

    /// Call `plugin.method` (or a host method, for a name without a dot) and wait for the
    /// result. A failure is the coded error from the response: the callee's own, or the
    /// hub's (`LM_TIMEOUT` when no result came within `timeout`, at most 300 s). Should the
    /// hub never answer, the SDK returns `LM_TIMEOUT` itself half a second after that.
    ///
    /// If the hub connection is lost while the call waits for its answer, it fails at once
    /// with `LM_PLUGIN_UNAVAILABLE` ("hub connection lost"); a call made while the SDK
    /// reconnects waits for the connection within its timeout (then `LM_PLUGIN_UNAVAILABLE`),
    /// and the hub gets what is left of the timeout.
    pub fn call(&self, target: &str, args: Value, timeout: Duration) -> Result<Value, Error> {
        split_target(target)?;
        let timeout = self.shared.await_online(timeout.min(MAX_TIMEOUT), target)?;
        let (id, slot) = self.shared.start_call(target, args, timeout)?;
        self.shared.wait(&id, &slot, timeout, timeout + LOCAL_TIMEOUT_SLACK, target)
    }

    /// `call` for arguments that carry shared-memory segments: each in `segments`
    /// (`seg.reference()`, or `seg.grant("read")` to give the target access on the way); the
    /// hub delivers the call only if the target may open every one.
    pub fn call_with(&self, target: &str, args: Value, timeout: Duration, segments: Vec<Value>) -> Result<Value, Error> {
        split_target(target)?;
        let timeout = self.shared.await_online(timeout.min(MAX_TIMEOUT), target)?;
        let (id, slot) = self.shared.start_call_with(target, args, timeout, segments)?;
        self.shared.wait(&id, &slot, timeout, timeout + LOCAL_TIMEOUT_SLACK, target)
    }

    /// The same call as a future, for async handlers: awaiting it does not block the
    /// executor thread (nor does waiting for a reconnect).
    pub fn call_async(&self, target: &str, args: Value, timeout: Duration) -> Call {
        let timeout = timeout.min(MAX_TIMEOUT);
        if let Err(e) = split_target(target) {
            return Call {
                inner: CallInner::Failed(Some(e)),
            };
        }
        let reconnecting = {
            let c = lock(&self.shared.ctl);
            c.reconnecting && !c.finished
        };
        if reconnecting {
            let waker: Arc<Mutex<Option<Waker>>> = Arc::new(Mutex::new(None));
            let w = Arc::clone(&waker);
            let started = Instant::now();
            let timer = exec::schedule(
                started + timeout,
                Box::new(move || {
                    if let Some(w) = lock(&w).take() {
                        w.wake();
                    }
                }),
            );
            return Call {
                inner: CallInner::Waiting {
                    target: target.to_string(),
                    args: Some(args),
                    timeout,
                    started,
                    waker,
                    timer,
                    shared: Arc::downgrade(&self.shared),
                },
            };
        }
        self.open_call(target, args, timeout)
    }

    pub(crate) fn open_call(&self, target: &str, args: Value, timeout: Duration) -> Call {
        match self.shared.start_call(target, args, timeout) {
            Err(e) => Call {
                inner: CallInner::Failed(Some(e)),
            },
            Ok((id, slot)) => {
                let timeout = timeout.min(MAX_TIMEOUT);
                let weak = Arc::downgrade(&self.shared);
                let (tid, tslot, tname) = (id.clone(), Arc::clone(&slot), target.to_string());
                let timer = exec::schedule(
                    Instant::now() + timeout + LOCAL_TIMEOUT_SLACK,
                    Box::new(move || {
                        if let Some(shared) = weak.upgrade() {
                            lock(&shared.pending).remove(&tid);
                        }
                        tslot.complete(Err(timeout_error(&tname, timeout)));
                    }),
                );
                Call {
                    inner: CallInner::Open {
                        id,
                        slot,
                        timer,
                        shared: Arc::downgrade(&self.shared),
                    },
                }
            }
        }
    }

    /// Send an event on `topic` to its subscribers. Needs `coordination.messaging: true`
    /// in the manifest; the hub's refusal, if any, is printed to stderr.
    pub fn emit(&self, topic: &str, data: Value) -> Result<(), Error> {
        self.publish(message(&[("type", json!("event")), ("id", json!(self.shared.next_id())), ("topic", json!(topic))], data))
    }

    /// Send an event to the named plugins (or `host`) only, whatever they subscribed to.
    pub fn emit_to(&self, topic: &str, data: Value, to: &[&str]) -> Result<(), Error> {
        self.publish(message(
            &[("type", json!("event")), ("id", json!(self.shared.next_id())), ("topic", json!(topic)), ("to", json!(to))],
            data,
        ))
    }

    /// Send a broadcast: with a topic to that topic's subscribers, with an empty topic to
    /// every other plugin and host client.
    pub fn broadcast(&self, topic: &str, data: Value) -> Result<(), Error> {
        let mut msg = message(&[("type", json!("broadcast")), ("id", json!(self.shared.next_id()))], data);
        if !topic.is_empty() {
            msg["topic"] = topic.into();
        }
        self.publish(msg)
    }

    /// [`emit`](Hub::emit) that asks the hub for its answer and waits for it (blocking the
    /// thread, at most 10 s): `Ok` once the hub published the event, else the refusal
    /// (`LM_PERMISSION_DENIED` naming the manifest field, `LM_RATE_LIMITED`),
    /// `LM_PLUGIN_UNAVAILABLE` if the connection is lost meanwhile, `LM_TIMEOUT` without an
    /// answer.
    pub fn emit_acked(&self, topic: &str, data: Value) -> Result<(), Error> {
        self.publish_acked(message(
            &[("type", json!("event")), ("id", json!(self.shared.next_id())), ("topic", json!(topic)), ("ack", json!(true))],
            data,
        ))
    }

    /// [`broadcast`](Hub::broadcast) that waits for the hub's answer, as
    /// [`emit_acked`](Hub::emit_acked) does.
    pub fn broadcast_acked(&self, topic: &str, data: Value) -> Result<(), Error> {
        let mut msg = message(&[("type", json!("broadcast")), ("id", json!(self.shared.next_id())), ("ack", json!(true))], data);
        if !topic.is_empty() {
            msg["topic"] = topic.into();
        }
        self.publish_acked(msg)
    }

    /// Publish with `ack`: waiting for the answer as for a call, registered before the
    /// message is written (the answer may come back before `send` returns).
    fn publish_acked(&self, msg: Value) -> Result<(), Error> {
        let id = msg["id"].as_str().unwrap_or_default().to_string();
        let slot = Slot::new();
        lock(&self.shared.pending).insert(id.clone(), Arc::clone(&slot));
        if let Err(e) = self.publish(msg) {
            lock(&self.shared.pending).remove(&id);
            return Err(e);
        }
        self.shared.wait(&id, &slot, ACK_TIMEOUT, ACK_TIMEOUT, "the hub").map(|_| ())
    }

    /// While the SDK reconnects to the hub, events and broadcasts fail with
    /// `LM_PLUGIN_UNAVAILABLE`: they are never queued.
    pub(crate) fn publish(&self, msg: Value) -> Result<(), Error> {
        if let Some(t) = msg.get("topic").and_then(Value::as_str) {
            if t.contains('*') || !valid_pattern(t) {
                return Err(Error::invalid_argument(format!(
                    "'{t}' is not a topic: use dotted names such as thought.added"
                )));
            }
        }
        if lock(&self.shared.ctl).reconnecting {
            return Err(Error::new("LM_PLUGIN_UNAVAILABLE", format!("{LOST}; reconnecting")));
        }
        self.shared.send(msg)
    }

    /// Handle events and broadcasts whose topic matches `pattern` (`a.b`, `a.*` or `*`).
    /// A pattern registered before `run` goes in hello's subscriptions: the hub subscribes it
    /// before the plugin counts as ready, so no event published once it is ready is missed
    /// (and so on every reconnect's hello). After, the subscription is sent now and this
    /// waits for the hub to confirm it (while reconnecting: the next hello carries it). The
    /// manifest must cover the pattern under `coordination.subscribes`: the hub refuses a
    /// hello naming one it does not (`run` returns that error), and a later subscription with
    /// `LM_PERMISSION_DENIED`, returned here.
    pub fn on<F: Fn(Event) + Send + Sync + 'static>(&self, pattern: &str, handler: F) -> Result<(), Error> {
        if !valid_pattern(pattern) {
            return Err(Error::invalid_argument(format!(
                "'{pattern}' is not a topic pattern: use a.b, a.* or *"
            )));
        }
        let handler: EventHandler = Arc::new(handler);
        let first = {
            let mut subs = self.shared.subs.write().unwrap_or_else(|e| e.into_inner());
            let first = !subs.iter().any(|(p, _)| p == pattern);
            subs.push((pattern.to_string(), Arc::clone(&handler)));
            first
        };
        if first && self.shared.accepted() {
            if let Err(e) = self.subscribe("subscribe", pattern) {
                // Refused by the hub: the handler goes too, or the next reconnect's hello
                // would name the pattern and the hub would refuse the whole hello.
                if refused(&e) {
                    self.shared.forget(pattern, Some(&handler));
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// Stop handling `pattern`: drop its handlers and unsubscribe.
    pub fn off(&self, pattern: &str) -> Result<(), Error> {
        self.shared
            .subs
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(p, _)| p != pattern);
        if self.shared.accepted() {
            self.subscribe("unsubscribe", pattern)?;
        }
        Ok(())
    }

    pub(crate) fn subscribe(&self, kind: &str, pattern: &str) -> Result<(), Error> {
        let mut m = Map::new();
        m.insert("type".into(), kind.into());
        m.insert("topic".into(), pattern.into());
        self.shared.exchange(m, SUBSCRIBE_TIMEOUT).map(|_| ())
    }

    /// Stop serving as if the hub had sent `shutdown`: new requests are refused, the ones
    /// in flight get `grace` to answer, then `run` closes the connection and returns.
    pub fn stop(&self, grace: Duration) {
        self.shared.request_stop(grace);
    }
}
