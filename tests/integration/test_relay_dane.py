"""DANE for outbound delivery (issue 16 item 2, RFC 7672): when the MX
answer and the TLSA answer of _25._tcp.MXHOST carry the resolver's AD bit,
the MX must do STARTTLS and its certificate must match a DANE-EE(3) record
(SPKI or full certificate, SHA-256 or SHA-512); a mismatch, or TLSA
without STARTTLS, defers (4xx, the message stays queued, nothing bounces).
Without the AD bit the TLSA records are ignored and delivery is
opportunistic. The fake DNS sets AD per name; the fake MX offers
STARTTLS with the test certificate."""

import hashlib
import os
import ssl
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fakemx import Sink, queue_ids, queue_insert, relay_setup, wait_for  # noqa: E402,E501

MSG = b"From: alice@example.test\r\nSubject: dane\r\n\r\nhello\r\n"
TLSA_NAME = "_25._tcp.mx1.remote.test"


def spki_sha256(cert):
    out = subprocess.run(["certtool", "--key-id", "--hash", "sha256",
                          "--load-certificate", cert], check=True,
                         capture_output=True, text=True).stdout
    return out.strip().splitlines()[-1]


def cert_sha512(cert):
    with open(cert) as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    return hashlib.sha512(der).hexdigest()


def records(tlsa, ad=True):
    mx = {"MX": [(10, "mx1.remote.test")]}
    tl = {"TLSA": tlsa}
    if ad:
        mx["AD"] = True
        tl["AD"] = True
    return {
        "remote.test": mx,
        "mx1.remote.test": {"A": ["127.0.0.2"]},
        TLSA_NAME: tl,
    }


class RelayDane(unittest.TestCase):
    def start(self, recs, tls=True):
        self.env, self.dns, port = relay_setup(recs)
        self.port = port
        env = self.env
        self.sink = Sink("127.0.0.2", port,
                         tls=(env.cert, env.key) if tls else None).start()
        self.addCleanup(self.dns.stop)
        self.addCleanup(env.stop)
        self.addCleanup(self.sink.stop)
        return env

    def deferred(self, env, code):
        """The one recipient is still queued, its last error a 4xx that
        names the DANE failure, after at least one attempt."""
        def attempted():
            rows = env.query("SELECT q.attempts, r.status, r.last_error "
                             "FROM queue q JOIN queue_rcpt r "
                             "ON r.queue_id = q.id")
            return rows and rows[0][0] >= 1 and rows[0][2] and rows
        rows = wait_for(attempted, timeout=20)
        self.assertTrue(rows, "no attempt was recorded")
        attempts, status, err = rows[0]
        self.assertEqual(status, 0)                 # still pending
        self.assertTrue(err.startswith(code), err)
        self.assertEqual(self.sink.messages, [])
        self.assertEqual(env.mailbox_bodies("alice@example.test"), [])
        return err

    def test_dane_ee_spki_match_delivers(self):
        # A usable SPKI SHA-256 record among a mismatching one and an
        # unusable PKIX-EE(1) one: the matching one wins.
        recs = records([(3, 1, 1, "00" * 32), (1, 1, 1, "11" * 32)])
        env = self.start(recs)
        self.dns.set(TLSA_NAME, {"TLSA": [
            (3, 1, 1, "00" * 32), (1, 1, 1, "11" * 32),
            (3, 1, 1, spki_sha256(env.cert))], "AD": True})
        queue_insert(env, "alice@example.test", ["bob@remote.test"], MSG)
        env.start_smtpd()
        got = self.sink.wait(1, timeout=20)
        self.assertEqual([(m.rcpts, m.tls) for m in got],
                         [(["bob@remote.test"], True)])
        self.assertTrue(wait_for(lambda: not queue_ids(env)))
        log = env.log_lines(env.smtpd, "relay.dane")
        self.assertTrue(any("tlsa=3 usable=2" in x for x in log), log)
        self.assertTrue(any("result=match" in x for x in log), log)

    def test_dane_ee_full_cert_sha512_match_delivers(self):
        env = self.start(records([]))
        self.dns.set(TLSA_NAME, {"TLSA": [(3, 0, 2, cert_sha512(env.cert))],
                                 "AD": True})
        queue_insert(env, "alice@example.test", ["bob@remote.test"], MSG)
        env.start_smtpd()
        got = self.sink.wait(1, timeout=20)
        self.assertEqual([(m.rcpts, m.tls) for m in got],
                         [(["bob@remote.test"], True)])
        log = env.log_lines(env.smtpd, "relay.dane")
        self.assertTrue(any("tlsa=1 usable=1" in x for x in log), log)
        self.assertTrue(any("result=match" in x for x in log), log)

    def dane_ta(self, names):
        """A chain for names (leaf, then its CA) on the sink; a DANE-TA(2)
        record with the SHA-256 of the CA certificate."""
        import tempfile
        from carteiro_test import make_certs
        d = tempfile.mkdtemp(dir=self.env.dir)
        ca, cert, key = make_certs(d, names)
        chain = os.path.join(d, "chain.pem")
        with open(chain, "w") as out:
            for f in (cert, ca):
                with open(f) as fin:
                    out.write(fin.read())
        self.sink.stop()
        self.sink = Sink("127.0.0.2", self.port, tls=(chain, key)).start()
        self.addCleanup(self.sink.stop)
        with open(ca) as f:
            der = ssl.PEM_cert_to_DER_cert(f.read())
        self.dns.set(TLSA_NAME, {"TLSA": [
            (2, 0, 1, hashlib.sha256(der).hexdigest())], "AD": True})

    def test_dane_ta_match_delivers(self):
        env = self.start(records([]))
        self.dane_ta("mx1.remote.test")
        queue_insert(env, "alice@example.test", ["bob@remote.test"], MSG)
        env.start_smtpd()
        got = self.sink.wait(1, timeout=20)
        self.assertEqual([(m.rcpts, m.tls) for m in got],
                         [(["bob@remote.test"], True)])
        log = env.log_lines(env.smtpd, "relay.dane")
        self.assertTrue(any("result=match" in x for x in log), log)

    def test_dane_ta_wrong_name_defers(self):
        # The issuer matches, but the leaf does not name the MX host
        # (RFC 7672 3.2.3).
        env = self.start(records([]))
        self.dane_ta("other.remote.test")
        queue_insert(env, "alice@example.test", ["bob@remote.test"], MSG)
        env.start_smtpd()
        err = self.deferred(env, "451 4.7.5 ")
        self.assertIn("matches a DANE-TA record but does not name the MX "
                      "host", err)

    def test_dane_mismatch_defers(self):
        env = self.start(records([(3, 1, 1, "ab" * 32)]))
        queue_insert(env, "alice@example.test", ["bob@remote.test"], MSG)
        env.start_smtpd()
        err = self.deferred(env, "451 4.7.5 ")
        self.assertIn("DANE TLSA verification failed", err)
        # Not retried in clear on the same host.
        time.sleep(0.5)
        self.assertEqual(self.sink.messages, [])
        log = env.log_lines(env.smtpd, "relay.dane")
        self.assertTrue(any("result=mismatch tlsrpt=validation-failure"
                            in x for x in log), log)

    def test_no_ad_bit_ignores_tlsa(self):
        # The same mismatching TLSA, but nothing authenticated: ignored,
        # opportunistic TLS delivers.
        env = self.start(records([(3, 1, 1, "ab" * 32)], ad=False))
        queue_insert(env, "alice@example.test", ["bob@remote.test"], MSG)
        env.start_smtpd()
        got = self.sink.wait(1, timeout=20)
        self.assertEqual([(m.rcpts, m.tls) for m in got],
                         [(["bob@remote.test"], True)])
        self.assertTrue(wait_for(lambda: not queue_ids(env)))
        self.assertFalse(any("result=mismatch" in x for x in
                             env.log_lines(env.smtpd, "relay.dane")))

    def test_tlsa_without_ad_on_mx_ignored(self):
        # RFC 7672 2.2.1: an unauthenticated MX answer means no TLSA
        # lookup at all, even if the TLSA answer itself were signed.
        recs = records([(3, 1, 1, "ab" * 32)])
        del recs["remote.test"]["AD"]
        env = self.start(recs)
        queue_insert(env, "alice@example.test", ["bob@remote.test"], MSG)
        env.start_smtpd()
        got = self.sink.wait(1, timeout=20)
        self.assertEqual(len(got), 1)
        self.assertNotIn((TLSA_NAME, "TLSA"), self.dns.queries)

    def test_tlsa_without_starttls_defers(self):
        env = self.start(records([(3, 1, 1, "ab" * 32)]), tls=False)
        queue_insert(env, "alice@example.test", ["bob@remote.test"], MSG)
        env.start_smtpd()
        err = self.deferred(env, "451 4.7.5 ")
        self.assertIn("has DANE TLSA records but STARTTLS is not offered",
                      err)


if __name__ == "__main__":
    unittest.main()
