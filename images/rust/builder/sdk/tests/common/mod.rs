//! What the SDK's test files share: a sample plugin with one method of each kind, run
//! against the fake hub.
#![allow(dead_code)]

use logomesh::testing::{Harness, HubPeer, WAIT};
use logomesh::{json, sleep, Error, Plugin, Value};
use std::thread;
use std::time::{Duration, Instant};

pub const SHORT: Duration = Duration::from_millis(300);

/// A plugin with one method of each kind and a few that fail in different ways.
pub fn sample_plugin() -> Plugin {
    let mut p = Plugin::new();
    let hub = p.hub();
    p.method("echo", |args: Value| Ok(args));
    p.method("add", |args: Value| {
        let a = args["a"].as_i64().ok_or_else(|| Error::invalid_argument("a must be an integer"))?;
        let b = args["b"].as_i64().ok_or_else(|| Error::invalid_argument("b must be an integer"))?;
        Ok(json!({ "sum": a + b }))
    });
    p.method_async("later", |args: Value| async move {
        let ms = args["ms"].as_u64().unwrap_or(0);
        sleep(Duration::from_millis(ms)).await;
        Ok(json!({ "slept": ms }))
    });
    p.method("block", |args: Value| {
        thread::sleep(Duration::from_millis(args["ms"].as_u64().unwrap_or(0)));
        Ok(json!("done"))
    });
    p.method("coded", |_| {
        Err(Error::new("E_OWN_CODE", "a coded failure").with_details(json!({ "field": "x" })))
    });
    p.method("parse", |args: Value| {
        let n: i64 = args["text"].as_str().unwrap_or("").parse()?;
        Ok(json!(n))
    });
    p.method("boom", |_| -> Result<Value, Error> { panic!("the handler fell over") });
    let h = hub.clone();
    p.method("relay", move |args: Value| {
        let target = args["target"].as_str().unwrap_or("").to_string();
        let ms = args["timeoutMs"].as_u64().unwrap_or(5000);
        h.call(&target, args["data"].clone(), Duration::from_millis(ms))
    });
    let h = hub.clone();
    p.method_async("relay_async", move |args: Value| {
        let call = h.call_async(
            args["target"].as_str().unwrap_or(""),
            args["data"].clone(),
            Duration::from_millis(args["timeoutMs"].as_u64().unwrap_or(5000)),
        );
        async move { call.await.map(|v| json!({ "via": "async", "result": v })) }
    });
    let h = hub.clone();
    p.method("announce", move |args: Value| {
        h.emit("thought.added", args.clone())?;
        h.emit_to("direct.note", json!(1), &["other"])?;
        h.broadcast("cache.flush", json!(null))?;
        h.broadcast("", json!("to everyone"))?;
        Ok(json!(true))
    });
    p
}

pub fn start() -> Harness {
    Harness::start(sample_plugin()).expect("the plugin connects and says hello")
}

pub fn relayed(h: &mut Harness, method: &str, target: &str, timeout_ms: u64) -> (String, Value) {
    let id = h
        .peer
        .request(
            method,
            json!({ "target": target, "data": { "q": 1 }, "timeoutMs": timeout_ms }),
            "host",
        )
        .unwrap();
    let out = h.peer.recv_type("request", WAIT).unwrap();
    (id, out)
}

/// Subscriptions are sent after the hello and may arrive after a first answer: read until
/// `n` are in (or the wait is over).
pub fn await_subscriptions(peer: &mut HubPeer, n: usize) {
    let until = Instant::now() + WAIT;
    while peer.subscriptions.len() < n && Instant::now() < until {
        let _ = peer.recv_where(Duration::from_millis(50), |_| false);
    }
}
