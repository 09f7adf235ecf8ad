//! The SDK against the protocol's one source: its constants (protocol.json) and the recorded
//! conformance session (transcript.json), at /opt/logomesh/protocol in the builder image;
//! and handlers that fail in every way a handler can, which never end the plugin.

use logomesh::testing::{load_protocol, load_transcript, run_transcript, Harness};
use logomesh::{json, Error, Event, Hub, Plugin, Value};
use std::time::Duration;

/// The plugin transcript.json expects (images/protocol/README.md).
fn conformance_plugin() -> Plugin {
    let mut p = Plugin::new();
    let hub = p.hub();
    p.method("echo", Ok);
    p.method("fail", |_| Err(Error::invalid_argument("fail was called").with_details(json!({ "field": "x" }))));
    let h = hub.clone();
    p.method("listen", move |args: Value| {
        let topic = args["topic"].as_str().unwrap_or("").to_string();
        h.on(&topic, seen(h.clone()))?;
        Ok(json!({ "listening": topic }))
    });
    p.method("make", |args: Value| match args["bytes"].as_u64() {
        Some(n) => Ok(Value::String("x".repeat(n as usize))),
        None => Ok(nested(args["depth"].as_u64().unwrap_or(1) as usize)),
    });
    let h = hub.clone();
    p.method("relay", move |args: Value| {
        h.call(args["target"].as_str().unwrap_or(""), args["args"].clone(), Duration::from_millis(5000))
    });
    p.method("throw", |_| -> Result<Value, Error> { panic!("boom") });
    p.on("conf.*", seen(hub));
    p
}

/// The conformance plugin's event handler: what it heard, as a conf.seen event.
fn seen(hub: Hub) -> impl Fn(Event) + Send + Sync + 'static {
    move |ev: Event| {
        let kind = if ev.broadcast { "broadcast" } else { "event" };
        let _ = hub.emit("conf.seen", json!({ "kind": kind, "topic": ev.topic, "from": ev.from, "data": ev.data }));
    }
}

/// `n` nested arrays, an empty one innermost.
fn nested(n: usize) -> Value {
    let mut v = json!([]);
    for _ in 1..n {
        v = Value::Array(vec![v]);
    }
    v
}

#[test]
fn the_sdks_constants_are_protocol_json() {
    let c = load_protocol().expect("protocol.json in the image");
    let ms = |d: Duration| json!(d.as_millis() as u64);
    assert_eq!(json!(logomesh::PROTOCOL), c["protocol"]);
    assert_eq!(json!(logomesh::MAX_DEPTH), c["maxDepth"]);
    assert_eq!(json!(logomesh::DEFAULT_MAX_MESSAGE_BYTES), c["messageBytes"]["default"]);
    assert_eq!(json!(logomesh::MAX_MESSAGE_BYTES), c["messageBytes"]["max"]);
    assert_eq!(json!(logomesh::HARD_LIMIT_FACTOR), c["messageBytes"]["hardLimitFactor"]);
    assert_eq!(ms(logomesh::DEFAULT_CALL_TIMEOUT), c["callTimeoutMs"]["default"]);
    assert_eq!(ms(logomesh::MAX_TIMEOUT), c["callTimeoutMs"]["max"]);
    assert_eq!(json!(logomesh::ID_MAX_LENGTH), c["idMaxLength"]);
    assert_eq!(json!(logomesh::MESSAGES_TO_HUB), c["messageTypes"]["toHub"]);
    assert_eq!(json!(logomesh::MESSAGES_FROM_HUB), c["messageTypes"]["fromHub"]);
    let codes: serde_json::Map<String, Value> = logomesh::WIRE_CODES.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
    assert_eq!(Value::Object(codes), c["errorCodes"]);
}

#[test]
fn the_sdk_follows_the_recorded_conformance_session() {
    let transcript = load_transcript().expect("transcript.json in the image");
    let bound = run_transcript(conformance_plugin(), &transcript).unwrap_or_else(|e| panic!("{e}"));
    assert!(bound["sdk"].as_str().unwrap_or("").starts_with("rust/"), "{:?}", bound["sdk"]);
}

#[test]
fn the_replay_notices_a_plugin_that_strays() {
    let mut p = conformance_plugin();
    p.method("extra", Ok);
    let err = run_transcript(p, &load_transcript().unwrap()).unwrap_err();
    assert!(err.starts_with("step 1 ") && err.contains("methods"), "{err}");
}

#[test]
fn handlers_that_fail_in_every_way_answer_with_a_code() {
    let mut p = Plugin::new();
    p.method("deep", |_| Ok(nested(100_000)));
    p.method("deep_error", |_| Err(Error::new("E_MINE", "with deep details").with_details(nested(100_000))));
    p.method_async("deep_async", |_| async { Ok(nested(5000)) });
    p.method("boom", |_| -> Result<Value, Error> { std::panic::panic_any(42u8) });
    p.method("ok", Ok);
    p.on("t", |_| panic!("a handler that panics"));
    let mut h = Harness::start(p).unwrap();
    for method in ["deep", "deep_async", "boom"] {
        assert_eq!(h.call(method, json!(null)).unwrap_err().code, "LM_PLUGIN_ERROR", "{method}");
    }
    // Its own code, without the details that cannot be sent.
    let e = h.call("deep_error", json!(null)).unwrap_err();
    assert_eq!((e.code.as_str(), e.message.as_str(), &e.details), ("E_MINE", "with deep details", &Value::Null));
    h.peer.deliver("event", Some("t"), json!(null), "x").unwrap();
    assert_eq!(h.call("ok", json!("still here")).unwrap(), json!("still here"));
    h.stop().unwrap();
}

#[test]
fn outbound_data_that_cannot_be_sent_is_refused_before_sending() {
    let p = Plugin::new();
    let hub = p.hub();
    let mut h = Harness::start(p).unwrap();
    assert_eq!(hub.call("other.m", nested(64), Duration::from_secs(1)).unwrap_err().code, "LM_INVALID_ARGUMENT");
    assert_eq!(hub.emit("topic", nested(100_000)).unwrap_err().code, "LM_INVALID_ARGUMENT");
    assert_eq!(hub.broadcast("topic", json!("x".repeat(17 << 20))).unwrap_err().code, "LM_MESSAGE_TOO_LARGE");
    assert!(h.peer.recv(Duration::from_millis(200)).is_err(), "nothing was sent");
    h.stop().unwrap();
}
