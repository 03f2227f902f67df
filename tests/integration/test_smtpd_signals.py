"""Operation: -t checks the config; the command timeout (shortened with
CARTEIRO_TEST_TIMEOUT_MS) gives 421 4.4.2 and a close; SIGHUP reloads the
certificate and keeps serving; SIGTERM closes idle sessions with 421 4.3.2,
aborts a half-received DATA (nothing stored) and exits 0."""

import os
import signal
import subprocess
import time
import unittest

import carteiro_test as ct
from smtpd_util import Env, Raw, wait_for


class Signals(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        os.environ["CARTEIRO_TEST_TIMEOUT_MS"] = "1500"
        cls.env = Env()
        cls.env.start_smtpd()
        del os.environ["CARTEIRO_TEST_TIMEOUT_MS"]
        cls.port = cls.env.ports["mx"]

    @classmethod
    def tearDownClass(cls):
        cls.env.stop()

    def test_1_check_config(self):
        r = subprocess.run([ct.SMTPD, "-t", "-c", self.env.conf],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        bad = os.path.join(self.env.dir, "bad.conf")
        with open(bad, "w") as f:
            f.write("[smtpd]\nmax_clients = lots\n")
        r = subprocess.run([ct.SMTPD, "-t", "-c", bad],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertIn("max_clients", r.stderr)

    def test_2_timeout(self):
        c = Raw(self.port)
        c.cmd("EHLO slow.test")
        t0 = time.time()
        code, text = c.reply()
        self.assertEqual(code, 421)
        self.assertIn("4.4.2", text[0])
        self.assertTrue(c.at_eof())
        self.assertLess(time.time() - t0, 8)

    def test_3_sighup(self):
        self.env.smtpd.proc.send_signal(signal.SIGHUP)
        self.assertTrue(wait_for(lambda: "event=smtpd.reload result=ok"
                                 in self.env.smtpd.log()))
        c = Raw(self.env.ports["submission"])
        c.cmd("EHLO x.test")
        c.starttls(self.env.client_ssl_context())
        self.assertEqual(c.code("EHLO x.test"), 250)
        c.cmd("QUIT")

    def test_4_sigterm(self):
        idle = Raw(self.port)
        idle.cmd("EHLO idle.test")
        busy = Raw(self.port)
        busy.cmd("EHLO busy.test")
        busy.cmd("MAIL FROM:<a@busy.test>")
        busy.cmd("RCPT TO:<alice@example.test>")
        busy.cmd("DATA")
        busy.send(b"Subject: half\r\n\r\nhalf a message\r\n")
        time.sleep(0.2)
        self.env.smtpd.proc.send_signal(signal.SIGTERM)
        for c in (idle, busy):
            code, text = c.reply()
            self.assertEqual(code, 421)
            self.assertIn("4.3.2", text[0])
            self.assertTrue(c.at_eof())
        self.assertEqual(self.env.smtpd.proc.wait(30), 0)
        self.assertEqual(self.env.mailbox_bodies("alice@example.test"), [])
        self.assertIn("event=smtpd.exit", self.env.smtpd.log())


if __name__ == "__main__":
    ct.main()
