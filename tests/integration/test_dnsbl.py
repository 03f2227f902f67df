"""DNSBL at connect (RFC 5782): a client listed in the fake zone is refused
with 554 5.7.1 naming the zone and the TXT reason; an unlisted one is
greeted; a DNSBL that never answers does not stop mail."""

import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import carteiro_test as ct  # noqa: E402
from fakedns import FakeDNS  # noqa: E402


def greeting(port, source):
    s = socket.create_connection(("127.0.0.1", port), 20,
                                 source_address=(source, 0))
    try:
        return ct.recv_until(s, rb"\r\n", timeout=20).decode()
    finally:
        s.close()


class Dnsbl(unittest.TestCase):
    def test_listed_refused_unlisted_greeted(self):
        dns = FakeDNS({
            "2.0.0.127.bl.test": {"A": ["127.0.0.2"],
                                  "TXT": ["listed for testing"]},
        }).start()
        env = ct.Env(conf={"relay": {"resolver": "127.0.0.1:%d" % dns.port},
                           "smtpd": {"dnsbl": "bl.test",
                                     "inbound_checks_exempt": ""}})
        try:
            env.start_smtpd()
            line = greeting(env.ports["mx"], "127.0.0.2")
            self.assertTrue(line.startswith("554 5.7.1 "), line)
            self.assertIn("bl.test", line)
            self.assertIn("listed for testing", line)
            line = greeting(env.ports["mx"], "127.0.0.1")
            self.assertTrue(line.startswith("220 "), line)
            self.assertTrue(any("zone=bl.test" in l for l in
                                env.log_lines(env.smtpd, "smtp.dnsbl")))
        finally:
            env.stop()
            dns.stop()

    def test_dead_dnsbl_does_not_block(self):
        dns = FakeDNS({"1.0.0.127.dead.test": "DROP"}).start()
        env = ct.Env(conf={"relay": {"resolver": "127.0.0.1:%d" % dns.port},
                           "smtpd": {"dnsbl": "dead.test",
                                     "inbound_checks_exempt": ""}})
        try:
            env.start_smtpd()
            t0 = time.time()
            line = greeting(env.ports["mx"], "127.0.0.1")
            self.assertTrue(line.startswith("220 "), line)
            self.assertLess(time.time() - t0, 15)
            self.assertTrue(any("result=temperror" in l for l in
                                env.log_lines(env.smtpd, "smtp.dnsbl")))
        finally:
            env.stop()
            dns.stop()


if __name__ == "__main__":
    ct.main()
