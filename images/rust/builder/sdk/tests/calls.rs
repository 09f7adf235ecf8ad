//! Calls, events and broadcasts through the fake hub.

mod common;

use common::*;
use logomesh::testing::{Harness, WAIT};
use logomesh::{json, Error, Event, Plugin, Value};
use std::sync::mpsc;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

#[test]
fn call_success_and_error_both_ways() {
    let mut h = start();
    let (id, out) = relayed(&mut h, "relay", "tokenizer.tokenize", 5000);
    assert_eq!(out["to"], json!(["tokenizer"]));
    assert_eq!(out["method"], "tokenize");
    assert_eq!(out["data"], json!({ "q": 1 }));
    assert_eq!(out["timeout"], 5000);
    h.peer.respond(&out["id"], Ok(json!({ "tokens": ["a"] }))).unwrap();
    assert_eq!(h.peer.response_to(&id, WAIT).unwrap().unwrap(), json!({ "tokens": ["a"] }));

    // A host method: no dot in the name.
    let (id, out) = relayed(&mut h, "relay", "get_thoughts", 5000);
    assert_eq!(out["to"], json!(["host"]));
    assert_eq!(out["method"], "get_thoughts");
    let err = Error::new("LM_PERMISSION_DENIED", "not in consumesMethods").with_details(json!({ "method": "get_thoughts" }));
    h.peer.respond(&out["id"], Err(err.clone())).unwrap();
    // The handler returned the call's error with `?`-style propagation: same code back.
    assert_eq!(h.peer.response_to(&id, WAIT).unwrap().unwrap_err(), err);

    // The async variant.
    let (id, out) = relayed(&mut h, "relay_async", "other.work", 5000);
    h.peer.respond(&out["id"], Ok(json!(7))).unwrap();
    assert_eq!(
        h.peer.response_to(&id, WAIT).unwrap().unwrap(),
        json!({ "via": "async", "result": 7 })
    );
    let (id, out) = relayed(&mut h, "relay_async", "other.work", 5000);
    h.peer
        .respond(&out["id"], Err(Error::new("LM_PLUGIN_UNAVAILABLE", "other is not connected")))
        .unwrap();
    assert_eq!(h.peer.response_to(&id, WAIT).unwrap().unwrap_err().code, "LM_PLUGIN_UNAVAILABLE");
    h.stop().unwrap();
}

#[test]
fn call_times_out_locally_and_a_late_answer_is_ignored() {
    let mut h = start();
    for method in ["relay", "relay_async"] {
        let t = Instant::now();
        let (id, out) = relayed(&mut h, method, "slow.thing", 200);
        assert_eq!(out["timeout"], 200);
        let e = h.peer.response_to(&id, WAIT).unwrap().unwrap_err();
        assert_eq!(e.code, "LM_TIMEOUT", "{method}");
        assert!(e.message.contains("200 ms"), "{e}");
        // The hub would have answered at 200 ms; the SDK gives up by itself 500 ms later.
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(700) && took < Duration::from_millis(2500),
            "{method}: {took:?}"
        );
        // The answer arrives after all: dropped, and the plugin still serves.
        h.peer.respond(&out["id"], Ok(json!("late"))).unwrap();
        assert_eq!(h.call("echo", json!(1)).unwrap(), json!(1));
    }
    // The hub's own LM_TIMEOUT answer reaches the caller too.
    let (id, out) = relayed(&mut h, "relay", "slow.thing", 5000);
    h.peer
        .respond(
            &out["id"],
            Err(Error::new("LM_TIMEOUT", "no response from slow.thing within 5000 ms")),
        )
        .unwrap();
    assert_eq!(h.peer.response_to(&id, WAIT).unwrap().unwrap_err().code, "LM_TIMEOUT");
    h.stop().unwrap();
}

#[test]
fn call_before_run_is_unavailable_and_bad_targets_are_refused() {
    let p = Plugin::new();
    let e = p.call("x.y", json!({}), SHORT).unwrap_err();
    assert_eq!(e.code, "LM_CONTROLLER_UNAVAILABLE");
    let e = p.call("x.not-a-method", json!({}), SHORT).unwrap_err();
    assert_eq!(e.code, "LM_INVALID_ARGUMENT");
    assert_eq!(p.emit("a.b", json!(1)).unwrap_err().code, "LM_CONTROLLER_UNAVAILABLE");
    assert_eq!(p.emit("a.*", json!(1)).unwrap_err().code, "LM_INVALID_ARGUMENT");
}

#[test]
fn emit_and_broadcast_messages() {
    let mut h = start();
    assert_eq!(h.call("announce", json!({ "text": "hi" })).unwrap(), json!(true));
    let mut msgs = Vec::new();
    for _ in 0..4 {
        msgs.push(
            h.peer
                .recv_where(WAIT, |v| v["type"] == "event" || v["type"] == "broadcast")
                .unwrap(),
        );
    }
    assert_eq!(
        (msgs[0]["type"].as_str(), msgs[0]["topic"].as_str()),
        (Some("event"), Some("thought.added"))
    );
    assert_eq!(msgs[0]["data"], json!({ "text": "hi" }));
    assert!(msgs[0].get("to").is_none());
    assert_eq!(msgs[1]["to"], json!(["other"]));
    assert_eq!(
        (msgs[2]["type"].as_str(), msgs[2]["topic"].as_str()),
        (Some("broadcast"), Some("cache.flush"))
    );
    assert_eq!(msgs[3]["type"], "broadcast");
    assert!(msgs[3].get("topic").is_none());
    assert_eq!(msgs[3]["data"], "to everyone");
    let ids: std::collections::HashSet<String> = msgs.iter().map(|m| m["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids.len(), 4, "every message has its own id");
    // A refusal of an event comes back as an error response: logged, nothing breaks.
    h.peer
        .respond(&msgs[0]["id"], Err(Error::new("LM_PERMISSION_DENIED", "messaging is off")))
        .unwrap();
    assert_eq!(h.call("echo", json!(2)).unwrap(), json!(2));
    h.stop().unwrap();
}

#[test]
fn acknowledged_events_return_the_hubs_answer() {
    let p = sample_plugin();
    let hub = p.hub();
    let mut h = Harness::start(p).expect("the plugin connects and says hello");
    let emitter = hub.clone();
    let sent = thread::spawn(move || emitter.emit_acked("thought.added", json!(1)));
    let m = h.peer.recv_type("event", WAIT).unwrap();
    assert_eq!((m["ack"].as_bool(), m["topic"].as_str()), (Some(true), Some("thought.added")));
    h.peer.respond(&m["id"], Ok(json!({ "topic": "thought.added" }))).unwrap();
    assert_eq!(sent.join().unwrap(), Ok(()));
    // A refusal is returned with its code.
    let emitter = hub.clone();
    let sent = thread::spawn(move || emitter.broadcast_acked("secret.x", json!(null)));
    let m = h.peer.recv_type("broadcast", WAIT).unwrap();
    assert_eq!(m["ack"], json!(true));
    h.peer
        .respond(&m["id"], Err(Error::new("LM_PERMISSION_DENIED", "coordination.publishes does not list 'secret.x'")))
        .unwrap();
    assert_eq!(sent.join().unwrap().unwrap_err().code, "LM_PERMISSION_DENIED");
    // Without ack, nothing is asked for.
    hub.emit("thought.added", json!(2)).unwrap();
    assert!(h.peer.recv_type("event", WAIT).unwrap().get("ack").is_none());
    h.stop().unwrap();
}

#[test]
fn on_subscribes_and_dispatches_matching_events_in_order() {
    let (tx, rx) = mpsc::channel::<(String, Event)>();
    let mut p = sample_plugin();
    let t = Mutex::new(tx.clone());
    p.on("thought.*", move |e| t.lock().unwrap().send(("thought.*".into(), e)).unwrap());
    let t = Mutex::new(tx.clone());
    p.on("cache.flush", move |e| t.lock().unwrap().send(("cache.flush".into(), e)).unwrap());
    let t = Mutex::new(tx);
    p.on("*", move |e| t.lock().unwrap().send(("*".into(), e)).unwrap());
    let hub = p.hub();
    let mut h = Harness::start(p).unwrap();
    // Registered before run: in hello, in order, subscribed before the plugin is ready;
    // no subscribe follows.
    assert_eq!(h.hello["subscriptions"], json!(["thought.*", "cache.flush", "*"]));
    h.peer.auto_subscribe = false;
    assert!(h.peer.recv_where(SHORT, |v| v["type"] == "subscribe").is_err());
    h.peer.auto_subscribe = true;
    let mut subs = h.peer.subscriptions.clone();
    subs.sort();
    assert_eq!(subs, ["*", "cache.flush", "thought.*"]);

    for i in 0..20 {
        h.peer.deliver("event", Some("thought.added"), json!(i), "other").unwrap();
    }
    h.peer.deliver("broadcast", Some("cache.flush"), json!(null), "host").unwrap();
    h.peer.deliver("broadcast", None, json!("all"), "other").unwrap();
    h.peer.deliver("event", Some("thoughts.added"), json!("only *"), "other").unwrap();

    let mut got = Vec::new();
    while let Ok(x) = rx.recv_timeout(SHORT) {
        got.push(x);
    }
    let thought: Vec<Value> = got.iter().filter(|(p, _)| p == "thought.*").map(|(_, e)| e.data.clone()).collect();
    assert_eq!(thought, (0..20).map(|i| json!(i)).collect::<Vec<_>>(), "in order, each once");
    let first = &got.iter().find(|(p, _)| p == "thought.*").unwrap().1;
    assert_eq!(
        (first.topic.as_str(), first.from.as_str(), first.broadcast),
        ("thought.added", "other", false)
    );
    let flush: Vec<&Event> = got.iter().filter(|(p, _)| p == "cache.flush").map(|(_, e)| e).collect();
    assert_eq!(flush.len(), 1);
    assert!(flush[0].broadcast);
    let star: Vec<&Event> = got.iter().filter(|(p, _)| p == "*").map(|(_, e)| e).collect();
    assert_eq!(star.len(), 23, "* sees everything, a topic-less broadcast too");
    assert!(star.iter().any(|e| e.topic.is_empty() && e.data == "all"));

    // Unsubscribing at run time is confirmed by the hub.
    let off = thread::spawn(move || hub.off("cache.flush"));
    let until = Instant::now() + WAIT;
    while h.peer.subscriptions.len() > 2 && Instant::now() < until {
        let _ = h.peer.recv_where(Duration::from_millis(50), |_| false);
    }
    off.join().unwrap().unwrap();
    assert!(!h.peer.subscriptions.contains(&"cache.flush".to_string()));
    h.stop().unwrap();
}
