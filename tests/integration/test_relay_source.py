"""Dedicated source addresses (issue 16 item 6): [relay] source_ip, and a
local domain's own address and HELO name (carteiroctl domain set DOMAIN
source_ip= helo=), chosen by the sender's domain and seen by the fake
MX as the peer address and EHLO name; carteiroctl check verifies the
forward-confirmed reverse DNS and the HELO name of each source address."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import carteiro_test as ct  # noqa: E402
from fakemx import Sink, queue_ids, queue_insert, relay_setup, wait_for  # noqa: E402,E501

RECORDS = {
    "remote.test": {"MX": [(10, "mx1.remote.test")]},
    "mx1.remote.test": {"A": ["127.0.0.2"]},
    "3.0.0.127.in-addr.arpa": {"PTR": ["mail.shop.test"]},
    "mail.shop.test": {"A": ["127.0.0.3"]},
}

MSG = b"From: x\r\nSubject: source\r\n\r\nhello\r\n"


class RelaySource(unittest.TestCase):
    def setUp(self):
        self.env, self.dns, port = relay_setup(
            RECORDS, conf={"relay": {"source_ip": "127.0.0.2"}})
        self.sink = Sink("127.0.0.2", port).start()
        env = self.env
        env.ctl_ok("domain", "add", "shop.test")

    def tearDown(self):
        self.sink.stop()
        self.env.stop()
        self.dns.stop()

    def test_source_and_helo_by_sender_domain(self):
        env = self.env
        self.assertEqual(env.ctl_ok("domain", "set", "shop.test",
                                    "source_ip=127.0.0.3",
                                    "helo=Mail.Shop.test"),
                         "domain shop.test: source_ip 127.0.0.3, "
                         "helo mail.shop.test\n")
        self.assertEqual(env.query(
            "SELECT source_ip, helo FROM domains WHERE name = 'shop.test'"),
            [("127.0.0.3", "mail.shop.test")])
        queue_insert(env, "alice@example.test", ["a@remote.test"], MSG)
        queue_insert(env, "sales@shop.test", ["b@remote.test"], MSG)
        queue_insert(env, "", ["c@remote.test"], MSG, is_bounce=1)
        env.start_smtpd()
        got = self.sink.wait(3, timeout=20)
        seen = sorted((m.mail_from, m.peer, m.helo) for m in got)
        self.assertEqual(seen, [
            ("<>", "127.0.0.2", "mail.example.test"),
            ("alice@example.test", "127.0.0.2", "mail.example.test"),
            ("sales@shop.test", "127.0.0.3", "mail.shop.test"),
        ])
        self.assertTrue(wait_for(lambda: not queue_ids(env)))
        # Unset: back to [relay] source_ip and the hostname.
        env.ctl_ok("domain", "set", "shop.test", "source_ip=", "helo=")
        queue_insert(env, "sales@shop.test", ["d@remote.test"], MSG)
        got = self.sink.wait(4, timeout=20)
        self.assertEqual((got[-1].peer, got[-1].helo),
                         ("127.0.0.2", "mail.example.test"))

    def test_domain_set_errors(self):
        env = self.env
        for args, err in [
            (["nope.test", "helo=x.test"], "no such domain nope.test"),
            (["shop.test", "source_ip=1.2.3"],
             "domain set: source_ip '1.2.3': expected an IPv4 and/or an "
             "IPv6 address, comma-separated"),
            (["shop.test", "source_ip=127.0.0.3,127.0.0.4"],
             "domain set: source_ip '127.0.0.3,127.0.0.4': expected an "
             "IPv4 and/or an IPv6 address, comma-separated"),
            (["shop.test", "ttl=3"],
             "domain set: expected source_ip=ADDR or helo=NAME, not "
             "'ttl=3'"),
        ]:
            r = env.ctl("domain", "set", *args)
            self.assertEqual((r.returncode, r.stdout, r.stderr),
                             (1, "", "carteiroctl: %s\n" % err))
        env.ctl_ok("domain", "set", "shop.test", "source_ip=127.0.0.3,::1")
        self.assertEqual(env.query(
            "SELECT source_ip, helo FROM domains WHERE name = 'shop.test'"),
            [("127.0.0.3,::1", None)])
        # Nothing is written when one argument is bad.
        r = env.ctl("domain", "set", "shop.test", "source_ip=127.0.0.9",
                    "helo=bad..name")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(env.query(
            "SELECT source_ip, helo FROM domains WHERE name = 'shop.test'"),
            [("127.0.0.3,::1", None)])

    def test_check_verifies_each_source_address(self):
        env = self.env
        env.ctl_ok("domain", "set", "shop.test", "source_ip=127.0.0.3",
                   "helo=mail.shop.test")
        out = env.ctl("check", "shop.test", "--ip", "127.0.0.3").stdout
        self.assertIn("OK   source  127.0.0.3 has forward-confirmed reverse "
                      "DNS mail.shop.test\n"
                      "OK   helo    mail.shop.test resolves to 127.0.0.3\n",
                      out)
        # example.test sends from [relay] source_ip as mail.example.test:
        # neither has DNS here.
        out = env.ctl("check", "example.test", "--ip", "127.0.0.2").stdout
        self.assertIn(
            "FAIL source  127.0.0.2 has no forward-confirmed reverse DNS\n"
            "     publish: 2.0.0.127.in-addr.arpa. IN PTR "
            "mail.example.test.\n"
            "FAIL helo    mail.example.test does not resolve to 127.0.0.2\n"
            "     publish: mail.example.test. IN A 127.0.0.2\n", out)
        # A PTR that confirms, but names another host than the HELO.
        self.dns.set("2.0.0.127.in-addr.arpa", {"PTR": ["mail.shop.test"]})
        self.dns.set("mail.shop.test", {"A": ["127.0.0.3", "127.0.0.2"]})
        self.dns.set("mail.example.test", {"A": ["127.0.0.2"]})
        out = env.ctl("check", "example.test", "--ip", "127.0.0.2").stdout
        self.assertIn(
            "WARN source  127.0.0.2 has forward-confirmed reverse DNS, but "
            "not its HELO name mail.example.test\n"
            "OK   helo    mail.example.test resolves to 127.0.0.2\n", out)


if __name__ == "__main__":
    ct.main()
