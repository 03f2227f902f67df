"""TLS handshakes run off the event loop (common/conn_tls.c, a workq pool
of one thread per CPU): a storm of full handshakes on the implicit-TLS
submission port (bench/tls's tlsload, RSA-4096 so that each signature is
a clear ~10-20 ms of CPU) while a plain session on port 25 measures NOOP
round trips. The NOOP p99 stays low, and the handshake CPU is spread over
more than one thread: the loop thread (tid == pid) has a small share of
the process's CPU time during the storm, and at least two other threads
each have a real share (/proc/<pid>/task/*/stat). The same for pop3d's
implicit TLS port. On the old code every handshake ran on the loop
thread: its share was ~100 % and the NOOPs queued behind the signatures.

Timing and CPU bounds are checked in the normal build only (ASan makes
everything slower and uneven); under sanitizers the storm still runs and
every handshake must succeed."""

import json
import os
import subprocess
import threading
import time
import unittest

import carteiro_test as ct
from smtpd_util import Env, Raw, sanitized_build

SAN = sanitized_build()
# TLSLOAD: another build's tlsload (running this test against old daemons).
LOAD = os.environ.get("TLSLOAD") or os.path.join(ct.BUILD, "bench",
                                                 "tlsload")
CLIENTS = 8
STORM_S = 2 if SAN else 5
# Generous for a loaded 2-core box: with the old code one loop iteration
# held several RSA-4096 signatures and the p99 was far above this.
NOOP_P99_MS = 60.0
LOOP_SHARE_MAX = 0.35       # the loop thread's share of the process CPU
HELPER_SHARE_MIN = 0.15     # each of two other threads at least this


def task_times(pid):
    """{tid: utime + stime in clock ticks} for every thread of pid."""
    out = {}
    d = "/proc/%d/task" % pid
    for tid in os.listdir(d):
        try:
            with open(os.path.join(d, tid, "stat")) as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rindex(")") + 2:].split()
        out[int(tid)] = int(fields[11]) + int(fields[12])
    return out


def rsa_cert(d):
    key, crt = os.path.join(d, "rsa.key.pem"), os.path.join(d, "rsa.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:4096",
                    "-nodes", "-keyout", key, "-out", crt, "-days", "2",
                    "-subj", "/CN=mail.example.test"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=True)
    os.chmod(key, 0o600)
    return crt, key


class Storm:
    """tlsload hs against port for STORM_S seconds, in the background."""

    def __init__(self, port):
        self.proc = subprocess.Popen(
            [LOAD, "hs", "127.0.0.1", str(port), "-c", str(CLIENTS),
             "-s", str(STORM_S)], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)

    def result(self):
        out, err = self.proc.communicate(timeout=STORM_S + 120)
        if self.proc.returncode != 0:
            raise AssertionError("tlsload: %r %r" % (out, err))
        return json.loads(out.decode().strip().splitlines()[-1])


def cpu_split(pid, t0, t1):
    """(loop share, sorted shares of the other threads, total ticks)."""
    d = {tid: t1.get(tid, 0) - t0.get(tid, 0) for tid in t1}
    total = sum(d.values())
    loop = d.get(pid, 0)
    others = sorted((v / total for tid, v in d.items() if tid != pid),
                    reverse=True) if total else []
    return (loop / total if total else 1.0), others, total


class TlsOffload(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = Env(conf={"server": {"log_level": "warn"},
                            "smtpd": {"max_clients": "1000",
                                      "max_clients_per_ip": "1000"}})
        crt, key = rsa_cert(cls.env.dir)
        cls.env.sections["tls"] = {"cert": crt, "key": key}
        cls.env.write_conf()
        cls.env.start_smtpd()
        cls.env.start_pop3d()

    @classmethod
    def tearDownClass(cls):
        cls.env.stop()

    def check_split(self, what, pid, t0, t1):
        loop, others, total = cpu_split(pid, t0, t1)
        print("%s: %d ticks, loop thread %.0f %%, others %s" % (
            what, total, 100 * loop,
            " ".join("%.0f %%" % (100 * o) for o in others[:4])))
        if SAN:
            return
        self.assertGreater(total, 50, "the storm used hardly any CPU")
        self.assertLess(loop, LOOP_SHARE_MAX,
                        "%s: the loop thread did %.0f %% of the work" % (
                            what, 100 * loop))
        self.assertGreaterEqual(len(others), 2)
        self.assertGreater(others[1], HELPER_SHARE_MIN,
                           "%s: handshakes ran on fewer than two threads: "
                           "%s" % (what, others[:4]))

    def test_smtpd_storm_noop_latency(self):
        pid = self.env.smtpd.proc.pid
        c = Raw(self.env.ports["mx"])
        c.cmd("EHLO latency.test")
        t0 = task_times(pid)
        storm = Storm(self.env.ports["submissions"])
        rtts = []
        time.sleep(0.3)     # the storm is running
        end = time.monotonic() + STORM_S - 0.8
        while time.monotonic() < end:
            a = time.monotonic()
            self.assertEqual(c.code("NOOP"), 250)
            rtts.append((time.monotonic() - a) * 1000)
            time.sleep(0.005)
        t1 = task_times(pid)
        r = storm.result()
        c.cmd("QUIT")
        c.close()
        rtts.sort()
        p99 = rtts[min(len(rtts) - 1, int(len(rtts) * 0.99))]
        print("smtpd: %d handshakes (%.0f/s, %d errors); %d NOOPs, p50 "
              "%.1f ms, p99 %.1f ms, max %.1f ms" % (
                  r["done"], r["per_s"], r["errors"], len(rtts),
                  rtts[len(rtts) // 2], p99, rtts[-1]))
        self.assertEqual(r["errors"], 0, r.get("first_error"))
        self.assertGreater(r["done"], 20)
        self.assertGreater(len(rtts), 20)
        self.check_split("smtpd", pid, t0, t1)
        if not SAN:
            self.assertLess(p99, NOOP_P99_MS, "NOOP p99 %.1f ms" % p99)
        # Still a working server afterwards.
        c = Raw(self.env.ports["mx"])
        self.assertEqual(c.code("NOOP"), 250)
        c.cmd("QUIT")

    def test_pop3d_storm(self):
        pid = self.env.pop3d.proc.pid
        t0 = task_times(pid)
        storm = Storm(self.env.ports["pop3s"])
        time.sleep(STORM_S - 0.5)
        t1 = task_times(pid)
        r = storm.result()
        print("pop3d: %d handshakes (%.0f/s, %d errors)" % (
            r["done"], r["per_s"], r["errors"]))
        self.assertEqual(r["errors"], 0, r.get("first_error"))
        self.assertGreater(r["done"], 20)
        self.check_split("pop3d", pid, t0, t1)


class ShutdownMidStorm(unittest.TestCase):
    """SIGTERM while handshake steps are out on the workers: the sessions
    are closed or freed with steps still running, the pool is stopped
    after them (conn_tls_offload_stop completes the deferred frees), and
    both daemons exit 0 with no sanitizer report (build-san: no leak, no
    use after free)."""

    def test_sigterm_during_storm(self):
        env = Env(conf={"server": {"log_level": "warn"},
                        "smtpd": {"max_clients": "1000",
                                  "max_clients_per_ip": "1000"}})
        try:
            crt, key = rsa_cert(env.dir)
            env.sections["tls"] = {"cert": crt, "key": key}
            env.write_conf()
            env.start_smtpd()
            env.start_pop3d()
            storms = [Storm(env.ports["submissions"]),
                      Storm(env.ports["pop3s"])]
            time.sleep(1.0)
            for d in (env.smtpd, env.pop3d):
                self.assertIsNone(d.proc.poll(), d.log())
                self.assertEqual(d.stop(timeout=60), 0, d.log())
            for s in storms:
                s.proc.communicate(timeout=STORM_S + 120)
            for d in (env.smtpd, env.pop3d):
                self.assertNotIn("Sanitizer", d.log())
                self.assertNotIn("runtime error", d.log())
        finally:
            env.stop()
            env.cleanup()


if __name__ == "__main__":
    ct.main()
