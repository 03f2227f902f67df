"""Slow clients (issue 11 item 7), on the real daemons with raw sockets.

A command line must be complete within the command timeout of the previous
reply however it trickles in (SMTP and POP3); DATA and BDAT must keep
[smtpd] min_data_rate (each byte earns 1/rate s on top of the DATA timeout,
Postfix's model), else 421 4.4.2 and nothing is stored; a session ends
after [smtpd] / [pop3d] max_session_time at the next safe point (421 4.4.2,
-ERR [SYS/TEMP]; POP3 finishes the response under way and commits no DELE).
Clients that keep up are not touched, even when their session or message
takes longer than the timeouts. CARTEIRO_TEST_TIMEOUT_MS shortens the
command, DATA and autologout timeouts to keep the test fast.
"""

import os
import select
import socket
import time
import unittest

import carteiro_test as ct
import pop3_fixtures as pf
import smtpd_util as su

ALICE = "alice@example.test"
HOST = "mail.example.test"
TIMEOUT_MS = 2000
RATE = 1000


def start_with_timeout(env, which):
    os.environ["CARTEIRO_TEST_TIMEOUT_MS"] = str(TIMEOUT_MS)
    try:
        if which == "smtpd":
            return env.start_smtpd()
        return pf.start(env)
    finally:
        del os.environ["CARTEIRO_TEST_TIMEOUT_MS"]


def trickle(sock, chunks, interval, limit=10.0):
    """Send chunks interval seconds apart until the server answers or hangs
    up (or limit seconds pass, or the chunks run out). Returns (what the
    server sent up to its EOF, seconds from the first chunk to its first
    byte or None, whether it closed)."""
    t0 = time.time()
    got, first, eof = b"", None, False
    for chunk in chunks:
        if time.time() - t0 > limit:
            break
        try:
            sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            break
        r, _, _ = select.select([sock], [], [], interval)
        if r:
            break
    # Whatever came (a reply, then EOF): read until EOF or 5 s of silence.
    sock.settimeout(5)
    while True:
        try:
            data = sock.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            eof = True
            break
        if first is None and data:
            first = time.time() - t0
        if not data:
            eof = True
            break
        got += data
    return got, first, eof


def store_state(env):
    """Every row a message could leave behind, and the files beside the
    database (a spool file would be one)."""
    return ([env.query("SELECT COUNT(*) FROM %s" % t)[0][0]
             for t in ("mailbox", "bodies", "body_chunks", "queue",
                       "queue_rcpt")], sorted(os.listdir(env.dir)))


def chat_until_refused(sock, cmd, ok, interval=0.4, limit=15.0):
    """Send cmd, read its one-line reply, interval s apart, until a reply
    is not ok. Returns (the ok replies, the last line, whether the server
    then closed)."""
    f = sock.makefile("rb")
    oks, t0 = [], time.time()
    while time.time() - t0 < limit:
        sock.sendall(cmd)
        line = f.readline()
        if line != ok:
            break
        oks.append(line)
        time.sleep(interval)
    sock.settimeout(5)
    try:
        eof = f.read() == b""
    except (socket.timeout, ConnectionResetError):
        eof = False
    return oks, line, eof


class SmtpSlow(unittest.TestCase):
    """smtpd with 2 s command/DATA timeouts and min_data_rate = 1000."""

    @classmethod
    def setUpClass(cls):
        cls.env = su.Env(conf={"smtpd": {"min_data_rate": str(RATE)}})
        start_with_timeout(cls.env, "smtpd")

    @classmethod
    def tearDownClass(cls):
        cls.env.stop()

    def open_tx(self):
        r = su.Raw(self.env.ports["mx"])
        self.assertEqual(r.greeting[0], 220)
        self.assertEqual(r.code("EHLO client.example.org"), 250)
        self.assertEqual(r.code("MAIL FROM:<sender@example.org>"), 250)
        self.assertEqual(r.code("RCPT TO:<%s>" % ALICE), 250)
        return r

    def test_trickled_command_line_is_cut(self):
        r = su.Raw(self.env.ports["mx"])
        self.assertEqual(r.greeting[0], 220)
        # One byte every 0.25 s: each is progress for an idle timer, and
        # the line is complete after 9 s (an EHLO reply on the old code).
        line = b"EHLO " + b"x" * 30 + b"\r\n"
        got, first, eof = trickle(r.sock, [bytes([c]) for c in line], 0.25)
        self.assertEqual(got, b"421 4.4.2 %s Error: timeout exceeded\r\n"
                         % HOST.encode())
        self.assertTrue(eof)
        # 2 s from the greeting, not from the last byte.
        self.assertGreater(first, 1.5)
        self.assertLess(first, 8.0)
        self.assertTrue(su.wait_for(lambda: any(
            "reason=timeout" in l for l in
            self.env.log_lines(self.env.smtpd, "smtp.disconnect"))))

    def test_trickled_line_counted_from_previous_reply(self):
        r = su.Raw(self.env.ports["mx"])
        self.assertEqual(r.code("EHLO client.example.org"), 250)
        time.sleep(1.2)
        self.assertEqual(r.code("NOOP"), 250)
        got, first, eof = trickle(r.sock, [bytes([c]) for c in
                                           b"NOOP" + b" " * 30 + b"\r\n"],
                                  0.25)
        self.assertEqual(got, b"421 4.4.2 %s Error: timeout exceeded\r\n"
                         % HOST.encode())
        self.assertTrue(eof)
        self.assertGreater(first, 1.5)
        self.assertLess(first, 8.0)

    def test_slow_data_is_cut_and_nothing_stored(self):
        before = store_state(self.env)
        r = self.open_tx()
        self.assertEqual(r.code("DATA"), 354)
        # 200 bytes/s, a fifth of the minimum: the 2 s of credit last
        # 2 / (1 - 0.2) = 2.5 s.
        body = b"Subject: slow\r\n\r\n" + b"y" * 78 + b"\r\n"
        # (All of it in 8 s, a 250 on the old code.)
        chunks = [body] + [b"z" * 38 + b"\r\n"] * 40 + [b".\r\n"]
        got, first, eof = trickle(r.sock, chunks, 0.2, limit=15)
        self.assertEqual(got, b"421 4.4.2 %s Error: timeout exceeded, data "
                         b"rate below %d bytes/s\r\n" % (HOST.encode(), RATE))
        self.assertTrue(eof)
        self.assertGreater(first, 2.0)
        self.assertLess(first, 10.0)
        self.assertTrue(su.wait_for(lambda: any(
            "reason=data_rate" in l for l in
            self.env.log_lines(self.env.smtpd, "smtp.disconnect"))))
        sid = [l for l in self.env.log_lines(self.env.smtpd, "smtp.disconnect")
               if "reason=data_rate" in l][-1].split("sid=")[1].split()[0]
        self.assertFalse([l for l in self.env.log_lines(
            self.env.smtpd, "smtp.data") if "sid=%s " % sid in l])
        self.assertEqual(store_state(self.env), before)

    def test_slow_bdat_is_cut(self):
        before = store_state(self.env)
        r = self.open_tx()
        r.send("BDAT 1600 LAST\r\n")
        got, first, eof = trickle(r.sock, [b"w" * 40] * 40, 0.2, limit=15)
        self.assertEqual(got, b"421 4.4.2 %s Error: timeout exceeded, data "
                         b"rate below %d bytes/s\r\n" % (HOST.encode(), RATE))
        self.assertTrue(eof)
        self.assertGreater(first, 2.0)
        self.assertEqual(store_state(self.env), before)

    def test_data_above_rate_outlasts_the_timeout(self):
        # 3000 bytes/s for 4 s: twice the DATA timeout, never idle and
        # above the rate, so the deadline keeps ahead of it.
        n = len(self.env.mailbox_bodies(ALICE))
        r = self.open_tx()
        self.assertEqual(r.code("DATA"), 354)
        body = b"Subject: steady\r\n\r\n" + b"".join(
            b"%05d " % i + b"s" * 292 + b"\r\n" for i in range(40))
        t0 = time.time()
        for i in range(0, len(body), 300):
            r.send(body[i:i + 300])
            time.sleep(0.1)
        self.assertGreater(time.time() - t0, 3.0)
        self.assertEqual(r.cmd(".")[0], 250)
        self.assertEqual(r.code("QUIT"), 221)
        got = self.env.mailbox_bodies(ALICE)
        self.assertEqual(len(got), n + 1)
        self.assertEqual(ct.strip_added_headers(got[-1]), body)

    def test_fast_client_unaffected(self):
        # Many commands over a session longer than the command timeout,
        # each line in time; then a 300 KB message at full speed.
        n = len(self.env.mailbox_bodies(ALICE))
        r = su.Raw(self.env.ports["mx"])
        self.assertEqual(r.code("EHLO client.example.org"), 250)
        for _ in range(3):
            time.sleep(1.0)
            self.assertEqual(r.code("NOOP"), 250)
        body = b"Subject: fast\r\n\r\n" + b"f" * 998 + b"\r\n"
        body += (b"g" * 98 + b"\r\n") * 3000
        r.send(b"MAIL FROM:<sender@example.org>\r\nRCPT TO:<%s>\r\nDATA\r\n"
               % ALICE.encode())
        self.assertEqual([r.reply()[0] for _ in range(3)], [250, 250, 354])
        r.send(body + b".\r\n")
        self.assertEqual(r.reply()[0], 250)
        self.assertEqual(r.code("QUIT"), 221)
        got = self.env.mailbox_bodies(ALICE)
        self.assertEqual(len(got), n + 1)
        self.assertEqual(ct.strip_added_headers(got[-1]), body)


class SmtpAsyncStep(unittest.TestCase):
    """The previous line's deadline does not run on into an async step:
    an AUTH check that waits out a 4 s penalty (3 s timeouts) gets its
    reply."""

    @classmethod
    def setUpClass(cls):
        cls.env = su.Env()
        os.environ["CARTEIRO_TEST_TIMEOUT_MS"] = "3000"
        os.environ["CARTEIRO_TEST_AUTH_PENALTY_MS"] = "4000"
        try:
            cls.env.start_smtpd()
        finally:
            del os.environ["CARTEIRO_TEST_TIMEOUT_MS"]
            del os.environ["CARTEIRO_TEST_AUTH_PENALTY_MS"]

    @classmethod
    def tearDownClass(cls):
        cls.env.stop()

    def test_auth_check_outlasts_line_deadline(self):
        r = su.Raw(self.env.ports["submission"])
        self.assertEqual(r.code("EHLO client.example.org"), 250)
        bad = "AUTH PLAIN " + su.plain(ALICE, "wrong")
        no = "535 5.7.8 Authentication credentials invalid"
        self.assertEqual(r.text(bad), no)
        t1 = time.time()
        # Sent 2.5 s after that reply (in time), checked from 4 s after
        # it: the line's deadline (3 s) passes while the check waits.
        time.sleep(2.5)
        self.assertEqual(r.text(bad), no)
        self.assertGreater(time.time() - t1, 3.9)


class SmtpSessionTime(unittest.TestCase):
    """smtpd with max_session_time = 3s (default timeouts and rate)."""

    @classmethod
    def setUpClass(cls):
        cls.env = su.Env(conf={"smtpd": {"max_session_time": "3s"}})
        cls.env.start_smtpd()

    @classmethod
    def tearDownClass(cls):
        cls.env.stop()

    def test_busy_session_ends(self):
        r = su.Raw(self.env.ports["mx"])
        t0 = time.time()
        self.assertEqual(r.code("EHLO client.example.org"), 250)
        oks, last, eof = chat_until_refused(r.sock, b"NOOP\r\n",
                                            b"250 2.0.0 Ok\r\n")
        self.assertEqual(last, b"421 4.4.2 %s Error: session time limit "
                         b"exceeded\r\n" % HOST.encode())
        self.assertGreater(len(oks), 3)
        self.assertTrue(eof)
        self.assertGreater(time.time() - t0, 2.5)
        self.assertLess(time.time() - t0, 15)
        self.assertTrue(su.wait_for(lambda: any(
            "reason=max_session_time" in l for l in
            self.env.log_lines(self.env.smtpd, "smtp.disconnect"))))

    def test_session_ends_in_data_without_storing(self):
        before = store_state(self.env)
        r = su.Raw(self.env.ports["mx"])
        self.assertEqual(r.code("EHLO client.example.org"), 250)
        self.assertEqual(r.code("MAIL FROM:<sender@example.org>"), 250)
        self.assertEqual(r.code("RCPT TO:<%s>" % ALICE), 250)
        self.assertEqual(r.code("DATA"), 354)
        # 50 KB/s, well above min_data_rate: only the session limit ends it.
        chunks = ([b"Subject: long\r\n\r\n"] +
                  [(b"d" * 998 + b"\r\n") * 10] * 200)
        got, first, eof = trickle(r.sock, chunks, 0.2, limit=20)
        self.assertEqual(got, b"421 4.4.2 %s Error: session time limit "
                         b"exceeded\r\n" % HOST.encode())
        self.assertTrue(eof)
        self.assertEqual(store_state(self.env), before)

    def test_commit_under_way_is_answered_first(self):
        # The store is locked while the message commits: the limit passes
        # during the commit, which still gets its 250, then the 421.
        n = len(self.env.mailbox_bodies(ALICE))
        r = su.Raw(self.env.ports["mx"])
        t0 = time.time()
        r.send(b"EHLO client.example.org\r\nMAIL FROM:<sender@example.org>"
               b"\r\nRCPT TO:<%s>\r\nDATA\r\n" % ALICE.encode())
        self.assertEqual([r.reply()[0] for _ in range(4)],
                         [250, 250, 250, 354])
        body = b"Subject: committed late\r\n\r\nbody\r\n"
        con = self.env.connect()
        con.begin(lock=("bodies", "mailbox", "users"))
        try:
            r.send(body + b".\r\n")
            time.sleep(max(0.0, 4.0 - (time.time() - t0)))
            r.sock.settimeout(0.2)
            try:
                early = r.sock.recv(4096)
            except socket.timeout:
                early = b""
            self.assertEqual(early, b"")
        finally:
            con.commit()
            con.close()
        code, texts = r.reply()
        self.assertEqual(code, 250)
        self.assertTrue(texts[0].startswith("2.0.0 Ok: queued as "), texts)
        self.assertEqual(r.reply(), (421, ["4.4.2 %s Error: session time "
                                           "limit exceeded" % HOST]))
        self.assertTrue(r.at_eof())
        got = self.env.mailbox_bodies(ALICE)
        self.assertEqual(len(got), n + 1)
        self.assertEqual(ct.strip_added_headers(got[-1]), body)

    def test_short_session_unaffected(self):
        r = su.Raw(self.env.ports["mx"])
        self.assertEqual(r.code("EHLO client.example.org"), 250)
        self.assertEqual(r.code("QUIT"), 221)


class Pop3Slow(unittest.TestCase):
    """pop3d with a 2 s autologout (so 2 s per command line)."""

    @classmethod
    def setUpClass(cls):
        cls.env = ct.Env()
        cls.msg = pf.make_msg("one", 5)
        pf.deliver(cls.env, ALICE, cls.msg)
        start_with_timeout(cls.env, "pop3d")

    @classmethod
    def tearDownClass(cls):
        cls.env.stop()

    def test_trickled_command_line_is_cut(self):
        r = pf.Raw(self.env)
        self.assertEqual(r.line(), b"+OK carteiro ready.")
        # Complete after 9 s: a +OK on the old code.
        got, first, eof = trickle(r.sock, [bytes([c]) for c in
                                           b"USER " + b"u" * 30 + b"\r\n"],
                                  0.25)
        self.assertEqual(got, b"-ERR Command line not completed in time.\r\n")
        self.assertTrue(eof)
        self.assertGreater(first, 1.5)
        self.assertLess(first, 8.0)

    def test_trickled_line_after_login(self):
        r = pf.Raw(self.env)
        r.line()
        self.assertEqual(r.cmd("USER " + ALICE), b"+OK")
        self.assertEqual(r.cmd("PASS " + ct.PASSWORD), b"+OK Logged in.")
        time.sleep(1.2)
        self.assertTrue(r.cmd("STAT").startswith(b"+OK 1 "))
        got, first, eof = trickle(r.sock, [bytes([c]) for c in
                                           b"STAT\r\n"], 0.7)
        self.assertEqual(got, b"-ERR Command line not completed in time.\r\n")
        self.assertTrue(eof)
        self.assertGreater(first, 1.5)

    def test_client_in_time_unaffected(self):
        r = pf.Raw(self.env)
        r.line()
        self.assertEqual(r.cmd("USER " + ALICE), b"+OK")
        self.assertEqual(r.cmd("PASS " + ct.PASSWORD), b"+OK Logged in.")
        for _ in range(3):
            time.sleep(1.0)
            self.assertEqual(r.cmd("NOOP"), b"+OK")
        self.assertEqual(r.cmd("RETR 1"), b"+OK %d octets" % len(self.msg))
        self.assertEqual(pf.unstuff(r.multi()), self.msg)
        self.assertEqual(r.cmd("QUIT"), b"+OK Logging out.")


class Pop3SessionTime(unittest.TestCase):
    """pop3d with max_session_time = 3s (the default autologout)."""

    @classmethod
    def setUpClass(cls):
        cls.env = ct.Env(conf={"pop3d": {"max_session_time": "3s"}})
        cls.small = pf.make_msg("small", 2)
        # More than the socket buffers on both sides hold.
        big_body = b"".join(b"%07d " % i + b"b" * 90 + b"\r\n"
                            for i in range(100000))
        cls.big = pf.make_msg("big", 0) + big_body
        pf.deliver_many(cls.env, ALICE, [cls.small, cls.big])
        pf.start(cls.env)

    @classmethod
    def tearDownClass(cls):
        cls.env.stop()

    def login(self, rcvbuf=None):
        r = pf.Raw(self.env)
        if rcvbuf is not None:
            r.sock.close()
            r.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            r.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            r.sock.settimeout(20)
            r.sock.connect(("127.0.0.1", self.env.ports["pop3"]))
        r.line()
        self.assertEqual(r.cmd("USER " + ALICE), b"+OK")
        self.assertEqual(r.cmd("PASS " + ct.PASSWORD), b"+OK Logged in.")
        return r

    def test_busy_session_ends_and_commits_nothing(self):
        r = self.login()
        t0 = time.time()
        self.assertEqual(r.cmd("DELE 1"), b"+OK Marked to be deleted.")
        oks, last, eof = chat_until_refused(r.sock, b"NOOP\r\n",
                                            b"+OK\r\n")
        self.assertEqual(last, b"-ERR [SYS/TEMP] Session time limit "
                         b"exceeded, reconnect.\r\n")
        self.assertGreater(len(oks), 3)
        self.assertTrue(eof)
        self.assertGreater(time.time() - t0, 2.0)
        # No QUIT: the DELE is not committed.
        self.assertEqual(self.env.query(
            "SELECT COUNT(*) FROM mailbox")[0][0], 2)
        self.assertTrue(su.wait_for(lambda: any(
            "reason=max_session_time" in l for l in
            self.env.log_lines(self.env.pop3d, "pop3.disconnect"))))

    def test_response_under_way_is_finished_first(self):
        # RETR of 10 MB read at 256 KB/s: the limit passes in the middle;
        # the client still gets the whole message, then the -ERR.
        r = self.login(rcvbuf=32768)
        t0 = time.time()
        r.send(b"RETR 2\r\n")
        r.sock.setblocking(True)
        data = b""
        while time.time() - t0 < 4.0:
            r.sock.settimeout(5)
            chunk = r.sock.recv(65536)
            self.assertTrue(chunk)
            data += chunk
            time.sleep(0.25)
        self.assertFalse(data.endswith(b"\r\n.\r\n"), "response too short")
        r.sock.settimeout(10)
        while True:
            chunk = r.sock.recv(1 << 20)
            if not chunk:
                break
            data += chunk
        head, rest = data.split(b"\r\n", 1)
        self.assertEqual(head, b"+OK %d octets" % len(self.big))
        tail = b"-ERR [SYS/TEMP] Session time limit exceeded, reconnect.\r\n"
        self.assertTrue(rest.endswith(b"\r\n.\r\n" + tail), rest[-200:])
        body = rest[:-len(tail)]
        lines = body.split(b"\r\n")[:-2]
        self.assertEqual(pf.unstuff(lines), self.big)


if __name__ == "__main__":
    ct.main()
