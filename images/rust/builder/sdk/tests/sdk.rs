//! The SDK against a fake hub: a WebSocket server on a Unix socket in a temporary folder,
//! using the same frame codec from the server side.

use logomesh::testing::{FakeHub, Harness, HubPeer, OP_CONTINUATION, OP_PING, OP_TEXT, WAIT};
use logomesh::{block_on, json, sleep, Error, Event, Hub, Plugin, Value};
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const SHORT: Duration = Duration::from_millis(300);

/// A plugin with one method of each kind and a few that fail in different ways.
fn sample_plugin() -> Plugin {
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

fn start() -> Harness {
    Harness::start(sample_plugin()).expect("the plugin connects and says hello")
}

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

/// Start a `relay` call and return the request the plugin sent to the hub because of it.
fn relayed(h: &mut Harness, method: &str, target: &str, timeout_ms: u64) -> (String, Value) {
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
    // Subscriptions are sent after the hello and answered by the fake hub.
    let _ = h.call("echo", json!(0));
    let until = Instant::now() + WAIT;
    while h.peer.subscriptions.len() < 3 && Instant::now() < until {
        let _ = h.peer.recv_where(Duration::from_millis(50), |_| false);
    }
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
fn shutdown_finishes_in_flight_requests_refuses_new_ones_and_closes_1000() {
    let mut h = start();
    let slow = h.peer.request("block", json!({ "ms": 500 }), "host").unwrap();
    let slow_async = h.peer.request("later", json!({ "ms": 500 }), "host").unwrap();
    // Wait until both are in flight: a quick call after them has been answered.
    assert_eq!(h.call("echo", json!(1)).unwrap(), json!(1));
    h.peer.shutdown(5000).unwrap();
    let refused = h.peer.request("echo", json!(2), "host").unwrap();
    assert_eq!(
        h.peer.response_to(&refused, WAIT).unwrap().unwrap_err().code,
        "LM_PLUGIN_UNAVAILABLE"
    );
    assert_eq!(h.peer.response_to(&slow, WAIT).unwrap().unwrap(), json!("done"));
    assert_eq!(h.peer.response_to(&slow_async, WAIT).unwrap().unwrap(), json!({ "slept": 500 }));
    assert_eq!(h.peer.expect_close(WAIT).unwrap(), Some(1000));
}

#[test]
fn shutdown_grace_bounds_the_wait() {
    let mut h = start();
    let _stuck = h.peer.request("block", json!({ "ms": 20_000 }), "host").unwrap();
    assert_eq!(h.call("echo", json!(1)).unwrap(), json!(1));
    let t = Instant::now();
    h.peer.shutdown(300).unwrap();
    assert_eq!(h.peer.expect_close(WAIT).unwrap(), Some(1000));
    assert!(t.elapsed() < Duration::from_millis(3000), "{:?}", t.elapsed());
}

#[test]
fn stop_through_the_harness_returns_ok() {
    let h = start();
    assert_eq!(h.stop(), Ok(()));
}

#[test]
fn stop_from_code_answers_then_closes() {
    let mut p = Plugin::new();
    let hub = p.hub();
    p.method("quit", move |_| {
        hub.stop(Duration::from_secs(2));
        Ok(json!("bye"))
    });
    let mut h = Harness::start(p).unwrap();
    assert_eq!(h.call("quit", json!(null)).unwrap(), json!("bye"));
    assert_eq!(h.peer.expect_close(WAIT).unwrap(), Some(1000));
    assert_eq!(h.wait(), Ok(()));
}

#[test]
fn refused_hello_makes_run_fail_with_the_hubs_code() {
    let hub = FakeHub::new().unwrap();
    let mut p = sample_plugin();
    p.socket_path(hub.path());
    let run = thread::spawn(move || p.run());
    let mut peer: HubPeer = hub.accept(WAIT).unwrap();
    let hello = peer.recv_type("hello", WAIT).unwrap();
    peer.respond(
        &hello["id"],
        Err(Error::new(
            "LM_PERMISSION_DENIED",
            "methods not listed under coordination.exposesMethods: boom",
        )),
    )
    .unwrap();
    let e = run.join().unwrap().unwrap_err();
    assert_eq!(e.code, "LM_PERMISSION_DENIED");
}

#[test]
fn with_reconnect_off_a_lost_connection_fails_open_calls_and_run() {
    let mut p = sample_plugin();
    p.reconnect(Duration::ZERO);
    let mut h = Harness::start(p).unwrap();
    let _ = relayed(&mut h, "relay", "other.work", 20_000);
    let t = Instant::now();
    h.peer.drop_connection();
    let e = h.wait().unwrap_err();
    assert_eq!(e.code, "LM_CONTROLLER_UNAVAILABLE");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}

#[test]
fn run_without_a_socket_fails_clearly() {
    let mut p = Plugin::new();
    p.socket_path("/nonexistent/hub.sock").connect_timeout(Duration::from_millis(300));
    let t = Instant::now();
    let e = p.run().unwrap_err();
    assert_eq!(e.code, "LM_CONTROLLER_UNAVAILABLE");
    assert!(e.message.contains("/nonexistent/hub.sock"), "{e}");
    assert!(
        t.elapsed() >= Duration::from_millis(300) && t.elapsed() < Duration::from_secs(5),
        "{:?}",
        t.elapsed()
    );
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

// --- signals: in a child process, the test binary itself ---------------------------------

extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}

const CHILD_ENV: &str = "LOGOMESH_SDK_TEST_CHILD";

/// In the child: serve until a signal, then exit with what run() returned (1 on an error,
/// as `fn main() -> Result<(), Error>` does).
fn child_main() -> ! {
    let mut p = Plugin::new();
    let hub = p.hub();
    let pokes = Arc::new(Mutex::new(Vec::<Value>::new()));
    if std::env::var_os("LOGOMESH_SDK_TEST_CHILD_SUBSCRIBE").is_some() {
        let seen = Arc::clone(&pokes);
        p.on("child.poke", move |ev: Event| seen.lock().unwrap().push(ev.data));
    }
    p.method("pokes", move |_| Ok(Value::Array(pokes.lock().unwrap().clone())));
    let h = hub.clone();
    p.method("slow", move |_| {
        h.emit("slow.started", json!(null))?;
        thread::sleep(Duration::from_millis(400));
        Ok(json!("finished"))
    });
    p.method("stuck", move |_| {
        hub.emit("stuck.started", json!(null))?;
        thread::sleep(Duration::from_secs(60));
        Ok(json!("never"))
    });
    let code = match p.run() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("run failed: {e}");
            1
        }
    };
    std::process::exit(code);
}

fn spawn_child(test_name: &str, hub: &FakeHub) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test_name, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .env("LOGOMESH_HUB_SOCKET", hub.path())
        .env("LOGOMESH_PLUGIN_ID", "child")
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

fn wait_exit(child: &mut std::process::Child) -> std::process::ExitStatus {
    let until = Instant::now() + WAIT;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < until, "the child did not exit");
        thread::sleep(Duration::from_millis(10));
    }
}

fn signal_stops_cleanly(test_name: &str, sig: i32) {
    let hub = FakeHub::new().unwrap();
    let mut child = spawn_child(test_name, &hub);
    let mut peer = hub.accept(WAIT).unwrap();
    let hello = peer.accept_hello(WAIT).unwrap();
    assert_eq!(hello["methods"], json!(["pokes", "slow", "stuck"]));
    let id = peer.request("slow", json!({}), "host").unwrap();
    peer.recv_where(WAIT, |v| v["topic"] == "slow.started").unwrap();
    assert_eq!(unsafe { kill(child.id() as i32, sig) }, 0);
    // The request in flight still answers, then the plugin closes with 1000 and exits 0.
    assert_eq!(peer.response_to(&id, WAIT).unwrap().unwrap(), json!("finished"));
    assert_eq!(peer.expect_close(WAIT).unwrap(), Some(1000));
    let status = wait_exit(&mut child);
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[test]
fn sigterm_finishes_in_flight_work_and_exits_zero() {
    if std::env::var_os(CHILD_ENV).is_some() {
        child_main();
    }
    signal_stops_cleanly("sigterm_finishes_in_flight_work_and_exits_zero", 15);
}

#[test]
fn sigint_does_the_same() {
    if std::env::var_os(CHILD_ENV).is_some() {
        child_main();
    }
    signal_stops_cleanly("sigint_does_the_same", 2);
}

#[test]
fn a_second_signal_stops_waiting_for_in_flight_requests() {
    if std::env::var_os(CHILD_ENV).is_some() {
        child_main();
    }
    let hub = FakeHub::new().unwrap();
    let mut child = spawn_child("a_second_signal_stops_waiting_for_in_flight_requests", &hub);
    let mut peer = hub.accept(WAIT).unwrap();
    peer.accept_hello(WAIT).unwrap();
    let _ = peer.request("stuck", json!({}), "host").unwrap();
    peer.recv_where(WAIT, |v| v["topic"] == "stuck.started").unwrap();
    let t = Instant::now();
    assert_eq!(unsafe { kill(child.id() as i32, 15) }, 0);
    // Still waiting for the stuck request (the grace period is 5 s)...
    assert!(
        peer.recv_frame(Duration::from_millis(500)).is_err(),
        "closed before the grace period ended"
    );
    assert_eq!(unsafe { kill(child.id() as i32, 15) }, 0);
    // ...until the second signal.
    assert_eq!(peer.expect_close(WAIT).unwrap(), Some(1000));
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    assert_eq!(wait_exit(&mut child).code(), Some(0));
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

/// Subscriptions are sent after the hello and may arrive after a first answer: read until
/// `n` are in (or the wait is over).
fn await_subscriptions(peer: &mut HubPeer, n: usize) {
    let until = Instant::now() + WAIT;
    while peer.subscriptions.len() < n && Instant::now() < until {
        let _ = peer.recv_where(Duration::from_millis(50), |_| false);
    }
}

/// The fake hub goes away as a controller killed with kill -9 does.
fn crash(h: &mut Harness) {
    h.peer.drop_connection();
    h.hub.crash();
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

/// A child with its stderr captured, and more environment.
fn spawn_child_piped(test_name: &str, hub: &FakeHub, env: &[(&str, &str)]) -> std::process::Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", test_name, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .env("LOGOMESH_SDK_TEST_CHILD_SUBSCRIBE", "1")
        .env("LOGOMESH_HUB_SOCKET", hub.path())
        .env("LOGOMESH_PLUGIN_ID", "child")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

fn stderr_of(child: &mut std::process::Child) -> String {
    let mut text = String::new();
    child.stderr.take().unwrap().read_to_string(&mut text).unwrap();
    text
}

#[test]
fn as_a_process_reconnects_serves_again_and_exits_zero_on_shutdown() {
    if std::env::var_os(CHILD_ENV).is_some() {
        child_main();
    }
    let mut hub = FakeHub::new().unwrap();
    let mut child = spawn_child_piped("as_a_process_reconnects_serves_again_and_exits_zero_on_shutdown", &hub, &[]);
    let mut peer = hub.accept(WAIT).unwrap();
    peer.accept_hello(WAIT).unwrap();
    assert_eq!(peer.call("pokes", json!(null), WAIT).unwrap().unwrap(), json!([]));
    peer.drop_connection();
    hub.crash();
    thread::sleep(Duration::from_millis(500));
    assert!(child.try_wait().unwrap().is_none(), "the plugin exited on a lost connection");
    hub.restart().unwrap();
    let mut peer = hub.accept(WAIT).unwrap();
    assert_eq!(peer.accept_hello(WAIT).unwrap()["methods"], json!(["pokes", "slow", "stuck"]));
    assert_eq!(peer.call("pokes", json!(null), WAIT).unwrap().unwrap(), json!([]));
    await_subscriptions(&mut peer, 1);
    assert_eq!(peer.subscriptions, vec!["child.poke".to_string()]);
    peer.deliver("event", Some("child.poke"), json!("after"), "other").unwrap();
    let until = Instant::now() + WAIT;
    while peer.call("pokes", json!(null), WAIT).unwrap().unwrap() != json!(["after"]) {
        assert!(Instant::now() < until, "the event after reconnecting was not handled");
        thread::sleep(Duration::from_millis(10));
    }
    peer.shutdown(2000).unwrap();
    assert_eq!(peer.expect_close(WAIT).unwrap(), Some(1000));
    assert_eq!(wait_exit(&mut child).code(), Some(0));
    let err = stderr_of(&mut child);
    assert!(
        err.contains("logomesh: plugin child: hub connection lost (code 1006); reconnecting for up to 60000 ms\n"),
        "{err}"
    );
    assert!(err.contains("logomesh: plugin child: reconnected to the hub after "), "{err}");
}

#[test]
fn as_a_process_no_hub_within_logomesh_reconnect_ms_exits_1() {
    if std::env::var_os(CHILD_ENV).is_some() {
        child_main();
    }
    let mut hub = FakeHub::new().unwrap();
    let mut child = spawn_child_piped(
        "as_a_process_no_hub_within_logomesh_reconnect_ms_exits_1",
        &hub,
        &[("LOGOMESH_RECONNECT_MS", "300")],
    );
    let mut peer = hub.accept(WAIT).unwrap();
    peer.accept_hello(WAIT).unwrap();
    peer.drop_connection();
    hub.crash();
    let t = Instant::now();
    assert_eq!(wait_exit(&mut child).code(), Some(1));
    assert!(t.elapsed() >= Duration::from_millis(250), "{:?}", t.elapsed());
    let err = stderr_of(&mut child);
    assert!(
        err.contains("reconnecting for up to 300 ms") && err.contains("LM_CONTROLLER_UNAVAILABLE") && !err.contains("reconnected"),
        "{err}"
    );
}

#[test]
fn as_a_process_sigterm_while_reconnecting_exits_zero() {
    if std::env::var_os(CHILD_ENV).is_some() {
        child_main();
    }
    let mut hub = FakeHub::new().unwrap();
    let mut child = spawn_child_piped("as_a_process_sigterm_while_reconnecting_exits_zero", &hub, &[]);
    let mut peer = hub.accept(WAIT).unwrap();
    peer.accept_hello(WAIT).unwrap();
    peer.drop_connection();
    hub.crash();
    thread::sleep(SHORT);
    assert_eq!(unsafe { kill(child.id() as i32, 15) }, 0);
    assert_eq!(wait_exit(&mut child).code(), Some(0));
    assert!(stderr_of(&mut child).contains("hub connection lost"));
}
