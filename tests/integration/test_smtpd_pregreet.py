"""Pregreet: while the DNSBL check holds the greeting back, a client that
talks first (RFC 5321 3.1 says it must wait) is refused with 554 5.5.1 and
disconnected (a client that waits is greeted: test_dnsbl shows it)."""

import os
import socket
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import carteiro_test as ct  # noqa: E402
from fakedns import FakeDNS  # noqa: E402


class Pregreet(unittest.TestCase):
    def test_early_talker(self):
        # A blacklist that never answers keeps the greeting back for the
        # resolver's timeout: plenty of time to talk first.
        dns = FakeDNS({"1.0.0.127.slow.test": "DROP"}).start()
        env = ct.Env(conf={"relay": {"resolver": "127.0.0.1:%d" % dns.port},
                           "smtpd": {"dnsbl": "slow.test",
                                     "inbound_checks_exempt": ""}})
        try:
            env.start_smtpd()
            s = socket.create_connection(("127.0.0.1", env.ports["mx"]), 30)
            s.sendall(b"EHLO spammer.test\r\n")
            data = ct.recv_until(s, rb"\r\n", timeout=30)
            self.assertTrue(data.startswith(b"554 5.5.1 "), data)
            s.settimeout(10)
            self.assertEqual(s.recv(100), b"")
            s.close()
            self.assertTrue(env.log_lines(env.smtpd, "smtp.pregreet"))
        finally:
            env.stop()
            dns.stop()


if __name__ == "__main__":
    ct.main()
