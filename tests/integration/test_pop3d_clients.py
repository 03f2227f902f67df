"""pop3d with real clients: curl (pop3:// LIST and RETR, pop3:// with STLS,
pop3s:// with the test CA) and mpop fetching every message into an mbox,
checked against what was stored."""

import os
import subprocess
import unittest

import carteiro_test as ct
import pop3_fixtures as pf

ALICE = "alice@example.test"


class Pop3Clients(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = ct.Env()
        cls.msgs = [pf.make_msg("curl %d" % i, 3 + i,
                                extra=b".dot line\r\n..two\r\n")
                    for i in range(4)]
        pf.deliver_many(cls.env, ALICE, cls.msgs)
        pf.start(cls.env)

    @classmethod
    def tearDownClass(cls):
        cls.env.stop()

    def curl(self, url, *extra):
        r = subprocess.run(["curl", "-sS", "--max-time", "20", "-u",
                            "%s:%s" % (ALICE, ct.PASSWORD)] + list(extra) +
                           [url], capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def test_curl_list_retr(self):
        port = self.env.ports["pop3"]
        out = self.curl("pop3://127.0.0.1:%d/" % port)
        self.assertEqual(out, b"".join(b"%d %d\r\n" % (i + 1, len(m))
                                       for i, m in enumerate(self.msgs)))
        out = self.curl("pop3://127.0.0.1:%d/2" % port)
        self.assertEqual(out, self.msgs[1])
        # STLS, required
        out = self.curl("pop3://localhost:%d/3" % port, "--ssl-reqd",
                        "--cacert", self.env.ca)
        self.assertEqual(out, self.msgs[2])

    def test_curl_pop3s(self):
        port = self.env.ports["pop3s"]
        out = self.curl("pop3s://localhost:%d/" % port, "--cacert",
                        self.env.ca)
        self.assertEqual(len(out.splitlines()), len(self.msgs))
        out = self.curl("pop3s://localhost:%d/4" % port, "--cacert",
                        self.env.ca)
        self.assertEqual(out, self.msgs[3])

    def test_mpop_mbox(self):
        d = self.env.dir
        mbox = os.path.join(d, "fetched.mbox")
        rc = os.path.join(d, "mpoprc")
        with open(rc, "w") as f:
            f.write("defaults\n"
                    "tls on\n"
                    "tls_starttls on\n"
                    "tls_trust_file %s\n"
                    "uidls_file %s\n"
                    "account test\n"
                    "host 127.0.0.1\n"
                    "port %d\n"
                    "user %s\n"
                    "password %s\n"
                    "auth user\n"
                    "keep on\n"
                    "delivery mbox %s\n" % (
                        self.env.ca, os.path.join(d, "mpop.uidls"),
                        self.env.ports["pop3"], ALICE, ct.PASSWORD, mbox))
        os.chmod(rc, 0o600)
        r = subprocess.run(["mpop", "-C", rc, "-q", "test"],
                           capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr + r.stdout)
        with open(mbox, "rb") as f:
            box = f.read()
        froms = [l for l in box.split(b"\n") if l.startswith(b"From ")]
        self.assertEqual(len(froms), len(self.msgs))
        for m in self.msgs:
            self.assertIn(m.replace(b"\r\n", b"\n"), box)
        # keep on: a second run fetches nothing new (UIDLs remembered)
        r = subprocess.run(["mpop", "-C", rc, "-q", "test"],
                           capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr + r.stdout)
        with open(mbox, "rb") as f:
            self.assertEqual(f.read(), box)


if __name__ == "__main__":
    ct.main()
