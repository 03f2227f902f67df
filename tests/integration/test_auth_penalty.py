"""The failed-login penalty is paid before the next password check, on
SMTP (submission, loopback) and POP3, and failed logins end a session.

- 20 guesses from one address, hanging up as soon as the verdict is out
  (the reply, or the daemon's log line: what an attacker who waits ~100 ms
  for a reply that does not come learns) and, every third attempt, after
  0.1 s of silence, take at least the sum of the penalties owed between
  them.
- A right password right after wrong ones is not answered sooner than the
  penalty, and neither is a wrong one.
- [smtpd] max_auth_failures (default 3) failed AUTHs in a session: 535,
  then 421 4.7.0 and the close; [pop3d] max_auth_failures (default 3):
  -ERR [AUTH], then -ERR and the close. The counter is per session.

CARTEIRO_TEST_AUTH_PENALTY_MS shortens the penalties (1 s .. 15 s):
400/800 ms for the guesses, well above the time of one check even on a
busy machine, whose SMTP and POP3 attacks run side by side (two daemons,
two penalty tables); 100/200 ms for the rest.
"""

import concurrent.futures
import os
import re
import select
import time
import unittest

import carteiro_test as ct
import pop3_fixtures as pf
from smtpd_util import Env, Raw, b64, plain

ALICE = "alice@example.test"
GUESSES = 20
HOST = "mail.example.test"


class LogTail:
    """Counts new lines of a daemon log that match a regex."""

    def __init__(self, path, pattern):
        self.path = path
        self.rx = re.compile(pattern)
        self.off = os.path.getsize(path)
        self.part = b""
        self.n = 0

    def count(self):
        with open(self.path, "rb") as f:
            f.seek(self.off)
            data = f.read()
        self.off += len(data)
        data = self.part + data
        lines = data.split(b"\n")
        self.part = lines.pop()
        self.n += sum(1 for l in lines
                      if self.rx.search(l.decode("utf-8", "replace")))
        return self.n


class Base(unittest.TestCase):
    """Both daemons with the penalty shortened to FIRST_MS, CAP_MS."""
    FIRST_MS, CAP_MS = 1000, 15000

    @classmethod
    def penalty_ms(cls, failures):
        """The wait a check owes after this many failures (auth.c)."""
        if failures == 0:
            return 0
        return min(cls.FIRST_MS << (failures - 1), cls.CAP_MS)

    @classmethod
    def setUpClass(cls):
        # Many short connections from 127.0.0.1: no connect-rate limit.
        cls.env = Env(conf={"smtpd": {"max_connect_rate_per_ip": "0"}})
        os.environ["CARTEIRO_TEST_AUTH_PENALTY_MS"] = "%d,%d" % (
            cls.FIRST_MS, cls.CAP_MS)
        try:
            cls.env.start_smtpd()
            pf.start(cls.env)
        finally:
            del os.environ["CARTEIRO_TEST_AUTH_PENALTY_MS"]

    @classmethod
    def tearDownClass(cls):
        cls.env.stop()

    # -- SMTP --
    def smtp(self):
        c = Raw(self.env.ports["submission"])
        self.assertEqual(c.code("EHLO client.test"), 250)
        return c

    def smtp_clear(self):
        """A good login: whatever penalty is owed is waited out and
        forgotten."""
        c = self.smtp()
        self.assertEqual(c.text("AUTH PLAIN " + plain(ALICE, ct.PASSWORD)),
                         "235 2.7.0 Authentication successful")
        c.close()

    # -- POP3 --
    def pop3(self):
        r = pf.Raw(self.env)
        self.assertTrue(r.line().startswith(b"+OK"))
        return r

    def pop3_clear(self):
        r = self.pop3()
        self.assertEqual(r.cmd("AUTH PLAIN " + plain(ALICE, ct.PASSWORD)),
                         b"+OK Logged in.")
        r.close()


class GuessesTest(Base):
    """Penalties well above the time of one check even on a busy machine
    (which is what an attacker on the old code needed per guess)."""
    FIRST_MS, CAP_MS = 400, 800

    def hangup_guesses(self, open_session, log, verdict):
        """GUESSES wrong passwords, one connection each, hanging up as
        soon as the verdict is known (reply or log line) and, on every
        third attempt, after 0.1 s without one. Returns the seconds until the
        daemon had checked GUESSES of them."""
        start = time.monotonic()
        attempt = 0
        guess = "AUTH PLAIN " + plain(ALICE, "guess") + "\r\n"
        while log.count() < GUESSES:
            self.assertLess(time.monotonic() - start, 60, "no progress")
            attempt += 1
            c = open_session()
            seen = log.count()
            c.sock.sendall(guess.encode())
            patience = 0.1 if attempt % 3 == 1 else 5.0
            deadline = time.monotonic() + patience
            data = b""
            while time.monotonic() < deadline:
                if log.count() > seen or verdict in data:
                    break
                r, _, _ = select.select([c.sock], [], [], 0.01)
                if r:
                    chunk = c.sock.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            c.close()
        return time.monotonic() - start

    def test_guesses_with_hangups(self):
        self.smtp_clear()
        self.pop3_clear()
        smtp_log = LogTail(self.env.smtpd.log_path,
                           r"event=smtp\.auth .*result=fail")
        pop3_log = LogTail(self.env.pop3d.log_path,
                           r"event=pop3\.login .*result=fail")
        with concurrent.futures.ThreadPoolExecutor(2) as ex:
            smtp = ex.submit(self.hangup_guesses, self.smtp, smtp_log,
                             b"535 ")
            pop3 = ex.submit(self.hangup_guesses, self.pop3, pop3_log,
                             b"-ERR [AUTH]")
            elapsed = {"smtp": smtp.result(), "pop3": pop3.result()}
        owed = sum(self.penalty_ms(n) for n in range(1, GUESSES)) / 1000.0
        for proto, log in (("smtp", smtp_log), ("pop3", pop3_log)):
            self.assertGreaterEqual(log.n, GUESSES, proto)
            self.assertGreaterEqual(
                elapsed[proto], owed - 0.02,
                "%s: %d guesses in %.2f s, penalties %.2f s" % (
                    proto, GUESSES, elapsed[proto], owed))
        self.smtp_clear()
        self.pop3_clear()



class RepliesTest(Base):
    FIRST_MS, CAP_MS = 100, 200

    # -- a right password is not answered sooner --
    def test_smtp_right_password_waits(self):
        self.smtp_clear()
        bad = "AUTH PLAIN " + plain(ALICE, "wrong")
        for _ in range(2):
            c = self.smtp()
            self.assertEqual(c.code(bad), 535)
            c.close()
        t_fail = time.monotonic()
        c = self.smtp()
        self.assertEqual(c.code(bad), 535)
        wrong = time.monotonic() - t_fail
        t_fail = time.monotonic()
        d = self.smtp()
        self.assertEqual(d.text("AUTH PLAIN " + plain(ALICE, ct.PASSWORD)),
                         "235 2.7.0 Authentication successful")
        right = time.monotonic() - t_fail
        self.assertGreaterEqual(wrong, self.penalty_ms(2) / 1000.0 - 0.02)
        self.assertGreaterEqual(right, self.penalty_ms(3) / 1000.0 - 0.02)
        c.close()
        d.close()

    def test_pop3_right_password_waits(self):
        self.pop3_clear()
        for _ in range(2):
            r = self.pop3()
            self.assertEqual(r.cmd("USER " + ALICE), b"+OK")
            self.assertEqual(r.cmd("PASS wrong"),
                             b"-ERR [AUTH] Authentication failed.")
            r.close()
        t_fail = time.monotonic()
        r = self.pop3()
        self.assertEqual(r.cmd("USER " + ALICE), b"+OK")
        self.assertEqual(r.cmd("PASS wrong"),
                         b"-ERR [AUTH] Authentication failed.")
        wrong = time.monotonic() - t_fail
        t_fail = time.monotonic()
        s = self.pop3()
        self.assertEqual(s.cmd("USER " + ALICE), b"+OK")
        self.assertEqual(s.cmd("PASS " + ct.PASSWORD), b"+OK Logged in.")
        right = time.monotonic() - t_fail
        self.assertGreaterEqual(wrong, self.penalty_ms(2) / 1000.0 - 0.02)
        self.assertGreaterEqual(right, self.penalty_ms(3) / 1000.0 - 0.02)
        r.close()
        s.close()

    # -- max_auth_failures --
    def test_smtp_session_limit(self):
        self.smtp_clear()
        bad = "AUTH PLAIN " + plain(ALICE, "wrong")
        c = self.smtp()
        for _ in range(2):
            self.assertEqual(c.text(bad),
                             "535 5.7.8 Authentication credentials invalid")
        # A cancelled exchange is no failed check.
        self.assertEqual(c.text("AUTH PLAIN"), "334 ")
        self.assertEqual(c.text("*"), "501 5.7.0 Authentication cancelled")
        self.assertEqual(c.text("AUTH LOGIN " + b64(ALICE)),
                         "334 UGFzc3dvcmQ6")
        self.assertEqual(c.text(b64("wrong")),
                         "535 5.7.8 Authentication credentials invalid")
        self.assertEqual(c.reply(), (421, [
            "4.7.0 %s Error: too many failed authentication attempts"
            % HOST]))
        self.assertTrue(c.at_eof())
        c.close()
        # The next session starts from 0.
        d = self.smtp()
        for _ in range(2):
            self.assertEqual(d.text(bad),
                             "535 5.7.8 Authentication credentials invalid")
        self.assertEqual(d.code("NOOP"), 250)
        self.assertEqual(d.text("AUTH PLAIN " + plain(ALICE, ct.PASSWORD)),
                         "235 2.7.0 Authentication successful")
        self.assertEqual(d.code("QUIT"), 221)
        d.close()
        self.assertEqual(len(re.findall(
            r"event=smtp\.disconnect .*reason=too_many_auth_failures",
            self.env.smtpd.log())), 1)

    def test_pop3_session_limit(self):
        self.pop3_clear()
        r = self.pop3()
        self.assertEqual(r.cmd("USER " + ALICE), b"+OK")
        self.assertEqual(r.cmd("PASS wrong"),
                         b"-ERR [AUTH] Authentication failed.")
        self.assertEqual(r.cmd("AUTH PLAIN " + plain(ALICE, "wrong")),
                         b"-ERR [AUTH] Authentication failed.")
        self.assertEqual(r.cmd("AUTH PLAIN"), b"+ ")
        self.assertEqual(r.cmd("*"), b"-ERR Authentication aborted by client.")
        self.assertEqual(r.cmd("USER " + ALICE), b"+OK")
        self.assertEqual(r.cmd("PASS wrong"),
                         b"-ERR [AUTH] Authentication failed.")
        self.assertEqual(r.line(), b"-ERR Too many failed logins.")
        self.assertTrue(r.closed())
        r.close()
        # The next session starts from 0.
        s = self.pop3()
        for _ in range(2):
            self.assertEqual(s.cmd("AUTH PLAIN " + plain(ALICE, "wrong")),
                             b"-ERR [AUTH] Authentication failed.")
        self.assertEqual(s.cmd("CAPA"), b"+OK Capability list follows")
        s.multi()
        self.assertEqual(s.cmd("AUTH PLAIN " + plain(ALICE, ct.PASSWORD)),
                         b"+OK Logged in.")
        self.assertEqual(s.cmd("QUIT"), b"+OK Logging out.")
        s.close()
        self.assertEqual(len(re.findall(
            r"event=pop3\.disconnect .*reason=too_many_auth_failures",
            self.env.pop3d.log())), 1)


if __name__ == "__main__":
    ct.main()
