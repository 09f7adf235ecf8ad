//! The state one plugin shares between the thread that runs it, the reader and the workers:
//! the connection's writer, the calls waiting for answers, the subscriptions, and the run
//! state.

use crate::dispatch::EventHandler;
use crate::pool::lock;
use crate::protocol::{drop_deep, encode, encode_error, MAX_MESSAGE_BYTES};
use crate::{ws, Error};
use serde_json::Value;
use std::collections::HashMap;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::task::Waker;
use std::time::{Duration, Instant};

/// What calls waiting for an answer get when the connection is lost and the SDK reconnects.
pub(crate) const LOST: &str = "hub connection lost";

/// Where one outgoing call's answer lands.
pub(crate) struct Slot {
    pub(crate) state: Mutex<SlotState>,
    pub(crate) done: Condvar,
}

pub(crate) struct SlotState {
    pub(crate) result: Option<Result<Value, Error>>,
    pub(crate) waker: Option<Waker>,
}

impl Slot {
    pub(crate) fn new() -> Arc<Slot> {
        Arc::new(Slot {
            state: Mutex::new(SlotState { result: None, waker: None }),
            done: Condvar::new(),
        })
    }

    pub(crate) fn complete(&self, result: Result<Value, Error>) {
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
pub(crate) struct Ctl {
    pub(crate) stopping: bool,
    /// When in-flight requests stop being waited for, once stopping.
    pub(crate) deadline: Option<Instant>,
    pub(crate) inflight: usize,
    /// The current connection is gone (closed by either side, or failed).
    pub(crate) closed: bool,
    /// The hub has accepted a hello: a lost connection is then reconnected.
    pub(crate) established: bool,
    /// How long to try to reconnect (zero: never).
    pub(crate) reconnect: Duration,
    /// Between a lost connection and the hub accepting hello again.
    pub(crate) reconnecting: bool,
    /// `run` is over.
    pub(crate) finished: bool,
    /// How the last connection ended, for the log ("code 1006").
    pub(crate) lost: String,
    /// `call_async` futures waiting for the connection to be back.
    pub(crate) waiting: Vec<Waker>,
    /// The id of the hello waiting for its answer: the reader takes the hub's maximum
    /// message size from that answer before it reads the next frame.
    pub(crate) hello: Option<String>,
}

impl Ctl {
    pub(crate) fn new(reconnect: Duration) -> Ctl {
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
            hello: None,
        }
    }
}

/// The writing side of one connection.
pub(crate) struct Link {
    pub(crate) writer: ws::Writer<UnixStream>,
    /// Which connection this is: answers go out only on the one their request came in on.
    pub(crate) gen: u64,
    /// Calls, events and answers may be sent (false on a new connection until the hub
    /// accepts its hello).
    pub(crate) ready: bool,
    /// The hub accepted this connection's hello: `on` and `off` subscribe and unsubscribe by
    /// themselves (before, the hello carries what was registered, and what changes while it
    /// waits for its answer is made up after it).
    pub(crate) accepted: bool,
    /// Send msgpack (binary) frames: the hub agreed in its answer to hello.
    pub(crate) binary: bool,
}

/// Which messages a write may go out with.
pub(crate) enum Via {
    /// Calls, events, broadcasts: a connection whose hello was accepted.
    Ready,
    /// Hello, subscribe, unsubscribe: any connection.
    Any,
    /// An answer: only the connection the request came in on.
    Gen(u64),
}

pub(crate) struct Shared {
    pub(crate) plugin_id: String,
    pub(crate) writer: Mutex<Option<Link>>,
    pub(crate) links: AtomicU64,
    pub(crate) pending: Mutex<HashMap<String, Arc<Slot>>>,
    pub(crate) next_id: AtomicU64,
    pub(crate) subs: RwLock<Vec<(String, EventHandler)>>,
    pub(crate) ctl: Mutex<Ctl>,
    pub(crate) changed: Condvar,
    /// The hub's maximum message size, once it announced it in the answer to hello (0: not yet).
    pub(crate) limit: AtomicUsize,
    /// The plugin offers msgpack frames in hello (`Plugin::frames`, `LOGOMESH_FRAMES`).
    pub(crate) msgpack: AtomicBool,
}

impl Shared {
    pub(crate) fn next_id(&self) -> String {
        self.next_id.fetch_add(1, Ordering::Relaxed).to_string()
    }

    /// The largest message either way: the hub's, once announced, else the largest an
    /// operator may configure.
    pub(crate) fn max_bytes(&self) -> usize {
        match self.limit.load(Ordering::Relaxed) {
            0 => MAX_MESSAGE_BYTES,
            n => n,
        }
    }

    pub(crate) fn send(&self, msg: Value) -> Result<(), Error> {
        self.send_via(msg, Via::Ready)
    }

    /// Encode and send a message the plugin sends of its own accord: LM_INVALID_ARGUMENT when
    /// its data is nested too deep, LM_MESSAGE_TOO_LARGE when it is too large. It takes the
    /// message, so that one refused for its depth is taken apart without recursion.
    pub(crate) fn send_via(&self, msg: Value, via: Via) -> Result<(), Error> {
        let what = format!("the data of {}", msg.get("type").and_then(Value::as_str).unwrap_or("a message"));
        match encode(&msg, self.max_bytes()) {
            Ok(bytes) => self.send_bytes(&bytes, via),
            Err(e) => {
                drop_deep(msg);
                Err(encode_error(e, "LM_INVALID_ARGUMENT", &what))
            }
        }
    }

    /// Send an encoded message on the connection `via` allows.
    pub(crate) fn send_bytes(&self, bytes: &[u8], via: Via) -> Result<(), Error> {
        let sent = {
            let mut w = lock(&self.writer);
            match (w.as_mut(), via) {
                (Some(link), Via::Any) => Some(send_on(link, bytes)),
                (Some(link), Via::Ready) if link.ready => Some(send_on(link, bytes)),
                (Some(link), Via::Gen(gen)) if link.gen == gen => Some(send_on(link, bytes)),
                _ => None,
            }
        };
        match sent {
            Some(r) => r.map_err(|e| Error::disconnected(format!("sending to the hub failed: {e}"))),
            None if lock(&self.ctl).reconnecting => Err(Error::new("LM_PLUGIN_UNAVAILABLE", format!("{LOST}; reconnecting"))),
            None => Err(Error::disconnected("not connected to the hub")),
        }
    }

    /// Has the hub accepted the hello of the open connection?
    pub(crate) fn accepted(&self) -> bool {
        lock(&self.writer).as_ref().map_or(false, |l| l.accepted)
    }

    /// Drop `pattern`'s handlers after the hub refused to subscribe it: only `handler` when
    /// given (the `on` that was refused), else all of them.
    pub(crate) fn forget(&self, pattern: &str, handler: Option<&EventHandler>) {
        let mut subs = self.subs.write().unwrap_or_else(|e| e.into_inner());
        subs.retain(|(p, h)| p != pattern || handler.map_or(false, |mine| !Arc::ptr_eq(h, mine)));
    }
}

/// A message as a binary (msgpack) frame once the hub agreed, else (or when msgpack cannot
/// carry it exactly: an integer past 2^53) as a text frame; the hub takes both.
fn send_on(link: &mut Link, bytes: &[u8]) -> std::io::Result<()> {
    if link.binary {
        if let Some(mp) = crate::frames::json_to_msgpack(bytes) {
            return link.writer.send(ws::OP_BINARY, &mp);
        }
    }
    link.writer.send(ws::OP_TEXT, bytes)
}
