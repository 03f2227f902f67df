"""carteiroctl verify (issue 14 item 1; issue 18 item 4: on both
backends): a consistent store says "ok: ..." and exits 0; planted
inconsistencies are named exactly, one line each, and it exits 1."""

import unittest

import carteiro_test as ct
import pop3_fixtures as pf


class VerifyTest(unittest.TestCase):
    def setUp(self):
        self.env = ct.Env()

    def tearDown(self):
        self.env.stop()

    def test_verify_lists_planted_problems(self):
        env = self.env
        pf.deliver_many(env, "alice@example.test",
                        [pf.make_msg("one"), pf.make_msg("two", 5000)])
        r = env.ctl("verify")
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        self.assertEqual(r.stdout, "ok: schema %d, 2 users, 2 messages, 2 "
                         "bodies, 0 queued\n" % env.schema_version())
        (b1, u1), (b2, _) = env.query(
            "SELECT body_id, uidl FROM mailbox ORDER BY id")
        con = env.connect()
        con.begin()
        con.execute("UPDATE bodies SET refs = refs + 1 WHERE id = ?", (b1,))
        con.execute("INSERT INTO body_chunks(body_id, seq, data) "
                    "VALUES (9999, 0, ?)", (b"\x00",))
        con.execute("DELETE FROM body_chunks WHERE body_id = ? AND seq = 1",
                    (b2,))
        con.execute("UPDATE users SET used = used + 5 "
                    "WHERE address = 'alice@example.test'")
        con.commit()
        con.close()
        size2 = env.query("SELECT size FROM bodies WHERE id = ?", (b2,))[0][0]
        r = env.ctl("verify")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr, "carteiroctl: verify: 4 problems found\n")
        used = env.query("SELECT used FROM users WHERE "
                         "address = 'alice@example.test'")[0][0]
        self.assertEqual(r.stdout.splitlines(), [
            "body %d: refs is 2, but 1 mailbox and 0 queue rows use it" % b1,
            "orphan chunks: 1 chunk rows of body 9999, which does not exist",
            "body %d: %d bytes, but its 1 chunks hold 65536 bytes (last seq "
            "0)" % (b2, size2),
            "user alice@example.test: used is %d bytes, but the mailbox "
            "holds %d" % (used, used - 5),
        ])


if __name__ == "__main__":
    ct.main()
