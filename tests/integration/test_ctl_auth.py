"""carteiroctl dkim verify, dmarc and dnsbl against a fake DNS ([relay]
resolver): the first word is the result keyword, then the evidence, line
by line. Exit 0 whenever a verdict is printed, 1 (one stderr line) when the
command cannot run."""
import os
import unittest

import dkim

import carteiro_test as ct
from fakedns import FakeDNS


# RFC 8463 A.2: an ed25519 key and its key record.
SEED = b"nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A="
KEY_TXT = "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
MSG = (b"From: Alice <alice@example.test>\r\nTo: bob@example.org\r\n"
       b"Subject: hi\r\n\r\nhello\r\n")


def sign(msg, domain, selector):
    return dkim.sign(msg, selector.encode(), domain.encode(), SEED,
                     signature_algorithm=b"ed25519-sha256",
                     include_headers=[b"from", b"to", b"subject"]) + msg


class CtlAuth(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dns = FakeDNS().start()
        cls.env = ct.Env(users=("alice@example.test",), conf={
            "relay": {"resolver": "127.0.0.1:%d" % cls.dns.port},
            "smtpd": {"dnsbl": "bl.test, clean.test"}})

    @classmethod
    def tearDownClass(cls):
        cls.dns.stop()
        cls.env.stop()

    def run_ok(self, *args, input=None):
        r = self.env.ctl(*args, input=input)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stderr, "")
        return r.stdout.splitlines()

    def run_err(self, *args, input=None):
        r = self.env.ctl(*args, input=input)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertEqual(r.stdout, "")
        self.assertEqual(r.stderr.count("\n"), 1, r.stderr)
        self.assertTrue(r.stderr.startswith("carteiroctl: "), r.stderr)
        return r.stderr

    def set_zones(self, zones):
        self.env.sections["smtpd"]["dnsbl"] = zones
        self.env.write_conf()

    # ---- dkim verify ----

    def verify_file(self, data, name="msg.eml"):
        path = os.path.join(self.env.dir, name)
        with open(path, "wb") as f:
            f.write(data)
        return self.run_ok("dkim", "verify", path)

    def test_dkim_key_among_other_txt(self):
        # The selector name carries unrelated TXT records before the key.
        self.dns.set("sel._domainkey.example.test", {"TXT": [
            "google-site-verification=abc123", "v=spf1 -all", KEY_TXT]})
        self.assertEqual(self.verify_file(sign(MSG, "example.test", "sel")), [
            "pass signatures=1",
            "pass d=example.test s=sel a=ed25519-sha256 (good signature)"])

    def test_dkim_stdin_and_tampered(self):
        self.dns.set("sel._domainkey.example.test", {"TXT": [KEY_TXT]})
        signed = sign(MSG, "example.test", "sel")
        out = self.run_ok("dkim", "verify", "-", input=signed.decode())
        self.assertEqual(out[0], "pass signatures=1")
        bad = signed.replace(b"hello", b"HELLO")
        self.assertEqual(self.verify_file(bad), [
            "fail signatures=1",
            "fail d=example.test s=sel a=ed25519-sha256 "
            "(body hash did not verify)"])

    def test_dkim_several_signatures(self):
        self.dns.set("sel._domainkey.example.test", {"TXT": [KEY_TXT]})
        self.dns.set("gone._domainkey.other.test", "NXDOMAIN")
        self.dns.set("k._domainkey.broken.test", "SERVFAIL")
        self.dns.set("nokey._domainkey.example.test",
                     {"TXT": ["v=spf1 -all"]})
        m = sign(MSG, "example.test", "sel")
        m = sign(m, "other.test", "gone")
        m = sign(m, "broken.test", "k")
        m = sign(m, "example.test", "nokey")
        m = b"DKIM-Signature: v=1; a=ed25519-sha256; d=x.test\r\n" + m
        # Topmost first; the verdict is pass because one passes.
        self.assertEqual(self.verify_file(m), [
            "pass signatures=5",
            "neutral d=x.test s=- a=ed25519-sha256 (signature syntax error)",
            "permerror d=example.test s=nokey a=ed25519-sha256 "
            "(no DKIM key record at the selector)",
            "temperror d=broken.test s=k a=ed25519-sha256 "
            "(key lookup failed)",
            "permerror d=other.test s=gone a=ed25519-sha256 "
            "(no key for signature)",
            "pass d=example.test s=sel a=ed25519-sha256 (good signature)"])
        # Without the passing one: the topmost signature's result.
        m2 = sign(MSG, "other.test", "gone")
        m2 = sign(m2, "broken.test", "k")
        self.assertEqual(self.verify_file(m2)[0], "temperror signatures=2")

    def test_dkim_unsigned_and_errors(self):
        self.assertEqual(self.verify_file(MSG), ["none signatures=0"])
        err = self.run_err("dkim", "verify",
                           os.path.join(self.env.dir, "missing.eml"))
        self.assertIn("No such file or directory", err)
        self.run_err("dkim", "verify")

    # ---- dmarc ----

    def test_dmarc_found_at_from_domain(self):
        self.dns.set("_dmarc.example.test", {"TXT": [
            "v=spf1 -all",
            "V = DMARC1; p=reject; pct=abc; adkim=s; "
            "rua=mailto:d@example.test"]})
        self.assertEqual(self.run_ok("dmarc", "Example.TEST"), [
            "found _dmarc.example.test",
            "from-domain: example.test",
            "organizational-domain: example.test",
            "record: V = DMARC1; p=reject; pct=abc; adkim=s; "
            "rua=mailto:d@example.test",
            "p: reject",
            "sp: reject (not given: as p)",
            'pct: 100 (invalid "abc")',
            "adkim: s",
            "aspf: r (not given: relaxed)",
            "rua: mailto:d@example.test",
            "policy: reject (p)"])

    def test_dmarc_subdomain_uses_org_sp(self):
        self.dns.set("_dmarc.example.test", {"TXT": [
            "v=DMARC1; p=reject; sp=quarantine; pct=50; aspf=x"]})
        self.dns.set("_dmarc.a.b.example.test", {})
        self.assertEqual(self.run_ok("dmarc", "a.b.example.test"), [
            "found _dmarc.example.test",
            "from-domain: a.b.example.test",
            "organizational-domain: example.test",
            "record: v=DMARC1; p=reject; sp=quarantine; pct=50; aspf=x",
            "p: reject",
            "sp: quarantine",
            "pct: 50",
            "adkim: r (not given: relaxed)",
            'aspf: r (invalid "x")',
            "rua: - (not given)",
            "policy: quarantine (sp, the organizational domain's record)"])

    def test_dmarc_rua_only_acts_as_none(self):
        self.dns.set("_dmarc.example.test", {"TXT": [
            "v=DMARC1; p=bogus; rua=mailto:d@example.test"]})
        self.assertEqual(self.run_ok("dmarc", "example.test"), [
            "found _dmarc.example.test",
            "from-domain: example.test",
            "organizational-domain: example.test",
            "record: v=DMARC1; p=bogus; rua=mailto:d@example.test",
            'p: - (invalid "bogus")',
            "sp: - (not given: as p)",
            "pct: 100 (not given: 100)",
            "adkim: r (not given: relaxed)",
            "aspf: r (not given: relaxed)",
            "rua: mailto:d@example.test",
            "note: no valid p=, but a valid rua=: as p=none "
            "(RFC 7489 6.6.3)",
            "policy: none (as p=none)"])

    def test_dmarc_unusable_none_temperror(self):
        self.dns.set("_dmarc.example.test", {"TXT": [
            "v=DMARC1; p=reject; sp=bogus"]})
        out = self.run_ok("dmarc", "example.test")
        self.assertEqual(out[0], "permerror _dmarc.example.test")
        self.assertIn("p: reject", out)
        self.assertIn('sp: - (invalid "bogus")', out)
        self.assertEqual(out[-1], "reason: DMARC record with an invalid sp= "
                         "and without a valid rua=")
        self.dns.set("_dmarc.example.test", {"TXT": [
            "v=DMARC1; p=none", "v=DMARC1; p=reject"]})
        out = self.run_ok("dmarc", "example.test")
        self.assertEqual(out[0], "permerror _dmarc.example.test")
        self.assertEqual(out[-1], "reason: more than one DMARC record")

        self.dns.set("_dmarc.example.test", {"TXT": ["v=dmarc1; p=reject"]})
        self.assertEqual(self.run_ok("dmarc", "sub.example.test"), [
            "none _dmarc.example.test",
            "from-domain: sub.example.test",
            "organizational-domain: example.test",
            "reason: no DMARC record at _dmarc.sub.example.test or "
            "_dmarc.example.test"])
        self.dns.set("_dmarc.example.test", "SERVFAIL")
        self.assertEqual(self.run_ok("dmarc", "example.test"), [
            "temperror _dmarc.example.test",
            "from-domain: example.test",
            "organizational-domain: example.test",
            "reason: DNS error fetching the DMARC record"])
        self.run_err("dmarc", "not a domain")

    # ---- dnsbl ----

    def test_dnsbl_listed(self):
        self.set_zones("bl.test, clean.test, dead.test")
        self.dns.set("1.2.0.192.bl.test", {
            "A": ["127.0.0.2", "127.0.0.4"],
            "TXT": ["Listed: see https://bl.test/192.0.2.1"]})
        self.dns.set("dead.test", "SERVFAIL")
        self.dns.set("1.2.0.192.dead.test", "SERVFAIL")
        self.assertEqual(self.run_ok("dnsbl", "192.0.2.1"), [
            "listed 192.0.2.1",
            'bl.test: listed 127.0.0.2, 127.0.0.4 '
            '"Listed: see https://bl.test/192.0.2.1"',
            "clean.test: clean",
            "dead.test: temperror (1.2.0.192.dead.test did not answer)"])

    def test_dnsbl_clean_temperror_none(self):
        self.set_zones("bl.test, clean.test")
        # Listed without a TXT; and an answer outside 127/8 (RFC 5782 2.1).
        self.dns.set("3.2.0.192.bl.test", {"A": ["127.0.0.2"]})
        self.dns.set("4.2.0.192.bl.test", {"A": ["10.0.0.1"]})
        self.assertEqual(self.run_ok("dnsbl", "192.0.2.3"), [
            "listed 192.0.2.3",
            "bl.test: listed 127.0.0.2 (no TXT reason)",
            "clean.test: clean"])
        self.assertEqual(self.run_ok("dnsbl", "192.0.2.4"), [
            "clean 192.0.2.4",
            "bl.test: clean (answer 10.0.0.1 is not in 127.0.0.0/8)",
            "clean.test: clean"])
        self.dns.set("5.2.0.192.clean.test", "SERVFAIL")
        self.assertEqual(self.run_ok("dnsbl", "192.0.2.5"), [
            "temperror 192.0.2.5",
            "bl.test: clean",
            "clean.test: temperror (5.2.0.192.clean.test did not answer)"])
        # IPv6: nibbles (RFC 5782 2.4)
        name = ".".join(reversed("20010db8000000000000000000000001")) + \
            ".bl.test"
        self.dns.set(name, {"A": ["127.0.0.10"], "TXT": ["v6 spam"]})
        self.assertEqual(self.run_ok("dnsbl", "2001:db8::1"), [
            "listed 2001:db8::1",
            'bl.test: listed 127.0.0.10 "v6 spam"',
            "clean.test: clean"])
        self.set_zones("")
        self.assertEqual(self.run_ok("dnsbl", "192.0.2.3"), [
            "none 192.0.2.3", "no zones configured ([smtpd] dnsbl)"])
        self.assertIn("is not an IP address", self.run_err("dnsbl", "bogus"))


if __name__ == "__main__":
    ct.main()
