"""The SDK against the protocol's one source: its constants (protocol.json) and the recorded
conformance session (transcript.json), both at /opt/logomesh/protocol in the image."""
import asyncio
import unittest

from logomesh import LogoMeshError, Plugin, protocol, transcript
from logomesh.testing import FakeHub


def conformance_plugin() -> Plugin:
    """The plugin transcript.json expects (images/protocol/README.md)."""
    p = Plugin("conformance")

    @p.method
    def echo(*args, **kwargs):
        return args[0] if args else kwargs

    @p.method
    def fail(**_):
        raise LogoMeshError("LM_INVALID_ARGUMENT", "fail was called", {"field": "x"})

    async def seen(data, event):
        await p.emit("conf.seen", {"kind": event.kind, "topic": event.topic, "from": event.sender, "data": data})

    @p.method
    def listen(topic):
        # A plain def: it runs in a worker thread, and the subscribe must still go out
        # before its answer.
        p.on(topic, seen)
        return {"listening": topic}

    @p.method
    def make(depth=None, bytes=None):
        if bytes is not None:
            return "x" * bytes
        value: list = []
        for _ in range(depth - 1):
            value = [value]
        return value

    @p.method
    async def relay(target, args=None):
        return await p.call(target, args, timeout=5)

    @p.method
    def throw(*_):
        raise RuntimeError("boom")

    p.on("conf.*", seen)
    return p


class ConstantsTest(unittest.TestCase):
    def test_the_sdks_constants_are_protocol_json(self):
        c = transcript.load("protocol.json")
        self.assertEqual(protocol.PROTOCOL_VERSION, c["protocol"])
        self.assertEqual(list(protocol.TO_HUB), c["messageTypes"]["toHub"])
        self.assertEqual(list(protocol.FROM_HUB), c["messageTypes"]["fromHub"])
        self.assertEqual(protocol.MAX_DEPTH, c["maxDepth"])
        self.assertEqual(protocol.DEFAULT_MAX_MESSAGE_BYTES, c["messageBytes"]["default"])
        self.assertEqual(protocol.MAX_MESSAGE_BYTES, c["messageBytes"]["max"])
        self.assertEqual(protocol.HARD_LIMIT_FACTOR, c["messageBytes"]["hardLimitFactor"])
        self.assertEqual(protocol.DEFAULT_CALL_TIMEOUT_MS, c["callTimeoutMs"]["default"])
        self.assertEqual(protocol.MAX_CALL_TIMEOUT_MS, c["callTimeoutMs"]["max"])
        self.assertEqual(protocol.ID_MAX_LENGTH, c["idMaxLength"])
        self.assertEqual(protocol.ERROR_CODES, c["errorCodes"])


class ConformanceTest(unittest.IsolatedAsyncioTestCase):
    async def test_the_sdk_follows_the_recorded_session(self):
        p = conformance_plugin()
        async with FakeHub("conformance", transcript=transcript.load()) as hub:
            task = asyncio.get_running_loop().create_task(p.serve(hub.socket_path))
            try:
                bound = await hub.replayed(timeout=60)
            finally:
                if not task.done():
                    p.stop(0)
            await asyncio.wait_for(task, 10)
        self.assertTrue(bound["sdk"].startswith("python/"))
        self.assertFalse(p.serving)

    async def test_the_replay_notices_a_plugin_that_strays(self):
        p = conformance_plugin()
        # The same session against a plugin that serves one method less: hello (step 1) differs.
        del p._methods["throw"]
        async with FakeHub("conformance", transcript=transcript.load()) as hub:
            task = asyncio.get_running_loop().create_task(p.serve(hub.socket_path))
            with self.assertRaises(transcript.Mismatch) as cm:
                await hub.replayed(timeout=60)
            p.stop(0)
            # The hub hung up on it without answering hello.
            with self.assertRaises(LogoMeshError):
                await asyncio.wait_for(task, 10)
        self.assertIn("step 1", str(cm.exception))
        self.assertIn("methods", str(cm.exception))


class CodecTest(unittest.TestCase):
    def test_depth_counts_the_frame_as_level_one_and_skips_strings(self):
        self.assertEqual(protocol.depth(b'{"a":[[]]}'), 3)
        deep = b'{"s":"' + b"[" * 200 + b'","d":' + b"[" * 70 + b"]" * 70 + b"}"
        self.assertEqual(protocol.depth(deep), 71)
        self.assertLessEqual(protocol.depth(b'{"s":"' + b"[" * 200 + b'"}'), protocol.MAX_DEPTH)

    def test_a_deep_frame_is_refused_with_its_top_level_fields(self):
        frame = b'{"type":"request","data":' + b"[" * 5000 + b"]" * 5000 + b',"id":"r\\"1","to":["x"]}'
        with self.assertRaises(protocol.FrameRefused) as cm:
            protocol.decode(frame, 1 << 20)
        self.assertEqual(cm.exception.code, "LM_PROTOCOL")
        self.assertEqual(cm.exception.fields, {"type": "request", "id": 'r"1'})
        self.assertIn("5001 levels", cm.exception.message)

    def test_a_large_frame_is_refused_as_too_large(self):
        with self.assertRaises(protocol.FrameRefused) as cm:
            protocol.decode(b'{"type":"response","correlationId":"7","data":"' + b"x" * 100 + b'"}', 64)
        self.assertEqual((cm.exception.code, cm.exception.fields), ("LM_MESSAGE_TOO_LARGE", {"type": "response", "correlationId": "7"}))

    def test_unterminated_strings_and_garbage_scan_in_linear_time(self):
        garbage = b'{"id":"a' + b'\\"' * 300_000
        with self.assertRaises(protocol.FrameRefused):
            protocol.decode(garbage, 1 << 20)
        self.assertEqual(protocol.top_fields(b'{"id":5,"type":{"id":"no"},"correlationId":"c"}'), {"correlationId": "c"})

    def test_what_cannot_be_encoded(self):
        cycle: dict = {}
        cycle["self"] = cycle
        deep: list = []
        for _ in range(5000):
            deep = [deep]
        for value, words in ((cycle, "not JSON"), (float("nan"), "not JSON"), (object(), "not JSON"), (deep, "deeper"),
                             (self.nested(64), "65 levels")):
            with self.assertRaises(protocol.EncodeError) as cm:
                protocol.encode({"data": value}, 1 << 20)
            self.assertIn(words, cm.exception.reason)
            self.assertFalse(cm.exception.too_large)
        self.assertEqual(len(protocol.encode({"data": self.nested(63)}, 1 << 20)), 8 + 63 * 2 + 1)
        with self.assertRaises(protocol.EncodeError) as cm:
            protocol.encode({"data": "x" * 100}, 64)
        self.assertTrue(cm.exception.too_large)

    def test_an_answer_that_cannot_fit_is_cut_then_given_up_never_raised(self):
        p = Plugin("subject")
        p._max_bytes = 1200
        frame = p._error_frame("r1", "LM_X", "m" * 5000, {"big": "d" * 5000})
        self.assertLessEqual(len(frame), 1200)
        self.assertIn(b'"code":"LM_X"', frame)
        p._max_bytes = 20
        with self.assertLogs("logomesh", "WARNING"):
            self.assertEqual(p._error_frame("r1", "LM_X", "m"), b"")

    @staticmethod
    def nested(n):
        value: list = []
        for _ in range(n - 1):
            value = [value]
        return value


class HostileHandlersTest(unittest.IsolatedAsyncioTestCase):
    """Whatever a handler raises or returns, its caller gets a coded answer and the plugin
    goes on serving."""

    async def test_handlers_that_raise_anything_or_return_what_cannot_be_sent(self):
        p = Plugin("subject")
        cycle: dict = {}
        cycle["again"] = cycle

        @p.method
        def exits():
            raise SystemExit(3)

        @p.method
        async def interrupts():
            raise KeyboardInterrupt

        @p.method
        def cyclic():
            return cycle

        @p.method
        def huge():
            return "x" * (2 << 20)

        @p.method
        def ok():
            return "still here"

        @p.on("t")
        def handler(_data):
            raise SystemExit(4)

        async with FakeHub("subject") as hub, hub.serving(p):
            codes = {}
            for name in ("exits", "interrupts", "cyclic"):
                with self.assertRaises(LogoMeshError) as cm:
                    await hub.call(name)
                codes[name] = cm.exception.code
            self.assertEqual(codes, {"exits": "LM_PLUGIN_ERROR", "interrupts": "LM_PLUGIN_ERROR", "cyclic": "LM_PLUGIN_ERROR"})
            await hub.publish("t", None)
            self.assertEqual(await hub.call("ok"), "still here")
            # The fake hub announces no maximum: the SDK holds results to the largest an
            # operator may configure (16 MiB), so 2 MiB goes through.
            self.assertEqual(len(await hub.call("huge", timeout=20)), 2 << 20)

    async def test_outbound_data_that_cannot_be_sent_is_refused_before_sending(self):
        p = Plugin("subject")
        cycle: list = []
        cycle.append(cycle)
        async with FakeHub("subject") as hub, hub.serving(p):
            with self.assertRaises(LogoMeshError) as cm:
                await p.call("other.m", cycle)
            self.assertEqual(cm.exception.code, "LM_INVALID_ARGUMENT")
            with self.assertRaises(LogoMeshError) as cm:
                await p.emit("topic", CodecTest.nested(64))
            self.assertEqual(cm.exception.code, "LM_INVALID_ARGUMENT")
            with self.assertRaises(LogoMeshError) as cm:
                await p.broadcast("topic", "x" * (17 << 20))
            self.assertEqual(cm.exception.code, "LM_MESSAGE_TOO_LARGE")
            self.assertEqual(hub.messages("request") + hub.messages("event") + hub.messages("broadcast"), [])
