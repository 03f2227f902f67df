"""scripts/run-dev: builds, creates the data dir (certificate, database,
example.test with alice@ and bob@ / "secret"), runs both daemons on the dev
ports, mail sent to the MX port is fetched over POP3 with STLS, and Ctrl-C
(SIGINT to the process group) stops everything."""

import http.client
import os
import poplib
import signal
import smtplib
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

import carteiro_test as ct

PORTS = (2525, 2587, 2465, 1110, 1995, 2080, 2443)


def port_busy(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class RunDev(unittest.TestCase):
    def test_run_dev(self):
        if any(port_busy(p) for p in PORTS):
            self.skipTest("a dev port is in use (is scripts/run-dev running?)")
        if os.path.basename(ct.BUILD.rstrip("/")) != "build":
            self.skipTest("run-dev uses build/; tested in the normal build")
        var = tempfile.mkdtemp(prefix="carteiro-rundev-")
        env = dict(os.environ, CARTEIRO_VAR=var)
        p = subprocess.Popen([os.path.join(ct.SRC, "scripts", "run-dev")],
                             env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.time() + 120
            while not all(port_busy(x) for x in PORTS):
                self.assertIsNone(p.poll(), "run-dev exited early")
                self.assertLess(time.time(), deadline, "ports never opened")
                time.sleep(0.2)
            s = smtplib.SMTP("127.0.0.1", 2525, timeout=30)
            s.sendmail("x@remote.test", ["bob@example.test"],
                       b"Subject: dev\r\n\r\nhello dev\r\n")
            s.quit()
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            pop = poplib.POP3("127.0.0.1", 1110, timeout=30)
            pop.stls(ctx)
            pop.user("bob@example.test")
            pop.pass_("secret")
            self.assertEqual(pop.stat()[0], 1)
            lines = pop.retr(1)[1]
            self.assertIn(b"hello dev", lines)
            pop.quit()
            # carteiro-webd: autoconfig announces the dev POP3S port.
            web = http.client.HTTPConnection("127.0.0.1", 2080, timeout=30)
            web.request("GET", "/mail/config-v1.1.xml",
                        headers={"Host": "autoconfig.example.test"})
            r = web.getresponse()
            self.assertEqual(r.status, 200)
            self.assertIn(b"<port>1995</port>", r.read())
            web.close()
            time.sleep(1)
            self.assertIsNone(p.poll(), "run-dev did not stay up")
        finally:
            os.killpg(p.pid, signal.SIGINT)
            out, _ = p.communicate(timeout=30)
        self.assertFalse(any(port_busy(x) for x in PORTS), out)
        self.assertIn(b"carteiro is running", out)
        self.assertIn(b"http://127.0.0.1:2080/mail/config-v1.1.xml", out)
        subprocess.run(["rm", "-rf", var])


if __name__ == "__main__":
    ct.main()
