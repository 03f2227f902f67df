"""RFC 2449 retention in carteiro-pop3d (issue 14 item 4): [pop3d] expire
(never | DAYS) advertised as EXPIRE, counted from the first whole RETR and
applied by a sweep; EXPIRE 0 deletes retrieved mail at QUIT without DELE;
a per-user override (carteiroctl user set ADDRESS expire=DAYS); a message
never retrieved is never expired; [pop3d] login_delay advertised and
enforced as LOGIN-DELAY."""

import os
import poplib
import time
import unittest

import carteiro_test as ct
import pop3_fixtures as pf

ALICE = "alice@example.test"
BOB = "bob@example.test"
DAY = 86400

os.environ["CARTEIRO_TEST_EXPIRE_SWEEP_MS"] = "200"


class ExpireTest(unittest.TestCase):
    conf = {}

    def setUp(self):
        self.env = ct.Env(conf={"pop3d": dict(self.conf)})

    def tearDown(self):
        self.env.stop()

    def fill(self, user=ALICE, n=3):
        return pf.deliver_many(self.env, user,
                               [pf.make_msg("%s %d" % (user[:3], i))
                                for i in range(n)])

    def uidls(self, user=ALICE):
        return [r[0] for r in self.env.query(
            "SELECT m.uidl FROM mailbox m JOIN users u ON u.id = m.user_id"
            " WHERE u.address = ? ORDER BY m.id", (user,))]

    def retrieved(self, user=ALICE):
        return [r[0] for r in self.env.query(
            "SELECT m.first_retrieved FROM mailbox m JOIN users u"
            " ON u.id = m.user_id WHERE u.address = ? ORDER BY m.id",
            (user,))]

    def age(self, uidl, seconds):
        """Plant a first retrieval `seconds` ago."""
        self.env.execute("UPDATE mailbox SET first_retrieved = ? "
                         "WHERE uidl = ?", (int(time.time()) - seconds, uidl))

    def wait_for(self, cond, what, timeout=20):
        deadline = time.time() + timeout
        while not cond():
            if time.time() > deadline:
                self.fail("timed out waiting for " + what)
            time.sleep(0.1)

    def capa(self, user=None):
        p = poplib.POP3("127.0.0.1", self.env.ports["pop3"], timeout=10)
        before = p.capa()
        after = None
        if user is not None:
            p.user(user)
            p.pass_(ct.PASSWORD)
            after = p.capa()
        p.quit()
        return before, after


class NeverTest(ExpireTest):
    def test_default_never_records_first_retrieval(self):
        env = self.env
        u = self.fill()
        pf.start(env)
        before, after = self.capa(ALICE)
        self.assertEqual(before["EXPIRE"], ["NEVER", "USER"])
        self.assertEqual(after["EXPIRE"], ["NEVER"])
        self.assertNotIn("LOGIN-DELAY", before)
        t0 = int(time.time())
        p = pf.pop3(env, tls="none")
        p.retr(1)
        p.top(2, 0)
        self.assertEqual(p.quit(), b"+OK Logging out.")
        got = self.retrieved()
        self.assertIsNotNone(got[0])
        self.assertTrue(t0 <= got[0] <= int(time.time()) + 1, got)
        self.assertEqual(got[1:], [None, None])  # TOP is not a retrieval
        # Retrieved a year ago: kept, expire is never.
        self.age(u[0], 365 * DAY)
        time.sleep(1)
        self.assertEqual(self.uidls(), u)
        # A dropped connection records nothing.
        p = pf.pop3(env, tls="none")
        p.retr(3)
        p.sock.close()
        time.sleep(0.5)
        self.assertIsNone(self.retrieved()[2])


class DaysTest(ExpireTest):
    conf = {"expire": "2"}

    def test_sweep_expires_only_retrieved_mail(self):
        env = self.env
        u = self.fill(n=4)
        pf.start(env)
        before, after = self.capa(ALICE)
        self.assertEqual(before["EXPIRE"], ["2", "USER"])
        self.assertEqual(after["EXPIRE"], ["2"])
        p = pf.pop3(env, tls="none")
        p.retr(1)
        p.retr(2)
        p.top(3, 5)
        p.quit()
        # Message 4 arrived 1000 days ago but was never retrieved.
        env.execute("UPDATE mailbox SET arrived = arrived - ? WHERE uidl = ?",
                    (1000 * DAY, u[3]))
        self.age(u[0], 2 * DAY + 5)     # due
        self.age(u[1], 2 * DAY - 3600)  # not yet
        self.wait_for(lambda: self.uidls() == u[1:], "the sweep")
        time.sleep(1)
        self.assertEqual(self.uidls(), u[1:])
        got = self.retrieved()
        self.assertIsNotNone(got[0])      # retrieved, not due yet
        self.assertEqual(got[1:], [None, None])
        lines = env.log_lines(env.pop3d, "pop3.expire")
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("user=%s uidl=%s " % (ALICE, u[0]), lines[0])
        self.assertIn(" reason=expire", lines[0])
        # The body is gone too, and the store is consistent.
        r = env.ctl("verify")
        self.assertEqual(r.returncode, 0, r.stdout)

    def test_sweep_leaves_a_logged_in_maildrop_alone(self):
        env = self.env
        u = self.fill(n=2)
        pf.start(env)
        p = pf.pop3(env, tls="none")
        p.retr(1)
        p.quit()
        p = pf.pop3(env, tls="none")    # holds a snapshot
        self.age(u[0], 3 * DAY)
        time.sleep(1.5)
        self.assertEqual(self.uidls(), u)
        self.assertEqual(len(p.retr(1)[1]) > 0, True)
        p.quit()
        self.wait_for(lambda: self.uidls() == u[1:], "the sweep")

    def test_many_due_messages_in_batches(self):
        env = self.env
        u = pf.deliver_many(env, ALICE, [pf.make_msg("b%d" % i)
                                         for i in range(150)])
        env.execute("UPDATE mailbox SET first_retrieved = ?",
                    (int(time.time()) - 3 * DAY,))
        pf.start(env)
        self.wait_for(lambda: self.uidls() == [], "the sweep", timeout=30)
        self.assertEqual(len(env.log_lines(env.pop3d, "pop3.expire")), 150)
        self.wait_for(lambda: env.query("SELECT count(*) FROM bodies")[0][0]
                      == 0, "the bodies' collection")
        self.assertEqual(len(u), 150)


class ZeroTest(ExpireTest):
    conf = {"expire": "0"}

    def test_expire_0_deletes_retrieved_mail_at_quit(self):
        env = self.env
        u = self.fill()
        pf.start(env)
        before, after = self.capa(ALICE)
        self.assertEqual(before["EXPIRE"], ["0", "USER"])
        self.assertEqual(after["EXPIRE"], ["0"])
        # Without QUIT nothing happens.
        p = pf.pop3(env, tls="none")
        p.retr(1)
        p.sock.close()
        time.sleep(0.5)
        self.assertEqual(self.uidls(), u)
        p = pf.pop3(env, tls="none")
        p.retr(1)
        p.top(2, 1)
        self.assertEqual(p.quit(), b"+OK Logging out, messages deleted.")
        self.assertEqual(self.uidls(), u[1:])
        lines = env.log_lines(env.pop3d, "pop3.expire")
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("user=%s uidl=%s reason=expire_0" % (ALICE, u[0]),
                      lines[0])
        quit = env.log_lines(env.pop3d, "pop3.quit")
        self.assertIn("deleted=0", quit[-1])
        # DELE of one, RETR of another: both go.
        p = pf.pop3(env, tls="none")
        p.dele(1)
        p.retr(2)
        self.assertEqual(p.quit(), b"+OK Logging out, messages deleted.")
        self.assertEqual(self.uidls(), [])


class OverrideTest(ExpireTest):
    def test_user_set_expire(self):
        env = self.env
        ua = self.fill(ALICE, 2)
        ub = self.fill(BOB, 2)
        env.ctl_ok("user", "set", ALICE, "expire=0")
        env.ctl_ok("user", "set", BOB, "expire=1")
        self.assertEqual(env.query(
            "SELECT address, expire FROM users ORDER BY address"),
            [(ALICE, 0), (BOB, DAY)])
        self.assertIn("expire 0s", env.ctl_ok("user", "show", ALICE)
                      .splitlines())
        pf.start(env)
        self.assertEqual(self.capa(ALICE)[1]["EXPIRE"], ["0"])
        self.assertEqual(self.capa(BOB)[1]["EXPIRE"], ["1"])
        p = pf.pop3(env, tls="none")
        p.retr(2)
        p.quit()
        self.assertEqual(self.uidls(ALICE), ua[:1])
        p = pf.pop3(env, tls="none", user=BOB)
        p.retr(1)
        p.retr(2)
        p.quit()
        self.age(ub[0], DAY + 10)
        self.wait_for(lambda: self.uidls(BOB) == ub[1:], "the sweep")
        env.ctl_ok("user", "set", ALICE, "expire=default")
        self.assertEqual(self.capa(ALICE)[1]["EXPIRE"], ["NEVER"])
        env.ctl_ok("user", "set", ALICE, "expire=never")
        self.assertEqual(env.query("SELECT expire FROM users WHERE "
                                   "address = ?", (ALICE,)), [(-1,)])
        r = env.ctl("user", "set", ALICE, "expire=soon")
        self.assertEqual((r.returncode, r.stdout, r.stderr), (
            1, "", "carteiroctl: user set: invalid expire 'soon' (never, "
            "default, a number of days or a duration)\n"))
        r = env.ctl("user", "set", ALICE, "colour=red")
        self.assertEqual(r.stderr, "carteiroctl: user set: unknown setting "
                         "'colour=red' (expected expire=DAYS|never|default)\n")
        r = env.ctl("user", "set", "nobody@example.test", "expire=1")
        self.assertEqual(r.stderr, "carteiroctl: no such user "
                         "nobody@example.test\n")


class LoginDelayTest(ExpireTest):
    conf = {"login_delay": "3"}

    def test_login_delay_enforced(self):
        env = self.env
        pf.start(env)
        before, after = self.capa(ALICE)     # the first login
        t_first = time.time()
        self.assertEqual(before["LOGIN-DELAY"], ["3"])
        self.assertEqual(after["LOGIN-DELAY"], ["3"])
        p = poplib.POP3("127.0.0.1", env.ports["pop3"], timeout=10)
        p.user(ALICE)
        with self.assertRaises(poplib.error_proto) as cm:
            p.pass_(ct.PASSWORD)
        self.assertEqual(cm.exception.args[0], b"-ERR [LOGIN-DELAY] Minimum "
                         b"time between logins is 3 seconds.")
        # Still in AUTHORIZATION; another user is not affected.
        p.user(BOB)
        p.pass_(ct.PASSWORD)
        p.quit()
        lines = env.log_lines(env.pop3d, "pop3.login")
        self.assertTrue(any("user=%s" % ALICE in l and
                            "result=login-delay" in l for l in lines), lines)
        # After the delay the login works again.
        while time.time() < t_first + 3.2:
            time.sleep(0.1)
        p = pf.pop3(env, tls="none")
        p.quit()


if __name__ == "__main__":
    ct.main()
