"""The worker pool of plain def handlers: who runs what, and when it is handed over."""
import asyncio
import threading
import time
import unittest

from logomesh._workers import QUIET, Workers
from logomesh._ws_frames import mask_key


class WorkersTest(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self):
        self.loop = asyncio.get_running_loop()
        self.ended = []
        self.pool = Workers(self.loop, 4, self.ended.append)
        self.addCleanup(self.pool.shutdown)

    async def test_calls_one_at_a_time_are_served_by_one_warm_thread(self):
        threads = set()
        for _ in range(20):
            await self.pool.submit(lambda: threads.add(threading.get_ident()))
        self.assertEqual(len(threads), 1)

    async def test_more_runs_than_threads_all_run_on_at_most_max_threads(self):
        threads, done = set(), []

        def work(i):
            threads.add(threading.get_ident())
            time.sleep(0.01)
            done.append(i)
            return i

        results = await asyncio.gather(*(self.pool.submit(work, i) for i in range(12)))
        self.assertEqual(results, list(range(12)))
        self.assertEqual(sorted(done), list(range(12)))
        self.assertLessEqual(len(threads), 4)

    async def test_a_run_waits_for_the_loop_to_wait_then_runs(self):
        ran = threading.Event()
        fut = self.pool.submit(ran.set)
        self.assertFalse(ran.wait(0.05), "handed over before the loop waited")
        await fut
        self.assertTrue(ran.is_set())

    async def test_done_and_quiet_runs_end_through_on_end_in_the_same_turn(self):
        answered = []
        loud = self.pool.run(lambda: 7, (), lambda out, exc: answered.append((out, exc)))
        await loud
        self.assertEqual(answered, [(7, None)])
        self.assertIn(loud, self.ended)
        quiet = self.pool.run(lambda: QUIET, (), lambda out, exc: answered.append(out))
        while not self.pool.has_finished:
            await asyncio.sleep(0.005)
        self.pool.reap()
        self.assertTrue(quiet.done())
        self.assertIn(quiet, self.ended)
        self.assertEqual(len(answered), 1, "a QUIET run posts nothing to the loop")

    async def test_shutdown_runs_what_was_handed_over_and_restores_the_selector(self):
        ran = threading.Event()
        self.pool.submit(ran.set)
        self.pool.shutdown()
        self.assertTrue(ran.wait(5))
        self.assertNotIn("select", self.loop._selector.__dict__)
        # The loop still waits as before.
        await asyncio.sleep(0)

    async def test_a_second_pool_on_the_same_loop_hands_over_too(self):
        other = Workers(self.loop, 2)
        self.addCleanup(other.shutdown)
        self.assertEqual(await other.submit(lambda: 5), 5)
        self.assertEqual(await self.pool.submit(lambda: 6), 6)
        other.shutdown()
        self.assertEqual(await self.pool.submit(lambda: 8), 8)


class MaskKeyTest(unittest.TestCase):
    def test_keys_are_four_random_bytes_each_handed_out_once(self):
        keys = [mask_key() for _ in range(3000)]
        self.assertTrue(all(type(k) is bytes and len(k) == 4 for k in keys))
        # 3,000 draws from 2^32: a repeat is about a 1-in-1,000 event, several are not chance.
        self.assertGreaterEqual(len(set(keys)), 2998)

    def test_threads_drawing_at_once_never_share_a_key(self):
        got = []

        def draw():
            got.extend(mask_key() for _ in range(2000))

        threads = [threading.Thread(target=draw) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(len(got), 8000)
        self.assertGreaterEqual(len(set(got)), 7990)


if __name__ == "__main__":
    unittest.main()
