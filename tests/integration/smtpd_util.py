"""Small helpers shared by the test_smtpd_*.py scenarios: a raw SMTP
client over a socket (exact bytes in, replies parsed out) and AUTH
payloads. The harness itself is carteiro_test.py."""

import base64
import os
import re
import socket
import ssl
import time
import warnings

import carteiro_test as ct

# Tests drop connections freely; the daemon side is what is checked.
warnings.simplefilter("ignore", ResourceWarning)

REPLY_END = re.compile(rb"(?:^|\r\n)(\d{3}) [^\r\n]*\r\n$")


def Env(conf=None, **kw):
    """carteiro_test.Env with loopback exempt from the inbound checks
    (SPF/DKIM/DMARC/DNSBL have their own tests): these scenarios check the
    SMTP engine, byte-exact and without DNS."""
    conf = {k: dict(v) for k, v in (conf or {}).items()}
    conf.setdefault("smtpd", {}).setdefault("inbound_checks_exempt",
                                            "127.0.0.0/8")
    return ct.Env(conf=conf, **kw)


def sanitized_build():
    """True when CARTEIRO_BUILD is the sanitizer build (scripts/test runs
    the suite twice; memory bounds only hold without ASan)."""
    return ct.BUILD.rstrip("/").endswith("build-san") or \
        "san" in os.path.basename(ct.BUILD.rstrip("/"))


def plain(user, password):
    return base64.b64encode(b"\0" + user.encode() + b"\0" +
                            password.encode()).decode()


def b64(s):
    return base64.b64encode(s.encode()).decode()


class Raw:
    """A raw SMTP connection: send exact bytes, read whole replies."""

    def __init__(self, port, tls_ctx=None, greet=True, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout)
        if tls_ctx is not None:
            self.sock = tls_ctx.wrap_socket(self.sock,
                                            server_hostname="mail.example.test")
        self.buf = b""
        self.timeout = timeout
        self.greeting = self.reply() if greet else None

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self):
        self.sock.settimeout(self.timeout)
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("EOF, buffered %r" % self.buf)
        self.buf += chunk

    def reply(self):
        """One (possibly multi-line) reply as (code, [texts])."""
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                self._fill()
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line)
            if len(line) >= 4 and line[3:4] == b" ":
                code = int(line[:3])
                return code, [l[4:].decode("utf-8", "replace")
                              for l in lines]
            if len(line) < 4 or line[3:4] != b"-":
                raise AssertionError("bad reply line %r" % line)

    def cmd(self, line):
        self.send(line + "\r\n" if isinstance(line, str) else line + b"\r\n")
        return self.reply()

    def code(self, line):
        return self.cmd(line)[0]

    def text(self, line):
        code, texts = self.cmd(line)
        return "%d %s" % (code, texts[-1])

    def starttls(self, ctx):
        code, _ = self.cmd("STARTTLS")
        assert code == 220, code
        self.sock = ctx.wrap_socket(self.sock,
                                    server_hostname="mail.example.test")
        self.buf = b""

    def at_eof(self, timeout=5):
        """True if the server closes the connection (after what is
        buffered)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (socket.timeout, ssl.SSLError):
            return False
        except ConnectionResetError:
            return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def wait_for(pred, timeout=10, step=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def proc_status(pid, key):
    """A /proc/PID/status value in kB (VmRSS, VmHWM)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)
