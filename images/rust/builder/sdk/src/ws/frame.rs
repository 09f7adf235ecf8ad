//! Frames in both directions: the reader that reassembles fragmented messages and the
//! writer that encodes (and, for a client, masks) each frame.

use std::io::{self, Read, Write};

use super::{invalid, random_u64, Message, OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT};

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

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
}
