"""pop3d: RFC 1939 UPDATE semantics and maildrop concurrency: deletions only
at QUIT, none on a dropped connection or SIGTERM, mail arriving during a
session untouched, UIDLs stable across sessions and deletions, concurrent
sessions by default (a DELE of a message another session removed is a
no-op), lock_session = yes with [IN-USE] released at session end and by
kill -9, and a store error as -ERR [SYS/TEMP], never an empty maildrop."""

import os
import poplib
import signal
import time
import unittest

import carteiro_test as ct
import pop3_fixtures as pf

ALICE = "alice@example.test"
BOB = "bob@example.test"


def uidls(p):
    return [l.split()[1] for l in p.uidl()[1]]


class Pop3Update(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = ct.Env()
        pf.start(cls.env)

    @classmethod
    def tearDownClass(cls):
        cls.env.stop()

    def fill(self, user, n, tag):
        return [u.encode() for u in pf.deliver_many(
            self.env, user, [pf.make_msg("%s %d" % (tag, i)) for i in range(n)])]

    def test_deletions_only_at_quit(self):
        u = self.fill(BOB, 4, "quit")
        p = pf.pop3(self.env, "stls", user=BOB)
        self.assertEqual(uidls(p), u)
        p.dele(1)
        p.dele(3)
        # another session still sees them: nothing applied before QUIT
        q = pf.pop3(self.env, "stls", user=BOB)
        self.assertEqual(uidls(q), u)
        # mail arriving during the session is untouched by QUIT
        late = self.fill(BOB, 1, "late")
        self.assertEqual(p.quit(), b"+OK Logging out, messages deleted.")
        q.quit()
        p = pf.pop3(self.env, "stls", user=BOB)
        self.assertEqual(uidls(p), [u[1], u[3]] + late)
        # UIDLs stable: the remaining messages keep theirs, numbers shift
        self.assertEqual(p.uidl(1), b"+OK 1 " + u[1])
        for i in range(3):
            p.dele(i + 1)
        p.quit()
        self.assertEqual(self.env.query(
            "SELECT count(*) FROM mailbox m JOIN users u ON u.id = m.user_id "
            "WHERE u.address = ?", (BOB,)), [(0,)])
        self.assertTrue([l for l in self.env.log_lines(self.env.pop3d,
                                                       "pop3.quit")
                         if "deleted=2" in l])

    def test_dropped_connection_deletes_nothing(self):
        r = pf.Raw(self.env)
        r.login(user=ALICE)
        n = int(r.cmd("STAT").split()[1])
        self.fill(ALICE, 2, "drop")
        r2 = pf.Raw(self.env)
        r2.login(user=ALICE)
        self.assertEqual(r2.cmd("DELE 1"), b"+OK Marked to be deleted.")
        self.assertEqual(r2.cmd("DELE 2"), b"+OK Marked to be deleted.")
        r2.close()  # no QUIT
        time.sleep(0.3)
        p = pf.pop3(self.env, "stls")
        self.assertEqual(p.stat()[0], n + 2)
        p.quit()
        r.close()

    def test_uidl_stable_and_concurrent_default(self):
        u = self.fill(ALICE, 3, "conc")
        p1 = pf.pop3(self.env, "stls")
        p2 = pf.pop3(self.env, "implicit")  # allowed with lock_session = no
        all1 = uidls(p1)
        self.assertEqual(uidls(p2), all1)
        i = all1.index(u[0]) + 1
        p1.dele(i)
        p2.dele(i)  # both delete the same message
        p1.quit()
        # p2's delete of a message p1 already removed is a harmless no-op
        self.assertEqual(p2.quit(), b"+OK Logging out, messages deleted.")
        p3 = pf.pop3(self.env, "stls")
        after = uidls(p3)
        self.assertNotIn(u[0], after)
        self.assertEqual(after, [x for x in all1 if x != u[0]])
        p3.quit()

    def test_retr_of_message_deleted_by_another_session(self):
        # lock_session = no: B still lists what A deleted. Its RETR/TOP get
        # a final -ERR saying so (not [SYS/TEMP]: a retry cannot succeed),
        # logged at info, not as a server error.
        u = self.fill(ALICE, 2, "gone")
        a = pf.pop3(self.env, "stls")
        b = pf.Raw(self.env)
        b.login(user=ALICE)
        i = uidls(a).index(u[0]) + 1
        a.dele(i)
        a.quit()
        self.assertEqual(b.cmd("RETR %d" % i),
                         b"-ERR Message was deleted by another session.")
        self.assertEqual(b.cmd("TOP %d 0" % i),
                         b"-ERR Message was deleted by another session.")
        self.assertTrue(b.cmd("RETR %d" % (i % 2 + 1)).startswith(b"+OK"))
        b.close()
        log = self.env.pop3d.log()
        self.assertIn("result=gone", log)
        self.assertNotIn("level=error event=pop3.cmd", log)

    def test_sigterm_deletes_nothing(self):
        env = ct.Env()
        try:
            pf.deliver_many(env, ALICE, [pf.make_msg("t%d" % i)
                                         for i in range(2)])
            pf.start(env)
            r = pf.Raw(env)
            r.login()
            self.assertEqual(r.cmd("DELE 1"), b"+OK Marked to be deleted.")
            self.assertEqual(env.pop3d.stop(), 0)
            self.assertEqual(r.line(), b"-ERR Server shutting down.")
            r.close()
            self.assertEqual(len(env.mailbox_bodies(ALICE)), 2)
        finally:
            env.stop()

    def test_store_error_is_tempfail(self):
        env = ct.Env()
        try:
            pf.deliver(env, ALICE, pf.make_msg("x"))
            pf.start(env)
            # Break the mailbox table under the daemon's feet.
            env.execute("ALTER TABLE mailbox RENAME TO mailbox_gone")
            r = pf.Raw(env)
            r.line()
            r.cmd("USER " + ALICE)
            reply = r.cmd("PASS " + ct.PASSWORD)
            self.assertTrue(reply.startswith(b"-ERR [SYS/TEMP] "), reply)
            r.close()
            env.execute("ALTER TABLE mailbox_gone RENAME TO mailbox")
        finally:
            env.stop()


class Pop3Lock(unittest.TestCase):
    def test_lock_session(self):
        env = ct.Env(conf={"pop3d": {"lock_session": "yes"}})
        try:
            pf.deliver(env, ALICE, pf.make_msg("lock"))
            pf.start(env)
            p1 = pf.pop3(env, "stls")
            with self.assertRaises(poplib.error_proto) as cm:
                pf.pop3(env, "implicit")
            self.assertEqual(cm.exception.args[0],
                             b"-ERR [IN-USE] Mailbox is locked by another "
                             b"POP3 session.")
            # another maildrop is not affected
            pf.pop3(env, "stls", user=BOB).quit()
            p1.quit()
            # released at session end
            p2 = pf.pop3(env, "stls")
            # released when the session drops
            p2.close()
            time.sleep(0.3)
            p3 = pf.pop3(env, "stls")
            self.assertEqual(p3.stat()[0], 1)
            # kill -9 with the lock held: no stale lock after restart
            env.pop3d.kill9()
            env.daemons.remove(env.pop3d)
            pf.start(env)
            p4 = pf.pop3(env, "implicit")
            self.assertEqual(p4.stat()[0], 1)
            p4.quit()
            self.assertTrue(env.log_lines(env.pop3d, "pop3.login"))
        finally:
            env.stop()


if __name__ == "__main__":
    ct.main()
