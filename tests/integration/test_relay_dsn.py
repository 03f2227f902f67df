"""RFC 3461 DSN end to end: EHLO offers DSN on every listener; NOTIFY,
ORCPT, RET and ENVID are checked (501 5.5.4), stored with the queued
message, and passed on byte for byte to a next hop that offers DSN (and
to none that does not); carteiro's own notices honour them: NOTIFY=NEVER
and a NOTIFY without FAILURE suppress the bounce, RET=FULL returns the
message and RET=HDRS its headers, Original-Envelope-Id and
Original-Recipient are the decoded ENVID and ORCPT, a delay warning goes
only to recipients asking for DELAY (or not asking at all), and
NOTIFY=SUCCESS gives a "relayed" notice when the next hop has no DSN and
a "delivered" one for a local mailbox. Two fake MXes: dsn.test offers
DSN, plain.test does not."""

import email
import email.policy
import os
import smtplib
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import carteiro_test as ct  # noqa: E402
from fakemx import (Sink, db_exec, queue_ids, relay_setup,  # noqa: E402
                    wait_for)

RECORDS = {
    "dsn.test": {"MX": [(10, "mx.dsn.test")]},
    "mx.dsn.test": {"A": ["127.0.0.2"]},
    "plain.test": {"MX": [(10, "mx.plain.test")]},
    "mx.plain.test": {"A": ["127.0.0.3"]},
}
DSN_KEYS = ("RET", "ENVID", "NOTIFY", "ORCPT")
BODY = b"the one line of the body\r\n"


def rcpt_reply(addr):
    if addr.startswith("p5"):
        return "550 5.1.1 <%s>: no such user" % addr
    if addr.startswith("slow"):
        return "451 4.2.2 mailbox full, try again later"
    return None


def dsn_params(params):
    return [p for p in params if p.split("=", 1)[0].upper() in DSN_KEYS]


def send(port, mail_from, rcpts, msg, mail_opts=(), login=True,
         tls_ctx=None):
    """One transaction: rcpts is [(address, [RCPT parameters])]. Returns
    the RCPT replies."""
    s = smtplib.SMTP("127.0.0.1", port, timeout=30)
    try:
        s.ehlo()
        if login:
            s.login("alice@example.test", "secret")
        code, text = s.mail(mail_from, list(mail_opts))
        assert code == 250, (code, text)
        replies = [s.rcpt(a, list(o)) for a, o in rcpts]
        code, text = s.data(msg)
        assert code == 250, (code, text)
        return replies
    finally:
        try:
            s.quit()
        except Exception:
            pass


def parts(raw):
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    return msg, msg.get_payload()


class RelayDsn(unittest.TestCase):
    conf = None

    def setUp(self):
        # The same dead addresses bounce again and again here: no
        # bounce suppression (test_relay_suppress covers it).
        conf = dict(self.conf or {})
        conf["relay"] = dict(conf.get("relay", {}), suppress_days="0")
        self.env, self.dns, port = relay_setup(RECORDS, conf=conf)
        self.dsn_mx = Sink("127.0.0.2", port, dsn=True)
        self.plain_mx = Sink("127.0.0.3", port)
        for s in (self.dsn_mx, self.plain_mx):
            s.rcpt_reply = rcpt_reply
            s.start()
        self.env.start_smtpd()

    def tearDown(self):
        self.dsn_mx.stop()
        self.plain_mx.stop()
        self.env.stop()
        self.dns.stop()

    def submit(self, rcpts, mail_opts=(), subject="dsn test"):
        msg = (b"From: alice@example.test\r\nSubject: " + subject.encode() +
               b"\r\nMessage-ID: <%d@example.test>\r\n\r\n" % id(rcpts) +
               BODY)
        return send(self.env.ports["submission"], "alice@example.test",
                    rcpts, msg, mail_opts)

    def notices(self, n, timeout=20):
        got = wait_for(lambda: len(self.env.mailbox_bodies(
            "alice@example.test")) >= n and not queue_ids(self.env),
            timeout=timeout)
        self.assertTrue(got, "queue %r, %d notices" % (
            queue_ids(self.env),
            len(self.env.mailbox_bodies("alice@example.test"))))
        return self.env.mailbox_bodies("alice@example.test")


class Listeners(RelayDsn):
    def test_ehlo_every_listener(self):
        env = self.env
        s = smtplib.SMTP("127.0.0.1", env.ports["mx"], timeout=10)
        s.ehlo()
        self.assertTrue(s.has_extn("dsn"), s.esmtp_features)
        s.quit()
        s = smtplib.SMTP("127.0.0.1", env.ports["submission"], timeout=10)
        s.ehlo()
        self.assertTrue(s.has_extn("dsn"), s.esmtp_features)
        s.starttls(context=env.client_ssl_context())
        s.ehlo()
        self.assertTrue(s.has_extn("dsn"), s.esmtp_features)
        s.quit()
        s = smtplib.SMTP_SSL("127.0.0.1", env.ports["submissions"],
                             timeout=10, context=env.client_ssl_context())
        s.ehlo()
        self.assertTrue(s.has_extn("dsn"), s.esmtp_features)
        s.quit()

    def test_bad_values(self):
        s = smtplib.SMTP("127.0.0.1", self.env.ports["mx"], timeout=10)
        s.ehlo()
        cases = [
            ("MAIL FROM:<a@plain.test> RET=ALL", "501 5.5.4 Bad RET parameter"),
            ("MAIL FROM:<a@plain.test> RET=FULL RET=FULL",
             "501 5.5.4 Bad RET parameter"),
            ("MAIL FROM:<a@plain.test> ENVID=a+2x",
             "501 5.5.4 Bad ENVID parameter"),
            ("MAIL FROM:<a@plain.test> ENVID=" + "e" * 101,
             "501 5.5.4 Bad ENVID parameter"),
            ("MAIL FROM:<a@plain.test> NOTIFY=NEVER",
             "555 5.5.4 Unsupported parameter"),
        ]
        for line, want in cases:
            code, text = s.docmd(line)
            self.assertEqual("%d %s" % (code, text.decode()), want, line)
        code, _ = s.docmd("MAIL FROM:<a@plain.test> RET=hdrs ENVID=" +
                          "e" * 100)
        self.assertEqual(code, 250)
        s.quit()
        # Ten errors end a session: the RCPT ones get a fresh one.
        s = smtplib.SMTP("127.0.0.1", self.env.ports["mx"], timeout=10)
        s.ehlo()
        self.assertEqual(s.docmd("MAIL FROM:<a@plain.test>")[0], 250)
        cases = [
            ("RCPT TO:<bob@example.test> NOTIFY=NEVER,SUCCESS",
             "501 5.5.4 Bad NOTIFY parameter"),
            ("RCPT TO:<bob@example.test> NOTIFY=SUCCESS,SUCCESS",
             "501 5.5.4 Bad NOTIFY parameter"),
            ("RCPT TO:<bob@example.test> NOTIFY=ALWAYS",
             "501 5.5.4 Bad NOTIFY parameter"),
            ("RCPT TO:<bob@example.test> ORCPT=bob@example.test",
             "501 5.5.4 Bad ORCPT parameter"),
            ("RCPT TO:<bob@example.test> ORCPT=rfc822;b+0Dob@example.test",
             "501 5.5.4 Bad ORCPT parameter"),
            ("RCPT TO:<bob@example.test> ENVID=x",
             "555 5.5.4 Unsupported parameter"),
        ]
        for line, want in cases:
            code, text = s.docmd(line)
            self.assertEqual("%d %s" % (code, text.decode()), want, line)
        code, _ = s.docmd("RCPT TO:<bob@example.test> notify=Never "
                          "ORCPT=rfc822;bob@example.test")
        self.assertEqual(code, 250)
        s.quit()


    def test_long_lines(self):
        # RFC 3461 4: RCPT may be 500 octets and MAIL 100 octets longer
        # than 512 (CRLF included); other verbs are not.
        s = smtplib.SMTP("127.0.0.1", self.env.ports["mx"], timeout=10)
        s.ehlo()
        mail = "MAIL FROM:<a@plain.test> RET=FULL ENVID=e AUTH="
        self.assertEqual(s.docmd(mail + "x" * (611 - len(mail))),
                         (500, b"5.5.2 Error: line too long"))
        self.assertEqual(s.docmd(mail + "x" * (610 - len(mail)))[0], 250)
        rcpt = "RCPT TO:<bob@example.test> NOTIFY=SUCCESS ORCPT=rfc822;"
        self.assertEqual(s.docmd(rcpt + "o" * 480), (250, b"2.1.5 Ok"))
        self.assertEqual(s.docmd(rcpt + "o" * 490 + " X=" + "x" * 463),
                         (500, b"5.5.2 Error: line too long"))   # 1011
        self.assertEqual(s.docmd(rcpt + "o" * 490 + " X=" + "x" * 462),
                         (555, b"5.5.4 Unsupported parameter"))  # 1010
        self.assertEqual(s.docmd(rcpt + "o" * 494),
                         (501, b"5.5.4 Bad ORCPT parameter"))    # > 500
        self.assertEqual(s.docmd("NOOP " + "x" * 506),
                         (500, b"5.5.2 Error: line too long"))
        s.quit()


class PassThrough(RelayDsn):
    def test_parameters_and_relayed_notice(self):
        env = self.env
        self.submit([
            ("a@dsn.test", ["NOTIFY=SUCCESS,FAILURE",
                            "ORCPT=rfc822;A+2Bx@dsn.test"]),
            ("b@dsn.test", ["NOTIFY=NEVER"]),
            ("c@plain.test", ["NOTIFY=SUCCESS",
                              "ORCPT=rfc822;c@plain.test"]),
            ("d@plain.test", []),
            ("e@dsn.test", ["ORCPT=rfc822;" + "E" * 480]),
        ], mail_opts=["RET=HDRS", "ENVID=Env+2B42"])
        [m] = self.dsn_mx.wait(1)
        self.assertEqual(dsn_params(m.mail_params),
                         ["RET=HDRS", "ENVID=Env+2B42"])
        self.assertEqual(m.rcpt_params, {
            "a@dsn.test": ["NOTIFY=SUCCESS,FAILURE",
                           "ORCPT=rfc822;A+2Bx@dsn.test"],
            "b@dsn.test": ["NOTIFY=NEVER"],
            "e@dsn.test": ["ORCPT=rfc822;" + "E" * 480],
        })
        [m] = self.plain_mx.wait(1)
        self.assertEqual(dsn_params(m.mail_params), [])
        self.assertEqual(m.rcpt_params, {"c@plain.test": [],
                                         "d@plain.test": []})
        # One notice: c's next hop has no DSN; a's has, and owes it.
        [raw] = self.notices(1)
        text = raw.decode()
        dsn, p = parts(raw)
        self.assertEqual(dsn["Subject"], "Successful Mail Delivery Report")
        self.assertEqual([x.get_content_type() for x in p],
                         ["text/plain", "message/delivery-status",
                          "text/rfc822-headers"])
        self.assertIn("\r\n\r\nOriginal-Envelope-Id: Env+42\r\n"
                      "Reporting-MTA: dns; mail.example.test\r\n", text)
        self.assertIn("\r\n\r\nOriginal-Recipient: rfc822;c@plain.test\r\n"
                      "Final-Recipient: rfc822; c@plain.test\r\n"
                      "Action: relayed\r\nStatus: 2.0.0\r\n"
                      "Remote-MTA: dns; mx.plain.test\r\n", text)
        self.assertEqual(text.count("Final-Recipient:"), 1)
        self.assertNotIn("d@plain.test", text)
        self.assertNotIn("dsn.test", text)
        self.assertIn("Subject: dsn test", p[2].as_string())
        self.assertNotIn("the one line of the body", text)
        time.sleep(1.5)             # nothing else arrives
        self.assertEqual(len(env.mailbox_bodies("alice@example.test")), 1)


class Failures(RelayDsn):
    def test_notify_never_and_ret(self):
        env = self.env
        # Only recipients that asked for no failure notice: none comes.
        self.submit([("p5b@plain.test", ["NOTIFY=NEVER"]),
                     ("p5d@plain.test", ["NOTIFY=SUCCESS,DELAY"]),
                     ("p5e@dsn.test", ["NOTIFY=NEVER"])],
                    mail_opts=["RET=FULL"])
        self.assertTrue(wait_for(lambda: not queue_ids(env)))
        time.sleep(1.5)
        self.assertEqual(env.mailbox_bodies("alice@example.test"), [])
        self.assertEqual(env.log_lines(env.smtpd, "relay.bounce"), [])

        # RET=FULL: the message comes back whole, for the recipients
        # whose NOTIFY has FAILURE or who have no NOTIFY.
        self.submit([("p5a@plain.test", []),
                     ("p5b@plain.test", ["NOTIFY=NEVER"]),
                     ("p5c@dsn.test", ["NOTIFY=FAILURE",
                                       "ORCPT=rfc822;orig+2Bc@x.test"]),
                     ("p5d@plain.test", ["NOTIFY=SUCCESS,DELAY"])],
                    mail_opts=["RET=FULL", "ENVID=e1"], subject="full")
        [raw] = self.notices(1)
        text = raw.decode()
        dsn, p = parts(raw)
        self.assertEqual(dsn["Subject"], "Undelivered Mail Returned to Sender")
        self.assertEqual([x.get_content_type() for x in p],
                         ["text/plain", "message/delivery-status",
                          "message/rfc822"])
        self.assertIn("\r\n\r\nOriginal-Envelope-Id: e1\r\n", text)
        self.assertIn("\r\n\r\nFinal-Recipient: rfc822; p5a@plain.test\r\n"
                      "Action: failed\r\nStatus: 5.1.1\r\n", text)
        self.assertIn("\r\n\r\nOriginal-Recipient: rfc822;orig+c@x.test\r\n"
                      "Final-Recipient: rfc822; p5c@dsn.test\r\n"
                      "Action: failed\r\n", text)
        self.assertEqual(text.count("Final-Recipient:"), 2)
        self.assertNotIn("p5b@", text)
        self.assertNotIn("p5d@", text)
        self.assertIn("Content-Description: Undelivered Message\r\n\r\n",
                      text)
        self.assertIn("Subject: full\r\n", text)
        self.assertIn("\r\n\r\n" + BODY.decode(), text)

        # RET=HDRS: headers only.
        self.submit([("p5a@plain.test", [])], mail_opts=["RET=HDRS"],
                    subject="hdrs")
        raw = self.notices(2)[1]
        dsn, p = parts(raw)
        self.assertEqual([x.get_content_type() for x in p],
                         ["text/plain", "message/delivery-status",
                          "text/rfc822-headers"])
        self.assertIn("Subject: hdrs", p[2].as_string())
        self.assertNotIn(b"the one line of the body", raw)
        self.assertNotIn(b"Original-Envelope-Id", raw)


class Delay(RelayDsn):
    conf = {"relay": {"retry_first": "1h", "retry_max": "1h",
                      "delay_warning": "1h", "queue_lifetime": "1d"}}

    def test_delay_notice_and_stored_parameters(self):
        env = self.env
        self.submit([("slow1@plain.test", ["NOTIFY=FAILURE"]),
                     ("slow2@plain.test", ["NOTIFY=DELAY",
                                           "ORCPT=rfc822;S+2B2@plain.test"]),
                     ("slow3@plain.test", [])],
                    mail_opts=["ENVID=d1", "RET=FULL"])
        self.assertTrue(wait_for(lambda: env.query(
            "SELECT attempts FROM queue") == [(1,)]))
        # Stored as received (schema 5): RET 1 = FULL; NOTIFY bits
        # 4 = FAILURE, 8 = DELAY.
        self.assertEqual(env.query("SELECT dsn_ret, dsn_envid FROM queue"),
                         [(1, "d1")])
        self.assertEqual(env.query(
            "SELECT address, dsn_notify, dsn_orcpt FROM queue_rcpt "
            "ORDER BY id"),
            [("slow1@plain.test", 4, None),
             ("slow2@plain.test", 8, "rfc822;S+2B2@plain.test"),
             ("slow3@plain.test", 0, None)])
        db_exec(env, "UPDATE queue SET created = created - ?", (7200,))
        env.ctl_ok("queue", "flush")
        self.assertTrue(wait_for(lambda: env.query(
            "SELECT warned FROM queue") == [(1,)]))
        [raw] = wait_for(lambda: env.mailbox_bodies("alice@example.test"))
        text = raw.decode()
        dsn, p = parts(raw)
        self.assertEqual(dsn["Subject"], "Delayed Mail (still being retried)")
        self.assertIn("\r\n\r\nOriginal-Envelope-Id: d1\r\n", text)
        self.assertIn("\r\n\r\nOriginal-Recipient: rfc822;S+2@plain.test\r\n"
                      "Final-Recipient: rfc822; slow2@plain.test\r\n"
                      "Action: delayed\r\nStatus: 4.2.2\r\n", text)
        self.assertIn("\r\n\r\nFinal-Recipient: rfc822; slow3@plain.test\r\n"
                      "Action: delayed\r\n", text)
        self.assertEqual(text.count("Final-Recipient:"), 2)
        self.assertNotIn("slow1@", text)
        # A delay never returns the body, RET=FULL or not.
        self.assertEqual(p[2].get_content_type(), "text/rfc822-headers")
        self.assertNotIn("the one line of the body", text)


class Local(RelayDsn):
    def test_delivered_notices(self):
        env = self.env
        # MX: a remote sender asks for a success notice for bob only.
        msg = (b"From: someone@plain.test\r\nSubject: to bob\r\n\r\n" + BODY)
        send(env.ports["mx"], "someone@plain.test",
             [("bob@example.test", ["NOTIFY=SUCCESS",
                                    "ORCPT=rfc822;Bob+2Bx@example.test"]),
              ("alice@example.test", [])], msg,
             mail_opts=["ENVID=loc1"], login=False)
        [m] = self.plain_mx.wait(1)
        self.assertIn(m.mail_from, ("", "<>"))
        self.assertEqual(m.rcpts, ["someone@plain.test"])
        text = m.data.decode()
        self.assertIn("Subject: Successful Mail Delivery Report\r\n", text)
        self.assertIn("\r\n\r\nOriginal-Envelope-Id: loc1\r\n", text)
        self.assertIn("\r\n\r\nOriginal-Recipient: rfc822;Bob+x@example.test"
                      "\r\nFinal-Recipient: rfc822; bob@example.test\r\n"
                      "Action: delivered\r\nStatus: 2.0.0\r\n", text)
        self.assertEqual(text.count("Final-Recipient:"), 1)
        self.assertIn("Subject: to bob", text)
        self.assertEqual(len(env.mailbox_bodies("bob@example.test")), 1)
        self.assertEqual(len(env.mailbox_bodies("alice@example.test")), 1)

        # Submission: alice's own notice lands in her mailbox.
        self.submit([("bob@example.test", ["NOTIFY=SUCCESS"])])
        boxes = wait_for(lambda: len(env.mailbox_bodies(
            "alice@example.test")) >= 2 and
            env.mailbox_bodies("alice@example.test"))
        raw = boxes[1]
        self.assertTrue(raw.startswith(b"Return-Path: <>\r\n"))
        self.assertIn(b"Final-Recipient: rfc822; bob@example.test\r\n"
                      b"Action: delivered\r\n", raw)
        self.assertNotIn(b"Original-Recipient", raw)
        # Without NOTIFY=SUCCESS: no notice.
        self.submit([("bob@example.test", [])])
        self.assertTrue(wait_for(lambda: len(env.mailbox_bodies(
            "bob@example.test")) == 3))
        time.sleep(1)
        self.assertEqual(len(env.mailbox_bodies("alice@example.test")), 2)


if __name__ == "__main__":
    ct.main()
