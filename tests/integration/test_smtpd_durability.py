"""Durability: a 250 after DATA means the message is on disk.

Several parallel senders stream messages (to two local users) to the MX
listener; smtpd is killed with SIGKILL in the middle of the load and
restarted on the crashed store. Every message that got its 250 must be in
both mailboxes exactly once and byte-exact, nothing may be stored twice or
be stored that was never sent, the restarted daemon must keep accepting and
exit 0 on SIGTERM, and the database must pass PRAGMA integrity_check
(SQLite; env.integrity_problems()).
Group commit must never acknowledge before the commit.
"""

import os
import re
import smtplib
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import carteiro_test as ct  # noqa: E402
from smtpd_util import Env  # noqa: E402

SENDERS = 8
RCPTS = ("alice@example.test", "bob@example.test")
MSGID_RE = re.compile(rb"^Message-ID: <([^>]+)>\r$", re.M | re.I)


def make_message(tag, n):
    """A message whose Message-ID and subject are unique; every 7th one is
    about 100 KB so that some commits span several body chunks."""
    lines = [
        b"From: sender@remote.test",
        b"To: " + b", ".join(r.encode() for r in RCPTS),
        b"Subject: durability " + tag.encode(),
        b"Message-ID: <" + tag.encode() + b"@remote.test>",
        b"",
    ]
    body_lines = 2000 if n % 7 == 0 else 8
    for i in range(body_lines):
        lines.append(b"%s line %d ...................................." % (
            tag.encode(), i))
    return b"\r\n".join(lines) + b"\r\n"


class Sender(threading.Thread):
    """Sends over one session until the server goes away (or stop is set).
    acked: tag -> message bytes for every 250 received; tried: every tag
    whose DATA was started (acknowledged or in doubt)."""

    def __init__(self, port, idx, stop, phase):
        super().__init__(daemon=True)
        self.port = port
        self.idx = idx
        self.stop = stop
        self.phase = phase
        self.acked = {}
        self.tried = set()
        self.errors = []

    def run(self):
        n = 0
        try:
            smtp = smtplib.SMTP("127.0.0.1", self.port, timeout=20)
            smtp.ehlo("sender%d.remote.test" % self.idx)
        except (OSError, smtplib.SMTPException) as e:
            self.errors.append(repr(e))
            return
        while not self.stop.is_set():
            tag = "p%d-t%d-%d-%d" % (self.phase, self.idx, n, os.getpid())
            msg = make_message(tag, n)
            n += 1
            self.tried.add(tag)
            try:
                smtp.sendmail("sender@remote.test", list(RCPTS), msg)
            except smtplib.SMTPResponseException as e:
                # a 4xx/5xx reply: not acknowledged, session still usable
                self.errors.append("%s: %s" % (tag, e))
                continue
            except (OSError, smtplib.SMTPException) as e:
                # killed under us: this message is in doubt, stop
                self.errors.append("%s: %r" % (tag, e))
                return
            self.acked[tag] = msg
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            pass


def run_senders(port, phase):
    """Start SENDERS threads; returns (threads, stop event)."""
    stop = threading.Event()
    threads = [Sender(port, i, stop, phase) for i in range(SENDERS)]
    for t in threads:
        t.start()
    return threads, stop


def acked_count(threads):
    return sum(len(t.acked) for t in threads)


class DurabilityTest(unittest.TestCase):
    def setUp(self):
        self.env = Env()

    def tearDown(self):
        for d in self.env.daemons:
            if d.proc is not None and d.proc.poll() is None:
                d.proc.kill()
                d.proc.wait()
        self.env.cleanup()  # keeps the dir with CARTEIRO_KEEP_TMP=1

    def test_kill9_mid_load(self):
        env = self.env
        env.start_smtpd()
        port = env.ports["mx"]

        # Phase 1: load, then SIGKILL while the senders are mid-stream.
        threads, _ = run_senders(port, 1)
        deadline = time.time() + 60
        start = time.time()
        while time.time() < deadline:
            if acked_count(threads) >= 200 and time.time() - start > 1:
                break
            if not any(t.is_alive() for t in threads):
                break
            time.sleep(0.02)
        alive = sum(1 for t in threads if t.is_alive())
        env.smtpd.kill9()
        for t in threads:
            t.join(30)
        self.assertGreater(alive, 0, "senders died before the kill: %s" %
                           [t.errors for t in threads])
        acked = {}
        tried = set()
        for t in threads:
            acked.update(t.acked)
            tried |= t.tried
        self.assertGreater(len(acked), 10, "too few messages acknowledged "
                           "before the kill:\n%s" % env.logs()[-5000:])

        # Phase 2: restart on the crashed store; it must keep accepting.
        env.daemons.remove(env.smtpd)
        env.start_smtpd()
        threads2, stop2 = run_senders(port, 2)
        t0 = time.time()
        while acked_count(threads2) < 20 and time.time() - t0 < 30:
            time.sleep(0.02)
        stop2.set()
        for t in threads2:
            t.join(30)
        for t in threads2:
            acked.update(t.acked)
            tried |= t.tried
        self.assertGreaterEqual(acked_count(threads2), 20,
                                [t.errors for t in threads2])
        # SIGTERM: exit 0, no sanitizer report (env.stop would also delete
        # the store we still want to read; tearDown does that).
        rc = env.smtpd.stop()
        log = env.smtpd.log()
        self.assertEqual(rc, 0, log[-5000:])
        for marker in ct.SANITIZER_MARKERS:
            self.assertNotIn(marker, log)

        self.assertEqual(env.integrity_problems(), [])
        # Every 250 is in each mailbox exactly once, byte-exact; nothing
        # that was never sent, nothing twice (acknowledged or not).
        for user in RCPTS:
            seen = {}
            for body in env.mailbox_bodies(user):
                m = MSGID_RE.search(body)
                self.assertIsNotNone(m, body[:300])
                tag = m.group(1).decode().split("@")[0]
                seen.setdefault(tag, []).append(body)
            dups = [t for t, b in seen.items() if len(b) > 1]
            self.assertEqual(dups, [], "%s: stored more than once" % user)
            unknown = [t for t in seen if t not in tried]
            self.assertEqual(unknown, [], "%s: stored, never sent" % user)
            lost = [t for t in acked if t not in seen]
            self.assertEqual(lost, [], "%s: acknowledged with 250 but lost "
                             "(%d of %d)" % (user, len(lost), len(acked)))
            for tag, msg in acked.items():
                self.assertEqual(ct.strip_added_headers(seen[tag][0]), msg,
                                 "%s: message %s differs" % (user, tag))
        sys.stderr.write("acked %d (%d after restart), tried %d\n" % (
            len(acked), acked_count(threads2), len(tried)))


if __name__ == "__main__":
    ct.main()
