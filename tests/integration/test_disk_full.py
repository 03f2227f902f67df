"""A full store (issue #11 item 13). The daemons run with the test-only
page limit (CARTEIRO_TEST_MAX_PAGE_COUNT names a file holding SQLite's
max_page_count for every connection, re-read at each write transaction),
so the test fills the store to the limit and lifts it again without a
restart.

- A message the store cannot take gets exactly `452 4.3.1 Insufficient
  system storage` at the end of data, and nothing of it remains (no body,
  chunk, mailbox or queue row; quota `used` and next_uid unchanged).
- While the daemon knows the store is full, RCPT gets the same 452.
- POP3 keeps serving at the limit: STAT, LIST, UIDL, RETR (byte-exact),
  and DELE + QUIT, whose freed pages take new mail again by themselves.
- Lifting the limit: mail is accepted again, no restart.
- The relay: a DSN that cannot be stored defers the message (log
  relay.defer, next_attempt in the future, recipient results kept, the
  delivered recipient never sent twice); once there is room the DSN lands.
"""

import os
import poplib
import smtplib
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import carteiro_test as ct  # noqa: E402
from fakemx import Sink, queue_insert, relay_setup, wait_for  # noqa: E402
from smtpd_util import Raw  # noqa: E402

ct.sqlite_only("fills the store with SQLite's max_page_count (the test knob "
               "%s) and checks the file with PRAGMA integrity_check; a "
               "PostgreSQL server's disk is the server's" %
               "CARTEIRO_TEST_MAX_PAGE_COUNT")

KNOB = "CARTEIRO_TEST_MAX_PAGE_COUNT"
FULL = (452, b"4.3.1 Insufficient system storage")


def set_limit(path, pages):
    with open(path + ".tmp", "w") as f:
        f.write("%d\n" % pages)
    os.rename(path + ".tmp", path)


def state(env):
    """Every row a delivery writes, and the users' counters."""
    q = lambda sql: env.query(sql)[0][0]  # noqa: E731
    return {
        "bodies": q("SELECT count(*) FROM bodies"),
        "chunks": q("SELECT count(*) FROM body_chunks"),
        "chunk_bytes": q("SELECT coalesce(sum(length(data)), 0) "
                         "FROM body_chunks"),
        "mailbox": q("SELECT count(*) FROM mailbox"),
        "queue": q("SELECT count(*) FROM queue"),
        "queue_rcpt": q("SELECT count(*) FROM queue_rcpt"),
        "users": env.query("SELECT address, used, next_uid FROM users "
                           "ORDER BY address"),
        # Bodies no row points at (a half-written message would be one).
        "orphans": q("SELECT count(*) FROM bodies WHERE id NOT IN "
                     "(SELECT body_id FROM mailbox UNION "
                     "SELECT body_id FROM queue)"),
    }


def message(tag, size):
    """About size bytes, in lines of 78."""
    line = (tag.encode() + b" ") * (76 // (len(tag) + 1)) + b"\r\n"
    return (b"From: s@remote.test\r\nTo: alice@example.test\r\n"
            b"Subject: " + tag.encode() + b"\r\n\r\n" +
            line * (size // len(line) + 1))


class Client:
    """One SMTP session on the MX port; each step returns (code, text)."""

    def __init__(self, port):
        self.s = smtplib.SMTP("127.0.0.1", port, timeout=30)
        self.s.ehlo("full.test")

    def envelope(self, rcpts):
        code, text = self.s.mail("s@remote.test")
        assert code == 250, (code, text)
        out = [self.s.rcpt(r) for r in rcpts]
        return out

    def data(self, body):
        try:
            return self.s.data(body)
        except smtplib.SMTPDataError as e:
            return (e.smtp_code, e.smtp_error)

    def rset(self):
        return self.s.rset()

    def close(self):
        try:
            self.s.quit()
        except Exception:
            pass


class DiskFull(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = ct.Env()
        cls.limit = os.path.join(cls.env.dir, "page_limit")
        set_limit(cls.limit, 0)
        os.environ[KNOB] = cls.limit
        try:
            cls.env.start_smtpd()
            cls.env.start_pop3d()
        finally:
            del os.environ[KNOB]
        cls.port = cls.env.ports["mx"]

    @classmethod
    def tearDownClass(cls):
        cls.env.stop()

    def send(self, rcpts, body):
        """One whole transaction: (rcpt replies, data reply or None)."""
        c = Client(self.port)
        try:
            rr = c.envelope(rcpts)
            if all(code == 250 for code, _ in rr):
                return rr, c.data(body)
            return rr, None
        finally:
            c.close()

    def wait_accepting(self, timeout=30):
        """Until RCPT stops answering 452 4.3.1 (the full hold ends)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            c = Client(self.port)
            try:
                (r,) = c.envelope(["alice@example.test"])
            finally:
                c.close()
            if r[0] == 250:
                return
            self.assertEqual(r, FULL)
            time.sleep(0.3)
        self.fail("RCPT still refused after %ds" % timeout)

    def pages(self):
        return self.env.query("PRAGMA page_count")[0][0]

    def test_full(self):
        env = self.env
        a_small, a_big = message("small", 200), message("big", 300 * 1024)
        for body in (a_small, a_big):
            rr, r = self.send(["alice@example.test"], body)
            self.assertEqual(r[0], 250, r)
        bodies = env.mailbox_bodies("alice@example.test")
        self.assertEqual(len(bodies), 2)

        # The store may not grow past its size now.
        set_limit(self.limit, self.pages())
        before = state(env)
        c = Client(self.port)
        try:
            rr = c.envelope(["alice@example.test", "bob@example.test"])
            self.assertEqual([x[0] for x in rr], [250, 250])
            self.assertEqual(c.data(message("third", 200 * 1024)), FULL)
            # Same session: the daemon knows, RCPT says so at once.
            (r,) = c.envelope(["bob@example.test"])
            self.assertEqual(r, FULL)
            self.assertEqual(c.rset()[0], 250)
        finally:
            c.close()
        self.assertEqual(state(env), before)
        self.assertEqual(before["orphans"], 0)
        log = env.smtpd.log()
        self.assertRegex(log, r"event=smtp\.deliver msgid=\w+ rcpts=2 "
                         r"bytes=\d+ result=full ")
        self.assertIn("event=store.full result=fail", log)
        self.assertRegex(log, r'event=smtp\.rcpt .*to="bob@example\.test" '
                         r'result=full ')
        # A small message is refused at RCPT as well, whatever its size.
        rr, r = self.send(["alice@example.test"], message("tiny", 10))
        self.assertEqual(rr, [FULL])
        self.assertEqual(state(env), before)

        # POP3 keeps serving at the limit, deletes included.
        p = poplib.POP3("127.0.0.1", env.ports["pop3"], timeout=30)
        p.user("alice@example.test")
        p.pass_(ct.PASSWORD)
        sizes = [len(b) for b in bodies]
        self.assertEqual(p.stat(), (2, sum(sizes)))
        self.assertEqual(p.list()[1],
                         [b"1 %d" % sizes[0], b"2 %d" % sizes[1]])
        uidls = p.uidl()[1]
        self.assertEqual(len(uidls), 2)
        resp, lines, octets = p.retr(2)
        self.assertEqual(b"\r\n".join(lines) + b"\r\n", bodies[1])
        self.assertEqual(p.dele(2), b"+OK Marked to be deleted.")
        self.assertEqual(p.quit(), b"+OK Logging out, messages deleted.")
        self.assertEqual(len(env.mailbox_bodies("alice@example.test")), 1)
        self.assertEqual(env.query(
            "SELECT used FROM users WHERE address='alice@example.test'")[0][0],
            sizes[0])

        # The pages the delete freed take new mail, with the limit still
        # there: the daemon finds out by itself once the hold is over.
        self.wait_accepting()
        rr, r = self.send(["alice@example.test"], message("fourth", 150 * 1024))
        self.assertEqual(r[0], 250, r)
        self.assertIn("event=store.full result=ok", env.smtpd.log())

        # Full again, this time through BDAT (RFC 3030): the same reply
        # to the LAST chunk. Then the limit goes: accepted without a
        # restart.
        raw = Raw(self.port)
        try:
            self.assertEqual(raw.code("EHLO full.test"), 250)
            self.assertEqual(raw.code("MAIL FROM:<s@remote.test>"), 250)
            self.assertEqual(raw.code("RCPT TO:<alice@example.test>"), 250)
            chunk = message("fifth", 400 * 1024)
            half = len(chunk) // 2
            raw.send(b"BDAT %d\r\n" % half + chunk[:half])
            self.assertEqual(raw.reply()[0], 250)
            raw.send(b"BDAT %d LAST\r\n" % (len(chunk) - half) +
                     chunk[half:])
            self.assertEqual(raw.reply(), (452, [FULL[1].decode()]))
        finally:
            raw.close()
        self.assertEqual(state(env)["mailbox"], 2)
        set_limit(self.limit, 0)
        self.wait_accepting()
        rr, r = self.send(["alice@example.test"], message("fifth", 400 * 1024))
        self.assertEqual(r[0], 250, r)
        got = [ct.strip_added_headers(b[len(b.split(b"\r\n", 1)[0]) + 2:])
               for b in env.mailbox_bodies("alice@example.test")]
        self.assertEqual(got, [a_small, message("fourth", 150 * 1024),
                               message("fifth", 400 * 1024)])
        self.assertEqual(state(env)["orphans"], 0)
        self.assertEqual(env.query("PRAGMA integrity_check"), [("ok",)])


RECORDS = {
    "remote.test": {"MX": [(10, "mx1.remote.test")]},
    "mx1.remote.test": {"A": ["127.0.0.2"]},
}
REJECT = "550 5.1.1 <p5user@remote.test>: Recipient address rejected"


class RelayFull(unittest.TestCase):
    """A DSN that finds the store full is deferred, not lost."""

    def setUp(self):
        self.env, self.dns, port = relay_setup(RECORDS)
        self.sink = Sink("127.0.0.2", port)
        self.sink.rcpt_reply = (lambda a: REJECT if a.startswith("p5")
                                else None)
        self.sink.start()
        self.limit = os.path.join(self.env.dir, "page_limit")
        set_limit(self.limit, 0)
        os.environ[KNOB] = self.limit
        try:
            self.env.start_smtpd()
        finally:
            del os.environ[KNOB]

    def tearDown(self):
        self.sink.stop()
        self.env.stop()
        self.dns.stop()

    def test_dsn_deferred(self):
        env = self.env
        # Long headers: the DSN quotes them, so it needs new pages.
        data = (b"From: alice@example.test\r\nSubject: dsn\r\n" +
                b"".join(b"X-Filler-%d: %s\r\n" % (i, b"f" * 900)
                         for i in range(12)) + b"\r\nbody\r\n")
        qid = queue_insert(env, "alice@example.test",
                           ["p5user@remote.test", "ok@remote.test"], data,
                           next_attempt=time.time() + 3600)
        free = env.query("PRAGMA freelist_count")[0][0]
        self.assertLess(free, 2, "free pages would take the DSN")
        set_limit(self.limit, env.query("PRAGMA page_count")[0][0])
        before = state(env)
        env.ctl_ok("queue", "flush")
        self.assertEqual([m.rcpts for m in self.sink.wait(1)],
                         [["ok@remote.test"]])
        self.assertTrue(wait_for(lambda: env.log_lines(
            env.smtpd, "relay.defer"), timeout=30), env.smtpd.log())
        line = env.log_lines(env.smtpd, "relay.defer")[0]
        self.assertRegex(line, r"event=relay\.defer qid=%d "
                         r"reason=store_full next_in=1s$" % qid)
        # Recipient results are stored, the DSN is not, nothing else is.
        self.assertEqual(env.query(
            "SELECT address, status FROM queue_rcpt WHERE queue_id=? "
            "ORDER BY address", (qid,)),
            [("ok@remote.test", 1), ("p5user@remote.test", 2)])
        after = state(env)
        self.assertEqual({k: v for k, v in after.items()
                          if k != "users"},
                         {k: v for k, v in before.items()
                          if k != "users"})
        self.assertEqual(env.mailbox_bodies("alice@example.test"), [])
        # Deferred, not spinning: it waits for its retry, and the
        # delivered recipient is never sent again.
        self.assertGreater(env.query(
            "SELECT next_attempt FROM queue WHERE id=?", (qid,))[0][0],
            time.time() - 2)
        time.sleep(2.5)
        self.assertEqual(len(self.sink.messages), 1)

        set_limit(self.limit, 0)
        boxes = wait_for(lambda: env.mailbox_bodies("alice@example.test"),
                         timeout=30)
        self.assertEqual(len(boxes), 1)
        self.assertIn(b"Diagnostic-Code: smtp; " + REJECT.encode(),
                      boxes[0].replace(b"\r\n ", b" "))
        self.assertTrue(wait_for(lambda: not env.query(
            "SELECT id FROM queue WHERE id=?", (qid,)), timeout=30))
        self.assertEqual(len(self.sink.messages), 1)


if __name__ == "__main__":
    ct.main()
