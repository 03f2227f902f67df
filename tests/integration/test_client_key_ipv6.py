"""Per-client limits over real IPv6 (issue #11 item 4): a client that
rotates its source address inside one /64 is one client for smtpd's
max_clients_per_ip and max_connect_rate_per_ip and for pop3d's
max_clients_per_ip; the next /64 is another client; trusted_networks
exempts a whole IPv6 range.

The host's loopback has only ::1, and adding addresses to it would change
the machine. So the test re-runs itself in a private network namespace
(`unshare -rn`: a user namespace maps us to root there), brings its
loopback up and gives it the 2001:db8 (documentation) addresses it needs.
The daemons listen on 127.0.0.1 (the harness's start-up probe) and ::1.
Where unshare is not allowed the test is skipped, saying why."""

import os
import socket
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import carteiro_test as ct  # noqa: E402
from smtpd_util import wait_for  # noqa: E402

IN_NETNS = "CARTEIRO_TEST_IN_NETNS"

# Sources: three in 2001:db8:1:2::/64, one next door; a rate /64 and its
# neighbour; a trusted /48.
ADDRS = ["2001:db8:1:2::a", "2001:db8:1:2::b", "2001:db8:1:2:ffff::c",
         "2001:db8:1:3::1",
         "2001:db8:2:1::1", "2001:db8:2:1::2", "2001:db8:2:1::3",
         "2001:db8:2:1:1::4", "2001:db8:2:2::1",
         "2001:db8:3:1::1", "2001:db8:3:1::2", "2001:db8:3:1::3"]

SKIP = None


def enter_netns():
    """Re-exec under unshare -rn unless already there; inside, set up lo.
    Returns None when ready, or the reason the test cannot run."""
    if os.environ.get(IN_NETNS) != "1":
        try:
            r = subprocess.run(["unshare", "-rn", "true"],
                               capture_output=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as e:
            return "unshare: %s" % e
        if r.returncode != 0:
            return "unshare -rn not permitted here: %s" % (
                r.stderr.decode(errors="replace").strip())
        env = dict(os.environ)
        env[IN_NETNS] = "1"
        sys.stdout.flush()
        sys.stderr.flush()
        os.execvpe("unshare", ["unshare", "-rn", sys.executable,
                               os.path.abspath(__file__)] + sys.argv[1:],
                   env)
    script = "link set lo up\n" + "".join(
        "addr add %s/128 dev lo nodad\n" % a for a in ADDRS)
    r = subprocess.run(["ip", "-batch", "-"], input=script.encode(),
                       capture_output=True, timeout=30)
    if r.returncode != 0:
        return "ip in the namespace: %s" % r.stderr.decode(errors="replace")
    return None


def first_line(port, source, timeout=10):
    """(socket, first line) of a connection from source to [::1]:port."""
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((source, 0))
    s.connect(("::1", port))
    return s, ct.recv_until(s, rb"\r\n", timeout).split(b"\r\n")[0]


def listen_v6(env, sec, opt, key):
    env.sections[sec][opt] = "127.0.0.1:%d, [::1]:%d" % (env.ports[key],
                                                       env.ports[key])


class ClientKeyIPv6(unittest.TestCase):
    def setUp(self):
        if SKIP is not None:
            self.skipTest(SKIP)
        self.env = ct.Env(conf={
            "smtpd": {"trusted_networks": "2001:db8:3::/48",
                      "max_clients_per_ip": "2",
                      "max_connect_rate_per_ip": "3"},
            "pop3d": {"trusted_networks": "", "max_clients_per_ip": "2"}})
        listen_v6(self.env, "smtpd", "mx_listen", "mx")
        listen_v6(self.env, "pop3d", "listen", "pop3")
        self.env.write_conf()

    def tearDown(self):
        if SKIP is None:
            self.env.stop()

    def test_smtpd(self):
        env = self.env
        env.start_smtpd()
        port = env.ports["mx"]
        ok, busy = b"220 ", b"421 4.7.0 "
        # Sessions: the /64 is one client.
        a = first_line(port, "2001:db8:1:2::a")
        b = first_line(port, "2001:db8:1:2::b")
        c = first_line(port, "2001:db8:1:2:ffff::c")
        d = first_line(port, "2001:db8:1:3::1")
        for (s, line), want in ((a, ok), (b, ok), (c, busy), (d, ok)):
            self.assertTrue(line.startswith(want), (line, want))
        for s, _ in (a, b, c, d):
            s.close()
        # Connect rate (3 a minute): four addresses of one /64 share it.
        lines = []
        for src in ("2001:db8:2:1::1", "2001:db8:2:1::2", "2001:db8:2:1::3",
                    "2001:db8:2:1:1::4", "2001:db8:2:2::1"):
            s, line = first_line(port, src)
            s.close()
            lines.append(line[:4])
        self.assertEqual(lines, [ok, ok, ok, b"421 ", ok])
        # trusted_networks covers a whole range: one /64 of it, three
        # sessions at once (the limit is two).
        held = [first_line(port, src) for src in
                ("2001:db8:3:1::1", "2001:db8:3:1::2", "2001:db8:3:1::3")]
        self.assertEqual([line[:4] for _, line in held], [ok] * 3)
        for s, _ in held:
            s.close()
        log = env.smtpd.log()
        self.assertIn("ip=2001:db8:1:2:ffff::c listener=mx result=refused",
                      log)

    def test_pop3d(self):
        env = self.env
        env.start_pop3d()
        wait_for(lambda: len(env.log_lines(env.pop3d,
                                           "pop3.disconnect")) >= 2)
        port = env.ports["pop3"]
        hello = b"+OK carteiro ready."
        busy = b"-ERR [SYS/TEMP] Too many connections, try again later."
        got = [first_line(port, src) for src in
               ("2001:db8:1:2::a", "2001:db8:1:2::b", "2001:db8:1:2:ffff::c",
                "2001:db8:1:3::1")]
        self.assertEqual([line for _, line in got],
                         [hello, hello, busy, hello])
        for s, _ in got:
            s.close()


if __name__ == "__main__":
    SKIP = enter_netns()
    if SKIP is not None:
        sys.stderr.write("skipping: %s\n" % SKIP)
    ct.main()
