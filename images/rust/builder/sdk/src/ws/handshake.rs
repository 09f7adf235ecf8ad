//! The client and server opening handshakes, and the HTTP head they read.

use std::io::{self, BufRead, Write};

use super::digest::{base64, sha1};
use super::{invalid, random_u64};

/// The GUID RFC 6455 appends to Sec-WebSocket-Key before hashing.
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// Largest opening-handshake header block either side accepts.
const MAX_HEADER_BYTES: usize = 16 * 1024;

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Cursor};

    #[test]
    fn accept_key_matches_rfc_6455_example() {
        assert_eq!(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
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
