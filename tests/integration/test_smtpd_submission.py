"""Submission: AUTH PLAIN/LOGIN (initial response and 334 continuation,
"*" cancels), 535 5.7.8 on a bad password (never logged), 530 5.7.0 for
MAIL before AUTH, MAIL FROM must belong to the user (553 5.7.1; an alias
delivering to the user is fine; <> refused), remote recipients queued and
local ones delivered, daily_send_limit 450 4.7.1, swaks over STARTTLS +
AUTH, and no AUTH before TLS from a non-loopback address."""

import re
import smtplib
import socket
import subprocess
import time
import unittest

import carteiro_test as ct
from smtpd_util import Env, Raw, plain, b64


def non_loopback_ipv4():
    try:
        out = subprocess.run(["hostname", "-I"], capture_output=True,
                             text=True, timeout=5).stdout.split()
    except OSError:
        return None
    for a in out:
        if re.match(r"^\d+\.\d+\.\d+\.\d+$", a) and not a.startswith("127."):
            return a
    return None


class Submission(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.port = ct.free_port()
        cls.env = Env(conf={
            "smtpd": {"daily_send_limit": "3",
                      "submission_listen": "0.0.0.0:%d" % cls.port},
            # Remote mail must stay queued: a closed smarthost port.
            "relay": {"smarthost": "127.0.0.1:1",
                      "resolver": "127.0.0.1:1"}})
        cls.env.ports["submission"] = cls.port
        cls.env.ctl_ok("alias", "add", "sales@example.test",
                       "alice@example.test")
        cls.env.start_smtpd()

    @classmethod
    def tearDownClass(cls):
        cls.env.stop()

    def login(self, c, user="alice@example.test"):
        c.cmd("EHLO client.test")
        self.assertEqual(c.text("AUTH PLAIN " + plain(user, "secret")),
                         "235 2.7.0 Authentication successful")

    def test_auth_variants(self):
        c = Raw(self.port)
        c.cmd("EHLO client.test")
        self.assertEqual(c.text("MAIL FROM:<alice@example.test>"),
                         "530 5.7.0 Authentication required")
        self.assertEqual(c.text("AUTH CRAM-MD5"),
                         "504 5.5.4 Unrecognized authentication type")
        self.assertEqual(c.text("AUTH PLAIN"), "334 ")
        self.assertEqual(c.text("*"), "501 5.7.0 Authentication cancelled")
        self.assertEqual(c.text("AUTH LOGIN"), "334 VXNlcm5hbWU6")
        self.assertEqual(c.text(b64("alice@example.test")), "334 UGFzc3dvcmQ6")
        self.assertEqual(c.text("*"), "501 5.7.0 Authentication cancelled")
        self.assertEqual(c.text("AUTH PLAIN !!!notbase64"),
                         "501 5.5.2 Cannot decode response")
        self.assertEqual(c.text("AUTH PLAIN " + plain("alice@example.test",
                                                     "wrongpass")),
                         "535 5.7.8 Authentication credentials invalid")
        self.assertEqual(c.text("AUTH LOGIN " + b64("bob@example.test")),
                         "334 UGFzc3dvcmQ6")
        self.assertEqual(c.text(b64("secret")),
                         "235 2.7.0 Authentication successful")
        self.assertEqual(c.text("AUTH PLAIN " + plain("bob@example.test",
                                                     "secret")),
                         "503 5.5.1 Error: already authenticated")
        c.cmd("QUIT")
        c = Raw(self.port)
        c.cmd("EHLO client.test")
        self.assertEqual(c.text("AUTH PLAIN"), "334 ")
        self.assertEqual(c.text(plain("alice@example.test", "secret")),
                         "235 2.7.0 Authentication successful")
        c.cmd("QUIT")
        logs = self.env.smtpd.log()
        self.assertNotIn("wrongpass", logs)
        self.assertNotIn(b64("secret"), logs)
        self.assertNotIn(plain("alice@example.test", "wrongpass"), logs)
        self.assertRegex(logs, r'event=smtp.auth sid=\S+ ip=127.0.0.1 '
                         r'result=fail mech=PLAIN user="alice@example.test"')
        self.assertRegex(logs, r'event=smtp.auth sid=\S+ ip=127.0.0.1 '
                         r'result=ok mech=LOGIN user="bob@example.test"')

    def test_auth_delay_grows(self):
        c = Raw(self.port)
        c.cmd("EHLO client.test")
        bad = "AUTH PLAIN " + plain("bob@example.test", "nope")
        times = []
        for _ in range(2):
            t0 = time.time()
            self.assertEqual(c.code(bad), 535)
            times.append(time.time() - t0)
        self.assertLess(times[0], 0.9)
        self.assertGreaterEqual(times[1], 0.9)
        # Another session from the same address is not a way around it.
        d = Raw(self.port)
        d.cmd("EHLO client.test")
        t0 = time.time()
        self.assertEqual(d.code(bad), 535)
        self.assertGreaterEqual(time.time() - t0, 1.8)
        self.assertEqual(c.code("AUTH PLAIN " +
                                plain("bob@example.test", "secret")), 235)
        c.cmd("QUIT")
        d.cmd("QUIT")

    def test_sender_ownership(self):
        c = Raw(self.port)
        self.login(c)
        self.assertEqual(c.text("MAIL FROM:<bob@example.test>")[:9],
                         "553 5.7.1")
        self.assertEqual(c.text("MAIL FROM:<>")[:9], "553 5.7.1")
        self.assertEqual(c.text("MAIL FROM:<someone@remote.test>")[:9],
                         "553 5.7.1")
        self.assertEqual(c.code("MAIL FROM:<sales@example.test>"), 250)
        c.cmd("RSET")
        self.assertEqual(c.code("MAIL FROM:<Alice@Example.TEST>"), 250)
        self.assertEqual(c.text("RCPT TO:<nobody@example.test>")[:9],
                         "550 5.1.1")
        c.cmd("QUIT")

    def test_swaks_remote_and_local(self):
        r = subprocess.run(
            ["swaks", "--server", "127.0.0.1:%d" % self.port, "--tls",
             "--tls-ca-path", self.env.ca,
             "--auth", "PLAIN", "--auth-user", "alice@example.test",
             "--auth-password", "secret",
             "--from", "alice@example.test",
             "--to", "friend@remote.test,bob@example.test",
             "--header", "Subject: via swaks", "--body", "hello from swaks"],
            capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"<~  250 2.0.0 Ok: queued as [0-9a-f]{16}")
        msg = self.env.mailbox_bodies("bob@example.test")[-1]
        self.assertIn(b"hello from swaks", msg)
        self.assertRegex(msg, rb"Received: from \S+ \(\[127.0.0.1\]\)\r\n"
                         rb"\t\(using TLSv1.[23] with cipher \S+\)\r\n"
                         rb"\t\(authenticated as alice@example.test\)\r\n"
                         rb"\tby mail.example.test \(carteiro\) with ESMTPSA ")
        rows = self.env.query(
            "SELECT q.mail_from, q.auth_user, r.address FROM queue q "
            "JOIN queue_rcpt r ON r.queue_id = q.id")
        self.assertIn(("alice@example.test", "alice@example.test",
                       "friend@remote.test"), rows)

    def test_zz_daily_limit(self):
        # Limit 3 remote recipients per day; swaks already used one.
        s = smtplib.SMTP("127.0.0.1", self.port)
        s.ehlo("client.test")
        s.login("alice@example.test", "secret")
        s.mail("alice@example.test")
        self.assertEqual(s.rcpt("a@remote.test")[0], 250)
        self.assertEqual(s.rcpt("b@remote.test")[0], 250)
        code, text = s.rcpt("c@remote.test")
        self.assertEqual(code, 450)
        self.assertIn(b"4.7.1 Daily sending limit of 3", text)
        self.assertIn(b"capacity frees up at", text)
        # Local recipients are not limited.
        self.assertEqual(s.rcpt("bob@example.test")[0], 250)
        self.assertEqual(s.data(b"Subject: limit\r\n\r\nx\r\n")[0], 250)
        s.mail("alice@example.test")
        self.assertEqual(s.rcpt("d@remote.test")[0], 450)
        s.quit()

    def test_no_auth_before_tls_off_loopback(self):
        ip = non_loopback_ipv4()
        if ip is None:
            self.skipTest("no non-loopback IPv4 address")
        sock = socket.create_connection((ip, self.port), 5)
        c = Raw.__new__(Raw)
        c.sock, c.buf, c.timeout = sock, b"", 10
        self.assertEqual(c.reply()[0], 220)
        code, lines = c.cmd("EHLO client.test")
        self.assertNotIn("AUTH PLAIN LOGIN", lines)
        self.assertIn("STARTTLS", lines)
        self.assertEqual(c.text("AUTH PLAIN " + plain("alice@example.test",
                                                     "secret")),
                         "530 5.7.0 Must issue a STARTTLS command first")
        c.starttls(self.env.client_ssl_context())
        code, lines = c.cmd("EHLO client.test")
        self.assertIn("AUTH PLAIN LOGIN", lines)
        c.cmd("QUIT")


if __name__ == "__main__":
    ct.main()
