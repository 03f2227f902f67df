"""The queue runner never blocks the SMTP listener: while 200 queued
messages are being relayed to a slow remote (1 s per reply, 100 sessions
in flight), a new inbound MX connection gets its greeting within 100 ms.
The runner keeps to its limits: 100 sessions in total, 10 per domain."""

import os
import re
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import carteiro_test as ct  # noqa: E402
from fakemx import Sink, queue_insert, relay_setup, wait_for  # noqa: E402

DOMAINS = ["d%02d.test" % i for i in range(20)]
RECORDS = {d: {"MX": [(10, "mx.slow.test")]} for d in DOMAINS}
RECORDS["mx.slow.test"] = {"A": ["127.0.0.2"]}


def greeting_ms(port):
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        ct.recv_until(s, rb"^220 .*\r\n", timeout=5)
        ms = (time.monotonic() - t0) * 1000
        s.sendall(b"QUIT\r\n")
    return ms


class RelayNonBlocking(unittest.TestCase):
    def test_listener_responsive(self):
        env, dns, port = relay_setup(RECORDS)
        sink = Sink("127.0.0.2", port)
        sink.delay = 1.0
        sink.start()
        try:
            data = (b"From: alice@example.test\r\nSubject: load\r\n\r\n" +
                    b"x" * 2000 + b"\r\n")
            for i in range(200):
                # Half of them to one domain, to meet the per-domain cap.
                dom = DOMAINS[0] if i % 2 == 0 else \
                    DOMAINS[1 + (i // 2) % (len(DOMAINS) - 1)]
                queue_insert(env, "alice@example.test",
                             ["u%d@%s" % (i, dom)], data)
            env.start_smtpd()
            # Sessions ramp up at once; sample for a few seconds.
            self.assertTrue(wait_for(
                lambda: sink.transactions >= 50, timeout=10))
            samples = []
            deadline = time.time() + 4
            while time.time() < deadline:
                samples.append(greeting_ms(env.ports["mx"]))
                time.sleep(0.1)
            self.assertGreater(len(sink.messages) + sink.transactions, 50)
            worst = max(samples)
            sys.stderr.write("greeting latency under load: max %.1f ms, "
                             "median %.1f ms over %d samples\n" % (
                                 worst, sorted(samples)[len(samples) // 2],
                                 len(samples)))
            self.assertLess(worst, 100.0)
            # Concurrency limits: 100 sessions in total, 10 per domain.
            starts = env.log_lines(env.smtpd, "relay.session")
            total = [int(re.search(r" sessions=(\d+)", l).group(1))
                     for l in starts]
            per_domain = [int(re.search(r"domain_sessions=(\d+)", l).group(1))
                          for l in starts]
            self.assertEqual(max(total), 100)
            self.assertEqual(max(per_domain), 10)
        finally:
            env.stop()
            sink.stop()
            dns.stop()


if __name__ == "__main__":
    ct.main()
