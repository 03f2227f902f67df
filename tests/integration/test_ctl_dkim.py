"""carteiroctl dkim keygen|list|del: the printed TXT record, the key file
permissions, and every user error with exit 1 and one stderr line."""
import os
import re
import stat
import unittest

import carteiro_test as ct


class CtlDkim(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = ct.Env(users=("alice@example.test",))

    @classmethod
    def tearDownClass(cls):
        cls.env.stop()

    def fail1(self, *args):
        r = self.env.ctl(*args)
        self.assertEqual(r.returncode, 1, r)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        self.assertTrue(r.stderr.startswith("carteiroctl: "), r.stderr)
        return r.stderr

    def test_keygen_list_del(self):
        out = self.env.ctl_ok("dkim", "keygen", "example.test")
        self.assertRegex(out, r'^ed25519\._domainkey\.example\.test\. IN TXT '
                         r'"v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}="\n$')
        out = self.env.ctl_ok("dkim", "keygen", "example.test",
                              "--algorithm", "rsa", "--selector", "s2026")
        self.assertTrue(out.startswith(
            's2026._domainkey.example.test. IN TXT "v=DKIM1; k=rsa; p=MII'))
        self.assertEqual(out.count("\n"), 1)
        # Over 255 octets: split into strings of at most 255.
        parts = re.findall(r'"([^"]*)"', out)
        self.assertGreater(len(parts), 1)
        self.assertTrue(all(len(p) <= 255 for p in parts))

        keydir = os.path.join(self.env.dir, "dkim", "example.test")
        for name in ("ed25519.key", "s2026.key"):
            st = os.stat(os.path.join(keydir, name))
            self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(keydir).st_mode), 0o700)

        lines = self.env.ctl_ok("dkim", "list").splitlines()
        self.assertEqual([l.split()[:3] for l in lines],
                         [["example.test", "ed25519", "ed25519"],
                          ["example.test", "s2026", "rsa"]])
        self.assertIn("already exists",
                      self.fail1("dkim", "keygen", "example.test"))
        self.env.ctl_ok("dkim", "del", "example.test", "s2026")
        self.assertEqual(len(self.env.ctl_ok("dkim", "list").splitlines()), 1)
        self.fail1("dkim", "del", "example.test", "s2026")

    def test_errors(self):
        self.fail1("dkim", "keygen", "other.test")
        self.fail1("dkim", "keygen", "example.test", "--algorithm", "dsa")
        self.fail1("dkim", "keygen", "example.test", "--selector", "Bad_Sel")
        self.fail1("dkim", "keygen", "example.test", "--bogus")
        self.fail1("dkim", "keygen")
        self.fail1("dkim", "frobnicate")
        self.fail1("dkim", "del", "example.test")


if __name__ == "__main__":
    ct.main()
