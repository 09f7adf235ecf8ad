//! Reaching a hub across nodes (docs/kubernetes.md, "The hub across nodes"). When
//! `LOGOMESH_HUB_URL` is set (`ws://host:port/v1`), the plugin connects there over TCP instead
//! of its Unix socket, and proves who it is at every connection attempt: an HMAC-SHA256 with
//! its own key (the file `LOGOMESH_HUB_CREDENTIAL` names, read afresh each time: the kubelet
//! updates a rotated Secret in place) over a fresh timestamp and nonce, in the upgrade
//! request's `Authorization` header. The key never travels; the header is never logged.
//!
//! Once upgraded, the TCP connection is bridged onto one end of a Unix socket pair, and the
//! SDK reads and writes the other end exactly as it does a hub's Unix socket: the frames'
//! path is one for both. `wss://` is not supported here (no TLS crate among Debian's
//! packaged ones the SDK uses): the CNI's encryption protects the hop instead.

use crate::{ws, Error};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where the hub is.
#[derive(Clone, Debug)]
pub(crate) enum Endpoint {
    /// The plugin's own Unix socket (one host).
    Unix(PathBuf),
    /// A hub across nodes: `host:port` and the resource (`/v1`).
    Tcp { url: String, host: String, port: u16, resource: String },
}

impl Endpoint {
    /// `ws://host:port/path`; `wss://` and anything else is refused with why.
    pub(crate) fn tcp(url: &str) -> Result<Endpoint, Error> {
        let rest = match url.strip_prefix("ws://") {
            Some(r) => r,
            None if url.starts_with("wss://") => {
                return Err(Error::disconnected(format!(
                    "LOGOMESH_HUB_URL {url}: the Rust SDK speaks ws:// only (no TLS); use ws:// with the CNI's encryption"
                )))
            }
            None => return Err(Error::disconnected(format!("LOGOMESH_HUB_URL {url:?} is not a ws:// URL"))),
        };
        let (authority, resource) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].to_string()),
            None => (rest, "/v1".to_string()),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| Error::disconnected(format!("LOGOMESH_HUB_URL {url:?} has a bad port")))?),
            None => (authority, 80),
        };
        if host.is_empty() {
            return Err(Error::disconnected(format!("LOGOMESH_HUB_URL {url:?} has no host")));
        }
        Ok(Endpoint::Tcp { url: url.to_string(), host: host.to_string(), port, resource })
    }

    /// For messages: the socket's path or the URL.
    pub(crate) fn describe(&self) -> String {
        match self {
            Endpoint::Unix(p) => p.display().to_string(),
            Endpoint::Tcp { url, .. } => url.clone(),
        }
    }
}

/// The `Authorization` header: `nonce` is 32 lower-case hex digits, `ts` ms since the epoch.
pub fn hub_authorization(key: &[u8], plugin_id: &str, ts: u64, nonce: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(format!("logomesh-hub-v1\n{plugin_id}\n{ts}\n{nonce}").as_bytes());
    let sig: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("LogoMesh-HMAC-SHA256 plugin=\"{plugin_id}\", ts=\"{ts}\", nonce=\"{nonce}\", sig=\"{sig}\"")
}

/// Why one attempt failed.
pub(crate) enum Attempt {
    /// The hub answered the upgrade with this status (and code): 401 and 429 are tried again.
    Refused(u16, String),
    /// The hub did not answer (not listening yet, moving, unreachable): tried again.
    Io(io::Error),
    /// Nothing to try again with (no key): `run` ends.
    Fatal(Error),
}

/// One attempt: TCP, the upgrade with a fresh header, then the bridge. The SDK's end.
pub(crate) fn dial(host: &str, port: u16, resource: &str, plugin_id: &str, patience: Duration) -> Result<UnixStream, Attempt> {
    let header = authorization(plugin_id).map_err(Attempt::Fatal)?;
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(Attempt::Io)?
        .next()
        .ok_or_else(|| Attempt::Io(io::Error::new(io::ErrorKind::NotFound, format!("{host} has no address"))))?;
    let tcp = TcpStream::connect_timeout(&addr, patience).map_err(Attempt::Io)?;
    let _ = tcp.set_nodelay(true);
    tcp.set_read_timeout(Some(patience)).map_err(Attempt::Io)?;
    let mut reader = BufReader::new(tcp.try_clone().map_err(Attempt::Io)?);
    let mut writer = tcp.try_clone().map_err(Attempt::Io)?;
    match ws::client_handshake_with(&mut reader, &mut writer, &format!("{host}:{port}"), resource, &[("Authorization", &header)]) {
        Ok(()) => {}
        Err(e) => {
            return Err(match e.get_ref().and_then(|r| r.downcast_ref::<ws::Refused>()) {
                Some(r) => Attempt::Refused(r.status, r.code.clone().unwrap_or_else(|| "HTTP".into())),
                None => Attempt::Io(e),
            })
        }
    }
    tcp.set_read_timeout(None).map_err(Attempt::Io)?;
    // Frames the hub sent right behind its answer are in the reader's buffer: they go first.
    let early = reader.buffer().to_vec();
    bridge(tcp, early).map_err(Attempt::Io)
}

/// The key read now, a new nonce, the header.
fn authorization(plugin_id: &str) -> Result<String, Error> {
    let file = std::env::var("LOGOMESH_HUB_CREDENTIAL").unwrap_or_default();
    if file.is_empty() {
        return Err(Error::new(
            "LM_UNAUTHORIZED",
            "LOGOMESH_HUB_URL is set but LOGOMESH_HUB_CREDENTIAL is not: the plugin has no key to prove who it is",
        ));
    }
    let key = std::fs::read(&file).map_err(|e| Error::new("LM_UNAUTHORIZED", format!("the hub key {file} cannot be read: {e}")))?;
    if key.is_empty() {
        return Err(Error::new("LM_UNAUTHORIZED", format!("the hub key {file} is empty")));
    }
    let mut nonce = [0u8; 16];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut nonce))
        .map_err(|e| Error::new("LM_UNAUTHORIZED", format!("no random nonce: {e}")))?;
    let nonce: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
    let ts = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    Ok(hub_authorization(&key, plugin_id, ts, &nonce))
}

/// Two threads copy bytes between the TCP connection and a Unix socket pair; either side
/// ending ends the other (a shutdown of the SDK's end closes the TCP connection).
fn bridge(tcp: TcpStream, early: Vec<u8>) -> io::Result<UnixStream> {
    let (ours, theirs) = UnixStream::pair()?;
    let (mut tcp_in, mut tcp_out) = (tcp.try_clone()?, tcp);
    let (mut unix_out, mut unix_in) = (theirs.try_clone()?, theirs);
    unix_out.write_all(&early)?;
    thread::Builder::new().name("logomesh-hub-in".into()).spawn(move || {
        let _ = io::copy(&mut tcp_in, &mut unix_out);
        let _ = unix_out.shutdown(Shutdown::Write);
    })?;
    thread::Builder::new().name("logomesh-hub-out".into()).spawn(move || {
        let _ = io::copy(&mut unix_in, &mut tcp_out);
        let _ = tcp_out.shutdown(Shutdown::Both);
    })?;
    Ok(ours)
}

/// Reads a bounded JSON body for its `code` (the hub's refusal).
pub(crate) fn refusal_code<R: BufRead>(reader: &mut R, length: usize) -> Option<String> {
    let mut body = vec![0u8; length.min(4096)];
    reader.read_exact(&mut body).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
    v.get("code")?.as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vector_every_sdk_reproduces() {
        assert_eq!(
            hub_authorization(&[7u8; 32], "analyzer", 1_780_000_000_000, "0123456789abcdef0123456789abcdef"),
            "LogoMesh-HMAC-SHA256 plugin=\"analyzer\", ts=\"1780000000000\", nonce=\"0123456789abcdef0123456789abcdef\", sig=\"68534c9927a1ceef4d282c2b274fd8d638d75733d050ede5a61c87939409c584\""
        );
    }

    /// A hub's plugin port from the socket up: the first upgrade refused with the hub's 401
    /// (the Secret rotated meanwhile), the second accepted if signed with the new key; hello
    /// answered, then shutdown.
    #[test]
    fn a_plugin_connects_over_tcp_with_its_key_read_at_every_attempt_retrying_after_401() {
        use std::net::TcpListener;
        let dir = std::env::temp_dir().join(format!("lm-hub-tcp-{}-{:x}", std::process::id(), ws::random_u64()));
        std::fs::create_dir_all(&dir).unwrap();
        let key_file = dir.join("key");
        let rotated = [2u8; 32];
        std::fs::write(&key_file, [1u8; 32]).unwrap();
        std::env::set_var("LOGOMESH_HUB_CREDENTIAL", &key_file);
        std::env::set_var("HTTP_PROXY", "http://127.0.0.1:9"); // never the way to the hub
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let rotate_to = key_file.clone();
        let hub = thread::spawn(move || {
            let mut seen = Vec::new();
            let (s, _) = listener.accept().unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let (_, h) = ws::read_head(&mut r).unwrap();
            seen.push(ws::header(&h, "authorization").unwrap_or("").to_string());
            std::fs::write(&rotate_to, rotated).unwrap();
            let body = r#"{"code":"LM_UNAUTHORIZED","message":"plugin handshake refused: unknown plugin"}"#;
            let mut w = s;
            write!(w, "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
            drop(w);
            let (s, _) = listener.accept().unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let (_, h) = ws::read_head(&mut r).unwrap();
            let auth = ws::header(&h, "authorization").unwrap_or("").to_string();
            let host = ws::header(&h, "host").unwrap_or("").to_string();
            seen.push(auth.clone());
            let fields: Vec<&str> = auth.split('"').collect();
            assert_eq!(auth, hub_authorization(&rotated, fields[1], fields[3].parse().unwrap(), fields[5]), "signed with the rotated key");
            let mut w = s.try_clone().unwrap();
            write!(w, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n", ws::accept_key(ws::header(&h, "sec-websocket-key").unwrap())).unwrap();
            let mut frames = ws::Reader::new(r, 1 << 20);
            let mut out = ws::Writer::new(s, false);
            let hello: serde_json::Value = match frames.next_message().unwrap() {
                ws::Message::Text(t) => serde_json::from_str(&t).unwrap(),
                _ => panic!("not a text frame"),
            };
            let answer = serde_json::json!({"type": "response", "id": "h1", "correlationId": hello["id"], "success": true, "data": {"plugin": "subject", "protocol": 1, "maxMessageBytes": 1048576}});
            out.send(ws::OP_TEXT, answer.to_string().as_bytes()).unwrap();
            out.send(ws::OP_TEXT, serde_json::json!({"type": "shutdown", "id": "h2", "data": {"graceMs": 0}}).to_string().as_bytes()).unwrap();
            while let Ok(m) = frames.next_message() {
                if let ws::Message::Close(..) = m {
                    break;
                }
            }
            (seen, hello, host)
        });
        std::env::set_var("LOGOMESH_PLUGIN_ID", "subject");
        let mut plugin = crate::Plugin::new();
        plugin.hub_url(format!("ws://127.0.0.1:{port}/v1"));
        plugin.method("echo", Ok);
        plugin.run().expect("run ends cleanly at the hub's shutdown");
        let (seen, hello, host) = hub.join().unwrap();
        assert_eq!(hello["methods"], serde_json::json!(["echo"]));
        assert_eq!(seen.len(), 2);
        assert_ne!(seen[0].split('"').nth(5), seen[1].split('"').nth(5), "each attempt has its own nonce");
        assert_eq!(host, format!("127.0.0.1:{port}"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn urls() {
        match Endpoint::tcp("ws://logomesh-hub.ns.svc:7070/v1").unwrap() {
            Endpoint::Tcp { host, port, resource, .. } => assert_eq!((host.as_str(), port, resource.as_str()), ("logomesh-hub.ns.svc", 7070, "/v1")),
            _ => panic!("not TCP"),
        }
        assert!(Endpoint::tcp("wss://h:1/v1").unwrap_err().message.contains("ws:// only"));
        assert!(Endpoint::tcp("http://h:1/v1").is_err());
        assert!(Endpoint::tcp("ws://h:x/v1").is_err());
    }
}
