"""The data bridge against the shared vectors (test/vectors/bridge.json of LogoMesh, at
/opt/logomesh/vectors in the image): each value encodes to exactly the listed bytes in each
format, and decodes back to itself."""
import json
import math
import os
import unittest

from logomesh import bridge
from logomesh.errors import LogoMeshError

VECTORS = os.environ.get("LOGOMESH_VECTORS", "/opt/logomesh/vectors/bridge.json")


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


if __name__ == "__main__":
    unittest.main()
