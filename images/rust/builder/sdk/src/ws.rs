//! A small RFC 6455 WebSocket codec over any byte stream: the client and server opening
//! handshakes, frames in both directions (masked when the client sends), fragmented
//! messages, and the SHA-1 and base64 the handshake needs. Standard library only.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, BufRead, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};

pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// The GUID RFC 6455 appends to Sec-WebSocket-Key before hashing.
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// Largest opening-handshake header block either side accepts.
const MAX_HEADER_BYTES: usize = 16 * 1024;

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

/// Reads frames from a buffered stream and reassembles fragmented data messages. Control
/// frames that arrive between fragments are returned at once; the partial message waits.
pub struct Reader<R> {
    inner: R,
    max_message: usize,
    partial: Option<(u8, Vec<u8>)>,
}

impl<R: Read> Reader<R> {
    pub fn new(inner: R, max_message: usize) -> Reader<R> {
        Reader {
            inner,
            max_message,
            partial: None,
        }
    }

    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// The next complete message. An error ends the stream (EOF is `UnexpectedEof`).
    pub fn next_message(&mut self) -> io::Result<Message> {
        loop {
            let (fin, opcode, payload) = self.read_frame()?;
            match opcode {
                OP_PING => return Ok(Message::Ping(payload)),
                OP_PONG => return Ok(Message::Pong(payload)),
                OP_CLOSE => {
                    if payload.len() >= 2 {
                        let code = u16::from_be_bytes([payload[0], payload[1]]);
                        let reason = String::from_utf8_lossy(&payload[2..]).into_owned();
                        return Ok(Message::Close(Some(code), reason));
                    }
                    return Ok(Message::Close(None, String::new()));
                }
                OP_TEXT | OP_BINARY => {
                    if self.partial.is_some() {
                        return Err(invalid("a new data frame arrived in the middle of a fragmented message"));
                    }
                    if fin {
                        return finish(opcode, payload);
                    }
                    self.partial = Some((opcode, payload));
                }
                OP_CONTINUATION => {
                    let (op, mut buf) = self
                        .partial
                        .take()
                        .ok_or_else(|| invalid("a continuation frame without a message to continue"))?;
                    if buf.len() + payload.len() > self.max_message {
                        return Err(invalid(format!("message larger than {} bytes", self.max_message)));
                    }
                    buf.extend_from_slice(&payload);
                    if fin {
                        return finish(op, buf);
                    }
                    self.partial = Some((op, buf));
                }
                other => return Err(invalid(format!("unknown opcode {other:#x}"))),
            }
        }
    }

    fn read_frame(&mut self) -> io::Result<(bool, u8, Vec<u8>)> {
        let mut head = [0u8; 2];
        self.inner.read_exact(&mut head)?;
        let fin = head[0] & 0x80 != 0;
        if head[0] & 0x70 != 0 {
            return Err(invalid("reserved bits set without a negotiated extension"));
        }
        let opcode = head[0] & 0x0f;
        let masked = head[1] & 0x80 != 0;
        let mut len = u64::from(head[1] & 0x7f);
        if len == 126 {
            let mut b = [0u8; 2];
            self.inner.read_exact(&mut b)?;
            len = u64::from(u16::from_be_bytes(b));
        } else if len == 127 {
            let mut b = [0u8; 8];
            self.inner.read_exact(&mut b)?;
            len = u64::from_be_bytes(b);
        }
        if opcode >= 0x8 && (!fin || len > 125) {
            return Err(invalid("a control frame must be final and at most 125 bytes"));
        }
        if len > self.max_message as u64 {
            return Err(invalid(format!("frame of {len} bytes is larger than {} bytes", self.max_message)));
        }
        let mut key = [0u8; 4];
        if masked {
            self.inner.read_exact(&mut key)?;
        }
        let mut payload = vec![0u8; len as usize];
        self.inner.read_exact(&mut payload)?;
        if masked {
            apply_mask(&mut payload, key);
        }
        Ok((fin, opcode, payload))
    }
}

fn finish(opcode: u8, payload: Vec<u8>) -> io::Result<Message> {
    if opcode == OP_TEXT {
        String::from_utf8(payload)
            .map(Message::Text)
            .map_err(|_| invalid("a text message that is not UTF-8"))
    } else {
        Ok(Message::Binary(payload))
    }
}

fn apply_mask(data: &mut [u8], key: [u8; 4]) {
    for (i, b) in data.iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

/// Encodes and writes frames. A client masks every frame with a fresh key, as RFC 6455
/// requires; a server never masks. Each frame goes out in one write.
pub struct Writer<W> {
    inner: W,
    mask: bool,
    rng: u64,
    buf: Vec<u8>,
}

impl<W: Write> Writer<W> {
    pub fn new(inner: W, mask: bool) -> Writer<W> {
        Writer {
            inner,
            mask,
            rng: random_u64() | 1,
            buf: Vec::with_capacity(256),
        }
    }

    /// Write one whole message as a single final frame.
    pub fn send(&mut self, opcode: u8, payload: &[u8]) -> io::Result<()> {
        self.send_frame(true, opcode, payload)
    }

    /// Write one frame; `fin: false` starts or continues a fragmented message.
    pub fn send_frame(&mut self, fin: bool, opcode: u8, payload: &[u8]) -> io::Result<()> {
        self.buf.clear();
        self.buf.push(if fin { 0x80 } else { 0 } | (opcode & 0x0f));
        let mask_bit = if self.mask { 0x80 } else { 0 };
        let len = payload.len();
        if len < 126 {
            self.buf.push(mask_bit | len as u8);
        } else if len <= 0xffff {
            self.buf.push(mask_bit | 126);
            self.buf.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            self.buf.push(mask_bit | 127);
            self.buf.extend_from_slice(&(len as u64).to_be_bytes());
        }
        let start = self.buf.len();
        if self.mask {
            // xorshift64: the key only has to be unpredictable to intermediaries, and a
            // Unix socket has none; it is seeded from the OS-keyed RandomState.
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            let key = (self.rng as u32).to_be_bytes();
            self.buf.extend_from_slice(&key);
            let body = start + 4;
            self.buf.extend_from_slice(payload);
            apply_mask(&mut self.buf[body..], key);
        } else {
            self.buf.extend_from_slice(payload);
        }
        self.inner.write_all(&self.buf)?;
        self.inner.flush()?;
        if self.buf.capacity() > 64 * 1024 {
            // Do not keep a large message's buffer alive for the life of the connection.
            self.buf = Vec::with_capacity(256);
        }
        Ok(())
    }

    /// Send a close frame with a status code and a reason.
    pub fn close(&mut self, code: u16, reason: &str) -> io::Result<()> {
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(&reason.as_bytes()[..reason.len().min(123)]);
        self.send(OP_CLOSE, &payload)
    }
}

/// A random 64-bit value from the standard library's OS-seeded hasher keys.
pub fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.finish()
}

/// The client's opening handshake: send the upgrade request, read and check the answer.
/// `reader` must be a buffered reader over the same stream as `writer`; bytes after the
/// header block stay in its buffer for the frames.
pub fn client_handshake<R: BufRead, W: Write>(reader: &mut R, writer: &mut W, host: &str, path: &str) -> io::Result<()> {
    client_handshake_with(reader, writer, host, path, &[])
}

/// A hub's refusal of the upgrade: its HTTP status, and the code its JSON body names
/// (`LM_UNAUTHORIZED` for a plugin across nodes that did not prove who it is). Carried as
/// the source of the handshake's `io::Error`.
#[derive(Debug)]
pub struct Refused {
    pub status: u16,
    pub code: Option<String>,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the hub refused the WebSocket upgrade: {} ({})", self.code.as_deref().unwrap_or("HTTP"), self.status)
    }
}

impl std::error::Error for Refused {}

/// The client's opening handshake with extra request headers (a hub across nodes: its
/// `Authorization`).
pub fn client_handshake_with<R: BufRead, W: Write>(reader: &mut R, writer: &mut W, host: &str, path: &str, extra: &[(&str, &str)]) -> io::Result<()> {
    let mut nonce = [0u8; 16];
    nonce[..8].copy_from_slice(&random_u64().to_le_bytes());
    nonce[8..].copy_from_slice(&random_u64().to_le_bytes());
    let key = base64(&nonce);
    let extra: String = extra.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    );
    writer.write_all(request.as_bytes())?;
    writer.flush()?;
    let (status_line, headers) = read_head(reader)?;
    let mut parts = status_line.splitn(3, ' ');
    let _version = parts.next();
    let status = parts.next().unwrap_or("");
    if status != "101" {
        let length = header(&headers, "content-length").and_then(|l| l.parse::<usize>().ok()).unwrap_or(0);
        let code = if length > 0 { crate::hub_tcp::refusal_code(reader, length) } else { None };
        return Err(io::Error::new(io::ErrorKind::ConnectionRefused, Refused { status: status.parse().unwrap_or(0), code }));
    }
    let accept = header(&headers, "sec-websocket-accept").unwrap_or("");
    if accept != accept_key(&key) {
        return Err(invalid("the hub answered with a wrong Sec-WebSocket-Accept"));
    }
    Ok(())
}

/// The server's side of the opening handshake (used by the test hub): read the upgrade
/// request, answer 101. Returns the request line.
pub fn server_handshake<R: BufRead, W: Write>(reader: &mut R, writer: &mut W) -> io::Result<String> {
    let (request_line, headers) = read_head(reader)?;
    let key = header(&headers, "sec-websocket-key").ok_or_else(|| invalid("upgrade request without Sec-WebSocket-Key"))?;
    let upgrade = header(&headers, "upgrade").unwrap_or("");
    if !upgrade.eq_ignore_ascii_case("websocket") {
        writer.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")?;
        return Err(invalid("not a WebSocket upgrade request"));
    }
    let answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        accept_key(key)
    );
    writer.write_all(answer.as_bytes())?;
    writer.flush()?;
    Ok(request_line)
}

/// The Sec-WebSocket-Accept value for a Sec-WebSocket-Key.
pub fn accept_key(key: &str) -> String {
    let mut input = key.trim().as_bytes().to_vec();
    input.extend_from_slice(ACCEPT_GUID.as_bytes());
    base64(&sha1(&input))
}

/// Read an HTTP head: the first line and the header lines (lower-cased names) up to the
/// empty line.
pub(crate) fn read_head<R: BufRead>(reader: &mut R) -> io::Result<(String, Vec<(String, String)>)> {
    let mut total = 0usize;
    let mut first = String::new();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed during the WebSocket handshake",
            ));
        }
        total += n;
        if total > MAX_HEADER_BYTES {
            return Err(invalid("handshake header block too large"));
        }
        let line = line.trim_end_matches(&['\r', '\n'][..]);
        if first.is_empty() {
            if line.is_empty() {
                continue;
            }
            first = line.to_string();
            continue;
        }
        if line.is_empty() {
            return Ok((first, headers));
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
}

pub(crate) fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// Standard base64 with padding.
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity((data.len() + 2) / 3 * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(ALPHABET[(n >> 18) as usize & 63] as char);
        out.push(ALPHABET[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            ALPHABET[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 { ALPHABET[n as usize & 63] as char } else { '=' });
    }
    out
}

/// SHA-1 (FIPS 180-4). Only the handshake uses it, where RFC 6455 prescribes it.
pub fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0];
    let mut msg = data.to_vec();
    let bit_len = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_be_bytes());
    let mut w = [0u32; 80];
    for block in msg.chunks(64) {
        for (i, word) in block.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t = a.rotate_left(5).wrapping_add(f).wrapping_add(e).wrapping_add(k).wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (x, v) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(v);
        }
    }
    let mut out = [0u8; 20];
    for (i, x) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&x.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Cursor};

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn sha1_known_vectors() {
        assert_eq!(hex(&sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(hex(&sha1(b"abc")), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(
            hex(&sha1(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
        );
        assert_eq!(hex(&sha1(&vec![b'a'; 1_000_000])), "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
    }

    #[test]
    fn base64_known_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), want);
        }
    }

    #[test]
    fn accept_key_matches_rfc_6455_example() {
        assert_eq!(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn masked_frames_of_every_length_class_round_trip() {
        for len in [0usize, 1, 125, 126, 127, 65535, 65536, 200_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mut w = Writer::new(Vec::new(), true);
            w.send(OP_BINARY, &payload).unwrap();
            let bytes = w.inner.clone();
            assert_eq!(bytes[1] & 0x80, 0x80, "client frames are masked");
            let mut r = Reader::new(Cursor::new(bytes), 1 << 20);
            assert_eq!(r.next_message().unwrap(), Message::Binary(payload));
        }
    }

    #[test]
    fn fragments_are_reassembled_around_control_frames() {
        let mut w = Writer::new(Vec::new(), false);
        w.send_frame(false, OP_TEXT, "héll".as_bytes()).unwrap();
        w.send(OP_PING, b"p").unwrap();
        w.send_frame(false, OP_CONTINUATION, b"o ").unwrap();
        w.send_frame(true, OP_CONTINUATION, b"world").unwrap();
        w.close(1000, "bye").unwrap();
        let mut r = Reader::new(Cursor::new(w.inner.clone()), 1024);
        assert_eq!(r.next_message().unwrap(), Message::Ping(b"p".to_vec()));
        assert_eq!(r.next_message().unwrap(), Message::Text("héllo world".into()));
        assert_eq!(r.next_message().unwrap(), Message::Close(Some(1000), "bye".into()));
        assert_eq!(r.next_message().unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn oversized_and_malformed_frames_are_refused() {
        let mut w = Writer::new(Vec::new(), false);
        w.send(OP_TEXT, &[b'x'; 100]).unwrap();
        assert!(Reader::new(Cursor::new(w.inner.clone()), 99).next_message().is_err());
        let mut r = Reader::new(Cursor::new(vec![0x80 | OP_CONTINUATION, 0]), 99);
        assert!(r.next_message().is_err(), "continuation without a start");
        let mut r = Reader::new(Cursor::new(vec![0x80 | OP_TEXT, 2, 0xff, 0xfe]), 99);
        assert!(r.next_message().is_err(), "invalid UTF-8 in a text frame");
    }

    #[test]
    fn handshake_both_sides() {
        // Client request into a buffer, then the server reads it and answers.
        let mut request = Vec::new();
        let mut server_answer = Vec::new();
        let mut empty = BufReader::new(Cursor::new(Vec::<u8>::new()));
        assert!(client_handshake(&mut empty, &mut request, "logomesh", "/v1").is_err());
        let text = String::from_utf8(request.clone()).unwrap();
        assert!(text.starts_with("GET /v1 HTTP/1.1\r\nHost: logomesh\r\n"), "{text}");
        let line = server_handshake(&mut BufReader::new(Cursor::new(request)), &mut server_answer).unwrap();
        assert_eq!(line, "GET /v1 HTTP/1.1");
        let answer = String::from_utf8(server_answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 101 "), "{answer}");
    }
}
