"""No copy of a password is left in the daemons after AUTH: smtpd (AUTH
PLAIN with an initial response, AUTH LOGIN in 334 steps, a failed AUTH
PLAIN, in plaintext on loopback, then PLAIN over implicit TLS and LOGIN
after STARTTLS) and pop3d (USER/PASS, AUTH PLAIN, a failed PASS, then
USER/PASS and AUTH LOGIN over implicit TLS) log in with distinctive
passwords; once the replies are in, every writable mapping of the daemon
(/proc/PID/maps + /proc/PID/mem: heap, thread stacks, libevent buffers,
conn.c's read buffer, GnuTLS's record buffers, the auth workers) must hold
neither a password, nor its base64, nor the base64 of the PLAIN message.
Checked with the sessions still open and again after QUIT."""

import base64
import os
import unittest

import carteiro_test as ct
import pop3_fixtures as pf
from smtpd_util import Env, Raw

CAROL = "carol@example.test"
DAVE = "dave@example.test"
# Distinctive: nothing else in the process can contain these bytes.
GOOD = "Wq8-tangerine-Zx4!wipe-ok"
WRONG = "Jv3-persimmon-Qk7!wipe-no"


def b64(data):
    return base64.b64encode(data).decode()


def plain(user, password):
    return b64(b"\0" + user.encode() + b"\0" + password.encode())


def needles():
    """Every form a password travels in: raw, base64 (LOGIN), and the
    base64 of each PLAIN message sent."""
    out = {}
    for pw in (GOOD, WRONG):
        out["password %r" % pw] = pw.encode()
        out["base64 of %r" % pw] = b64(pw.encode()).encode()
        for user in (CAROL, DAVE):
            out["PLAIN %s/%r" % (user, pw)] = plain(user, pw).encode()
    return out


# Read in pieces of this size (overlapping by a needle's length).
CHUNK = 64 << 20
# A writable mapping larger than this is ASan's shadow (terabytes, reserved
# and mostly never touched), not data of ours: skipped.
HUGE = 16 << 30


def scan(pid):
    """Names of the needles found in the writable mappings of pid, with
    where."""
    found = []
    want = needles()
    overlap = max(len(n) for n in want.values())
    with open("/proc/%d/maps" % pid) as f:
        maps = f.read().splitlines()
    with open("/proc/%d/mem" % pid, "rb", 0) as mem:
        for line in maps:
            parts = line.split()
            perms = parts[1]
            name = parts[5] if len(parts) > 5 else ""
            if "r" not in perms or "w" not in perms:
                continue
            if name in ("[vvar]", "[vsyscall]", "[vdso]"):
                continue
            start, end = (int(x, 16) for x in parts[0].split("-"))
            if end - start > HUGE:
                continue
            for off in range(start, end, CHUNK):
                try:
                    mem.seek(off)
                    data = mem.read(min(end, off + CHUNK + overlap) - off)
                except (OSError, ValueError, OverflowError):
                    continue
                for what, n in want.items():
                    i = data.find(n)
                    if i >= 0:
                        found.append("%s at %s+%#x" % (
                            what, name or parts[0], off - start + i))
    return sorted(set(found))


class AuthWipe(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = Env()
        for user in (CAROL, DAVE):
            cls.env.ctl_ok("user", "add", user, input=GOOD + "\n")

    @classmethod
    def tearDownClass(cls):
        cls.env.stop()

    def assertClean(self, daemon, when):
        try:
            found = scan(daemon.proc.pid)
        except PermissionError:
            self.skipTest("cannot read /proc/PID/mem (not root?)")
        self.assertEqual(found, [], "%s %s" % (daemon.name, when))

    def test_smtpd(self):
        d = self.env.smtpd or self.env.start_smtpd()
        port = self.env.ports["submission"]
        bad = Raw(port)
        bad.cmd("EHLO client.test")
        self.assertEqual(bad.text("AUTH PLAIN " + plain(CAROL, WRONG)),
                         "535 5.7.8 Authentication credentials invalid")
        a = Raw(port)
        a.cmd("EHLO client.test")
        self.assertEqual(a.text("AUTH PLAIN " + plain(CAROL, GOOD)),
                         "235 2.7.0 Authentication successful")
        b = Raw(port)
        b.cmd("EHLO client.test")
        self.assertEqual(b.text("AUTH LOGIN"), "334 VXNlcm5hbWU6")
        self.assertEqual(b.text(b64(DAVE.encode())), "334 UGFzc3dvcmQ6")
        self.assertEqual(b.text(b64(GOOD.encode())),
                         "235 2.7.0 Authentication successful")
        self.assertClean(d, "with the sessions open")
        for c in (bad, a, b):
            self.assertEqual(c.code("QUIT"), 221)
            c.close()
        self.assertClean(d, "after QUIT")

    def test_pop3d(self):
        d = self.env.pop3d or pf.start(self.env)
        bad = pf.Raw(self.env)
        self.assertTrue(bad.line().startswith(b"+OK"))
        self.assertEqual(bad.cmd("USER " + CAROL), b"+OK")
        self.assertEqual(bad.cmd("PASS " + WRONG),
                         b"-ERR [AUTH] Authentication failed.")
        a = pf.Raw(self.env)
        a.login(CAROL, GOOD)
        b = pf.Raw(self.env)
        self.assertTrue(b.line().startswith(b"+OK"))
        self.assertEqual(b.cmd("AUTH PLAIN " + plain(DAVE, GOOD)),
                         b"+OK Logged in.")
        self.assertClean(d, "with the sessions open")
        for c in (bad, a, b):
            self.assertTrue(c.cmd("QUIT").startswith(b"+OK"))
            c.close()
        self.assertClean(d, "after QUIT")

    def test_smtpd_tls(self):
        d = self.env.smtpd or self.env.start_smtpd()
        ctx = self.env.client_ssl_context()
        a = Raw(self.env.ports["submissions"], tls_ctx=ctx)
        a.cmd("EHLO client.test")
        self.assertEqual(a.text("AUTH PLAIN " + plain(CAROL, GOOD)),
                         "235 2.7.0 Authentication successful")
        b = Raw(self.env.ports["submission"])
        b.cmd("EHLO client.test")
        b.starttls(ctx)
        b.cmd("EHLO client.test")
        self.assertEqual(b.text("AUTH LOGIN " + b64(DAVE.encode())),
                         "334 UGFzc3dvcmQ6")
        self.assertEqual(b.text(b64(GOOD.encode())),
                         "235 2.7.0 Authentication successful")
        self.assertClean(d, "over TLS, with the sessions open")
        for c in (a, b):
            self.assertEqual(c.code("QUIT"), 221)
            c.close()
        self.assertClean(d, "over TLS, after QUIT")

    def test_pop3d_tls(self):
        d = self.env.pop3d or pf.start(self.env)
        a = pf.Raw(self.env, tls=True)
        a.login(CAROL, GOOD)
        b = pf.Raw(self.env, tls=True)
        self.assertTrue(b.line().startswith(b"+OK"))
        self.assertEqual(b.cmd("AUTH LOGIN"), b"+ VXNlcm5hbWU6")
        self.assertEqual(b.cmd(b64(DAVE.encode())), b"+ UGFzc3dvcmQ6")
        self.assertEqual(b.cmd(b64(GOOD.encode())), b"+OK Logged in.")
        self.assertClean(d, "over TLS, with the sessions open")
        for c in (a, b):
            self.assertTrue(c.cmd("QUIT").startswith(b"+OK"))
            c.close()
        self.assertClean(d, "over TLS, after QUIT")


if __name__ == "__main__":
    ct.main()
