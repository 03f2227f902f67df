"""TLS failure logs (issue #11 item 12): a client that does not trust our
certificate and aborts the handshake on 465 and on 995 is logged in words
an operator can act on, with the same reason in both daemons, and
pop3.disconnect counts TOP as it counts RETR."""

import os
import re
import socket
import ssl
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import carteiro_test as ct  # noqa: E402
import pop3_fixtures as pf  # noqa: E402
from test_log_fields import parse  # noqa: E402

DISTRUST = ("error=\"client closed the handshake (it probably does not "
            "trust our certificate)\"")


def wait_line(daemon, rx, timeout=10):
    """The first log line matching regex rx (waits for it)."""
    deadline = time.time() + timeout
    while True:
        for line in daemon.log().splitlines():
            if re.fullmatch(rx, line):
                return line
        if time.time() > deadline:
            raise AssertionError("no log line matches %r:\n%s" %
                                 (rx, daemon.log()[-4000:]))
        time.sleep(0.05)


class TlsLogs(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = ct.Env()
        cls.env.start_smtpd()
        pf.start(cls.env)
        # A CA that did not sign our certificate: the client's verify
        # fails, as when a real client does not trust the server.
        cls.other = tempfile.mkdtemp(prefix="carteiro-otherca-")
        cls.other_ca = ct.make_certs(cls.other)[0]

    @classmethod
    def tearDownClass(cls):
        cls.env.stop()
        import shutil
        shutil.rmtree(cls.other, ignore_errors=True)

    def distrust(self, port, tls13=True):
        ctx = ssl.create_default_context(cafile=self.other_ca)
        if not tls13:
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        sock = socket.create_connection(("127.0.0.1", port), 10)
        with self.assertRaises(ssl.SSLCertVerificationError):
            ctx.wrap_socket(sock, server_hostname="mail.example.test")
        sock.close()

    def check(self, daemon, proto, port, error, tls13):
        before = len(daemon.log().splitlines())
        self.distrust(port, tls13)
        deadline = time.time() + 10
        rx = (r"level=info event=%s\.tls sid=([0-9a-f]{16}) ip=127\.0\.0\.1 "
              r"result=fail reason=tls_handshake %s" % (proto, re.escape(error)))
        while True:
            new = daemon.log().splitlines()[before:]
            hits = [m for m in (re.fullmatch(rx, l) for l in new) if m]
            if hits or time.time() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(len(hits), 1, "\n".join(new))
        sid = hits[0].group(1)
        disc = wait_line(daemon, r"level=info event=%s\.disconnect sid=%s "
                         r"ip=127\.0\.0\.1 .*" % (proto, sid))
        self.assertIn(" reason=tls_handshake ", disc)
        # Nothing that reads as our own fault.
        self.assertNotIn("Decryption has failed", "\n".join(new))

    def test_smtps_tls13(self):
        self.check(self.env.smtpd, "smtp", self.env.ports["submissions"],
                   DISTRUST, True)

    def test_pop3s_tls13(self):
        self.check(self.env.pop3d, "pop3", self.env.ports["pop3s"],
                   DISTRUST, True)

    def test_smtps_tls12(self):
        # TLS 1.2 clients send their alert where GnuTLS can read it.
        self.check(self.env.smtpd, "smtp", self.env.ports["submissions"],
                   "error=\"client rejected our certificate (alert: CA is "
                   "unknown)\"", False)

    def test_pop3s_tls12(self):
        self.check(self.env.pop3d, "pop3", self.env.ports["pop3s"],
                   "error=\"client rejected our certificate (alert: CA is "
                   "unknown)\"", False)

    def test_top_counted(self):
        env = self.env
        pf.deliver(env, "alice@example.test",
                   pf.make_msg("top one", 5, b".dot line\r\n"))
        r = pf.Raw(env, tls=True)
        r.login()
        r.send(b"TOP 1 99999\r\n")
        top = r.multi_raw()
        self.assertTrue(top.startswith(b"+OK\r\n"), top)
        self.assertIn(b"\r\n..dot line\r\n", top)
        r.send(b"TOP 1 0\r\n")
        head = r.multi_raw()
        r.send(b"RETR 1\r\n")
        retr = r.multi_raw()
        self.assertTrue(retr.startswith(b"+OK "), retr)
        self.assertTrue(r.cmd("QUIT").startswith(b"+OK Logging out"))
        r.sock.close()
        line = wait_line(env.pop3d, r"level=info event=pop3\.disconnect "
                         r"sid=[0-9a-f]{16} ip=127\.0\.0\.1 "
                         r"user=alice@example\.test reason=quit .*")
        self.assertIn(" retrieved=3 retrieved_bytes=%d " %
                      (len(top) + len(head) + len(retr)), line)

    def test_zz_lines_strict(self):
        # Last (names run in order): every line both daemons wrote,
        # failed handshakes included, is strictly key=value.
        for d in (self.env.smtpd, self.env.pop3d):
            lines = d.log().splitlines()
            self.assertTrue(lines)
            for line in lines:
                keys = [k for k, _ in parse(line)]
                self.assertEqual(len(keys), len(set(keys)), line)


if __name__ == "__main__":
    ct.main()
