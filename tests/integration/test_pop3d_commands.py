"""pop3d: every command and its replies (exact +OK/-ERR texts and response
codes) over STLS and implicit TLS, AUTH PLAIN/LOGIN, CAPA, error paths,
limits, the non-loopback plaintext rule, autologout and the log lines."""

import base64
import os
import poplib
import signal
import subprocess
import time
import unittest

import carteiro_test as ct
import pop3_fixtures as pf

ALICE = "alice@example.test"


def b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


class Pop3Commands(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = ct.Env()
        cls.msgs = [pf.make_msg("one", 5), pf.make_msg("two", 1),
                    pf.make_msg("three", 2)]
        cls.uidls = pf.deliver_many(cls.env, ALICE, cls.msgs)
        pf.start(cls.env)

    @classmethod
    def tearDownClass(cls):
        cls.env.stop()

    def _session(self, p):
        total = sum(len(m) for m in self.msgs)
        self.assertEqual(p.stat(), (3, total))
        resp, lines, _ = p.list()
        self.assertEqual(resp, b"+OK 3 messages:")
        self.assertEqual(lines, [b"%d %d" % (i + 1, len(m))
                                 for i, m in enumerate(self.msgs)])
        self.assertEqual(p.list(2), b"+OK 2 %d" % len(self.msgs[1]))
        resp, lines, _ = p.uidl()
        self.assertEqual(resp, b"+OK")
        self.assertEqual(lines, [b"%d %s" % (i + 1, u.encode())
                                 for i, u in enumerate(self.uidls)])
        self.assertEqual(p.uidl(3), b"+OK 3 " + self.uidls[2].encode())
        for i, m in enumerate(self.msgs):
            resp, lines, octets = p.retr(i + 1)
            self.assertEqual(resp, b"+OK %d octets" % len(m))
            self.assertEqual(pf.unstuff(lines), m)
        resp, lines, _ = p.top(1, 2)
        self.assertEqual(resp, b"+OK")
        head, body = self.msgs[0].split(b"\r\n\r\n", 1)
        self.assertEqual(pf.unstuff(lines), head + b"\r\n\r\n" +
                         b"".join(l + b"\r\n" for l in
                                  body.split(b"\r\n")[:2]))
        resp, lines, _ = p.top(1, 0)
        self.assertEqual(pf.unstuff(lines), head + b"\r\n\r\n")
        resp, lines, _ = p.top(2, 100)
        self.assertEqual(pf.unstuff(lines), self.msgs[1])
        self.assertEqual(p.noop(), b"+OK")
        self.assertEqual(p.dele(2), b"+OK Marked to be deleted.")
        self.assertEqual(p.stat(), (2, total - len(self.msgs[1])))
        resp, lines, _ = p.list()
        self.assertEqual(resp, b"+OK 2 messages:")
        self.assertEqual([l.split()[0] for l in lines], [b"1", b"3"])
        for fn in (lambda: p.list(2), lambda: p.uidl(2), lambda: p.retr(2),
                   lambda: p.top(2, 1), lambda: p.dele(2)):
            with self.assertRaises(poplib.error_proto) as cm:
                fn()
            self.assertEqual(cm.exception.args[0], b"-ERR Message is deleted.")
        for n in (0, 4, 99999):
            with self.assertRaises(poplib.error_proto) as cm:
                p.retr(n)
            self.assertEqual(cm.exception.args[0],
                             b"-ERR There's no message %d." % n)
        self.assertEqual(p.rset(), b"+OK")
        self.assertEqual(p.stat(), (3, total))
        # RSET undid the mark: QUIT deletes nothing
        self.assertEqual(p.quit(), b"+OK Logging out.")
        self.assertEqual(len(self.env.mailbox_bodies(ALICE)), 3)

    def test_stls_all_commands(self):
        p = pf.pop3(self.env, "stls")
        self._session(p)

    def test_implicit_tls_all_commands(self):
        p = pf.pop3(self.env, "implicit")
        self._session(p)

    def test_greeting_and_capa(self):
        p = poplib.POP3("127.0.0.1", self.env.ports["pop3"], timeout=10)
        self.assertEqual(p.getwelcome(), b"+OK carteiro ready.")
        caps = p.capa()
        self.assertEqual(caps, {"CAPA": [], "TOP": [], "UIDL": [],
                                "RESP-CODES": [], "PIPELINING": [],
                                "AUTH-RESP-CODE": [], "USER": [],
                                "SASL": ["PLAIN", "LOGIN"], "STLS": [],
                                "EXPIRE": ["NEVER", "USER"],
                                "IMPLEMENTATION": ["carteiro"]})
        self.assertEqual(p.stls(context=self.env.client_ssl_context()),
                         b"+OK Begin TLS negotiation now.")
        caps = p.capa()
        self.assertNotIn("STLS", caps)
        self.assertIn("USER", caps)
        with self.assertRaises(poplib.error_proto) as cm:
            p._shortcmd("STLS")
        self.assertEqual(cm.exception.args[0], b"-ERR TLS is already active.")
        p.user(ALICE)
        p.pass_(ct.PASSWORD)
        caps = p.capa()
        self.assertNotIn("USER", caps)
        self.assertNotIn("SASL", caps)
        self.assertIn("TOP", caps)
        self.assertEqual(caps["EXPIRE"], ["NEVER"])
        p.quit()
        # implicit TLS: no STLS offered
        p = poplib.POP3_SSL("127.0.0.1", self.env.ports["pop3s"],
                            context=self.env.client_ssl_context(), timeout=10)
        self.assertEqual(p.getwelcome(), b"+OK carteiro ready.")
        self.assertNotIn("STLS", p.capa())
        p.quit()

    def test_auth_plain_and_login(self):
        pl = b64("\0%s\0%s" % (ALICE, ct.PASSWORD))
        # PLAIN with initial response
        r = pf.Raw(self.env, tls=True)
        r.line()
        self.assertEqual(r.cmd("AUTH PLAIN " + pl), b"+OK Logged in.")
        self.assertTrue(r.cmd("STAT").startswith(b"+OK 3 "))
        self.assertEqual(r.cmd("QUIT"), b"+OK Logging out.")
        r.close()
        # PLAIN without initial response (Thunderbird): "+ " first
        r = pf.Raw(self.env, tls=True)
        r.line()
        self.assertEqual(r.cmd("AUTH PLAIN"), b"+ ")
        self.assertEqual(r.cmd(pl), b"+OK Logged in.")
        r.close()
        # LOGIN without and with initial response
        r = pf.Raw(self.env, tls=True)
        r.line()
        self.assertEqual(r.cmd("AUTH LOGIN"), b"+ VXNlcm5hbWU6")
        self.assertEqual(r.cmd(b64(ALICE)), b"+ UGFzc3dvcmQ6")
        self.assertEqual(r.cmd(b64(ct.PASSWORD)), b"+OK Logged in.")
        r.close()
        r = pf.Raw(self.env, tls=True)
        r.line()
        self.assertEqual(r.cmd("auth login " + b64(ALICE)), b"+ UGFzc3dvcmQ6")
        self.assertEqual(r.cmd(b64(ct.PASSWORD)), b"+OK Logged in.")
        r.close()
        # "*" cancels; bad base64; unknown mechanism; bare AUTH lists
        r = pf.Raw(self.env, tls=True)
        r.line()
        self.assertEqual(r.cmd("AUTH PLAIN"), b"+ ")
        self.assertEqual(r.cmd("*"), b"-ERR Authentication aborted by client.")
        self.assertEqual(r.cmd("AUTH PLAIN"), b"+ ")
        self.assertEqual(r.cmd("!!!notbase64"),
                         b"-ERR [AUTH] Invalid SASL response.")
        self.assertEqual(r.cmd("AUTH CRAM-MD5"),
                         b"-ERR Unsupported authentication mechanism.")
        self.assertEqual(r.cmd("AUTH"), b"+OK")
        self.assertEqual(r.multi(), [b"PLAIN", b"LOGIN"])
        self.assertEqual(r.cmd("AUTH PLAIN " + pl), b"+OK Logged in.")
        r.close()

    def test_login_failures(self):
        r = pf.Raw(self.env, tls=True)
        r.line()
        self.assertEqual(r.cmd("PASS x"), b"-ERR No username given.")
        self.assertEqual(r.cmd("USER " + ALICE), b"+OK")
        self.assertEqual(r.cmd("PASS wrong"),
                         b"-ERR [AUTH] Authentication failed.")
        # unknown user: the same reply (after the penalty delay)
        t0 = time.time()
        self.assertEqual(r.cmd("USER nobody@example.test"), b"+OK")
        self.assertEqual(r.cmd("PASS secret"),
                         b"-ERR [AUTH] Authentication failed.")
        self.assertGreaterEqual(time.time() - t0, 0.9)  # growing delay
        # TRANSACTION commands are refused before login
        self.assertEqual(r.cmd("STAT"),
                         b"-ERR Unknown command in AUTHORIZATION state.")
        # a success resets the penalty
        self.assertEqual(r.cmd("USER " + ALICE), b"+OK")
        self.assertEqual(r.cmd("PASS " + ct.PASSWORD), b"+OK Logged in.")
        self.assertEqual(r.cmd("USER x"),
                         b"-ERR Unknown command in TRANSACTION state.")
        self.assertEqual(r.cmd("QUIT"), b"+OK Logging out.")
        self.assertTrue(r.closed())
        r.close()
        log = self.env.pop3d.log()
        self.assertIn("result=fail", log)
        self.assertNotIn("wrong", log.replace("wrong-state", ""))

    def test_syntax_errors_and_limits(self):
        r = pf.Raw(self.env)
        r.login()
        self.assertEqual(r.cmd("LIST x"), b"-ERR Invalid message number.")
        self.assertEqual(r.cmd("LIST 1 2"), b"-ERR Invalid message number.")
        self.assertEqual(r.cmd("TOP 1"), b"-ERR Invalid number of lines.")
        self.assertEqual(r.cmd("TOP 1 x"), b"-ERR Invalid number of lines.")
        self.assertEqual(r.cmd("RETR"), b"-ERR Missing argument.")
        self.assertEqual(r.cmd("STAT 1"), b"-ERR Too many arguments.")
        self.assertEqual(r.cmd("STAT "), b"+OK 3 %d" %
                         sum(len(m) for m in self.msgs))
        self.assertEqual(r.cmd("list 1"), b"+OK 1 %d" % len(self.msgs[0]))
        self.assertEqual(r.cmd("FOO"), b"-ERR Unknown command.")
        self.assertEqual(r.cmd(b"\x00\x01"), b"-ERR Unknown command.")
        self.assertEqual(r.cmd("X" * 600), b"-ERR Input line too long.")
        self.assertTrue(r.closed())
        r.close()
        # too many bad commands: hang up
        r = pf.Raw(self.env)
        r.line()
        for i in range(9):
            self.assertEqual(r.cmd("BOGUS"), b"-ERR Unknown command.")
        self.assertEqual(r.cmd("BOGUS"), b"-ERR Unknown command.")
        self.assertEqual(r.line(), b"-ERR Too many bad commands.")
        self.assertTrue(r.closed())
        r.close()
        # QUIT in AUTHORIZATION
        r = pf.Raw(self.env)
        r.line()
        self.assertEqual(r.cmd("QUIT"), b"+OK Logging out.")
        self.assertTrue(r.closed())
        r.close()

    def test_log_lines(self):
        p = pf.pop3(self.env, "stls")
        p.retr(1)
        try:
            p.retr(77)
        except poplib.error_proto:
            pass
        p.quit()
        time.sleep(0.2)
        d = self.env.pop3d
        self.assertTrue(self.env.log_lines(d, "pop3.connect"))
        self.assertTrue([l for l in self.env.log_lines(d, "pop3.login")
                         if "result=ok" in l and "user=" + ALICE in l])
        self.assertTrue([l for l in self.env.log_lines(d, "pop3.cmd")
                         if "cmd=RETR" in l and "result=ok" in l and
                         "bytes=" in l])
        self.assertTrue([l for l in self.env.log_lines(d, "pop3.cmd")
                         if "cmd=RETR" in l and "result=err" in l and
                         "level=info" in l and
                         "There's no message 77" in l])
        self.assertTrue([l for l in self.env.log_lines(d, "pop3.quit")
                         if "deleted=0" in l])
        self.assertTrue([l for l in self.env.log_lines(d, "pop3.disconnect")
                         if "reason=quit" in l and "retrieved=1" in l])
        self.assertNotIn("PASS " + ct.PASSWORD, d.log())


class Pop3NonLocal(unittest.TestCase):
    """CARTEIRO_TEST_NONLOCAL=1: clients count as non-loopback, so
    plaintext auth is refused before STLS; and the autologout timer."""

    @classmethod
    def setUpClass(cls):
        cls.env = ct.Env()
        os.environ["CARTEIRO_TEST_NONLOCAL"] = "1"
        os.environ["CARTEIRO_TEST_TIMEOUT_MS"] = "1500"
        try:
            pf.start(cls.env)
        finally:
            del os.environ["CARTEIRO_TEST_NONLOCAL"]
            del os.environ["CARTEIRO_TEST_TIMEOUT_MS"]

    @classmethod
    def tearDownClass(cls):
        cls.env.stop()

    def test_plaintext_refused(self):
        err = (b"-ERR [AUTH] Plaintext authentication disallowed on "
               b"non-secure (SSL/TLS) connections.")
        r = pf.Raw(self.env)
        r.line()
        self.assertEqual(r.cmd("CAPA"), b"+OK Capability list follows")
        caps = r.multi()
        self.assertNotIn(b"USER", caps)
        self.assertFalse([c for c in caps if c.startswith(b"SASL")])
        self.assertIn(b"STLS", caps)
        self.assertEqual(r.cmd("USER " + ALICE), err)
        self.assertEqual(r.cmd("PASS secret"), err)
        self.assertEqual(r.cmd("AUTH PLAIN " + b64("\0a\0b")), err)
        r.close()
        # after STLS it works
        p = pf.pop3(self.env, "stls", user=None)
        self.assertIn("USER", p.capa())
        p.user(ALICE)
        p.pass_(ct.PASSWORD)
        self.assertEqual(p.stat(), (0, 0))
        p.quit()

    def test_autologout(self):
        r = pf.Raw(self.env)
        r.line()
        t0 = time.time()
        self.assertEqual(r.line(), b"-ERR Disconnected for inactivity.")
        self.assertGreater(time.time() - t0, 1.0)
        self.assertTrue(r.closed())
        r.close()


class Pop3PlaintextAllowed(unittest.TestCase):
    def test_allow_plaintext_auth(self):
        env = ct.Env(conf={"pop3d": {"allow_plaintext_auth": "yes"}})
        os.environ["CARTEIRO_TEST_NONLOCAL"] = "1"
        try:
            pf.start(env)
        finally:
            del os.environ["CARTEIRO_TEST_NONLOCAL"]
        try:
            p = pf.pop3(env, "none", user=None)
            self.assertIn("USER", p.capa())
            p.user(ALICE)
            p.pass_(ct.PASSWORD)
            self.assertEqual(p.stat(), (0, 0))
            p.quit()
        finally:
            env.stop()


class Pop3Operation(unittest.TestCase):
    """-t, SIGHUP (TLS reload, log reopen) and max_clients_per_ip."""

    def test_operation(self):
        # Loopback is in the default trusted_networks: trust nothing.
        env = ct.Env(conf={"pop3d": {"max_clients_per_ip": "2",
                                     "trusted_networks": ""}})
        try:
            r = subprocess.run([ct.POP3D, "-t", "-c", env.conf],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("is ok", r.stdout)
            bad = os.path.join(env.dir, "bad.conf")
            with open(bad, "w") as f:
                f.write("[pop3d]\nlock_session = maybe\n")
            r = subprocess.run([ct.POP3D, "-t", "-c", bad],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 1)
            self.assertIn("lock_session", r.stderr)

            pf.start(env)
            # The harness's two start-up probes count against the per-IP
            # limit until pop3d has seen them go.
            deadline = time.time() + 10
            while (len(env.log_lines(env.pop3d, "pop3.disconnect")) < 2 and
                   time.time() < deadline):
                time.sleep(0.05)
            a = pf.Raw(env)
            b = pf.Raw(env, tls=True)
            self.assertEqual(a.line(), b"+OK carteiro ready.")
            self.assertEqual(b.line(), b"+OK carteiro ready.")
            c = pf.Raw(env)
            self.assertEqual(c.line(), b"-ERR [SYS/TEMP] Too many "
                             b"connections, try again later.")
            self.assertTrue(c.closed())
            c.close()
            # SIGHUP: the certificate is reloaded, sessions go on
            env.pop3d.proc.send_signal(signal.SIGHUP)
            time.sleep(0.3)
            self.assertTrue([l for l in env.log_lines(env.pop3d,
                                                      "pop3.reload")
                             if "result=ok" in l])
            self.assertEqual(b.cmd("CAPA"), b"+OK Capability list follows")
            b.multi()
            a.close()
            b.close()
            time.sleep(0.2)
            p = pf.pop3(env, "implicit")
            self.assertEqual(p.stat(), (0, 0))
            p.quit()
        finally:
            env.stop()


if __name__ == "__main__":
    ct.main()
