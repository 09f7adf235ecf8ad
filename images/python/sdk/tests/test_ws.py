"""The WebSocket client's framing and the topic rules."""
import asyncio
import os
import struct
import unittest

from logomesh import topic_matches
from logomesh._ws import WebSocketClient, _frame, _mask


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


class Transport(asyncio.Transport):
    """Records what the client writes; the client's side of a socket."""

    def __init__(self):
        super().__init__()
        self.written = b""
        self.closed = False

    def write(self, data):
        self.written += data

    def is_closing(self):
        return self.closed

    def close(self):
        self.closed = True


class SizeLimitTest(unittest.IsolatedAsyncioTestCase):
    async def test_a_frame_over_max_size_is_not_buffered_and_closes_with_1009(self):
        messages, closes = [], []
        client = WebSocketClient(asyncio.get_running_loop(), messages.append, lambda c, r: closes.append(c), "h", "/v1", max_size=1000)
        transport = Transport()
        client.connection_made(transport)
        client._upgraded = client.open = True
        client.data_received(bytes((0x81, 126)) + struct.pack("!H", 1000) + b"x" * 1000)
        self.assertEqual(messages, [bytearray(b"x" * 1000)])
        # Only the header of a 2^40-byte frame has arrived: it is refused at once.
        client.data_received(bytes((0x81, 127)) + struct.pack("!Q", 1 << 40) + b"xx")
        self.assertTrue(transport.closed)
        self.assertEqual(client.close_code, 1009)
        self.assertEqual(struct.unpack("!H", _unmask_close(transport.written))[0], 1009)
        self.assertEqual(len(messages), 1)


def _unmask_close(written):
    """The status of the close frame the client wrote: its frames, after the upgrade request,
    are walked from the first (a search for the 0x88 byte could land in a random mask key)."""
    i, close = written.index(b"\r\n\r\n") + 4, None
    while i < len(written):
        opcode, length = written[i] & 0x0F, written[i + 1] & 0x7F
        i += 2
        if length == 126:
            length, i = struct.unpack("!H", written[i:i + 2])[0], i + 2
        elif length == 127:
            length, i = struct.unpack("!Q", written[i:i + 8])[0], i + 8
        key, i = written[i:i + 4], i + 4
        if opcode == 0x8:
            close = _mask(written[i:i + length], key)
        i += length
    assert close is not None, "no close frame written"
    return close[:2]


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
