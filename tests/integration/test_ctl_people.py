"""carteiroctl for people (issue 15 item 6): every command that changes
something says what it did in exactly one line on stdout; a minimal config
without [tls] is good enough for the commands that only touch the store
(the daemons still refuse it); --version; "COMMAND -h" prints that
command's usage from the dispatch table, without reading any config."""

import os
import re
import shutil
import subprocess
import tempfile
import unittest

import carteiro_test as ct


def project_version():
    with open(os.path.join(ct.SRC, "meson.build")) as f:
        m = re.search(r"version\s*:\s*'([^']+)'", f.read())
    return m.group(1)


class CtlPeopleTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="carteiro-ctlpeople-")
        cls.store = ct.TestStore(os.path.join(cls.dir, "carteiro.db"))
        cls.db = cls.store.name
        cls.conf = os.path.join(cls.dir, "min.conf")
        # The smallest config there is: the default listeners (submission
        # on every address, POP3, implicit TLS) and no [tls] at all.
        with open(cls.conf, "w") as f:
            f.write(cls.store.conf_text())

    @classmethod
    def tearDownClass(cls):
        cls.store.drop()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def run_ctl(self, *args, input=None, conf=None):
        return subprocess.run([ct.CTL, "-c", conf or self.conf] + list(args),
                              input=input, capture_output=True, text=True,
                              timeout=60)

    def said(self, *args, input=None):
        """The command must succeed, print nothing on stderr and exactly
        one line on stdout; returns that line."""
        r = self.run_ctl(*args, input=input)
        self.assertEqual((r.returncode, r.stderr), (0, ""), args)
        self.assertTrue(r.stdout.endswith("\n"), (args, r.stdout))
        lines = r.stdout.splitlines()
        self.assertEqual(len(lines), 1, (args, r.stdout))
        return lines[0]

    def test_1_changing_commands_say_what_they_did(self):
        created = self.said("init")
        m = re.fullmatch(r"created database (.*) \(schema version (\d+)\)",
                         created)
        self.assertIsNotNone(m, created)
        self.assertEqual(m.group(1), self.db)
        version = int(m.group(2))
        self.assertGreater(version, 0)
        if self.store.backend == "sqlite":
            self.assertEqual(self.store.query("PRAGMA user_version"),
                             [(version,)])
        self.assertEqual(self.said("init"), "database %s is up to date "
                         "(schema version %d)" % (self.db, version))
        self.assertEqual(self.said("domain", "add", "Example.TEST"),
                         "added domain example.test")
        self.assertEqual(self.said("domain", "add", "b\u00fccher.test"),
                         "added domain xn--bcher-kva.test")
        self.assertEqual(self.said("user", "add", "Alice@example.test",
                                   input="pw\n"),
                         "added user Alice@example.test")
        self.assertEqual(self.said("user", "add", "bob@example.test",
                                   input="pw\n"),
                         "added user bob@example.test")
        self.assertEqual(self.said("user", "passwd", "bob@example.test",
                                   input="pw2\n"),
                         "changed the password of bob@example.test")
        self.assertEqual(self.said("user", "quota", "bob@example.test",
                                   "10M"),
                         "set the quota of bob@example.test to 10485760 "
                         "bytes")
        self.assertEqual(self.said("user", "quota", "bob@example.test", "0"),
                         "set the quota of bob@example.test to unlimited")
        self.assertEqual(self.said("user", "disable", "bob@example.test"),
                         "disabled user bob@example.test")
        self.assertEqual(self.said("user", "enable", "bob@example.test"),
                         "enabled user bob@example.test")
        self.assertEqual(self.said("user", "set", "bob@example.test",
                                   "expire=30"),
                         "set expire=30 for bob@example.test")
        self.assertEqual(self.said("alias", "add", "info@example.test",
                                   "bob@example.test, x@remote.test"),
                         "added alias info@example.test -> "
                         "bob@example.test, x@remote.test")
        self.assertEqual(self.said("alias", "del", "info@example.test",
                                   "x@remote.test"),
                         "deleted alias info@example.test -> x@remote.test")
        self.assertEqual(self.said("alias", "add", "@example.test",
                                   "bob@example.test"),
                         "added alias @example.test -> bob@example.test")
        self.assertEqual(self.said("alias", "del", "@example.test"),
                         "deleted alias @example.test")
        self.assertEqual(self.said("alias", "del", "info@example.test"),
                         "deleted alias info@example.test")
        self.assertEqual(self.said("queue", "flush"), "flushed 0 messages")
        r = self.run_ctl("dkim", "keygen", "example.test", "--selector",
                         "s1")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.said("dkim", "del", "example.test", "s1"),
                         "deleted DKIM key s1 for example.test")
        self.assertEqual(self.said("user", "del", "bob@example.test"),
                         "deleted user bob@example.test")
        self.assertEqual(self.said("domain", "del", "xn--bcher-kva.test"),
                         "deleted domain xn--bcher-kva.test")
        # Reading commands print only what they read.
        r = self.run_ctl("domain", "list")
        self.assertEqual((r.returncode, r.stdout, r.stderr),
                         (0, "example.test\n", ""))
        # The store really changed.
        self.assertEqual(self.store.query("SELECT address FROM users"),
                         [("Alice@example.test",)])

    def test_2_daemons_still_want_tls(self):
        """The TLS checks moved, they did not go away."""
        for daemon in (ct.SMTPD, ct.POP3D):
            r = subprocess.run([daemon, "-c", self.conf, "-t"],
                               capture_output=True, text=True, timeout=60)
            self.assertNotEqual(r.returncode, 0, daemon)
            self.assertIn("needs [tls] cert and key", r.stderr, daemon)
        # Every other check still applies to the tool.
        bad = os.path.join(self.dir, "bad.conf")
        text = self.store.conf_text() + "[tls]\ncert = /x.pem\n"
        with open(bad, "w") as f:
            f.write(text)
        r = self.run_ctl("domain", "list", conf=bad)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stdout, "")
        self.assertEqual(r.stderr, "carteiroctl: %s:%d: [tls] cert: cert and "
                         "key go together: set both or neither\n" % (
                             bad, len(text.splitlines())))

    def test_3_version(self):
        for args in (["--version"], ["-c", "/nonexistent.conf", "--version"]):
            r = subprocess.run([ct.CTL] + args, capture_output=True,
                               text=True, timeout=60)
            self.assertEqual((r.returncode, r.stdout, r.stderr),
                             (0, "carteiroctl %s\n" % project_version(), ""))
        r = subprocess.run([ct.CTL, "--bogus"], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual((r.returncode, r.stdout, r.stderr),
                         (1, "", "carteiroctl: unknown option --bogus "
                          "(try carteiroctl -h)\n"))

    def help(self, *args):
        """carteiroctl ARGS with a config that does not exist: help must
        not need one."""
        r = subprocess.run([ct.CTL, "-c", "/nonexistent.conf"] + list(args),
                           capture_output=True, text=True, timeout=60)
        self.assertEqual((r.returncode, r.stderr), (0, ""), args)
        return r.stdout

    def test_4_help_per_command(self):
        self.assertEqual(self.help("domain", "-h"),
                         "usage: carteiroctl [-c CONF] domain add DOMAIN\n"
                         "       carteiroctl [-c CONF] domain del DOMAIN\n"
                         "       carteiroctl [-c CONF] domain list\n"
                         "       carteiroctl [-c CONF] domain set DOMAIN "
                         "source_ip=ADDR[,ADDR] helo=NAME  (empty value: "
                         "unset)\n")
        self.assertEqual(self.help("user", "add", "-h"),
                         "usage: carteiroctl [-c CONF] user add ADDRESS  "
                         "(password on stdin)\n")
        self.assertEqual(self.help("user", "add", "--help"),
                         self.help("user", "add", "-h"))
        self.assertEqual(self.help("alias", "del", "x@example.test", "-h"),
                         "usage: carteiroctl [-c CONF] alias del SOURCE "
                         "[DEST[,DEST...]]\n")
        self.assertEqual(self.help("queue", "-h"),
                         "usage: carteiroctl [-c CONF] queue list|show "
                         "ID|flush|delete ID\n")
        self.assertEqual(self.help("init", "-h"),
                         "usage: carteiroctl [-c CONF] init\n")
        # Every row of the table answers -h with its own usage line, so
        # commands added later get help for free.
        top = self.help("-h")
        self.assertIn("--version", top)
        rows = top.split("\ncommands:\n", 1)[1].splitlines()
        self.assertGreater(len(rows), 15)
        for row in rows:
            usage = row.strip()
            words = usage.split()
            out = self.help(*(words[:2] + ["-h"]))
            self.assertIn("carteiroctl [-c CONF] %s\n" % usage, out, usage)
            self.assertTrue(out.startswith("usage: carteiroctl [-c CONF] "),
                            out)
        # An unknown command stays an error.
        r = subprocess.run([ct.CTL, "frob", "-h"], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual((r.returncode, r.stdout, r.stderr),
                         (1, "", "carteiroctl: unknown command 'frob' (try "
                          "carteiroctl -h)\n"))


if __name__ == "__main__":
    unittest.main()
