"""Real rspamd (Debian package rspamd) as carteiro's milter (issue 13):
started by the test with a private configuration (Debian's rspamd.conf
with private ports and directories, no Redis, its proxy worker in milter
mode with self_scan on a loopback port). GTUBE is rejected with rspamd's
own reply; an ordinary message is delivered with rspamd's headers
(X-Spamd-Result, X-Spam-Status: No, ...); a message that gets rspamd's
add_header action (its GTUBE variant) carries X-Spam-Flag: YES and
X-Spam-Status: Yes, ... If rspamd
cannot start, the test fails and says so."""

import os
import shutil
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import carteiro_test as ct  # noqa: E402
from test_milter import Base, message, wait_port  # noqa: E402

RSPAMD = "/usr/bin/rspamd"
GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
# rspamd's GTUBE variant for its "add header" action.
GTUBE_ADD = b"Y" + GTUBE[1:]


def rspamd_conf(d, normal, proxy, controller):
    """A private tree: Debian's rspamd.conf with our ports, and local.d."""
    with open("/etc/rspamd/rspamd.conf") as f:
        conf = f.read()
    conf = (conf.replace('"localhost:11333"', '"127.0.0.1:%d"' % normal)
            .replace('"localhost:11332"', '"127.0.0.1:%d"' % proxy)
            .replace('"localhost:11334"', '"127.0.0.1:%d"' % controller))
    local = os.path.join(d, "local")
    os.makedirs(os.path.join(local, "local.d"))
    os.makedirs(os.path.join(local, "override.d"))
    for sub in ("db", "run", "log"):
        os.makedirs(os.path.join(d, sub))
    files = {
        # The proxy scans itself: no upstream normal worker needed.
        "worker-proxy.inc": 'milter = yes;\nself_scan = yes;\n'
                            'timeout = 60s;\n'
                            'upstream "local" { default = yes; '
                            'self_scan = yes; }\n',
        # No Redis anywhere; DNS goes to a closed local port (no network
        # in tests): the RBL and SPF-like modules just get nothing.
        "redis.conf": "enabled = false;\n",
        "options.inc": 'dns { nameserver = ["127.0.0.1:%d"]; '
                       'timeout = 0.2s; retransmits = 1; }\n'
                       # GTUBE variants for the other actions (YJS*:
                       # add header).
                       'enable_test_patterns = true;\n' % ct.free_port(),
        "logging.inc": 'type = "file"; level = "info";\n',
        "milter_headers.conf":
            'use = ["x-spamd-result", "x-spam-status", "spam-header"];\n'
            # Test mail comes from loopback: scan it like any other.
            'skip_local = false;\nskip_authenticated = false;\n'
            'routines { spam-header { header = "X-Spam-Flag"; '
            'value = "YES"; remove = 1; } }\n',
    }
    for name, text in files.items():
        with open(os.path.join(local, "local.d", name), "w") as f:
            f.write(text)
    path = os.path.join(d, "rspamd.conf")
    with open(path, "w") as f:
        f.write(conf)
    return path


def rspamd_command(d, proxy):
    """Write a private configuration under d; the argv that runs rspamd
    with it, its milter proxy on 127.0.0.1:proxy (also bench/smtp/run
    MILTER=rspamd)."""
    conf = rspamd_conf(d, ct.free_port(), proxy, ct.free_port())
    args = [RSPAMD, "-f", "-i", "-c", conf,
            "--var=LOCAL_CONFDIR=" + os.path.join(d, "local"),
            "--var=DBDIR=" + os.path.join(d, "db"),
            "--var=RUNDIR=" + os.path.join(d, "run"),
            "--var=LOGDIR=" + os.path.join(d, "log")]
    if os.getuid() == 0:
        args += ["-u", "root", "-g", "root"]
    return args


class Rspamd(Base):
    @classmethod
    def setUpClass(cls):
        if not os.access(RSPAMD, os.X_OK):
            raise RuntimeError("rspamd is not installed (scripts/deps "
                               "installs the Debian package rspamd)")
        cls.env = ct.Env()
        d = os.path.join(cls.env.dir, "rspamd")
        cls.pport = ct.free_port()
        args = rspamd_command(d, cls.pport)
        cls.rlog = os.path.join(d, "log", "rspamd.log")
        cls.rspamd = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
        try:
            wait_port(cls.pport, cls.rspamd, timeout=90)
        except RuntimeError as e:
            log = open(cls.rlog).read()[-3000:] if os.path.exists(
                cls.rlog) else "(no log)"
            cls.rspamd.kill()
            raise RuntimeError("rspamd could not start (%s):\n%s" % (e, log))
        cls.env.sections["smtpd"].update({
            "milters": "inet:127.0.0.1:%d" % cls.pport,
            "milter_listeners": "mx"})
        cls.env.write_conf()
        cls.env.start_smtpd()

    @classmethod
    def tearDownClass(cls):
        cls.rspamd.terminate()
        try:
            cls.rspamd.wait(20)
        except subprocess.TimeoutExpired:
            cls.rspamd.kill()
        cls.env.stop()
        if os.environ.get("KEEP_RSPAMD") is None:
            shutil.rmtree(os.path.join(cls.env.dir, "rspamd"),
                          ignore_errors=True)

    def test_gtube_rejected_with_rspamds_reply(self):
        code, text = self.send(message("gtube",
                                       body=b"Hello\r\n" + GTUBE + b"\r\n"))
        self.assertEqual((code, text), (554, "5.7.1 Gtube pattern"))
        self.assertEqual(self.stored("gtube"), [])

    def test_ordinary_message_delivered_with_headers(self):
        msg = message("hello there")
        code, text = self.send(msg)
        self.assertEqual(code, 250, text)
        got = self.stored("hello there")
        self.assertEqual(len(got), 1)
        head = got[0].split(b"\r\n\r\n", 1)[0]
        self.assertIn(b"\r\nX-Spamd-Result: default: False [", head)
        self.assertIn(b"\r\nX-Spam-Status: No, score=", head)
        self.assertNotIn(b"X-Spam-Flag", head)
        self.assertTrue(got[0].endswith(b"\r\n\r\nHello.\r\nBye.\r\n"))

    def test_add_header_flags_for_thunderbird(self):
        msg = message("SPAMMY-TEST offer",
                      body=b"Hello\r\n" + GTUBE_ADD + b"\r\n")
        code, text = self.send(msg)
        self.assertEqual(code, 250, text)
        got = self.stored("SPAMMY-TEST offer")
        self.assertEqual(len(got), 1)
        head = got[0].split(b"\r\n\r\n", 1)[0]
        # rspamd's own mark, then the pair carteiro adds for Thunderbird.
        self.assertTrue(head.endswith(
            b"\r\nX-Spam: Yes\r\nX-Spam-Flag: YES\r\n"
            b"X-Spam-Status: Yes, flagged by content filter"), head)


if __name__ == "__main__":
    ct.main()
