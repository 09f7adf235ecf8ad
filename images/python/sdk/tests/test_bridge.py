"""The data bridge against the shared vectors (test/vectors/bridge.json of LogoMesh, at
/opt/logomesh/vectors in the image): each value encodes to exactly the listed bytes in each
format, and decodes back to itself."""
import json
import math
import os
import unittest

from logomesh import ProtobufTypes, bridge
from logomesh.errors import LogoMeshError

VECTORS = os.environ.get("LOGOMESH_VECTORS", "/opt/logomesh/vectors/bridge.json")
TYPED = os.path.join(os.path.dirname(VECTORS), "protobuf-types.json")


def from_tagged(v):
    if isinstance(v, list):
        return [from_tagged(x) for x in v]
    if isinstance(v, dict):
        if len(v) == 1 and isinstance(v.get("$int"), str):
            return int(v["$int"])
        if len(v) == 1 and isinstance(v.get("$float"), str):
            return float(v["$float"].replace("Infinity", "inf"))
        if len(v) == 1 and isinstance(v.get("$bytes"), str):
            return bytes.fromhex(v["$bytes"])
        return {k: from_tagged(x) for k, x in v.items()}
    return v


def same(a, b) -> bool:
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b


class BridgeVectors(unittest.TestCase):
    def setUp(self):
        with open(VECTORS) as f:
            self.vectors = json.load(f)["vectors"]

    def test_every_vector_encodes_byte_for_byte_and_decodes(self):
        self.assertGreater(len(self.vectors), 10)
        for v in self.vectors:
            value = from_tagged(v["value"])
            for fmt, hexed in v["encoded"].items():
                with self.subTest(vector=v["name"], format=fmt):
                    self.assertEqual(bridge.encode(value, fmt).hex(), hexed)
                    self.assertTrue(same(value, bridge.decode(bytes.fromhex(hexed), fmt)))

    def test_what_a_format_cannot_carry_is_refused(self):
        for value, fmt in [(float("nan"), "json"), (b"x", "json"), (b"x", "protobuf")]:
            with self.assertRaises(LogoMeshError):
                bridge.encode(value, fmt)

    def test_frame_and_unframe(self):
        framed = bridge.frame({"a": [1, 2]}, "msgpack")
        self.assertEqual(framed[:4], b"LMSD")
        self.assertEqual(bridge.unframe(framed + b"\0" * 10), ({"a": [1, 2]}, "msgpack"))
        with self.assertRaises(LogoMeshError):
            bridge.unframe(framed, "json")



class DeclaredMessageTypes(unittest.TestCase):
    """test/vectors/protobuf-types.json: declared message types from a descriptor set."""

    def setUp(self):
        with open(TYPED) as f:
            self.doc = json.load(f)
        self.types = ProtobufTypes.load(os.path.join(os.path.dirname(TYPED), self.doc["descriptorSet"]))

    def test_every_vector_encodes_byte_for_byte_and_decodes(self):
        self.assertGreater(len(self.doc["vectors"]), 5)
        for v in self.doc["vectors"]:
            with self.subTest(vector=v["name"]):
                self.assertEqual(self.types.encode(v["type"], v["value"]).hex(), v["protobuf"])
                self.assertTrue(same(v["decoded"], self.types.decode(v["type"], bytes.fromhex(v["protobuf"]))))

    def test_a_value_that_does_not_fit_is_refused_with_the_same_message(self):
        self.assertGreater(len(self.doc["invalid"]), 5)
        for v in self.doc["invalid"]:
            with self.subTest(vector=v["name"]):
                with self.assertRaises(LogoMeshError) as cm:
                    self.types.encode(v["type"], v["value"])
                self.assertEqual(cm.exception.code, "LM_INVALID_ARGUMENT")
                self.assertEqual(cm.exception.message, v["error"])

    def test_through_the_segment_header_and_its_refusals(self):
        t = self.doc["vectors"][0]["type"]
        framed = bridge.frame({"big": "9007199254740993"}, "protobuf", t, self.types)
        self.assertEqual(bridge.unframe(framed, "protobuf", t, self.types), ({"big": "9007199254740993"}, "protobuf"))
        for call in [lambda: bridge.encode({}, "json", t, self.types), lambda: bridge.encode({}, "protobuf", t),
                     lambda: self.types.encode("no.such.Type", {}), lambda: self.types.decode(t, b"\xff\xff"),
                     lambda: ProtobufTypes(b"\x0a\x05junk!"), lambda: ProtobufTypes.load("/nonexistent/types.pb")]:
            with self.assertRaises(LogoMeshError) as cm:
                call()
            self.assertEqual(cm.exception.code, "LM_INVALID_ARGUMENT")


if __name__ == "__main__":
    unittest.main()
