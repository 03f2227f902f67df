"""carteiroctl mailbox import and export (issue 14 items 2 and 3).

Dovecot's UIDLs survive the move (a private Dovecot serves a Maildir,
carteiro imports it and lists the same UIDLs line by line, and RETR gives
the same bytes); mbox round-trips byte for byte; export is byte-exact with
RETR; an import killed with -9 and run again holds each message once; a
re-run adds nothing; --uidl-map; the quota."""

import os
import signal
import subprocess
import time
import unittest

import carteiro_test as ct
import dovecot_fixture as dv
import pop3_fixtures as pf

ALICE = "alice@example.test"

MBOX = (
    b"From alice@example.org Thu Dec  3 10:00:00 2026\n"
    b"From: alice@example.org\nSubject: one\n\n"
    b"hello\n>From the start of a line, quoted once\n"
    b">>From quoted twice\n.a dot line\n\n"
    b"From MAILER-DAEMON Fri Dec  4 01:02:03 2026\n"
    b"Subject: two\n\nno trailing blank inside\n\n"
    b"From bob@example.org Sat Dec  5 23:59:59 2026\n"
    b"Subject: three\n\n\n\nblank lines above, 8-bit: \xc3\xa7\xff\n"
    b"> not a From line\n>From\n\n")


def mbox_split(data):
    """mboxrd as the tests read it: (From_ text, CRLF message) pairs."""
    out = []
    msgs, cur = [], None
    lines = data.split(b"\n")
    assert lines[-1] == b""
    lines = lines[:-1]
    prev_blank = True
    for l in lines:
        if l.startswith(b"From ") and prev_blank:
            if cur is not None:
                msgs.append(cur)
            cur = [l[5:], []]
        else:
            cur[1].append(l)
        prev_blank = l == b""
    msgs.append(cur)
    for (fl, body) in msgs:
        assert body[-1] == b"", body
        body = body[:-1]
        fixed = []
        for l in body:
            s = l.lstrip(b">")
            if len(s) < len(l) and s.startswith(b"From "):
                l = l[1:]
            fixed.append(l)
        out.append((fl, b"".join(x + b"\r\n" for x in fixed)))
    return out


def retr_all(env, user=ALICE):
    """(UIDL listing lines, RETR bytes of every message) over POP3."""
    r = pf.Raw(env)
    r.login(user)
    assert r.cmd("UIDL").startswith(b"+OK")
    uidl = r.multi()
    msgs = []
    for i in range(1, len(uidl) + 1):
        assert r.cmd("RETR %d" % i).startswith(b"+OK")
        lines = r.multi()
        msgs.append(b"".join(l + b"\r\n" for l in lines))
    r.cmd("QUIT")
    return [l.decode() for l in uidl], msgs


class ImportTest(unittest.TestCase):
    def setUp(self):
        self.env = ct.Env()

    def tearDown(self):
        self.env.stop()

    def ctl(self, *args, env=None):
        return subprocess.run([ct.CTL, "-c", self.env.conf] + list(args),
                              capture_output=True, text=True, timeout=300,
                              env=env)

    def write(self, name, data):
        p = os.path.join(self.env.dir, name)
        with open(p, "wb") as f:
            f.write(data)
        return p

    def test_mbox_round_trip_byte_exact(self):
        env = self.env
        src = self.write("in.mbox", MBOX)
        r = self.ctl("mailbox", "import", ALICE, src)
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        self.assertEqual(r.stdout, "imported 3 messages into %s (0 already "
                         "there, 3 in the source)\n" % ALICE)
        out = os.path.join(env.dir, "out.mbox")
        r = self.ctl("mailbox", "export", ALICE, "--mbox", out)
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        self.assertEqual(open(out, "rb").read(), MBOX)
        # What POP3 serves is the unquoted message with CRLF line ends.
        pf.start(env)
        uidl, msgs = retr_all(env)
        self.assertEqual(msgs, [m for (_, m) in mbox_split(MBOX)])
        self.assertEqual(msgs[0], b"From: alice@example.org\r\nSubject: "
                         b"one\r\n\r\nhello\r\nFrom the start of a line, "
                         b"quoted once\r\n>From quoted twice\r\n.a dot "
                         b"line\r\n")
        # A re-run adds nothing.
        r = self.ctl("mailbox", "import", ALICE, src)
        self.assertEqual(r.stdout, "imported 0 messages into %s (3 already "
                         "there, 3 in the source)\n" % ALICE)
        self.assertEqual(env.query("SELECT count(*) FROM mailbox")[0][0], 3)

    def test_export_is_byte_exact_with_retr(self):
        env = self.env
        env.start_smtpd()
        import smtplib
        s = smtplib.SMTP("127.0.0.1", env.ports["mx"], timeout=30)
        s.sendmail("sender@example.org", [ALICE],
                   b"Subject: over smtp\r\n\r\nFrom here\r\n.dot\r\n")
        s.quit()
        big = b"Subject: big\r\n\r\n" + b"".join(
            b"%s line %d\r\n" % (b"From" if i % 50 == 0 else b">From"
                                 if i % 70 == 0 else b".x", i)
            for i in range(20000))
        pf.deliver_many(env, ALICE, [big, pf.make_msg("plain"),
                                     b"Subject: bare\r\n\r\ncr\rin line\r\n"])
        pf.start(env)
        uidl, msgs = retr_all(env)
        self.assertEqual(len(msgs), 4)
        self.assertTrue(msgs[0].startswith(b"Return-Path: "
                                           b"<sender@example.org>\r\n"))
        md = os.path.join(env.dir, "export-md")
        r = self.ctl("mailbox", "export", ALICE, "--maildir", md)
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        names = sorted(os.listdir(os.path.join(md, "cur")),
                       key=lambda n: int(n.split(".M")[1].split("P")[0]))
        self.assertEqual(len(names), 4)
        files = [open(os.path.join(md, "cur", n), "rb").read() for n in names]
        self.assertEqual(files, msgs)
        # dovecot-uidlist keeps the UIDLs (pop3_save_uidl's P field).
        ul = open(os.path.join(md, "dovecot-uidlist")).read().splitlines()
        self.assertRegex(ul[0], r"^3 V\d+ N5$")
        self.assertEqual([l.split(" ")[1] for l in ul[1:]],
                         ["P" + u.split(" ")[1] for u in uidl])
        mb = os.path.join(env.dir, "export.mbox")
        r = self.ctl("mailbox", "export", ALICE, "--mbox", mb)
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        got = mbox_split(open(mb, "rb").read())
        self.assertEqual([m for (_, m) in got], msgs)
        self.assertEqual(got[0][0][:19], b"sender@example.org ")
        self.assertEqual(got[1][0][:14], b"MAILER-DAEMON ")
        # A Maildir export imported elsewhere keeps UIDLs and bytes.
        r = self.ctl("mailbox", "import", "bob@example.test", md)
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        uidl2, msgs2 = retr_all(env, "bob@example.test")
        self.assertEqual((uidl2, msgs2), (uidl, msgs))
        # The target must not exist.
        r = self.ctl("mailbox", "export", ALICE, "--mbox", mb)
        self.assertEqual((r.returncode, r.stdout), (1, ""))
        self.assertEqual(r.stderr, "carteiroctl: mailbox export: cannot "
                         "create %s: File exists\n" % mb)

    def test_import_killed_then_rerun_has_each_message_once(self):
        env = self.env
        md = os.path.join(env.dir, "md")
        for d in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(md, d))
        want = []
        for i in range(1200):
            m = (b"Subject: m%d\n\n" % i) + b"line\n" * (i % 30)
            want.append(m.replace(b"\n", b"\r\n"))
            sub = "new" if i % 3 == 0 else "cur"
            with open(os.path.join(md, sub, "%d.M%dP1.host%s" % (
                    1700000000 + i, i, ":2,S" if sub == "cur" else "")),
                      "wb") as f:
                f.write(m)
        p = subprocess.Popen([ct.CTL, "-c", env.conf, "mailbox", "import",
                              ALICE, md], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE,
                             env=dict(os.environ,
                                      CARTEIRO_TEST_IMPORT_STALL="700"))
        self.assertEqual(p.stderr.readline(), b"stalled\n")
        p.kill()
        p.wait()
        self.assertEqual(p.returncode, -signal.SIGKILL)
        # One batch (500) committed, the 200 after it lost.
        self.assertEqual(env.query("SELECT count(*) FROM mailbox")[0][0], 500)
        r = self.ctl("mailbox", "import", ALICE, md)
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        self.assertEqual(r.stdout, "imported 700 messages into %s (500 "
                         "already there, 1200 in the source)\n" % ALICE)
        self.assertEqual(env.mailbox_bodies(ALICE), want)
        r = self.ctl("mailbox", "import", ALICE, md)
        self.assertEqual(r.stdout, "imported 0 messages into %s (1200 "
                         "already there, 1200 in the source)\n" % ALICE)
        r = self.ctl("verify")
        self.assertEqual(r.returncode, 0, r.stdout)

    def test_uidl_map_and_never_reused(self):
        env = self.env
        src = self.write("in.mbox", MBOX)
        m = self.write("map", b"# old server\nAAA-1 1\n\nCCC-3 3\n")
        r = self.ctl("mailbox", "import", ALICE, src, "--uidl-map", m)
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        pf.start(env)
        uidl, _ = retr_all(env)
        epoch = env.query("SELECT uid_epoch FROM users WHERE address = ?",
                          (ALICE,))[0][0]
        self.assertEqual(uidl[0], "1 AAA-1")
        self.assertRegex(uidl[1], r"^2 %x\.\d+$" % epoch)
        self.assertEqual(uidl[2], "3 CCC-3")
        # Deleted over POP3, the message with UIDL AAA-1 never comes back.
        r = pf.Raw(env)
        r.login()
        self.assertEqual(r.cmd("DELE 1"), b"+OK Marked to be deleted.")
        self.assertTrue(r.cmd("QUIT").startswith(b"+OK"))
        r = self.ctl("mailbox", "import", ALICE, src, "--uidl-map", m)
        self.assertEqual(r.stdout, "imported 0 messages into %s (3 already "
                         "there, 3 in the source)\n" % ALICE)
        gen = uidl[1].split(" ")[1]
        uidl, _ = retr_all(env)
        self.assertEqual(uidl, ["1 " + gen, "2 CCC-3"])
        # Bad maps: a UIDL with a space, twice the same, carteiro's form.
        for text, err in (
                (b"A B 1\n", "mailbox import: %s:1: no message 'B' in the "
                 "source" % os.path.join(env.dir, "bad")),
                (b"X 1\nX 2\n", "mailbox import: UIDL X is given to two "
                 "messages"),
                (b"%x.99 1\n" % epoch, None)):
            bad = self.write("bad", text)
            r = self.ctl("mailbox", "import", "bob@example.test", src,
                         "--uidl-map", bad)
            if err is None:
                continue
            self.assertEqual((r.returncode, r.stdout, r.stderr),
                             (1, "", "carteiroctl: " + err + "\n"))
        bob_epoch = env.query("SELECT uid_epoch FROM users WHERE address = ?",
                              ("bob@example.test",))[0][0]
        bad = self.write("bad", b"%x.99 1\n" % bob_epoch)
        r = self.ctl("mailbox", "import", "bob@example.test",
                     self.write("one.mbox", MBOX), "--uidl-map", bad)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr, "carteiroctl: mailbox import: UIDL %x.99 "
                         "has the form of carteiro's own UIDLs for this "
                         "mailbox\n" % bob_epoch)

    def test_quota(self):
        env = self.env
        src = self.write("in.mbox", MBOX)
        env.ctl_ok("user", "quota", ALICE, "100")
        r = self.ctl("mailbox", "import", ALICE, src)
        self.assertEqual((r.returncode, r.stdout), (1, ""))
        size = sum(len(m) for (_, m) in mbox_split(MBOX))
        self.assertEqual(r.stderr, "carteiroctl: mailbox import: 3 messages "
                         "(%d bytes) would take %s over the quota (0 of 100 "
                         "bytes used); nothing imported (--ignore-quota "
                         "imports anyway)\n" % (size, ALICE))
        self.assertEqual(env.query("SELECT count(*) FROM mailbox")[0][0], 0)
        r = self.ctl("mailbox", "import", ALICE, src, "--ignore-quota")
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        self.assertEqual(env.query("SELECT used FROM users WHERE address = ?",
                                   (ALICE,))[0][0], size)


@unittest.skipUnless(dv.available(), "dovecot-pop3d not installed")
class DovecotTest(unittest.TestCase):
    """The UIDLs a private Dovecot shows for a Maildir are the ones
    carteiro shows after importing that Maildir."""

    def setUp(self):
        self.env = ct.Env()
        self.dovecot = None

    def tearDown(self):
        if self.dovecot is not None:
            self.dovecot.stop()
        self.env.stop()

    def fill(self, dc):
        msgs = []
        for i in range(40):
            m = (b"From: s%d@example.org\nSubject: dovecot %d\n\n" % (i, i) +
                 b"line\n" * (i * 37 % 200) + (b"From x\n.dot\n" if i % 5 == 0
                                               else b""))
            sub = "new" if i % 4 == 0 else "cur"
            name = "%d.M%dP%d.oldhost,S=%d%s" % (1690000000 + i * 13, i,
                                                 900 + i, len(m), ":2,S" if
                                                 sub == "cur" else "")
            with open(os.path.join(dc.maildir, sub, name), "wb") as f:
                f.write(m)
            msgs.append(m)
        return msgs

    def compare(self, extra, import_args):
        env = self.env
        dc = self.dovecot = dv.Dovecot(env.dir, extra=extra)
        self.fill(dc)
        dc.start()
        p = dc.pop3()
        want_uidl = [l.decode() for l in p.uidl()[1]]
        want_msgs = [b"".join(l + b"\r\n" for l in p.retr(i + 1)[1])
                     for i in range(len(want_uidl))]
        p.quit()
        dc.stop()
        self.assertEqual(len(want_uidl), 40, dc.log())
        r = subprocess.run([ct.CTL, "-c", env.conf, "mailbox", "import",
                            ALICE, dc.maildir] + import_args,
                           capture_output=True, text=True, timeout=120)
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        pf.start(env)
        got_uidl, got_msgs = retr_all(env)
        for (w, g) in zip(want_uidl, got_uidl):
            self.assertEqual(g, w)
        self.assertEqual(got_uidl, want_uidl)
        self.assertEqual(got_msgs, want_msgs)
        return want_uidl

    def test_file_dovecot_has_not_seen(self):
        env = self.env
        dc = self.dovecot = dv.Dovecot(env.dir)
        self.fill(dc)
        dc.start()
        p = dc.pop3()
        want = [l.decode() for l in p.uidl()[1]]
        p.quit()
        dc.stop()
        with open(os.path.join(dc.maildir, "new", "1800000000.M1P1.late"),
                  "wb") as f:
            f.write(b"Subject: late\n\nafter Dovecot ran\n")
        r = subprocess.run([ct.CTL, "-c", env.conf, "mailbox", "import",
                            ALICE, dc.maildir], capture_output=True,
                           text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "carteiroctl: warning: 1 messages are not "
                         "in dovecot-uidlist yet and get new UIDLs (log in to "
                         "Dovecot once before the import to keep theirs)\n")
        pf.start(env)
        got, msgs = retr_all(env)
        self.assertEqual(got[:40], want)
        epoch = env.query("SELECT uid_epoch FROM users WHERE address = ?",
                          (ALICE,))[0][0]
        self.assertRegex(got[40], r"^41 %x\.\d+$" % epoch)
        self.assertEqual(msgs[40], b"Subject: late\r\n\r\nafter Dovecot "
                         b"ran\r\n")

    def test_export_to_dovecot_keeps_uidls(self):
        # The other way: a Maildir export served by Dovecot shows
        # carteiro's UIDLs (dovecot-uidlist P fields) and RETR bytes.
        env = self.env
        pf.deliver_many(env, ALICE, [pf.make_msg("out %d" % i)
                                     for i in range(5)])
        pf.start(env)
        want_uidl, want_msgs = retr_all(env)
        dc = self.dovecot = dv.Dovecot(env.dir)
        import shutil
        shutil.rmtree(dc.maildir)
        r = subprocess.run([ct.CTL, "-c", env.conf, "mailbox", "export",
                            ALICE, "--maildir", dc.maildir],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        dc.start()
        p = dc.pop3()
        got_uidl = [l.decode() for l in p.uidl()[1]]
        got_msgs = [b"".join(l + b"\r\n" for l in p.retr(i + 1)[1])
                    for i in range(len(got_uidl))]
        p.quit()
        self.assertEqual(got_uidl, want_uidl)
        self.assertEqual(got_msgs, want_msgs)

    def test_default_uidl_format(self):
        uidl = self.compare("", [])
        self.assertRegex(uidl[0], r"^1 [0-9a-f]{16}$")

    def test_custom_format_given(self):
        uidl = self.compare("pop3_uidl_format = %v.%u\n",
                            ["--uidl-format", "%v.%u"])
        self.assertRegex(uidl[0], r"^1 \d+\.1$")

    def test_saved_uidls(self):
        # Dovecot saves the UIDLs it showed (P field); carteiro takes
        # them even without being told the format.
        self.compare("pop3_uidl_format = %f\npop3_save_uidl = yes\n", [])
        ul = open(os.path.join(self.dovecot.maildir,
                               "dovecot-uidlist")).read()
        self.assertIn(" P", ul)


if __name__ == "__main__":
    ct.main()
