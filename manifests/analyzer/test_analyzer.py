"""The analyzer against a fake hub that plays thoughts, tokenizer and hasher.

Run inside the runtime image, with this folder mounted as the controller mounts it:
  docker run --rm -v "$PWD:/plugin:ro" logomesh/runtime-python python3 -B -m unittest discover -s /plugin
"""
import asyncio
import hashlib
import unittest

from logomesh import LogoMeshError
from logomesh.testing import FakeHub

import main

THOUGHTS = ["The cat sat", "the dog sat down", "A cat, a dog and a bird", ""]


def tokenize(text):
    return {"tokens": text.lower().replace(",", " ,").split()}


def digest(text):
    return {"digest": hashlib.sha256(text.encode()).hexdigest()[:16]}


class AnalyzerTest(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self):
        main.added = 0
        self.hub = await FakeHub("analyzer", exposes=["analyze_results"], messaging=False).start()
        self.hub.expose("thoughts.get_thoughts", lambda: {"thoughts": THOUGHTS})
        self.hub.expose("tokenizer.tokenize", tokenize)
        self.hub.expose("hasher.digest", digest)

    async def asyncTearDown(self):
        await self.hub.close()

    async def test_analyze_results(self):
        async with self.hub.serving(main.plugin):
            self.assertEqual(self.hub.subscriptions, {"thought.added"})
            result = await self.hub.call("analyze_results")
        self.assertEqual(result["thoughts"], [
            {"text": t, "tokens": len(tokenize(t)["tokens"]), "digest": digest(t)["digest"]} for t in THOUGHTS
        ])
        self.assertEqual(result["thoughts"][2]["tokens"], 8)
        # a: 3; then cat, dog, sat and the: 2 each, alphabetically (the "," token is no word)
        self.assertEqual(result["topWords"], [["a", 3], ["cat", 2], ["dog", 2], ["sat", 2], ["the", 2]])
        self.assertEqual(result["added"], 0)
        calls = [(m["to"][0], m["method"]) for m in self.hub.messages("request")]
        self.assertEqual(calls.count(("tokenizer", "tokenize")), len(THOUGHTS))
        self.assertEqual(calls.count(("hasher", "digest")), len(THOUGHTS))

    async def test_counts_thought_added_events_since_start(self):
        async with self.hub.serving(main.plugin):
            # Another plugin under the same topic, claiming to be thoughts in its data: not counted.
            await self.hub.publish("thought.added", {"text": "forged", "from": "thoughts"}, sender="mallory")
            for i in range(3):
                await self.hub.publish("thought.added", {"text": f"new {i}"}, sender="thoughts")
            await self.hub.publish("thought.removed", {"text": "gone"})
            for _ in range(100):
                if main.added == 3:
                    break
                await asyncio.sleep(0.01)
            result = await self.hub.call("analyze_results")
        self.assertEqual(result["added"], 3)

    async def test_ties_are_alphabetical_and_top_is_five(self):
        self.assertEqual(main.top_words([["b", "a", "c", "d", "e", "f", "F", "!"]]),
                         [["f", 2], ["a", 1], ["b", 1], ["c", 1], ["d", 1]])

    async def test_a_failing_dependency_is_answered_with_its_code(self):
        def refuse(text):
            raise LogoMeshError("LM_PERMISSION_DENIED", "hasher is closed")

        self.hub.expose("hasher.digest", refuse)
        async with self.hub.serving(main.plugin):
            with self.assertRaises(LogoMeshError) as cm:
                await self.hub.call("analyze_results")
        self.assertEqual(cm.exception.code, "LM_PERMISSION_DENIED")

    async def test_a_malformed_thoughts_answer_is_LM_PLUGIN_ERROR(self):
        self.hub.expose("thoughts.get_thoughts", lambda: {"thoughts": "not a list"})
        async with self.hub.serving(main.plugin):
            with self.assertRaises(LogoMeshError) as cm:
                await self.hub.call("analyze_results")
        self.assertEqual(cm.exception.code, "LM_PLUGIN_ERROR")


if __name__ == "__main__":
    unittest.main()
