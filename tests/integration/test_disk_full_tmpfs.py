"""A really full disk (issue #11 item 13): the store and its spool on a
size-limited tmpfs, so the failures are the kernel's ENOSPC, not the test
knob of test_disk_full.py.

- A message larger than the free space fails while it is spooled (write
  ENOSPC): exactly `452 4.3.1 Insufficient system storage` after the
  final dot, then the same at RCPT; no spool file and no space is left
  behind, nothing reaches the store.
- A message that fits in the spool but not in the WAL as well: SQLite's
  own ENOSPC (SQLITE_FULL at the commit), the same 452, the same exact
  store state.
- POP3 keeps serving (STAT, LIST, UIDL, RETR byte-exact), and with not
  one byte free DELE + QUIT still deletes.
- The filesystem grows (remount) or a file is removed: mail is accepted
  again, no restart.

The test re-runs itself in a private mount namespace (`unshare -m`, or
`unshare -rm` where only a user namespace is allowed) and mounts the
tmpfs there; where neither is permitted it is skipped, saying why."""

import os
import poplib
import shutil
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import carteiro_test as ct  # noqa: E402

ct.sqlite_only("puts the SQLite file, its WAL and the spool on a small tmpfs "
               "and checks the file with PRAGMA integrity_check; a "
               "PostgreSQL server's disk is the server's")

from test_disk_full import FULL, Client, message, state  # noqa: E402

IN_MNTNS = "CARTEIRO_TEST_IN_MNTNS"
SIZE_KB = 1024


def enter_mntns():
    """Re-exec in a private mount namespace unless already there. Returns
    None inside it, or the reason the test cannot run."""
    if os.environ.get(IN_MNTNS) == "1":
        return None
    reasons = []
    for argv in (["unshare", "-m", "--propagation", "private"],
                 ["unshare", "-rm"]):
        try:
            r = subprocess.run(argv + ["sh", "-c",
                                       "mount -t tmpfs -o size=64k tmpfs "
                                       "/mnt"], capture_output=True,
                               timeout=30)
        except (OSError, subprocess.TimeoutExpired) as e:
            reasons.append("%s: %s" % (" ".join(argv), e))
            continue
        if r.returncode != 0:
            reasons.append("%s: %s" % (" ".join(argv), r.stderr.decode(
                errors="replace").strip()))
            continue
        env = dict(os.environ)
        env[IN_MNTNS] = "1"
        sys.stdout.flush()
        sys.stderr.flush()
        os.execvpe(argv[0], argv + [sys.executable, os.path.abspath(
            __file__)] + sys.argv[1:], env)
    return "cannot mount a tmpfs in a private namespace: " + \
        "; ".join(reasons)


SKIP = enter_mntns() if __name__ == "__main__" else "not run directly"


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def settled_free_bytes(path, quiet=1.0, timeout=20):
    """Free space once it has not changed for quiet seconds (the
    background checkpoint copies a commit into the database file within
    200 ms)."""
    deadline = time.time() + timeout
    last, since = free_bytes(path), time.time()
    while time.time() < deadline:
        time.sleep(0.1)
        now = free_bytes(path)
        if now != last:
            last, since = now, time.time()
        elif time.time() - since >= quiet:
            return now
    raise AssertionError("free space on %s never settled" % path)


@unittest.skipIf(SKIP, SKIP)
class DiskFullTmpfs(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = env = ct.Env()
        cls.mnt = os.path.join(env.dir, "fs")
        os.mkdir(cls.mnt)
        subprocess.run(["mount", "-t", "tmpfs", "-o",
                        "size=%dk,mode=0700" % SIZE_KB, "tmpfs", cls.mnt],
                       check=True, timeout=30)
        # The store moves onto the small filesystem (carteiroctl closed
        # it cleanly: no WAL to carry); the spool goes next to it.
        db = os.path.join(cls.mnt, "mail.db")
        shutil.copyfile(env.db, db)
        os.chmod(db, 0o600)
        env.db = db
        env.sections["store"]["path"] = db
        env.write_conf()
        env.start_smtpd()
        env.start_pop3d()
        cls.port = env.ports["mx"]

    @classmethod
    def tearDownClass(cls):
        try:
            cls.env.stop()
        finally:
            subprocess.run(["umount", cls.mnt], timeout=30)
            cls.env.cleanup()

    def send(self, rcpts, body):
        c = Client(self.port)
        try:
            rr = c.envelope(rcpts)
            if all(code == 250 for code, _ in rr):
                return rr, c.data(body)
            return rr, None
        finally:
            c.close()

    def wait_accepting(self, timeout=30):
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

    def test_enospc(self):
        env = self.env
        first = message("first", 20 * 1024)
        rr, r = self.send(["alice@example.test"], first)
        self.assertEqual(r[0], 250, r)
        stored = env.mailbox_bodies("alice@example.test")
        self.assertEqual(len(stored), 1)
        files = sorted(os.listdir(self.mnt))

        # 1. Larger than the free space: the spool write fails.
        before, free0 = state(env), settled_free_bytes(self.mnt)
        c = Client(self.port)
        try:
            self.assertEqual([x[0] for x in c.envelope(
                ["alice@example.test"])], [250])
            self.assertEqual(c.data(message("huge", free0 + 256 * 1024)),
                             FULL)
            (r,) = c.envelope(["bob@example.test"])
            self.assertEqual(r, FULL)
        finally:
            c.close()
        self.assertEqual(state(env), before)
        self.assertEqual(sorted(os.listdir(self.mnt)), files)
        self.assertEqual(settled_free_bytes(self.mnt), free0)
        log = env.smtpd.log()
        self.assertRegex(log, r'event=smtp\.spool sid=\w+ msgid=\w+ '
                         r'error="No space left on device"')
        self.assertRegex(log, r"event=smtp\.data sid=\w+ msgid=\w+ "
                         r"result=no_space ")

        # POP3 serves meanwhile.
        p = poplib.POP3("127.0.0.1", env.ports["pop3"], timeout=30)
        p.user("alice@example.test")
        p.pass_(ct.PASSWORD)
        self.assertEqual(p.stat(), (1, len(stored[0])))
        self.assertEqual(p.list()[1], [b"1 %d" % len(stored[0])])
        self.assertEqual(len(p.uidl()[1]), 1)
        lines = p.retr(1)[1]
        self.assertEqual(b"\r\n".join(lines) + b"\r\n", stored[0])
        self.assertEqual(p.quit(), b"+OK Logging out.")

        # 2. Fits in the spool, not in the WAL too: SQLite's ENOSPC.
        self.wait_accepting()
        free1 = free_bytes(self.mnt)
        body = message("half", free1 * 2 // 3)
        rr, r = self.send(["alice@example.test"], body)
        self.assertEqual(r, FULL)
        self.assertEqual(state(env), before)
        self.assertRegex(env.smtpd.log(), r"event=smtp\.deliver msgid=\w+ "
                         r"rcpts=1 bytes=\d+ result=full ")
        (r,) = self.send(["alice@example.test"], body)[0]
        self.assertEqual(r, FULL)

        # 3. The filesystem grows: accepted again without a restart.
        subprocess.run(["mount", "-o", "remount,size=%dk" % (8 * SIZE_KB),
                        self.mnt], check=True, timeout=30)
        self.wait_accepting()
        rr, r = self.send(["alice@example.test"], body)
        self.assertEqual(r[0], 250, r)
        got = env.mailbox_bodies("alice@example.test")
        self.assertEqual(len(got), 2)
        self.assertEqual(got[0], stored[0])
        self.assertTrue(got[1].endswith(b"\r\n\r\n" + body.split(
            b"\r\n\r\n", 1)[1]))
        self.assertEqual(state(env)["orphans"], 0)
        self.assertEqual(env.query("PRAGMA integrity_check"), [("ok",)])

        # 4. Not one byte free (a filler file takes the rest, once the
        # WAL is copied into the database): POP3 still lists, retrieves
        # and deletes, in the WAL's existing space. (Were the WAL still
        # to be copied, the commit would need new space: QUIT answers
        # -ERR [SYS/TEMP] then and keeps every message; a store unit
        # case has that.)
        settled_free_bytes(self.mnt)
        filler = os.path.join(self.mnt, "filler")
        with open(filler, "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * 4096)
            except OSError:
                pass
        self.assertLess(free_bytes(self.mnt), 4096)
        p = poplib.POP3("127.0.0.1", env.ports["pop3"], timeout=30)
        p.user("alice@example.test")
        p.pass_(ct.PASSWORD)
        self.assertEqual(p.stat(), (2, sum(len(b) for b in got)))
        self.assertEqual(b"\r\n".join(p.retr(2)[1]) + b"\r\n", got[1])
        self.assertEqual(p.dele(1), b"+OK Marked to be deleted.")
        self.assertEqual(p.quit(), b"+OK Logging out, messages deleted.")
        self.assertEqual(env.mailbox_bodies("alice@example.test"), [got[1]])
        self.assertEqual(env.query(
            "SELECT used FROM users WHERE address='alice@example.test'"),
            [(len(got[1]),)])
        os.unlink(filler)
        rr, r = self.send(["alice@example.test"], message("more", 8192))
        self.assertEqual(r[0], 250, r)
        self.assertEqual(env.query("PRAGMA integrity_check"), [("ok",)])


if __name__ == "__main__":
    if SKIP:
        sys.stderr.write("SKIP: %s\n" % SKIP)
    ct.main()
