"""Refusals on the implicit-TLS listeners (issue #11 item 17): a client
over a limit on 465 (smtpd) or 995 (pop3d) expects a TLS ServerHello. It
must get either a clean TLS-wrapped refusal or a closed connection, never
cleartext (which Python's ssl and openssl s_client report as "wrong version
number"). carteiro closes."""

import os
import socket
import ssl
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import carteiro_test as ct  # noqa: E402
from smtpd_util import wait_for  # noqa: E402


def tls_first_line(env, port):
    """A TLS client on port. Returns ("line", first line) after a completed
    handshake, ("closed", why) when the server hangs up (before or after
    the handshake), or ("ssl-error", text) for any other TLS failure."""
    s = socket.create_connection(("127.0.0.1", port), 10)
    try:
        t = env.client_ssl_context().wrap_socket(
            s, server_hostname=env.hostname)
    except (ssl.SSLEOFError, ssl.SSLZeroReturnError, ConnectionError) as e:
        s.close()
        return ("closed", type(e).__name__)
    except ssl.SSLError as e:
        s.close()
        return ("ssl-error", str(e))
    try:
        t.settimeout(10)
        data = b""
        while b"\r\n" not in data:
            chunk = t.recv(4096)
            if not chunk:
                return ("closed", "eof after handshake")
            data += chunk
        return ("line", data.split(b"\r\n")[0])
    except (ssl.SSLEOFError, ssl.SSLZeroReturnError, ConnectionError) as e:
        return ("closed", type(e).__name__)
    except ssl.SSLError as e:
        return ("ssl-error", str(e))
    finally:
        t.close()


class ImplicitTlsRefusal(unittest.TestCase):
    def setUp(self):
        # Loopback is trusted by default (exempt from per-IP limits).
        self.env = ct.Env(conf={"smtpd": {"max_clients_per_ip": "1",
                                          "trusted_networks": ""},
                                "pop3d": {"max_clients_per_ip": "1",
                                          "trusted_networks": ""}})

    def tearDown(self):
        self.env.stop()

    def assert_refused(self, result, refusal_prefix):
        kind, what = result
        self.assertNotEqual(kind, "ssl-error", what)
        if kind == "line":
            self.assertTrue(what.startswith(refusal_prefix), what)
        else:
            self.assertEqual(kind, "closed")

    def test_smtps(self):
        env = self.env
        env.start_smtpd()
        wait_for(lambda: len(env.log_lines(env.smtpd,
                                           "smtp.disconnect")) >= 3)
        port = env.ports["submissions"]
        ctx = env.client_ssl_context()
        held = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port),
                                                        10),
                               server_hostname=env.hostname)
        self.assertTrue(ct.recv_until(held, rb"\r\n").startswith(b"220 "))
        before = len(env.log_lines(env.smtpd, "smtp.connect"))
        self.assert_refused(tls_first_line(env, port), b"421 4.7.0 ")
        self.assertTrue(wait_for(lambda: [
            l for l in env.log_lines(env.smtpd, "smtp.connect")[before:]
            if "listener=submissions result=refused" in l]))
        # The session that got in is untouched.
        held.sendall(b"NOOP\r\n")
        self.assertTrue(ct.recv_until(held, rb"\r\n").startswith(b"250 "))
        held.close()

    def test_pop3s(self):
        env = self.env
        env.start_pop3d()
        wait_for(lambda: len(env.log_lines(env.pop3d,
                                           "pop3.disconnect")) >= 2)
        port = env.ports["pop3s"]
        ctx = env.client_ssl_context()
        held = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port),
                                                        10),
                               server_hostname=env.hostname)
        self.assertEqual(ct.recv_until(held, rb"\r\n"),
                         b"+OK carteiro ready.\r\n")
        self.assert_refused(tls_first_line(env, port), b"-ERR ")
        self.assertTrue(wait_for(lambda: [
            l for l in env.log_lines(env.pop3d, "pop3.disconnect")
            if "reason=too-many-clients" in l]))
        held.sendall(b"CAPA\r\n")
        self.assertTrue(ct.recv_until(held, rb"\r\n").startswith(b"+OK"))
        held.close()


if __name__ == "__main__":
    ct.main()
