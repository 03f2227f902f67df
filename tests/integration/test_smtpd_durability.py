"""Durability: a 250 after DATA means the message is on disk.

Several parallel senders stream messages (to two local users) to the MX
listener; smtpd is killed with SIGKILL in the middle of the load and
restarted on the crashed store. Every message that got its 250 must be in
both mailboxes exactly once and byte-exact, nothing may be stored twice or
be stored that was never sent, the restarted daemon must keep accepting and
exit 0 on SIGTERM, and the database must pass PRAGMA integrity_check
(SQLite; env.integrity_problems()).
Group commit must never acknowledge before the commit.

A kill -9 cannot show a missing fsync (the page cache outlives the
process), so before the kill smtpd runs with tests/tools/acksync.c
preloaded: it records every write to the WAL (with the Message-ID tags in
the page), every WAL fsync and every "250 ... queued as" sent, and each
acknowledged message's first WAL write must be covered by a WAL fsync that
returned before its 250 was sent. ACKSYNC_DROP_SYNC=1 in the environment
makes the shim skip those fsyncs (as synchronous=NORMAL would): the test
must then fail.
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
ACKSYNC = os.path.join(ct.BUILD, "tests", "acksync.so")
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


def start_smtpd_witnessed(env, log_path):
    """env.start_smtpd() with acksync.so preloaded, logging to log_path."""
    saved = {k: os.environ.get(k) for k in ("LD_PRELOAD", "ACKSYNC_LOG",
                                             "ASAN_OPTIONS")}
    os.environ["LD_PRELOAD"] = ACKSYNC
    os.environ["ACKSYNC_LOG"] = log_path
    # A sanitizer build: the shim is preloaded ahead of the runtime.
    asan = saved["ASAN_OPTIONS"]
    os.environ["ASAN_OPTIONS"] = ((asan + ":") if asan else "") + \
        "verify_asan_link_order=0"
    try:
        env.start_smtpd()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def check_acks_synced(test, log_path, acked):
    """Every acknowledged tag: its first WAL write <= the WAL fsync seq
    recorded when its 250 was sent (acksync.c)."""
    first_w, ack_seq, syncs = {}, {}, 0
    with open(log_path) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[0] == "W":
                first_w.setdefault(parts[2], int(parts[1]))
            elif len(parts) == 3 and parts[0] == "A":
                ack_seq.setdefault(parts[2], int(parts[1]))
            elif len(parts) == 2 and parts[0] == "S":
                syncs += 1
    missing = [t for t in acked if t not in first_w or t not in ack_seq]
    test.assertEqual(missing, [], "acknowledged, but the witness saw no "
                     "WAL write or no 250 for them (%d of %d)" % (
                         len(missing), len(acked)))
    early = ["%s (written at %d, 250 when synced to %d)" % (
        t, first_w[t], ack_seq[t]) for t in acked
        if ack_seq[t] < first_w[t]]
    test.assertEqual(len(early), 0, "250 sent before the WAL write of the "
                     "message was fsync'd (%d of %d; %d WAL fsyncs): %s" % (
                         len(early), len(acked), syncs, early[:5]))
    return syncs


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
        witness = os.path.join(env.dir, "acksync.log")
        self.assertTrue(os.path.exists(ACKSYNC), ACKSYNC)
        start_smtpd_witnessed(env, witness)
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
        # Each of those 250s came after an fsync that covered the message.
        syncs = check_acks_synced(self, witness, acked)

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
        sys.stderr.write("acked %d (%d after restart), tried %d, %d WAL "
                         "fsyncs witnessed before the kill\n" % (
                             len(acked), acked_count(threads2), len(tried),
                             syncs))


if __name__ == "__main__":
    ct.main()
