//! The protocol's recorded conformance session (images/protocol/ of LogoMesh, in the builder
//! image at /opt/logomesh/protocol): loading it, and replaying it as the hub on one
//! connection. images/protocol/README.md describes the format and the plugin it expects.

use super::{FakeHub, HubPeer, WAIT};
use crate::ws::{Message, OP_PING};
use crate::{Error, Plugin, Value};
use serde_json::Map;
use std::io;
use std::path::PathBuf;
use std::thread;

/// Where protocol.json and transcript.json are: `LOGOMESH_PROTOCOL_DIR`, else
/// /opt/logomesh/protocol.
pub fn protocol_dir() -> PathBuf {
    std::env::var_os("LOGOMESH_PROTOCOL_DIR").map_or_else(|| PathBuf::from("/opt/logomesh/protocol"), PathBuf::from)
}

fn load(name: &str) -> io::Result<Value> {
    let text = std::fs::read_to_string(protocol_dir().join(name))?;
    serde_json::from_str(&text).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// The conformance transcript (transcript.json).
pub fn load_transcript() -> io::Result<Value> {
    load("transcript.json")
}

/// The protocol's constants (protocol.json).
pub fn load_protocol() -> io::Result<Value> {
    load("protocol.json")
}

/// Run `plugin` against a new fake hub that plays `transcript`, and wait for `run` to
/// return. What the transcript's `$names` were bound to; the first step the plugin did not
/// follow (or what `run` returned, if not `Ok`) as the error.
pub fn run_transcript(mut plugin: Plugin, transcript: &Value) -> Result<Map<String, Value>, String> {
    let hub = FakeHub::new().map_err(|e| e.to_string())?;
    plugin.socket_path(hub.path());
    let running = thread::spawn(move || plugin.run());
    let mut peer = hub.accept(WAIT).map_err(|e| format!("the plugin did not connect: {e}"))?;
    let replayed = peer.replay(transcript);
    if replayed.is_err() {
        peer.drop_connection();
    }
    let ran = running.join().map_err(|_| "run() panicked".to_string())?;
    let bound = replayed?;
    ran.map_err(|e: Error| format!("run() returned {e} after the transcript"))?;
    Ok(bound)
}

/// The JSON text a generator object (`{"$nested": n}`, `{"$string": n}`) stands for.
fn generated(v: &Value) -> Option<String> {
    let (key, n) = v.as_object().filter(|o| o.len() == 1)?.iter().next()?;
    let n = n.as_u64()? as usize;
    match key.as_str() {
        "$nested" => Some("[".repeat(n) + &"]".repeat(n)),
        "$string" => Some(format!("\"{}\"", "x".repeat(n))),
        _ => None,
    }
}

/// A frame to send as text: `$name`s replaced by what they were bound to, generators by
/// their text (written into the text directly: no deep recursion here).
fn render(frame: &Value, bound: &Map<String, Value>) -> Result<String, String> {
    fn walk(v: &Value, bound: &Map<String, Value>, texts: &mut Vec<String>) -> Result<Value, String> {
        if let Some(text) = generated(v) {
            texts.push(text);
            return Ok(Value::String(format!("@@lm-generated-{}@@", texts.len() - 1)));
        }
        Ok(match v {
            Value::String(s) if s.starts_with('$') => {
                bound.get(&s[1..]).cloned().ok_or_else(|| format!("{s} is used before the plugin sent it"))?
            }
            Value::Array(a) => Value::Array(a.iter().map(|x| walk(x, bound, texts)).collect::<Result<_, _>>()?),
            Value::Object(o) => {
                let mut out = Map::new();
                for (k, x) in o {
                    out.insert(k.clone(), walk(x, bound, texts)?);
                }
                Value::Object(out)
            }
            other => other.clone(),
        })
    }
    let mut texts = Vec::new();
    let mut text = walk(frame, bound, &mut texts)?.to_string();
    for (i, t) in texts.iter().enumerate() {
        text = text.replacen(&format!("\"@@lm-generated-{i}@@\""), t, 1);
    }
    Ok(text)
}

fn nested(mut v: &Value, n: usize) -> bool {
    for level in 1..=n {
        match v.as_array() {
            None => return false,
            Some(a) if level == n => return a.is_empty(),
            Some(a) if a.len() != 1 => return false,
            Some(a) => v = &a[0],
        }
    }
    false
}

fn show(v: &Value) -> String {
    v.to_string().chars().take(200).collect()
}

/// Why `actual` does not match `expected` (`None` when it does), binding `$name`s.
fn matches(expected: &Value, actual: &Value, bound: &mut Map<String, Value>, at: &str) -> Option<String> {
    if let Some(name) = expected.as_str().and_then(|s| s.strip_prefix('$')) {
        return match bound.get(name) {
            None => {
                bound.insert(name.to_string(), actual.clone());
                None
            }
            Some(prior) if prior == actual => None,
            Some(prior) => Some(format!("{at}: expected {} (as ${name}), found {}", show(prior), show(actual))),
        };
    }
    if generated(expected).is_some() {
        let (key, n) = expected.as_object()?.iter().next()?;
        let n = n.as_u64().unwrap_or(0) as usize;
        let ok = if key == "$nested" { nested(actual, n) } else { actual.as_str() == Some(&"x".repeat(n)) };
        return if ok { None } else { Some(format!("{at}: expected {key} {n}, found {}", show(actual))) };
    }
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => e.iter().find_map(|(k, v)| match a.get(k) {
            None => Some(format!("{at}: '{k}' is missing")),
            Some(got) => matches(v, got, bound, &if at == "the frame" { k.clone() } else { format!("{at}.{k}") }),
        }),
        (Value::Object(_), _) => Some(format!("{at}: expected an object, found {}", show(actual))),
        (Value::Array(e), Value::Array(a)) if e.len() == a.len() => {
            e.iter().zip(a).enumerate().find_map(|(i, (x, y))| matches(x, y, bound, &format!("{at}[{i}]")))
        }
        (Value::Number(e), Value::Number(a)) if e.as_f64() == a.as_f64() => None,
        _ if expected == actual => None,
        _ => Some(format!("{at}: expected {}, found {}", show(expected), show(actual))),
    }
}

impl HubPeer {
    /// Play the hub's side of `transcript` on this connection. What the `$name`s were
    /// bound to; the first step the plugin did not follow as the error.
    pub fn replay(&mut self, transcript: &Value) -> Result<Map<String, Value>, String> {
        let mut bound = Map::new();
        let mut last = String::from("(none)");
        let steps = transcript["steps"].as_array().ok_or("the transcript has no steps")?;
        for (i, step) in steps.iter().enumerate() {
            if let Err(problem) = self.step(step, &mut bound, &mut last) {
                let note = step["note"].as_str().map(|n| format!(" ({n})")).unwrap_or_default();
                let last: String = last.chars().take(300).collect();
                return Err(format!("step {}{note}: {problem}; last frame from the plugin: {last}", i + 1));
            }
        }
        Ok(bound)
    }

    fn step(&mut self, step: &Value, bound: &mut Map<String, Value>, last: &mut String) -> Result<(), String> {
        let io = |e: io::Error| e.to_string();
        if let Some(frame) = step.get("send") {
            let text = render(frame, bound)?;
            return self.send_frame(true, crate::ws::OP_TEXT, text.as_bytes()).map_err(io);
        }
        if let Some(expected) = step.get("expect") {
            let text = match self.recv_frame(WAIT).map_err(io)? {
                Message::Text(t) => t,
                other => return Err(format!("expected a text frame, got {other:?}")),
            };
            *last = text.clone();
            let actual: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
            return matches(expected, &actual, bound, "the frame").map_or(Ok(()), Err);
        }
        if let Some(payload) = step.get("ping").and_then(Value::as_str) {
            self.send_frame(true, OP_PING, payload.as_bytes()).map_err(io)?;
            return match self.recv_frame(WAIT).map_err(io)? {
                Message::Pong(p) if p == payload.as_bytes() => Ok(()),
                other => Err(format!("expected a pong carrying {payload:?}, got {other:?}")),
            };
        }
        if let Some(code) = step.get("expectClose").and_then(Value::as_u64) {
            return match self.recv_frame(WAIT).map_err(io)? {
                Message::Close(got, _) => {
                    let _ = self.writer.close(got.unwrap_or(1000), "");
                    if got == Some(code as u16) {
                        Ok(())
                    } else {
                        Err(format!("closed with {got:?}, expected {code}"))
                    }
                }
                other => Err(format!("expected a close, got {other:?}")),
            };
        }
        Err(format!("unknown step {}", show(step)))
    }
}
