//! # LogoMesh plugin SDK for Rust
//!
//! A plugin registers methods and event handlers on a [`Plugin`], then calls
//! [`Plugin::run`], which connects to the LogoMesh hub, says hello with the method names,
//! serves requests concurrently until the hub asks it to stop or the process gets SIGTERM
//! or SIGINT, and returns `Ok(())` after a clean close. The hello also carries the patterns
//! of the event handlers, which the hub subscribes before the plugin counts as ready. If the
//! connection is lost (the controller restarted), it connects again for up to
//! `LOGOMESH_RECONNECT_MS` and says hello again, with the same methods and patterns.
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
//!
//! The crate's parts: `plugin` (the [`Plugin`]), `options`, `calls` (outbound, through a
//! [`Hub`]), `connection` (connect, hello, reconnect), `dispatch` (inbound), `shutdown`,
//! `error`, `protocol` (the constants and the codec), `segments` (shared memory), `bridge`
//! (json, msgpack, protobuf), and [`testing`] (a fake hub).

mod bridge;
mod call_future;
mod calls;
mod connection;
mod dispatch;
mod error;
mod exec;
mod finite;
mod frames;
mod hub_tcp;
mod options;
mod plugin;
mod pool;
mod protobuf_check;
mod protobuf_decode;
mod protobuf_types;
mod protobuf_wire;
mod protocol;
mod segments;
mod shared;
mod shutdown;
mod signals;
pub mod testing;
mod ws;

pub use call_future::Call;
pub use bridge::{decode_structured, encode_structured, frame_message, frame_structured, unframe_message, unframe_structured};
pub use protobuf_types::{ProtobufTypes, MAX_DESCRIPTOR_SET_BYTES};
pub use calls::Hub;
pub use segments::{segments_dir, Segment};
pub use dispatch::Event;
pub use error::Error;
pub use exec::{block_on, sleep, spawn, BoxFuture, Sleep};
pub use frames::FRAMES_MSGPACK;
pub use hub_tcp::hub_authorization;
pub use options::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_GRACE, DEFAULT_MAX_CONCURRENCY, DEFAULT_RECONNECT};
pub use plugin::{from_args, to_args, to_result, Plugin};
pub use protocol::{
    topic_matches, DEFAULT_CALL_TIMEOUT, DEFAULT_MAX_MESSAGE_BYTES, HARD_LIMIT_FACTOR, ID_MAX_LENGTH, MAX_DEPTH, MAX_MESSAGE_BYTES,
    MAX_TIMEOUT, MESSAGES_FROM_HUB, MESSAGES_TO_HUB, PROTOCOL, VERSION, WIRE_CODES,
};
pub use serde_json;
pub use serde_json::{json, Value};
