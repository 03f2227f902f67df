"""carteiroctl backup and restore (issue 14 item 1).

A backup taken while carteiro-smtpd accepts mail and carteiro-pop3d
deletes mail restores into a store that verifies and holds every message
whose 250 came before the backup began; restore refuses while a daemon
holds the store and when the target is not empty, and refuses a damaged
backup. verify on a planted problem: test_ctl_verify.py."""

import os
import shutil
import smtplib
import subprocess
import threading
import time
import unittest

import carteiro_test as ct
import pop3_fixtures as pf

ct.sqlite_only("carteiroctl backup and restore copy the SQLite file (its "
               "online backup API; the backup holds mail.db); a PostgreSQL "
               "store is backed up with PostgreSQL's own tools")


def sender(env, stop, acked, errors, tag):
    """Send to alice over the MX listener until stop is set; acked gets
    (Message-ID, monotonic time after the 250)."""
    n = 0
    while not stop.is_set():
        try:
            s = smtplib.SMTP("127.0.0.1", env.ports["mx"], timeout=30)
            for _ in range(5):
                n += 1
                mid = "<%s-%d@load.test>" % (tag, n)
                msg = ("From: load@example.org\r\nTo: alice@example.test\r\n"
                       "Subject: load %s %d\r\nMessage-ID: %s\r\n\r\n"
                       "body %d\r\n" % (tag, n, mid, n)) + "x" * (n % 7000)
                s.sendmail("load@example.org",
                           ["alice@example.test", "bob@example.test"], msg)
                acked.append((mid, time.monotonic()))
            s.quit()
        except (OSError, smtplib.SMTPException) as e:
            errors.append(repr(e))
            time.sleep(0.05)


def deleter(env, stop, errors):
    """Log in as bob, DELE everything, QUIT; again until stop is set."""
    while not stop.is_set():
        try:
            p = pf.pop3(env, tls="none", user="bob@example.test")
            n = len(p.list()[1])
            for i in range(1, n + 1):
                p.dele(i)
            p.quit()
        except Exception as e:  # noqa: BLE001 (reported by the test)
            errors.append(repr(e))
        time.sleep(0.05)


class BackupTest(unittest.TestCase):
    def setUp(self):
        self.env = ct.Env()

    def tearDown(self):
        self.env.stop()

    def conf_at(self, name):
        """A config like the test's whose store is <dir>/<name>/mail.db
        (the directory is created, empty): (config, its TestStore)."""
        return self.env.other_store(name)

    def run_ctl(self, conf, *args):
        return subprocess.run([ct.CTL, "-c", conf] + list(args),
                              capture_output=True, text=True, timeout=300)

    def message_ids(self, store, address):
        rows = store.query(
            "SELECT coalesce(b.data, (SELECT c.data FROM body_chunks c"
            " WHERE c.body_id = b.id AND c.seq = 0)) FROM mailbox m"
            " JOIN users u ON u.id = m.user_id"
            " JOIN bodies b ON b.id = m.body_id"
            " WHERE u.address = ?", (address,))
        ids = set()
        for (data,) in rows:
            for line in bytes(data).split(b"\r\n"):
                if line.startswith(b"Message-ID: "):
                    ids.add(line[12:].decode())
                    break
        return ids

    def test_backup_under_load_restores_every_acked_message(self):
        env = self.env
        env.ctl_ok("dkim", "keygen", "example.test")
        env.start_smtpd()
        pf.start(env)
        stop = threading.Event()
        acked, errors = [], []
        threads = [threading.Thread(target=sender,
                                    args=(env, stop, acked, errors, t))
                   for t in ("a", "b", "c")]
        threads.append(threading.Thread(target=deleter,
                                        args=(env, stop, errors)))
        for t in threads:
            t.start()
        try:
            deadline = time.monotonic() + 60
            while len(acked) < 60 and time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertGreaterEqual(len(acked), 60, errors)
            began = time.monotonic()
            before = [mid for (mid, t) in list(acked) if t < began]
            bdir = os.path.join(env.dir, "backup")
            out = env.ctl_ok("backup", bdir)
            time.sleep(0.3)
        finally:
            stop.set()
            for t in threads:
                t.join(60)
        self.assertEqual(errors, [])
        self.assertRegex(out, r"^backup %s: schema \d+, 2 users, \d+ "
                         r"messages, \d+ queued, 1 DKIM keys\n$" % bdir)
        self.assertEqual(sorted(os.listdir(bdir)),
                         ["MANIFEST", "dkim", "mail.db"])
        with open(os.path.join(bdir, "MANIFEST")) as f:
            manifest = f.read().splitlines()
        self.assertEqual(manifest[0], "carteiro-backup 1")
        self.assertIn("count users 2", manifest)
        self.assertIn("count dkim_keys 1", manifest)
        self.assertTrue(any(l.startswith("sha256 mail.db ") for l in manifest))
        self.assertTrue(any(l.startswith(
            "sha256 dkim/example.test/ed25519.key ") for l in manifest))

        conf2, st2 = self.conf_at("restored")
        db2 = st2.path
        r = self.run_ctl(conf2, "restore", bdir)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"^restored %s: schema \d+, 2 users, "
                         r"\d+ messages, 1 DKIM keys\n$" % db2)
        r = self.run_ctl(conf2, "verify")
        self.assertEqual((r.returncode, r.stderr), (0, ""), r.stdout)
        self.assertRegex(r.stdout, r"^ok: schema \d+, 2 users, ")
        have = self.message_ids(st2, "alice@example.test")
        missing = [m for m in before if m not in have]
        self.assertEqual(missing, [], "acked before the backup, not in it")
        # Mail went on arriving while the backup ran, and every acked
        # message is in the live store too.
        live = self.message_ids(env.store, "alice@example.test")
        self.assertEqual([m for (m, _) in acked if m not in live], [])
        self.assertGreater(len(live), len(before))
        # The DKIM key came back byte for byte.
        a = os.path.join(env.dir, "dkim", "example.test", "ed25519.key")
        b = os.path.join(os.path.dirname(db2), "dkim", "example.test",
                         "ed25519.key")
        with open(a, "rb") as fa, open(b, "rb") as fb:
            self.assertEqual(fa.read(), fb.read())
        self.assertEqual(os.stat(b).st_mode & 0o777, 0o600)

    def test_restore_refuses_while_a_daemon_runs(self):
        env = self.env
        bdir = os.path.join(env.dir, "backup")
        env.ctl_ok("backup", bdir)
        for start in (env.start_smtpd, lambda: pf.start(env)):
            d = start()
            with open(env.db, "rb") as f:
                before = f.read()
            r = env.ctl("restore", bdir)
            self.assertEqual(r.returncode, 1)
            self.assertEqual(r.stdout, "")
            self.assertEqual(
                r.stderr, "carteiroctl: restore: a carteiro daemon is "
                "running on %s (stop carteiro-smtpd and carteiro-pop3d "
                "first)\n" % env.db)
            with open(env.db, "rb") as f:
                self.assertEqual(f.read(), before)
            d.stop()
        # Both stopped: the daemon check passes, the store is not empty.
        r = env.ctl("restore", bdir)
        self.assertEqual(r.stderr, "carteiroctl: restore: %s exists and is "
                         "not empty (restore needs an empty store "
                         "location)\n" % env.db)

    def test_restore_refuses_a_target_that_is_not_empty(self):
        env = self.env
        bdir = os.path.join(env.dir, "backup")
        env.ctl_ok("backup", bdir)
        conf2, st2 = self.conf_at("other")
        db2 = st2.path
        shutil.copy(env.db, db2)
        r = self.run_ctl(conf2, "restore", bdir)
        self.assertEqual((r.returncode, r.stdout), (1, ""))
        self.assertEqual(r.stderr, "carteiroctl: restore: %s exists and is "
                         "not empty (restore needs an empty store "
                         "location)\n" % db2)
        # Only DKIM keys at the target: not empty either.
        os.unlink(db2)
        os.makedirs(os.path.join(os.path.dirname(db2), "dkim", "x.test"))
        r = self.run_ctl(conf2, "restore", bdir)
        self.assertEqual((r.returncode, r.stdout), (1, ""))
        self.assertEqual(r.stderr, "carteiroctl: restore: the DKIM key "
                         "directory %s/dkim is not empty (restore needs an "
                         "empty store location)\n" % os.path.dirname(db2))
        self.assertFalse(os.path.exists(db2))

    def test_restore_refuses_a_damaged_backup(self):
        env = self.env
        bdir = os.path.join(env.dir, "backup")
        env.ctl_ok("backup", bdir)
        with open(os.path.join(bdir, "mail.db"), "r+b") as f:
            f.seek(200)
            c = f.read(1)
            f.seek(200)
            f.write(bytes([c[0] ^ 1]))
        conf2, st2 = self.conf_at("damaged")
        db2 = st2.path
        r = self.run_ctl(conf2, "restore", bdir)
        self.assertEqual((r.returncode, r.stdout), (1, ""))
        self.assertEqual(r.stderr, "carteiroctl: restore: %s/mail.db does "
                         "not match its checksum in the manifest (damaged "
                         "backup)\n" % bdir)
        self.assertFalse(os.path.exists(db2))

    def test_backup_into_a_directory_that_is_not_empty(self):
        env = self.env
        bdir = os.path.join(env.dir, "full")
        os.mkdir(bdir)
        open(os.path.join(bdir, "x"), "w").close()
        r = env.ctl("backup", bdir)
        self.assertEqual((r.returncode, r.stdout, r.stderr), (
            1, "", "carteiroctl: backup: %s is not empty\n" % bdir))


if __name__ == "__main__":
    ct.main()
