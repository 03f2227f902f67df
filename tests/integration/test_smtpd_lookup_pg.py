"""On PostgreSQL, RCPT's store lookups run off smtpd's event loop
(smtpd/rcpt.c): a lookup that waits on the database holds up only its own
session. The test holds ACCESS EXCLUSIVE locks on the tables a recipient
lookup reads, so one session's RCPT waits on the server, and checks that
another session is served meanwhile (its EHLO and NOOP answered at once)
while the first RCPT is still unanswered; that the RCPT is answered
"250 2.1.5 Ok" once the locks go, and its message is stored; and that a
client that hangs up while its lookup waits costs nothing (smtpd goes on
serving). On the SQLite backend the lookups are local reads and stay on
the loop: the test runs only in suite integration-pg."""

import select
import smtplib
import socket
import sys
import time
import unittest

import carteiro_test as ct
from smtpd_util import Env

if ct.BACKEND != "postgresql":
    sys.stdout.write("SKIP: RCPT lookups off the loop are PostgreSQL's; "
                     "runs in suite integration-pg\n")
    sys.exit(77)

ALICE = "alice@example.test"
LOOKUP_TABLES = "domains, users, aliases"


def pending(sock):
    """True when nothing has arrived on sock yet."""
    return select.select([sock], [], [], 0)[0] == []


class LookupOffLoop(unittest.TestCase):
    def setUp(self):
        self.env = Env()
        self.env.start_smtpd()
        self.port = self.env.ports["mx"]
        self.locker = ct.StoreConn(self.env.store)

    def tearDown(self):
        self.locker.close()
        self.env.stop()

    def lock_lookups(self):
        self.locker.begin()
        self.locker.execute("LOCK TABLE %s IN ACCESS EXCLUSIVE MODE" %
                            LOOKUP_TABLES)

    def test_other_sessions_served_while_a_lookup_waits(self):
        a = smtplib.SMTP("127.0.0.1", self.port, timeout=30)
        a.ehlo("a.test")
        self.assertEqual(a.mail("sender@remote.test")[0], 250)
        self.lock_lookups()
        a.putcmd("rcpt", "TO:<%s>" % ALICE)
        time.sleep(0.5)          # the lookup reaches the lock
        self.assertTrue(pending(a.sock), "RCPT answered under the lock")

        t0 = time.monotonic()
        b = smtplib.SMTP("127.0.0.1", self.port, timeout=30)
        self.assertEqual(b.ehlo("b.test")[0], 250)
        self.assertEqual(b.noop(), (250, b"2.0.0 Ok"))
        self.assertLess(time.monotonic() - t0, 1.0)
        # Still waiting: b was not served by a lookup that finished.
        self.assertTrue(pending(a.sock), "RCPT answered under the lock")

        self.locker.commit()
        self.assertEqual(a.getreply(), (250, b"2.1.5 Ok"))
        self.assertEqual(a.data(b"Subject: off the loop\r\n\r\nhi\r\n")[0],
                         250)
        a.quit()
        b.quit()
        bodies = self.env.mailbox_bodies(ALICE)
        self.assertEqual(len(bodies), 1)
        self.assertTrue(bodies[0].endswith(
            b"Subject: off the loop\r\n\r\nhi\r\n"), bodies[0])

    def test_client_gone_while_its_lookup_waits(self):
        self.lock_lookups()
        for _ in range(5):
            c = smtplib.SMTP("127.0.0.1", self.port, timeout=30)
            c.ehlo("c.test")
            c.mail("sender@remote.test")
            c.putcmd("rcpt", "TO:<%s>" % ALICE)
            c.sock.shutdown(socket.SHUT_RDWR)
            c.sock.close()
        time.sleep(0.5)
        self.locker.commit()
        s = smtplib.SMTP("127.0.0.1", self.port, timeout=30)
        s.ehlo("d.test")
        s.mail("sender@remote.test")
        self.assertEqual(s.rcpt(ALICE), (250, b"2.1.5 Ok"))
        self.assertEqual(s.rcpt("nobody@example.test"), (550, (
            b"5.1.1 <nobody@example.test>: Recipient address rejected: "
            b"User unknown")))
        s.quit()
        self.assertEqual(self.env.smtpd.proc.poll(), None)


if __name__ == "__main__":
    ct.main()
