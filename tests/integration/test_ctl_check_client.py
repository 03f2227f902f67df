"""carteiroctl check DOMAIN, the client side (issue 15), against a fake DNS
and a running carteiro-webd (HTTPS with a certificate for autoconfig. and
mta-sts.): the autoconfig document fetched over HTTPS from the address the
resolver gives and compared with the listeners, the RFC 6186 SRV records,
the MTA-STS record and policy, the TLS-RPT record. Complete: every line
OK; missing: WARN or FAIL with the record to publish; wrong (an SRV port,
autoconfig that lists another port, webd down): FAIL."""

import os
import re
import unittest

import carteiro_test as ct
from fakedns import FakeDNS
from test_webd import start_webd

SRV = (("_submissions", "submissions"), ("_submission", "submission"),
       ("_pop3s", "pop3s"), ("_pop3", "pop3"))
KINDS = ("autocfg", "srv", "mta-sts", "tls-rpt")


class CtlCheckClient(unittest.TestCase):
    def setUp(self):
        self.dns = FakeDNS().start()
        self.env = ct.Env(users=(), conf={
            "relay": {"resolver": "127.0.0.1:%d" % self.dns.port}})
        d = os.path.join(self.env.dir, "web")
        os.mkdir(d)
        ca, cert, key = ct.make_certs(d, "mail.example.test", names=(
            "autoconfig.example.test", "mta-sts.example.test"))
        self.env.sections["tls"] = {"cert": cert, "key": key}
        os.environ["CARTEIRO_TEST_CA_FILE"] = ca
        self.webd = start_webd(self.env)
        self.complete = {
            "autoconfig.example.test": {"A": ["127.0.0.1"]},
            "mta-sts.example.test": {"A": ["127.0.0.1"]},
            "_mta-sts.example.test": {"TXT": ["v=STSv1; id=20261203"]},
            "_smtp._tls.example.test": {
                "TXT": ["v=TLSRPTv1; rua=mailto:tls@example.test"]},
        }
        for srv, kind in SRV:
            self.complete["%s._tcp.example.test" % srv] = {"SRV": [
                (0, 1, self.env.ports[kind], "mail.example.test.")]}
        for k, v in self.complete.items():
            self.dns.set(k, v)

    def tearDown(self):
        del os.environ["CARTEIRO_TEST_CA_FILE"]
        self.dns.stop()
        self.env.stop()

    def client_lines(self):
        """The lines of the client checks, with their publish lines."""
        r = self.env.ctl("check", "example.test", "--ip", "192.0.2.25")
        out, keep = [], False
        for line in r.stdout.splitlines():
            if line.startswith("     publish: "):
                if keep:
                    out.append(line)
                continue
            keep = len(line.split()) > 1 and line.split()[1] in KINDS
            if keep:
                out.append(line)
        return r.returncode, out, r.stdout

    def test_complete(self):
        rc, lines, out = self.client_lines()
        p = self.env.ports
        self.assertEqual(lines, [
            "OK   autocfg https://autoconfig.example.test/mail/"
            "config-v1.1.xml lists the servers",
            "OK   srv     _submissions._tcp.example.test points at "
            "mail.example.test:%d" % p["submissions"],
            "OK   srv     _submission._tcp.example.test points at "
            "mail.example.test:%d" % p["submission"],
            "OK   srv     _pop3s._tcp.example.test points at "
            "mail.example.test:%d" % p["pop3s"],
            "OK   srv     _pop3._tcp.example.test points at "
            "mail.example.test:%d" % p["pop3"],
            "OK   mta-sts _mta-sts.example.test: v=STSv1; id=20261203",
            "OK   mta-sts https://mta-sts.example.test/.well-known/"
            "mta-sts.txt: mode testing",
            "OK   tls-rpt _smtp._tls.example.test: v=TLSRPTv1; "
            "rua=mailto:tls@example.test",
        ], out)

    def test_missing(self):
        for k in self.complete:
            self.dns.set(k, {})
        rc, lines, out = self.client_lines()
        self.assertEqual(rc, 1)
        p = self.env.ports
        want = [
            "FAIL autocfg autoconfig.example.test has no address",
            "     publish: autoconfig.example.test. IN CNAME "
            "mail.example.test.",
        ]
        for srv, kind in SRV:
            want += ["WARN srv     %s._tcp.example.test has no SRV record "
                     "(RFC 6186)" % srv,
                     "     publish: %s._tcp.example.test. IN SRV 0 1 %d "
                     "mail.example.test." % (srv, p[kind])]
        want += [
            "WARN mta-sts _mta-sts.example.test has no MTA-STS record "
            "(senders may skip TLS to example.test)",
            "STAMP",
            "FAIL mta-sts mta-sts.example.test has no address",
            "     publish: mta-sts.example.test. IN CNAME "
            "mail.example.test.",
            "WARN tls-rpt _smtp._tls.example.test has no TLS-RPT record "
            "(no reports of TLS failures to example.test)",
            "     publish: _smtp._tls.example.test. IN TXT "
            "\"v=TLSRPTv1; rua=mailto:postmaster@example.test\"",
        ]
        i = want.index("STAMP")
        self.assertRegex(lines[i], r'^     publish: _mta-sts\.example\.test\. '
                         r'IN TXT "v=STSv1; id=\d{8}T\d{6}"$')
        want[i] = lines[i]
        self.assertEqual(lines, want, out)

    def test_wrong(self):
        p = self.env.ports
        # An SRV record with another port; POP3 without TLS off and its
        # SRV absent ("not offered"); autoconfig (from webd, which still
        # has the old config) listing the old submission port.
        self.dns.set("_submission._tcp.example.test", {"SRV": [
            (0, 1, 2525, "mail.example.test")]})
        self.dns.set("_pop3._tcp.example.test", {})
        self.env.sections["pop3d"]["listen"] = ""
        self.env.sections["smtpd"]["submissions_listen"] = \
            "127.0.0.1:%d" % ct.free_port()
        self.env.write_conf()
        new = int(self.env.sections["smtpd"]["submissions_listen"]
                  .split(":")[1])
        rc, lines, out = self.client_lines()
        self.assertEqual(rc, 1)
        self.assertIn("FAIL autocfg https://autoconfig.example.test/mail/"
                      "config-v1.1.xml does not list _submissions on "
                      "mail.example.test:%d (SSL)" % new, lines, out)
        self.assertIn("FAIL srv     _submission._tcp.example.test does not "
                      "point at this server", lines)
        self.assertIn("     publish: _submission._tcp.example.test. IN SRV "
                      "0 1 %d mail.example.test." % p["submission"], lines)
        self.assertIn("OK   srv     _pop3._tcp.example.test: not offered",
                      lines)
        # The old SRV for the new submissions port is wrong now as well.
        self.assertIn("FAIL srv     _submissions._tcp.example.test does not "
                      "point at this server", lines)

    def test_webd_down(self):
        self.webd.stop()
        rc, lines, out = self.client_lines()
        self.assertEqual(rc, 1)
        self.assertRegex(lines[0], r"^FAIL autocfg autoconfig\.example\.test "
                         r"\(127\.0\.0\.1\): https://autoconfig\.example\."
                         r"test:%d/mail/config-v1\.1\.xml: " %
                         self.env.ports["https"])
        self.assertTrue(any(l.startswith("FAIL mta-sts mta-sts.example.test "
                                         "(127.0.0.1): ") for l in lines),
                        out)


if __name__ == "__main__":
    unittest.main()
