//! Reconnecting after the hub connection is lost.

mod common;

use common::*;
use logomesh::testing::{Harness, WAIT};
use logomesh::{block_on, json, Error, Event, Hub, Plugin, Value};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

// --- reconnecting ---------------------------------------------------------------------------

/// Wait until the plugin has noticed that its connection is lost (it is reconnecting).
fn noticed(hub: &Hub) {
    let until = Instant::now() + WAIT;
    loop {
        if let Err(e) = hub.emit("probe.lost", json!(null)) {
            if e.code == "LM_PLUGIN_UNAVAILABLE" {
                return;
            }
        }
        assert!(Instant::now() < until, "the plugin did not notice the lost connection");
        thread::sleep(Duration::from_millis(5));
    }
}

/// The fake hub goes away as a controller killed with kill -9 does.
fn crash(h: &mut Harness) {
    h.peer.drop_connection();
    h.hub.crash();
}

#[test]
fn a_pattern_the_hub_refused_is_not_in_the_next_hello() {
    let mut p = Plugin::new();
    let hub = p.hub();
    p.method("listen", move |args: Value| {
        hub.on(args["topic"].as_str().unwrap_or(""), |_| {})?;
        Ok(json!("listening"))
    });
    p.reconnect(Duration::from_secs(10));
    let mut h = Harness::start(p).unwrap();
    h.peer.subscribes = Some(vec!["news.*".to_string()]);
    let e = h.call("listen", json!({ "topic": "secrets.plans" })).unwrap_err();
    assert_eq!(e.code, "LM_PERMISSION_DENIED", "{e}");
    assert_eq!(h.call("listen", json!({ "topic": "news.flash" })).unwrap(), json!("listening"));
    crash(&mut h);
    h.hub.restart().unwrap();
    // Had the refused handler stayed, this hello would name secrets.plans and a real hub
    // would refuse all of it: the plugin would end at its first reconnect.
    let hello = h.reaccept().unwrap();
    assert_eq!(hello["subscriptions"], json!(["news.flash"]), "{hello}");
    h.stop().unwrap();
}

#[test]
fn reconnects_says_hello_again_subscribes_again_and_serves_again() {
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (started_tx, release_rx) = (Mutex::new(started_tx), Mutex::new(release_rx));
    let events = Arc::new(Mutex::new(Vec::<Value>::new()));
    let mut p = Plugin::new();
    let hub = p.hub();
    p.method("echo", Ok);
    p.method("held", move |_| {
        started_tx.lock().unwrap().send(()).unwrap();
        let _ = release_rx.lock().unwrap().recv();
        Ok(json!("late"))
    });
    let seen = Arc::clone(&events);
    p.on("thought.added", move |ev: Event| seen.lock().unwrap().push(ev.data));
    p.reconnect(Duration::from_secs(10));
    let mut h = Harness::start(p).unwrap();
    let first = h.hello.clone();
    assert_eq!(h.call("echo", json!(1)).unwrap(), json!(1));
    await_subscriptions(&mut h.peer, 1);
    assert_eq!(h.peer.subscriptions, vec!["thought.added".to_string()]);
    // A call of the plugin's in flight, and a request the plugin is serving.
    let caller = hub.clone();
    let in_flight = thread::spawn(move || caller.call("black.hole", json!(null), Duration::from_secs(10)));
    h.peer.recv_type("request", WAIT).unwrap();
    let held = h.peer.request("held", json!(null), "host").unwrap();
    started_rx.recv_timeout(WAIT).unwrap();

    crash(&mut h);
    let e = in_flight.join().unwrap().unwrap_err();
    assert_eq!(
        (e.code.as_str(), e.message.as_str()),
        ("LM_PLUGIN_UNAVAILABLE", "hub connection lost")
    );
    noticed(&hub);
    // Calls made now wait for the connection (blocking and async); events cannot be sent.
    let caller = hub.clone();
    let waiting = thread::spawn(move || caller.call("tokenizer.tokenize", json!({ "text": "a b" }), Duration::from_secs(5)));
    let caller = hub.clone();
    let waiting_async =
        thread::spawn(move || block_on(caller.call_async("tokenizer.tokenize", json!({ "text": "c" }), Duration::from_secs(5))));
    assert_eq!(hub.emit("thought.added", json!("lost")).unwrap_err().code, "LM_PLUGIN_UNAVAILABLE");
    thread::sleep(Duration::from_millis(400));
    assert!(
        !waiting.is_finished() && !waiting_async.is_finished(),
        "a call made while reconnecting returned before the hub was back"
    );

    h.hub.restart().unwrap();
    let hello = h.reaccept().unwrap();
    assert_eq!(hello["methods"], first["methods"]);
    assert_eq!(hello["sdk"], first["sdk"]);
    for text in ["a b", "c"] {
        let req = h
            .peer
            .recv_where(WAIT, |v| v["type"] == "request" && v["data"]["text"] == text)
            .unwrap();
        assert!(req["timeout"].as_u64().unwrap() <= 4600, "the timeout left: {}", req["timeout"]);
        h.peer.respond(&req["id"], Ok(json!({ "tokens": text }))).unwrap();
    }
    assert_eq!(waiting.join().unwrap().unwrap(), json!({ "tokens": "a b" }));
    assert_eq!(waiting_async.join().unwrap().unwrap(), json!({ "tokens": "c" }));
    await_subscriptions(&mut h.peer, 1);
    assert_eq!(h.peer.subscriptions, vec!["thought.added".to_string()]);

    // Serving again: requests, events, emits.
    assert_eq!(h.call("echo", json!(2)).unwrap(), json!(2));
    h.peer.deliver("event", Some("thought.added"), json!("after"), "writer").unwrap();
    let until = Instant::now() + WAIT;
    while events.lock().unwrap().is_empty() {
        assert!(Instant::now() < until, "no event after reconnecting");
        thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(*events.lock().unwrap(), vec![json!("after")]);
    hub.emit("thought.added", json!("back")).unwrap();
    assert_eq!(h.peer.recv_type("event", WAIT).unwrap()["data"], "back");
    // The request served across the loss: its answer cannot be delivered.
    release_tx.send(()).unwrap();
    assert!(
        h.peer.response_to(&held, SHORT).is_err(),
        "an answer to a request of the lost connection arrived"
    );
    h.stop().unwrap();
}

#[test]
fn a_dropped_connection_to_a_hub_still_listening_is_made_again_at_once() {
    let mut h = start();
    let t = Instant::now();
    h.peer.drop_connection();
    h.reaccept().unwrap();
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(h.call("echo", json!(1)).unwrap(), json!(1));
    // A close with a status, without shutdown, is a lost connection too.
    let mut payload = 1001u16.to_be_bytes().to_vec();
    payload.extend_from_slice(b"going away");
    h.peer.send_frame(true, logomesh::testing::OP_CLOSE, &payload).unwrap();
    h.reaccept().unwrap();
    assert_eq!(h.call("echo", json!(2)).unwrap(), json!(2));
    h.stop().unwrap();
}

#[test]
fn a_call_made_while_reconnecting_fails_when_its_timeout_passes() {
    let mut p = sample_plugin();
    p.reconnect(Duration::from_secs(10));
    let hub = p.hub();
    let mut h = Harness::start(p).unwrap();
    crash(&mut h);
    noticed(&hub);
    let t = Instant::now();
    let e = hub.call("other.work", json!(null), SHORT).unwrap_err();
    assert_eq!(e.code, "LM_PLUGIN_UNAVAILABLE");
    assert!(
        t.elapsed() >= Duration::from_millis(290) && t.elapsed() < Duration::from_secs(2),
        "{:?}",
        t.elapsed()
    );
    let t = Instant::now();
    let e = block_on(hub.call_async("other.work", json!(null), SHORT)).unwrap_err();
    assert_eq!(e.code, "LM_PLUGIN_UNAVAILABLE");
    assert!(
        t.elapsed() >= Duration::from_millis(290) && t.elapsed() < Duration::from_secs(2),
        "{:?}",
        t.elapsed()
    );
    hub.stop(Duration::ZERO);
    assert_eq!(h.wait(), Ok(()));
}

#[test]
fn no_hub_within_the_reconnect_window_makes_run_fail() {
    let mut p = sample_plugin();
    p.reconnect(Duration::from_millis(400));
    let hub = p.hub();
    let mut h = Harness::start(p).unwrap();
    crash(&mut h);
    let t = Instant::now();
    noticed(&hub);
    let caller = hub.clone();
    let waiting = thread::spawn(move || caller.call("other.work", json!(null), Duration::from_secs(30)));
    let e = h.wait().unwrap_err();
    assert_eq!(e.code, "LM_CONTROLLER_UNAVAILABLE");
    assert!(e.message.contains("within 400 ms"), "{e}");
    assert!(
        t.elapsed() >= Duration::from_millis(300) && t.elapsed() < Duration::from_secs(3),
        "{:?}",
        t.elapsed()
    );
    // A call waiting for the connection learns that the plugin stopped serving.
    assert_eq!(waiting.join().unwrap().unwrap_err().code, "LM_CONTROLLER_UNAVAILABLE");
}

#[test]
fn a_hello_refused_on_reconnect_makes_run_fail_with_the_hubs_code() {
    let mut p = sample_plugin();
    p.reconnect(Duration::from_secs(10));
    let mut h = Harness::start(p).unwrap();
    crash(&mut h);
    h.hub.restart().unwrap();
    let mut peer = h.hub.accept(WAIT).unwrap();
    let hello = peer.recv_type("hello", WAIT).unwrap();
    peer.respond(&hello["id"], Err(Error::new("LM_PERMISSION_DENIED", "methods not listed: boom")))
        .unwrap();
    assert_eq!(h.wait().unwrap_err().code, "LM_PERMISSION_DENIED");
}

#[test]
fn stop_while_reconnecting_returns_ok_at_once() {
    let mut p = sample_plugin();
    p.reconnect(Duration::from_secs(10));
    let hub = p.hub();
    let mut h = Harness::start(p).unwrap();
    crash(&mut h);
    noticed(&hub);
    thread::sleep(SHORT);
    let t = Instant::now();
    hub.stop(Duration::from_secs(5));
    assert_eq!(h.wait(), Ok(()));
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
}

