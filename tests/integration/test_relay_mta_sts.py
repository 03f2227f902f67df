"""MTA-STS for outbound delivery (RFC 8461, issue 16 item 1): the relay
looks up _mta-sts.DOMAIN, fetches the policy over HTTPS (a test server
with a test CA, CARTEIRO_TEST_CA_FILE), caches it, and in enforce mode
delivers only to listed MX hosts over STARTTLS with a certificate valid
for the MX name; failures defer (4.7.5, never a bounce). Testing mode
delivers and logs."""

import email
import gzip
import http.server
import json
import os
import ssl
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import carteiro_test as ct  # noqa: E402
from fakemx import Sink, queue_ids, relay_setup, submit, wait_for  # noqa: E402,E501

MSG = b"From: alice@example.test\r\nSubject: sts\r\n\r\nhello\r\n"

# The MX certificate names mx1.<domain> for these; mx.badcert.test and
# mx.testing.test are not in it.
DOMAINS = {
    # domain: (policy mode, mx line in the policy, the MX host in DNS)
    "good.test": ("enforce", "mx1.good.test", "mx1.good.test"),
    "wild.test": ("enforce", "*.wild.test", "mx1.wild.test"),
    "notlisted.test": ("enforce", "other.notlisted.test",
                       "mx1.notlisted.test"),
    "badcert.test": ("enforce", "mx.badcert.test", "mx.badcert.test"),
    "testing.test": ("testing", "mx.testing.test", "mx.testing.test"),
    # TXT published, policy file missing (404): no policy applies.
    "nofile.test": (None, None, "mx1.nofile.test"),
}


def policy(mode, mx):
    return ("version: STSv1\r\nmode: %s\r\nmx: %s\r\nmax_age: 86400\r\n"
            % (mode, mx)).encode()


class PolicyServer:
    """HTTPS on 127.0.0.1: /.well-known/mta-sts.txt by Host header."""

    def __init__(self, cert, key):
        self.policies = {}      # "mta-sts.DOMAIN" -> bytes
        self.fetches = {}       # "mta-sts.DOMAIN" -> count
        self.ctype = {}         # "mta-sts.DOMAIN" -> Content-Type
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                host = (self.headers.get("Host") or "").split(":")[0]
                outer.fetches[host] = outer.fetches.get(host, 0) + 1
                body = outer.policies.get(host)
                if self.path != "/.well-known/mta-sts.txt" or body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", outer.ctype.get(
                    host, "text/plain; charset=us-ascii"))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                     Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket,
                                            server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class RelayMtaSts(unittest.TestCase):
    def start(self, extra=None, **relay):
        tmp = ct.tempfile.mkdtemp(prefix="carteiro-sts-")
        self.addCleanup(ct.shutil.rmtree, tmp, True)
        names = ["mx1.%s" % d for d in DOMAINS]
        names += ["mta-sts.%s" % d for d in DOMAINS]
        ca, cert, key = ct.make_certs(tmp, "mx1.good.test", names)
        records = {}
        for d, (mode, pat, mx) in DOMAINS.items():
            records[d] = {"MX": [(10, mx)]}
            records[mx] = {"A": ["127.0.0.2"]}
            records["mta-sts." + d] = {"A": ["127.0.0.1"]}
            records["_mta-sts." + d] = {"TXT": ["v=STSv1; id=1;"]}
        records.update(extra or {})
        self.web = PolicyServer(cert, key)
        self.addCleanup(self.web.stop)
        for d, (mode, pat, mx) in DOMAINS.items():
            if mode is not None:
                self.web.policies["mta-sts." + d] = policy(mode, pat)
        for k, v in (("CARTEIRO_TEST_CA_FILE", ca),
                     ("CARTEIRO_TEST_MTA_STS_PORT", str(self.web.port))):
            old = os.environ.get(k)
            os.environ[k] = v
            self.addCleanup(self._restore, k, old)
        relay.update({"retry_first": "1h", "retry_max": "1h"})
        self.env, self.dns, port = relay_setup(records,
                                               conf={"relay": relay})
        self.dns.ttl = 0        # the id change is seen at once
        self.addCleanup(self.dns.stop)
        self.sink = Sink("127.0.0.2", port, tls=(cert, key)).start()
        self.addCleanup(self.sink.stop)
        self.addCleanup(self.env.stop)
        self.env.start_smtpd()

    @staticmethod
    def _restore(k, old):
        if old is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = old

    def deferred(self, rcpt):
        """Wait for rcpt's first attempt; its (last_error, status)."""
        env = self.env
        self.assertTrue(wait_for(lambda: env.query(
            "SELECT q.attempts FROM queue q JOIN queue_rcpt r ON "
            "r.queue_id = q.id WHERE r.address = ?", (rcpt,)) == [(1,)]),
            env.logs())
        return env.query("SELECT last_error, status FROM queue_rcpt "
                         "WHERE address = ?", (rcpt,))[0]

    def test_enforce_matching_mx_delivered(self):
        self.start()
        self.assertEqual(submit(self.env, ["bob@good.test"], MSG), {})
        got = self.sink.wait(1)
        self.assertEqual([m.rcpts for m in got], [["bob@good.test"]])
        self.assertTrue(got[0].tls)
        self.assertTrue(wait_for(lambda: not queue_ids(self.env)))
        log = self.env.smtpd.log()
        self.assertIn("event=relay.mta_sts_fetch domain=good.test id=1 "
                      "result=ok mode=enforce max_age=86400 mx=1", log)
        self.assertEqual(self.web.fetches, {"mta-sts.good.test": 1})
        self.assertEqual(self.env.query(
            "SELECT domain, id, policy, expires - fetched FROM mta_sts"),
            [("good.test", "1", policy("enforce", "mx1.good.test")
              .decode(), 86400)])

    def test_tls_report_counts_sts_sessions(self):
        # RFC 8460: sessions under an STS policy are reported with
        # policy-type "sts", the policy lines, and the failure's type.
        rua = {"TXT": ["v=TLSRPTv1; rua=mailto:tlsrpt@reports.test"]}
        self.start(extra={"_smtp._tls.good.test": rua,
                          "_smtp._tls.badcert.test": rua,
                          "reports.test": {"MX": [(10, "mx.reports.test")]},
                          "mx.reports.test": {"A": ["127.0.0.3"]}},
                   tls_report_interval="3s")
        reports = Sink("127.0.0.3", self.sink.port).start()
        self.addCleanup(reports.stop)
        self.assertEqual(submit(self.env, ["bob@good.test"], MSG), {})
        self.assertEqual(submit(self.env, ["bob@badcert.test"], MSG), {})
        self.sink.wait(1)
        self.deferred("bob@badcert.test")

        def report(domain):
            for m in reports.messages:
                msg = email.message_from_bytes(m.data)
                if msg["TLS-Report-Domain"] == domain:
                    part = [p for p in msg.walk() if p.get_content_type()
                            == "application/tlsrpt+gzip"][0]
                    return json.loads(gzip.decompress(
                        part.get_payload(decode=True)))
            return None
        self.assertTrue(wait_for(lambda: report("good.test") and
                                 report("badcert.test"), 30))
        self.assertEqual(report("good.test")["policies"], [{
            "policy": {"policy-type": "sts",
                       "policy-string": ["version: STSv1", "mode: enforce",
                                         "mx: mx1.good.test",
                                         "max_age: 86400"],
                       "policy-domain": "good.test",
                       "mx-host": ["mx1.good.test"]},
            "summary": {"total-successful-session-count": 1,
                        "total-failure-session-count": 0},
            "failure-details": []}])
        pol = report("badcert.test")["policies"][0]
        self.assertEqual(pol["policy"]["policy-type"], "sts")
        self.assertEqual(pol["summary"]["total-successful-session-count"],
                         0)
        fails = pol["summary"]["total-failure-session-count"]
        self.assertGreaterEqual(fails, 1)
        self.assertEqual(pol["failure-details"], [{
            "result-type": "validation-failure",
            "failed-session-count": fails,
            "receiving-ip": "127.0.0.2",
            "receiving-mx-hostname": "mx.badcert.test"}])

    def test_enforce_wildcard_mx_delivered(self):
        self.start()
        self.assertEqual(submit(self.env, ["bob@wild.test"], MSG), {})
        got = self.sink.wait(1)
        self.assertEqual([m.rcpts for m in got], [["bob@wild.test"]])
        self.assertTrue(wait_for(lambda: not queue_ids(self.env)))

    def test_enforce_mx_not_in_policy_defers(self):
        self.start()
        self.assertEqual(submit(self.env, ["bob@notlisted.test"], MSG), {})
        err, status = self.deferred("bob@notlisted.test")
        self.assertEqual(status, 0)     # pending, not bounced
        self.assertTrue(err.startswith(
            "451 4.7.5 MX host mx1.notlisted.test not allowed by the "
            "MTA-STS policy of notlisted.test"), err)
        self.assertEqual(self.sink.connections, 0)
        self.assertEqual(self.sink.messages, [])
        self.assertEqual(self.env.mailbox_bodies("alice@example.test"), [])

    def test_enforce_certificate_mismatch_defers(self):
        self.start()
        self.assertEqual(submit(self.env, ["bob@badcert.test"], MSG), {})
        err, status = self.deferred("bob@badcert.test")
        self.assertEqual(status, 0)
        self.assertIn("451 4.7.5 mx.badcert.test[127.0.0.2]: certificate "
                      "not valid for mx.badcert.test, required by the "
                      "MTA-STS policy of badcert.test", err)
        self.assertEqual(self.sink.messages, [])
        self.assertEqual(self.env.mailbox_bodies("alice@example.test"), [])

    def test_testing_mode_mismatch_delivered_and_logged(self):
        self.start()
        self.assertEqual(submit(self.env, ["bob@testing.test"], MSG), {})
        got = self.sink.wait(1)
        self.assertEqual([m.rcpts for m in got], [["bob@testing.test"]])
        self.assertTrue(wait_for(lambda: not queue_ids(self.env)))
        self.assertIn("domain=testing.test host=mx.testing.test id=1 "
                      "mode=testing result=fail reason=\"certificate not "
                      "valid\" action=deliver", self.env.smtpd.log())

    def test_policy_cached_and_refetched_on_id_change(self):
        self.start()
        for i in range(2):
            self.assertEqual(submit(self.env, ["b%d@good.test" % i], MSG),
                             {})
            self.sink.wait(i + 1)
            self.assertTrue(wait_for(lambda: not queue_ids(self.env)))
        self.assertEqual(self.web.fetches, {"mta-sts.good.test": 1})
        # A new id, and a policy that no longer lists the MX: fetched
        # again, and enforced at once.
        self.web.policies["mta-sts.good.test"] = policy(
            "enforce", "new.good.test")
        self.dns.set("_mta-sts.good.test", {"TXT": ["v=STSv1; id=2"]})
        self.assertEqual(submit(self.env, ["b2@good.test"], MSG), {})
        err, status = self.deferred("b2@good.test")
        self.assertEqual(status, 0)
        self.assertIn("4.7.5 MX host mx1.good.test not allowed", err)
        self.assertEqual(self.web.fetches, {"mta-sts.good.test": 2})
        self.assertEqual(self.env.query(
            "SELECT id FROM mta_sts WHERE domain = 'good.test'"), [("2",)])
        self.assertEqual(len(self.sink.messages), 2)

    def test_policy_survives_restart(self):
        self.start()
        self.assertEqual(submit(self.env, ["b0@good.test"], MSG), {})
        self.sink.wait(1)
        self.assertTrue(wait_for(lambda: not queue_ids(self.env)))
        self.env.smtpd.stop()
        self.env.start_smtpd()
        self.assertEqual(submit(self.env, ["b1@good.test"], MSG), {})
        self.sink.wait(2)
        self.assertTrue(wait_for(lambda: not queue_ids(self.env)))
        # The policy came from the store, not from a second fetch.
        self.assertEqual(self.web.fetches, {"mta-sts.good.test": 1})

    def test_failed_fetch_delivers_and_is_not_repeated(self):
        self.start()
        for i in range(2):
            self.assertEqual(submit(self.env, ["b%d@nofile.test" % i], MSG),
                             {})
            self.sink.wait(i + 1)
            self.assertTrue(wait_for(lambda: not queue_ids(self.env)))
        self.assertEqual(self.web.fetches, {"mta-sts.nofile.test": 1})
        self.assertIn("event=relay.mta_sts_fetch domain=nofile.test id=1 "
                      "result=fail cached=none error=\"https://"
                      "mta-sts.nofile.test:%d/.well-known/mta-sts.txt: "
                      "HTTP status 404\"" % self.web.port,
                      self.env.smtpd.log())
        self.assertEqual(self.env.query("SELECT count(*) FROM mta_sts"),
                         [(0,)])

    def test_policy_not_text_plain_ignored(self):
        # RFC 8461 3.3: the policy is text/plain; an HTML page (a
        # parking page, say) is no policy: delivered, nothing cached.
        self.start()
        self.web.ctype["mta-sts.notlisted.test"] = "text/html"
        self.assertEqual(submit(self.env, ["bob@notlisted.test"], MSG), {})
        got = self.sink.wait(1)
        self.assertEqual([m.rcpts for m in got], [["bob@notlisted.test"]])
        self.assertIn("domain=notlisted.test id=1 result=fail cached=none "
                      "error=\"https://mta-sts.notlisted.test:%d/"
                      ".well-known/mta-sts.txt: not text/plain\""
                      % self.web.port, self.env.smtpd.log())
        self.assertEqual(self.env.query("SELECT count(*) FROM mta_sts"),
                         [(0,)])

    def test_mta_sts_off(self):
        # [relay] mta_sts = no: no lookup, no fetch, delivered as before.
        self.start(mta_sts="no")
        self.assertEqual(submit(self.env, ["bob@notlisted.test"], MSG), {})
        got = self.sink.wait(1)
        self.assertEqual([m.rcpts for m in got], [["bob@notlisted.test"]])
        self.assertTrue(wait_for(lambda: not queue_ids(self.env)))
        self.assertEqual(self.web.fetches, {})
        self.assertNotIn(("_mta-sts.notlisted.test", "TXT"),
                         self.dns.queries)


if __name__ == "__main__":
    ct.main()
