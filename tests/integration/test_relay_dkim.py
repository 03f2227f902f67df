"""DKIM signing of submitted mail: messages relayed to a fake remote MX
carry ed25519-sha256 and rsa-sha256 signatures (both keys made with
carteiroctl dkim keygen) that python3-dkim verifies, for plain, 8-bit,
trailing-empty-line and long-folded-header messages."""

import os
import re
import sys
import unittest

import dkim

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import carteiro_test as ct  # noqa: E402
from fakemx import Sink, relay_setup, submit  # noqa: E402

RECORDS = {
    "remote.test": {"MX": [(10, "mx1.remote.test")]},
    "mx1.remote.test": {"A": ["127.0.0.2"]},
}

MESSAGES = [
    b"From: Alice <alice@example.test>\r\nTo: bob@remote.test\r\n"
    b"Subject: plain\r\nMessage-ID: <p1@example.test>\r\n\r\nHello Bob.\r\n",
    b"From: alice@example.test\r\nTo: bob@remote.test\r\nSubject: 8bit\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n\r\nOl\xc3\xa1, cora\xc3\xa7\xc3\xa3o\r\n",
    b"From: alice@example.test\r\nTo: bob@remote.test\r\nSubject: trailing\r\n"
    b"\r\nbody with trailing empty lines   \r\n\r\n\r\n\r\n",
    b"From: alice@example.test\r\nTo: bob@remote.test,\r\n  carol@remote.test\r\n"
    b"Subject: a long subject that is folded over\r\n several lines\r\n"
    b"\tto test relaxed canonicalization\r\n\r\nfolded\r\n",
]


class RelayDkim(unittest.TestCase):
    def test_signed_and_verified(self):
        env, dns, port = relay_setup(RECORDS)
        sink = Sink("127.0.0.2", port).start()
        try:
            txts = {}
            for alg in ("ed25519", "rsa"):
                out = env.ctl_ok("dkim", "keygen", "example.test",
                                 "--algorithm", alg)
                name = out.split()[0].rstrip(".")
                txts[name] = "".join(re.findall(r'"([^"]*)"', out)).encode()
            env.start_smtpd()
            for msg in MESSAGES:
                self.assertEqual(submit(env, ["bob@remote.test"], msg), {})
            got = sink.wait(len(MESSAGES))
            self.assertEqual(len(got), len(MESSAGES))

            def dnsfunc(name, timeout=5):
                return txts.get(name.decode().rstrip("."))

            for m in got:
                self.assertEqual(m.data.count(b"DKIM-Signature:"), 2, m.data)
                for i in range(2):
                    d = dkim.DKIM(m.data)
                    self.assertTrue(d.verify(idx=i, dnsfunc=dnsfunc),
                                    "signature %d of %r" % (i, m.data[:300]))
                self.assertIn(b"a=ed25519-sha256", m.data)
                self.assertIn(b"a=rsa-sha256", m.data)
                self.assertIn(b"d=example.test", m.data)
                self.assertNotIn(b" l=", m.data)
                # A changed body no longer verifies.
                tampered = m.data + b"tampered\r\n"
                try:
                    ok = dkim.DKIM(tampered).verify(idx=0, dnsfunc=dnsfunc)
                except dkim.ValidationError:
                    ok = False
                self.assertFalse(ok)
        finally:
            sink.stop()
            env.stop()
            dns.stop()


if __name__ == "__main__":
    ct.main()
