"""On PostgreSQL, pop3d reads off its event loop (pop3d/readq.c): the
login's listing of the maildrop (login.c) and RETR and TOP's message
(fetch.c). A read that waits on the database holds up only its own
session. The test holds ACCESS EXCLUSIVE locks on the tables a message is
read from, so one session's RETR (or login) waits on the server, and
checks that another logged-in session is served meanwhile (NOOP, STAT and
LIST answered at once) while the first is still unanswered; that the RETR
then brings the message byte for byte (and the login its listing); that a
message bigger than POP3_FETCH_MEM (64 KB, read on the loop) and TOP come
through whole after it; and that a client that hangs up while its read
waits costs nothing. On SQLite the reads are local and
stay on the loop: the test runs only in suite integration-pg."""

import select
import sys
import time
import unittest

import carteiro_test as ct
import pop3_fixtures as pf

if ct.BACKEND != "postgresql":
    sys.stdout.write("SKIP: RETR's reads off the loop are PostgreSQL's; "
                     "runs in suite integration-pg\n")
    sys.exit(77)

ALICE = "alice@example.test"
BOB = "bob@example.test"
BODY_TABLES = "mailbox, bodies, body_chunks"


def pending(raw):
    """True when nothing has arrived on the client's socket yet."""
    return raw.buf == b"" and select.select([raw.sock], [], [], 0)[0] == []


def big_message(size):
    """A CRLF message of about size bytes whose lines start with dots
    now and then (stuffing across the read-ahead's end)."""
    head = (b"From: sender@example.org\r\nTo: alice@example.test\r\n"
            b"Subject: big\r\n\r\n")
    lines, n, i = [], len(head), 0
    while n < size:
        line = (b"." if i % 7 == 0 else b"") + b"line %06d " % i + b"x" * 60
        lines.append(line)
        n += len(line) + 2
        i += 1
    return head + b"\r\n".join(lines) + b"\r\n"


class ReadsOffLoop(unittest.TestCase):
    def setUp(self):
        self.env = ct.Env()
        self.alice_msgs = [pf.make_msg("first"), big_message(600 * 1024)]
        pf.deliver_many(self.env, ALICE, self.alice_msgs)
        pf.deliver(self.env, BOB, pf.make_msg("for bob"))
        pf.start(self.env)
        self.locker = ct.StoreConn(self.env.store)

    def tearDown(self):
        self.locker.close()
        self.env.stop()

    def lock_bodies(self):
        self.locker.begin()
        self.locker.execute("LOCK TABLE %s IN ACCESS EXCLUSIVE MODE" %
                            BODY_TABLES)

    def test_other_sessions_served_while_a_retr_waits(self):
        a = pf.Raw(self.env, timeout=30)
        a.login(ALICE)
        b = pf.Raw(self.env, timeout=30)
        b.login(BOB)
        self.lock_bodies()
        a.send(b"RETR 1\r\n")
        time.sleep(0.5)          # the read reaches the lock
        self.assertTrue(pending(a), "RETR answered under the lock")

        t0 = time.monotonic()
        self.assertEqual(b.cmd("NOOP"), b"+OK")
        self.assertTrue(b.cmd("STAT").startswith(b"+OK 1 "))
        self.assertTrue(b.cmd("LIST").startswith(b"+OK"))
        self.assertEqual(len(b.multi()), 1)
        self.assertLess(time.monotonic() - t0, 1.0)
        self.assertTrue(pending(a), "RETR answered under the lock")

        self.locker.commit()
        self.assertEqual(a.line(), b"+OK %d octets" %
                         len(self.alice_msgs[0]))
        self.assertEqual(pf.unstuff(a.multi()), self.alice_msgs[0])
        # Pipelined behind a read: both answered, in order.
        a.send(b"RETR 2\r\nTOP 1 1\r\n")
        self.assertEqual(a.line(), b"+OK %d octets" %
                         len(self.alice_msgs[1]))
        self.assertEqual(pf.unstuff(a.multi()), self.alice_msgs[1])
        self.assertEqual(a.line(), b"+OK")
        head, body = self.alice_msgs[0].split(b"\r\n\r\n", 1)
        self.assertEqual(pf.unstuff(a.multi()), head + b"\r\n\r\n" +
                         body.split(b"\r\n", 1)[0] + b"\r\n")
        self.assertEqual(a.cmd("QUIT"), b"+OK Logging out.")
        self.assertEqual(b.cmd("QUIT"), b"+OK Logging out.")

    def test_other_sessions_served_while_a_login_waits(self):
        b = pf.Raw(self.env, timeout=30)
        b.login(BOB)
        self.lock_bodies()
        a = pf.Raw(self.env, timeout=30)
        self.assertTrue(a.line().startswith(b"+OK"))
        self.assertEqual(a.cmd("USER " + ALICE), b"+OK")
        a.send(b"PASS %s\r\nSTAT\r\n" % ct.PASSWORD.encode())
        time.sleep(0.5)          # the listing reaches the lock
        self.assertTrue(pending(a), "PASS answered under the lock")

        t0 = time.monotonic()
        self.assertEqual(b.cmd("NOOP"), b"+OK")
        self.assertTrue(b.cmd("STAT").startswith(b"+OK 1 "))
        self.assertLess(time.monotonic() - t0, 1.0)
        self.assertTrue(pending(a), "PASS answered under the lock")

        self.locker.commit()
        self.assertEqual(a.line(), b"+OK Logged in.")
        self.assertEqual(a.line(), b"+OK 2 %d" %
                         sum(len(m) for m in self.alice_msgs))
        self.assertEqual(a.cmd("QUIT"), b"+OK Logging out.")
        self.assertEqual(b.cmd("QUIT"), b"+OK Logging out.")

    def test_client_gone_while_its_read_waits(self):
        clients = []
        for _ in range(5):
            clients.append(pf.Raw(self.env, timeout=30))
            clients[-1].login(ALICE)
        self.lock_bodies()
        for c in clients:
            c.send(b"RETR 1\r\n")
            c.close()
        for _ in range(5):       # and while their listing waits
            c = pf.Raw(self.env, timeout=30)
            self.assertTrue(c.line().startswith(b"+OK"))
            c.send(b"USER %s\r\nPASS %s\r\n" % (
                ALICE.encode(), ct.PASSWORD.encode()))
            c.close()
        time.sleep(0.5)
        self.locker.commit()
        p = pf.pop3(self.env, tls="none", user=BOB)
        resp, lines, _ = p.retr(1)
        self.assertEqual(resp, b"+OK %d octets" %
                         len(pf.make_msg("for bob")))
        self.assertEqual(b"".join(l + b"\r\n" for l in lines),
                         pf.make_msg("for bob"))
        p.quit()
        self.assertEqual(self.env.pop3d.proc.poll(), None)


if __name__ == "__main__":
    ct.main()
