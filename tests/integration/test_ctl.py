"""carteiroctl: every command group (init, domain, user, alias, mailbox)
and every user error: exit 1, nothing on stdout, exactly one
"carteiroctl: ..." line on stderr. No daemons needed; the store is
inspected through the harness (either backend)."""

import os
import subprocess
import threading
import time
import unittest

import carteiro_test as ct


class CtlTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = ct.Env()

    @classmethod
    def tearDownClass(cls):
        cls.env.stop()

    # -- helpers --
    def ok(self, *args, input=None):
        r = self.env.ctl(*args, input=input)
        self.assertEqual(r.returncode, 0, "%s: %s" % (args, r.stderr))
        self.assertEqual(r.stderr, "", args)
        return r.stdout

    def err(self, *args, input=None, match=None, env=None, conf=None):
        """The command must fail with exit 1, no stdout and exactly one
        stderr line "carteiroctl: ..."; returns that line."""
        if conf is not None:
            r = subprocess.run([ct.CTL, "-c", conf] + list(args),
                               input=input, capture_output=True, text=True,
                               timeout=60)
        else:
            r = self.env.ctl(*args, input=input)
        self.assertEqual(r.returncode, 1, "%s: rc=%d out=%r err=%r" % (
            args, r.returncode, r.stdout, r.stderr))
        self.assertEqual(r.stdout, "", args)
        lines = r.stderr.splitlines()
        self.assertEqual(len(lines), 1, "%s: %r" % (args, r.stderr))
        self.assertTrue(r.stderr.endswith("\n"))
        self.assertTrue(lines[0].startswith("carteiroctl: "), lines[0])
        for bad in ("sqlite", "SQLITE", "Traceback", "ERROR:"):
            self.assertNotIn(bad, lines[0])
        if match is not None:
            self.assertRegex(lines[0], match)
        return lines[0]

    def lines(self, *args):
        return self.ok(*args).splitlines()

    # -- init --
    def test_init_idempotent(self):
        self.ok("init")
        self.ok("init")
        self.assertIn("example.test", self.lines("domain", "list"))
        if self.env.store.backend == "sqlite":
            # The SQLite file holds the mail: only its owner may read it.
            mode = os.stat(self.env.db).st_mode & 0o777
            self.assertEqual(mode & 0o077, 0, oct(mode))

    def test_uninitialised_database(self):
        conf, store = self.env.other_store("fresh")
        for args in (("domain", "list"), ("user", "list"),
                     ("alias", "list"), ("domain", "add", "x.test"),
                     ("mailbox", "list", "a@x.test")):
            self.err(*args, conf=conf, match=r"carteiroctl init")
        self.assertTrue(store.untouched(), "created by a non-init command")
        # An empty/old database (schema version 0) is refused too.
        store.create_empty()
        self.err("domain", "list", conf=conf, match=r"carteiroctl init")
        r = subprocess.run([ct.CTL, "-c", conf, "init"], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = subprocess.run([ct.CTL, "-c", conf, "domain", "list"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "", ""))

    # -- usage --
    def test_usage_errors(self):
        self.err(match=r"no command")
        self.err("frobnicate", match=r"unknown command 'frobnicate'")
        self.err("domain", match=r"expected add, del, list or set")
        self.err("domain", "frob", match=r"unknown command 'domain frob'")
        self.err("domain", "add", match=r"usage: carteiroctl -c CONF domain add DOMAIN")
        self.err("domain", "add", "a.test", "b.test", match=r"usage:")
        self.err("domain", "list", "extra", match=r"usage:")
        self.err("user", "add", match=r"usage:")
        self.err("user", "quota", "alice@example.test", match=r"usage:")
        self.err("alias", "add", "x@example.test", match=r"usage:")
        self.err("mailbox", "list", match=r"usage:")
        self.err("init", "now", match=r"usage:")
        r = subprocess.run([ct.CTL, "-x"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(len(r.stderr.splitlines()), 1)
        r = subprocess.run([ct.CTL, "-h"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0)
        self.assertIn("user add ADDRESS", r.stdout)
        self.assertIn("mailbox list ADDRESS", r.stdout)

    def test_config_errors(self):
        self.err("domain", "list", conf=os.path.join(self.env.dir, "nope.conf"),
                 match=r"nope\.conf")
        bad = os.path.join(self.env.dir, "bad.conf")
        with open(bad, "w") as f:
            f.write("[store]\npath = %s\nbogus = 1\n[nosuch]\nx = y\n"
                    "[smtpd]\nmax_recipients = lots\n" % self.env.db)
        line = self.err("domain", "list", conf=bad)
        self.assertIn("bad.conf", line)
        self.assertIn("bogus", line)
        self.assertIn("max_recipients", line)

    # -- domain --
    def test_domain(self):
        self.ok("domain", "add", "Second.TEST")
        self.ok("domain", "add", "b\u00fccher.example")
        self.ok("domain", "add", "a-first.test")
        names = self.lines("domain", "list")
        self.assertEqual(names, sorted(names))
        self.assertIn("second.test", names)
        self.assertIn("xn--bcher-kva.example", names)
        rows = self.env.query("SELECT name FROM domains")
        self.assertIn(("xn--bcher-kva.example",), rows)
        self.assertNotIn(("b\u00fccher.example",), rows)
        self.err("domain", "add", "second.test", match=r"already exists")
        self.err("domain", "add", "XN--BCHER-KVA.example", match=r"already exists")
        for bad in ("bad_domain.test", "-x.test", "a..b", "x.test.", "",
                    "[192.0.2.1]", "192.0.2.1", "a" * 64 + ".test",
                    "\U0001F600.test"):
            self.err("domain", "add", bad, match=r"invalid domain")
        self.ok("domain", "del", "b\u00fccher.example")
        self.ok("domain", "del", "A-FIRST.test")
        self.err("domain", "del", "a-first.test", match=r"no such domain")
        self.err("domain", "del", "example.test", match=r"user")
        self.assertIn("example.test", self.lines("domain", "list"))
        self.ok("domain", "del", "second.test")

    # -- user --
    def test_user_add_and_password(self):
        self.ok("user", "add", "carol@example.test", input="pa ss\n")
        h1 = self.env.query("SELECT hash FROM users WHERE address = ?",
                            ("carol@example.test",))[0][0]
        self.assertTrue(h1.startswith("$argon2id$"), h1)
        self.assertNotIn("pa ss", h1)
        self.err("user", "add", "carol@example.test", input="x\n",
                 match=r"carol@example\.test already exists")
        self.err("user", "add", "CAROL@example.test", input="x\n",
                 match=r"already exists")
        self.ok("user", "passwd", "carol@example.test", input="new\r\n")
        h2 = self.env.query("SELECT hash FROM users WHERE address = ?",
                            ("carol@example.test",))[0][0]
        self.assertNotEqual(h1, h2)
        self.assertTrue(h2.startswith("$argon2id$"))
        # Only the first line is the password; nothing else is needed.
        self.ok("user", "passwd", "carol@example.test", input="one\ntwo\n")
        self.ok("user", "passwd", "carol@example.test", input="no-newline")
        self.err("user", "passwd", "carol@example.test", input="\n",
                 match=r"empty password")
        self.err("user", "passwd", "carol@example.test", input="",
                 match=r"no password")
        self.err("user", "passwd", "carol@example.test", input="x" * 5000 + "\n",
                 match=r"too long")
        self.err("user", "passwd", "nobody@example.test", input="x\n",
                 match=r"no such user")
        self.err("user", "add", "dave@example.test", input="\n",
                 match=r"empty password")
        self.err("user", "add", "dave@example.test", input="",
                 match=r"no password")
        self.assertNotIn("dave@example.test", self.lines("user", "list"))
        self.err("user", "add", "dave@elsewhere.test", input="x\n",
                 match=r"elsewhere\.test is not local")
        for bad in ("dave", "@example.test", "da ve@example.test",
                    "dave@", "dave@bad_domain.test", "a..b@example.test",
                    "x" * 65 + "@example.test"):
            self.err("user", "add", bad, input="x\n", match=r"invalid address")
        self.ok("user", "del", "carol@example.test")
        self.err("user", "del", "carol@example.test", match=r"no such user")

    def test_user_idn_and_utf8(self):
        self.ok("domain", "add", "m\u00fcller.test")
        self.ok("user", "add", "j\u00fcrgen@M\u00dcLLER.test", input="pw\n")
        self.assertIn("j\u00fcrgen@xn--mller-kva.test",
                      self.lines("user", "list"))
        self.assertEqual(self.lines("user", "list", "m\u00fcller.test"),
                         ["j\u00fcrgen@xn--mller-kva.test"])
        self.ok("user", "del", "j\u00fcrgen@xn--mller-kva.test")
        self.ok("domain", "del", "xn--mller-kva.test")

    def test_user_list(self):
        self.ok("domain", "add", "zz.test")
        self.ok("user", "add", "zed@zz.test", input="pw\n")
        self.ok("user", "add", "adam@zz.test", input="pw\n")
        users = self.lines("user", "list")
        self.assertEqual(users, sorted(users))
        for u in ("alice@example.test", "bob@example.test", "zed@zz.test",
                  "adam@zz.test"):
            self.assertIn(u, users)
        self.assertEqual(self.lines("user", "list", "zz.test"),
                         ["adam@zz.test", "zed@zz.test"])
        self.assertEqual(self.lines("user", "list", "@ZZ.test"),
                         ["adam@zz.test", "zed@zz.test"])
        self.assertEqual(self.lines("user", "list", "Zed@zz.test"),
                         ["zed@zz.test"])
        self.err("user", "list", "nobody@zz.test", match=r"no such user")
        show = self.lines("user", "show", "zed@zz.test")
        self.assertIn("address zed@zz.test", show)
        self.assertIn("quota 0", show)
        self.assertIn("messages 0", show)
        self.err("user", "show", "nobody@zz.test", match=r"no such user")
        self.ok("user", "del", "zed@zz.test")
        self.ok("user", "del", "adam@zz.test")
        self.ok("domain", "del", "zz.test")

    def test_user_quota(self):
        def quota():
            return self.env.query("SELECT quota FROM users WHERE address = ?",
                                  ("bob@example.test",))[0][0]
        self.ok("user", "quota", "bob@example.test", "1000")
        self.assertEqual(quota(), 1000)
        self.ok("user", "quota", "bob@example.test", "10k")
        self.assertEqual(quota(), 10 * 1024)
        self.ok("user", "quota", "bob@example.test", "25M")
        self.assertEqual(quota(), 25 * 1024 * 1024)
        self.ok("user", "quota", "bob@example.test", "2G")
        self.assertEqual(quota(), 2 * 1024 ** 3)
        self.assertIn("quota %d" % (2 * 1024 ** 3),
                      self.lines("user", "show", "bob@example.test"))
        self.ok("user", "quota", "bob@example.test", "0")
        self.assertEqual(quota(), 0)
        for bad in ("-1", "lots", "10X", "1.5M", ""):
            self.err("user", "quota", "bob@example.test", bad,
                     match=r"invalid quota")
        self.err("user", "quota", "nobody@example.test", "1M",
                 match=r"no such user")

    # -- alias --
    def test_alias(self):
        # A local destination must exist (user, alias or catch-all).
        self.err("alias", "add", "x@example.test", "ghost@example.test",
                 match=r"no user or alias ghost@example\.test")
        self.ok("alias", "add", "team@example.test", "alice@example.test")
        self.ok("alias", "add", "x@example.test", "team@example.test")
        self.ok("alias", "del", "x@example.test")
        self.ok("alias", "del", "team@example.test")
        self.ok("alias", "add", "info@example.test",
                "alice@example.test,bob@example.test, friend@remote.example")
        self.ok("alias", "add", "@example.test", "alice@example.test")
        self.ok("alias", "add", "sales@example.test", "bob@example.test")
        # With the catch-all, any local destination delivers somewhere.
        self.ok("alias", "add", "y@example.test", "ghost@example.test")
        self.ok("alias", "del", "y@example.test")
        got = self.lines("alias", "list")
        self.assertEqual(got, sorted(got))
        for line in ("info@example.test alice@example.test",
                     "info@example.test bob@example.test",
                     "info@example.test friend@remote.example",
                     "@example.test alice@example.test",
                     "sales@example.test bob@example.test"):
            self.assertIn(line, got)
        self.assertEqual(self.lines("alias", "list", "info@example.test"),
                         ["info@example.test alice@example.test",
                          "info@example.test bob@example.test",
                          "info@example.test friend@remote.example"])
        self.assertEqual(self.lines("alias", "list", "@EXAMPLE.test"),
                         ["@example.test alice@example.test"])
        self.err("alias", "list", "nothing@example.test", match=r"no such alias")
        self.err("alias", "add", "info@example.test", "alice@example.test",
                 match=r"already exists")
        # All or nothing: one duplicate rolls back the whole add.
        self.err("alias", "add", "sales@example.test",
                 "new@remote.example,bob@example.test", match=r"already exists")
        self.assertEqual(self.lines("alias", "list", "sales@example.test"),
                         ["sales@example.test bob@example.test"])
        self.err("alias", "add", "x@remote.example", "alice@example.test",
                 match=r"remote\.example is not local")
        self.err("alias", "add", "@remote.example", "alice@example.test",
                 match=r"not local")
        self.err("alias", "add", "x@example.test", "not an address",
                 match=r"invalid address")
        self.err("alias", "add", "x@example.test", "a@example.test,,b@example.test",
                 match=r"empty destination")
        self.err("alias", "add", "bad source@example.test", "a@example.test",
                 match=r"invalid address")
        self.err("alias", "add", "@bad_domain", "a@example.test",
                 match=r"invalid domain")
        self.err("alias", "add", "loop@example.test", "LOOP@example.test",
                 match=r"itself")
        # An alias on a user's own address: listing the address keeps a
        # copy (no note); without it a one-line note says where mail goes.
        self.ok("alias", "add", "alice@example.test",
                "alice@example.test,bob@example.test")
        self.ok("alias", "del", "alice@example.test")
        r = self.env.ctl("alias", "add", "alice@example.test", "bob@example.test")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(r.stderr.splitlines()), 1)
        self.assertIn("note:", r.stderr)
        self.ok("alias", "del", "alice@example.test")
        self.ok("alias", "del", "info@example.test", "friend@remote.example")
        self.assertEqual(len(self.lines("alias", "list", "info@example.test")), 2)
        self.err("alias", "del", "info@example.test", "friend@remote.example",
                 match=r"no such alias")
        self.ok("alias", "del", "info@example.test")
        self.err("alias", "del", "info@example.test", match=r"no such alias")
        self.ok("alias", "del", "@example.test")
        self.ok("alias", "del", "sales@example.test")
        self.assertEqual(self.lines("alias", "list"), [])

    # -- mailbox --
    def test_mailbox_list(self):
        self.assertEqual(self.ok("mailbox", "list", "alice@example.test"), "")
        self.assertEqual(self.ok("mailbox", "list", "ALICE@example.test"), "")
        self.err("mailbox", "list", "nobody@example.test", match=r"no such user")
        self.err("mailbox", "list", "nobody", match=r"invalid address")

    # -- concurrency --
    def test_waits_for_a_writer(self):
        """A write lock held by someone else (a daemon) for a moment makes
        carteiroctl wait, not fail."""
        con = self.env.connect()
        con.begin(lock=("domains",))
        result = {}

        def run():
            t0 = time.monotonic()
            result["r"] = self.env.ctl("domain", "add", "busy.test")
            result["waited"] = time.monotonic() - t0
        t = threading.Thread(target=run)
        t.start()
        time.sleep(1.0)
        con.commit()
        con.close()
        t.join(60)
        r = result["r"]
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertGreater(result["waited"], 0.5)
        self.assertIn("busy.test", self.lines("domain", "list"))
        # A reader does not block writers (WAL; MVCC).
        con = self.env.connect()
        con.begin()
        con.execute("SELECT count(*) FROM domains")
        self.ok("domain", "del", "busy.test")
        con.commit()
        con.close()


if __name__ == "__main__":
    ct.main()
