"""carteiroctl check and the outbound addresses' DNSBL listings (issue 16
item 7, the check part): the server's address and every source address
of the domain are looked up on [relay] monitor_dnsbl (default: the
[smtpd] dnsbl zones); a listing is a FAIL with the zone's TXT reason."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import carteiro_test as ct  # noqa: E402
from fakedns import FakeDNS  # noqa: E402

IP = "192.0.2.25"
SRC = "192.0.2.26"


class CtlCheckMonitor(unittest.TestCase):
    def start(self, relay):
        self.dns = FakeDNS().start()
        self.addCleanup(self.dns.stop)
        relay = dict(relay, resolver="127.0.0.1:%d" % self.dns.port,
                     source_ip=SRC)
        self.env = ct.Env(users=("alice@example.test",), conf={
            "relay": relay, "smtpd": {"dnsbl": "bl.test"},
            "http": {"autoconfig": "no", "mta_sts": "no"}})
        self.addCleanup(self.env.stop)
        self.dns.set("example.test", {"MX": [(10, "mail.example.test")]})
        self.dns.set("mail.example.test", {"A": [IP]})

    def check(self):
        r = self.env.ctl("check", "example.test", "--ip", IP)
        return r.returncode, r.stdout

    def test_monitor_zones_cover_source_addresses(self):
        self.start({"monitor_dnsbl": "mon.test, mon2.test"})
        self.dns.set("26.2.0.192.mon.test", {
            "A": ["127.0.0.2"],
            "TXT": ["spam seen; delist at https://mon.test/remove"]})
        rc, out = self.check()
        self.assertEqual(rc, 1, out)
        lines = [l for l in out.splitlines() if l.split()[1:2] == ["dnsbl"]]
        self.assertEqual(lines, [
            "OK   dnsbl   %s is not listed on mon.test" % IP,
            "FAIL dnsbl   %s is listed on mon.test (127.0.0.2): spam seen; "
            "delist at https://mon.test/remove" % SRC,
            "OK   dnsbl   %s is not listed on mon2.test" % IP,
            "OK   dnsbl   %s is not listed on mon2.test" % SRC], out)
        # [smtpd] dnsbl is not asked when monitor_dnsbl is set.
        self.assertFalse([q for q in self.dns.queries
                          if q[0].endswith(".bl.test")])

    def test_default_is_smtpd_dnsbl(self):
        self.start({})
        self.dns.set("25.2.0.192.bl.test", {"A": ["127.0.0.2"]})
        rc, out = self.check()
        self.assertEqual(rc, 1, out)
        lines = [l for l in out.splitlines() if l.split()[1:2] == ["dnsbl"]]
        self.assertEqual(lines, [
            "FAIL dnsbl   %s is listed on bl.test (127.0.0.2)" % IP,
            "OK   dnsbl   %s is not listed on bl.test" % SRC], out)


if __name__ == "__main__":
    ct.main()
