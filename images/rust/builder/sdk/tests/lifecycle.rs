//! Shutdown, signals, and the SDK as a process: in a child process, the test binary itself.

mod common;

use common::*;
use logomesh::testing::{FakeHub, Harness, HubPeer, WAIT};
use logomesh::{json, Error, Event, Plugin, Value};
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

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
fn a_hello_refused_for_a_subscription_makes_run_fail_naming_the_topic() {
    let hub = FakeHub::new().unwrap();
    let mut p = sample_plugin();
    p.on("news.flash", |_| {});
    p.on("secrets.*", |_| {});
    p.socket_path(hub.path());
    let run = thread::spawn(move || p.run());
    let mut peer: HubPeer = hub.accept(WAIT).unwrap();
    peer.subscribes = Some(vec!["news.*".to_string()]);
    let hello = peer.accept_hello(WAIT).unwrap();
    assert_eq!(hello["subscriptions"], json!(["news.flash", "secrets.*"]));
    let e = run.join().unwrap().unwrap_err();
    assert_eq!(e.code, "LM_PERMISSION_DENIED");
    assert_eq!(
        e.message,
        "plugin plugin may not subscribe to 'secrets.*': no pattern under coordination.subscribes covers it (listed: news.*)"
    );
    assert!(peer.subscriptions.is_empty());
}

#[test]
fn a_pattern_registered_while_hello_waits_is_subscribed_after_it() {
    let hub = FakeHub::new().unwrap();
    let mut p = sample_plugin();
    p.on("early", |_| {});
    p.on("dropped", |_| {});
    p.socket_path(hub.path());
    let handle = p.hub();
    let run = thread::spawn(move || p.run());
    let mut peer: HubPeer = hub.accept(WAIT).unwrap();
    peer.auto_subscribe = false;
    let hello = peer.recv_type("hello", WAIT).unwrap();
    assert_eq!(hello["subscriptions"], json!(["early", "dropped"]));
    // Not ready yet: these wait for the answer to hello.
    handle.on("during", |_| {}).unwrap();
    handle.off("dropped").unwrap();
    assert!(peer.recv_where(SHORT, |_| true).is_err(), "nothing is sent before hello is answered");
    peer.respond(&hello["id"], Ok(json!({ "plugin": "plugin", "protocol": 1 }))).unwrap();
    for (kind, topic) in [("subscribe", "during"), ("unsubscribe", "dropped")] {
        let m = peer.recv_where(WAIT, |v| v["type"] == kind).unwrap();
        assert_eq!(m["topic"], topic);
        peer.respond(&m["id"], Ok(json!({ "topic": topic }))).unwrap();
    }
    handle.stop(Duration::ZERO);
    assert_eq!(peer.expect_close(WAIT).unwrap(), Some(1000));
    run.join().unwrap().unwrap();
}

#[test]
fn a_request_right_behind_the_answer_to_hello_subscribes_before_it_answers() {
    let hub = FakeHub::new().unwrap();
    let mut p = sample_plugin();
    let handle = p.hub();
    p.method("listen", move |args: Value| {
        handle.on(args["topic"].as_str().unwrap_or(""), |_| {})?;
        Ok(json!("listening"))
    });
    p.socket_path(hub.path());
    let stopper = p.hub();
    let run = thread::spawn(move || p.run());
    let mut peer: HubPeer = hub.accept(WAIT).unwrap();
    peer.auto_subscribe = false;
    let hello = peer.recv_type("hello", WAIT).unwrap();
    peer.respond(&hello["id"], Ok(json!({ "plugin": "plugin", "protocol": 1 }))).unwrap();
    let id = peer.request("listen", json!({ "topic": "right.behind" }), "host").unwrap();
    let first = peer.recv(WAIT).unwrap();
    assert_eq!((first["type"].as_str(), first["topic"].as_str()), (Some("subscribe"), Some("right.behind")), "{first}");
    peer.respond(&first["id"], Ok(json!({ "topic": "right.behind" }))).unwrap();
    assert_eq!(peer.response_to(&id, WAIT).unwrap().unwrap(), json!("listening"));
    stopper.stop(Duration::ZERO);
    assert_eq!(peer.expect_close(WAIT).unwrap(), Some(1000));
    run.join().unwrap().unwrap();
}

#[test]
fn a_refused_subscription_while_serving_is_returned_and_the_plugin_goes_on() {
    let mut p = sample_plugin();
    let hub = p.hub();
    // A handler that subscribes: requests are read after the answer to hello, so its `on`
    // subscribes at once and returns the hub's answer.
    p.method("listen", move |args: Value| {
        hub.on(args["topic"].as_str().unwrap_or(""), |_| {})?;
        Ok(json!("listening"))
    });
    let mut h = Harness::start(p).unwrap();
    h.peer.subscribes = Some(vec!["news.*".to_string()]);
    let e = h.call("listen", json!({ "topic": "secrets.plans" })).unwrap_err();
    assert_eq!(e.code, "LM_PERMISSION_DENIED");
    assert!(e.message.contains("may not subscribe to 'secrets.plans'"), "{e}");
    assert_eq!(h.call("listen", json!({ "topic": "news.flash" })).unwrap(), json!("listening"));
    assert_eq!(h.peer.subscriptions, vec!["news.flash".to_string()]);
    h.stop().unwrap();
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
