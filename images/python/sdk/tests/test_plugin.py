"""The SDK against a fake hub (Debian's websockets server on a Unix socket), in one process."""
import asyncio
import json
import os
import tempfile
import threading
import time
import unittest

from logomesh import SDK, Event, LogoMeshError, Plugin
from logomesh.testing import NO_REPLY, FakeHub


def make_plugin(**kw):
    p = Plugin("subject", **kw)

    @p.method
    def add(a, b):
        return a + b

    @p.method("mul")
    async def multiply(a, b):
        await asyncio.sleep(0)
        return a * b

    @p.method
    def nothing():
        return None

    @p.method
    def first(value):
        return value[0]

    return p


class HelloTest(unittest.IsolatedAsyncioTestCase):
    async def test_hello_names_protocol_sdk_and_methods_over_get_v1(self):
        p = make_plugin()
        async with FakeHub("subject") as hub, hub.serving(p):
            self.assertEqual(hub.hello["protocol"], 1)
            self.assertEqual(hub.hello["sdk"], SDK)
            self.assertEqual(sorted(hub.hello["methods"]), ["add", "first", "mul", "nothing"])
            self.assertEqual(hub.request_path, "/v1")
            self.assertEqual(hub.request_headers.get("Host"), "logomesh")
            self.assertEqual(hub.received[0]["type"], "hello")
            self.assertEqual(p.hub_info, {"plugin": "subject", "protocol": 1})

    async def test_a_refused_hello_raises_the_hubs_code(self):
        p = make_plugin()
        async with FakeHub("subject", exposes=["add"]) as hub:
            with self.assertRaises(LogoMeshError) as cm:
                await asyncio.wait_for(p.serve(hub.socket_path), 5)
            self.assertEqual(cm.exception.code, "LM_PERMISSION_DENIED")
            self.assertIn("mul", cm.exception.message)
        self.assertFalse(p.serving)

    async def test_no_hub_is_LM_CONTROLLER_UNAVAILABLE_after_the_connect_timeout(self):
        p = make_plugin()
        started = time.monotonic()
        with self.assertRaises(LogoMeshError) as cm:
            await p.serve("/tmp/no-such-dir/hub.sock", connect_timeout=0.3)
        self.assertEqual(cm.exception.code, "LM_CONTROLLER_UNAVAILABLE")
        self.assertGreaterEqual(time.monotonic() - started, 0.2)

    async def test_waits_for_a_socket_that_appears_late(self):
        p = make_plugin()
        with tempfile.TemporaryDirectory() as d:
            hub = FakeHub("subject", socket_path=os.path.join(d, "hub.sock"))
            task = asyncio.get_running_loop().create_task(p.serve(hub.socket_path))
            await asyncio.sleep(0.2)
            async with hub:
                await hub.wait_hello()
                await hub.shutdown(1000)
                await asyncio.wait_for(task, 5)

    def test_method_names_are_checked_at_registration(self):
        p = Plugin("x")
        with self.assertRaises(ValueError):
            p.method("not-a-name", lambda: None)
        p.method("ok", lambda: None)
        with self.assertRaises(ValueError):
            p.method("ok", lambda: None)
        with self.assertRaises(ValueError):
            p.on("bad topic", lambda d: None)


class MethodsTest(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self):
        self.p = make_plugin()
        self.hub = await FakeHub("subject").start()
        self.serving = self.hub.serving(self.p)
        await self.serving.__aenter__()

    async def asyncTearDown(self):
        await self.serving.__aexit__(None, None, None)
        await self.hub.close()

    async def test_sync_and_async_methods_take_keyword_arguments(self):
        self.assertEqual(await self.hub.call("add", {"a": 2, "b": 3}), 5)
        self.assertEqual(await self.hub.call("mul", {"a": 2, "b": 3}), 6)

    async def test_null_data_is_no_argument_and_other_values_one_positional(self):
        self.assertIsNone(await self.hub.call("nothing"))
        self.assertEqual(await self.hub.call("first", [7, 8]), 7)
        self.assertEqual(await self.hub.call("first", "xyz"), "x")

    async def test_response_correlates_with_the_request_id(self):
        resp = await self.hub.request("add", {"a": 1, "b": 1})
        self.assertEqual(resp["type"], "response")
        self.assertTrue(resp["success"])
        self.assertTrue(resp["correlationId"].startswith("hub-"))
        self.assertIsInstance(resp["id"], str)

    async def test_unknown_method_is_LM_METHOD_NOT_FOUND(self):
        with self.assertRaises(LogoMeshError) as cm:
            await self.hub.call("nope")
        self.assertEqual(cm.exception.code, "LM_METHOD_NOT_FOUND")
        self.assertEqual(cm.exception.details["methods"], ["add", "first", "mul", "nothing"])

    async def test_arguments_that_do_not_fit_are_LM_INVALID_ARGUMENT(self):
        with self.assertRaises(LogoMeshError) as cm:
            await self.hub.call("add", {"a": 1})
        self.assertEqual(cm.exception.code, "LM_INVALID_ARGUMENT")
        with self.assertRaises(LogoMeshError) as cm:
            await self.hub.call("mul", {"a": 1, "b": 2, "c": 3})
        self.assertEqual(cm.exception.code, "LM_INVALID_ARGUMENT")

    async def test_large_and_unicode_payloads_round_trip(self):
        for size in (10, 200, 70_000, 300_000):
            text = ("h\u00e9llo \u4e16\u754c " * (size // 9 + 1))[:size]
            self.assertEqual(await self.hub.call("add", {"a": text, "b": "!"}), text + "!")


class HandlerErrorsTest(unittest.IsolatedAsyncioTestCase):
    async def test_coded_errors_keep_their_code_and_others_become_LM_PLUGIN_ERROR(self):
        p = Plugin("subject")

        @p.method
        def coded():
            raise LogoMeshError("LM_NOT_READY", "not ready yet", {"retryMs": 50})

        @p.method
        async def coded_async():
            raise LogoMeshError("LM_QUOTA", "too many")

        @p.method
        def broken():
            raise KeyError("missing")

        @p.method
        async def broken_async():
            raise ValueError("bad value")

        @p.method
        def inner_type_error():
            return len(5)

        @p.method
        def not_json():
            return {"x": {1, 2}}

        async with FakeHub("subject") as hub, hub.serving(p):
            with self.assertLogs("logomesh", "ERROR"):
                errors = {}
                for name in ("coded", "coded_async", "broken", "broken_async", "inner_type_error", "not_json"):
                    resp = await hub.request(name)
                    self.assertFalse(resp["success"], name)
                    errors[name] = resp["error"]
        self.assertEqual(errors["coded"], {"code": "LM_NOT_READY", "message": "not ready yet", "details": {"retryMs": 50}})
        self.assertEqual(errors["coded_async"], {"code": "LM_QUOTA", "message": "too many"})
        self.assertEqual(errors["broken"]["code"], "LM_PLUGIN_ERROR")
        self.assertEqual(errors["broken"]["message"], "'missing'")
        self.assertEqual(errors["broken"]["details"], {"type": "KeyError"})
        self.assertEqual(errors["broken_async"]["message"], "bad value")
        # A TypeError from inside the handler is the handler's failure, not bad arguments.
        self.assertEqual(errors["inner_type_error"]["code"], "LM_PLUGIN_ERROR")
        self.assertEqual(errors["not_json"]["code"], "LM_PLUGIN_ERROR")
        self.assertIn("not JSON", errors["not_json"]["message"])


class ConcurrencyTest(unittest.IsolatedAsyncioTestCase):
    async def test_slow_handlers_do_not_block_other_requests(self):
        p = Plugin("subject")
        release_sync = threading.Event()
        release_async = asyncio.Event()

        @p.method
        def slow_sync():
            release_sync.wait(10)
            return "sync done"

        @p.method
        async def slow_async():
            await release_async.wait()
            return "async done"

        @p.method
        def fast():
            return "fast"

        async with FakeHub("subject") as hub, hub.serving(p):
            slow1 = asyncio.ensure_future(hub.call("slow_sync", timeout=10))
            slow2 = asyncio.ensure_future(hub.call("slow_async", timeout=10))
            await asyncio.sleep(0.05)
            self.assertEqual(await hub.call("fast"), "fast")
            self.assertEqual(await hub.call("fast"), "fast")
            self.assertFalse(slow1.done())
            self.assertFalse(slow2.done())
            release_sync.set()
            release_async.set()
            self.assertEqual(await slow1, "sync done")
            self.assertEqual(await slow2, "async done")

    async def test_sync_handlers_run_in_parallel_threads(self):
        p = Plugin("subject", max_workers=4)
        # Passes only when all four handlers run at the same time.
        barrier = threading.Barrier(4, timeout=10)

        @p.method
        def meet():
            barrier.wait()
            return threading.current_thread().name

        async with FakeHub("subject") as hub, hub.serving(p):
            names = await asyncio.gather(*(hub.call("meet", timeout=15) for _ in range(4)))
            self.assertEqual(len(set(names)), 4)
            self.assertTrue(all(n.startswith("logomesh-") for n in names))

    async def test_many_concurrent_calls_each_get_their_own_answer(self):
        p = make_plugin()
        async with FakeHub("subject") as hub, hub.serving(p):
            results = await asyncio.gather(*(hub.call("mul" if i % 2 else "add", {"a": i, "b": 2}) for i in range(300)))
        self.assertEqual(results, [i * 2 if i % 2 else i + 2 for i in range(300)])


class CallTest(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self):
        self.p = Plugin("subject")
        self.hub = await FakeHub("subject").start()

    async def asyncTearDown(self):
        await self.hub.close()

    async def test_call_returns_the_result_and_names_target_and_method(self):
        self.hub.expose("tokenizer.tokenize", lambda text: {"tokens": text.split()})
        self.hub.expose("get_thoughts", lambda: {"thoughts": ["a"]})
        async with self.hub.serving(self.p):
            self.assertEqual(await self.p.call("tokenizer.tokenize", {"text": "a b"}, timeout=2.5), {"tokens": ["a", "b"]})
            self.assertEqual(await self.p.call("get_thoughts"), {"thoughts": ["a"]})
        requests = self.hub.messages("request")
        self.assertEqual(requests[0]["to"], ["tokenizer"])
        self.assertEqual(requests[0]["method"], "tokenize")
        self.assertEqual(requests[0]["data"], {"text": "a b"})
        self.assertEqual(requests[0]["timeout"], 2500)
        self.assertEqual(requests[1]["to"], ["host"])
        self.assertEqual(requests[1]["method"], "get_thoughts")
        self.assertNotEqual(requests[0]["id"], requests[1]["id"])

    async def test_a_coded_error_from_the_callee_is_raised_with_code_message_details(self):
        def refuse(**_):
            raise LogoMeshError("LM_PERMISSION_DENIED", "not for you", {"why": "acl"})

        self.hub.expose("vault.open", refuse)
        async with self.hub.serving(self.p):
            with self.assertRaises(LogoMeshError) as cm:
                await self.p.call("vault.open", {"door": 1})
            self.assertEqual((cm.exception.code, cm.exception.message, cm.exception.details),
                             ("LM_PERMISSION_DENIED", "not for you", {"why": "acl"}))
            with self.assertRaises(LogoMeshError) as cm:
                await self.p.call("absent.method")
            self.assertEqual(cm.exception.code, "LM_PLUGIN_UNAVAILABLE")

    async def test_the_hubs_LM_TIMEOUT_is_raised(self):
        async def slow():
            await asyncio.sleep(5)

        self.hub.expose("slow.work", slow)
        async with self.hub.serving(self.p):
            with self.assertRaises(LogoMeshError) as cm:
                await self.p.call("slow.work", timeout=0.2)
            self.assertEqual(cm.exception.code, "LM_TIMEOUT")
            # The hub's answer (the fake hub's wording), not the SDK's own fallback.
            self.assertIn("did not answer within 200 ms", cm.exception.message)

    async def test_no_answer_at_all_times_out_locally(self):
        self.hub.expose("black.hole", lambda: NO_REPLY)
        async with self.hub.serving(self.p):
            started = time.monotonic()
            with self.assertRaises(LogoMeshError) as cm:
                await self.p.call("black.hole", timeout=0.1)
            self.assertEqual(cm.exception.code, "LM_TIMEOUT")
            self.assertIn("no response to black.hole within 0.1 s", cm.exception.message)
            self.assertGreaterEqual(time.monotonic() - started, 0.1)
            self.assertEqual(self.p._pending, {})

    async def test_an_error_message_for_a_call_is_raised(self):
        async with self.hub.serving(self.p):
            task = asyncio.ensure_future(self.p.call("black.hole", timeout=5))
            self.hub.expose("black.hole", lambda: NO_REPLY)
            req = await self.hub.wait_type("request")
            await self.hub.send({"type": "error", "id": "e1", "correlationId": req["id"],
                                 "error": {"code": "LM_MESSAGE_TOO_LARGE", "message": "too big"}})
            with self.assertRaises(LogoMeshError) as cm:
                await task
            self.assertEqual(cm.exception.code, "LM_MESSAGE_TOO_LARGE")

    async def test_bad_names_and_non_json_data_are_LM_INVALID_ARGUMENT(self):
        async with self.hub.serving(self.p):
            for name in ("Bad.x", "a.b.c-d", "x.", "-a.b", ""):
                with self.assertRaises(LogoMeshError) as cm:
                    await self.p.call(name)
                self.assertEqual(cm.exception.code, "LM_INVALID_ARGUMENT", name)
            with self.assertRaises(LogoMeshError) as cm:
                await self.p.call("a.b", {"x": object()})
            self.assertEqual(cm.exception.code, "LM_INVALID_ARGUMENT")

    async def test_call_outside_serve_is_LM_CONTROLLER_UNAVAILABLE(self):
        with self.assertRaises(LogoMeshError) as cm:
            await self.p.call("a.b")
        self.assertEqual(cm.exception.code, "LM_CONTROLLER_UNAVAILABLE")

    async def test_handlers_call_other_plugins_async_and_sync(self):
        self.hub.expose("tokenizer.tokenize", lambda text: {"tokens": text.split()})

        @self.p.method
        async def count_async(text):
            return len((await self.p.call("tokenizer.tokenize", {"text": text}))["tokens"])

        @self.p.method
        def count_sync(text):
            return len(self.p.call_sync("tokenizer.tokenize", {"text": text})["tokens"])

        @self.p.method
        async def misuse():
            return self.p.call_sync("tokenizer.tokenize", {"text": ""})

        async with self.hub.serving(self.p):
            self.assertEqual(await self.hub.call("count_async", {"text": "a b c"}), 3)
            self.assertEqual(await self.hub.call("count_sync", {"text": "a b c d"}), 4)
            with self.assertLogs("logomesh", "ERROR"):
                resp = await self.hub.request("misuse")
            self.assertEqual(resp["error"]["code"], "LM_PLUGIN_ERROR")
            self.assertIn("block the event loop", resp["error"]["message"])

    async def test_with_reconnect_disabled_connection_loss_fails_open_calls_and_serve(self):
        self.p = Plugin("subject", reconnect_ms=0)
        self.hub.expose("black.hole", lambda: NO_REPLY)
        task = asyncio.get_running_loop().create_task(self.p.serve(self.hub.socket_path))
        await self.p.wait_ready()
        call = asyncio.ensure_future(self.p.call("black.hole", timeout=10))
        await self.hub.wait_type("request")
        await self.hub.ws.close(1011, "hub failure")
        with self.assertRaises(LogoMeshError) as cm:
            await call
        self.assertEqual(cm.exception.code, "LM_CONTROLLER_UNAVAILABLE")
        with self.assertRaises(LogoMeshError) as cm:
            await asyncio.wait_for(task, 5)
        self.assertEqual(cm.exception.code, "LM_CONTROLLER_UNAVAILABLE")
        self.assertEqual(cm.exception.details["code"], 1011)


class MessagingTest(unittest.IsolatedAsyncioTestCase):
    async def test_emit_and_broadcast_send_their_messages(self):
        p = Plugin("subject")

        @p.method
        def notify_sync(text):
            p.emit_sync("thought.added", {"text": text})
            p.broadcast_sync(None, {"sync": True})

        async with FakeHub("subject") as hub, hub.serving(p):
            await p.emit("thought.added", {"text": "hi"})
            await p.emit("thought.added", [1], to=["analyzer"])
            await p.broadcast("cache.flush", None)
            await p.broadcast(data={"all": True})
            await hub.call("notify_sync", {"text": "yo"})
            await hub.wait_for(lambda m: m.get("data") == {"sync": True})
        events = [m for m in hub.received if m["type"] in ("event", "broadcast")]
        self.assertEqual([(m["type"], m.get("topic"), m["data"], m.get("to")) for m in events], [
            ("event", "thought.added", {"text": "hi"}, None),
            ("event", "thought.added", [1], ["analyzer"]),
            ("broadcast", "cache.flush", None, None),
            ("broadcast", None, {"all": True}, None),
            ("event", "thought.added", {"text": "yo"}, None),
            ("broadcast", None, {"sync": True}, None),
        ])
        self.assertEqual(len({m["id"] for m in events}), len(events))
        with self.assertRaises(ValueError):
            await p.emit("thought.*", {})

    async def test_a_refused_emit_is_logged(self):
        p = Plugin("subject")
        async with FakeHub("subject", messaging=False) as hub, hub.serving(p):
            with self.assertLogs("logomesh", "WARNING") as logs:
                await p.emit("thought.added", {"text": "hi"})
                await hub.wait_type("event")
                for _ in range(500):
                    if logs.output:
                        break
                    await asyncio.sleep(0.01)
            self.assertIn("LM_PERMISSION_DENIED", logs.output[0])

    async def test_on_subscribes_and_dispatches_matching_events_and_broadcasts(self):
        p = Plugin("subject")
        got = []
        done = asyncio.Event()

        @p.on("thought.added")
        async def exact(data):
            got.append(("exact", data))

        @p.on("thought.*")
        def prefix(data, event):
            got.append(("prefix", data, event.topic, event.sender, event.kind))

        @p.on("*")
        async def everything(data, event: Event):
            got.append(("all", event.topic, event.kind))
            if data == "last":
                done.set()

        async with FakeHub("subject") as hub, hub.serving(p):
            self.assertEqual(hub.subscriptions, {"thought.added", "thought.*", "*"})
            self.assertEqual(len(hub.messages("subscribe")), 3)
            await hub.publish("thought.added", {"text": "a"}, sender="writer")
            await hub.publish("thought.removed", 1, kind="broadcast")
            await hub.publish("other", 2)
            await hub.publish(None, "last", kind="broadcast")
            await asyncio.wait_for(done.wait(), 5)
            for _ in range(500):  # the sync handler runs in a worker thread
                if len([g for g in got if g[0] == "prefix"]) == 2:
                    break
                await asyncio.sleep(0.01)
        self.assertIn(("exact", {"text": "a"}), got)
        self.assertIn(("prefix", {"text": "a"}, "thought.added", "writer", "event"), got)
        self.assertIn(("prefix", 1, "thought.removed", "other", "broadcast"), got)
        self.assertIn(("all", "thought.added", "event"), got)
        self.assertIn(("all", "other", "event"), got)
        self.assertIn(("all", None, "broadcast"), got)
        self.assertEqual(len(got), 7)

    async def test_on_while_serving_subscribes_at_once(self):
        p = Plugin("subject")
        got = asyncio.get_running_loop().create_future()
        async with FakeHub("subject") as hub, hub.serving(p):
            self.assertEqual(hub.messages("subscribe"), [])
            p.on("late.topic", lambda data: got.get_loop().call_soon_threadsafe(got.set_result, data))
            await hub.wait_type("subscribe")
            self.assertEqual(hub.subscriptions, {"late.topic"})
            await hub.publish("late.topic", "x")
            self.assertEqual(await asyncio.wait_for(got, 5), "x")

    async def test_a_failing_event_handler_is_logged_and_others_still_run(self):
        p = Plugin("subject")
        seen = asyncio.Event()

        @p.on("t")
        async def bad(_):
            raise RuntimeError("boom")

        @p.on("t")
        async def good(_):
            seen.set()

        async with FakeHub("subject") as hub, hub.serving(p):
            with self.assertLogs("logomesh", "ERROR"):
                await hub.publish("t", None)
                await asyncio.wait_for(seen.wait(), 5)
                await asyncio.sleep(0.05)


class LivenessAndShutdownTest(unittest.IsolatedAsyncioTestCase):
    async def test_pings_are_answered(self):
        p = make_plugin()
        async with FakeHub("subject") as hub, hub.serving(p):
            for _ in range(3):
                await hub.ping()
            self.assertEqual(await hub.call("add", {"a": 1, "b": 1}), 2)

    async def test_fragmented_frames_from_the_hub_are_reassembled(self):
        p = make_plugin()
        async with FakeHub("subject") as hub, hub.serving(p):
            text = json.dumps({"type": "request", "id": "frag", "to": ["subject"], "method": "add", "data": {"a": "x" * 1000, "b": "y"}})
            await hub.ws.send([text[:10], text[10:500], text[500:]])
            resp = await hub.wait_for(lambda m: m.get("correlationId") == "frag")
            self.assertEqual(resp["data"], "x" * 1000 + "y")

    async def test_garbage_and_unknown_messages_are_ignored(self):
        p = make_plugin()
        async with FakeHub("subject") as hub, hub.serving(p):
            with self.assertLogs("logomesh", "WARNING"):
                await hub.send("not json")
                await hub.send("[1, 2]")
                await hub.send({"type": "from-the-future", "id": "f"})
                await hub.send({"type": "response", "id": "r", "correlationId": "unknown", "success": True})
                await hub.send({"type": "request", "id": 5, "method": "add"})
                self.assertEqual(await hub.call("add", {"a": 1, "b": 2}), 3)

    async def test_shutdown_lets_requests_in_flight_answer_refuses_new_ones_and_closes_1000(self):
        p = Plugin("subject")
        release = asyncio.Event()
        started = asyncio.Event()

        @p.method
        async def slow():
            started.set()
            await release.wait()
            return "finished"

        async with FakeHub("subject") as hub:
            task = asyncio.get_running_loop().create_task(p.serve(hub.socket_path))
            await p.wait_ready()
            in_flight = asyncio.ensure_future(hub.call("slow", timeout=10))
            await asyncio.wait_for(started.wait(), 5)
            await hub.shutdown(10_000, wait=False)
            # Frames are ordered: this request reaches the plugin after the shutdown.
            with self.assertRaises(LogoMeshError) as cm:
                await hub.call("slow")
            self.assertEqual(cm.exception.code, "LM_PLUGIN_UNAVAILABLE")
            self.assertFalse(in_flight.done())
            self.assertIsNone(hub.close_code)
            release.set()
            self.assertEqual(await in_flight, "finished")
            self.assertEqual(await hub.wait_closed(), 1000)
            await asyncio.wait_for(task, 5)  # returns normally
            self.assertFalse(p.serving)

    async def test_the_grace_period_bounds_the_wait(self):
        p = Plugin("subject")

        @p.method
        async def forever():
            await asyncio.sleep(60)

        async with FakeHub("subject") as hub:
            task = asyncio.get_running_loop().create_task(p.serve(hub.socket_path))
            await p.wait_ready()
            asyncio.ensure_future(hub.request("forever", timeout=30)).add_done_callback(lambda f: f.cancelled() or f.exception())
            await asyncio.sleep(0.05)
            started = time.monotonic()
            with self.assertLogs("logomesh", "WARNING"):
                await hub.shutdown(200)
            await asyncio.wait_for(task, 5)
            self.assertLess(time.monotonic() - started, 3)
            self.assertEqual(hub.close_code, 1000)

    async def test_stop_and_with_reconnect_disabled_a_normal_close_by_the_hub_end_serve_cleanly(self):
        p = make_plugin(reconnect_ms=0)
        async with FakeHub("subject") as hub:
            task = asyncio.get_running_loop().create_task(p.serve(hub.socket_path))
            await p.wait_ready()
            p.stop()
            await asyncio.wait_for(task, 5)
            self.assertEqual(await hub.wait_closed(), 1000)
            # serve() can run again on the same plugin
            task = asyncio.get_running_loop().create_task(p.serve(hub.socket_path))
            await p.wait_ready()
            self.assertEqual(hub.connections, 2)
            await hub.ws.close(1000)
            await asyncio.wait_for(task, 5)


async def noticed(logs):
    """Until the plugin has logged that the connection is lost."""
    for _ in range(500):
        if any("hub connection lost" in line for line in logs.output):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the plugin did not notice the lost connection")


class ReconnectTest(unittest.IsolatedAsyncioTestCase):
    """The hub connection is lost (the controller killed and restarted): the plugin stays
    up, connects again, says hello again and subscribes again."""

    def plugin(self, **kw):
        p = make_plugin(**kw)
        self.release = asyncio.Event()
        self.got = asyncio.Queue()

        @p.method
        async def held():
            await self.release.wait()
            return "late"

        @p.on("thought.added")
        async def added(data):
            self.got.put_nowait(data)

        return p

    async def test_reconnects_says_hello_again_subscribes_again_and_serves_again(self):
        p = self.plugin(reconnect_ms=10_000)
        async with FakeHub("subject") as hub:
            hub.expose("black.hole", lambda: NO_REPLY)
            hub.expose("tokenizer.tokenize", lambda text: {"tokens": text.split()})
            with self.assertLogs("logomesh", "WARNING") as logs:
                async with hub.serving(p):
                    first_hello = hub.hello
                    self.assertEqual(hub.subscriptions, {"thought.added"})
                    self.assertEqual(await hub.call("add", {"a": 1, "b": 2}), 3)
                    # A call of the plugin's in flight, and a request the plugin is serving.
                    in_flight = asyncio.ensure_future(p.call("black.hole", timeout=10))
                    await hub.wait_type("request")
                    await hub.send({"type": "request", "id": "held-1", "from": "host", "to": ["subject"], "method": "held", "data": None})
                    await asyncio.sleep(0.05)

                    mark = len(hub.received)
                    await hub.crash()
                    with self.assertRaises(LogoMeshError) as cm:
                        await asyncio.wait_for(in_flight, 2)
                    self.assertEqual(cm.exception.code, "LM_PLUGIN_UNAVAILABLE")
                    self.assertEqual(cm.exception.message, "hub connection lost")
                    # Calls made now wait for the connection; events cannot be sent.
                    waiting = asyncio.ensure_future(p.call("tokenizer.tokenize", {"text": "a b"}, timeout=5))
                    with self.assertRaises(LogoMeshError) as cm:
                        await p.emit("thought.added", {"text": "lost"})
                    self.assertEqual(cm.exception.code, "LM_PLUGIN_UNAVAILABLE")
                    await asyncio.sleep(0.4)
                    self.assertFalse(waiting.done())
                    self.assertTrue(p.serving)

                    await hub.restart()
                    hello = await hub.wait_type("hello", start=mark)
                    self.assertEqual(hello["methods"], first_hello["methods"])
                    self.assertEqual(hello["sdk"], SDK)
                    self.assertEqual(await asyncio.wait_for(waiting, 5), {"tokens": ["a", "b"]})
                    late = [m for m in hub.received[mark:] if m.get("type") == "request"][-1]
                    self.assertLessEqual(late["timeout"], 4600)  # what is left of the 5 s
                    await hub.wait_for(lambda m: m.get("type") == "subscribe", start=mark)
                    self.assertEqual(hub.subscriptions, {"thought.added"})
                    self.assertEqual(hub.received[mark]["type"], "hello")

                    # Serving again: requests, events, calls.
                    self.assertEqual(await hub.call("add", {"a": 2, "b": 2}), 4)
                    self.assertEqual(await hub.call("mul", {"a": 2, "b": 5}), 10)
                    await hub.publish("thought.added", {"text": "after"})
                    self.assertEqual(await asyncio.wait_for(self.got.get(), 5), {"text": "after"})
                    await p.emit("thought.added", {"text": "back"})
                    await hub.wait_for(lambda m: m.get("type") == "event", start=mark)
                    # The request served across the loss: its answer cannot be delivered.
                    self.release.set()
                    self.assertEqual(await hub.call("nothing"), None)
                    self.assertFalse([m for m in hub.received if m.get("correlationId") == "held-1"])
                    self.assertEqual(hub.connections, 2)
            text = "\n".join(logs.output)
            self.assertIn("plugin subject: hub connection lost", text)
            self.assertIn("reconnecting for up to 10000 ms", text)
            self.assertIn("plugin subject: reconnected to the hub after", text)
            self.assertEqual(hub.close_code, 1000)

    async def test_a_dropped_connection_to_a_hub_still_listening_is_made_again_at_once(self):
        p = self.plugin()  # the default window
        async with FakeHub("subject") as hub:
            with self.assertLogs("logomesh", "WARNING"):
                async with hub.serving(p):
                    mark = len(hub.received)
                    started = time.monotonic()
                    await hub.drop()
                    await hub.wait_type("hello", start=mark)
                    await hub.wait_type("subscribe", start=mark)
                    self.assertLess(time.monotonic() - started, 2)
                    self.assertEqual(await hub.call("add", {"a": 1, "b": 1}), 2)
                    # A close with a status, without shutdown, is a lost connection too.
                    mark = len(hub.received)
                    await hub.ws.close(1001, "going away")
                    await hub.wait_type("hello", start=mark)
                    self.assertEqual(await hub.call("add", {"a": 1, "b": 2}), 3)
                    self.assertEqual(hub.connections, 3)

    async def test_a_call_made_while_reconnecting_fails_when_its_timeout_passes(self):
        p = self.plugin(reconnect_ms=10_000)
        async with FakeHub("subject") as hub:
            with self.assertLogs("logomesh", "WARNING") as logs:
                async with hub.serving(p):
                    await hub.crash()
                    await noticed(logs)
                    started = time.monotonic()
                    with self.assertRaises(LogoMeshError) as cm:
                        await p.call("tokenizer.tokenize", {"text": "x"}, timeout=0.3)
                    self.assertEqual(cm.exception.code, "LM_PLUGIN_UNAVAILABLE")
                    self.assertGreaterEqual(time.monotonic() - started, 0.25)
                    await hub.restart()
                    await hub.wait_type("subscribe", start=2)

    async def test_no_hub_within_the_window_is_LM_CONTROLLER_UNAVAILABLE(self):
        p = self.plugin(reconnect_ms=400)
        async with FakeHub("subject") as hub:
            task = asyncio.get_running_loop().create_task(p.serve(hub.socket_path))
            await p.wait_ready()
            waiting = None
            with self.assertLogs("logomesh", "WARNING") as logs:
                await hub.crash()
                started = time.monotonic()
                await noticed(logs)
                waiting = asyncio.ensure_future(p.call("a.b", timeout=30))
                with self.assertRaises(LogoMeshError) as cm:
                    await asyncio.wait_for(task, 5)
            elapsed = time.monotonic() - started
            self.assertEqual(cm.exception.code, "LM_CONTROLLER_UNAVAILABLE")
            self.assertIn("within 400 ms", cm.exception.message)
            self.assertGreaterEqual(elapsed, 0.3)
            self.assertLess(elapsed, 3)
            # A call waiting for the connection learns that the plugin stopped serving.
            with self.assertRaises(LogoMeshError) as cm:
                await asyncio.wait_for(waiting, 2)
            self.assertEqual(cm.exception.code, "LM_CONTROLLER_UNAVAILABLE")
            self.assertFalse(p.serving)

    async def test_a_hello_refused_on_reconnect_raises_the_hubs_code(self):
        p = self.plugin(reconnect_ms=10_000)
        async with FakeHub("subject") as hub:
            task = asyncio.get_running_loop().create_task(p.serve(hub.socket_path))
            await p.wait_ready()
            with self.assertLogs("logomesh", "WARNING"):
                await hub.crash()
                hub.exposes = ["add"]  # the restarted controller has a manifest without the others
                await hub.restart()
                with self.assertRaises(LogoMeshError) as cm:
                    await asyncio.wait_for(task, 5)
            self.assertEqual(cm.exception.code, "LM_PERMISSION_DENIED")
            self.assertEqual(hub.connections, 2)

    async def test_stop_while_reconnecting_ends_serve_cleanly(self):
        p = self.plugin(reconnect_ms=10_000)
        async with FakeHub("subject") as hub:
            task = asyncio.get_running_loop().create_task(p.serve(hub.socket_path))
            await p.wait_ready()
            with self.assertLogs("logomesh", "WARNING"):
                await hub.crash()
                await asyncio.sleep(0.3)
                started = time.monotonic()
                p.stop()
                await asyncio.wait_for(task, 5)  # returns normally
            self.assertLess(time.monotonic() - started, 1)
            self.assertFalse(p.serving)


if __name__ == "__main__":
    unittest.main()
