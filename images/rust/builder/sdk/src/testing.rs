//! Test a plugin without LogoMesh: a fake hub that speaks the hub's side of the protocol
//! on a Unix socket in a temporary folder.
//!
//! [`Harness`] is the quick way: it runs a [`Plugin`] against a [`FakeHub`], answers its
//! hello, and lets a test call its methods.
//!
//! ```no_run
//! use logomesh::{json, testing::Harness, Plugin, Value};
//!
//! let mut plugin = Plugin::new();
//! plugin.method("double", |v: Value| Ok(json!(v.as_i64().unwrap_or(0) * 2)));
//! let mut h = Harness::start(plugin).unwrap();
//! assert_eq!(h.call("double", json!(21)).unwrap(), json!(42));
//! h.stop().unwrap();
//! ```
//!
//! [`FakeHub`] and [`HubPeer`] give full control of the wire (raw frames, pings, the
//! order of messages) for testing the SDK itself. [`run_transcript`] plays the protocol's
//! conformance session ([`load_transcript`]) against a plugin, and [`HubPeer::replay`]
//! does it on a connection of your own.

use crate::ws::{self, Message};
use crate::{Error, Plugin, Value};
use serde_json::json;
use std::collections::VecDeque;
use std::io::{self, BufReader};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

pub use crate::ws::{Message as Frame, OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT};
pub use transcript::{load_protocol, load_transcript, protocol_dir, run_transcript};

mod transcript;

/// How long the helpers wait for the plugin by default.
pub const WAIT: Duration = Duration::from_secs(10);

/// A listening Unix socket in a fresh temporary folder, removed on drop.
pub struct FakeHub {
    listener: Option<UnixListener>,
    dir: PathBuf,
    path: PathBuf,
}

impl FakeHub {
    pub fn new() -> io::Result<FakeHub> {
        let dir = std::env::temp_dir().join(format!("logomesh-fake-hub-{}-{:016x}", std::process::id(), ws::random_u64()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("hub.sock");
        let listener = UnixListener::bind(&path)?;
        Ok(FakeHub {
            listener: Some(listener),
            dir,
            path,
        })
    }

    /// Stop listening, as a controller killed with `kill -9`: the socket file stays behind
    /// and refuses connections until [`restart`](FakeHub::restart). (Drop the connection
    /// too, with [`HubPeer::drop_connection`].)
    pub fn crash(&mut self) {
        self.listener = None;
    }

    /// Listen again at the same path, replacing the stale socket file, as a restarted
    /// controller does; the plugin's new connection comes from [`accept`](FakeHub::accept).
    pub fn restart(&mut self) -> io::Result<()> {
        let _ = std::fs::remove_file(&self.path);
        self.listener = Some(UnixListener::bind(&self.path)?);
        Ok(())
    }

    /// The socket path to give the plugin ([`Plugin::socket_path`] or `LOGOMESH_HUB_SOCKET`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accept the plugin's connection and complete the WebSocket handshake.
    pub fn accept(&self, timeout: Duration) -> io::Result<HubPeer> {
        let listener = self
            .listener
            .as_ref()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "the fake hub is not listening (crashed)"))?;
        listener.set_nonblocking(true)?;
        let until = Instant::now() + timeout;
        let stream = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < until => thread::sleep(Duration::from_millis(2)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "no plugin connected"))
                }
                Err(e) => return Err(e),
            }
        };
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(timeout))?;
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut raw = stream.try_clone()?;
        let request_line = ws::server_handshake(&mut reader, &mut raw)?;
        Ok(HubPeer {
            reader: ws::Reader::new(reader, 64 << 20),
            writer: ws::Writer::new(raw, false),
            stream,
            request_line,
            next: 0,
            backlog: VecDeque::new(),
            auto_subscribe: true,
            subscribes: None,
            subscriptions: Vec::new(),
            pongs: Vec::new(),
        })
    }
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The hub's end of one plugin connection.
pub struct HubPeer {
    reader: ws::Reader<BufReader<UnixStream>>,
    writer: ws::Writer<UnixStream>,
    stream: UnixStream,
    /// The HTTP request line of the upgrade (`GET /v1 HTTP/1.1`).
    pub request_line: String,
    next: u64,
    /// JSON messages read while looking for another one, in arrival order.
    pub backlog: VecDeque<Value>,
    /// Answer `subscribe` and `unsubscribe` by itself (on by default).
    pub auto_subscribe: bool,
    /// The manifest's `coordination.subscribes`: when set, a hello
    /// ([`accept_hello`](HubPeer::accept_hello)) or a `subscribe` asking for a pattern none
    /// of these covers is refused with `LM_PERMISSION_DENIED`, as the hub does. `None`
    /// (the default): anything is allowed.
    pub subscribes: Option<Vec<String>>,
    /// The topics the plugin is subscribed to, as seen by this peer: its hello's
    /// subscriptions, then its `subscribe` and `unsubscribe` messages.
    pub subscriptions: Vec<String>,
    /// Payloads of the pongs received.
    pub pongs: Vec<Vec<u8>>,
}

impl HubPeer {
    fn next_id(&mut self) -> String {
        self.next += 1;
        format!("hub-{}", self.next)
    }

    /// The next frame of any kind, waiting at most `timeout`.
    pub fn recv_frame(&mut self, timeout: Duration) -> io::Result<Message> {
        self.stream.set_read_timeout(Some(timeout.max(Duration::from_millis(1))))?;
        self.reader.next_message()
    }

    /// The next JSON message (from the backlog first). Pongs are skipped, and so are
    /// subscriptions while [`auto_subscribe`](HubPeer::auto_subscribe) is on; a close or a
    /// non-JSON frame is an error.
    pub fn recv(&mut self, timeout: Duration) -> io::Result<Value> {
        self.recv_where(timeout, |_| true)
    }

    /// Read frames until one JSON message that is not handled here arrives.
    fn next_json(&mut self, until: Instant) -> io::Result<Value> {
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "the expected message did not arrive"));
            }
            match self.recv_frame(left)? {
                Message::Text(t) => {
                    let v: Value = serde_json::from_str(&t).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                    if self.answer_topic(&v)? {
                        continue;
                    }
                    return Ok(v);
                }
                Message::Pong(p) => self.pongs.push(p),
                other => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("expected a text frame, got {other:?}"),
                    ))
                }
            }
        }
    }

    /// Answer a subscribe or unsubscribe as the hub does, while
    /// [`auto_subscribe`](HubPeer::auto_subscribe) is on. Was it one?
    fn answer_topic(&mut self, v: &Value) -> io::Result<bool> {
        let kind = v["type"].as_str().unwrap_or("");
        if !self.auto_subscribe || (kind != "subscribe" && kind != "unsubscribe") {
            return Ok(false);
        }
        let topic = v["topic"].as_str().unwrap_or("").to_string();
        if kind == "subscribe" {
            if let Some(why) = self.refusal(&topic) {
                self.respond(&v["id"], Err(Error::new("LM_PERMISSION_DENIED", why)))?;
                return Ok(true);
            }
            self.subscriptions.push(topic.clone());
        } else {
            self.subscriptions.retain(|t| *t != topic);
        }
        self.respond(&v["id"], Ok(json!({ "topic": topic })))?;
        Ok(true)
    }

    /// The first message matching `pred`; the others read meanwhile go to the backlog.
    pub fn recv_where(&mut self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> io::Result<Value> {
        if let Some(i) = self.backlog.iter().position(&pred) {
            return Ok(self.backlog.remove(i).unwrap_or(Value::Null));
        }
        let until = Instant::now() + timeout;
        loop {
            let v = self.next_json(until)?;
            if pred(&v) {
                return Ok(v);
            }
            self.backlog.push_back(v);
        }
    }

    /// The next message of a `type` (`hello`, `request`, `event`, ...).
    pub fn recv_type(&mut self, kind: &str, timeout: Duration) -> io::Result<Value> {
        self.recv_where(timeout, |v| v["type"] == kind)
    }

    pub fn send(&mut self, msg: &Value) -> io::Result<()> {
        self.writer.send(OP_TEXT, msg.to_string().as_bytes())
    }

    /// Write one raw frame (for fragmentation, pings, binary frames).
    pub fn send_frame(&mut self, fin: bool, opcode: u8, payload: &[u8]) -> io::Result<()> {
        self.writer.send_frame(fin, opcode, payload)
    }

    /// Read the plugin's hello and answer it as the hub does: accepted, its subscriptions
    /// subscribed before the answer; refused with `LM_PERMISSION_DENIED` when
    /// [`subscribes`](HubPeer::subscribes) does not cover one of them. Returns the hello.
    pub fn accept_hello(&mut self, timeout: Duration) -> io::Result<Value> {
        let hello = self.recv_type("hello", timeout)?;
        let asked: Vec<String> = match hello["subscriptions"].as_array() {
            Some(list) => list.iter().filter_map(Value::as_str).map(str::to_string).collect(),
            None => Vec::new(),
        };
        let refused: Vec<String> = asked.iter().filter_map(|t| self.refusal(t)).collect();
        if !refused.is_empty() {
            self.respond(&hello["id"], Err(Error::new("LM_PERMISSION_DENIED", refused.join("; "))))?;
            return Ok(hello);
        }
        for t in asked {
            if !self.subscriptions.contains(&t) {
                self.subscriptions.push(t);
            }
        }
        let id = self.next_id();
        self.send(&json!({ "type": "response", "id": id, "correlationId": hello["id"], "success": true, "data": { "plugin": "plugin", "protocol": 1 } }))?;
        Ok(hello)
    }

    /// Why the hub would refuse a subscription to `topic` under
    /// [`subscribes`](HubPeer::subscribes) (`None`: it would not).
    fn refusal(&self, topic: &str) -> Option<String> {
        let declared = self.subscribes.as_ref()?;
        if declared.iter().any(|d| covers(d, topic)) {
            return None;
        }
        let listed = if declared.is_empty() { "none".to_string() } else { declared.join(", ") };
        Some(format!(
            "plugin plugin may not subscribe to '{topic}': no pattern under coordination.subscribes covers it (listed: {listed})"
        ))
    }

    /// Send a request for `method` as if `from` called it; returns the request id.
    pub fn request(&mut self, method: &str, data: Value, from: &str) -> io::Result<String> {
        let id = self.next_id();
        self.send(
            &json!({ "type": "request", "id": id, "from": from, "to": ["plugin"], "method": method, "data": data, "timeout": 30000 }),
        )?;
        Ok(id)
    }

    /// Wait for the response to request `id`: `Ok(data)` or the coded error.
    pub fn response_to(&mut self, id: &str, timeout: Duration) -> io::Result<Result<Value, Error>> {
        let r = self.recv_where(timeout, |v| v["type"] == "response" && v["correlationId"] == id)?;
        Ok(if r["success"] == true {
            Ok(r.get("data").cloned().unwrap_or(Value::Null))
        } else {
            Err(Error::from_json(&r["error"]))
        })
    }

    /// Request `method` and wait for its response.
    pub fn call(&mut self, method: &str, data: Value, timeout: Duration) -> io::Result<Result<Value, Error>> {
        let id = self.request(method, data, "host")?;
        self.response_to(&id, timeout)
    }

    /// Answer a request the plugin made.
    pub fn respond(&mut self, correlation_id: &Value, result: Result<Value, Error>) -> io::Result<()> {
        let id = self.next_id();
        let msg = match result {
            Ok(data) => json!({ "type": "response", "id": id, "correlationId": correlation_id, "success": true, "data": data }),
            Err(e) => json!({ "type": "response", "id": id, "correlationId": correlation_id, "success": false, "error": e.to_json() }),
        };
        self.send(&msg)
    }

    /// Deliver an event or broadcast to the plugin.
    pub fn deliver(&mut self, kind: &str, topic: Option<&str>, data: Value, from: &str) -> io::Result<()> {
        let id = self.next_id();
        let mut msg = json!({ "type": kind, "id": id, "from": from, "data": data });
        if let Some(t) = topic {
            msg["topic"] = t.into();
        }
        self.send(&msg)
    }

    /// Send `shutdown` with a grace period.
    pub fn shutdown(&mut self, grace_ms: u64) -> io::Result<()> {
        let id = self.next_id();
        self.send(&json!({ "type": "shutdown", "id": id, "data": { "graceMs": grace_ms } }))
    }

    /// Read until the plugin's close frame (JSON messages go to the backlog), answer it,
    /// and return its status code.
    pub fn expect_close(&mut self, timeout: Duration) -> io::Result<Option<u16>> {
        let until = Instant::now() + timeout;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.recv_frame(left)? {
                Message::Close(code, _) => {
                    let _ = self.writer.close(code.unwrap_or(1000), "");
                    return Ok(code);
                }
                Message::Text(t) => {
                    // A plugin may still subscribe while it closes; the hub answers that too.
                    if let Ok(v) = serde_json::from_str::<Value>(&t) {
                        if !self.answer_topic(&v)? {
                            self.backlog.push_back(v);
                        }
                    }
                }
                Message::Pong(p) => self.pongs.push(p),
                _ => {}
            }
        }
    }

    /// Close the connection from the hub's side without a close frame.
    pub fn drop_connection(&self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

/// A plugin running on a thread against its own [`FakeHub`], hello already done.
pub struct Harness {
    /// The fake hub (to [`crash`](FakeHub::crash), [`restart`](FakeHub::restart) and
    /// [`accept`](FakeHub::accept) the plugin's next connection).
    pub hub: FakeHub,
    /// The hub's end of the connection, for anything the helpers don't cover.
    pub peer: HubPeer,
    /// The plugin's hello message.
    pub hello: Value,
    thread: Option<JoinHandle<Result<(), Error>>>,
}

impl Harness {
    /// Start `plugin.run()` on a thread and complete the hello.
    pub fn start(mut plugin: Plugin) -> io::Result<Harness> {
        let hub = FakeHub::new()?;
        plugin.socket_path(hub.path());
        let thread = thread::Builder::new()
            .name("logomesh-plugin-under-test".into())
            .spawn(move || plugin.run())?;
        let mut peer = hub.accept(WAIT)?;
        let hello = peer.accept_hello(WAIT)?;
        Ok(Harness {
            hub,
            peer,
            hello,
            thread: Some(thread),
        })
    }

    /// Call one of the plugin's methods as the host would.
    pub fn call(&mut self, method: &str, data: Value) -> Result<Value, Error> {
        self.peer
            .call(method, data, WAIT)
            .unwrap_or_else(|e| Err(Error::disconnected(format!("the fake hub lost the plugin: {e}"))))
    }

    /// Accept the plugin's next connection (after a lost one) and its hello; it becomes
    /// [`peer`](Harness::peer).
    pub fn reaccept(&mut self) -> io::Result<Value> {
        self.peer = self.hub.accept(WAIT)?;
        self.hello = self.peer.accept_hello(WAIT)?;
        Ok(self.hello.clone())
    }

    /// Wait for `run` to return by itself (after a refused hello, or no hub within the
    /// reconnect window, say).
    pub fn wait(mut self) -> Result<(), Error> {
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(Error::plugin_error("run() panicked")),
            None => Ok(()),
        }
    }

    /// Send `shutdown`, expect a close with status 1000, and return what `run` returned.
    pub fn stop(mut self) -> Result<(), Error> {
        let io = |e: io::Error| Error::disconnected(format!("the fake hub lost the plugin: {e}"));
        self.peer.shutdown(5000).map_err(io)?;
        let code = self.peer.expect_close(WAIT).map_err(io)?;
        if code != Some(1000) {
            return Err(Error::plugin_error(format!("the plugin closed with status {code:?}, not 1000")));
        }
        self.wait()
    }
}

/// Does a pattern declared in a manifest cover `target` (a topic or a pattern) whole, as the
/// hub checks a subscription? `a.*` covers `a.b` and `a.b.*`; only `*` covers `*`.
pub fn covers(declared: &str, target: &str) -> bool {
    if declared == "*" {
        return true;
    }
    if target == "*" {
        return false;
    }
    match declared.strip_suffix('*') {
        Some(prefix) if declared.ends_with(".*") => target.starts_with(prefix),
        _ => declared == target,
    }
}
