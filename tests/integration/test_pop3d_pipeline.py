"""pop3d: PIPELINING over raw sockets (answers in order, a NOOP sent while
a long RETR is still streaming is answered after it), STLS injection (plain
text pipelined behind STLS is discarded), a 10 MB message byte-exact and
lines beginning with "." round-tripping exactly."""

import socket
import time
import unittest

import carteiro_test as ct
import pop3_fixtures as pf

ALICE = "alice@example.test"


def big_message(size):
    """A message of exactly `size` bytes with many lines starting with "."
    and a ".." / "." / ".\r" mix."""
    head = b"From: a@example.org\r\nSubject: big\r\n\r\n"
    pat = (b".leading dot line\r\n..two dots\r\n.\r\nplain line 0123456789"
           b"abcdefghijklmnopqrstuvwxyz\r\n")
    body = (pat * (size // len(pat) + 1))[:size - len(head) - 2] + b"\r\n"
    return head + body


class Pop3Pipeline(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # test_junk opens 40 connections at once from 127.0.0.1
        cls.env = ct.Env(conf={"pop3d": {"max_clients_per_ip": "200"}})
        cls.dots = (b"Subject: dots\r\n\r\n.\r\n..\r\n...x\r\n. \r\n"
                    b"a.\r\n.\r\n\r\n.end\r\n")
        cls.big = big_message(10 * 1024 * 1024)
        cls.msgs = [pf.make_msg("m%d" % i, 2) for i in range(5)]
        pf.deliver_many(cls.env, ALICE, [cls.dots, cls.big] + cls.msgs)
        pf.start(cls.env)

    @classmethod
    def tearDownClass(cls):
        cls.env.stop()

    def test_pipelined_in_order(self):
        r = pf.Raw(self.env)
        r.line()
        r.send(("USER %s\r\nPASS %s\r\nSTAT\r\nLIST 3\r\nUIDL 4\r\nRETR 3\r\n"
                "DELE 4\r\nLIST 4\r\nNOOP\r\nRSET\r\nTOP 5 1\r\nQUIT\r\n" %
                (ALICE, ct.PASSWORD)).encode())
        self.assertEqual(r.line(), b"+OK")
        self.assertEqual(r.line(), b"+OK Logged in.")
        self.assertTrue(r.line().startswith(b"+OK 7 "))
        self.assertEqual(r.line(), b"+OK 3 %d" % len(self.msgs[0]))
        self.assertTrue(r.line().startswith(b"+OK 4 "))
        self.assertEqual(r.line(), b"+OK %d octets" % len(self.msgs[0]))
        self.assertEqual(pf.unstuff(r.multi()), self.msgs[0])
        self.assertEqual(r.line(), b"+OK Marked to be deleted.")
        self.assertEqual(r.line(), b"-ERR Message is deleted.")
        self.assertEqual(r.line(), b"+OK")
        self.assertEqual(r.line(), b"+OK")
        self.assertEqual(r.line(), b"+OK")
        top = r.multi()
        self.assertEqual(top[-1], b"line 1 of m2")
        self.assertEqual(r.line(), b"+OK Logging out.")
        self.assertTrue(r.closed())
        r.close()

    def test_noop_during_long_retr(self):
        """Thunderbird sends NOOP as keep-alive while a RETR streams: the
        +OK comes after the whole message, in order."""
        r = pf.Raw(self.env, timeout=60)
        r.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        r.login()
        r.send(b"RETR 2\r\n")
        self.assertEqual(r.line(), b"+OK %d octets" % len(self.big))
        # the server is still streaming (we have not read); send NOOPs
        time.sleep(0.2)
        r.send(b"NOOP\r\nSTAT\r\nNOOP\r\n")
        data = r.multi_raw()
        self.assertTrue(data.endswith(b"\r\n.\r\n"))
        body = data[:-3].replace(b"\r\n..", b"\r\n.")
        if body.startswith(b".."):
            body = body[1:]
        self.assertEqual(body, self.big)
        self.assertEqual(r.line(), b"+OK")
        self.assertTrue(r.line().startswith(b"+OK 7 "))
        self.assertEqual(r.line(), b"+OK")
        self.assertEqual(r.cmd("QUIT"), b"+OK Logging out.")
        r.close()

    def test_deep_pipeline_held_back_not_cut_off(self):
        """A client that pipelines far more than the server buffers (a
        10 MB RETR, then 15,000 NOOPs, about 100 KB, while not reading)
        is held back by TCP while its replies drain, and gets every reply
        in order."""
        import threading
        r = pf.Raw(self.env)
        r.line()
        r.send(("USER %s\r\nPASS %s\r\n" % (ALICE, ct.PASSWORD)).encode())
        self.assertEqual(r.line(), b"+OK")
        self.assertEqual(r.line(), b"+OK Logged in.")
        n = 15000
        t = threading.Thread(target=r.send, args=(
            b"RETR 2\r\n" + b"NOOP\r\n" * n + b"QUIT\r\n",))
        t.start()
        time.sleep(1)       # the server is far behind its input now
        self.assertEqual(r.line(), b"+OK %d octets" % len(self.big))
        stuffed = b"\r\n".join(b"." + l if l.startswith(b".") else l
                                for l in self.big.split(b"\r\n"))
        self.assertEqual(r.multi_raw(), stuffed + b".\r\n")
        got = [r.line() for _ in range(n)]
        t.join(20)
        self.assertEqual(got, [b"+OK"] * n)
        self.assertTrue(r.line().startswith(b"+OK"))
        self.assertNotIn("event=pop3.flood", self.env.pop3d.log())

    def test_retr_dele_quit_in_one_packet(self):
        """Login, RETRs, DELE and QUIT in one write: the RETRs' store
        reads share one read snapshot, which ends before QUIT's delete
        (pop3_store_snapshot); the deleted message is gone, byte-exact
        RETRs before it."""
        bob = "bob@example.test"
        msgs = [pf.make_msg("b%d" % i, 3) for i in range(3)]
        pf.deliver_many(self.env, bob, msgs)
        r = pf.Raw(self.env)
        r.line()
        r.send(("USER %s\r\nPASS %s\r\nRETR 1\r\nRETR 3\r\nDELE 2\r\n"
                "RETR 2\r\nQUIT\r\n" % (bob, ct.PASSWORD)).encode())
        self.assertEqual(r.line(), b"+OK")
        self.assertEqual(r.line(), b"+OK Logged in.")
        self.assertEqual(r.line(), b"+OK %d octets" % len(msgs[0]))
        self.assertEqual(pf.unstuff(r.multi()), msgs[0])
        self.assertEqual(r.line(), b"+OK %d octets" % len(msgs[2]))
        self.assertEqual(pf.unstuff(r.multi()), msgs[2])
        self.assertEqual(r.line(), b"+OK Marked to be deleted.")
        self.assertEqual(r.line(), b"-ERR Message is deleted.")
        self.assertEqual(r.line(), b"+OK Logging out, messages deleted.")
        self.assertTrue(r.closed())
        r.close()
        p = pf.pop3(self.env, "stls", user=bob)
        self.assertEqual(p.stat(), (2, len(msgs[0]) + len(msgs[2])))
        self.assertEqual(pf.unstuff(p.retr(2)[1]), msgs[2])
        p.quit()

    def test_big_message_byte_exact(self):
        p = pf.pop3(self.env, "implicit", timeout=60)
        resp, lines, octets = p.retr(2)
        self.assertEqual(resp, b"+OK %d octets" % len(self.big))
        self.assertEqual(pf.unstuff(lines), self.big)
        p.quit()

    def test_dot_lines_round_trip(self):
        r = pf.Raw(self.env)
        r.login()
        self.assertEqual(r.cmd("RETR 1"), b"+OK %d octets" % len(self.dots))
        raw = r.multi_raw()
        self.assertEqual(raw, b"Subject: dots\r\n\r\n..\r\n...\r\n....x\r\n"
                              b".. \r\na.\r\n..\r\n\r\n..end\r\n.\r\n")
        p = pf.pop3(self.env, "stls")
        self.assertEqual(pf.unstuff(p.retr(1)[1]), self.dots)
        p.quit()
        r.close()

    def test_stls_injection(self):
        """Commands pipelined in plaintext behind STLS are discarded."""
        r = pf.Raw(self.env)
        r.line()
        r.send(("STLS\r\nUSER %s\r\nPASS %s\r\nSTAT\r\n" %
                (ALICE, ct.PASSWORD)).encode())
        self.assertEqual(r.line(), b"+OK Begin TLS negotiation now.")
        self.assertEqual(r.buf, b"")
        tls = self.env.client_ssl_context().wrap_socket(
            r.sock, server_hostname="mail.example.test")
        r.sock = tls
        # Nothing of the injected commands may be answered: the first
        # reply over TLS must be the answer to our CAPA.
        self.assertEqual(r.cmd("CAPA"), b"+OK Capability list follows")
        r.multi()
        self.assertEqual(r.cmd("STAT"),
                         b"-ERR Unknown command in AUTHORIZATION state.")
        r.close()

    def test_junk_and_truncated_tls(self):
        """Junk bytes, a truncated TLS handshake and a client vanishing
        mid-RETR never take the daemon down or stall others."""
        import random
        rnd = random.Random(4)
        for i in range(20):
            s = socket.create_connection(("127.0.0.1",
                                          self.env.ports["pop3"]), 5)
            s.sendall(bytes(rnd.getrandbits(8) for _ in range(rnd.randint(
                1, 3000))))
            s.close()
            s = socket.create_connection(("127.0.0.1",
                                          self.env.ports["pop3s"]), 5)
            s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" +
                      bytes(rnd.getrandbits(8) for _ in range(40)))
            s.close()
        r = pf.Raw(self.env)
        r.login()
        r.send(b"RETR 2\r\n")
        self.assertTrue(r.line().startswith(b"+OK"))
        r.close()  # vanishes mid-RETR
        p = pf.pop3(self.env, "implicit")
        self.assertEqual(p.stat()[0], 7)
        p.quit()


if __name__ == "__main__":
    ct.main()
