"""carteiroctl check DOMAIN against a fake DNS: a complete domain is all OK
and exit 0; each missing record is a FAIL naming the record to publish, and
the exit status is 1."""
import os
import re
import unittest

import carteiro_test as ct
from fakedns import FakeDNS


IP = "192.0.2.25"


class CtlCheck(unittest.TestCase):
    def setUp(self):
        self.dns = FakeDNS().start()
        self.env = ct.Env(users=("alice@example.test",), conf={
            "relay": {"resolver": "127.0.0.1:%d" % self.dns.port},
            "smtpd": {"dnsbl": "bl.test"},
            # webd's documents: test_ctl_check_client.py
            "http": {"autoconfig": "no", "mta_sts": "no"}})
        out = self.env.ctl_ok("dkim", "keygen", "example.test")
        self.dkim_txt = re.search(r'"(.*)"', out).group(1)
        self.complete = {
            "example.test": {"MX": [(10, "mail.example.test")],
                             "TXT": ["v=spf1 mx -all"]},
            "mail.example.test": {"A": [IP]},
            "25.2.0.192.in-addr.arpa": {"PTR": ["mail.example.test"]},
            "ed25519._domainkey.example.test": {"TXT": [self.dkim_txt]},
            "_dmarc.example.test": {"TXT": ["v=DMARC1; p=reject"]},
            "2.0.0.127.bl.test": {"A": ["127.0.0.2"]},
            "_mta-sts.example.test": {"TXT": ["v=STSv1; id=1"]},
            "_smtp._tls.example.test": {
                "TXT": ["v=TLSRPTv1; rua=mailto:tls@example.test"]},
        }
        for srv, kind in (("_submissions", "submissions"),
                          ("_submission", "submission"),
                          ("_pop3s", "pop3s"), ("_pop3", "pop3")):
            self.complete["%s._tcp.example.test" % srv] = {"SRV": [
                (0, 1, self.env.ports[kind], "mail.example.test")]}
        for k, v in self.complete.items():
            self.dns.set(k, v)

    def tearDown(self):
        self.dns.stop()
        self.env.stop()

    def check(self):
        r = self.env.ctl("check", "example.test", "--ip", IP)
        return r.returncode, r.stdout

    def test_complete_domain_all_ok(self):
        rc, out = self.check()
        self.assertEqual(rc, 0, out)
        lines = out.splitlines()
        kinds = [l.split()[1] for l in lines[:-1]]
        self.assertEqual(kinds, ["mx", "host", "ptr", "spf", "dkim", "dmarc",
                                 "dnsbl", "srv", "srv", "srv", "srv",
                                 "mta-sts", "tls-rpt"], out)
        self.assertTrue(all(l.startswith("OK ") for l in lines[:-1]), out)
        self.assertEqual(lines[-1], "0 FAIL, 0 WARN")

    def expect_fail(self, kind, publish):
        rc, out = self.check()
        self.assertEqual(rc, 1, out)
        self.assertRegex(out, r"(?m)^FAIL %s " % kind)
        self.assertIn("     publish: " + publish + "\n", out)
        return out

    def test_missing_mx(self):
        self.dns.set("example.test", {"TXT": ["v=spf1 mx -all"]})
        # Without MX, "mx" in SPF authorises nothing either.
        out = self.expect_fail("mx", "example.test. IN MX 10 mail.example.test.")
        self.assertIn('publish: example.test. IN TXT "v=spf1 mx ip4:%s -all"' % IP,
                      out)

    def test_missing_host(self):
        self.dns.set("mail.example.test", {})
        self.expect_fail("host", "mail.example.test. IN A %s" % IP)

    def test_missing_ptr(self):
        self.dns.set("25.2.0.192.in-addr.arpa", {})
        self.expect_fail("ptr", "25.2.0.192.in-addr.arpa. IN PTR mail.example.test.")

    def test_missing_spf(self):
        self.dns.set("example.test", {"MX": [(10, "mail.example.test")]})
        out = self.expect_fail(
            "spf", 'example.test. IN TXT "v=spf1 mx ip4:%s -all"' % IP)
        self.assertIn("has no SPF record", out)

    def test_spf_not_authorising(self):
        self.dns.set("example.test", {"MX": [(10, "mail.example.test")],
                                      "TXT": ["v=spf1 ip4:198.51.100.1 -all"]})
        out = self.expect_fail(
            "spf", 'example.test. IN TXT "v=spf1 mx ip4:%s -all"' % IP)
        self.assertIn("spf=fail", out)

    def test_missing_dkim(self):
        self.dns.set("ed25519._domainkey.example.test", {})
        self.expect_fail("dkim", 'ed25519._domainkey.example.test. IN TXT "%s"'
                         % self.dkim_txt)

    def test_wrong_dkim(self):
        self.dns.set("ed25519._domainkey.example.test",
                     {"TXT": ["v=DKIM1; k=ed25519; p=AAAA"]})
        out = self.expect_fail("dkim", 'ed25519._domainkey.example.test. IN TXT "%s"'
                               % self.dkim_txt)
        self.assertIn("does not match the local key", out)

    def test_missing_dmarc(self):
        self.dns.set("_dmarc.example.test", {})
        self.expect_fail("dmarc", '_dmarc.example.test. IN TXT "v=DMARC1; '
                         'p=quarantine; rua=mailto:postmaster@example.test"')

    def test_dmarc_read_as_the_daemon_reads_it(self):
        # RFC 7489 6.4: "V = DMARC1" is a record; sp=none is not p=none.
        self.dns.set("_dmarc.example.test",
                     {"TXT": ["V = DMARC1; sp=none; p=reject"]})
        rc, out = self.check()
        self.assertEqual(rc, 0, out)
        self.assertRegex(out, r"(?m)^OK +dmarc ")
        self.dns.set("_dmarc.example.test",
                     {"TXT": ["v=DMARC1; p=none; sp=reject"]})
        rc, out = self.check()
        self.assertEqual(rc, 0, out)
        self.assertRegex(out, r"(?m)^WARN +dmarc .*monitoring only")

    def test_listed_on_dnsbl(self):
        self.dns.set("25.2.0.192.bl.test", {"A": ["127.0.0.2"]})
        rc, out = self.check()
        self.assertEqual(rc, 1)
        self.assertIn("FAIL dnsbl   %s is listed on bl.test (127.0.0.2)" % IP, out)

    def test_bad_arguments(self):
        r = self.env.ctl("check", "example.test", "--ip", "not-an-ip")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr.count("\n"), 1)
        r = self.env.ctl("check")
        self.assertEqual(r.returncode, 1)


if __name__ == "__main__":
    ct.main()
