"""The Debian package (issue 15 item 5): scripts/package builds it in a
temporary copy of the tree and lintian finds no error; dpkg installs it on
this machine (the test runs as root): binaries, man pages, the units of
etc/, /etc/carteiro/carteiro.conf as a conffile, the carteiro system user
and its store directory; `carteiroctl -c /etc/carteiro/carteiro.conf init`
works; `man -l` renders every page without a warning and the generated
pages list every config key and every carteiroctl command; purging leaves
the machine as it was (the test also removes the user if it made it).

Built once: the sanitizer build dir skips it (the package does not use the
build dir's binaries)."""

import glob
import gzip
import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import tempfile
import unittest

import carteiro_test as ct

SBIN = ("carteiro-smtpd", "carteiro-pop3d", "carteiroctl")
MANS = ("man8/carteiro-smtpd.8.gz", "man8/carteiro-pop3d.8.gz",
        "man8/carteiro-webd.8.gz",
        "man8/carteiroctl.8.gz", "man5/carteiro.conf.5.gz")
CONF = "/etc/carteiro/carteiro.conf"
# What the package may leave behind after a purge: nothing of these.
LEFTOVERS = ("/etc/carteiro", "/var/lib/carteiro", "/usr/sbin/carteiroctl",
             "/usr/sbin/carteiro-smtpd", "/usr/sbin/carteiro-pop3d",
             "/lib/systemd/system/carteiro-smtpd.service",
             "/usr/share/doc/carteiro", "/usr/share/man/man5/carteiro.conf.5.gz")


def installed(pkg="carteiro"):
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg],
                       capture_output=True, text=True)
    return r.returncode == 0 and "installed" in r.stdout.split()[-1:]


def sanitized_build():
    path = os.path.join(ct.BUILD, "meson-info", "intro-buildoptions.json")
    try:
        with open(path) as f:
            opts = json.load(f)
    except OSError:
        return False
    return any(o["name"] == "b_sanitize" and o["value"] not in ("none", [])
               for o in opts)


def user_exists(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def sample_keys():
    """(section, key) of every key in etc/carteiro.conf, which
    test_config checks against the key table."""
    keys, section = [], None
    with open(os.path.join(ct.SRC, "etc", "carteiro.conf")) as f:
        for line in f:
            m = re.match(r"\[(\w+)\]", line)
            if m:
                section = m.group(1)
                continue
            m = re.match(r"[;#]?\s*(\w+)\s*=", line)
            if m and section and not line.startswith(("; ", ";\t")):
                keys.append((section, m.group(1)))
    return keys


class PackageTest(unittest.TestCase):
    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("installs a package: needs root")
        if sanitized_build():
            self.skipTest("the package is built once, by the plain build")
        for tool in ("dpkg-buildpackage", "dh", "lintian"):
            if shutil.which(tool) is None:
                self.fail("%s missing (scripts/deps installs it)" % tool)
        if installed() or os.path.exists("/etc/carteiro"):
            self.skipTest("carteiro is installed on this machine: not "
                          "touching it")
        self.had_user = user_exists("carteiro")
        self.addCleanup(self.cleanup)
        self.dir = tempfile.mkdtemp(prefix="carteiro-pkgtest-")

    def cleanup(self):
        if installed() or os.path.exists("/var/lib/dpkg/info/carteiro.list"):
            subprocess.run(["dpkg", "--purge", "carteiro"],
                           capture_output=True)
        if not self.had_user and user_exists("carteiro"):
            subprocess.run(["deluser", "--system", "--quiet", "carteiro"],
                           capture_output=True)
            subprocess.run(["delgroup", "--system", "--quiet", "carteiro"],
                           capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)

    def run_ok(self, *argv, **kw):
        r = subprocess.run(list(argv), capture_output=True, text=True,
                           timeout=kw.pop("timeout", 120), **kw)
        self.assertEqual(r.returncode, 0, "%s:\n%s%s" % (argv, r.stdout,
                                                        r.stderr))
        return r

    def test_package(self):
        # -- build: out of tree, lintian clean --
        r = self.run_ok(os.path.join(ct.SRC, "scripts", "package"), self.dir,
                        timeout=280)
        deb = r.stdout.splitlines()[-1]
        self.assertEqual(os.path.dirname(deb), os.path.realpath(self.dir))
        self.assertTrue(os.path.isfile(deb), deb)
        self.assertNotRegex(r.stderr, r"(?m)^E: ", r.stderr)
        # Nothing of debhelper's in the source tree (other tests may be
        # writing there meanwhile, so no whole-tree comparison).
        for p in ("debian", "obj-*", "carteiro_*", "*.deb", "*.buildinfo",
                  "*.changes"):
            self.assertEqual(glob.glob(os.path.join(ct.SRC, p)), [], p)

        # -- install --
        self.run_ok("dpkg", "-i", deb)
        self.assertTrue(installed())
        for b in SBIN:
            st = os.stat("/usr/sbin/" + b)
            self.assertTrue(st.st_mode & stat.S_IXOTH, b)
        for m in MANS:
            self.assertTrue(os.path.isfile("/usr/share/man/" + m), m)
        # Whatever meson installs comes along (new daemons, units, pages):
        # every file of the build dir's install list, by name (the
        # package's prefix differs, man pages are gzipped).
        listed = subprocess.run(["dpkg", "-L", "carteiro"],
                                capture_output=True, text=True).stdout
        names = {os.path.basename(f).removesuffix(".gz")
                 for f in listed.splitlines()}
        r = self.run_ok("meson", "introspect", "--installed", ct.BUILD)
        meson_files = {os.path.basename(f) for f in
                       json.loads(r.stdout).values()}
        self.assertIn("carteiroctl", meson_files)
        self.assertEqual(sorted(meson_files - names), [])
        # Every unit of etc/, byte for byte.
        units = sorted(os.path.basename(u) for pat in ("*.service", "*.timer")
                       for u in glob.glob(os.path.join(ct.SRC, "etc", pat)))
        self.assertIn("carteiro-smtpd.service", units)
        for u in units:
            with open("/lib/systemd/system/" + u) as f, \
                    open(os.path.join(ct.SRC, "etc", u)) as g:
                self.assertEqual(f.read(), g.read(), u)
        with open(CONF) as f, \
                open(os.path.join(ct.SRC, "etc", "carteiro.conf")) as g:
            self.assertEqual(f.read(), g.read())
        r = self.run_ok("dpkg-query", "-W", "-f=${Conffiles}", "carteiro")
        self.assertIn(CONF, r.stdout)
        # The system user and its store directory.
        pw = pwd.getpwnam("carteiro")
        self.assertLess(pw.pw_uid, 1000)
        self.assertEqual(pw.pw_shell, "/usr/sbin/nologin")
        st = os.stat("/var/lib/carteiro")
        self.assertEqual((st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)),
                         (pw.pw_uid, pw.pw_gid, 0o700))

        # -- carteiroctl on the packaged config --
        r = self.run_ok("/usr/sbin/carteiroctl", "--version")
        self.assertRegex(r.stdout, r"^carteiroctl \d+\.\d+\.\d+\n$")
        r = self.run_ok("/usr/sbin/carteiroctl", "-c", CONF, "init")
        m = re.fullmatch(r"created database (\S+) \(schema version (\d+)\)\n",
                         r.stdout)
        self.assertIsNotNone(m, r.stdout)
        db = m.group(1)
        self.assertTrue(db.startswith("/var/lib/carteiro/"), db)
        st = os.stat(db)
        self.assertEqual((st.st_uid, stat.S_IMODE(st.st_mode) & 0o077),
                         (pw.pw_uid, 0))
        r = self.run_ok("/usr/sbin/carteiroctl", "-c", CONF, "domain", "add",
                        "example.test")
        self.assertEqual(r.stdout, "added domain example.test\n")
        # The daemons check the packaged config (its TLS files are the
        # admin's to provide, so -t names them).
        r = subprocess.run(["/usr/sbin/carteiro-smtpd", "-c", CONF, "-t"],
                           capture_output=True, text=True, timeout=60)
        self.assertNotIn("unknown key", r.stderr)

        # -- manuals --
        pages = {}
        for m in MANS:
            with gzip.open("/usr/share/man/" + m, "rt") as f:
                pages[m] = f.read()
        conf_page = pages["man5/carteiro.conf.5.gz"]
        for section, key in sample_keys():
            self.assertIn(".SS [%s]" % section, conf_page)
            self.assertIn(".B %s\n" % key.replace("-", "\\-"), conf_page,
                          key)
        ctl_page = pages["man8/carteiroctl.8.gz"]
        r = self.run_ok("/usr/sbin/carteiroctl", "-h")
        rows = r.stdout.split("\ncommands:\n", 1)[1].splitlines()
        for row in rows:
            usage = row.strip().split("  (")[0]
            self.assertIn(".B %s\n" % usage.replace("-", "\\-"), ctl_page,
                          usage)
        if shutil.which("man"):
            for m in MANS:
                r = subprocess.run(
                    ["man", "--warnings", "-l", "/usr/share/man/" + m],
                    capture_output=True, text=True, timeout=60,
                    env=dict(os.environ, MANWIDTH="80", MAN_KEEP_STDERR="1",
                             PAGER="cat", MANPAGER="cat"))
                self.assertEqual((r.returncode, r.stderr), (0, ""), m)
                name = os.path.basename(m).rsplit(".", 2)[0].upper()
                self.assertIn(name, r.stdout, m)
                self.assertIn("SEE ALSO", r.stdout, m)
            r = subprocess.run(["man", "-l", "/usr/share/man/man5/"
                                "carteiro.conf.5.gz"],
                               capture_output=True, text=True, timeout=60,
                               env=dict(os.environ, MANWIDTH="200",
                                        PAGER="cat", MANPAGER="cat"))
            self.assertRegex(r.stdout, r"max_recipients\n\s+Per message\.\n"
                             r"\s+number, 1 to 100000; default 100\.")

        # -- purge: nothing left --
        self.run_ok("dpkg", "--purge", "carteiro")
        self.assertFalse(installed())
        for p in LEFTOVERS:
            self.assertFalse(os.path.lexists(p), p)
        self.assertEqual(glob.glob("/var/lib/dpkg/info/carteiro.*"), [])
        self.assertEqual(glob.glob("/etc/systemd/system/*/carteiro-*"), [])
        self.assertEqual(glob.glob("/var/lib/systemd/deb-systemd-helper-*/"
                                   "**/*carteiro*", recursive=True), [])


if __name__ == "__main__":
    unittest.main()
