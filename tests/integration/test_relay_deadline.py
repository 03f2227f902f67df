"""The relay's SMTP client has deadlines that a trickling server cannot
push back (issue 11 item 6). An MX that sends a "220-" continuation line
every 0.2 s is given up at [relay] connect_timeout (2 s here), the message
stays queued (deferred, the last error naming the timeout), and mail for
another domain is delivered while the trickler is still trickling. A reply
of 101 lines ends the attempt at once."""

import os
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import carteiro_test as ct  # noqa: E402
from fakemx import Sink, queue_insert, relay_setup, wait_for  # noqa: E402

RECORDS = {
    "slow.test": {"MX": [(10, "mx.slow.test")]},
    "mx.slow.test": {"A": ["127.0.0.2"]},
    "fast.test": {"MX": [(10, "mx.fast.test")]},
    "mx.fast.test": {"A": ["127.0.0.3"]},
}
CONF = {"relay": {"connect_timeout": "2s", "command_timeout": "2s",
                  "retry_first": "1h", "retry_max": "1h"}}
MSG = b"From: alice@example.test\r\nSubject: deadline\r\n\r\nhello\r\n"


class Trickler:
    """Greets with burst "220-" lines at once, then one more every
    interval seconds (if trickle), never the final "220 " line. Records
    for each connection when it was accepted and when the client hung
    up."""

    def __init__(self, host, port, burst=0, trickle=True, interval=0.2):
        self.burst, self.trickle, self.interval = burst, trickle, interval
        self.conns = []         # [accepted, closed or None]
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.running = True
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while self.running:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            rec = [time.monotonic(), None]
            with self.lock:
                self.conns.append(rec)
            threading.Thread(target=self._session, args=(c, rec),
                             daemon=True).start()

    def _session(self, c, rec):
        c.settimeout(self.interval)
        try:
            c.sendall(b"220-slow.test hello\r\n" * self.burst)
            while self.running:
                if self.trickle:
                    c.sendall(b"220-slow.test still here\r\n")
                try:
                    if c.recv(4096) == b"":
                        break           # the client hung up
                except socket.timeout:
                    pass
        except OSError:
            pass
        rec[1] = time.monotonic()
        c.close()

    def open_conns(self):
        with self.lock:
            return [r for r in self.conns if r[1] is None]

    def stop(self):
        self.running = False
        self.sock.close()


def rcpt_row(env, address):
    rows = env.query("SELECT status, last_error FROM queue_rcpt "
                     "WHERE address = ?", (address,))
    return rows[0] if rows else None


class RelayDeadline(unittest.TestCase):
    def test_trickled_greeting_given_up_others_flow(self):
        env, dns, port = relay_setup(RECORDS, conf=CONF)
        trickler = Trickler("127.0.0.2", port)
        sink = Sink("127.0.0.3", port).start()
        try:
            queue_insert(env, "alice@example.test", ["bob@slow.test"], MSG)
            env.start_smtpd()
            self.assertTrue(wait_for(lambda: trickler.conns, timeout=10))
            # Mail for another domain is delivered while the trickler
            # still holds its session.
            queue_insert(env, "alice@example.test", ["carol@fast.test"],
                         MSG)
            env.ctl_ok("queue", "flush")
            got = sink.wait(1, timeout=10)
            self.assertEqual([m.rcpts for m in got], [["carol@fast.test"]])
            self.assertEqual(len(trickler.open_conns()), 1)
            # The trickler is given up at the 2 s deadline, however many
            # lines it sent meanwhile.
            self.assertTrue(wait_for(lambda: trickler.conns[0][1],
                                     timeout=8))
            held = trickler.conns[0][1] - trickler.conns[0][0]
            self.assertGreaterEqual(held, 1.8)
            self.assertLess(held, 3.5)
            # Deferred: still queued, pending, the error names the
            # timeout.
            self.assertTrue(wait_for(lambda: (rcpt_row(
                env, "bob@slow.test") or (0, None))[1], timeout=5))
            status, err = rcpt_row(env, "bob@slow.test")
            self.assertEqual(status, 0)
            self.assertEqual(
                err, "451 4.4.1 mx.slow.test[127.0.0.2]: timeout: no "
                "complete greeting reply within 2000 ms")
            self.assertIsNone(rcpt_row(env, "carol@fast.test"))
            self.assertEqual(len(env.query("SELECT id FROM queue")), 1)
            self.assertEqual(env.mailbox_bodies("alice@example.test"), [])
        finally:
            trickler.stop()
            sink.stop()
            env.stop()
            dns.stop()

    def test_101_line_reply_ends_attempt(self):
        env, dns, port = relay_setup(RECORDS, conf=CONF)
        trickler = Trickler("127.0.0.2", port, burst=101, trickle=False)
        try:
            queue_insert(env, "alice@example.test", ["bob@slow.test"], MSG)
            env.start_smtpd()
            self.assertTrue(wait_for(lambda: trickler.conns and
                                     trickler.conns[0][1], timeout=10))
            # At once, not at the 2 s deadline.
            held = trickler.conns[0][1] - trickler.conns[0][0]
            self.assertLess(held, 1.5)
            self.assertTrue(wait_for(lambda: (rcpt_row(
                env, "bob@slow.test") or (0, None))[1], timeout=5))
            status, err = rcpt_row(env, "bob@slow.test")
            self.assertEqual(status, 0)
            self.assertEqual(
                err, "451 4.5.0 reply in state greeting longer than 100 "
                "lines or 65536 bytes (mx.slow.test[127.0.0.2])")
            self.assertEqual(len(env.query("SELECT id FROM queue")), 1)
        finally:
            trickler.stop()
            env.stop()
            dns.stop()


if __name__ == "__main__":
    ct.main()
