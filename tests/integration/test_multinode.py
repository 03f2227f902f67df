"""Two carteiro-smtpd and two carteiro-pop3d on one store (issue 18 item
3): mail accepted by either node is visible over POP3 on both with the
same UIDLs; lock_session holds across the two pop3d (PostgreSQL's advisory
locks); DELE on one node and RETR on the other never lose or resurrect a
message. Both backends (suite integration-pg: PostgreSQL); on SQLite both
nodes open one file (the lock test needs PostgreSQL)."""

import os
import poplib
import smtplib
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import carteiro_test as ct  # noqa: E402
import multinode as mn  # noqa: E402

ALICE = "alice@example.test"


def mx_send(port, subject, rcpt=ALICE):
    """Send one message to rcpt over an MX port; the refused dict."""
    msg = ("From: carol@remote.test\r\nTo: %s\r\nSubject: %s\r\n"
           "Message-ID: <%s@remote.test>\r\n\r\nbody of %s\r\n" %
           (rcpt, subject, subject, subject)).encode()
    s = smtplib.SMTP("127.0.0.1", port, timeout=30)
    try:
        return s.sendmail("carol@remote.test", [rcpt], msg)
    finally:
        s.quit()


def pop_login(port, user=ALICE):
    p = poplib.POP3("127.0.0.1", port, timeout=30)
    p.user(user)
    p.pass_(ct.PASSWORD)
    return p


def uidls(p):
    """{uidl: msg number} of a logged-in session."""
    out = {}
    for line in p.uidl()[1]:
        num, uid = line.decode().split(" ", 1)
        out[uid] = int(num)
    return out


def subject_of(p, num):
    for line in p.retr(num)[1]:
        if line.startswith(b"Subject: "):
            return line[9:].decode()
    return None


class MultiNode(unittest.TestCase):
    def start(self, conf=None):
        self.env = ct.Env(conf=conf)
        self.b = mn.Node(self.env, "b")
        self.env.start_smtpd()
        self.b.start_smtpd()
        self.env.start_pop3d()
        self.b.start_pop3d()
        self.pa = self.env.ports["pop3"]
        self.pb = self.b.ports["pop3"]

    def tearDown(self):
        env = getattr(self, "env", None)
        if env is not None:
            env.stop()

    def test_accepted_by_either_visible_on_both(self):
        self.start()
        self.assertEqual(mx_send(self.env.ports["mx"], "via-a"), {})
        self.assertEqual(mx_send(self.b.ports["mx"], "via-b"), {})
        seen = []
        for port in (self.pa, self.pb):
            p = pop_login(port)
            u = uidls(p)
            self.assertEqual(len(u), 2)
            self.assertEqual(sorted(subject_of(p, n) for n in u.values()),
                             ["via-a", "via-b"])
            p.quit()
            seen.append(u)
        # The same maildrop, message for message, on both nodes.
        self.assertEqual(seen[0], seen[1])

    def test_lock_session_across_nodes(self):
        if not mn.PG:
            self.skipTest("SQLite: lock_session guards one pop3d only "
                          "(store_maildrop_lock is PostgreSQL's); this one "
                          "runs in suite integration-pg")
        self.start({"pop3d": {"lock_session": "yes"}})
        a = pop_login(self.pa)
        for port in (self.pb, self.pa):
            p = poplib.POP3("127.0.0.1", port, timeout=30)
            p.user(ALICE)
            with self.assertRaises(poplib.error_proto) as cm:
                p.pass_(ct.PASSWORD)
            self.assertEqual(cm.exception.args[0],
                             b"-ERR [IN-USE] Mailbox is locked by another "
                             b"POP3 session.")
            p.quit()
        # Another user is not held by alice's lock.
        pop_login(self.pb, "bob@example.test").quit()
        a.quit()
        b = pop_login(self.pb)
        # Now held on b: a refuses.
        p = poplib.POP3("127.0.0.1", self.pa, timeout=30)
        p.user(ALICE)
        with self.assertRaises(poplib.error_proto):
            p.pass_(ct.PASSWORD)
        p.quit()
        # A node that dies frees its locks with its connection.
        self.b.pop3d.kill9()
        del b
        deadline = time.time() + 20
        while True:
            p = poplib.POP3("127.0.0.1", self.pa, timeout=30)
            p.user(ALICE)
            try:
                p.pass_(ct.PASSWORD)
                p.quit()
                break
            except poplib.error_proto:
                p.quit()
                self.assertLess(time.time(), deadline,
                                "the dead node's lock was never freed")
                time.sleep(0.2)

    def test_dele_and_retr_on_two_nodes(self):
        self.start({"pop3d": {"lock_session": "no"}})
        for i in (1, 2, 3):
            self.assertEqual(mx_send(self.env.ports["mx"], "m%d" % i), {})
        a = pop_login(self.pa)
        b = pop_login(self.pb)
        ua, ub = uidls(a), uidls(b)
        self.assertEqual(ua, ub)
        self.assertEqual(len(ua), 3)
        by_subject = {subject_of(a, n): uid for uid, n in ua.items()}
        u1, u2, u3 = by_subject["m1"], by_subject["m2"], by_subject["m3"]
        # a marks m1 deleted; until a's QUIT it is still b's to read.
        a.dele(ua[u1])
        self.assertEqual(subject_of(b, ub[u1]), "m1")
        self.assertTrue(a.quit().startswith(b"+OK"))
        # Gone now, and b is told so (not an empty or a wrong message).
        with self.assertRaises(poplib.error_proto) as cm:
            b.retr(ub[u1])
        self.assertEqual(cm.exception.args[0],
                         b"-ERR Message was deleted by another session.")
        # b deletes m1 again (already gone) and m2: no error, and m1
        # does not come back.
        b.dele(ub[u1])
        b.dele(ub[u2])
        self.assertTrue(b.quit().startswith(b"+OK"))
        self.assertEqual(mx_send(self.b.ports["mx"], "m4"), {})
        final = []
        for port in (self.pa, self.pb):
            p = pop_login(port)
            u = uidls(p)
            self.assertEqual(sorted(subject_of(p, n) for n in u.values()),
                             ["m3", "m4"])
            p.quit()
            final.append(u)
        self.assertEqual(final[0], final[1])
        self.assertIn(u3, final[0])
        # m4's UIDL is new: UIDLs are never reused across nodes.
        self.assertEqual(len(set(final[0]) - {u3}), 1)
        self.assertNotIn(next(iter(set(final[0]) - {u3})), (u1, u2, u3))

    def test_daily_send_limit_counts_both_nodes(self):
        """[smtpd] daily_send_limit is one count per user in the store
        (send_log), whichever node took the mail."""
        self.start({"smtpd": {"daily_send_limit": "2"}})
        msg = b"From: alice@example.test\r\nSubject: s\r\n\r\nhi\r\n"
        for port, rcpt in ((self.env.ports["submission"], "r1@remote.test"),
                           (self.b.ports["submission"], "r2@remote.test")):
            s = smtplib.SMTP("127.0.0.1", port, timeout=30)
            s.login(ALICE, ct.PASSWORD)
            self.assertEqual(s.sendmail(ALICE, [rcpt], msg), {})
            s.quit()
        for port in (self.env.ports["submission"], self.b.ports["submission"]):
            s = smtplib.SMTP("127.0.0.1", port, timeout=30)
            s.login(ALICE, ct.PASSWORD)
            s.mail(ALICE)
            code, text = s.rcpt("r3@remote.test")
            self.assertEqual(code, 450)
            self.assertTrue(text.startswith(
                b"4.7.1 Daily sending limit of 2 recipients reached; "
                b"capacity frees up at "), text)
            s.quit()
        # Local mail is not counted: bob still gets his.
        s = smtplib.SMTP("127.0.0.1", self.b.ports["submission"], timeout=30)
        s.login(ALICE, ct.PASSWORD)
        self.assertEqual(s.sendmail(ALICE, ["bob@example.test"], msg), {})
        s.quit()
        self.assertEqual(self.env.query(
            "SELECT count(*), sum(count) FROM send_log"), [(2, 2)])


if __name__ == "__main__":
    ct.main()
