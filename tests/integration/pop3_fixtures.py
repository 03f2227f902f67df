"""Helpers for the pop3d integration tests (owned by pop3d).

deliver() puts a message into a mailbox through the store API
(tests/tools/store_fixture.c, store_deliver: the rows carteiro-smtpd
writes, UIDL "<epoch hex>.<uid>"), so the POP3 tests do not depend on
carteiro-smtpd.
"""

import os
import poplib
import socket
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import carteiro_test as ct  # noqa: E402


def start(env):
    """env.start_pop3d(), then let the harness's port probes (a connect and
    an immediate close on each port) finish: a TLS handshake that completes
    while the probe's handshake fails has been seen to stall the first
    session's reads (conn.c, reported to its owner)."""
    d = env.start_pop3d()
    time.sleep(0.3)
    return d


def deliver_many(env, address, messages):
    """Deliver each bytes message of the list to address, in order, in one
    transaction (store_fixture: store_deliver with no prefix and no
    envelope sender, so RETR shows exactly these bytes). Returns the
    UIDLs."""
    framed = b"".join(b"%d\n" % len(m) + m for m in messages)
    rows = env.store_fixture("deliver", "--framed", address, "-",
                             input=framed)
    assert len(rows) == len(messages), rows
    return [r["uidl"] for r in rows]


def deliver(env, address, data):
    return deliver_many(env, address, [data])[0]


def make_msg(subject, body_lines=3, extra=b""):
    """A small CRLF message."""
    lines = [b"From: sender@example.org", b"To: alice@example.test",
             b"Subject: " + subject.encode(), b"Message-ID: <%s@test>" %
             subject.replace(" ", "-").encode(), b""]
    for i in range(body_lines):
        lines.append(b"line %d of %s" % (i + 1, subject.encode()))
    return b"\r\n".join(lines) + b"\r\n" + extra


def pop3(env, tls="stls", user="alice@example.test", password=ct.PASSWORD,
         timeout=20):
    """A logged-in poplib client: tls = "stls", "implicit" or "none"."""
    if tls == "implicit":
        p = poplib.POP3_SSL("127.0.0.1", env.ports["pop3s"],
                            context=env.client_ssl_context(), timeout=timeout)
    else:
        p = poplib.POP3("127.0.0.1", env.ports["pop3"], timeout=timeout)
        if tls == "stls":
            p.stls(context=env.client_ssl_context())
    if user is not None:
        p.user(user)
        p.pass_(password)
    return p


class Raw:
    """A raw POP3 client socket (plaintext or implicit TLS)."""

    def __init__(self, env, tls=False, timeout=20):
        self.sock = socket.create_connection(
            ("127.0.0.1", env.ports["pop3s" if tls else "pop3"]), timeout)
        if tls:
            self.sock = env.client_ssl_context().wrap_socket(
                self.sock, server_hostname="mail.example.test")
        self.buf = b""
        self.timeout = timeout

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        self.sock.settimeout(self.timeout)
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise EOFError("connection closed; buffered %r" % self.buf[:200])
        self.buf += chunk

    def line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def multi(self):
        """Data lines of a multi-line response (unstuffed), as a list."""
        out = []
        while True:
            l = self.line()
            if l == b".":
                return out
            out.append(l[1:] if l.startswith(b".") else l)

    def multi_raw(self):
        """The raw bytes of a multi-line response up to and including
        the terminating .CRLF."""
        while True:
            i = self.buf.find(b"\r\n.\r\n")
            if i >= 0 or self.buf.startswith(b".\r\n"):
                end = (i + 5) if i >= 0 else 3
                data, self.buf = self.buf[:end], self.buf[end:]
                return data
            self._fill()

    def cmd(self, line):
        self.send(line.encode() + b"\r\n" if isinstance(line, str)
                  else line + b"\r\n")
        return self.line()

    def login(self, user="alice@example.test", password=ct.PASSWORD):
        assert self.line().startswith(b"+OK")
        r = self.cmd("USER " + user)
        assert r == b"+OK", r
        r = self.cmd("PASS " + password)
        assert r == b"+OK Logged in.", r

    def closed(self, timeout=5):
        """True if the server closed the connection (reads to EOF)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                c = self.sock.recv(65536)
                if not c:
                    return True
                self.buf += c
        except (socket.timeout, ssl.SSLError, ConnectionError):
            return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def unstuff(lines):
    return b"".join(l + b"\r\n" for l in lines)
