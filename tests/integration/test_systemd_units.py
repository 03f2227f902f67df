"""The systemd units in etc/: `systemd-analyze security --offline=true`
rates each one 2.0 or lower, `systemd-analyze verify` accepts both (with
ExecStart pointed at the build), the units agree with the sample config
(User= is [server] user, the store is in ReadWritePaths=), and the
daemons work the way the units start them. systemd is not PID 1 in the
test container, so systemd-run cannot apply the units; the test rebuilds
the main parts of the sandbox by hand instead: a mount namespace with a
read-only / except the store (unshare), the user nobody whose only
capability is CAP_NET_BIND_SERVICE, no new privileges, umask 077
(setpriv), and the unit's own SystemCallFilter= (expanded by
systemd-analyze) and MemoryDenyWriteExecute= as seccomp filters
(libseccomp). Under all that the daemons bind ports below 1024, store
mail, log in with argon2id over TLS, reload the certificate on SIGHUP,
serve RETR/DELE and relay a submitted message (DNS, an outbound
connection, STARTTLS) to a fake MX. Not rebuilt: PrivateTmp=, PrivateDevices=, the
Protect{Kernel*,ControlGroups,Clock,Hostname,Proc}= and Restrict*=
settings."""

import http.client
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
from fakemx import Sink, queue_ids, relay_setup, submit, wait_for
from smtpd_util import sanitized_build

ETC = os.path.join(ct.SRC, "etc")
WEBD = os.path.join(ct.BUILD, "webd", "carteiro-webd")
UNITS = {"smtpd": ct.SMTPD, "pop3d": ct.POP3D, "webd": WEBD}
MAX_EXPOSURE = 2.0
ANALYZE = shutil.which("systemd-analyze")
SETPRIV = shutil.which("setpriv")
UNSHARE = shutil.which("unshare")
if UNSHARE is not None and subprocess.run(
        [UNSHARE, "--mount", "true"], capture_output=True).returncode != 0:
    UNSHARE = None      # no mount namespaces here: that part is left out


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


class Analyze(unittest.TestCase):
    def setUp(self):
        # Never a silent pass: scripts/deps installs systemd.
        self.assertIsNotNone(ANALYZE, "systemd-analyze is missing: "
                             "scripts/deps installs the systemd package")

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
# LeakSanitizer stops the world with ptrace(2), which @system-service does
# not allow: the sanitizer build runs without the seccomp filters.
SANITIZED = sanitized_build()


def syscall_set(entries):
    """The system calls named by SystemCallFilter= entries (names and
    @groups, expanded with systemd-analyze's own tables)."""
    out = subprocess.run([ANALYZE, "syscall-filter", "--no-pager"],
                         capture_output=True, text=True, timeout=60).stdout
    groups, cur = {}, None
    for line in out.splitlines():
        word = line.strip()
        if line.startswith("@"):
            cur = groups.setdefault(word, [])
        elif cur is not None and word and not word.startswith("#"):
            cur.append(word)
        elif not word:
            cur = None
    names = set()
    todo = list(entries)
    while todo:
        n = todo.pop()
        if n.startswith("@"):
            todo.extend(groups[n])
        else:
            names.add(n)
    return names


# Loaded by the service user (after setpriv's no-new-privs) just before it
# execs the daemon, as systemd does: SystemCallFilter= as an allow list
# answering EPERM (SystemCallErrorNumber=), and MemoryDenyWriteExecute=
# (no mmap writable and executable, no mprotect/shmat to executable).
SECCOMP_EXEC = r"""
import ctypes, os, sys
lib = ctypes.CDLL("libseccomp.so.2")
lib.seccomp_init.restype = ctypes.c_void_p
lib.seccomp_init.argtypes = [ctypes.c_uint32]
lib.seccomp_load.argtypes = [ctypes.c_void_p]
lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
class Cmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("a", ctypes.c_uint64), ("b", ctypes.c_uint64)]
lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32,
    ctypes.c_int, ctypes.c_uint, ctypes.POINTER(Cmp)]
ALLOW, EPERM = 0x7fff0000, 0x00050000 | 1
MASKED_EQ = 7
allow = lib.seccomp_init(EPERM)
for name in sys.argv[1].split(","):
    nr = lib.seccomp_syscall_resolve_name(name.encode())
    if nr >= 0:
        lib.seccomp_rule_add_array(allow, ALLOW, nr, 0, None)
mdwe = lib.seccomp_init(ALLOW)
for name, arg, mask in (("mmap", 2, 6), ("mprotect", 2, 4),
                        ("pkey_mprotect", 2, 4), ("shmat", 2, 0o100000)):
    nr = lib.seccomp_syscall_resolve_name(name.encode())
    c = Cmp(arg, MASKED_EQ, mask, mask)
    if nr >= 0 and lib.seccomp_rule_add_array(mdwe, EPERM, nr, 1,
                                              ctypes.byref(c)) != 0:
        sys.exit("seccomp_rule_add %s failed" % name)
if lib.seccomp_load(mdwe) != 0 or lib.seccomp_load(allow) != 0:
    sys.exit("seccomp_load failed")
os.execv(sys.argv[2], sys.argv[2:])
"""


@unittest.skipIf(os.geteuid() != 0, "needs root to start as another user")
@unittest.skipIf(SETPRIV is None, "setpriv (util-linux) is not installed")
class AsServiceUser(unittest.TestCase):
    """What User=, AmbientCapabilities=, CapabilityBoundingSet=,
    NoNewPrivileges= and UMask= leave the daemons, reproduced by setpriv,
    with the unit's SystemCallFilter= and MemoryDenyWriteExecute= loaded
    through libseccomp."""

    def setUp(self):
        # DNS and a remote MX for the relay (127.0.0.2, STARTTLS).
        self.env, self.dns, self.mx_port = relay_setup(
            {"remote.test": {"MX": [(10, "mx1.remote.test")]},
             "mx1.remote.test": {"A": ["127.0.0.2"]}},
            conf={"server": {"user": "nobody"}})
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
        self.dns.stop()

    def sandboxed(self, caps):
        return [SETPRIV, "--reuid=%d" % UID, "--regid=%d" % UID,
                "--clear-groups", "--no-new-privs",
                "--inh-caps=-all" + caps, "--ambient-caps=-all" + caps,
                "--bounding-set=-all" + caps]

    def seccomp(self, name):
        """The unit's SystemCallFilter= and MemoryDenyWriteExecute=."""
        d = directives(unit_path(name))
        self.assertEqual(d.get("SystemCallErrorNumber"), ["EPERM"])
        self.assertEqual(d.get("MemoryDenyWriteExecute"), ["yes"])
        allow = syscall_set(d["SystemCallFilter"][0].split())
        for entry in d["SystemCallFilter"][1:]:
            self.assertTrue(entry.startswith("~"), entry)
            allow -= syscall_set(entry[1:].split())
        self.assertIn("bind", allow)
        self.assertNotIn("setresuid", allow)
        if SANITIZED:
            return []
        return ["/usr/bin/python3", "-c", SECCOMP_EXEC,
                ",".join(sorted(allow))]

    def mount_namespace(self):
        """ProtectSystem=strict with ReadWritePaths= the store, and
        ProtectHome=: a private mount namespace where / is read-only
        except a bind mount of the store directory. (PrivateTmp= is left
        out: the store is under /tmp here, so /tmp is read-only too.)"""
        if UNSHARE is None:
            return []
        script = ('mount --bind "$1" "$1"; mount -o remount,bind,ro /; '
                  'for d in /home /root; do [ ! -d $d ] || '
                  'mount -t tmpfs -o mode=0 tmpfs $d; done; '
                  'shift; exec "$@"')
        return [UNSHARE, "--mount", "--propagation", "private",
                "/bin/sh", "-ec", script, "sh", self.env.dir]

    def start(self, name, caps, ports):
        argv = (self.mount_namespace() + self.sandboxed(caps) +
                self.seccomp(name) +
                [UNITS[name], "-f", "-c", self.env.conf])
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
            if not SANITIZED:
                self.assertRegex(status, r"Seccomp:\t2\n")
                self.assertRegex(status, r"Seccomp_filters:\t2\n")
            if UNSHARE is not None:
                with open("/proc/%d/mountinfo" % d.proc.pid) as f:
                    mounts = [l.split() for l in f]
                opts = {m[4]: m[5].split(",") for m in mounts}
                self.assertIn("ro", opts["/"])
                self.assertIn("rw", opts[self.env.dir])
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

        # The relay: DNS lookups, an outbound connection, STARTTLS.
        sink = Sink("127.0.0.2", self.mx_port,
                    tls=(self.env.cert, self.env.key)).start()
        try:
            msg = b"Subject: out\r\n\r\nrelayed from the sandbox\r\n"
            self.assertEqual(submit(self.env, ["bob@remote.test"], msg), {})
            got = sink.wait(1)
        finally:
            sink.stop()
        self.assertEqual(len(got), 1)
        self.assertTrue(got[0].tls)
        self.assertEqual(ct.strip_added_headers(got[0].data), msg)
        self.assertTrue(wait_for(lambda: not queue_ids(self.env)))

    def test_webd_as_user_with_net_bind_service_only(self):
        ports = {"listen": low_port(), "tls_listen": low_port()}
        self.env.sections["http"] = {
            k: "127.0.0.1:%d" % p for k, p in ports.items()}
        self.env.write_conf()
        webd = self.start("webd", ",+net_bind_service", list(ports.values()))
        with open("/proc/%d/status" % webd.proc.pid) as f:
            status = f.read()
        self.assertRegex(status, r"Uid:\t%d\t%d\t%d\t%d" % ((UID,) * 4))
        self.assertRegex(status, r"CapEff:\t0000000000000400\n")
        self.assertRegex(status, r"NoNewPrivs:\t1\n")
        if not SANITIZED:
            self.assertRegex(status, r"Seccomp:\t2\n")

        def get(host, path, tls):
            if tls:
                c = http.client.HTTPSConnection(
                    "localhost", ports["tls_listen"], timeout=20,
                    context=self.env.client_ssl_context())
            else:
                c = http.client.HTTPConnection(
                    "127.0.0.1", ports["listen"], timeout=20)
            try:
                c.request("GET", path, headers={"Host": host})
                r = c.getresponse()
                return r.status, r.read()
            finally:
                c.close()
        st, body = get("mta-sts.example.test", "/.well-known/mta-sts.txt",
                       True)
        self.assertEqual(st, 200)
        self.assertTrue(body.startswith(b"version: STSv1\r\n"), body)
        # SIGHUP: the user itself reads the certificate again.
        webd.proc.send_signal(signal.SIGHUP)
        self.assertTrue(wait_for(lambda: "event=http.reload " in webd.log()))
        self.assertIn("event=http.reload result=ok", webd.log())
        self.assertEqual(get("autoconfig.example.test",
                             "/mail/config-v1.1.xml", True)[0], 200)
        self.assertEqual(get("autoconfig.example.test",
                             "/mail/config-v1.1.xml", False)[0], 200)


if __name__ == "__main__":
    ct.main()
