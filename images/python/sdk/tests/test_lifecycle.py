"""Liveness, shutdown and reconnecting."""
import asyncio
import json
import threading
import time
import unittest

from logomesh import SDK, Event, LogoMeshError, Plugin
from logomesh.testing import NO_REPLY, FakeHub

from helpers import make_plugin


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

    async def test_a_plain_def_in_flight_at_shutdown_answers_and_the_close_follows_at_once(self):
        # A plain def's worker writes its answer and does not wake the loop (QUIET): a
        # shutdown's drain must still hear of it at once, not after the grace.
        p = Plugin("subject")
        release = threading.Event()
        started = threading.Event()

        @p.method
        def quick():
            return "q"

        @p.method
        def slow():
            started.set()
            release.wait(10)
            return "finished"

        async with FakeHub("subject") as hub:
            loop = asyncio.get_running_loop()
            task = loop.create_task(p.serve(hub.socket_path))
            await p.wait_ready()
            for _ in range(5):
                self.assertEqual(await hub.call("quick"), "q")
            in_flight = asyncio.ensure_future(hub.call("slow", timeout=10))
            self.assertTrue(await loop.run_in_executor(None, started.wait, 5))
            await hub.shutdown(10_000, wait=False)
            await asyncio.sleep(0.1)
            self.assertFalse(in_flight.done())
            self.assertIsNone(hub.close_code)
            released = time.monotonic()
            release.set()
            self.assertEqual(await in_flight, "finished")
            self.assertEqual(await hub.wait_closed(), 1000)
            self.assertLess(time.monotonic() - released, 3)  # the grace is 10 s
            await asyncio.wait_for(task, 5)
            self.assertFalse(p.abandoned)

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
                    # The new hello subscribes again; no subscribe message is needed.
                    self.assertEqual(hello["subscriptions"], ["thought.added"])
                    self.assertEqual(hub.subscriptions, {"thought.added"})
                    self.assertEqual(hub.received[mark]["type"], "hello")
                    self.assertEqual([m for m in hub.received[mark:] if m.get("type") == "subscribe"], [])

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

    async def test_a_topic_the_hub_refused_is_not_in_the_next_hello(self):
        p = self.plugin()

        @p.method
        def listen(topic):
            p.on(topic, lambda _: None)
            return topic

        async with FakeHub("subject", subscribes=["thought.*", "news.*"]) as hub:
            with self.assertLogs("logomesh", "WARNING") as logs:
                async with hub.serving(p):
                    self.assertEqual(await hub.call("listen", {"topic": "secrets.plans"}), "secrets.plans")
                    self.assertEqual(await hub.call("listen", {"topic": "news.flash"}), "news.flash")
                    for _ in range(500):  # the refusal is answered after the call's answer
                        if any("secrets.plans refused" in line for line in logs.output):
                            break
                        await asyncio.sleep(0.01)
                    mark = len(hub.received)
                    await hub.drop()
                    # Had the refused handler stayed, this hello would name secrets.plans and
                    # the hub would refuse all of it: the plugin would end at its first reconnect.
                    hello = await hub.wait_type("hello", start=mark)
                    self.assertEqual(hello["subscriptions"], ["thought.added", "news.flash"])
                    self.assertEqual(await hub.call("add", {"a": 1, "b": 1}), 2)
            self.assertIn("subscribing to secrets.plans refused, its handlers dropped", "\n".join(logs.output))

    async def test_a_dropped_connection_to_a_hub_still_listening_is_made_again_at_once(self):
        p = self.plugin()  # the default window
        async with FakeHub("subject") as hub:
            with self.assertLogs("logomesh", "WARNING"):
                async with hub.serving(p):
                    mark = len(hub.received)
                    started = time.monotonic()
                    await hub.drop()
                    hello = await hub.wait_type("hello", start=mark)
                    self.assertEqual(hello["subscriptions"], ["thought.added"])
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
                    self.assertEqual((await hub.wait_type("hello", start=1))["subscriptions"], ["thought.added"])

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
