//! The connection to the hub: connecting, the WebSocket handshake, hello, subscribing
//! again, and reconnecting after a loss (docs/protocol.md, "reconnecting").

use crate::calls::Hub;
use crate::dispatch::Dispatch;
use crate::hub_tcp::{dial, Attempt, Endpoint};
use crate::options::{HELLO_TIMEOUT, RECONNECT_FIRST_DELAY, RECONNECT_MAX_DELAY};
use crate::pool::lock;
use crate::protocol::{MAX_MESSAGE_BYTES, PROTOCOL, VERSION};
use crate::shared::{Link, Shared, Slot, LOST};
use crate::shutdown::close;
use crate::{ws, Error};
use serde_json::{Map, Value};
use std::io::BufReader;
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};


impl Shared {
    /// The connection is gone (`how`: "code 1006"): fail every open call and wake `run`.
    /// An established connection lost while not stopping is reconnected: the calls fail
    /// with `LM_PLUGIN_UNAVAILABLE`, and calls made from now on wait for the connection.
    pub(crate) fn connection_closed(&self, how: String) {
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
}

pub(crate) fn is_lost(e: &Error) -> bool {
    e.code == "LM_PLUGIN_UNAVAILABLE" && e.message == LOST
}

/// One connection to the hub: its socket (shut down to end it) and its reader thread, which
/// hands the dispatcher back when the connection is over.
pub(crate) struct Connection {
    pub(crate) control: UnixStream,
    pub(crate) reader: Option<JoinHandle<Dispatch>>,
}

impl Connection {
    /// Wait for the reader thread (its connection is over or shut down) and take the
    /// dispatcher back, for the next connection.
    pub(crate) fn join(&mut self) -> Result<Dispatch, Error> {
        let _ = self.control.shutdown(Shutdown::Both);
        match self.reader.take().map(JoinHandle::join) {
            Some(Ok(d)) => Ok(d),
            _ => Err(Error::plugin_error("the reader thread panicked")),
        }
    }
}

pub(crate) enum Opened {
    /// The WebSocket handshake failed: the dispatcher comes back for another attempt.
    Refused(Error, Dispatch),
    Failed(Error),
}

/// The WebSocket handshake on a new stream (unless `upgraded`: a hub across nodes, whose
/// upgrade hub_tcp.rs made), then the reader thread. `first`: the first connection, usable
/// at once (a reconnection waits for the hub to accept its hello).
pub(crate) fn open(
    shared: &Arc<Shared>,
    stream: UnixStream,
    mut dispatch: Dispatch,
    patience: Option<Duration>,
    first: bool,
    upgraded: bool,
) -> Result<Connection, Opened> {
    let handshake = || -> std::io::Result<(BufReader<UnixStream>, UnixStream, UnixStream)> {
        stream.set_read_timeout(patience)?;
        let mut reader = BufReader::with_capacity(64 * 1024, stream.try_clone()?);
        let control = stream.try_clone()?;
        let mut raw = stream.try_clone()?;
        if !upgraded {
            ws::client_handshake(&mut reader, &mut raw, "logomesh", "/v1")?;
        }
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
        accepted: false,
        binary: false,
    });
    dispatch.gen = gen;
    // Until the hub announces its maximum message size, the largest an operator may configure
    // holds; a frame over that is not read at all.
    shared.limit.store(0, Ordering::Relaxed);
    let frames = ws::Reader::new(reader, MAX_MESSAGE_BYTES);
    let spawned = thread::Builder::new().name("logomesh-reader".into()).spawn(move || {
        dispatch.read_loop(frames);
        dispatch
    });
    match spawned {
        Ok(h) => Ok(Connection { control, reader: Some(h) }),
        Err(e) => Err(Opened::Failed(Error::plugin_error(format!("cannot start the reader thread: {e}")))),
    }
}

/// Say hello with the methods and, as its subscriptions, every pattern of the `on` handlers
/// (the hub subscribes them before it answers, so no event published once the plugin is
/// ready is missed), and wait for the answer. The patterns sent; a refusal (a method or a
/// topic the manifest does not declare, say) is the hub's error, which `run` returns (and a
/// plugin's `main` prints).
pub(crate) fn say_hello(shared: &Shared, names: &[String], timeout: Duration) -> Result<Vec<String>, Error> {
    let patterns = registered(shared);
    let mut hello = Map::new();
    hello.insert("type".into(), "hello".into());
    hello.insert("protocol".into(), PROTOCOL.into());
    hello.insert("sdk".into(), format!("rust/{VERSION}").into());
    hello.insert(
        "methods".into(),
        names.iter().map(|n| Value::String(n.clone())).collect::<Vec<_>>().into(),
    );
    hello.insert(
        "subscriptions".into(),
        patterns.iter().map(|p| Value::String(p.clone())).collect::<Vec<_>>().into(),
    );
    if shared.msgpack.load(Ordering::Relaxed) {
        // The hub may send binary frames right behind its answer: the reader takes them from now on.
        hello.insert("encodings".into(), serde_json::json!([crate::frames::FRAMES_MSGPACK, "json"]));
    }
    let id = shared.next_id();
    hello.insert("id".into(), id.clone().into());
    lock(&shared.ctl).hello = Some(id);
    shared.exchange(hello, timeout).map(|_| patterns)
}

/// Is this hello's failure the hub's answer (rather than no answer, or a lost connection)?
pub(crate) fn refused(e: &Error) -> bool {
    !(is_lost(e) || e.code == "LM_TIMEOUT" || e.code == "LM_CONTROLLER_UNAVAILABLE")
}

/// Every distinct pattern of the `on` handlers, in the order registered.
fn registered(shared: &Shared) -> Vec<String> {
    let subs = shared.subs.read().unwrap_or_else(|e| e.into_inner());
    let mut patterns: Vec<String> = Vec::new();
    for (p, _) in subs.iter() {
        if !patterns.contains(p) {
            patterns.push(p.clone());
        }
    }
    patterns
}

/// The hub accepted a hello that subscribed `sent` (and the reader marked the connection
/// accepted as it read the answer, so `on` and `off` act by themselves from then on): a
/// pattern registered while the hello waited for its answer is subscribed now, and one
/// removed meanwhile unsubscribed. An `on` that did not see the mark is among these.
pub(crate) fn subscribe_rest(shared: &Arc<Shared>, sent: &[String]) {
    let now = registered(shared);
    let hub = Hub {
        shared: Arc::clone(shared),
    };
    let changes = now
        .iter()
        .filter(|p| !sent.contains(p))
        .map(|p| ("subscribe", p))
        .chain(sent.iter().filter(|p| !now.contains(p)).map(|p| ("unsubscribe", p)));
    for (kind, p) in changes {
        if let Err(e) = hub.subscribe(kind, p) {
            if !is_lost(&e) {
                eprintln!("logomesh: {kind} '{p}' failed: {e}");
            }
            // A pattern the hub refuses is dropped, or the next hello would name it.
            if kind == "subscribe" && refused(&e) {
                shared.forget(p, None);
            }
        }
    }
}

/// Connect again after the connection was lost: with backoff, for up to `window`, saying
/// hello with the same methods and every pattern. The new connection; `None` when
/// stopped meanwhile; an error when the window passes or the hub refuses the hello.
pub(crate) fn reconnect(
    shared: &Arc<Shared>,
    names: &[String],
    path: &Endpoint,
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
        match attempt(&shared.plugin_id, path, patience) {
            Err(Err(fatal)) => return Err(fatal),
            Err(Ok(e)) => last = e,
            Ok((stream, upgraded)) => match open(shared, stream, dispatch.take().expect("the dispatcher"), Some(patience), false, upgraded) {
                Err(Opened::Refused(e, d)) => {
                    dispatch = Some(d);
                    last = e.message;
                }
                Err(Opened::Failed(e)) => return Err(e),
                Ok(mut conn) => match say_hello(shared, names, HELLO_TIMEOUT.min(patience)) {
                    Ok(sent) => {
                        if let Some(link) = lock(&shared.writer).as_mut() {
                            link.ready = true;
                        }
                        subscribe_rest(shared, &sent);
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
                        if refused(&e) {
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
                path.describe()
            )));
        }
    }
}

/// One connection attempt to wherever the hub is: the stream, and whether its upgrade is made
/// already (a hub across nodes). Err(Ok(why)) is worth another try; Err(Err(e)) is not.
fn attempt(plugin_id: &str, endpoint: &Endpoint, patience: Duration) -> Result<(UnixStream, bool), Result<String, Error>> {
    match endpoint {
        Endpoint::Unix(path) => UnixStream::connect(path).map(|s| (s, false)).map_err(|e| Ok(e.to_string())),
        Endpoint::Tcp { host, port, resource, .. } => match dial(host, *port, resource, plugin_id, patience) {
            Ok(s) => Ok((s, true)),
            Err(Attempt::Refused(status, code)) => Err(Ok(note_refusal(plugin_id, status, &code))),
            Err(Attempt::Io(e)) => Err(Ok(e.to_string())),
            Err(Attempt::Fatal(e)) => Err(Err(e)),
        },
    }
}

/// Say once on stderr why the hub refused the connection: its code, never the key or the header.
fn note_refusal(plugin_id: &str, status: u16, code: &str) -> String {
    static LAST: Mutex<String> = Mutex::new(String::new());
    let why = format!("{code} ({status})");
    let mut last = lock(&LAST);
    if *last != why {
        eprintln!("logomesh: plugin {plugin_id}: the hub refused the connection: {why}; trying again");
        *last = why.clone();
    }
    why
}

/// The first connection. A Unix socket may appear a moment after the container starts; a hub
/// across nodes is waited for as long as a reconnection (it may be moving), and its 401 (it
/// does not know the plugin yet, or its key was rotated) is tried again with backoff.
pub(crate) fn connect(plugin_id: &str, endpoint: &Endpoint, patience: Duration, window: Duration) -> Result<(UnixStream, bool), Error> {
    let path = match endpoint {
        Endpoint::Unix(path) => path,
        Endpoint::Tcp { .. } => {
            let until = Instant::now() + patience.max(window);
            let mut delay = RECONNECT_FIRST_DELAY;
            loop {
                match attempt(plugin_id, endpoint, patience) {
                    Ok(opened) => return Ok(opened),
                    Err(Err(fatal)) => return Err(fatal),
                    Err(Ok(why)) if Instant::now() + delay >= until => {
                        return Err(Error::disconnected(format!("cannot connect to the hub at {}: {why}", endpoint.describe())))
                    }
                    Err(Ok(_)) => thread::sleep(delay),
                }
                delay = (delay * 2).min(RECONNECT_MAX_DELAY);
            }
        }
    };
    // The socket may appear a moment after the container starts.
    let until = Instant::now() + patience;
    loop {
        match UnixStream::connect(path) {
            Ok(s) => return Ok((s, false)),
            Err(e)
                if Instant::now() < until && matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused) =>
            {
                thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(Error::disconnected(format!("cannot connect to the hub at {}: {e}", path.display()))),
        }
    }
}
