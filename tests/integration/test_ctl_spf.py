"""carteiroctl spf IP SENDER [HELO] against a fake DNS: the result first,
then the evidence in the order it happened: every DNS query with its
answers, each record evaluated, the term that matched (innermost first),
and the exp= explanation of a fail. The RFC 7208 suite (test_spf_suite)
checks the results; this checks the evidence, byte for byte."""
import unittest

import carteiro_test as ct
from fakedns import FakeDNS

ZONE = {
    "example.test": {"TXT": [
        "v=spf1 include:_spf.example.test -all exp=why.example.test",
        "google-site-verification=x"]},
    "_spf.example.test": {"TXT": ["v=spf1 a:mail.example.test"]},
    "mail.example.test": {"A": ["192.0.2.1"]},
    "why.example.test": {"TXT": ["%{i} may not send for %{d}"]},
    "redir.example.test": {"TXT": ["v=spf1 redirect=%{d2}"]},
    "helo.example.test": {"TXT": ["v=spf1 ?all"]},
    "broken.example.test": {"TXT": ["v=spf1 -all exp="]},
    # Over 512 octets: truncated over UDP, asked again over TCP.
    "long.example.test": {"TXT": ["v=spf1 " + " ".join(
        "ip4:198.51.100.%d" % i for i in range(1, 40)) + " ip4:192.0.2.1 -all"]},
}

RECORD = '"v=spf1 include:_spf.example.test -all exp=why.example.test"'
COMMON = (
    'query TXT "example.test" ok %s "google-site-verification=x"\n'
    'record "example.test" %s\n'
    'query TXT "_spf.example.test" ok "v=spf1 a:mail.example.test"\n'
    'record "_spf.example.test" "v=spf1 a:mail.example.test"\n'
    'query A "mail.example.test" ok "192.0.2.1"\n' % (RECORD, RECORD))


class CtlSpf(unittest.TestCase):
    def setUp(self):
        self.dns = FakeDNS(ZONE, tcp=True).start()
        self.env = ct.Env(users=(), domains=(), conf={
            "relay": {"resolver": "127.0.0.1:%d" % self.dns.port}})

    def tearDown(self):
        self.dns.stop()
        self.env.stop()

    def spf(self, *args):
        r = self.env.ctl("spf", *args)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")
        return r.stdout

    def test_pass_through_include(self):
        self.assertEqual(
            self.spf("192.0.2.1", "a@example.test", "helo.test"),
            'pass\ndomain "example.test"\nwhy mechanism matched\n' + COMMON +
            'match "_spf.example.test" "a:mail.example.test"\n'
            'match "example.test" "include:_spf.example.test"\n')

    def test_fail_with_explanation(self):
        self.assertEqual(
            self.spf("192.0.2.2", "a@example.test"),
            'fail\ndomain "example.test"\nwhy mechanism matched\n' + COMMON +
            'match "example.test" "-all"\n'
            'query TXT "why.example.test" ok "%{i} may not send for %{d}"\n'
            'explanation "example.test" '
            '"192.0.2.2 may not send for example.test"\n')

    def test_redirect_and_empty_sender(self):
        # <>: postmaster@HELO is checked (RFC 7208 2.4).
        self.assertEqual(
            self.spf("2001:db8::1", "<>", "helo.example.test"),
            'neutral\ndomain "helo.example.test"\nwhy mechanism matched\n'
            'query TXT "helo.example.test" ok "v=spf1 ?all"\n'
            'record "helo.example.test" "v=spf1 ?all"\n'
            'match "helo.example.test" "?all"\n')
        out = self.spf("192.0.2.1", "x@redir.example.test", "h.test")
        self.assertTrue(out.startswith(
            'pass\ndomain "redir.example.test"\nwhy mechanism matched\n'
            'query TXT "redir.example.test" ok "v=spf1 redirect=%{d2}"\n'
            'record "redir.example.test" "v=spf1 redirect=%{d2}"\n'
            'match "redir.example.test" "redirect"\n'), out)

    def test_errors_and_no_record(self):
        self.assertEqual(
            self.spf("192.0.2.1", "a@broken.example.test"),
            'permerror\ndomain "broken.example.test"\n'
            'why syntax error in exp\n'
            'query TXT "broken.example.test" ok "v=spf1 -all exp="\n'
            'record "broken.example.test" "v=spf1 -all exp="\n')
        self.assertEqual(
            self.spf("192.0.2.1", "a@nowhere.test"),
            'none\ndomain "nowhere.test"\nwhy no SPF record\n'
            'query TXT "nowhere.test" none\n')
        # A name no query can carry: non-existent, not a DNS error.
        self.assertEqual(
            self.spf("192.0.2.1", "a@x..example.test").split("\n")[0],
            "none")
        self.dns.set("example.test", "SERVFAIL")
        self.assertEqual(
            self.spf("192.0.2.1", "a@example.test"),
            'temperror\ndomain "example.test"\n'
            'why DNS error fetching the SPF record\n'
            'query TXT "example.test" tempfail\n')

    def test_long_record_over_tcp(self):
        out = self.spf("192.0.2.1", "a@long.example.test")
        self.assertEqual(out.split("\n")[:3],
                         ["pass", 'domain "long.example.test"',
                          "why mechanism matched"])
        self.assertIn('match "long.example.test" "ip4:192.0.2.1"\n', out)
        # Once over UDP (truncated), once over TCP.
        self.assertEqual(self.dns.queries.count(("long.example.test", "TXT")),
                         2)

    def test_usage(self):
        for args, err in (
                ((), "usage: carteiroctl -c CONF spf [--timeout MS] IP "
                     "SENDER [HELO]"),
                (("192.0.2.1",), "usage: carteiroctl -c CONF spf "
                                 "[--timeout MS] IP SENDER [HELO]"),
                (("x", "a@b.test"), "spf: x is not an IP address"),
                (("192.0.2.1", ""), "spf: an empty SENDER needs a HELO name"),
                (("--timeout", "0", "192.0.2.1", "a@b.test"),
                 "spf: --timeout takes milliseconds (1-60000)")):
            r = self.env.ctl("spf", *args)
            self.assertEqual((r.returncode, r.stdout, r.stderr),
                             (1, "", "carteiroctl: %s\n" % err))


if __name__ == "__main__":
    unittest.main()
