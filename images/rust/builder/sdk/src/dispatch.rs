//! Inbound messages: the reader thread decodes every frame within the protocol's limits
//! and routes it to a waiting call, a method (on a worker thread or the executor) or the
//! event handlers (on the event thread). Whatever a handler returns or panics with, its
//! caller gets an answer with a code, and the plugin goes on.

use crate::exec::{self, spawn, CatchUnwind};
use crate::options::DEFAULT_GRACE;
use crate::plugin::Handler;
use crate::pool::{lock, Pool};
use crate::protocol::{decode, drop_deep, encode, encode_error, topic_matches, Refusal, ID_MAX_LENGTH, MAX_MESSAGE_BYTES};
use crate::shared::{Shared, Via};
use crate::{ws, Error};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::io::BufReader;
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;


/// An event or broadcast delivered to an [`Plugin::on`](crate::Plugin::on) handler.
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

pub(crate) type EventHandler = Arc<dyn Fn(Event) + Send + Sync + 'static>;

/// An error message in an answer is cut to this many bytes when the whole would not fit.
const MESSAGE_CUT: usize = 1024;

impl Shared {
    /// Answer a request that came in on connection `gen` (dropped if that one is gone). A
    /// result that cannot be sent (too deep, too large) is answered with LM_PLUGIN_ERROR or
    /// LM_MESSAGE_TOO_LARGE instead; an error's details that cannot be sent are left out,
    /// and a message too long is cut, so the caller always gets a code.
    pub(crate) fn respond(&self, gen: u64, correlation_id: &str, method: &str, result: Result<Value, Error>) {
        let open = lock(&self.writer).as_ref().map_or(false, |l| l.gen == gen);
        if !open {
            return; // the hub that sent the request is gone: the answer cannot be delivered
        }
        let max = self.max_bytes();
        let frame = |success: bool, field: &str, value: Value| {
            let mut m = Map::new();
            m.insert("type".into(), "response".into());
            m.insert("id".into(), self.next_id().into());
            m.insert("correlationId".into(), correlation_id.into());
            m.insert("success".into(), success.into());
            m.insert(field.into(), value);
            let msg = Value::Object(m);
            let encoded = encode(&msg, max);
            if encoded.is_err() {
                drop_deep(msg);
            }
            encoded
        };
        let error = match result {
            Ok(data) => match frame(true, "data", data) {
                Ok(bytes) => return self.answer(gen, correlation_id, &bytes),
                Err(e) => encode_error(e, "LM_PLUGIN_ERROR", &format!("the result of method {method}")),
            },
            Err(e) => e,
        };
        let (code, message) = (error.code.clone(), error.message.clone());
        let bytes = frame(false, "error", error.into_json())
            .or_else(|_| frame(false, "error", json!({ "code": code, "message": message })))
            .or_else(|_| {
                let cut: String = message.chars().take(MESSAGE_CUT).collect();
                let code = if code.len() <= 64 { code.as_str() } else { "LM_PLUGIN_ERROR" };
                frame(false, "error", json!({ "code": code, "message": cut }))
            });
        match bytes {
            Ok(bytes) => self.answer(gen, correlation_id, &bytes),
            Err(e) => eprintln!("logomesh: could not answer request {correlation_id}: {}", e.reason),
        }
    }

    fn answer(&self, gen: u64, correlation_id: &str, bytes: &[u8]) {
        if let Err(e) = self.send_bytes(bytes, Via::Gen(gen)) {
            if !lock(&self.ctl).closed {
                eprintln!("logomesh: could not answer request {correlation_id}: {e}");
            }
        }
    }
}

/// The reader thread's state: it reads every frame and routes it.
pub(crate) struct Dispatch {
    pub(crate) shared: Arc<Shared>,
    pub(crate) methods: HashMap<String, Handler>,
    pub(crate) pool: Pool,
    pub(crate) events: Option<mpsc::Sender<Event>>,
    /// The connection being read.
    pub(crate) gen: u64,
}

impl Dispatch {
    /// Whether a lost connection is only worth its own log line: not when the SDK
    /// reconnects (that logs one line) or is stopping.
    pub(crate) fn report_loss(&self) -> bool {
        let c = lock(&self.shared.ctl);
        !c.stopping && !c.reconnecting && (c.reconnect.is_zero() || !c.established)
    }

    pub(crate) fn read_loop(&mut self, mut frames: ws::Reader<BufReader<UnixStream>>) {
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
                    if e.kind() == std::io::ErrorKind::InvalidData {
                        // The hub broke the framing, or sent a frame over the largest message
                        // size: say why on the way out (1009: too big; 1002: a protocol error).
                        let code = if e.to_string().contains("larger than") { 1009 } else { 1002 };
                        if let Some(mut link) = lock(&self.shared.writer).take() {
                            let _ = link.writer.close(code, "");
                        }
                    }
                    break;
                }
            }
        }
        let _ = frames.get_ref().get_ref().shutdown(Shutdown::Both);
        self.shared.connection_closed(how);
    }

    pub(crate) fn on_text(&mut self, text: &str) {
        let mut msg: Value = match decode(text, self.shared.max_bytes()) {
            Ok(v) => v,
            Err(refused) => return self.refuse(refused),
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

    /// A frame too large, too deep or not JSON: its request is answered with the code, the
    /// call waiting for it fails with it, anything else is dropped (and logged).
    fn refuse(&self, r: Refusal) {
        let kind = r.fields.kind.as_deref().unwrap_or("");
        if let (true, Some(id)) = (kind == "request", r.fields.id.as_deref()) {
            if !id.is_empty() && id.len() <= ID_MAX_LENGTH {
                eprintln!("logomesh: refused request {id} from the hub: {}", r.message);
                return self.shared.respond(self.gen, id, "", Err(Error::new(r.code, r.message)));
            }
        }
        if kind == "response" || kind == "error" {
            let slot = r.fields.correlation_id.as_deref().and_then(|id| lock(&self.shared.pending).remove(id));
            if let Some(slot) = slot {
                return slot.complete(Err(Error::new(r.code, format!("the answer was refused: {}", r.message))));
            }
        }
        eprintln!("logomesh: dropped a frame from the hub (type {kind:?}, {}): {}", r.code, r.message);
    }

    pub(crate) fn on_response(&self, msg: &mut Value) {
        let slot = msg
            .get("correlationId")
            .and_then(Value::as_str)
            .and_then(|id| lock(&self.shared.pending).remove(id));
        let success = msg.get("success").and_then(Value::as_bool).unwrap_or(false);
        if success {
            self.hello_accepted(msg);
        }
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

    /// The answer to hello (when `msg` is it): keep the hub's maximum message size, if it
    /// says one, and mark the connection accepted, before the next frame is read. So a
    /// request served after hello sees it: an `on` in its handler subscribes at once.
    fn hello_accepted(&self, msg: &Value) {
        {
            let mut c = lock(&self.shared.ctl);
            if c.hello.is_none() || c.hello.as_deref() != msg.get("correlationId").and_then(Value::as_str) {
                return;
            }
            c.hello = None;
        }
        if let Some(n) = msg.pointer("/data/maxMessageBytes").and_then(Value::as_u64) {
            if n > 0 && n as usize <= MAX_MESSAGE_BYTES {
                self.shared.limit.store(n as usize, Ordering::Relaxed);
            }
        }
        if let Some(link) = lock(&self.shared.writer).as_mut() {
            if link.gen == self.gen {
                link.accepted = true;
            }
        }
    }

    pub(crate) fn on_request(&self, msg: &mut Value) {
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
                return self.shared.respond(self.gen, &id, &method, Err(e));
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
                return self.shared.respond(self.gen, &id, &method, Err(e));
            }
            c.inflight += 1;
        }
        let shared = Arc::clone(&self.shared);
        let gen = self.gen;
        match handler {
            Handler::Sync(h) => self.pool.submit(Box::new(move || {
                let result = catch_unwind(AssertUnwindSafe(|| h(data))).unwrap_or_else(|p| Err(panicked(&method, &*p)));
                shared.respond(gen, &id, &method, result);
                shared.finish_request();
            })),
            Handler::Async(h) => spawn(async move {
                let result = match CatchUnwind(Box::pin(async move { h(data).await })).await {
                    Ok(r) => r,
                    Err(p) => Err(Error::plugin_error(format!("method {method} panicked: {p}"))),
                };
                shared.respond(gen, &id, &method, result);
                shared.finish_request();
            }),
        }
    }

    pub(crate) fn on_event(&mut self, msg: &mut Value, broadcast: bool) {
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

pub(crate) fn deliver(shared: &Shared, event: Event) {
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

pub(crate) fn panicked(method: &str, p: &(dyn std::any::Any + Send)) -> Error {
    Error::plugin_error(format!("method {method} panicked: {}", exec::panic_message(p)))
}
