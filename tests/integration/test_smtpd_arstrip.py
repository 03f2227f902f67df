"""Forged Authentication-Results (issue 11 item 1, RFC 8601 5): every field
whose authserv-id is ours, however it is spelled (space before the colon,
comments, quoted string, case, folding, after 300 KB of other fields), is
removed from the stored message on every path: checked MX, an
inbound_checks_exempt network, submission. Foreign fields and the body stay
byte-exact. A header section over 1 MiB gets 552 5.3.4 and nothing is
stored. Messages are read back from the store (what RETR sends)."""

import os
import smtplib
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import carteiro_test as ct  # noqa: E402

ID = b"mail.example.test"
LIMIT = 1024 * 1024

FORGED = [
    b"Authentication-Results: " + ID + b"; spf=pass\r\n",
    b"Authentication-Results : " + ID + b"; spf=pass\r\n",
    b"Authentication-Results: (x) " + ID + b"; dkim=pass\r\n",
    b"Authentication-Results: \"" + ID + b"\"; dmarc=pass\r\n",
    b"AUTHENTICATION-RESULTS: MAIL.EXAMPLE.TEST; spf=pass\r\n",
    b"authentication-results:\r\n\tmail.Example.test;\r\n\tspf=pass\r\n",
    b"Authentication-Results\r\n : (a (b) c)\"mail.exa\\mple.test\"; x=y\r\n",
    b"Authentication-Results: " + ID + b".; spf=pass\r\n",
]
FOREIGN = [
    b"Authentication-Results: other.example.net; spf=pass\r\n",
    b"Authentication-Results: (" + ID + b") other.test;\r\n spf=pass\r\n",
    b"Authentication-Results: " + ID + b".evil.test; spf=pass\r\n",
    b"ARC-Authentication-Results: i=1; " + ID + b"; spf=pass\r\n",
    b"X-Authentication-Results: " + ID + b"; spf=pass\r\n",
]
BODY = (b"\r\nHello.\r\nAuthentication-Results: " + ID +
        b"; spf=pass (in the body: kept)\r\n")


def head(subject):
    return (b"From: mallory@sender.test\r\nTo: alice@example.test\r\n"
            b"Subject: " + subject.encode() + b"\r\n")


def forged_message(subject, filler=b""):
    """(sent, expected): every forged field between foreign ones."""
    sent = exp = head(subject) + filler
    for i, f in enumerate(FORGED):
        sent += f + FOREIGN[i % len(FOREIGN)]
        exp += FOREIGN[i % len(FOREIGN)]
    return sent + BODY, exp + BODY


def filler(n):
    """Header fields of exactly n bytes (n >= 16)."""
    out, i = [], 0
    while n > 0:
        take = 1000 if n >= 1000 + 16 else n
        name = b"X-Fill-%d: " % i
        out.append(name + b"a" * (take - len(name) - 2) + b"\r\n")
        n -= take
        i += 1
    return b"".join(out)


class ArStrip(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # 127.0.0.1 is checked (SPF/DKIM/DMARC: temperror, no DNS here);
        # 127.0.0.2 is an exempt network.
        cls.env = ct.Env(conf={
            "smtpd": {"inbound_checks_exempt": "127.0.0.2/32"}})
        cls.env.start_smtpd()

    @classmethod
    def tearDownClass(cls):
        cls.env.stop()

    def send(self, msg, source="127.0.0.1", port="mx", login=None):
        """End-of-data (code, text)."""
        s = smtplib.SMTP("127.0.0.1", self.env.ports[port], timeout=60,
                         source_address=(source, 0))
        try:
            s.ehlo("client.example.net")
            if login:
                s.login(login, ct.PASSWORD)
            s.mail(login or "mallory@sender.test")
            code, _ = s.rcpt("alice@example.test")
            self.assertEqual(code, 250)
            code, text = s.data(msg)
            # The session goes on after a refusal.
            self.assertEqual(s.rset()[0], 250)
            return code, text.decode()
        finally:
            s.quit()

    def stored(self, subject):
        tag = b"\r\nSubject: " + subject.encode() + b"\r\n"
        found = [m for m in self.env.mailbox_bodies("alice@example.test")
                 if tag in m]
        self.assertEqual(len(found), 1, subject)
        return found[0]

    def check_stored(self, subject, expected, ours):
        """The stored message is our trace fields, then expected byte for
        byte; ours = how many of those trace fields are our own A-R."""
        got = self.stored(subject)
        self.assertTrue(got.endswith(expected), got[:3000])
        added = got[:len(got) - len(expected)]
        fields = added.replace(b"\r\n\t", b" ").replace(b"\r\n ", b" ")
        fields = fields.split(b"\r\n")
        self.assertEqual(fields[-1], b"")
        names = [f.split(b":", 1)[0] for f in fields[:-1]]
        self.assertEqual(names[:2], [b"Return-Path", b"Received"], names)
        self.assertEqual(names[2:], [b"Authentication-Results"] * ours,
                         names)
        if ours:
            self.assertTrue(fields[2].startswith(
                b"Authentication-Results: " + ID + b"; spf="), fields[2])
        self.assertEqual(ct.strip_added_headers(got), expected)

    def test_checked_mx(self):
        sent, exp = forged_message("checked")
        self.assertEqual(self.send(sent)[0], 250)
        self.check_stored("checked", exp, ours=1)
        self.assertTrue([l for l in self.env.log_lines(
            self.env.smtpd, "smtp.ar_strip") if "removed=%d" % len(FORGED)
            in l])

    def test_exempt_network(self):
        sent, exp = forged_message("exempt")
        self.assertEqual(self.send(sent, source="127.0.0.2")[0], 250)
        self.check_stored("exempt", exp, ours=0)

    def test_submission(self):
        sent, exp = forged_message("submission")
        sent = sent.replace(b"mallory@sender.test", b"bob@example.test")
        exp = exp.replace(b"mallory@sender.test", b"bob@example.test")
        self.assertEqual(self.send(sent, port="submission",
                                   login="bob@example.test")[0], 250)
        self.check_stored("submission", exp, ours=0)

    def test_bdat_exempt(self):
        # BDAT (RFC 3030) ends the data elsewhere: same end, same strip.
        sent, exp = forged_message("bdat")
        s = smtplib.SMTP("127.0.0.1", self.env.ports["mx"], timeout=60,
                         source_address=("127.0.0.2", 0))
        try:
            s.ehlo("client.example.net")
            s.mail("mallory@sender.test")
            s.rcpt("alice@example.test")
            half = len(sent) // 2
            s.send(b"BDAT %d\r\n" % half + sent[:half])
            self.assertEqual(s.getreply()[0], 250)
            s.send(b"BDAT %d LAST\r\n" % (len(sent) - half) + sent[half:])
            self.assertEqual(s.getreply()[0], 250)
        finally:
            s.quit()
        self.check_stored("bdat", exp, ours=0)

    def test_after_300k_of_fields(self):
        # Past 256 KB (the old scan window) and on a disk spool.
        sent, exp = forged_message("deep", filler(300 * 1024))
        self.assertEqual(self.send(sent)[0], 250)
        self.check_stored("deep", exp, ours=1)
        sent, exp = forged_message("deep-exempt", filler(300 * 1024))
        self.assertEqual(self.send(sent, source="127.0.0.2")[0], 250)
        self.check_stored("deep-exempt", exp, ours=0)

    def test_header_limit(self):
        before = len(self.env.mailbox_bodies("alice@example.test"))
        base = head("limit-ok")
        msg = base + filler(LIMIT - len(base)) + BODY
        self.assertEqual(msg.index(b"\r\n\r\n") + 2, LIMIT)
        self.assertEqual(self.send(msg)[0], 250)
        self.check_stored("limit-ok", msg, ours=1)
        for source in ("127.0.0.1", "127.0.0.2"):
            base = head("limit-over")
            msg = base + filler(LIMIT + 1 - len(base)) + BODY
            code, text = self.send(msg, source=source)
            self.assertEqual((code, text.split(" ", 1)[0]),
                             (552, "5.3.4"), source)
        # No body at all: the whole message is header section.
        msg = base + filler(LIMIT + 1 - len(base))
        self.assertEqual(self.send(msg)[0], 552)
        self.assertEqual(len(self.env.mailbox_bodies("alice@example.test")),
                         before + 1)
        self.assertEqual(len([l for l in self.env.log_lines(
            self.env.smtpd, "smtp.data")
            if "result=header_too_large" in l]), 3)


if __name__ == "__main__":
    ct.main()
