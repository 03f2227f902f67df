"""Abuse limits on a non-exempt client: the per-IP connection rate, the
early-talker check behind greet_pause, and AUTH failure throttling that is
shared by the submission and submissions listeners. Loopback is in the
default trusted_networks, so the first two trust nothing
(test_smtpd_trusted shows the exemption)."""

import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import carteiro_test as ct  # noqa: E402
from smtpd_util import Raw, plain  # noqa: E402


class Abuse(unittest.TestCase):
    def tearDown(self):
        self.env.stop()

    def test_connect_rate(self):
        self.env = ct.Env(conf={"smtpd": {"inbound_checks_exempt": "",
                                          "trusted_networks": "",
                                          "max_connect_rate_per_ip": "3"}})
        self.env.start_smtpd()

        def greet(source):
            # The harness's start-up probes came from 127.0.0.1: use
            # addresses of our own.
            s = socket.create_connection(("127.0.0.1", self.env.ports["mx"]),
                                         10, source_address=(source, 0))
            try:
                return ct.recv_until(s, rb"\r\n").decode()
            finally:
                s.close()

        for _ in range(3):
            self.assertTrue(greet("127.0.0.4").startswith("220 "))
        line = greet("127.0.0.4")
        self.assertTrue(line.startswith("421 4.7.0 "), line)
        # Another address has its own budget.
        self.assertTrue(greet("127.0.0.5").startswith("220 "))

    def test_early_talker(self):
        self.env = ct.Env(conf={"smtpd": {"inbound_checks_exempt": "",
                                          "trusted_networks": "",
                                          "greet_pause": "1s"}})
        self.env.start_smtpd()
        # Talks before the greeting: dropped.
        s = socket.create_connection(("127.0.0.1", self.env.ports["mx"]), 10)
        s.sendall(b"EHLO spammer.example\r\n")
        data = ct.recv_until(s, rb"\r\n", timeout=10)
        self.assertTrue(data.startswith(b"554 5.5.1 "), data)
        s.settimeout(5)
        self.assertEqual(s.recv(100), b"")
        s.close()
        # Waits: greeted after the pause.
        t0 = time.time()
        r = Raw(self.env.ports["mx"])
        self.assertEqual(r.greeting[0], 220)
        self.assertGreaterEqual(time.time() - t0, 0.9)
        self.assertEqual(r.code("EHLO ok.example"), 250)
        r.close()
        self.assertEqual(len(self.env.log_lines(self.env.smtpd,
                                                "smtp.pregreet")), 1)

    def test_auth_throttle_shared_across_listeners(self):
        self.env = ct.Env(conf={"smtpd": {"inbound_checks_exempt": ""}})
        self.env.start_smtpd()
        ctx = self.env.client_ssl_context()
        bad = plain("alice@example.test", "wrong")
        times = []
        for port, tls in ((self.env.ports["submission"], False),
                          (self.env.ports["submission"], False),
                          (self.env.ports["submissions"], True),
                          (self.env.ports["submissions"], True)):
            r = Raw(port, tls_ctx=ctx if tls else None)
            if not tls:
                r.cmd("EHLO c.example")
                r.starttls(ctx)
            r.cmd("EHLO c.example")
            t0 = time.time()
            code = r.code("AUTH PLAIN " + bad)
            times.append(time.time() - t0)
            self.assertEqual(code, 535)
            r.close()
        # 0 s, then 1 s, 2 s, 4 s: the delay keeps growing across ports.
        self.assertLess(times[0], 1.0, times)
        self.assertGreaterEqual(times[2], 1.8, times)
        self.assertGreaterEqual(times[3], 3.5, times)


if __name__ == "__main__":
    ct.main()
