"""The WebSocket client's framing and the topic rules."""
import os
import unittest

from logomesh import topic_matches
from logomesh._ws import _frame, _mask


class FramingTest(unittest.TestCase):
    def test_mask_is_an_involution_and_matches_the_byte_loop(self):
        for n in (0, 1, 3, 4, 5, 125, 126, 1000, 65536, 70001):
            data = os.urandom(n)
            key = os.urandom(4)
            masked = _mask(data, key)
            self.assertEqual(masked, bytes(b ^ key[i % 4] for i, b in enumerate(data)))
            self.assertEqual(_mask(masked, key), data)

    def test_frame_headers_use_7_16_and_64_bit_lengths_and_set_the_mask_bit(self):
        for n, header_len in ((0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)):
            frame = _frame(0x1, b"x" * n)
            self.assertEqual(frame[0], 0x81)
            self.assertTrue(frame[1] & 0x80)
            self.assertEqual(len(frame), header_len + 4 + n)
            key = frame[header_len:header_len + 4]
            self.assertEqual(_mask(frame[header_len + 4:], key), b"x" * n)


class TopicTest(unittest.TestCase):
    def test_patterns(self):
        self.assertTrue(topic_matches("thought.added", "thought.added"))
        self.assertFalse(topic_matches("thought.added", "thought.removed"))
        self.assertTrue(topic_matches("thought.*", "thought.added"))
        self.assertTrue(topic_matches("thought.*", "thought.a.b"))
        self.assertFalse(topic_matches("thought.*", "thought"))
        self.assertFalse(topic_matches("thought.*", "thoughts.added"))
        self.assertTrue(topic_matches("*", "anything.at.all"))


if __name__ == "__main__":
    unittest.main()
