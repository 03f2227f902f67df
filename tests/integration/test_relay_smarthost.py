"""Relay through a smarthost: every remote message goes to [relay]
smarthost over STARTTLS with AUTH PLAIN, or LOGIN when that is all it
offers (user + first line of the password file); a smarthost without
STARTTLS, or whose certificate does not verify against smarthost_ca (or
the system's trust store), gets neither the password nor the mail
(temporary failure)."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import carteiro_test as ct  # noqa: E402
from fakemx import Sink, queue_ids, relay_setup, submit, wait_for  # noqa: E402

MSG = b"From: alice@example.test\r\nSubject: via smarthost\r\n\r\nhi\r\n"


def setup(test, tls, auth_exclude=(), ca="ca.pem"):
    port = ct.free_port("127.0.0.6")
    tmp = ct.tempfile.mkdtemp(prefix="carteiro-sh-")
    test.addCleanup(ct.shutil.rmtree, tmp, True)
    pw = os.path.join(tmp, "smarthost.pw")
    with open(pw, "w") as f:
        f.write("s3cret pass\nignored second line\n")
    os.chmod(pw, 0o600)
    # No DNS records at all: a smarthost needs no MX lookups.
    env, dns, _ = relay_setup({}, conf={"relay": {
        "smarthost": "127.0.0.6:%d" % port,
        "smarthost_user": "relay@isp.test",
        "smarthost_password_file": pw,
        # relative to the config's directory, where Env wrote its CA
        "smarthost_ca": ca,
        "retry_first": "1h", "retry_max": "1h"}})
    sink = Sink("127.0.0.6", port, tls=(env.cert, env.key) if tls else None,
                auth=("relay@isp.test", "s3cret pass"), require_tls=tls,
                auth_exclude=auth_exclude)
    sink.start()
    env.start_smtpd()
    return env, dns, sink


class RelaySmarthost(unittest.TestCase):
    def test_smarthost_auth(self):
        env, dns, sink = setup(self, tls=True)
        try:
            self.assertEqual(submit(env, ["bob@anywhere.test",
                                          "carol@elsewhere.test"], MSG), {})
            got = sink.wait(2)
            self.assertEqual(sorted(r for m in got for r in m.rcpts),
                             ["bob@anywhere.test", "carol@elsewhere.test"])
            self.assertTrue(all(m.tls for m in got))
            self.assertEqual(len(sink.auth_ok), len(got))
            self.assertIn(sink.auth_ok[0], ("PLAIN", "LOGIN"))
            self.assertTrue(wait_for(lambda: not queue_ids(env)))
            self.assertEqual(dns.queries, [])
            log = env.smtpd.log()
            self.assertIn("event=relay.auth", log)
            self.assertNotIn("s3cret", log)
        finally:
            sink.stop()
            env.stop()
            dns.stop()

    def test_smarthost_auth_login(self):
        env, dns, sink = setup(self, tls=True, auth_exclude=("PLAIN",))
        try:
            self.assertEqual(submit(env, ["bob@anywhere.test"], MSG), {})
            got = sink.wait(1)
            self.assertEqual([m.rcpts for m in got], [["bob@anywhere.test"]])
            self.assertEqual(sink.auth_ok, ["LOGIN"])
            self.assertTrue(wait_for(lambda: not queue_ids(env)))
        finally:
            sink.stop()
            env.stop()
            dns.stop()

    def test_smarthost_without_tls_defers(self):
        env, dns, sink = setup(self, tls=False)
        try:
            self.assertEqual(submit(env, ["bob@anywhere.test"], MSG), {})
            self.assertTrue(wait_for(lambda: env.query(
                "SELECT attempts FROM queue") == [(1,)]))
            err = env.query("SELECT last_error, status FROM queue_rcpt")[0]
            self.assertIn("4.7.5", err[0])
            self.assertIn("STARTTLS", err[0])
            self.assertEqual(err[1], 0)
            self.assertEqual(sink.messages, [])
            self.assertEqual(env.mailbox_bodies("alice@example.test"), [])
        finally:
            sink.stop()
            env.stop()
            dns.stop()

    def test_smarthost_unverified_defers(self):
        # The system's trust store does not know the test CA.
        env, dns, sink = setup(self, tls=True, ca="")
        try:
            self.assertEqual(submit(env, ["bob@anywhere.test"], MSG), {})
            self.assertTrue(wait_for(lambda: env.query(
                "SELECT attempts FROM queue") == [(1,)]))
            err = env.query("SELECT last_error, status FROM queue_rcpt")[0]
            self.assertIn("4.7.5", err[0])
            self.assertIn("certificate not verified", err[0])
            self.assertEqual(err[1], 0)
            self.assertEqual(sink.auth_ok, [])
            self.assertEqual(sink.messages, [])
        finally:
            sink.stop()
            env.stop()
            dns.stop()


if __name__ == "__main__":
    ct.main()
