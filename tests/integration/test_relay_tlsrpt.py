"""TLS-RPT (issue 16 item 3, RFC 8460): the relay counts its DANE
sessions per policy domain and, every [relay] tls_report_interval, mails
each domain that publishes "v=TLSRPTv1; rua=mailto:..." at _smtp._tls a
multipart/report (report-type tlsrpt) whose application/tlsrpt+gzip part
is the section 4 JSON: checked field by field here."""

import email
import gzip
import json
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fakemx import Sink, queue_insert, relay_setup  # noqa: E402

MSG = b"From: alice@example.test\r\nSubject: tlsrpt\r\n\r\nhello\r\n"


def spki_sha256(cert):
    out = subprocess.run(["certtool", "--key-id", "--hash", "sha256",
                          "--load-certificate", cert], check=True,
                         capture_output=True, text=True).stdout
    return out.strip().splitlines()[-1]


class RelayTlsrpt(unittest.TestCase):
    def test_report_fields(self):
        recs = {
            "remote.test": {"MX": [(10, "mx1.remote.test")], "AD": True},
            "mx1.remote.test": {"A": ["127.0.0.2"]},
            "bad.test": {"MX": [(10, "mx1.bad.test")], "AD": True},
            "mx1.bad.test": {"A": ["127.0.0.2"]},
            "_25._tcp.mx1.bad.test": {"TLSA": [(3, 1, 1, "ab" * 32)],
                                      "AD": True},
            "_smtp._tls.remote.test": {"TXT": [
                "v=TLSRPTv1; rua=mailto:tlsrpt@reports.test"]},
            "_smtp._tls.bad.test": {"TXT": [
                "v=TLSRPTv1;rua=https://x.test/r,mailto:tlsrpt@reports.test"
            ]},
            "reports.test": {"MX": [(10, "mx.reports.test")]},
            "mx.reports.test": {"A": ["127.0.0.3"]},
        }
        env, dns, port = relay_setup(
            recs, conf={"relay": {"tls_report_interval": "3s"}})
        self.addCleanup(dns.stop)
        self.addCleanup(env.stop)
        tls = Sink("127.0.0.2", port, tls=(env.cert, env.key)).start()
        self.addCleanup(tls.stop)
        reports = Sink("127.0.0.3", port).start()
        self.addCleanup(reports.stop)
        tlsa = "3 1 1 " + spki_sha256(env.cert)
        dns.set("_25._tcp.mx1.remote.test",
                {"TLSA": [(3, 1, 1, spki_sha256(env.cert))], "AD": True})
        queue_insert(env, "alice@example.test", ["bob@remote.test"], MSG)
        queue_insert(env, "alice@example.test", ["carol@bad.test"], MSG)
        t0 = time.time()
        env.start_smtpd()
        self.assertEqual(len(tls.wait(1, timeout=20)), 1)

        def report_for(domain):
            for m in reports.messages:
                msg = email.message_from_bytes(m.data)
                if msg["TLS-Report-Domain"] == domain:
                    return m, msg
            return None

        deadline = time.time() + 30
        while time.time() < deadline and not (
                report_for("remote.test") and report_for("bad.test")):
            time.sleep(0.1)
        got = report_for("remote.test")
        self.assertIsNotNone(got, "no report for remote.test")
        m, msg = got
        host = "mail.example.test"
        self.assertEqual(m.mail_from, "<>")
        self.assertEqual(m.rcpts, ["tlsrpt@reports.test"])
        self.assertEqual(msg.get_content_type(), "multipart/report")
        self.assertEqual(msg.get_param("report-type"), "tlsrpt")
        self.assertEqual(msg["TLS-Report-Submitter"], host)
        self.assertTrue(msg["Subject"].startswith(
            "Report Domain: remote.test Submitter: %s Report-ID: <" % host))
        parts = [p for p in msg.walk()
                 if p.get_content_type() == "application/tlsrpt+gzip"]
        self.assertEqual(len(parts), 1)
        fname = parts[0].get_filename()
        self.assertRegex(fname, r"^%s!remote\.test!\d+!\d+\.json\.gz$"
                         % host.replace(".", r"\."))
        rep = json.loads(gzip.decompress(parts[0].get_payload(decode=True)))
        self.assertEqual(sorted(rep), ["contact-info", "date-range",
                                       "organization-name", "policies",
                                       "report-id"])
        self.assertEqual(rep["organization-name"], host)
        self.assertEqual(rep["contact-info"], "postmaster@" + host)
        self.assertRegex(rep["report-id"],
                         r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ_remote\.test@"
                         + host.replace(".", r"\.") + "$")
        self.assertEqual(sorted(rep["date-range"]),
                         ["end-datetime", "start-datetime"])
        start = time.mktime(time.strptime(
            rep["date-range"]["start-datetime"], "%Y-%m-%dT%H:%M:%SZ"))
        self.assertLess(abs(start - time.timezone - t0), 10)
        self.assertEqual(rep["policies"], [{
            "policy": {"policy-type": "tlsa", "policy-string": [tlsa],
                       "policy-domain": "remote.test",
                       "mx-host": ["mx1.remote.test"]},
            "summary": {"total-successful-session-count": 1,
                        "total-failure-session-count": 0},
            "failure-details": []}])

        got = report_for("bad.test")
        self.assertIsNotNone(got, "no report for bad.test")
        msg = got[1]
        part = [p for p in msg.walk()
                if p.get_content_type() == "application/tlsrpt+gzip"][0]
        rep = json.loads(gzip.decompress(part.get_payload(decode=True)))
        pol = rep["policies"][0]
        self.assertEqual(pol["policy"], {
            "policy-type": "tlsa", "policy-string": ["3 1 1 " + "ab" * 32],
            "policy-domain": "bad.test", "mx-host": ["mx1.bad.test"]})
        fails = pol["summary"]["total-failure-session-count"]
        self.assertGreaterEqual(fails, 1)
        self.assertEqual(pol["summary"]["total-successful-session-count"],
                         0)
        self.assertEqual(pol["failure-details"], [{
            "result-type": "validation-failure",
            "failed-session-count": fails,
            "receiving-ip": "127.0.0.2",
            "receiving-mx-hostname": "mx1.bad.test"}])
        # The failing message is still queued, not bounced.
        self.assertEqual(env.query(
            "SELECT r.address, r.status FROM queue_rcpt r JOIN queue q "
            "ON q.id = r.queue_id WHERE q.mail_from = 'alice@example.test'"),
            [("carol@bad.test", 0)])


if __name__ == "__main__":
    unittest.main()
