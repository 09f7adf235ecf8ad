"""A plugin as the controller runs it: its own process, ``run()``, signals, exit status."""
import asyncio
import os
import signal
import sys
import time
import unittest

from logomesh.testing import FakeHub

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "plugins", "worker.py")


class ProcessTest(unittest.IsolatedAsyncioTestCase):
    async def start(self, hub, *args, env=None):
        env = {**os.environ, **hub.env, **(env or {})}
        proc = await asyncio.create_subprocess_exec(sys.executable, "-u", "-B", WORKER, *args, env=env,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        self.addAsyncCleanup(self.reap, proc)
        return proc

    async def reap(self, proc):
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

    async def finish(self, proc, timeout=15.0):
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
        return proc.returncode, out.decode(), err.decode()

    async def test_sigterm_lets_the_request_in_flight_answer_then_closes_1000_and_exits_0(self):
        async with FakeHub("worker") as hub:
            proc = await self.start(hub)
            await hub.wait_hello()
            self.assertEqual(await hub.call("hello", {"name": "x"}), "hello x")
            in_flight = asyncio.ensure_future(hub.call("slow", {"seconds": 0.4}))
            await asyncio.sleep(0.1)
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(await in_flight, {"slept": 0.4})
            self.assertEqual(await hub.wait_closed(), 1000)
            status, out, err = await self.finish(proc)
        self.assertEqual(status, 0, err)
        self.assertIn("starting worker", out)
        self.assertIn("serving hello for x", out)
        self.assertIn("run() returned", out)

    async def test_sigint_is_treated_like_sigterm(self):
        async with FakeHub("worker") as hub:
            proc = await self.start(hub)
            await hub.wait_hello()
            proc.send_signal(signal.SIGINT)
            self.assertEqual(await hub.wait_closed(), 1000)
            status, _, err = await self.finish(proc)
        self.assertEqual(status, 0, err)

    async def test_the_hubs_shutdown_message_ends_the_process_with_0(self):
        async with FakeHub("worker") as hub:
            proc = await self.start(hub)
            await hub.wait_hello()
            in_flight = asyncio.ensure_future(hub.call("slow", {"seconds": 0.3}))
            await asyncio.sleep(0.05)
            await hub.shutdown(3000, wait=False)
            self.assertEqual(await in_flight, {"slept": 0.3})
            self.assertEqual(await hub.wait_closed(), 1000)
            status, out, err = await self.finish(proc)
        self.assertEqual(status, 0, err)
        self.assertIn("run() returned", out)

    async def test_a_thread_stuck_past_the_grace_does_not_hold_the_exit(self):
        async with FakeHub("worker") as hub:
            proc = await self.start(hub, "0.3")
            await hub.wait_hello()
            asyncio.ensure_future(hub.request("stuck", timeout=30)).add_done_callback(lambda f: f.cancelled() or f.exception())
            await asyncio.sleep(0.1)
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            status, _, err = await self.finish(proc)
            self.assertLess(time.monotonic() - started, 5)
        self.assertEqual(status, 0, err)
        self.assertIn("still running after the shutdown grace", err)

    async def test_a_refused_hello_exits_1_and_says_why(self):
        async with FakeHub("worker", exposes=["slow"]) as hub:
            proc = await self.start(hub)
            status, _, err = await self.finish(proc)
        self.assertEqual(status, 1)
        self.assertIn("LM_PERMISSION_DENIED", err)
        self.assertIn("stuck", err)

    async def test_a_hello_refused_for_a_subscription_exits_1_naming_the_topic_and_the_manifest_field(self):
        async with FakeHub("worker", subscribes=["worker.status"]) as hub:
            proc = await self.start(hub)
            status, out, err = await self.finish(proc)
        self.assertEqual(status, 1)
        self.assertIn("logomesh: plugin worker: LM_PERMISSION_DENIED: plugin worker may not subscribe to 'worker.poke': "
                      "no pattern under coordination.subscribes covers it (listed: worker.status)", err)
        self.assertNotIn("run() returned", out)
        self.assertEqual(hub.messages("subscribe"), [])

    async def test_with_reconnect_disabled_a_lost_connection_exits_1(self):
        async with FakeHub("worker") as hub:
            proc = await self.start(hub, env={"LOGOMESH_RECONNECT_MS": "0"})
            await hub.wait_hello()
            await hub.ws.close(1011, "hub failure")
            status, _, err = await self.finish(proc)
        self.assertEqual(status, 1)
        self.assertIn("LM_CONTROLLER_UNAVAILABLE", err)

    async def test_a_lost_connection_is_made_again_when_the_hub_comes_back(self):
        async with FakeHub("worker") as hub:
            proc = await self.start(hub)
            self.assertEqual((await hub.wait_hello())["subscriptions"], ["worker.poke"])
            self.assertEqual(await hub.call("hello", {"name": "a"}), "hello a")
            mark = len(hub.received)
            await hub.crash()
            await asyncio.sleep(0.5)
            self.assertIsNone(proc.returncode)
            await hub.restart()
            hello = await hub.wait_type("hello", timeout=10, start=mark)
            self.assertEqual(sorted(hello["methods"]), ["hello", "pokes", "slow", "stuck"])
            self.assertEqual(hello["subscriptions"], ["worker.poke"])
            self.assertEqual(await hub.call("hello", {"name": "b"}), "hello b")
            await hub.publish("worker.poke", "after")
            self.assertEqual(await hub.call("pokes"), ["after"])
            self.assertEqual(await hub.shutdown(3000), 1000)
            status, out, err = await self.finish(proc)
        self.assertEqual(status, 0, err)
        self.assertIn("serving hello for b", out)
        self.assertIn("run() returned", out)
        self.assertRegex(err, r"logomesh: plugin worker: hub connection lost \(code 1006\); reconnecting for up to 60000 ms\n")
        self.assertRegex(err, r"logomesh: plugin worker: reconnected to the hub after \d+ ms\n")

    async def test_no_hub_within_LOGOMESH_RECONNECT_MS_exits_1(self):
        async with FakeHub("worker") as hub:
            proc = await self.start(hub, env={"LOGOMESH_RECONNECT_MS": "300"})
            await hub.wait_hello()
            await hub.crash()
            started = time.monotonic()
            status, _, err = await self.finish(proc)
            self.assertGreaterEqual(time.monotonic() - started, 0.25)
        self.assertEqual(status, 1)
        self.assertIn("hub connection lost", err)
        self.assertIn("reconnecting for up to 300 ms", err)
        self.assertIn("LM_CONTROLLER_UNAVAILABLE", err)
        self.assertNotIn("reconnected", err)

    async def test_sigterm_while_reconnecting_exits_0(self):
        async with FakeHub("worker") as hub:
            proc = await self.start(hub)
            await hub.wait_hello()
            await hub.crash()
            await asyncio.sleep(0.3)
            proc.send_signal(signal.SIGTERM)
            status, _, err = await self.finish(proc)
        self.assertEqual(status, 0, err)
        self.assertIn("hub connection lost", err)

    async def test_sigterm_while_waiting_for_a_hub_exits_0(self):
        env = {**os.environ, "LOGOMESH_HUB_SOCKET": "/tmp/absent/hub.sock", "LOGOMESH_PLUGIN_ID": "worker"}
        proc = await asyncio.create_subprocess_exec(sys.executable, "-u", "-B", WORKER, env=env,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        self.addAsyncCleanup(self.reap, proc)
        self.assertIn("starting", (await asyncio.wait_for(proc.stdout.readline(), 15)).decode())
        await asyncio.sleep(0.3)  # run() installs its signal handlers, then keeps retrying the socket
        proc.send_signal(signal.SIGTERM)
        status, _, err = await self.finish(proc)
        self.assertEqual(status, 0, err)


if __name__ == "__main__":
    unittest.main()
