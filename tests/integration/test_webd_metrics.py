"""carteiro-webd /metrics: the counters of carteiro-smtpd and carteiro-pop3d
(shared stats files beside the store) and the queue, in the Prometheus text
format as python3-prometheus-client parses it; the values move with real
traffic by exactly what was done (SMTP sessions by listener, accepted
messages and bytes, AUTH ok/failed, POP3 logins ok/failed, RETR, deletes,
queue length and oldest age; relay deliveries sent/deferred/bounced, the
DSN it creates, DNSBL refusals), and only [http] metrics_allow may read
it."""

import os
import poplib
import smtplib
import socket
import ssl
import time
import unittest

from prometheus_client.parser import text_string_to_metric_families

import carteiro_test as ct
from fakemx import Sink, db_exec, queue_insert, relay_setup, submit
from test_webd import request, start_webd


def scrape(env, source=None):
    st, hdr, body = request(env.ports["http"], "/metrics", host="localhost",
                            source=source)
    assert st == 200, (st, body)
    assert hdr["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    out = {}
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            key = (s.name,) + tuple(sorted(s.labels.items()))
            assert key not in out, key
            out[key] = s.value
    return out


def delta(before, after):
    return {k: after[k] - before.get(k, 0) for k in after
            if after[k] != before.get(k, 0)}


class Metrics(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.env = ct.Env(conf={"http": {"metrics_allow": "127.0.0.1/32"}})
        cls.env.start_smtpd()
        cls.env.start_pop3d()
        cls.webd = start_webd(cls.env)

    @classmethod
    def tearDownClass(cls):
        cls.env.stop()

    def test_only_metrics_allow(self):
        st, _, body = request(self.env.ports["http"], "/metrics",
                              host="localhost", source="127.0.0.2")
        self.assertEqual((st, body), (403, b"Forbidden\n"))
        st, _, _ = request(self.env.ports["http"], "/metrics",
                           host="localhost", method="POST", body=b"")
        self.assertEqual(st, 405)

    def test_values_move_with_traffic(self):
        env = self.env
        # The harness's probe connection to each listener (Daemon.start)
        # is counted once smtpd's loop takes it: wait for that.
        conn = "carteiro_smtp_connections_total"
        deadline = time.time() + 20
        while True:
            before = scrape(env)
            if all(before.get((conn, ("listener", l))) == 1
                   for l in ("mx", "submission", "submissions")):
                break
            self.assertLess(time.time(), deadline, before)
            time.sleep(0.1)
        for name in ("carteiro_smtp_connections_total",
                     "carteiro_pop3_logins_total"):
            self.assertIn(name, {k[0] for k in before})
        msg = b"Subject: m\r\n\r\ncounted\r\n"
        # Two sessions on the MX listener, one message each.
        for _ in range(2):
            with smtplib.SMTP("127.0.0.1", env.ports["mx"], timeout=20) as s:
                s.sendmail("x@remote.test", ["bob@example.test"], msg)
        # Submission: one failed and one good AUTH in two sessions.
        with smtplib.SMTP("127.0.0.1", env.ports["submission"],
                          timeout=20) as s:
            s.ehlo()
            with self.assertRaises(smtplib.SMTPAuthenticationError):
                s.login("alice@example.test", "wrong")
        with smtplib.SMTP("127.0.0.1", env.ports["submission"],
                          timeout=20) as s:
            s.ehlo()
            s.login("alice@example.test", ct.PASSWORD)
        # POP3: one failed login, then RETR 1, TOP 2, DELE 1, QUIT.
        p = poplib.POP3("127.0.0.1", env.ports["pop3"], timeout=20)
        p.user("bob@example.test")
        with self.assertRaises(poplib.error_proto):
            p.pass_("wrong")
        p.quit()
        time.sleep(1.5)     # the failed login's penalty for this client
        p = poplib.POP3("127.0.0.1", env.ports["pop3"], timeout=20)
        p.user("bob@example.test")
        p.pass_(ct.PASSWORD)
        p.retr(1)
        p.top(2, 0)
        p.dele(1)
        p.quit()
        # The queue: one message, made 1000 s old.
        qid = queue_insert(env, "alice@example.test", ["r@remote.test"],
                           msg, next_attempt=time.time() + 3600)
        db_exec(env, "UPDATE queue SET created = created - 1000 WHERE id = ?",
                (qid,))

        # TLS: one POP3S session, one STARTTLS submission session.
        ctx = env.client_ssl_context()
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        p = poplib.POP3_SSL("127.0.0.1", env.ports["pop3s"], timeout=20,
                            context=ctx)
        p.quit()
        with smtplib.SMTP("127.0.0.1", env.ports["submission"],
                          timeout=20) as s:
            s.starttls(context=env.client_ssl_context())
            s.ehlo()

        after = scrape(env)
        d = delta(before, after)
        age = d.pop(("carteiro_queue_oldest_age_seconds",), None)
        self.assertIsNotNone(age)
        self.assertGreaterEqual(after[("carteiro_queue_oldest_age_seconds",)],
                                1000)
        self.assertLess(after[("carteiro_queue_oldest_age_seconds",)], 1200)
        size = len(ct.strip_added_headers(env.mailbox_bodies(
            "bob@example.test")[0]))
        self.assertGreater(size, 0)
        # The end-of-data histogram: 2 observations, cumulative buckets.
        hist = "carteiro_smtp_end_of_data_seconds"
        self.assertEqual(d.pop((hist + "_count",)), 2)
        self.assertGreaterEqual(d.pop((hist + "_sum",), 0), 0)
        les = [k for k in after if k[0] == hist + "_bucket"]
        self.assertEqual([dict(k[1:])["le"] for k in les],
                         ["0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0",
                          "10.0", "+Inf"])
        counts = [after[k] for k in les]
        self.assertEqual(counts, sorted(counts))
        self.assertEqual(d.pop(les[-1]), 2)
        for k in les[:-1]:
            self.assertIn(d.pop(k, 0), (0, 1, 2))
        accepted_bytes = d.pop(
            ("carteiro_smtp_messages_accepted_bytes_total",))
        self.assertGreaterEqual(accepted_bytes, 2 * len(msg))
        self.assertEqual(d, {
            ("carteiro_smtp_connections_total", ("listener", "mx")): 2,
            ("carteiro_smtp_connections_total",
             ("listener", "submission")): 3,
            ("carteiro_smtp_tls_sessions_total", ("version", "TLSv1.3")): 1,
            ("carteiro_pop3_tls_sessions_total", ("version", "TLSv1.2")): 1,
            ("carteiro_smtp_messages_accepted_total",): 2,
            # smtplib tries PLAIN, then LOGIN: two failed AUTHs
            ("carteiro_smtp_auth_total", ("result", "failed")): 2,
            ("carteiro_smtp_error_replies_total", ("code", "535")): 2,
            ("carteiro_smtp_auth_total", ("result", "ok")): 1,
            ("carteiro_pop3_logins_total", ("result", "failed")): 1,
            ("carteiro_pop3_logins_total", ("result", "ok")): 1,
            ("carteiro_pop3_retrievals_total",): 2,
            ("carteiro_pop3_deleted_total",): 1,
            ("carteiro_queue_messages",): 1,
        })


class RelayMetrics(unittest.TestCase):
    def test_relay_dsn_and_dnsbl(self):
        env, dns, port = relay_setup({
            "ok.test": {"MX": [(10, "mx.ok.test")]},
            "perm.test": {"MX": [(10, "mx.ok.test")]},
            "mx.ok.test": {"A": ["127.0.0.2"]},
            # nothing listens there: every attempt is deferred
            "temp.test": {"MX": [(10, "mx.temp.test")]},
            "mx.temp.test": {"A": ["127.0.0.3"]},
            "2.0.0.127.bl.test": {"A": ["127.0.0.2"], "TXT": ["listed"]},
        }, conf={"smtpd": {"dnsbl": "bl.test", "inbound_checks_exempt": ""}})
        sink = Sink("127.0.0.2", port)
        sink.rcpt_reply = lambda a: ("550 5.1.1 no such user"
                                     if a.endswith("@perm.test") else None)
        sink.start()
        try:
            env.start_smtpd()
            start_webd(env)
            key = lambda n, **l: (n,) + tuple(sorted(l.items()))
            rel = "carteiro_relay_deliveries_total"
            before = scrape(env)
            self.assertEqual(submit(env, ["a@ok.test", "b@perm.test",
                                          "c@temp.test"],
                                    b"Subject: r\r\n\r\nrelay\r\n"), {})
            deadline = time.time() + 60
            while True:
                d = delta(before, scrape(env))
                if (d.get(key(rel, status="sent")) == 1 and
                        d.get(key(rel, status="bounced")) == 1 and
                        d.get(key(rel, status="deferred"), 0) >= 1 and
                        d.get(key("carteiro_relay_dsn_total",
                                  kind="failed")) == 1):
                    break
                self.assertLess(time.time(), deadline, (d, env.logs()))
                time.sleep(0.2)
            self.assertEqual(len(sink.wait(1)), 1)
            self.assertNotIn(key("carteiro_relay_dsn_total", kind="delayed"),
                             d)
            # An MX message gets SPF, DKIM and DMARC checks: all "none"
            # here (no records for remote.test).
            with smtplib.SMTP("127.0.0.1", env.ports["mx"], timeout=20) as c:
                c.sendmail("x@remote.test", ["bob@example.test"],
                           b"From: x@remote.test\r\nSubject: in\r\n\r\nin\r\n")
            d = delta(before, scrape(env))
            for m in ("spf", "dkim", "dmarc"):
                self.assertEqual(
                    [(k[1][1], v) for k, v in d.items()
                     if k[0] == "carteiro_smtp_%s_results_total" % m],
                    [("none", 1)], m)
            # A client a DNSBL lists is refused and counted.
            s = socket.create_connection(("127.0.0.1", env.ports["mx"]), 20,
                                         source_address=("127.0.0.2", 0))
            try:
                self.assertTrue(ct.recv_until(s, rb"\r\n", timeout=20)
                                .startswith(b"554 "))
            finally:
                s.close()
            deadline = time.time() + 20
            while delta(before, scrape(env)).get(
                    key("carteiro_smtp_dnsbl_listed_total")) != 1:
                self.assertLess(time.time(), deadline)
                time.sleep(0.1)
            self.assertEqual(delta(before, scrape(env)).get(
                key("carteiro_smtp_error_replies_total", code="554")), 1)
        finally:
            env.stop()
            sink.stop()
            dns.stop()


if __name__ == "__main__":
    unittest.main()
