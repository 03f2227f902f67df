"""Milter client (issue 13): a python3-milter test milter (testmilter.py)
performs each reply and each end-of-body modification on demand, over MX
and submission; the stored message is checked byte for byte. The milter
sees our Received and Authentication-Results fields, Postfix's macros at
each stage and the body in chunks of at most 65535 bytes. Milters that are
down, hang, or close mid-message get milter_default_action, nothing is
stored, and the daemon keeps serving."""

import glob
import json
import os
import smtplib
import socket
import struct
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import carteiro_test as ct  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def wait_port(port, proc, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("milter exited: %s" % proc.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("nothing listens on %d" % port)


def message(subject, extra=b"", body=b"Hello.\r\nBye.\r\n"):
    return (b"From: carol@sender.test\r\nTo: alice@example.test\r\n"
            b"Subject: " + subject.encode() + b"\r\n"
            b"X-Change-Me: old value\r\nX-Remove-Me: gone\r\n" + extra +
            b"\r\n" + body)


class Base(unittest.TestCase):
    def send(self, msg, rcpts=("alice@example.test",), port="mx",
             login=None, sender="carol@sender.test"):
        """End-of-data (code, text); refused RCPTs are skipped."""
        s = smtplib.SMTP("127.0.0.1", self.env.ports[port], timeout=120)
        try:
            s.ehlo("client.example.net")
            if port != "mx":
                s.starttls(context=self.env.client_ssl_context())
                s.ehlo("client.example.net")
            if login:
                s.login(login, ct.PASSWORD)
            self.assertEqual(s.mail(sender)[0], 250)
            for r in rcpts:
                self.assertEqual(s.rcpt(r)[0], 250)
            code, text = s.data(msg)
            # The session goes on after any verdict.
            self.assertEqual(s.noop()[0], 250)
            return code, text.decode()
        finally:
            s.quit()

    def stored(self, subject, who="alice@example.test"):
        tag = b"\r\nSubject: " + subject.encode() + b"\r\n"
        return [m for m in self.env.mailbox_bodies(who) if tag in m]


class MilterReplies(Base):
    @classmethod
    def setUpClass(cls):
        cls.mport = ct.free_port()
        cls.env = ct.Env(conf={"smtpd": {
            "milters": "inet:127.0.0.1:%d" % cls.mport,
            "milter_listeners": "mx, submission",
            # The checks run (no DNS: temperror), so the milter must see
            # our Authentication-Results.
            "inbound_checks_exempt": "",
        }})
        cls.seen = os.path.join(cls.env.dir, "seen")
        os.mkdir(cls.seen)
        cls.milter = subprocess.Popen(
            ["/usr/bin/python3", os.path.join(HERE, "testmilter.py"),
             str(cls.mport), cls.seen], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        wait_port(cls.mport, cls.milter)
        cls.env.start_smtpd()

    @classmethod
    def tearDownClass(cls):
        cls.milter.kill()
        cls.milter.wait()
        cls.env.stop()

    def seen_for(self, text):
        """What the milter recorded for the message whose 250 is text."""
        qid = text.rsplit(" ", 1)[-1]
        with open(os.path.join(self.seen, qid + ".json")) as f:
            return json.load(f)

    def check_kept(self, subject, expected, who="alice@example.test"):
        got = self.stored(subject, who)
        self.assertEqual(len(got), 1, subject)
        self.assertEqual(ct.strip_added_headers(got[0]), expected)
        return got[0]

    def test_continue_sees_ar_macros_chunks(self):
        body = b"".join(b"line %06d of a long body\r\n" % i
                        for i in range(6000))
        msg = message("plain", body=body)
        code, text = self.send(msg)
        self.assertEqual(code, 250, text)
        got = self.check_kept("plain", msg)
        seen = self.seen_for(text)
        names = [h[0] for h in seen["headers"]]
        # Our trace and check fields come first, as stored.
        self.assertEqual(names[:2], ["Received", "Authentication-Results"])
        self.assertEqual(names[2:], ["From", "To", "Subject", "X-Change-Me",
                                     "X-Remove-Me"])
        self.assertIn(b"\r\nAuthentication-Results: mail.example.test;",
                      got)
        self.assertEqual(seen["headers"][4], ["Subject", "plain"])
        # What the milter saw of our fields is what was stored (folds as
        # LF, no space after the colon: libmilter's view).
        ours = got.split(b"\r\nFrom: carol", 1)[0].split(b"\r\n", 1)[1]
        self.assertEqual(
            ours.decode(), "".join("%s: %s\r\n" % (n, v) for n, v in
                                   seen["headers"][:2])
            .replace("\n", "\r\n").replace("\r\r\n", "\r\n")[:-2])
        self.assertEqual(seen["body"], len(body))
        self.assertTrue(all(c <= 65535 for c in seen["chunks"]))
        self.assertGreater(len(seen["chunks"]), 1)
        m = seen["macros"]
        self.assertEqual(m["connect"]["j"], "mail.example.test")
        self.assertEqual(m["connect"]["{daemon_name}"], "carteiro-mx")
        self.assertEqual(m["connect"]["{client_addr}"], "127.0.0.1")
        self.assertEqual(m["connect"]["{client_name}"], "unknown")
        self.assertEqual(m["connect"]["_"], "unknown [127.0.0.1]")
        qid = text.rsplit(" ", 1)[-1]
        self.assertEqual(m["mail"]["i"], qid)
        self.assertEqual(m["mail"]["{mail_addr}"], "carol@sender.test")
        self.assertEqual(m["rcpt:<alice@example.test>"]["{rcpt_addr}"],
                         "alice@example.test")
        self.assertEqual(m["eom"]["i"], qid)
        self.assertEqual(seen["helo"], "client.example.net")
        self.assertEqual(seen["mail"], "<carol@sender.test>")

    def test_reject_with_milter_text(self):
        code, text = self.send(message("x [reject]"))
        self.assertEqual((code, text),
                         (554, "5.7.1 Rejected by the test milter"))
        self.assertEqual(self.stored("x [reject]"), [])

    def test_tempfail_with_milter_text(self):
        code, text = self.send(message("x [tempfail]"))
        self.assertEqual((code, text),
                         (451, "4.7.1 Try again later, says the milter"))
        self.assertEqual(self.stored("x [tempfail]"), [])

    def test_discard(self):
        code, text = self.send(message("x [discard]"))
        self.assertEqual(code, 250, text)
        self.assertEqual(self.stored("x [discard]"), [])
        self.assertTrue([l for l in self.env.log_lines(
            self.env.smtpd, "smtp.milter") if "action=discard" in l])

    def test_accept(self):
        msg = message("x [accept] [addheader]")
        self.assertEqual(self.send(msg)[0], 250)
        # ACCEPT at end of body without modifications: kept unchanged.
        self.check_kept("x [accept] [addheader]", msg)

    def test_quarantine_flags(self):
        msg = message("x [quarantine]")
        self.assertEqual(self.send(msg)[0], 250)
        exp = msg.replace(b"X-Remove-Me: gone\r\n",
                          b"X-Remove-Me: gone\r\nX-Spam-Flag: YES\r\n"
                          b"X-Spam-Status: Yes, quarantined=\"test reason\""
                          b"\r\n")
        self.check_kept("x [quarantine]", exp)

    def test_header_mods(self):
        msg = message("x [addheader] [chgheader] [delheader]")
        self.assertEqual(self.send(msg)[0], 250)
        exp = msg.replace(b"X-Change-Me: old value\r\nX-Remove-Me: gone\r\n",
                          b"X-Change-Me: new value\r\n"
                          b"X-Test-Milter: added\r\n")
        self.check_kept("x [addheader] [chgheader] [delheader]", exp)

    def test_insheader_top(self):
        msg = message("x [insheader]")
        self.assertEqual(self.send(msg)[0], 250)
        got = self.stored("x [insheader]")
        self.assertEqual(len(got), 1)
        # Index 0: above our own Received.
        self.assertTrue(got[0].startswith(
            b"Return-Path: <carol@sender.test>\r\n"
            b"X-Inserted: at the top\r\nReceived: from client.example.net"),
            got[0][:300])
        rest = got[0].split(b"\r\n", 2)[2]
        self.assertEqual(ct.strip_added_headers(rest), msg)

    def test_replace_body(self):
        msg = message("x [replbody]")
        self.assertEqual(self.send(msg)[0], 250)
        exp = msg.split(b"\r\n\r\n", 1)[0] + (
            b"\r\n\r\nReplaced body.\r\nSecond line.\r\n")
        self.check_kept("x [replbody]", exp)

    def test_addrcpt(self):
        msg = message("x [addrcpt]")
        self.assertEqual(self.send(msg)[0], 250)
        self.check_kept("x [addrcpt]", msg)
        self.check_kept("x [addrcpt]", msg, who="bob@example.test")

    def test_added_recipients_follow_rcpt_rules(self):
        msg = message("x [addbad]")
        self.assertEqual(self.send(msg)[0], 250)
        self.check_kept("x [addbad]", msg)
        lines = self.env.log_lines(self.env.smtpd, "smtp.milter")
        self.assertTrue([l for l in lines if 'to="nobody@example.test" '
                         'result=unknown' in l], lines)
        self.assertTrue([l for l in lines if 'to="stranger@remote.test" '
                         'result=relay_denied' in l], lines)
        self.assertEqual(self.env.query(
            "SELECT count(*) FROM queue_rcpt WHERE address = ?",
            ("stranger@remote.test",)), [(0,)])

    def test_skip_rest_of_body(self):
        body = b"y" * 998 + b"\r\n"
        msg = message("x [skip]", body=body * 200)
        code, text = self.send(msg)
        self.assertEqual(code, 250, text)
        self.check_kept("x [skip]", msg)
        # One chunk, then SKIP: the rest of the body was not sent.
        self.assertEqual(self.seen_for(text)["chunks"], [65535])

    def test_delrcpt(self):
        msg = message("x [delrcpt]")
        self.assertEqual(self.send(
            msg, rcpts=("alice@example.test", "bob@example.test"))[0], 250)
        self.assertEqual(self.stored("x [delrcpt]"), [])
        self.check_kept("x [delrcpt]", msg, who="bob@example.test")

    def test_delrcpt_keeps_dsn_of_the_others(self):
        # Submission: a remote recipient with RFC 3461 parameters, and
        # alice, whom the milter deletes: the set is resolved again and
        # the remote one keeps NOTIFY and ORCPT in the queue.
        msg = message("dsn [delrcpt]").replace(b"carol@sender.test",
                                               b"bob@example.test")
        s = smtplib.SMTP("127.0.0.1", self.env.ports["submission"],
                         timeout=120)
        try:
            s.ehlo("client.example.net")
            s.starttls(context=self.env.client_ssl_context())
            s.ehlo("client.example.net")
            s.login("bob@example.test", ct.PASSWORD)
            self.assertEqual(s.mail("bob@example.test")[0], 250)
            self.assertEqual(s.rcpt("someone@remote.test", [
                "NOTIFY=SUCCESS,FAILURE",
                "ORCPT=rfc822;someone@remote.test"])[0], 250)
            self.assertEqual(s.rcpt("alice@example.test")[0], 250)
            self.assertEqual(s.data(msg)[0], 250)
        finally:
            s.quit()
        self.assertEqual(self.stored("dsn [delrcpt]"), [])
        self.assertEqual(self.env.query(
            "SELECT address, dsn_notify, dsn_orcpt FROM queue_rcpt"),
            [("someone@remote.test", 6, "rfc822;someone@remote.test")])

    def test_delrcpt_last_rejects(self):
        code, text = self.send(message("y [delrcpt]"))
        self.assertEqual(code, 550, text)
        self.assertEqual(self.stored("y [delrcpt]"), [])

    def test_rcpt_stage_reject(self):
        msg = message("x rcptrej")
        self.assertEqual(self.send(
            msg, rcpts=("alice@example.test", "bob@example.test"),
            sender="rcptrej@sender.test")[0], 250)
        self.check_kept("x rcptrej", msg)
        self.assertEqual(self.stored("x rcptrej", "bob@example.test"), [])

    def test_chgfrom(self):
        msg = message("x [chgfrom]")
        self.assertEqual(self.send(msg)[0], 250)
        got = self.stored("x [chgfrom]")
        self.assertTrue(got[0].startswith(
            b"Return-Path: <changed@sender.test>\r\n"), got[0][:100])

    def test_submission_modifications(self):
        msg = message("sub [addheader] [replbody]").replace(
            b"carol@sender.test", b"bob@example.test")
        code, text = self.send(msg, port="submission",
                               login="bob@example.test",
                               sender="bob@example.test")
        self.assertEqual(code, 250, text)
        exp = msg.split(b"\r\n\r\n", 1)[0] + (
            b"\r\nX-Test-Milter: added\r\n\r\n"
            b"Replaced body.\r\nSecond line.\r\n")
        self.check_kept("sub [addheader] [replbody]", exp)
        seen = self.seen_for(text)
        self.assertEqual(seen["macros"]["connect"]["{daemon_name}"],
                         "carteiro-submission")
        self.assertEqual(seen["macros"]["mail"]["{auth_authen}"],
                         "bob@example.test")
        self.assertEqual(seen["macros"]["mail"]["{auth_type}"], "PLAIN")
        self.assertTrue(seen["macros"]["helo"]["{tls_version}"]
                        .startswith("TLSv1."))

    def test_submission_reject(self):
        msg = message("sub [reject]").replace(b"carol@sender.test",
                                              b"bob@example.test")
        code, text = self.send(msg, port="submission",
                               login="bob@example.test",
                               sender="bob@example.test")
        self.assertEqual((code, text),
                         (554, "5.7.1 Rejected by the test milter"))

    def test_large_message_rewritten_on_disk(self):
        body = b"x" * 998 + b"\r\n"
        body = body * 400    # 400 KB: past the in-memory spool
        msg = message("big [addheader]", body=body)
        self.assertEqual(self.send(msg)[0], 250)
        exp = msg.replace(b"X-Remove-Me: gone\r\n",
                          b"X-Remove-Me: gone\r\nX-Test-Milter: added\r\n")
        self.check_kept("big [addheader]", exp)


class TwoMilters(Base):
    """[smtpd] milters in order: the second sees the message (and the
    recipients) as the first left them."""

    def test_chain(self):
        mport = ct.free_port()
        self.env = ct.Env(conf={"smtpd": {
            "milters": "inet:127.0.0.1:%d, inet:127.0.0.1:%d" % (mport,
                                                                mport)}})
        seen = os.path.join(self.env.dir, "seen")
        os.mkdir(seen)
        milter = subprocess.Popen(
            ["/usr/bin/python3", os.path.join(HERE, "testmilter.py"),
             str(mport), seen], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        try:
            wait_port(mport, milter)
            self.env.start_smtpd()
            msg = message("two [addheader] [addrcpt]")
            code, text = self.send(msg)
            self.assertEqual(code, 250, text)
            exp = msg.replace(b"X-Remove-Me: gone\r\n",
                              b"X-Remove-Me: gone\r\nX-Test-Milter: added"
                              b"\r\nX-Test-Milter: added\r\n")
            for who in ("alice@example.test", "bob@example.test"):
                got = self.stored("two [addheader] [addrcpt]", who)
                self.assertEqual(len(got), 1, who)
                self.assertEqual(ct.strip_added_headers(got[0]), exp)
            # The second milter's view (it wrote the file last).
            with open(os.path.join(seen, text.rsplit(" ", 1)[-1] +
                                   ".json")) as f:
                last = json.load(f)
            self.assertIn(["X-Test-Milter", "added"], last["headers"])
            self.assertEqual(last["rcpts"], ["<alice@example.test>",
                                             "<bob@example.test>"])
        finally:
            milter.kill()
            milter.wait()
            self.env.stop()


class FakeMilter:
    """A raw milter that negotiates and answers 'c' to everything; mode
    "hang" never answers end of body, "close" closes on the first body
    chunk, "stale" closes a connection reused after QUIT_NC, "ok" is well
    behaved. It counts connections and QUIT_NCs."""

    def __init__(self, mode):
        self.mode = mode
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.quit_nc = 0
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                self.sock.close()
                return
            self.conns.append(c)
            threading.Thread(target=self.one, args=(c,), daemon=True).start()

    def one(self, c):
        with c:
            self.talk(c)

    def talk(self, c):
        buf, parked = b"", False
        try:
            while True:
                while len(buf) < 4 or len(buf) < 4 + struct.unpack(
                        ">I", buf[:4])[0]:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                n = struct.unpack(">I", buf[:4])[0]
                cmd, buf = buf[4:5], buf[4 + n:]
                if cmd == b"O":
                    c.sendall(struct.pack(">IcIII", 13, b"O", 6, 0x3f, 0))
                elif cmd == b"D":
                    continue
                elif cmd == b"B" and self.mode == "close":
                    return
                elif cmd == b"E" and self.mode == "hang":
                    continue
                elif cmd == b"K":
                    self.quit_nc += 1
                    parked = True
                elif parked and self.mode == "stale":
                    # As if restarted while the link was parked: the
                    # reused connection dies at its first command.
                    return
                elif cmd in (b"A", b"Q"):
                    continue
                else:
                    c.sendall(struct.pack(">Ic", 1, b"c"))
        except OSError:
            return

    def close(self):
        # shutdown, not close: a thread blocked in accept/recv wakes up and
        # closes its own socket (closing it under the thread would let the
        # fd number be reused by the next test's socket, and the old
        # thread read from it).
        for c in [self.sock] + self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class MilterPool(Base):
    """After a clean end of body the milter connection is parked with
    QUIT_NC and the next message reuses it; a parked connection the milter
    closed is replaced without the client noticing."""

    def run_three(self, mode):
        f = FakeMilter(mode)
        self.env = ct.Env(conf={"smtpd": {
            "milters": "inet:127.0.0.1:%d" % f.port}})
        try:
            self.env.start_smtpd()
            t0 = time.time()
            for i in range(3):
                msg = message("pool-%s-%d" % (mode, i))
                self.assertEqual(self.send(msg)[0], 250)
                self.assertEqual(len(self.stored("pool-%s-%d" %
                                                 (mode, i))), 1)
            # No timeout was waited out.
            self.assertLess(time.time() - t0, 20)
            return f, self.env.log_lines(self.env.smtpd, "smtp.milter")
        finally:
            f.close()
            self.env.stop()

    def test_reuse(self):
        f, lines = self.run_three("ok")
        self.assertEqual(len(f.conns), 1)
        self.assertEqual(f.quit_nc, 3)

    def test_stale_link_replaced(self):
        f, lines = self.run_three("stale")
        self.assertEqual(len(f.conns), 3, (f.quit_nc, lines))
        # Each reuse died at once and was retried on a new connection.
        self.assertEqual(len([l for l in lines if "action=reconnect" in l]),
                         2, lines)
        self.assertEqual([l for l in lines if "result=failed" in l], [])


class MilterFailures(Base):
    def run_case(self, milter, action):
        self.env = ct.Env(conf={"smtpd": {
            "milters": "inet:127.0.0.1:%d" % milter,
            "milter_default_action": action,
            "milter_command_timeout": "2", "milter_content_timeout": "2",
        }})
        try:
            self.env.start_smtpd()
            t0 = time.time()
            code, text = self.send(message("fail-" + action))
            self.assertLess(time.time() - t0, 60)
            want = {"tempfail": 451, "reject": 550, "accept": 250}[action]
            self.assertEqual(code, want, text)
            kept = self.stored("fail-" + action)
            self.assertEqual(len(kept), 1 if action == "accept" else 0)
            # The daemon keeps serving: a second message, same verdict.
            code2, _ = self.send(message("again-" + action))
            self.assertEqual(code2, want)
            self.assertTrue(self.env.log_lines(self.env.smtpd,
                                               "smtp.milter"))
        finally:
            self.env.stop()

    def test_down(self):
        port = ct.free_port()   # nothing listens
        for action in ("tempfail", "reject", "accept"):
            with self.subTest(action=action):
                self.run_case(port, action)

    def test_hang(self):
        f = FakeMilter("hang")
        try:
            self.run_case(f.port, "tempfail")
            self.assertTrue(True)
        finally:
            f.close()

    def test_close_mid_message(self):
        f = FakeMilter("close")
        try:
            for action in ("tempfail", "accept"):
                with self.subTest(action=action):
                    self.run_case(f.port, action)
        finally:
            f.close()


if __name__ == "__main__":
    ct.main()
