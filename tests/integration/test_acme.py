"""carteiroctl acme against pebble (Let's Encrypt's test ACME server),
started here with a fake DNS that points the names at loopback and its
HTTP-01 validation port set to carteiro-webd's: a certificate for the
hostname, autoconfig.DOMAIN and mta-sts.DOMAIN is issued, installed at
[tls] cert/key (key 0600, account key 0600, no challenge file left), served
after the SIGHUP by carteiro-smtpd on its implicit-TLS submission port and
by carteiro-pop3d on its POP3S port (checked against pebble's root from its
management API), not renewed while it is not due, renewed with --force and
when it enters the renewal window, and after a failure the next renew backs
off. If pebble is missing or does not start, the test fails saying so."""

import json
import os
import shutil
import socket
import ssl
import stat
import subprocess
import time
import unittest
import urllib.request

import carteiro_test as ct
from fakedns import FakeDNS

WEBD = os.path.join(ct.BUILD, "webd", "carteiro-webd")
PEBBLE = shutil.which("pebble") or "/usr/bin/pebble"
HOST = "mail.example.test"
NAMES = [HOST, "autoconfig.example.test", "mta-sts.example.test"]
VALIDITY_S = 60 * 86400          # pebble's certificateValidityPeriod


class Pebble:
    def __init__(self, d, dns_port, http_port):
        self.dir = os.path.join(d, "pebble")
        os.mkdir(self.dir)
        self.ca, cert, key = ct.make_certs(self.dir, "localhost")
        self.port, self.mgmt = ct.free_port(), ct.free_port()
        conf = os.path.join(self.dir, "pebble.json")
        with open(conf, "w") as f:
            json.dump({"pebble": {
                "listenAddress": "127.0.0.1:%d" % self.port,
                "managementListenAddress": "127.0.0.1:%d" % self.mgmt,
                "certificate": cert, "privateKey": key,
                "httpPort": http_port, "tlsPort": ct.free_port(),
                "ocspResponderURL": "",
                "externalAccountBindingRequired": False,
                "certificateValidityPeriod": VALIDITY_S}}, f)
        if not os.access(PEBBLE, os.X_OK):
            raise RuntimeError("pebble is not installed (%s): install the "
                               "Debian package pebble (scripts/deps)"
                               % PEBBLE)
        env = dict(os.environ, PEBBLE_VA_NOSLEEP="1",
                   PEBBLE_WFE_NONCEREJECT="0")
        self.logf = open(os.path.join(self.dir, "pebble.log"), "wb")
        self.proc = subprocess.Popen(
            [PEBBLE, "-config", conf, "-dnsserver",
             "127.0.0.1:%d" % dns_port], stdout=self.logf,
            stderr=subprocess.STDOUT, env=env)
        self.ctx = ssl.create_default_context(cafile=self.ca)
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(self.directory(), context=self.ctx,
                                       timeout=5).read()
                break
            except OSError:
                if self.proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError("pebble did not start:\n" +
                                       self.log())
                time.sleep(0.2)

    def directory(self):
        return "https://localhost:%d/dir" % self.port

    def root(self):
        return urllib.request.urlopen(
            "https://localhost:%d/roots/0" % self.mgmt, context=self.ctx,
            timeout=10).read().decode()

    def log(self):
        with open(os.path.join(self.dir, "pebble.log"), "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.logf.close()


def start_webd(env):
    for attempt in range(3):
        env.ports["http"] = ct.free_port()
        env.sections.setdefault("http", {}).update({
            "listen": "127.0.0.1:%d" % env.ports["http"],
            "tls_listen": ""})
        env.write_conf()
        d = ct.Daemon("carteiro-webd", [WEBD, "-f", "-c", env.conf],
                      os.path.join(env.dir, "webd.log"), [env.ports["http"]])
        try:
            d.start()
        except RuntimeError as e:
            if "Address already in use" not in str(e) or attempt == 2:
                raise
            continue
        env.daemons.append(d)
        return d


def served_cert(port, root):
    """The certificate (dict) a TLS client that trusts only pebble's root
    gets on port for HOST, or None if the handshake fails."""
    ctx = ssl.create_default_context(cadata=root)
    try:
        with socket.create_connection(("127.0.0.1", port), 10) as s:
            with ctx.wrap_socket(s, server_hostname=HOST) as t:
                return t.getpeercert()
    except (ssl.SSLError, OSError):
        return None


class AcmeTest(unittest.TestCase):
    def setUp(self):
        self.env = ct.Env()
        self.dns = FakeDNS({n: {"A": ["127.0.0.1"]} for n in NAMES})
        self.dns.start()
        self.pebble = None
        self.env.sections["acme"] = {"enable": "yes",
                                     "email": "postmaster@example.test"}
        self.env.write_conf()
        self.webd = start_webd(self.env)
        self.env.start_smtpd()
        self.env.start_pop3d()
        self.pebble = Pebble(self.env.dir, self.dns.port,
                             self.env.ports["http"])
        self.env.sections["acme"].update({
            "directory": self.pebble.directory(),
            "ca_file": self.pebble.ca})
        self.env.write_conf()
        # The pid files come right after the privilege drop.
        deadline = time.time() + 20
        for role in ("smtpd", "pop3d", "webd"):
            p = os.path.join(self.env.dir, "carteiro-%s.pid" % role)
            while not os.path.exists(p):
                self.assertLess(time.time(), deadline, "no " + p)
                time.sleep(0.05)

    def tearDown(self):
        if self.pebble is not None:
            self.pebble.stop()
        self.dns.stop()
        self.env.stop()
        self.env.cleanup()

    def wait_serial(self, port, root, not_serial):
        """Poll until port serves a pebble certificate other than
        not_serial (the daemons reload on SIGHUP, asynchronously)."""
        deadline = time.time() + 30
        while True:
            c = served_cert(port, root)
            if c is not None and c["serialNumber"] != not_serial:
                return c
            if time.time() > deadline:
                self.fail("port %d does not serve a new pebble "
                          "certificate:\n%s" % (port, self.env.logs()))
            time.sleep(0.2)

    def renew(self, *args):
        r = self.env.ctl("acme", "renew", *args)
        self.assertEqual(r.returncode, 0, "%s%s\n%s" % (
            r.stdout, r.stderr, self.pebble.log()[-3000:]))
        return r.stdout

    def test_issue_install_serve_renew(self):
        env = self.env
        out = env.ctl_ok("acme", "status")
        self.assertIn("enabled: yes\n", out)
        self.assertIn("names: %s\n" % " ".join(NAMES), out)
        self.assertIn("due: it does not name all of the names\n", out)

        # Before: the harness's own test certificate, not pebble's.
        self.assertIsNone(served_cert(env.ports["submissions"],
                                      self.pebble.root()))
        out = self.renew()
        self.assertRegex(out, r"^acme: installed a certificate for 3 names "
                         r"at %s \(valid until \S+, renewal from \S+\); "
                         r"reloaded: smtpd pop3d webd\n$" % env.cert)
        self.assertEqual(stat.S_IMODE(os.stat(env.key).st_mode), 0o600)
        acme = os.path.join(env.dir, "acme")
        self.assertEqual(
            stat.S_IMODE(os.stat(os.path.join(acme, "account.key"))
                         .st_mode), 0o600)
        self.assertEqual(os.listdir(os.path.join(acme, "challenges")), [])

        root = self.pebble.root()
        first = {}
        for port in (env.ports["submissions"], env.ports["pop3s"]):
            c = self.wait_serial(port, root, None)
            self.assertEqual(sorted(v for k, v in c["subjectAltName"]
                                    if k == "DNS"), sorted(NAMES))
            first[port] = c["serialNumber"]
        self.assertEqual(first[env.ports["submissions"]],
                         first[env.ports["pop3s"]])
        serial = first[env.ports["pop3s"]]

        # Not due: nothing happens, nothing is asked of pebble.
        out = self.renew()
        self.assertRegex(out, r"^acme: not due: valid until \S+, renewal "
                         r"from \S+\n$")
        self.assertIn("ok: valid until", env.ctl_ok("acme", "status"))

        # --force renews at once.
        self.assertIn("acme: installed", self.renew("--force"))
        for port in (env.ports["submissions"], env.ports["pop3s"]):
            second = self.wait_serial(port, root, serial)["serialNumber"]
        self.assertNotEqual(second, serial)

        # Inside the renewal window (61 days > the 60-day validity).
        env.sections["acme"]["renew_before"] = "61d"
        env.write_conf()
        self.assertIn("acme: installed", self.renew())
        for port in (env.ports["submissions"], env.ports["pop3s"]):
            third = self.wait_serial(port, root, second)["serialNumber"]
        self.assertNotEqual(third, second)

        # A failure: exit 1 with the reason, then the next run backs off
        # (an hour) instead of asking the server again.
        env.sections["acme"]["directory"] = \
            "https://localhost:%d/dir" % ct.free_port()
        env.write_conf()
        r = env.ctl("acme", "renew")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("acme renew failed (1 in a row; next try after ",
                      r.stderr)
        self.assertIn("directory: https://localhost:", r.stderr)
        out = self.renew()
        self.assertRegex(out, r"^acme: backing off after 1 failure until "
                         r"\S+: directory: ")
        self.assertIn("failures: 1, next attempt ",
                      env.ctl_ok("acme", "status"))
        # The certificate in place is untouched.
        self.assertEqual(served_cert(env.ports["pop3s"], root)
                         ["serialNumber"], third)

    def test_no_http_listener(self):
        self.env.sections["http"]["listen"] = ""
        self.env.write_conf()
        r = self.env.ctl("acme", "renew")
        self.assertEqual(r.returncode, 1)
        self.assertIn("carteiro-webd must listen on port 80", r.stderr)

    def test_off(self):
        self.env.sections["acme"]["enable"] = "no"
        self.env.write_conf()
        r = self.env.ctl("acme", "renew")
        self.assertEqual(r.returncode, 1)
        self.assertIn("ACME is off: set [acme] enable = yes", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.env.dir, "acme")))


if __name__ == "__main__":
    unittest.main()
