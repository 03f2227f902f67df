"""Two relays (two carteiro-smtpd) on one queue (issue 18 item 3): 1,000
queued messages reach the MX exactly once each, every message finished by
exactly one relay; a relay that dies in the middle of a delivery keeps its
claim while it lives (lease renewal) and loses it when its lease runs out,
and the other relay then sends the message. Both backends (on
SQLite both nodes open one file)."""

import collections
import os
import re
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import carteiro_test as ct  # noqa: E402
import multinode as mn  # noqa: E402
from fakemx import RecordSink, relay_setup, wait_for  # noqa: E402

RECORDS = {
    "remote.test": {"MX": [(10, "mx1.remote.test")]},
    "mx1.remote.test": {"A": ["127.0.0.2"]},
}
N = 1000


def subject(data):
    m = re.search(rb"^Subject: (.*)\r$", data, re.M)
    return m.group(1).decode() if m else None


def done_qids(daemon):
    """The qids a relay finished (event=relay.done), in log order."""
    return [re.search(r"qid=(\d+)", l).group(1)
            for l in daemon.log().splitlines() if "event=relay.done " in l]


class TwoRelays(unittest.TestCase):
    def setUp(self):
        self.env = self.dns = self.sink = None
        self.saved = os.environ.get("CARTEIRO_RELAY_LEASE_S")

    def tearDown(self):
        if self.saved is None:
            os.environ.pop("CARTEIRO_RELAY_LEASE_S", None)
        else:
            os.environ["CARTEIRO_RELAY_LEASE_S"] = self.saved
        if self.sink:
            self.sink.stop()
        if self.env:
            self.env.stop()
        if self.dns:
            self.dns.stop()

    def setup_nodes(self, on_message):
        self.env, self.dns, port = relay_setup(RECORDS, conf=
            {"relay": {"retry_first": "1h", "retry_max": "1h"}})
        self.sink = RecordSink("127.0.0.2", port, on_message).start()
        self.a = mn.Node(self.env, "a")
        self.b = mn.Node(self.env, "b")

    def test_1000_messages_each_delivered_once(self):
        got = collections.Counter()
        lock = threading.Lock()

        def on_message(mail_from, rcpts, data):
            with lock:
                got[(subject(data), tuple(rcpts))] += 1
        self.setup_nodes(on_message)
        rows = self.env.store_fixture("queue", "--from",
                                "alice@example.test", "--count", str(N),
                                "--size", "600", "r@remote.test")
        self.assertEqual(len(rows), N)
        # Both relays start together and race for the same queue.
        da, db = self.a.smtpd_daemon(), self.b.smtpd_daemon()
        starters = [threading.Thread(target=d.start) for d in (da, db)]
        for t in starters:
            t.start()
        for t in starters:
            t.join()
        self.env.daemons += [da, db]
        self.assertTrue(wait_for(lambda: sum(got.values()) >= N and int(
            self.env.query("SELECT count(*) FROM queue")[0][0]) == 0,
            timeout=240), "delivered %d of %d" % (sum(got.values()), N))
        time.sleep(2.5)         # a second copy would be out by now
        want = {("fixture %d" % i, ("r@remote.test",)) for i in range(N)}
        # (Compared as small sets: a diff of two 1,000-entry dicts takes
        # unittest minutes.)
        self.assertEqual(sorted(k for k, n in got.items() if n != 1), [],
                         "delivered more than once")
        self.assertEqual(sorted(want - set(got)), [], "never delivered")
        self.assertEqual(sorted(set(got) - want), [], "unknown messages")
        qa, qb = done_qids(da), done_qids(db)
        self.assertEqual(sorted(set(qa) & set(qb), key=int)[:10], [],
                         "finished by both relays")
        self.assertEqual(len(qa) + len(qb), N)
        self.assertEqual(set(qa) | set(qb), {r["queue"] for r in rows})
        # Both took part (the claim shares the queue, not one relay
        # taking all).
        self.assertGreater(len(qa), 0)
        self.assertGreater(len(qb), 0)

    def test_dead_relay_claim_ends_with_its_lease(self):
        lease = 5
        os.environ["CARTEIRO_RELAY_LEASE_S"] = str(lease)
        held, release = threading.Event(), threading.Event()
        got = []

        def on_message(mail_from, rcpts, data):
            if not held.is_set():
                held.set()          # node a's attempt: never answered
                release.wait(60)
                return
            got.append(subject(data))
        self.setup_nodes(on_message)
        rows = self.env.store_fixture("queue", "--from",
                                "alice@example.test", "--count", "1",
                                "--size", "300", "r@remote.test")
        qid = rows[0]["queue"]
        try:
            self.a.start_smtpd()
            self.assertTrue(held.wait(30), "node a never delivered")
            owner = self.env.query("SELECT claimed_by FROM queue")
            self.assertEqual(len(owner), 1)
            self.assertRegex(owner[0][0], r"^[^:]+:%d:\d+$" %
                             self.a.smtpd.proc.pid)
            self.assertRegex(self.env.ctl_ok("queue", "show", qid),
                             r"\nclaimed-by: %s until \d{4}-\d\d-\d\dT" %
                             re.escape(owner[0][0]))
            # b runs while a lives: a renews its lease, b never takes
            # the message (for twice the lease).
            self.b.start_smtpd()
            time.sleep(2 * lease)
            self.assertEqual(got, [])
            self.assertEqual(done_qids(self.b.smtpd), [])
            # a dies in the middle of the DATA; its claim is good until
            # the lease ends, then b sends the message.
            self.a.smtpd.kill9()
            self.assertTrue(wait_for(lambda: got, timeout=lease + 20))
            self.assertTrue(wait_for(lambda: done_qids(self.b.smtpd),
                                     timeout=20))
            self.assertEqual(got, ["fixture 0"])
            self.assertEqual(done_qids(self.b.smtpd), [qid])
            self.assertTrue(wait_for(lambda: self.env.query(
                "SELECT count(*) FROM queue")[0][0] == 0))
        finally:
            release.set()

    def test_restart_drops_own_dead_claim(self):
        """kill -9 in the middle of a delivery, restart: the new process
        drops the claim of the dead one of its host at start and sends at
        once, without waiting out the (default, 300 s) lease."""
        os.environ.pop("CARTEIRO_RELAY_LEASE_S", None)
        held, release = threading.Event(), threading.Event()
        got = []

        def on_message(mail_from, rcpts, data):
            if not held.is_set():
                held.set()
                release.wait(60)
                return
            got.append(subject(data))
        self.setup_nodes(on_message)
        self.env.store_fixture("queue", "--from", "alice@example.test",
                         "--count", "1", "--size", "300", "r@remote.test")
        try:
            self.a.start_smtpd()
            self.assertTrue(held.wait(30), "node a never delivered")
            dead = self.a.smtpd.proc.pid
            self.a.smtpd.kill9()
            lease = int(self.env.query("SELECT lease_until FROM "
                                 "queue")[0][0])
            self.assertGreater(lease, time.time() + 200)
            self.a.start_smtpd()
            self.assertTrue(wait_for(lambda: got, timeout=20))
            self.assertEqual(got, ["fixture 0"])
            self.assertEqual(len([l for l in self.a.smtpd.log().splitlines()
                                  if "event=relay.claim_release " in l and
                                  ":%d:" % dead in l and "reason=dead "
                                  "messages=1" in l]), 1)
        finally:
            release.set()


if __name__ == "__main__":
    ct.main()
