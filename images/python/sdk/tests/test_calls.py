"""Calls from the plugin through the fake hub."""
import asyncio
import time
import unittest

from logomesh import SDK, LogoMeshError, Plugin
from logomesh.testing import NO_REPLY, FakeHub


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
