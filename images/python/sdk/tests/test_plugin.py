"""The SDK against a fake hub (Debian's websockets server on a Unix socket), in one process: hello, methods, handler errors, concurrency."""
import asyncio
import os
import tempfile
import threading
import time
import unittest

from logomesh import SDK, Event, LogoMeshError, Plugin
from logomesh.testing import FakeHub

from helpers import make_plugin


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


    async def test_a_plain_def_that_returns_an_awaitable_or_raises_CancelledError_is_answered(self):
        p = Plugin("subject")

        async def later(x):
            await asyncio.sleep(0.01)
            return x * 2

        @p.method
        def deferred(x):
            return later(x)

        @p.method
        def deferred_fails():
            async def fail():
                raise LogoMeshError("LM_QUOTA", "later")
            return fail()

        @p.method
        def cancelled():
            raise asyncio.CancelledError()

        async with FakeHub("subject") as hub, hub.serving(p):
            self.assertEqual(await hub.call("deferred", {"x": 21}), 42)
            with self.assertRaises(LogoMeshError) as cm:
                await hub.call("deferred_fails")
            self.assertEqual(cm.exception.code, "LM_QUOTA")
            # A worker thread's CancelledError is the handler's own failure: answered, never left to time out.
            with self.assertLogs("logomesh", "ERROR"):
                with self.assertRaises(LogoMeshError) as cm:
                    await hub.call("cancelled", timeout=2.0)
            self.assertEqual(cm.exception.code, "LM_PLUGIN_ERROR")
            self.assertEqual(await hub.call("deferred", {"x": 1}), 2)

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

    async def test_a_plain_def_answers_from_its_worker_while_the_loop_is_busy(self):
        """The worker writes the answer to the socket itself: it leaves before the answer of
        a handler that held the event loop, though it was ready while the loop was held."""
        p = Plugin("subject")
        started = threading.Event()

        @p.method
        def quick():
            started.set()
            time.sleep(0.1)
            return "quick"

        @p.method
        async def hold_loop():
            started.wait(5)
            time.sleep(0.5)  # blocks the loop, the worker's answer included if it needed the loop
            return "held"

        @p.method
        def large():
            return "x" * 600_000  # more than the socket takes at once: the rest goes through the loop, in order

        async with FakeHub("subject") as hub, hub.serving(p):
            first = asyncio.ensure_future(hub.request("quick"))
            await asyncio.sleep(0)
            second = asyncio.ensure_future(hub.request("hold_loop"))
            results = await asyncio.gather(first, second)
            self.assertEqual([r["data"] for r in results], ["quick", "held"])
            order = [m["correlationId"] for m in hub.messages("response")]
            self.assertLess(order.index(results[0]["correlationId"]), order.index(results[1]["correlationId"]))
            big = await asyncio.gather(*(hub.call("large") for _ in range(4)), hub.call("quick"))
            self.assertEqual([len(x) for x in big[:4]], [600_000] * 4)
            self.assertEqual(big[4], "quick")

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
