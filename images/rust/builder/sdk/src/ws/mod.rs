//! A small RFC 6455 WebSocket codec over any byte stream: the client and server opening
//! handshakes, frames in both directions (masked when the client sends), fragmented
//! messages, and the SHA-1 and base64 the handshake needs. Standard library only.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

mod digest;
mod frame;
mod handshake;

pub use digest::{base64, sha1};
pub use frame::{Reader, Writer};
pub(crate) use handshake::{header, read_head};
pub use handshake::{accept_key, client_handshake, client_handshake_with, server_handshake, Refused};

pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// One complete message (a data message reassembled from its fragments, or a control frame).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    /// The close status code (if the peer sent one) and reason.
    Close(Option<u16>, String),
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// A random 64-bit value from the standard library's OS-seeded hasher keys.
pub fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.finish()
}
