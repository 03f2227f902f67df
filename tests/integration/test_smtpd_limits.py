"""Limits: max_clients_per_ip and max_clients (421 4.7.0 at connect, then
close), max_message_size while streaming (552 5.3.4 once, at the end, and
nothing stored), a client vanishing mid-DATA leaves nothing behind, and
the other sessions keep working throughout."""

import os
import socket
import unittest

import carteiro_test as ct
from smtpd_util import Env, Raw, wait_for


def connect_from(src, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    c = Raw.__new__(Raw)
    c.sock, c.buf, c.timeout = s, b"", 10
    c.greeting = c.reply()
    return c


class Limits(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # Loopback is in the default trusted_networks, exempt from
        # max_clients_per_ip: trust nothing here.
        cls.env = Env(conf={"smtpd": {"max_clients": "3",
                                          "trusted_networks": "",
                                          "max_clients_per_ip": "2",
                                          "max_message_size": "100000"}})
        cls.env.start_smtpd()
        cls.port = cls.env.ports["mx"]
        # Env.start_smtpd probes each port once: let those settle.
        wait_for(lambda: len(cls.env.log_lines(cls.env.smtpd,
                                               "smtp.disconnect")) >= 3)

    @classmethod
    def tearDownClass(cls):
        cls.env.stop()

    def sessions(self):
        connects = len(self.env.log_lines(self.env.smtpd, "smtp.connect"))
        gone = len(self.env.log_lines(self.env.smtpd, "smtp.disconnect"))
        return connects - gone

    def refused(self):
        return len([l for l in self.env.log_lines(self.env.smtpd,
                                                  "smtp.disconnect")
                    if "reason=too_many_connections" in l])

    def test_client_limits(self):
        wait_for(lambda: self.sessions() == 0)
        base = self.refused()
        a = connect_from("127.0.0.1", self.port)
        b = connect_from("127.0.0.1", self.port)
        self.assertEqual(a.greeting[0], 220)
        self.assertEqual(b.greeting[0], 220)
        c = connect_from("127.0.0.1", self.port)
        self.assertEqual(c.greeting[0], 421)
        self.assertIn("4.7.0", c.greeting[1][0])
        self.assertTrue(c.at_eof())
        d = connect_from("127.0.0.2", self.port)
        self.assertEqual(d.greeting[0], 220)
        e = connect_from("127.0.0.3", self.port)
        self.assertEqual(e.greeting[0], 421)
        self.assertTrue(e.at_eof())
        # The sessions that got in still work.
        self.assertEqual(a.code("NOOP"), 250)
        self.assertEqual(d.code("NOOP"), 250)
        for x in (a, b, d):
            x.cmd("QUIT")
        self.assertTrue(wait_for(lambda: self.sessions() == 0))
        f = connect_from("127.0.0.1", self.port)
        self.assertEqual(f.greeting[0], 220)
        f.cmd("QUIT")
        self.assertEqual(self.refused() - base, 2)

    def test_message_size_streaming(self):
        wait_for(lambda: self.sessions() == 0)
        c = Raw(self.port)
        c.cmd("EHLO big.test")
        c.cmd("MAIL FROM:<a@big.test>")
        c.cmd("RCPT TO:<bob@example.test>")
        self.assertEqual(c.code("DATA"), 354)
        line = b"x" * 998 + b"\r\n"
        c.send(b"Subject: big\r\n\r\n" + line * 300)
        c.send(b"y" * 200000 + b"\r\n")     # one long line, too
        c.send(b".\r\n")
        self.assertEqual(c.reply(),
                         (552, ["5.3.4 Message size exceeds fixed limit"]))
        self.assertEqual(c.code("NOOP"), 250)
        self.assertEqual(c.code("MAIL FROM:<a@big.test>"), 250)
        c.cmd("QUIT")
        self.assertEqual(self.env.mailbox_bodies("bob@example.test"), [])
        self.assertTrue([l for l in self.env.log_lines(self.env.smtpd,
                                                       "smtp.data")
                         if "result=too_big" in l])

    def test_vanish_mid_data(self):
        wait_for(lambda: self.sessions() == 0)
        before = set(os.listdir(self.env.dir))
        c = Raw(self.port)
        c.cmd("EHLO gone.test")
        c.cmd("MAIL FROM:<a@gone.test>")
        c.cmd("RCPT TO:<alice@example.test>")
        c.cmd("DATA")
        c.send(b"Subject: half\r\n\r\n" + b"data\r\n" * 1000)
        c.close()
        self.assertTrue(wait_for(lambda: any(
            "reason=eof_in_data" in l for l in
            self.env.log_lines(self.env.smtpd, "smtp.disconnect"))))
        self.assertEqual(self.env.mailbox_bodies("alice@example.test"), [])
        self.assertEqual(self.env.query("SELECT count(*) FROM bodies"),
                         [(0,)])
        after = set(os.listdir(self.env.dir))
        self.assertEqual(sorted(after - before), [])
        # And the daemon is fine.
        c = Raw(self.port)
        self.assertEqual(c.code("NOOP"), 250)
        c.cmd("QUIT")


if __name__ == "__main__":
    ct.main()
