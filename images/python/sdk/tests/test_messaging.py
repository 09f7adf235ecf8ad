"""Events, broadcasts and subscriptions through the fake hub."""
import asyncio
import unittest

from logomesh import Event, Plugin
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
