//! The [`Plugin`]: its methods and event handlers, its options, and [`Plugin::run`].

use crate::calls::Hub;
use crate::connection::{connect, open, Opened};
use crate::dispatch::{Dispatch, Event};
use crate::exec::BoxFuture;
use crate::hub_tcp::Endpoint;
use crate::options::{reconnect_from_env, DEFAULT_CONNECT_TIMEOUT, DEFAULT_GRACE, DEFAULT_MAX_CONCURRENCY, DEFAULT_RECONNECT};
use crate::pool::{lock, Pool};
use crate::protocol::valid_method;
use crate::shared::{Ctl, Shared};
use crate::shutdown::serve;
use crate::{signals, Error};
use serde_json::Value;
use std::collections::HashMap;
use std::future::Future;
use std::net::Shutdown;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::Duration;


pub(crate) type SyncHandler = Arc<dyn Fn(Value) -> Result<Value, Error> + Send + Sync + 'static>;
pub(crate) type AsyncHandler = Arc<dyn Fn(Value) -> BoxFuture<Result<Value, Error>> + Send + Sync + 'static>;

#[derive(Clone)]
pub(crate) enum Handler {
    Sync(SyncHandler),
    Async(AsyncHandler),
}

/// A plugin: its methods and event handlers, and [`run`](Plugin::run) to serve them.
pub struct Plugin {
    pub(crate) shared: Arc<Shared>,
    pub(crate) methods: HashMap<String, Handler>,
    pub(crate) problems: Vec<String>,
    pub(crate) socket: Option<PathBuf>,
    pub(crate) hub_url: Option<String>,
    pub(crate) grace: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) reconnect: Option<Duration>,
    pub(crate) max_concurrency: usize,
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
                limit: AtomicUsize::new(0),
                msgpack: AtomicBool::new(crate::frames::msgpack_from_env()),
            }),
            methods: HashMap::new(),
            problems: Vec::new(),
            socket: None,
            hub_url: None,
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
    /// executor thread, where awaiting (a [`Hub::call_async`], a [`sleep`](crate::sleep)) lets other
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

    pub(crate) fn add(&mut self, name: &str, handler: Handler) -> &mut Self {
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
    /// in arrival order, on the SDK's event thread. The patterns go in hello's
    /// subscriptions, so each must be covered by the manifest's `coordination.subscribes`
    /// (or the hub refuses the hello, and `run` returns `LM_PERMISSION_DENIED`).
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

    /// See [`Hub::emit_acked`].
    pub fn emit_acked(&self, topic: &str, data: Value) -> Result<(), Error> {
        self.hub().emit_acked(topic, data)
    }

    /// See [`Hub::broadcast_acked`].
    pub fn broadcast_acked(&self, topic: &str, data: Value) -> Result<(), Error> {
        self.hub().broadcast_acked(topic, data)
    }

    /// Connect to this socket instead of `LOGOMESH_HUB_SOCKET` (for tests).
    pub fn socket_path(&mut self, path: impl Into<PathBuf>) -> &mut Self {
        self.socket = Some(path.into());
        self
    }

    /// Connect to a hub across nodes, `ws://host:port/v1`, instead of `LOGOMESH_HUB_URL`; each
    /// connection proves the plugin's identity with an HMAC of its key, the file
    /// `LOGOMESH_HUB_CREDENTIAL` names (docs/kubernetes.md).
    pub fn hub_url(&mut self, url: impl Into<String>) -> &mut Self {
        self.hub_url = Some(url.into());
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

    /// The frame encoding offered in hello: `"msgpack"` or `"json"` (default:
    /// `LOGOMESH_FRAMES`, else JSON). The hub decides: it answers hello with the encoding
    /// both speak, and JSON stays where it does not agree.
    pub fn frames(&mut self, encoding: &str) -> &mut Self {
        self.shared.msgpack.store(encoding == crate::frames::FRAMES_MSGPACK, Ordering::Relaxed);
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
        // A socket given here wins; then a hub across nodes (LOGOMESH_HUB_URL), then the plugin's own socket.
        let hub_url = std::env::var("LOGOMESH_HUB_URL").ok().filter(|u| !u.is_empty());
        let path = match (self.socket.clone(), self.hub_url.clone().or(hub_url)) {
            (Some(p), _) => Endpoint::Unix(p),
            (None, Some(url)) => Endpoint::tcp(&url)?,
            (None, None) => match std::env::var_os("LOGOMESH_HUB_SOCKET") {
                Some(p) => Endpoint::Unix(PathBuf::from(p)),
                None => {
                    return Err(Error::disconnected(
                        "LOGOMESH_HUB_SOCKET is not set: start this plugin with logomesh",
                    ))
                }
            },
        };
        let reconnect = self.reconnect.unwrap_or_else(reconnect_from_env);
        let (stream, upgraded) = connect(&self.shared.plugin_id, &path, self.connect_timeout, reconnect)?;
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
        let mut conn = match open(&shared, stream, dispatch, None, true, upgraded) {
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

/// Read a method's arguments into a type of your own (`#[derive(Deserialize)]`); a
/// mismatch is `LM_INVALID_ARGUMENT` naming what was wrong.
pub fn from_args<T: serde::de::DeserializeOwned>(args: Value) -> Result<T, Error> {
    serde_json::from_value(args).map_err(|e| Error::invalid_argument(format!("invalid arguments: {e}")))
}

/// Turn a result of your own type (`#[derive(Serialize)]`) into the JSON value a method
/// returns. A NaN or infinite number in it is `LM_PLUGIN_ERROR` naming where it is, as in
/// the other SDKs (serde_json would write it as `null` without a word).
pub fn to_result<T: serde::Serialize>(value: T) -> Result<Value, Error> {
    crate::finite::check_finite(&value).map_err(|e| Error::plugin_error(format!("cannot encode the result: {e}")))?;
    serde_json::to_value(value).map_err(|e| Error::plugin_error(format!("cannot encode the result: {e}")))
}

/// Turn call arguments or event data of your own type into JSON for `call`, `emit` and
/// `broadcast`. A NaN or infinite number in it is `LM_INVALID_ARGUMENT` naming where it is
/// (`json!` cannot tell you: it writes such a number as `null`).
pub fn to_args<T: serde::Serialize>(value: T) -> Result<Value, Error> {
    crate::finite::check_finite(&value).map_err(|e| Error::invalid_argument(format!("cannot encode the arguments: {e}")))?;
    serde_json::to_value(value).map_err(|e| Error::invalid_argument(format!("cannot encode the arguments: {e}")))
}
