"""kill -9 of one of two carteiro-smtpd under SMTP load (issue 18 items 3
and 5): every message that either node acknowledged with 250 is in the
store (read back over POP3, by its unique subject), and the surviving
node keeps accepting while and after the other dies. Both backends (on
SQLite both nodes open one file)."""

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
THREADS = 3                     # SMTP clients per node


class Load(mn.LoadThreads):
    """THREADS clients sending to one MX port until stopped; acked holds
    (subject, time of the 250) of every accepted message."""

    def __init__(self, name, port):
        self.name, self.port = name, port
        self.acked = []
        self.errors = 0
        super().__init__(THREADS)

    def run(self, i):
        seq = 0
        while not self.stop.is_set():
            try:
                s = smtplib.SMTP("127.0.0.1", self.port, timeout=20)
            except OSError:
                with self.lock:
                    self.errors += 1
                time.sleep(0.05)
                continue
            try:
                while not self.stop.is_set():
                    seq += 1
                    subj = "%s-%d-%d" % (self.name, i, seq)
                    msg = ("From: carol@remote.test\r\nTo: %s\r\n"
                           "Subject: %s\r\n\r\n%s\r\n" % (
                               ALICE, subj, "x" * 200)).encode()
                    if s.sendmail("carol@remote.test", [ALICE], msg) == {}:
                        with self.lock:
                            self.acked.append((subj, time.time()))
            except (OSError, smtplib.SMTPException):
                # The node died in the middle: that message was never
                # acknowledged, whatever became of it.
                with self.lock:
                    self.errors += 1
            finally:
                try:
                    s.close()
                except OSError:
                    pass


def stored_subjects(port):
    """Subjects of every message in alice's maildrop, via POP3 TOP."""
    p = poplib.POP3("127.0.0.1", port, timeout=60)
    p.user(ALICE)
    p.pass_(ct.PASSWORD)
    out = []
    for line in p.list()[1]:
        num = int(line.split()[0])
        for h in p.top(num, 0)[1]:
            if h.startswith(b"Subject: "):
                out.append(h[9:].decode())
                break
    p.quit()
    return out


class KillOneNode(unittest.TestCase):
    def test_kill9_under_load(self):
        env = ct.Env()
        try:
            b = mn.Node(env, "b")
            env.start_smtpd()
            b.start_smtpd()
            la = Load("a", env.ports["mx"]).start()
            lb = Load("b", b.ports["mx"]).start()
            # Both nodes take mail before the kill.
            deadline = time.time() + 60
            while (len(la.acked) < 30 or len(lb.acked) < 30) and \
                    time.time() < deadline:
                time.sleep(0.05)
            self.assertGreaterEqual(len(la.acked), 30, "node a too slow")
            env.smtpd.kill9()
            killed = time.time()
            n_b = len(lb.acked)
            # b goes on accepting.
            deadline = time.time() + 60
            while len(lb.acked) < n_b + 50 and time.time() < deadline:
                time.sleep(0.05)
            la.join()
            lb.join()
            self.assertGreaterEqual(len([1 for _, t in lb.acked
                                         if t > killed]), 50)
            s = smtplib.SMTP("127.0.0.1", b.ports["mx"], timeout=30)
            self.assertEqual(s.sendmail(
                "carol@remote.test", [ALICE],
                b"Subject: after\r\n\r\nafter the kill\r\n"), {})
            s.quit()
            b.start_pop3d()
            stored = stored_subjects(b.ports["pop3"])
            acked = [subj for subj, _ in la.acked + lb.acked] + ["after"]
            self.assertEqual(sorted(set(acked) - set(stored)), [],
                             "acknowledged with 250 but not in the store")
            # Nothing stored twice.
            self.assertEqual(len(stored), len(set(stored)))
            sys.stderr.write("acked a=%d b=%d (b after the kill %d), "
                             "stored %d, client errors a=%d b=%d\n" % (
                                 len(la.acked), len(lb.acked),
                                 len(lb.acked) - n_b, len(stored),
                                 la.errors, lb.errors))
        finally:
            env.stop()


if __name__ == "__main__":
    ct.main()
