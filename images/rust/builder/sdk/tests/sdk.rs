//! The SDK against a fake hub (a WebSocket server on a Unix socket in a temporary folder,
//! using the same frame codec from the server side): hello, methods, errors, pings,
//! registration, typed arguments, shared state, overhead.

mod common;

use common::*;
use logomesh::testing::{Harness, OP_CONTINUATION, OP_PING, OP_TEXT, WAIT};
use logomesh::{json, Plugin, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[test]
fn hello_names_protocol_sdk_and_sorted_methods() {
    let h = start();
    assert_eq!(h.peer.request_line, "GET /v1 HTTP/1.1");
    assert_eq!(h.hello["protocol"], 1);
    assert_eq!(h.hello["sdk"], format!("rust/{}", logomesh::VERSION));
    assert_eq!(
        h.hello["methods"],
        json!([
            "add",
            "announce",
            "block",
            "boom",
            "coded",
            "echo",
            "later",
            "parse",
            "relay",
            "relay_async"
        ])
    );
    assert!(h.hello["id"].is_string());
    h.stop().unwrap();
}

#[test]
fn serves_sync_and_async_methods() {
    let mut h = start();
    assert_eq!(
        h.call("echo", json!({ "x": [1, "two", null] })).unwrap(),
        json!({ "x": [1, "two", null] })
    );
    assert_eq!(h.call("add", json!({ "a": 2, "b": 40 })).unwrap(), json!({ "sum": 42 }));
    assert_eq!(h.call("later", json!({ "ms": 10 })).unwrap(), json!({ "slept": 10 }));
    assert_eq!(h.call("echo", Value::Null).unwrap(), Value::Null);
    h.stop().unwrap();
}

#[test]
fn a_slow_request_does_not_block_others() {
    let mut h = start();
    let slow = h.peer.request("block", json!({ "ms": 1500 }), "host").unwrap();
    let slow_async = h.peer.request("later", json!({ "ms": 1500 }), "host").unwrap();
    let t = Instant::now();
    assert_eq!(h.call("add", json!({ "a": 1, "b": 1 })).unwrap(), json!({ "sum": 2 }));
    assert!(
        t.elapsed() < Duration::from_millis(1000),
        "a fast call waited {:?} behind slow ones",
        t.elapsed()
    );
    assert_eq!(h.peer.response_to(&slow, WAIT).unwrap().unwrap(), json!("done"));
    assert_eq!(h.peer.response_to(&slow_async, WAIT).unwrap().unwrap(), json!({ "slept": 1500 }));
    h.stop().unwrap();
}

#[test]
fn many_requests_run_concurrently() {
    let mut h = start();
    let t = Instant::now();
    let mut ids = Vec::new();
    for _ in 0..8 {
        ids.push(h.peer.request("block", json!({ "ms": 400 }), "host").unwrap());
    }
    for _ in 0..50 {
        ids.push(h.peer.request("later", json!({ "ms": 400 }), "host").unwrap());
    }
    for id in &ids {
        assert!(h.peer.response_to(id, WAIT).unwrap().is_ok());
    }
    // Serially this would take 58 x 400 ms.
    assert!(t.elapsed() < Duration::from_millis(2500), "took {:?}", t.elapsed());
    h.stop().unwrap();
}

#[test]
fn coded_errors_panics_and_other_errors() {
    let mut h = start();
    let e = h.call("coded", json!({})).unwrap_err();
    assert_eq!((e.code.as_str(), e.message.as_str()), ("E_OWN_CODE", "a coded failure"));
    assert_eq!(e.details, json!({ "field": "x" }));
    let e = h.call("add", json!({ "a": "x" })).unwrap_err();
    assert_eq!(e.code, "LM_INVALID_ARGUMENT");
    let e = h.call("parse", json!({ "text": "12x" })).unwrap_err();
    assert_eq!(e.code, "LM_PLUGIN_ERROR");
    assert!(e.message.contains("invalid digit"), "{e}");
    let e = h.call("boom", json!({})).unwrap_err();
    assert_eq!(e.code, "LM_PLUGIN_ERROR");
    assert!(e.message.contains("the handler fell over"), "{e}");
    // The plugin keeps serving after all of these.
    assert_eq!(h.call("parse", json!({ "text": "12" })).unwrap(), json!(12));
    h.stop().unwrap();
}

#[test]
fn unknown_method_is_method_not_found() {
    let mut h = start();
    let e = h.call("nope", json!({})).unwrap_err();
    assert_eq!(e.code, "LM_METHOD_NOT_FOUND");
    assert!(e.message.contains("nope"));
    h.stop().unwrap();
}

#[test]
fn answers_pings_and_reads_fragmented_messages() {
    let mut h = start();
    h.peer.send_frame(true, OP_PING, b"are you there").unwrap();
    let until = Instant::now() + WAIT;
    while h.peer.pongs.is_empty() && Instant::now() < until {
        let _ = h.peer.recv_where(Duration::from_millis(50), |_| false);
    }
    assert_eq!(h.peer.pongs, vec![b"are you there".to_vec()]);

    let msg = json!({ "type": "request", "id": "frag-1", "to": ["plugin"], "method": "echo", "data": { "text": "ü".repeat(70_000) } })
        .to_string();
    let bytes = msg.as_bytes();
    let (a, rest) = bytes.split_at(10);
    let (b, c) = rest.split_at(rest.len() / 2);
    h.peer.send_frame(false, OP_TEXT, a).unwrap();
    h.peer.send_frame(true, OP_PING, b"mid").unwrap();
    h.peer.send_frame(false, OP_CONTINUATION, b).unwrap();
    h.peer.send_frame(true, OP_CONTINUATION, c).unwrap();
    let r = h.peer.response_to("frag-1", WAIT).unwrap().unwrap();
    assert_eq!(r["text"].as_str().unwrap().chars().count(), 70_000);
    h.stop().unwrap();
}

#[test]
fn bad_registrations_are_reported_by_run() {
    let mut p = Plugin::new();
    p.method("not.valid", Ok);
    p.method("twice", Ok);
    p.method("twice", Ok);
    p.on("bad..topic", |_| {});
    let e = p.run().unwrap_err();
    assert_eq!(e.code, "LM_INVALID_ARGUMENT");
    assert!(
        e.message.contains("not.valid") && e.message.contains("twice") && e.message.contains("bad..topic"),
        "{e}"
    );
}

#[test]
fn typed_arguments_and_results() {
    let mut p = Plugin::new();
    p.method("pair", |args: Value| {
        let (a, b): (String, u32) = logomesh::from_args(args)?;
        logomesh::to_result(vec![a; b as usize])
    });
    let mut h = Harness::start(p).unwrap();
    assert_eq!(h.call("pair", json!(["x", 3])).unwrap(), json!(["x", "x", "x"]));
    assert_eq!(h.call("pair", json!({ "no": 1 })).unwrap_err().code, "LM_INVALID_ARGUMENT");
    h.stop().unwrap();
}

#[test]
fn a_nan_or_infinity_is_refused_not_turned_into_null() {
    let mut p = Plugin::new();
    p.method("stats", |args: Value| {
        let n = args.as_f64().unwrap_or(0.0);
        logomesh::to_result((1.0 / n, vec![1.0f32, (n - 1.0).sqrt() as f32]))
    });
    let mut h = Harness::start(p).unwrap();
    assert_eq!(h.call("stats", json!(2)).unwrap(), json!([0.5, [1.0, 1.0]]));
    let inf = h.call("stats", json!(0)).unwrap_err();
    assert_eq!(inf.code, "LM_PLUGIN_ERROR");
    assert!(inf.message.contains("inf at /0"), "{inf}");
    let nan = h.call("stats", json!(-3)).unwrap_err();
    assert!(nan.message.contains("NaN at /1/1"), "{nan}");
    h.stop().unwrap();
    let e = logomesh::to_args(json!({ "ok": 1 })).and_then(|_| logomesh::to_args(vec![f64::NAN])).unwrap_err();
    assert_eq!(e.code, "LM_INVALID_ARGUMENT");
}

#[test]
fn shared_state_between_handlers() {
    let counter = Arc::new(Mutex::new(0u64));
    let mut p = Plugin::new();
    let c = Arc::clone(&counter);
    p.method("incr", move |_| {
        let mut n = c.lock().unwrap();
        *n += 1;
        Ok(json!(*n))
    });
    let mut h = Harness::start(p).unwrap();
    let ids: Vec<String> = (0..100).map(|_| h.peer.request("incr", json!({}), "host").unwrap()).collect();
    for id in &ids {
        h.peer.response_to(id, WAIT).unwrap().unwrap();
    }
    assert_eq!(*counter.lock().unwrap(), 100);
    h.stop().unwrap();
}

#[test]
fn round_trip_overhead_is_small() {
    let mut h = start();
    for _ in 0..200 {
        h.call("echo", json!({ "n": 1 })).unwrap();
    }
    let mut times: Vec<Duration> = (0..2000)
        .map(|i| {
            let t = Instant::now();
            h.call("echo", json!({ "n": i })).unwrap();
            t.elapsed()
        })
        .collect();
    times.sort();
    let (p50, p99) = (times[times.len() / 2], times[times.len() * 99 / 100]);
    eprintln!("fake hub -> plugin -> fake hub round trip: p50 {p50:?}, p99 {p99:?}");
    // Generous: a debug build on a busy machine; a sleep or poll in the path would show.
    assert!(p50 < Duration::from_millis(2), "p50 {p50:?}");
    h.stop().unwrap();
}
