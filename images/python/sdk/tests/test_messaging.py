"""Events, broadcasts and subscriptions through the fake hub."""
import asyncio
import json
import os
import tempfile
import unittest

import websockets

from logomesh import Event, LogoMeshError, Plugin
from logomesh.testing import FakeHub


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
            # All three in hello, subscribed before the plugin counts as ready.
            self.assertEqual(hub.hello["subscriptions"], ["thought.added", "thought.*", "*"])
            self.assertEqual(hub.subscriptions, {"thought.added", "thought.*", "*"})
            self.assertEqual(hub.messages("subscribe"), [])
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
            self.assertEqual(hub.hello["subscriptions"], [])
            self.assertEqual(hub.messages("subscribe"), [])
            p.on("late.topic", lambda data: got.get_loop().call_soon_threadsafe(got.set_result, data))
            await hub.wait_type("subscribe")
            self.assertEqual(hub.subscriptions, {"late.topic"})
            await hub.publish("late.topic", "x")
            self.assertEqual(await asyncio.wait_for(got, 5), "x")

    async def test_a_handler_that_subscribes_writes_the_subscribe_before_its_answer(self):
        p = Plugin("subject")

        @p.method
        def listen_sync(topic):
            p.on(topic, lambda _: None)
            return topic

        @p.method
        async def listen_async(topic):
            p.on(topic, lambda _: None)
            return topic

        async with FakeHub("subject") as hub, hub.serving(p):
            for method, topic in (("listen_sync", "a.b"), ("listen_async", "c.*")):
                mark = len(hub.received)
                self.assertEqual(await hub.call(method, {"topic": topic}), topic)
                kinds = [(m["type"], m.get("topic")) for m in hub.received[mark:]]
                self.assertEqual(kinds[0], ("subscribe", topic), kinds)
            self.assertEqual(hub.subscriptions, {"a.b", "c.*"})

    async def test_a_hello_refused_for_a_subscription_ends_serve_with_the_hubs_error(self):
        p = Plugin("subject")
        p.on("news.flash", lambda _: None)
        p.on("secrets.*", lambda _: None)
        async with FakeHub("subject", subscribes=["news.*"]) as hub:
            with self.assertRaises(LogoMeshError) as cm:
                await asyncio.wait_for(p.serve(hub.socket_path), 5)
        self.assertEqual(cm.exception.code, "LM_PERMISSION_DENIED")
        self.assertIn("may not subscribe to 'secrets.*'", cm.exception.message)
        self.assertIn("coordination.subscribes", cm.exception.message)
        self.assertFalse(p.serving)

    async def test_a_refused_subscribe_while_serving_is_logged_and_the_plugin_goes_on(self):
        p = Plugin("subject")
        got = asyncio.Queue()

        @p.on("news.flash")
        async def flash(data):
            got.put_nowait(data)
        async with FakeHub("subject", subscribes=["news.*"]) as hub, hub.serving(p):
            with self.assertLogs("logomesh", "WARNING") as logs:
                p.on("secrets.plans", lambda _: None)
                for _ in range(500):
                    if logs.output:
                        break
                    await asyncio.sleep(0.01)
            self.assertIn("subscribing to secrets.plans refused, its handlers dropped: LM_PERMISSION_DENIED", logs.output[0])
            self.assertIn("coordination.subscribes", logs.output[0])
            self.assertEqual(hub.subscriptions, {"news.flash"})
            await hub.publish("news.flash", "still heard")
            self.assertEqual(await asyncio.wait_for(got.get(), 5), "still heard")

    async def test_a_request_right_behind_the_answer_to_hello_subscribes_before_its_answer(self):
        # The answer to hello and a request whose handler subscribes, written back to back
        # (read together, as often as not): the subscribe still goes first.
        p = Plugin("subject")

        @p.method
        def listen(topic):
            p.on(topic, lambda _: None)
            return topic

        received = []
        done = asyncio.Event()

        async def handle(ws):
            async for raw in ws:
                msg = json.loads(raw)
                received.append(msg)
                if msg["type"] == "hello":
                    await ws.send(json.dumps({"type": "response", "id": "h", "correlationId": msg["id"], "success": True,
                                              "data": {"plugin": "subject", "protocol": 1}}))
                    await ws.send(json.dumps({"type": "request", "id": "r1", "from": "host", "to": ["subject"],
                                              "method": "listen", "data": {"topic": "right.behind"}}))
                elif msg["type"] == "subscribe":
                    await ws.send(json.dumps({"type": "response", "id": "s", "correlationId": msg["id"], "success": True,
                                              "data": {"topic": msg["topic"]}}))
                elif msg["type"] == "response":
                    done.set()

        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "hub.sock")
            server = await websockets.unix_serve(handle, path)
            try:
                task = asyncio.get_running_loop().create_task(p.serve(path))
                await asyncio.wait_for(done.wait(), 5)
                self.assertEqual([(m["type"], m.get("topic") or m.get("correlationId")) for m in received],
                                 [("hello", None), ("subscribe", "right.behind"), ("response", "r1")])
                p.stop(0)
                await asyncio.wait_for(task, 5)
            finally:
                server.close()
                await server.wait_closed()

    async def test_a_topic_registered_while_hello_waits_for_its_answer_is_subscribed_after_it(self):
        # A hub of this test's, which holds the answer to hello until the test registers a
        # handler: the window between writing hello and the plugin being ready.
        p = Plugin("subject")
        p.on("early", lambda _: None)
        received = []
        hello_seen = asyncio.Event()
        answer = asyncio.Event()

        async def handle(ws):
            async for raw in ws:
                msg = json.loads(raw)
                received.append(msg)
                if msg["type"] == "hello":
                    hello_seen.set()
                    await answer.wait()
                    await ws.send(json.dumps({"type": "response", "id": "h", "correlationId": msg["id"], "success": True,
                                              "data": {"plugin": "subject", "protocol": 1}}))
                elif msg["type"] == "subscribe":
                    await ws.send(json.dumps({"type": "response", "id": "s", "correlationId": msg["id"], "success": True,
                                              "data": {"topic": msg["topic"]}}))

        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "hub.sock")
            server = await websockets.unix_serve(handle, path)
            try:
                task = asyncio.get_running_loop().create_task(p.serve(path))
                await asyncio.wait_for(hello_seen.wait(), 5)
                p.on("during", lambda _: None)
                answer.set()
                await asyncio.wait_for(p.wait_ready(), 5)
                self.assertEqual(received[0]["subscriptions"], ["early"])
                self.assertEqual([(m["type"], m.get("topic")) for m in received[1:]], [("subscribe", "during")])
                p.stop(0)
                await asyncio.wait_for(task, 5)
            finally:
                server.close()
                await server.wait_closed()

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
