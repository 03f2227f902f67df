"""Self-monitoring (issue 16 item 7): smtpd looks its outbound addresses
([relay] source_ip) up on [relay] monitor_dnsbl on a timer (daily; the
test runs it every 300 ms), logs a listing at warn each time, and mails
the postmaster once per listing, again only after the address was seen
clean."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import carteiro_test as ct  # noqa: E402
from fakemx import relay_setup, wait_for  # noqa: E402

LISTED = {"A": ["127.0.0.2"],
          "TXT": ["Listed for spam, see https://mon.test/lookup?127.0.0.3"]}


class RelayMonitor(unittest.TestCase):
    def fast_monitor(self):
        """The daily run every 300 ms, for this test only."""
        old = os.environ.get("CARTEIRO_TEST_MONITOR_MS")
        os.environ["CARTEIRO_TEST_MONITOR_MS"] = "300"
        self.addCleanup(lambda: os.environ.pop("CARTEIRO_TEST_MONITOR_MS")
                        if old is None else os.environ.__setitem__(
                            "CARTEIRO_TEST_MONITOR_MS", old))

    def test_listing_mailed_once_per_listing(self):
        self.fast_monitor()
        env, dns, _ = relay_setup(
            {"3.0.0.127.mon.test": LISTED},
            conf={"relay": {"monitor_dnsbl": "mon.test",
                            "source_ip": "127.0.0.3"}})
        dns.ttl = 0
        self.addCleanup(dns.stop)
        self.addCleanup(env.stop)
        env.start_smtpd()
        pm = "alice@example.test"

        def runs():
            return env.smtpd.log().count("event=relay.monitor addresses=1 "
                                         "zones=1")

        self.assertTrue(wait_for(lambda: runs() >= 3), env.logs())
        log = env.smtpd.log()
        self.assertIn("level=warn event=relay.monitor ip=127.0.0.3 "
                      "zone=mon.test result=listed answer=127.0.0.2 "
                      "reason=\"Listed for spam, see "
                      "https://mon.test/lookup?127.0.0.3\"", log)
        self.assertEqual(log.count("result=notified"), 1)
        bodies = env.mailbox_bodies(pm)
        self.assertEqual(len(bodies), 1)
        self.assertIn(b"Subject: 127.0.0.3 is listed on mon.test\r\n",
                      bodies[0])
        self.assertIn(b"\r\n  Listed for spam, see "
                      b"https://mon.test/lookup?127.0.0.3\r\n", bodies[0])
        self.assertEqual(env.query("SELECT ip, zone FROM monitor_listing"),
                         [("127.0.0.3", "mon.test")])
        # Delisted, then listed again: a second mail. (An answer outside
        # 127.0.0.0/8 is no listing, RFC 5782 2.1; with TTL 0 it is not
        # cached, as an empty answer would be, by the SOA minimum.)
        dns.set("3.0.0.127.mon.test", {"A": ["192.0.2.1"]})
        self.assertTrue(wait_for(lambda: "result=delisted" in
                                 env.smtpd.log()), env.logs())
        self.assertEqual(env.query("SELECT * FROM monitor_listing"), [])
        dns.set("3.0.0.127.mon.test", LISTED)
        self.assertTrue(wait_for(lambda: len(env.mailbox_bodies(pm)) == 2),
                        env.logs())
        n = runs()
        self.assertTrue(wait_for(lambda: runs() >= n + 2))
        self.assertEqual(len(env.mailbox_bodies(pm)), 2)

    def test_domain_source_addresses_are_monitored(self):
        # carteiroctl domain set DOMAIN source_ip=...: that address is
        # looked up daily too, each address once.
        self.fast_monitor()
        env, dns, _ = relay_setup(
            {"4.0.0.127.mon.test": LISTED},
            conf={"relay": {"monitor_dnsbl": "mon.test",
                            "source_ip": "127.0.0.3"}})
        dns.ttl = 0
        self.addCleanup(dns.stop)
        self.addCleanup(env.stop)
        env.ctl_ok("domain", "add", "shop.test")
        env.ctl_ok("domain", "add", "shop2.test")
        env.ctl_ok("domain", "set", "shop.test", "source_ip=127.0.0.4")
        env.ctl_ok("domain", "set", "shop2.test",
                   "source_ip=127.0.0.4")
        env.start_smtpd()
        self.assertTrue(wait_for(lambda: "event=relay.monitor addresses=2 "
                                 "zones=1" in env.smtpd.log()), env.logs())
        self.assertTrue(wait_for(lambda: env.query(
            "SELECT ip, zone FROM monitor_listing") ==
            [("127.0.0.4", "mon.test")]), env.logs())


if __name__ == "__main__":
    ct.main()
