"""Memory: a 25 MB message is accepted while smtpd's VmHWM grows by less
than 8 MB (streamed, never buffered), and 10,000 concurrent idle sessions
are all greeted and held with smtpd's RSS under 128 MB. The bounds are
checked in the normal build only (ASan's shadow memory and quarantine make
them meaningless); under sanitizers the scenarios still run, smaller."""

import resource
import selectors
import socket
import time
import unittest

import carteiro_test as ct
from smtpd_util import Env, Raw, proc_status, sanitized_build

SAN = sanitized_build()
IDLE = 2000 if SAN else 10000


class Memory(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = min(hard, IDLE + 1000)
        if soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        cls.env = Env(conf={"server": {"log_level": "warn"},
                               "smtpd": {"max_clients": str(IDLE + 100),
                                         "max_clients_per_ip": str(IDLE + 100)}})
        cls.env.start_smtpd()
        cls.port = cls.env.ports["mx"]
        cls.pid = cls.env.smtpd.proc.pid

    @classmethod
    def tearDownClass(cls):
        cls.env.stop()

    def send(self, body):
        c = Raw(self.port, timeout=120)
        c.cmd("EHLO mem.test")
        c.cmd("MAIL FROM:<a@mem.test> SIZE=%d" % len(body))
        c.cmd("RCPT TO:<alice@example.test>")
        self.assertEqual(c.code("DATA"), 354)
        c.send(body + b".\r\n")
        code, text = c.reply()
        c.cmd("QUIT")
        c.close()
        return code

    def test_1_big_message(self):
        # Warm up: a small message touches every code path once.
        self.assertEqual(self.send(b"Subject: small\r\n\r\nhi\r\n"), 250)
        # Start-up peaks (e.g. the auth pool's first argon2id) would hide
        # growth: reset the high-water mark first (Linux >= 4.0).
        try:
            with open("/proc/%d/clear_refs" % self.pid, "w") as f:
                f.write("5")
        except OSError:
            pass
        hwm0 = proc_status(self.pid, "VmHWM")
        line = b"0123456789" * 99 + b"\r\n"          # 992 octets
        body = b"Subject: big\r\n\r\n" + line * (25000000 // len(line))
        self.assertEqual(self.send(body), 250)
        hwm1 = proc_status(self.pid, "VmHWM")
        got = self.env.mailbox_bodies("alice@example.test")[-1]
        self.assertEqual(ct.strip_added_headers(got), body)
        print("25 MB message: VmHWM %d -> %d kB" % (hwm0, hwm1))
        if not SAN:
            self.assertLess(hwm1 - hwm0, 8 * 1024,
                            "VmHWM grew %d kB" % (hwm1 - hwm0))

    def test_2_idle_sessions(self):
        socks = []
        sel = selectors.DefaultSelector()
        t0 = time.time()
        try:
            for i in range(IDLE):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                s.connect(("127.0.0.1", self.port))
                s.setblocking(False)
                socks.append(s)
                sel.register(s, selectors.EVENT_READ, bytearray())
            greeted = 0
            deadline = time.time() + 120
            while greeted < IDLE and time.time() < deadline:
                for key, _ in sel.select(timeout=1):
                    data = key.fileobj.recv(1024)
                    buf = key.data
                    buf += data
                    if b"\r\n" in buf or not data:
                        self.assertTrue(bytes(buf).startswith(b"220 "), buf)
                        sel.unregister(key.fileobj)
                        greeted += 1
            self.assertEqual(greeted, IDLE)
            rss = proc_status(self.pid, "VmRSS")
            if not SAN:
                self.assertLess(rss, 128 * 1024, "RSS %d kB" % rss)
            # Each sends half a command line and stops (slowloris): the
            # buffered bytes must cost about their size, not a 16 KB
            # read buffer per connection.
            for s in socks:
                s.send(b"EHLO half-a-li")
            time.sleep(1.5)
            rss2 = proc_status(self.pid, "VmRSS")
            if not SAN:
                self.assertLess((rss2 - rss) / IDLE, 2.0,
                                "RSS %d -> %d kB" % (rss, rss2))
                self.assertLess(rss2, 128 * 1024, "RSS %d kB" % rss2)
            # Still serving while holding them all.
            c = Raw(self.port)
            self.assertEqual(c.code("NOOP"), 250)
            c.cmd("QUIT")
            print("%d idle sessions: RSS %d kB, %d kB with half a line "
                  "each, %.1f s" % (IDLE, rss, rss2, time.time() - t0))
        finally:
            for s in socks:
                s.close()


if __name__ == "__main__":
    ct.main()
