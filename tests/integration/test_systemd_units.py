"""The systemd units in etc/: `systemd-analyze security --offline=true`
rates each one 2.0 or lower, `systemd-analyze verify` accepts both (with
ExecStart pointed at the build), the units agree with the sample config
(User= is [server] user, the store is in ReadWritePaths=), and the
daemons work the way the units start them: as an ordinary user whose only
capability is CAP_NET_BIND_SERVICE (ambient and bounding set, no new
privileges, umask 077), binding ports below 1024, storing mail, logging in
with argon2id over TLS and reloading the certificate on SIGHUP. systemd is
not PID 1 in the test container, so the namespaces and the seccomp filter
themselves are not exercised here; that part uses setpriv(1)."""

import os
import poplib
import random
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import time
import unittest

import carteiro_test as ct

ETC = os.path.join(ct.SRC, "etc")
UNITS = {"smtpd": ct.SMTPD, "pop3d": ct.POP3D}
MAX_EXPOSURE = 2.0
ANALYZE = shutil.which("systemd-analyze")
SETPRIV = shutil.which("setpriv")


def unit_path(name):
    return os.path.join(ETC, "carteiro-%s.service" % name)


def directives(path):
    """Every Key=value of the [Service] section, as key -> list of values."""
    out = {}
    section = None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line
                continue
            if section == "[Service]":
                k, v = line.split("=", 1)
                out.setdefault(k, []).append(v)
    return out


def sample_conf(section, key):
    cur = None
    with open(os.path.join(ETC, "carteiro.conf")) as f:
        for line in f:
            line = line.strip()
            if line.startswith("["):
                cur = line[1:-1]
            elif cur == section and re.match(r"%s\s*=" % key, line):
                return line.split("=", 1)[1].strip()
    raise KeyError(key)


@unittest.skipIf(ANALYZE is None, "systemd-analyze is not installed")
class Analyze(unittest.TestCase):
    def test_exposure_at_most_2_0(self):
        for name in UNITS:
            r = subprocess.run([ANALYZE, "security", "--offline=true",
                                "--no-pager", unit_path(name)],
                               capture_output=True, text=True, timeout=60)
            out = r.stdout + r.stderr
            m = re.search(r"Overall exposure level for carteiro-%s\.service:"
                          r" (\d+\.\d+)" % name, out)
            self.assertIsNotNone(m, out)
            self.assertLessEqual(float(m.group(1)), MAX_EXPOSURE,
                                 "carteiro-%s.service:\n%s" % (name, out))

    def test_verify(self):
        # verify wants ExecStart= to exist: point it at the build.
        d = tempfile.mkdtemp(prefix="carteiro-units-")
        try:
            for name, binary in UNITS.items():
                with open(unit_path(name)) as f:
                    text = f.read()
                self.assertIn("/usr/sbin/carteiro-%s " % name, text)
                copy = os.path.join(d, "carteiro-%s.service" % name)
                with open(copy, "w") as f:
                    f.write(text.replace("/usr/sbin/carteiro-%s " % name,
                                         binary + " "))
                r = subprocess.run([ANALYZE, "verify", copy],
                                   capture_output=True, text=True, timeout=60)
                self.assertEqual((r.returncode, r.stdout + r.stderr), (0, ""),
                                 "carteiro-%s.service" % name)
        finally:
            shutil.rmtree(d)


class Contents(unittest.TestCase):
    def test_units_agree_with_sample_config(self):
        user = sample_conf("server", "user")
        store = os.path.dirname(sample_conf("store", "path"))
        for name in UNITS:
            d = directives(unit_path(name))
            self.assertEqual(d.get("User"), [user], name)
            self.assertEqual(d.get("Group"), [user], name)
            self.assertEqual(d.get("ReadWritePaths"), [store], name)
            self.assertEqual(d.get("ProtectSystem"), ["strict"], name)
            self.assertEqual(d.get("AmbientCapabilities"),
                             ["CAP_NET_BIND_SERVICE"], name)
            self.assertEqual(d.get("CapabilityBoundingSet"),
                             ["CAP_NET_BIND_SERVICE"], name)
            self.assertEqual(d.get("SystemCallFilter"),
                             ["@system-service", "~@privileged @resources"],
                             name)
            # A mail server talks to the whole internet.
            for k in ("IPAddressDeny", "IPAddressAllow", "PrivateNetwork",
                      "DynamicUser"):
                self.assertNotIn(k, d, name)


def low_port():
    """A free port below 1024 (only CAP_NET_BIND_SERVICE may bind it)."""
    for _ in range(200):
        port = random.randint(700, 1000)
        if port in ct._ports_handed_out:
            continue
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        ct._ports_handed_out.add(port)
        return port
    raise RuntimeError("no free port below 1024")


UID = 65534     # nobody: an ordinary user with no rights of its own


@unittest.skipIf(os.geteuid() != 0, "needs root to start as another user")
@unittest.skipIf(SETPRIV is None, "setpriv (util-linux) is not installed")
class AsServiceUser(unittest.TestCase):
    """What User=, AmbientCapabilities=, CapabilityBoundingSet=,
    NoNewPrivileges= and UMask= leave the daemons, reproduced by setpriv."""

    def setUp(self):
        self.env = ct.Env(conf={"server": {"user": "nobody"}})
        self.env.ports["mx"] = low_port()
        self.env.ports["pop3s"] = low_port()
        self.env.sections["smtpd"]["mx_listen"] = \
            "127.0.0.1:%d" % self.env.ports["mx"]
        self.env.sections["pop3d"]["tls_listen"] = \
            "127.0.0.1:%d" % self.env.ports["pop3s"]
        self.env.write_conf()
        # The install instructions: the store and the TLS key belong to
        # the service user (key 0600).
        for root, dirs, files in os.walk(self.env.dir):
            for n in dirs + files:
                os.chown(os.path.join(root, n), UID, UID)
        os.chown(self.env.dir, UID, UID)

    def tearDown(self):
        self.env.stop()

    def sandboxed(self, caps):
        return [SETPRIV, "--reuid=%d" % UID, "--regid=%d" % UID,
                "--clear-groups", "--no-new-privs",
                "--inh-caps=-all" + caps, "--ambient-caps=-all" + caps,
                "--bounding-set=-all" + caps]

    def start(self, name, caps, ports):
        argv = self.sandboxed(caps) + [UNITS[name], "-f", "-c", self.env.conf]
        d = ct.Daemon("carteiro-" + name, argv,
                      os.path.join(self.env.dir, name + ".log"), ports)
        old = os.umask(0o077)
        try:
            d.start()
        finally:
            os.umask(old)
        self.env.daemons.append(d)
        return d

    def test_without_the_capability_no_low_port(self):
        argv = self.sandboxed("") + [ct.SMTPD, "-f", "-c", self.env.conf]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        self.assertNotEqual(r.returncode, 0, r.stderr)
        self.assertIn("Permission denied", r.stderr)

    def test_works_as_user_with_net_bind_service_only(self):
        smtpd = self.start("smtpd", ",+net_bind_service",
                           [self.env.ports["mx"]])
        pop3d = self.start("pop3d", ",+net_bind_service",
                           [self.env.ports["pop3s"]])
        for d in (smtpd, pop3d):
            with open("/proc/%d/status" % d.proc.pid) as f:
                status = f.read()
            self.assertRegex(status, r"Uid:\t%d\t%d\t%d\t%d" % ((UID,) * 4))
            self.assertRegex(status, r"CapEff:\t0000000000000400\n")
            self.assertRegex(status, r"CapBnd:\t0000000000000400\n")
            self.assertRegex(status, r"NoNewPrivs:\t1\n")
            # [server] user is the user already: no drop, no error.
            self.assertNotIn("event=priv_drop", d.log())

        body = b"Subject: sandboxed\r\n\r\nunder the unit's privileges\r\n"
        with smtplib.SMTP("127.0.0.1", self.env.ports["mx"], timeout=20) as s:
            s.sendmail("carol@remote.test", ["alice@example.test"], body)
        self.assertEqual(len(self.env.mailbox_bodies("alice@example.test")), 1)
        for n in os.listdir(self.env.dir):
            if n.startswith("mail.db"):
                st = os.stat(os.path.join(self.env.dir, n))
                self.assertEqual(st.st_uid, UID, n)

        # SIGHUP: the certificate is reloaded by the user itself.
        pop3d.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 10
        while "event=pop3.reload " not in pop3d.log():
            self.assertLess(time.time(), deadline, pop3d.log())
            time.sleep(0.05)
        self.assertIn("event=pop3.reload result=ok", pop3d.log())
        for d in (smtpd, pop3d):
            self.assertNotIn("event=tls.not_reloadable", d.log())

        p = poplib.POP3_SSL("127.0.0.1", self.env.ports["pop3s"],
                            context=self.env.client_ssl_context(), timeout=20)
        try:
            p.user("alice@example.test")
            self.assertTrue(p.pass_(ct.PASSWORD).startswith(b"+OK"))
            lines = p.retr(1)[1]
            self.assertIn(b"under the unit's privileges", lines)
            p.dele(1)
        finally:
            p.quit()
        self.assertEqual(self.env.mailbox_bodies("alice@example.test"), [])


if __name__ == "__main__":
    ct.main()
