"""Inbound checks on the MX listener (loopback clients are not exempt here):
SPF, DKIM (python3-dkim signs, carteiro verifies), DMARC (reject at end of
data, pass via aligned SPF only and via aligned DKIM only, subdomain policy,
organizational domain, quarantine header), one Authentication-Results
header with our authserv-id, forged ones removed."""

import os
import smtplib
import sys
import unittest

import dkim
import nacl.encoding
import nacl.signing

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import carteiro_test as ct  # noqa: E402
from fakedns import FakeDNS  # noqa: E402

KEY = nacl.signing.SigningKey.generate()
KEY_B64 = KEY.encode(encoder=nacl.encoding.Base64Encoder)
PUB_B64 = KEY.verify_key.encode(encoder=nacl.encoding.Base64Encoder).decode()

RECORDS = {
    "sender.test": {"TXT": ["v=spf1 ip4:127.0.0.1 -all"]},
    "spfail.test": {"TXT": ["v=spf1 -all"]},
    "sel._domainkey.signer.test": {"TXT": ["v=DKIM1; k=ed25519; p=" + PUB_B64]},
    "sel._domainkey.dk.test": {"TXT": ["v=DKIM1; k=ed25519; p=" + PUB_B64]},
    "_dmarc.strict.test": {"TXT": ["v=DMARC1; p=reject"]},
    "_dmarc.dk.test": {"TXT": ["v=DMARC1; p=reject"]},
    "sp.test": {"TXT": ["v=spf1 ip4:127.0.0.0/8 -all"]},
    "_dmarc.sp.test": {"TXT": ["v=DMARC1; p=reject"]},
    "_dmarc.org.test": {"TXT": ["v=DMARC1; p=none; sp=reject"]},
    "_dmarc.quar.test": {"TXT": ["v=DMARC1; p=quarantine"]},
    "_dmarc.example.co.uk": {"TXT": ["v=DMARC1; p=reject"]},
}


def message(frm, subject, body=b"Hello.\r\n", extra=b""):
    return (b"From: " + frm.encode() + b"\r\nTo: alice@example.test\r\n"
            b"Subject: " + subject.encode() + b"\r\n" + extra + b"\r\n" + body)


def dkim_sign(msg, domain):
    sig = dkim.sign(msg, b"sel", domain.encode(), KEY_B64,
                    signature_algorithm=b"ed25519-sha256",
                    include_headers=[b"from", b"to", b"subject"])
    return sig + msg


class InboundChecks(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dns = FakeDNS(RECORDS).start()
        cls.env = ct.Env(conf={
            "relay": {"resolver": "127.0.0.1:%d" % cls.dns.port},
            "smtpd": {"inbound_checks_exempt": ""}})
        cls.env.start_smtpd()

    @classmethod
    def tearDownClass(cls):
        cls.env.stop()
        cls.dns.stop()

    def send(self, mail_from, msg):
        """Send over MX; returns (code, text) of the end-of-data reply."""
        s = smtplib.SMTP("127.0.0.1", self.env.ports["mx"], timeout=30)
        try:
            s.ehlo("client.example.net")
            s.mail(mail_from)
            code, _ = s.rcpt("alice@example.test")
            self.assertEqual(code, 250)
            code, text = s.data(msg)
            return code, text.decode()
        finally:
            s.quit()

    def delivered(self, subject):
        for m in self.env.mailbox_bodies("alice@example.test"):
            if b"Subject: " + subject.encode() + b"\r\n" in m:
                return m
        return None

    def ar(self, subject):
        """The Authentication-Results header of the delivered message,
        unfolded."""
        m = self.delivered(subject)
        self.assertIsNotNone(m, subject)
        head = m.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
        fields = head.replace("\r\n\t", " ").replace("\r\n ", " ").split("\r\n")
        ars = [f for f in fields if f.lower().startswith(
            "authentication-results: mail.example.test;")]
        self.assertEqual(len(ars), 1, head)
        self.assertTrue(ars[0].startswith(
            "Authentication-Results: mail.example.test;"), ars[0])
        return ars[0], head

    def test_spf_pass_and_fail(self):
        self.assertEqual(self.send("a@sender.test",
                                   message("a@sender.test", "spf-pass"))[0], 250)
        ar, _ = self.ar("spf-pass")
        self.assertIn("spf=pass smtp.mailfrom=a@sender.test", ar)
        self.assertEqual(self.send("a@spfail.test",
                                   message("a@spfail.test", "spf-fail"))[0], 250)
        self.assertIn("spf=fail smtp.mailfrom=a@spfail.test", self.ar("spf-fail")[0])
        self.assertEqual(self.send("a@nospf.test",
                                   message("a@nospf.test", "spf-none"))[0], 250)
        self.assertIn("spf=none", self.ar("spf-none")[0])

    def test_dkim_pass_and_fail(self):
        msg = dkim_sign(message("x@signer.test", "dkim-pass",
                                body=b"Ol\xc3\xa1\r\n\r\n"), "signer.test")
        self.assertEqual(self.send("x@signer.test", msg)[0], 250)
        ar, _ = self.ar("dkim-pass")
        self.assertIn("dkim=pass", ar)
        self.assertIn("header.d=signer.test header.s=sel", ar)
        # The delivered message still verifies for python3-dkim.
        m = self.delivered("dkim-pass")
        self.assertTrue(dkim.verify(
            m, dnsfunc=lambda n, timeout=5: b"v=DKIM1; k=ed25519; p=" +
            PUB_B64.encode()))

        bad = dkim_sign(message("x@signer.test", "dkim-fail"), "signer.test")
        bad = bad.replace(b"Hello.", b"Hullo.")
        self.assertEqual(self.send("x@signer.test", bad)[0], 250)
        self.assertIn("dkim=fail", self.ar("dkim-fail")[0])

    def test_dmarc_reject(self):
        before = len(self.env.mailbox_bodies("alice@example.test"))
        code, text = self.send("bounce@other.test",
                               message("ceo@strict.test", "dmarc-reject"))
        self.assertEqual(code, 550)
        self.assertTrue(text.startswith("5.7.1"), text)
        self.assertEqual(len(self.env.mailbox_bodies("alice@example.test")),
                         before)

    def test_dmarc_pass_via_dkim_only(self):
        msg = dkim_sign(message("news@dk.test", "dmarc-dkim"), "dk.test")
        self.assertEqual(self.send("bounce@other.test", msg)[0], 250)
        ar, _ = self.ar("dmarc-dkim")
        self.assertIn("spf=none", ar)
        self.assertIn("dmarc=pass header.from=dk.test", ar)

    def test_dmarc_pass_via_spf_only(self):
        self.assertEqual(self.send("a@sp.test", message("a@sp.test",
                                                        "dmarc-spf"))[0], 250)
        ar, _ = self.ar("dmarc-spf")
        self.assertIn("dkim=none", ar)
        self.assertIn("dmarc=pass header.from=sp.test", ar)

    def test_dmarc_subdomain_policy(self):
        code, _ = self.send("x@other.test", message("x@news.org.test", "dmarc-sp"))
        self.assertEqual(code, 550)
        # The organizational domain itself has p=none: accepted.
        code, _ = self.send("x@other.test", message("x@org.test", "dmarc-p-none"))
        self.assertEqual(code, 250)
        self.assertIn("dmarc=fail (p=none)", self.ar("dmarc-p-none")[0])

    def test_dmarc_org_domain_from_public_suffix_list(self):
        code, _ = self.send("x@other.test",
                            message("x@shop.example.co.uk", "dmarc-psl"))
        self.assertEqual(code, 550)

    def test_dmarc_quarantine_header(self):
        code, _ = self.send("x@other.test", message("x@quar.test", "dmarc-q"))
        self.assertEqual(code, 250)
        ar, head = self.ar("dmarc-q")
        self.assertIn("dmarc=fail (p=quarantine)", ar)
        self.assertIn("\r\nX-Carteiro-DMARC: quarantine\r\n", head + "\r\n")

    def test_forged_results_removed(self):
        extra = (b"Authentication-Results: mail.example.test; spf=pass\r\n"
                 b"Authentication-Results: other.example.net; spf=pass\r\n")
        code, _ = self.send("a@sender.test", message("a@sender.test", "forged",
                                                     extra=extra))
        self.assertEqual(code, 250)
        ar, head = self.ar("forged")
        self.assertIn("Authentication-Results: other.example.net; spf=pass",
                      head)
        self.assertEqual(head.count("mail.example.test;"), 1)


if __name__ == "__main__":
    ct.main()
