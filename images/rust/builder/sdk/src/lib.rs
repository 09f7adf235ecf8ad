//! # LogoMesh plugin SDK for Rust
//!
//! A plugin registers methods and event handlers on a [`Plugin`], then calls
//! [`Plugin::run`], which connects to the LogoMesh hub, says hello with the method names,
//! serves requests concurrently until the hub asks it to stop or the process gets SIGTERM
//! or SIGINT, and returns `Ok(())` after a clean close. If the connection is lost (the
//! controller restarted), it connects again for up to `LOGOMESH_RECONNECT_MS`, says hello
//! again and subscribes again.
//!
//! ```no_run
//! use logomesh::{json, Error, Plugin, Value};
//! use std::time::Duration;
//!
//! fn main() -> Result<(), Error> {
//!     let mut plugin = Plugin::new();
//!     let hub = plugin.hub();
//!     plugin.method("greet", |args: Value| -> Result<Value, Error> {
//!         let name = args.get("name").and_then(Value::as_str).ok_or_else(|| Error::invalid_argument("name must be a string"))?;
//!         Ok(json!({ "greeting": format!("hello, {name}") }))
//!     });
//!     plugin.method("tokens", move |args: Value| hub.call("tokenizer.tokenize", args, Duration::from_secs(5)));
//!     plugin.run()
//! }
//! ```
//!
//! The wire protocol is docs/protocol.md of LogoMesh: WebSocket (RFC 6455) over the Unix
//! socket named by `LOGOMESH_HUB_SOCKET`. The WebSocket client is part of this crate and
//! uses only the standard library.

mod error;
mod exec;
mod pool;
mod signals;
pub mod testing;
mod ws;

pub use error::Error;
pub use exec::{block_on, sleep, spawn, BoxFuture, Sleep};
pub use serde_json;
pub use serde_json::{json, Value};

use exec::CatchUnwind;
use pool::{lock, Pool};
use serde_json::Map;
use std::collections::HashMap;
use std::future::Future;
use std::io::BufReader;
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, RwLock, Weak};
use std::task::{Context, Poll, Waker};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The SDK's version, sent in `hello` as `rust/<version>`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The protocol major version this SDK speaks.
pub const PROTOCOL: u64 = 1;
/// How long in-flight requests may take to finish after SIGTERM or SIGINT (the hub's
/// `shutdown` message carries its own `graceMs`).
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);
/// The most requests served at once; more wait for a free worker thread.
pub const DEFAULT_MAX_CONCURRENCY: usize = 16;
/// The hub's upper bound for a call's timeout.
pub const MAX_TIMEOUT: Duration = Duration::from_millis(300_000);

const HELLO_TIMEOUT: Duration = Duration::from_secs(30);
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(10);
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long `run` waits for the hub's socket to appear.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `run` tries to reconnect after an established connection is lost, when
/// `LOGOMESH_RECONNECT_MS` is not set.
pub const DEFAULT_RECONNECT: Duration = Duration::from_millis(60_000);
/// The backoff between reconnect attempts: 100 ms, doubled after each failure, at most 2 s.
const RECONNECT_FIRST_DELAY: Duration = Duration::from_millis(100);
const RECONNECT_MAX_DELAY: Duration = Duration::from_secs(2);
/// What calls waiting for an answer get when the connection is lost and the SDK reconnects.
const LOST: &str = "hub connection lost";
/// The hub enforces a call's timeout and answers `LM_TIMEOUT`; the SDK gives up on its own
/// this much later, so the hub's answer (or a just-in-time result) normally wins.
const LOCAL_TIMEOUT_SLACK: Duration = Duration::from_millis(500);

/// An event or broadcast delivered to an [`Plugin::on`] handler.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The topic; empty for a broadcast sent without one.
    pub topic: String,
    pub data: Value,
    /// The sender's plugin id, or `host`.
    pub from: String,
    /// True for a `broadcast`, false for an `event`.
    pub broadcast: bool,
}

type SyncHandler = Arc<dyn Fn(Value) -> Result<Value, Error> + Send + Sync + 'static>;
type AsyncHandler = Arc<dyn Fn(Value) -> BoxFuture<Result<Value, Error>> + Send + Sync + 'static>;
type EventHandler = Arc<dyn Fn(Event) + Send + Sync + 'static>;

#[derive(Clone)]
enum Handler {
    Sync(SyncHandler),
    Async(AsyncHandler),
}

/// Where one outgoing call's answer lands.
struct Slot {
    state: Mutex<SlotState>,
    done: Condvar,
}

struct SlotState {
    result: Option<Result<Value, Error>>,
    waker: Option<Waker>,
}

impl Slot {
    fn new() -> Arc<Slot> {
        Arc::new(Slot {
            state: Mutex::new(SlotState { result: None, waker: None }),
            done: Condvar::new(),
        })
    }

    fn complete(&self, result: Result<Value, Error>) {
        let waker = {
            let mut s = lock(&self.state);
            if s.result.is_some() {
                return;
            }
            s.result = Some(result);
            s.waker.take()
        };
        self.done.notify_all();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// Run state shared by the main thread (in `run`), the reader and the workers.
struct Ctl {
    stopping: bool,
    /// When in-flight requests stop being waited for, once stopping.
    deadline: Option<Instant>,
    inflight: usize,
    /// The current connection is gone (closed by either side, or failed).
    closed: bool,
    /// The hub has accepted a hello: a lost connection is then reconnected.
    established: bool,
    /// How long to try to reconnect (zero: never).
    reconnect: Duration,
    /// Between a lost connection and the hub accepting hello again.
    reconnecting: bool,
    /// `run` is over.
    finished: bool,
    /// How the last connection ended, for the log ("code 1006").
    lost: String,
    /// `call_async` futures waiting for the connection to be back.
    waiting: Vec<Waker>,
}

impl Ctl {
    fn new(reconnect: Duration) -> Ctl {
        Ctl {
            stopping: false,
            deadline: None,
            inflight: 0,
            closed: false,
            established: false,
            reconnect,
            reconnecting: false,
            finished: false,
            lost: String::new(),
            waiting: Vec::new(),
        }
    }
}

/// The writing side of one connection.
struct Link {
    writer: ws::Writer<UnixStream>,
    /// Which connection this is: answers go out only on the one their request came in on.
    gen: u64,
    /// Calls, events and answers may be sent (false on a new connection until the hub
    /// accepts its hello).
    ready: bool,
}

/// Which messages a write may go out with.
enum Via {
    /// Calls, events, broadcasts: a connection whose hello was accepted.
    Ready,
    /// Hello, subscribe, unsubscribe: any connection.
    Any,
    /// An answer: only the connection the request came in on.
    Gen(u64),
}

struct Shared {
    plugin_id: String,
    writer: Mutex<Option<Link>>,
    links: AtomicU64,
    pending: Mutex<HashMap<String, Arc<Slot>>>,
    next_id: AtomicU64,
    subs: RwLock<Vec<(String, EventHandler)>>,
    ctl: Mutex<Ctl>,
    changed: Condvar,
}

impl Shared {
    fn next_id(&self) -> String {
        self.next_id.fetch_add(1, Ordering::Relaxed).to_string()
    }

    fn send(&self, msg: &Value) -> Result<(), Error> {
        self.send_via(msg, Via::Ready)
    }

    fn send_via(&self, msg: &Value, via: Via) -> Result<(), Error> {
        let bytes = serde_json::to_vec(msg).map_err(|e| Error::plugin_error(format!("cannot encode a message: {e}")))?;
        let sent = {
            let mut w = lock(&self.writer);
            match (w.as_mut(), via) {
                (Some(link), Via::Any) => Some(link.writer.send(ws::OP_TEXT, &bytes)),
                (Some(link), Via::Ready) if link.ready => Some(link.writer.send(ws::OP_TEXT, &bytes)),
                (Some(link), Via::Gen(gen)) if link.gen == gen => Some(link.writer.send(ws::OP_TEXT, &bytes)),
                _ => None,
            }
        };
        match sent {
            Some(r) => r.map_err(|e| Error::disconnected(format!("sending to the hub failed: {e}"))),
            None if lock(&self.ctl).reconnecting => Err(Error::new("LM_PLUGIN_UNAVAILABLE", format!("{LOST}; reconnecting"))),
            None => Err(Error::disconnected("not connected to the hub")),
        }
    }

    /// Is a connection whose hello was accepted open?
    fn ready(&self) -> bool {
        lock(&self.writer).as_ref().map_or(false, |l| l.ready)
    }

    /// While reconnecting, wait (at most `timeout`) for the connection to be back; the
    /// time left of `timeout`.
    fn await_online(&self, timeout: Duration, what: &str) -> Result<Duration, Error> {
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

    /// Answer a request that came in on connection `gen` (dropped if that one is gone).
    fn respond(&self, gen: u64, correlation_id: &str, result: Result<Value, Error>) {
        let mut m = Map::new();
        m.insert("type".into(), "response".into());
        m.insert("id".into(), self.next_id().into());
        m.insert("correlationId".into(), correlation_id.into());
        match result {
            Ok(data) => {
                m.insert("success".into(), true.into());
                m.insert("data".into(), data);
            }
            Err(e) => {
                m.insert("success".into(), false.into());
                m.insert("error".into(), e.to_json());
            }
        }
        let open = lock(&self.writer).as_ref().map_or(false, |l| l.gen == gen);
        if !open {
            return; // the hub that sent the request is gone: the answer cannot be delivered
        }
        if let Err(e) = self.send_via(&Value::Object(m), Via::Gen(gen)) {
            if !lock(&self.ctl).closed {
                eprintln!("logomesh: could not answer request {correlation_id}: {e}");
            }
        }
    }

    /// Ask `run` to stop: refuse new requests, let in-flight ones finish within `grace`.
    /// A second request while stopping shortens the wait, never lengthens it.
    fn request_stop(&self, grace: Duration) {
        let mut c = lock(&self.ctl);
        let deadline = Instant::now() + grace;
        c.stopping = true;
        c.deadline = Some(match c.deadline {
            Some(d) if d < deadline => d,
            _ => deadline,
        });
        drop(c);
        self.changed.notify_all();
    }

    fn finish_request(&self) {
        let mut c = lock(&self.ctl);
        c.inflight -= 1;
        drop(c);
        self.changed.notify_all();
    }

    /// The connection is gone (`how`: "code 1006"): fail every open call and wake `run`.
    /// An established connection lost while not stopping is reconnected: the calls fail
    /// with `LM_PLUGIN_UNAVAILABLE`, and calls made from now on wait for the connection.
    fn connection_closed(&self, how: String) {
        *lock(&self.writer) = None;
        let reconnecting = {
            let mut c = lock(&self.ctl);
            c.closed = true;
            c.lost = how;
            if c.established && !c.stopping && !c.finished && !c.reconnect.is_zero() {
                c.reconnecting = true;
            }
            c.reconnecting
        };
        self.changed.notify_all();
        let open: Vec<Arc<Slot>> = lock(&self.pending).drain().map(|(_, s)| s).collect();
        for slot in open {
            slot.complete(Err(if reconnecting {
                Error::new("LM_PLUGIN_UNAVAILABLE", LOST)
            } else {
                Error::disconnected("the connection to the hub closed")
            }));
        }
    }

    fn start_call(&self, target: &str, args: Value, timeout: Duration) -> Result<(String, Arc<Slot>), Error> {
        let (to, method) = split_target(target)?;
        let ms = timeout.min(MAX_TIMEOUT).as_millis().max(1) as u64;
        let id = self.next_id();
        let msg = json!({ "type": "request", "id": id, "to": [to], "method": method, "data": args, "timeout": ms });
        let slot = Slot::new();
        lock(&self.pending).insert(id.clone(), Arc::clone(&slot));
        if let Err(e) = self.send(&msg) {
            lock(&self.pending).remove(&id);
            return Err(e);
        }
        Ok((id, slot))
    }

    /// Send a request that expects a response (hello, subscribe) and wait for it.
    fn exchange(&self, mut msg: Map<String, Value>, timeout: Duration) -> Result<Value, Error> {
        let id = self.next_id();
        msg.insert("id".into(), id.clone().into());
        let slot = Slot::new();
        lock(&self.pending).insert(id.clone(), Arc::clone(&slot));
        if let Err(e) = self.send_via(&Value::Object(msg), Via::Any) {
            lock(&self.pending).remove(&id);
            return Err(e);
        }
        self.wait(&id, &slot, timeout, timeout, "the hub")
    }

    /// Wait for a slot's result; `timeout` is what the error names, `patience` how long.
    fn wait(&self, id: &str, slot: &Slot, timeout: Duration, patience: Duration, what: &str) -> Result<Value, Error> {
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

fn timeout_error(what: &str, timeout: Duration) -> Error {
    Error::new("LM_TIMEOUT", format!("no response from {what} within {} ms", timeout.as_millis()))
}

fn not_back(what: &str, timeout: Duration) -> Error {
    Error::new(
        "LM_PLUGIN_UNAVAILABLE",
        format!(
            "{what}: {LOST}, and not back within the call's timeout ({} ms)",
            timeout.as_millis()
        ),
    )
}

fn is_lost(e: &Error) -> bool {
    e.code == "LM_PLUGIN_UNAVAILABLE" && e.message == LOST
}

/// `plugin.method` as (plugin, method); a name without a dot is a host method.
fn split_target(target: &str) -> Result<(&str, &str), Error> {
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

/// LOGOMESH_RECONNECT_MS, milliseconds (0: never reconnect).
fn reconnect_from_env() -> Duration {
    match std::env::var("LOGOMESH_RECONNECT_MS") {
        Err(_) => DEFAULT_RECONNECT,
        Ok(raw) if raw.trim().is_empty() => DEFAULT_RECONNECT,
        Ok(raw) => match raw.trim().parse::<u64>() {
            Ok(ms) => Duration::from_millis(ms),
            Err(_) => {
                eprintln!(
                    "logomesh: LOGOMESH_RECONNECT_MS={raw:?} is not a number of milliseconds >= 0; using {}",
                    DEFAULT_RECONNECT.as_millis()
                );
                DEFAULT_RECONNECT
            }
        },
    }
}

/// A method name as the protocol allows it: a letter or `_`, then letters, digits or `_`.
fn valid_method(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// A subscription pattern: `a.b`, `a.*` or `*`.
fn valid_pattern(topic: &str) -> bool {
    if topic == "*" {
        return true;
    }
    let body = topic.strip_suffix(".*").unwrap_or(topic);
    !body.is_empty()
        && body
            .split('.')
            .all(|part| !part.is_empty() && part.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-'))
}

/// Does a subscription pattern match a topic? `*` matches everything (including a
/// broadcast without a topic), `a.*` every topic under `a.`.
pub fn topic_matches(pattern: &str, topic: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.strip_suffix('*') {
        Some(prefix) if pattern.ends_with(".*") => topic.starts_with(prefix),
        _ => pattern == topic,
    }
}

/// A handle on the connection for calling methods and sending events, from anywhere:
/// inside method and event handlers, other threads, async tasks. Cheap to clone. Obtained
/// with [`Plugin::hub`]; usable once [`Plugin::run`] has connected.
#[derive(Clone)]
pub struct Hub {
    shared: Arc<Shared>,
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

    fn open_call(&self, target: &str, args: Value, timeout: Duration) -> Call {
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
        self.publish(json!({ "type": "event", "id": self.shared.next_id(), "topic": topic, "data": data }))
    }

    /// Send an event to the named plugins (or `host`) only, whatever they subscribed to.
    pub fn emit_to(&self, topic: &str, data: Value, to: &[&str]) -> Result<(), Error> {
        self.publish(json!({ "type": "event", "id": self.shared.next_id(), "topic": topic, "data": data, "to": to }))
    }

    /// Send a broadcast: with a topic to that topic's subscribers, with an empty topic to
    /// every other plugin and host client.
    pub fn broadcast(&self, topic: &str, data: Value) -> Result<(), Error> {
        let mut msg = json!({ "type": "broadcast", "id": self.shared.next_id(), "data": data });
        if !topic.is_empty() {
            msg["topic"] = topic.into();
        }
        self.publish(msg)
    }

    /// While the SDK reconnects to the hub, events and broadcasts fail with
    /// `LM_PLUGIN_UNAVAILABLE`: they are never queued.
    fn publish(&self, msg: Value) -> Result<(), Error> {
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
        self.shared.send(&msg)
    }

    /// Handle events and broadcasts whose topic matches `pattern` (`a.b`, `a.*` or `*`).
    /// Before `run` the subscription is sent when the plugin connects; after, it is sent
    /// now and this waits for the hub to confirm it (while reconnecting: once connected
    /// again, when every pattern is subscribed again).
    pub fn on<F: Fn(Event) + Send + Sync + 'static>(&self, pattern: &str, handler: F) -> Result<(), Error> {
        if !valid_pattern(pattern) {
            return Err(Error::invalid_argument(format!(
                "'{pattern}' is not a topic pattern: use a.b, a.* or *"
            )));
        }
        let first = {
            let mut subs = self.shared.subs.write().unwrap_or_else(|e| e.into_inner());
            let first = !subs.iter().any(|(p, _)| p == pattern);
            subs.push((pattern.to_string(), Arc::new(handler)));
            first
        };
        if first && self.shared.ready() {
            self.subscribe("subscribe", pattern)?;
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
        if self.shared.ready() {
            self.subscribe("unsubscribe", pattern)?;
        }
        Ok(())
    }

    fn subscribe(&self, kind: &str, pattern: &str) -> Result<(), Error> {
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

/// The future [`Hub::call_async`] returns.
pub struct Call {
    inner: CallInner,
}

enum CallInner {
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
    fn poll_waiting(&mut self, cx: &mut Context<'_>) -> Option<Result<Option<CallInner>, Error>> {
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

/// A plugin: its methods and event handlers, and [`run`](Plugin::run) to serve them.
pub struct Plugin {
    shared: Arc<Shared>,
    methods: HashMap<String, Handler>,
    problems: Vec<String>,
    socket: Option<PathBuf>,
    grace: Duration,
    connect_timeout: Duration,
    reconnect: Option<Duration>,
    max_concurrency: usize,
}

impl Default for Plugin {
    fn default() -> Self {
        Plugin::new()
    }
}

impl Plugin {
    /// A plugin with no methods yet; its id comes from `LOGOMESH_PLUGIN_ID`.
    pub fn new() -> Plugin {
        let plugin_id = std::env::var("LOGOMESH_PLUGIN_ID").unwrap_or_else(|_| "plugin".to_string());
        Plugin {
            shared: Arc::new(Shared {
                plugin_id,
                writer: Mutex::new(None),
                links: AtomicU64::new(0),
                pending: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(1),
                subs: RwLock::new(Vec::new()),
                ctl: Mutex::new(Ctl::new(DEFAULT_RECONNECT)),
                changed: Condvar::new(),
            }),
            methods: HashMap::new(),
            problems: Vec::new(),
            socket: None,
            grace: DEFAULT_GRACE,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            reconnect: None,
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
        }
    }

    /// Serve `name` with a blocking handler. It runs on a worker thread, so a slow one
    /// does not hold up other requests. Returning `Err` answers with that error's code; a
    /// panic answers `LM_PLUGIN_ERROR`.
    pub fn method<F>(&mut self, name: &str, handler: F) -> &mut Self
    where
        F: Fn(Value) -> Result<Value, Error> + Send + Sync + 'static,
    {
        self.add(name, Handler::Sync(Arc::new(handler)))
    }

    /// Serve `name` with an async handler: it returns a future that runs on the SDK's
    /// executor thread, where awaiting (a [`Hub::call_async`], a [`sleep`]) lets other
    /// requests proceed. It must not block that thread; use [`method`](Plugin::method)
    /// for blocking work.
    pub fn method_async<F, Fut>(&mut self, name: &str, handler: F) -> &mut Self
    where
        F: Fn(Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, Error>> + Send + 'static,
    {
        self.add(
            name,
            Handler::Async(Arc::new(move |args| Box::pin(handler(args)) as BoxFuture<Result<Value, Error>>)),
        )
    }

    fn add(&mut self, name: &str, handler: Handler) -> &mut Self {
        if !valid_method(name) {
            self.problems.push(format!(
                "'{name}' is not a method name: a letter or _, then letters, digits or _ (at most 64)"
            ));
        } else if self.methods.insert(name.to_string(), handler).is_some() {
            self.problems.push(format!("method '{name}' is registered twice"));
        }
        self
    }

    /// Handle events and broadcasts whose topic matches `pattern` (`a.b`, `a.*`, or `*`
    /// for everything, including broadcasts without a topic). Handlers run one at a time,
    /// in arrival order, on the SDK's event thread.
    pub fn on<F: Fn(Event) + Send + Sync + 'static>(&mut self, pattern: &str, handler: F) -> &mut Self {
        if let Err(e) = self.hub().on(pattern, handler) {
            self.problems.push(e.message);
        }
        self
    }

    /// A handle for calls, events and broadcasts from inside handlers or other threads.
    pub fn hub(&self) -> Hub {
        Hub {
            shared: Arc::clone(&self.shared),
        }
    }

    /// See [`Hub::call`].
    pub fn call(&self, target: &str, args: Value, timeout: Duration) -> Result<Value, Error> {
        self.hub().call(target, args, timeout)
    }

    /// See [`Hub::emit`].
    pub fn emit(&self, topic: &str, data: Value) -> Result<(), Error> {
        self.hub().emit(topic, data)
    }

    /// See [`Hub::broadcast`].
    pub fn broadcast(&self, topic: &str, data: Value) -> Result<(), Error> {
        self.hub().broadcast(topic, data)
    }

    /// Connect to this socket instead of `LOGOMESH_HUB_SOCKET` (for tests).
    pub fn socket_path(&mut self, path: impl Into<PathBuf>) -> &mut Self {
        self.socket = Some(path.into());
        self
    }

    /// How long in-flight requests may take after SIGTERM/SIGINT (default 5 s).
    pub fn grace(&mut self, grace: Duration) -> &mut Self {
        self.grace = grace;
        self
    }

    /// How long `run` retries while the hub's socket does not exist yet (default 10 s).
    pub fn connect_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long `run` tries to connect again after an established connection is lost
    /// (default: `LOGOMESH_RECONNECT_MS` milliseconds, else 60 s). Zero turns reconnecting
    /// off: a lost connection ends `run` with `LM_CONTROLLER_UNAVAILABLE`.
    pub fn reconnect(&mut self, window: Duration) -> &mut Self {
        self.reconnect = Some(window);
        self
    }

    /// The most sync requests served at once (default 16); each needs a thread, and
    /// threads count against the manifest's `maxProcesses`.
    pub fn max_concurrency(&mut self, n: usize) -> &mut Self {
        self.max_concurrency = n.max(1);
        self
    }

    /// Connect, say hello, serve until the hub sends `shutdown` or the process gets
    /// SIGTERM/SIGINT, let in-flight requests answer (within the grace period), close
    /// with status 1000 and return `Ok(())`. When an established connection is lost, it
    /// connects again (see [`reconnect`](Plugin::reconnect)), says hello again and
    /// subscribes again. Returns an error when the plugin cannot connect, the hub refuses
    /// the hello, or the connection is lost and not re-made within the reconnect window.
    pub fn run(self) -> Result<(), Error> {
        if !self.problems.is_empty() {
            return Err(Error::invalid_argument(self.problems.join("; ")));
        }
        let path = match self
            .socket
            .clone()
            .or_else(|| std::env::var_os("LOGOMESH_HUB_SOCKET").map(PathBuf::from))
        {
            Some(p) => p,
            None => {
                return Err(Error::disconnected(
                    "LOGOMESH_HUB_SOCKET is not set: start this plugin with logomesh",
                ))
            }
        };
        let reconnect = self.reconnect.unwrap_or_else(reconnect_from_env);
        let stream = connect(&path, self.connect_timeout)?;
        let shared = Arc::clone(&self.shared);
        *lock(&shared.ctl) = Ctl::new(reconnect);

        let mut names: Vec<String> = self.methods.keys().cloned().collect();
        names.sort();
        let dispatch = Dispatch {
            shared: Arc::clone(&shared),
            methods: self.methods,
            pool: Pool::new(self.max_concurrency, "logomesh-worker"),
            events: None,
            gen: 0,
        };
        let mut conn = match open(&shared, stream, dispatch, None, true) {
            Ok(c) => c,
            Err(Opened::Refused(e, _)) | Err(Opened::Failed(e)) => return Err(e),
        };

        let weak = Arc::downgrade(&shared);
        let grace = self.grace;
        let listener = signals::listen(Box::new(move |sig| {
            if let Some(s) = weak.upgrade() {
                let name = if sig == signals::SIGINT { "SIGINT" } else { "SIGTERM" };
                if lock(&s.ctl).stopping {
                    // A second signal: stop waiting for in-flight requests.
                    eprintln!("logomesh: {name} again: closing now");
                    s.request_stop(Duration::ZERO);
                } else {
                    eprintln!("logomesh: {name}: finishing in-flight requests, then closing");
                    s.request_stop(grace);
                }
            }
        }));
        let result = serve(&shared, &names, &path, &mut conn);
        signals::unlisten(listener);
        // Whatever happened, the reader thread ends once the socket is shut down.
        let _ = conn.control.shutdown(Shutdown::Both);
        let wakers = {
            let mut c = lock(&shared.ctl);
            c.finished = true;
            c.reconnecting = false;
            std::mem::take(&mut c.waiting)
        };
        shared.changed.notify_all();
        for w in wakers {
            w.wake();
        }
        result
    }
}

/// One connection to the hub: its socket (shut down to end it) and its reader thread, which
/// hands the dispatcher back when the connection is over.
struct Connection {
    control: UnixStream,
    reader: Option<JoinHandle<Dispatch>>,
}

impl Connection {
    /// Wait for the reader thread (its connection is over or shut down) and take the
    /// dispatcher back, for the next connection.
    fn join(&mut self) -> Result<Dispatch, Error> {
        let _ = self.control.shutdown(Shutdown::Both);
        match self.reader.take().map(JoinHandle::join) {
            Some(Ok(d)) => Ok(d),
            _ => Err(Error::plugin_error("the reader thread panicked")),
        }
    }
}

enum Opened {
    /// The WebSocket handshake failed: the dispatcher comes back for another attempt.
    Refused(Error, Dispatch),
    Failed(Error),
}

/// The WebSocket handshake on a new stream, then the reader thread. `first`: the first
/// connection, usable at once (a reconnection waits for the hub to accept its hello).
fn open(
    shared: &Arc<Shared>,
    stream: UnixStream,
    mut dispatch: Dispatch,
    patience: Option<Duration>,
    first: bool,
) -> Result<Connection, Opened> {
    let handshake = || -> std::io::Result<(BufReader<UnixStream>, UnixStream, UnixStream)> {
        stream.set_read_timeout(patience)?;
        let mut reader = BufReader::with_capacity(64 * 1024, stream.try_clone()?);
        let control = stream.try_clone()?;
        let mut raw = stream.try_clone()?;
        ws::client_handshake(&mut reader, &mut raw, "logomesh", "/v1")?;
        stream.set_read_timeout(None)?;
        Ok((reader, raw, control))
    };
    let (reader, raw, control) = match handshake() {
        Ok(parts) => parts,
        Err(e) => {
            return Err(Opened::Refused(
                Error::disconnected(format!("WebSocket handshake with the hub failed: {e}")),
                dispatch,
            ))
        }
    };
    let gen = shared.links.fetch_add(1, Ordering::Relaxed) + 1;
    lock(&shared.ctl).closed = false;
    *lock(&shared.writer) = Some(Link {
        writer: ws::Writer::new(raw, true),
        gen,
        ready: first,
    });
    dispatch.gen = gen;
    let max = std::env::var("LOGOMESH_MAX_MESSAGE_BYTES")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1 << 20)
        .saturating_mul(16);
    let frames = ws::Reader::new(reader, max);
    let spawned = thread::Builder::new().name("logomesh-reader".into()).spawn(move || {
        dispatch.read_loop(frames);
        dispatch
    });
    match spawned {
        Ok(h) => Ok(Connection { control, reader: Some(h) }),
        Err(e) => Err(Opened::Failed(Error::plugin_error(format!("cannot start the reader thread: {e}")))),
    }
}

fn say_hello(shared: &Shared, names: &[String], timeout: Duration) -> Result<Value, Error> {
    let mut hello = Map::new();
    hello.insert("type".into(), "hello".into());
    hello.insert("protocol".into(), PROTOCOL.into());
    hello.insert("sdk".into(), format!("rust/{VERSION}").into());
    hello.insert(
        "methods".into(),
        names.iter().map(|n| Value::String(n.clone())).collect::<Vec<_>>().into(),
    );
    shared.exchange(hello, timeout)
}

/// Subscribe to every pattern of the `on` handlers (on a new connection: again).
fn subscribe_all(shared: &Arc<Shared>) {
    let patterns: Vec<String> = {
        let subs = shared.subs.read().unwrap_or_else(|e| e.into_inner());
        let mut p: Vec<String> = subs.iter().map(|(p, _)| p.clone()).collect();
        p.sort();
        p.dedup();
        p
    };
    let hub = Hub {
        shared: Arc::clone(shared),
    };
    for p in &patterns {
        if let Err(e) = hub.subscribe("subscribe", p) {
            if !is_lost(&e) {
                eprintln!("logomesh: subscribing to '{p}' failed: {e}");
            }
        }
    }
}

/// Hello, subscriptions, then serve until stopped (reconnecting when the connection is
/// lost), and close cleanly.
fn serve(shared: &Arc<Shared>, names: &[String], path: &Path, conn: &mut Connection) -> Result<(), Error> {
    if let Err(e) = say_hello(shared, names, HELLO_TIMEOUT) {
        close(shared, &conn.control);
        return Err(e);
    }
    lock(&shared.ctl).established = true;
    subscribe_all(shared);

    loop {
        // Serve until asked to stop or the connection is gone.
        let mut c = lock(&shared.ctl);
        while !c.stopping && !c.closed {
            c = shared.changed.wait(c).unwrap_or_else(|e| e.into_inner());
        }
        if c.closed && !c.stopping {
            let (window, how) = (c.reconnect, c.lost.clone());
            drop(c);
            if window.is_zero() {
                return Err(Error::disconnected("the connection to the hub closed"));
            }
            let dispatch = conn.join()?;
            match reconnect(shared, names, path, dispatch, window, &how)? {
                Some(next) => {
                    *conn = next;
                    continue;
                }
                None => return Ok(()), // stopped while reconnecting
            }
        }
        // Stopping: in-flight requests answer, within the deadline.
        loop {
            if c.inflight == 0 || c.closed {
                break;
            }
            let now = Instant::now();
            let deadline = c.deadline.unwrap_or(now);
            if now >= deadline {
                eprintln!("logomesh: {} request(s) still running at the end of the grace period", c.inflight);
                break;
            }
            c = shared.changed.wait_timeout(c, deadline - now).unwrap_or_else(|e| e.into_inner()).0;
        }
        drop(c);
        close(shared, &conn.control);
        return Ok(());
    }
}

/// Connect again after the connection was lost: with backoff, for up to `window`, saying
/// hello with the same methods and subscribing again. The new connection; `None` when
/// stopped meanwhile; an error when the window passes or the hub refuses the hello.
fn reconnect(
    shared: &Arc<Shared>,
    names: &[String],
    path: &Path,
    dispatch: Dispatch,
    window: Duration,
    how: &str,
) -> Result<Option<Connection>, Error> {
    let lost_at = Instant::now();
    let deadline = lost_at + window;
    lock(&shared.ctl).reconnecting = true;
    eprintln!(
        "logomesh: plugin {}: hub connection lost ({how}); reconnecting for up to {} ms",
        shared.plugin_id,
        window.as_millis()
    );
    let mut dispatch = Some(dispatch);
    let mut delay = RECONNECT_FIRST_DELAY;
    let mut attempts = 0u32;
    let mut last: String;
    loop {
        let wait = delay.min(deadline.saturating_duration_since(Instant::now()));
        {
            let c = lock(&shared.ctl);
            let (c, _) = shared
                .changed
                .wait_timeout_while(c, wait, |c| !c.stopping)
                .unwrap_or_else(|e| e.into_inner());
            if c.stopping {
                return Ok(None);
            }
        }
        delay = (delay * 2).min(RECONNECT_MAX_DELAY);
        attempts += 1;
        let patience = deadline.saturating_duration_since(Instant::now()).max(Duration::from_secs(1));
        match UnixStream::connect(path) {
            Err(e) => last = e.to_string(),
            Ok(stream) => match open(shared, stream, dispatch.take().expect("the dispatcher"), Some(patience), false) {
                Err(Opened::Refused(e, d)) => {
                    dispatch = Some(d);
                    last = e.message;
                }
                Err(Opened::Failed(e)) => return Err(e),
                Ok(mut conn) => match say_hello(shared, names, HELLO_TIMEOUT.min(patience)) {
                    Ok(_) => {
                        if let Some(link) = lock(&shared.writer).as_mut() {
                            link.ready = true;
                        }
                        subscribe_all(shared);
                        let wakers = {
                            let mut c = lock(&shared.ctl);
                            // Lost again already: the serve loop reconnects once more.
                            c.reconnecting = c.closed;
                            std::mem::take(&mut c.waiting)
                        };
                        shared.changed.notify_all();
                        for w in wakers {
                            w.wake();
                        }
                        eprintln!(
                            "logomesh: plugin {}: reconnected to the hub after {} ms",
                            shared.plugin_id,
                            lost_at.elapsed().as_millis()
                        );
                        return Ok(Some(conn));
                    }
                    Err(e) => {
                        let retry = is_lost(&e) || e.code == "LM_TIMEOUT" || e.code == "LM_CONTROLLER_UNAVAILABLE";
                        if !retry {
                            close(shared, &conn.control);
                            return Err(e); // the hub refused the hello
                        }
                        dispatch = Some(conn.join()?);
                        if lock(&shared.ctl).stopping {
                            return Ok(None);
                        }
                        last = e.to_string();
                    }
                },
            },
        }
        if Instant::now() >= deadline {
            return Err(Error::disconnected(format!(
                "the hub connection was lost and not re-made within {} ms ({attempts} attempt(s) at {}; last: {last})",
                window.as_millis(),
                path.display()
            )));
        }
    }
}

/// Send a close frame (1000), wait briefly for the hub's, then drop the connection.
fn close(shared: &Shared, control: &UnixStream) {
    if let Some(mut link) = lock(&shared.writer).take() {
        let _ = link.writer.close(1000, "plugin stopping");
    }
    let c = lock(&shared.ctl);
    let _ = shared.changed.wait_timeout_while(c, CLOSE_TIMEOUT, |c| !c.closed);
    let _ = control.shutdown(Shutdown::Both);
}

fn connect(path: &std::path::Path, patience: Duration) -> Result<UnixStream, Error> {
    // The socket may appear a moment after the container starts.
    let until = Instant::now() + patience;
    loop {
        match UnixStream::connect(path) {
            Ok(s) => return Ok(s),
            Err(e)
                if Instant::now() < until && matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused) =>
            {
                thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(Error::disconnected(format!("cannot connect to the hub at {}: {e}", path.display()))),
        }
    }
}

/// The reader thread's state: it reads every frame and routes it.
struct Dispatch {
    shared: Arc<Shared>,
    methods: HashMap<String, Handler>,
    pool: Pool,
    events: Option<mpsc::Sender<Event>>,
    /// The connection being read.
    gen: u64,
}

impl Dispatch {
    /// Whether a lost connection is only worth its own log line: not when the SDK
    /// reconnects (that logs one line) or is stopping.
    fn report_loss(&self) -> bool {
        let c = lock(&self.shared.ctl);
        !c.stopping && !c.reconnecting && (c.reconnect.is_zero() || !c.established)
    }

    fn read_loop(&mut self, mut frames: ws::Reader<BufReader<UnixStream>>) {
        let how;
        loop {
            match frames.next_message() {
                Ok(ws::Message::Text(text)) => self.on_text(&text),
                Ok(ws::Message::Ping(payload)) => {
                    if let Some(link) = lock(&self.shared.writer).as_mut() {
                        if link.gen == self.gen {
                            let _ = link.writer.send(ws::OP_PONG, &payload);
                        }
                    }
                }
                Ok(ws::Message::Pong(_)) => {}
                Ok(ws::Message::Binary(_)) => eprintln!("logomesh: ignoring a binary frame from the hub"),
                Ok(ws::Message::Close(code, reason)) => {
                    how = match (code, reason.is_empty()) {
                        (Some(c), true) => format!("code {c}"),
                        (Some(c), false) => format!("code {c}: {reason}"),
                        (None, _) => "code 1005".to_string(),
                    };
                    // Answer the close unless ours went first.
                    let link = lock(&self.shared.writer).take();
                    if let Some(mut link) = link {
                        let _ = link.writer.close(code.unwrap_or(1000), "");
                        if self.report_loss() {
                            eprintln!(
                                "logomesh: the hub closed the connection ({}{})",
                                code.map(|c| c.to_string()).unwrap_or_default(),
                                if reason.is_empty() { String::new() } else { format!(" {reason}") }
                            );
                        }
                    }
                    break;
                }
                Err(e) => {
                    how = "code 1006".to_string();
                    if lock(&self.shared.writer).is_some() && self.report_loss() {
                        eprintln!("logomesh: the connection to the hub failed: {e}");
                    }
                    break;
                }
            }
        }
        let _ = frames.get_ref().get_ref().shutdown(Shutdown::Both);
        self.shared.connection_closed(how);
    }

    fn on_text(&mut self, text: &str) {
        let mut msg: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("logomesh: ignoring a frame that is not JSON: {e}");
                return;
            }
        };
        let kind = msg.get("type").and_then(Value::as_str).unwrap_or("").to_string();
        match kind.as_str() {
            "response" | "error" => self.on_response(&mut msg),
            "request" => self.on_request(&mut msg),
            "event" | "broadcast" => self.on_event(&mut msg, kind == "broadcast"),
            "shutdown" => {
                let grace = msg
                    .pointer("/data/graceMs")
                    .and_then(Value::as_u64)
                    .map(Duration::from_millis)
                    .unwrap_or(DEFAULT_GRACE);
                self.shared.request_stop(grace);
            }
            _ => {}
        }
    }

    fn on_response(&self, msg: &mut Value) {
        let slot = msg
            .get("correlationId")
            .and_then(Value::as_str)
            .and_then(|id| lock(&self.shared.pending).remove(id));
        let success = msg.get("success").and_then(Value::as_bool).unwrap_or(false);
        let result = if success {
            Ok(msg.get_mut("data").map(Value::take).unwrap_or(Value::Null))
        } else {
            Err(Error::from_json(msg.get("error").unwrap_or(&Value::Null)))
        };
        match (slot, result) {
            (Some(slot), r) => slot.complete(r),
            // A refused event or broadcast, or a late answer to a call that timed out.
            (None, Err(e)) => eprintln!("logomesh: the hub reported {e}"),
            (None, Ok(_)) => {}
        }
    }

    fn on_request(&self, msg: &mut Value) {
        let id = match msg.get("id").and_then(Value::as_str) {
            Some(id) => id.to_string(),
            None => return,
        };
        let method = msg.get("method").and_then(Value::as_str).unwrap_or("").to_string();
        let data = msg.get_mut("data").map(Value::take).unwrap_or(Value::Null);
        let handler = match self.methods.get(&method) {
            Some(h) => h.clone(),
            None => {
                let e = Error::new(
                    "LM_METHOD_NOT_FOUND",
                    format!("plugin {} does not serve method '{method}'", self.shared.plugin_id),
                );
                return self.shared.respond(self.gen, &id, Err(e));
            }
        };
        {
            let mut c = lock(&self.shared.ctl);
            if c.stopping {
                drop(c);
                let e = Error::new(
                    "LM_PLUGIN_UNAVAILABLE",
                    format!("plugin {} is shutting down", self.shared.plugin_id),
                );
                return self.shared.respond(self.gen, &id, Err(e));
            }
            c.inflight += 1;
        }
        let shared = Arc::clone(&self.shared);
        let gen = self.gen;
        match handler {
            Handler::Sync(h) => self.pool.submit(Box::new(move || {
                let result = catch_unwind(AssertUnwindSafe(|| h(data))).unwrap_or_else(|p| Err(panicked(&method, &*p)));
                shared.respond(gen, &id, result);
                shared.finish_request();
            })),
            Handler::Async(h) => spawn(async move {
                let result = match CatchUnwind(Box::pin(async move { h(data).await })).await {
                    Ok(r) => r,
                    Err(p) => Err(Error::plugin_error(format!("method {method} panicked: {p}"))),
                };
                shared.respond(gen, &id, result);
                shared.finish_request();
            }),
        }
    }

    fn on_event(&mut self, msg: &mut Value, broadcast: bool) {
        let event = Event {
            topic: msg.get("topic").and_then(Value::as_str).unwrap_or("").to_string(),
            data: msg.get_mut("data").map(Value::take).unwrap_or(Value::Null),
            from: msg.get("from").and_then(Value::as_str).unwrap_or("").to_string(),
            broadcast,
        };
        if self.events.is_none() {
            let (tx, rx) = mpsc::channel::<Event>();
            let shared = Arc::clone(&self.shared);
            let spawned = thread::Builder::new().name("logomesh-events".into()).spawn(move || {
                for event in rx {
                    deliver(&shared, event);
                }
            });
            match spawned {
                Ok(_) => self.events = Some(tx),
                Err(e) => {
                    eprintln!("logomesh: cannot start the event thread ({e}); event on '{}' dropped", event.topic);
                    return;
                }
            }
        }
        if let Some(tx) = &self.events {
            let _ = tx.send(event);
        }
    }
}

fn deliver(shared: &Shared, event: Event) {
    let handlers: Vec<EventHandler> = {
        let subs = shared.subs.read().unwrap_or_else(|e| e.into_inner());
        subs.iter()
            .filter(|(p, _)| {
                if event.topic.is_empty() {
                    p == "*"
                } else {
                    topic_matches(p, &event.topic)
                }
            })
            .map(|(_, h)| Arc::clone(h))
            .collect()
    };
    for h in handlers {
        let ev = event.clone();
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| h(ev))) {
            eprintln!("logomesh: a handler for '{}' panicked: {}", event.topic, exec::panic_message(&*p));
        }
    }
}

fn panicked(method: &str, p: &(dyn std::any::Any + Send)) -> Error {
    Error::plugin_error(format!("method {method} panicked: {}", exec::panic_message(p)))
}

/// Read a method's arguments into a type of your own (`#[derive(Deserialize)]`); a
/// mismatch is `LM_INVALID_ARGUMENT` naming what was wrong.
pub fn from_args<T: serde::de::DeserializeOwned>(args: Value) -> Result<T, Error> {
    serde_json::from_value(args).map_err(|e| Error::invalid_argument(format!("invalid arguments: {e}")))
}

/// Turn a result of your own type (`#[derive(Serialize)]`) into the JSON value a method
/// returns.
pub fn to_result<T: serde::Serialize>(value: T) -> Result<Value, Error> {
    serde_json::to_value(value).map_err(|e| Error::plugin_error(format!("cannot encode the result: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_patterns() {
        assert!(valid_method("digest") && valid_method("_x1") && !valid_method("1x") && !valid_method("a.b") && !valid_method(""));
        assert!(
            valid_pattern("*")
                && valid_pattern("a.*")
                && valid_pattern("a.b-c_d")
                && !valid_pattern("a.")
                && !valid_pattern("*.a")
                && !valid_pattern("")
        );
        assert!(topic_matches("*", "x.y") && topic_matches("thought.*", "thought.added") && !topic_matches("thought.*", "thoughts.added"));
        assert!(topic_matches("a.b", "a.b") && !topic_matches("a.b", "a.b.c") && !topic_matches("thought.*", "thought"));
    }
}
