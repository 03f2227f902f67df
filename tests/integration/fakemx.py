"""Fake remote mail servers for the relay tests.

    sink = Sink("127.0.0.2", port)                  # aiosmtpd, records mail
    sink = Sink(ip, port, tls=(cert, key))          # offers STARTTLS
    sink = Sink(ip, port, tls=(cert, key), auth=("user", "pw"),
                require_tls=True)                   # a smarthost
    sink.rcpt_reply = lambda addr: "550 5.1.1 no such user" or None
    sink.delay = 1.0                                # seconds before each reply
    sink.start(); sink.messages -> [Msg]; sink.stop()
    sink = Sink(ip, port, dsn=True)                 # advertises DSN (RFC 3461)
    msg.mail_params, msg.rcpt_params                # MAIL/RCPT parameters,
                                                    # byte for byte as sent
    msg.peer, msg.helo                              # client IP, EHLO name

    sink.mail_reply = lambda n: "421 4.7.0 too many" if n < 3 else None
                                                    # per MAIL (n from 0)
    sink.connections, sink.peers, sink.helos, sink.rsets
                                                    # connections made, their
                                                    # client IPs, EHLO/HELO
                                                    # names, RSETs seen

    Refuser(ip, port, "421 4.3.2 busy")             # greets with 421, hangs up

    fast = FastSink("0.0.0.0", port).start()        # load: counts only (epoll)
    fast.messages, fast.rcpts, fast.connections; fast.stop()

    rec = RecordSink(ip, port, on_message=f).start()  # soak: records, flaps
    rec.set_mode("accept" | "tempfail" | "refuse"); rec.stop()

Every fake MX binds its own 127.0.0.x address on the same port, so the
relay's [relay] mx_port reaches all of them (FastSink on 0.0.0.0 answers
for every 127.0.0.x at once).

The benches run FastSink as a process (bench/relay):

    python3 fakemx.py sink --port P [--host H] [--workers N] [--ready FILE]
                           [--stats FILE]

--ready: FILE gets the port once it listens; on SIGTERM it writes
"messages=N rcpts=N connections=N" to --stats (or stdout) and exits.
--workers: N processes accept on the one socket. One session (greeting to
QUIT) costs FastSink about 0.2 ms of CPU, twice Postfix's smtp-sink.
"""

import asyncio
import collections
import os
import signal
import socket
import ssl
import sys
import threading
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, syntax

from fakedns import FakeDNS


class Msg:
    def __init__(self, mail_from, rcpts, data, tls, auth, mail_options,
                 mail_params=(), rcpt_params=()):
        self.mail_from = mail_from
        self.rcpts = list(rcpts)
        self.data = data
        self.tls = tls
        self.auth = auth
        self.mail_options = list(mail_options)
        # The parameters as the client sent them (aiosmtpd upper-cases
        # mail_options): ["SIZE=12", "RET=HDRS", ...] and, per RCPT
        # address in order, {"a@b": ["NOTIFY=SUCCESS", ...]}.
        self.mail_params = list(mail_params)
        self.rcpt_params = dict(rcpt_params)

    def __repr__(self):
        return "Msg(%r -> %r, %d bytes, tls=%s)" % (
            self.mail_from, self.rcpts, len(self.data), self.tls)


class _Handler:
    def __init__(self, sink):
        self.sink = sink

    async def _wait(self):
        if self.sink.delay:
            await asyncio.sleep(self.sink.delay)

    async def handle_EHLO(self, server, session, envelope, hostname,
                          responses):
        await self._wait()
        session.host_name = hostname
        with self.sink.lock:
            self.sink.helos.append(hostname)
        if self.sink.dsn:
            responses.insert(len(responses) - 1, "250-DSN")
            # RFC 3461 4: MAIL 100 and RCPT 500 octets longer.
            server.command_size_limits["MAIL"] += 100
            server.command_size_limits["RCPT"] += 500
        return responses

    async def handle_MAIL(self, server, session, envelope, address,
                          mail_options):
        await self._wait()
        n = self.sink.transactions
        self.sink.transactions += 1
        reply = self.sink.mail_reply
        if callable(reply):
            reply = reply(n)
        if reply:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_HELO(self, server, session, envelope, hostname):
        session.host_name = hostname
        with self.sink.lock:
            self.sink.helos.append(hostname)
        return "250 %s" % server.hostname

    async def handle_RSET(self, server, session, envelope):
        with self.sink.lock:
            self.sink.rsets += 1
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address,
                          rcpt_options):
        await self._wait()
        reply = self.sink.rcpt_reply(address) if self.sink.rcpt_reply else None
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        await self._wait()
        if self.sink.data_reply:
            return self.sink.data_reply
        with self.sink.lock:
            self.sink.messages.append(Msg(
                envelope.mail_from, envelope.rcpt_tos,
                envelope.original_content, session.ssl is not None,
                getattr(session, "auth_data", None) is not None or
                getattr(session, "authenticated", False),
                envelope.mail_options,
                getattr(envelope, "raw_mail_params", ()),
                getattr(envelope, "raw_rcpt_params", ())))
            self.sink.messages[-1].peer = (session.peer[0] if session.peer
                                           else None)
            self.sink.messages[-1].helo = session.host_name
        return "250 2.0.0 Ok: queued"


_DSN_PARAMS = ("RET", "ENVID", "NOTIFY", "ORCPT")


def _split_params(arg):
    """"FROM:<a@b> X=1 y" -> ("FROM:<a@b>", ["X=1", "y"])."""
    i = arg.rfind(">")
    if i < 0:
        return arg, []
    return arg[:i + 1], arg[i + 1:].split()


class _SMTP(SMTP):
    """aiosmtpd recording the raw MAIL/RCPT parameters (aiosmtpd upper-
    cases them) on the envelope. A sink with dsn=True takes the RFC 3461
    ones off before aiosmtpd, which knows none, sees them; without it
    they stay, so a client that sends them anyway gets aiosmtpd's 555."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        # aiosmtpd keeps the per-verb line limits in a class attribute
        # (shared by every session); each session gets its own here.
        self.command_size_limits = collections.defaultdict(
            lambda x=self.command_size_limit: x)

    def connection_made(self, transport):
        sink = self.event_handler.sink
        peer = transport.get_extra_info("peername")
        with sink.lock:
            sink.connections += 1
            sink.peers.append(peer[0] if peer else None)
        super().connection_made(transport)

    def _dsn_params(self, arg):
        if arg is None:
            return arg, []
        head, params = _split_params(arg)
        keep = params
        if self.event_handler.sink.dsn:
            keep = [p for p in params
                    if p.split("=", 1)[0].upper() not in _DSN_PARAMS]
        return " ".join([head] + keep), params

    @syntax('MAIL FROM: <address>', extended=' [SP <mail-parameters>]')
    async def smtp_MAIL(self, arg):
        arg, params = self._dsn_params(arg)
        self.envelope.raw_mail_params = params
        await super().smtp_MAIL(arg)

    @syntax('RCPT TO: <address>', extended=' [SP <mail-parameters>]')
    async def smtp_RCPT(self, arg):
        arg, params = self._dsn_params(arg)
        if arg is not None and "<" in arg:
            addr = arg[arg.index("<") + 1:arg.rindex(">")]
            if not hasattr(self.envelope, "raw_rcpt_params"):
                self.envelope.raw_rcpt_params = []
            self.envelope.raw_rcpt_params.append((addr, params))
        await super().smtp_RCPT(arg)


class _Controller(Controller):
    def factory(self):
        return _SMTP(self.handler, **self.SMTP_kwargs)


class Sink:
    def __init__(self, host, port, tls=None, auth=None, require_tls=False,
                 smtputf8=False, auth_exclude=(), dsn=False):
        self.host = host
        self.port = port
        self.dsn = dsn
        self.lock = threading.Lock()
        self.messages = []
        self.transactions = 0
        self.connections = 0
        self.peers = []
        self.helos = []
        self.rsets = 0
        self.delay = 0
        self.mail_reply = None
        self.data_reply = None
        self.rcpt_reply = None
        self.auth_ok = []
        kw = {"enable_SMTPUTF8": smtputf8, "ident": "fakemx"}
        if tls:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(tls[0], tls[1])
            kw["tls_context"] = ctx
            kw["require_starttls"] = require_tls
        if auth:
            user, password = auth

            def authenticator(server, session, envelope, mechanism, data):
                ok = (data.login.decode() == user and
                      data.password.decode() == password)
                if ok:
                    self.auth_ok.append(mechanism)
                return AuthResult(success=ok)

            kw["authenticator"] = authenticator
            kw["auth_require_tls"] = True
            kw["auth_required"] = True
            if auth_exclude:
                kw["auth_exclude_mechanism"] = list(auth_exclude)
        self.controller = _Controller(_Handler(self), hostname=host,
                                      port=port, **kw)

    def start(self):
        self.controller.start()
        # aiosmtpd's Controller connects once to see it is up: not ours.
        with self.lock:
            self.connections = 0
            self.peers = []
        return self

    def stop(self):
        try:
            self.controller.stop()
        except Exception:
            pass

    def wait(self, n=1, timeout=15):
        """Wait until n messages arrived; returns the list."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                if len(self.messages) >= n:
                    return list(self.messages)
            time.sleep(0.05)
        with self.lock:
            return list(self.messages)


class Refuser:
    """Greets every connection with one line (e.g. 421) and closes."""

    def __init__(self, host, port, line="421 4.3.2 Service not available"):
        self.line = line
        self.connections = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def _serve(self):
        while self.running:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            self.connections += 1
            try:
                c.sendall(self.line.encode() + b"\r\n")
                time.sleep(0.05)
            except OSError:
                pass
            c.close()

    def stop(self):
        self.running = False
        self.thread.join(2)
        self.sock.close()


class _FastSession:
    """The SMTP dialogue of one FastSink connection: feed() takes what
    arrived and returns the replies (pipelined commands answered in one
    write) and whether to close. Message data is only scanned for the
    end of DATA."""

    __slots__ = ("sink", "buf", "in_data", "pre")

    def __init__(self, sink):
        self.sink = sink
        self.buf = b""
        self.in_data = False
        self.pre = b""

    def feed(self, data):
        self.buf += data
        out = []
        while True:
            if self.in_data:
                # The DATA line's own CRLF precedes the body (an empty
                # body ends at ".\r\n" at once); later, the last 4 bytes
                # of the previous read may start the terminator.
                self.buf = self.pre + self.buf
                i = self.buf.find(b"\r\n.\r\n")
                if i < 0:
                    self.pre, self.buf = self.buf[-4:], b""
                    break
                self.buf = self.buf[i + 5:]
                self.in_data = False
                self.sink.messages += 1
                out.append(b"250 2.0.0 Ok: queued\r\n")
                continue
            i = self.buf.find(b"\r\n")
            if i < 0:
                break
            line, self.buf = self.buf[:i], self.buf[i + 2:]
            verb = line[:4].upper()
            if verb == b"EHLO":
                out.append(b"250-fakemx\r\n250-PIPELINING\r\n"
                           b"250-8BITMIME\r\n250-SMTPUTF8\r\n"
                           b"250 ENHANCEDSTATUSCODES\r\n")
            elif verb == b"RCPT":
                self.sink.rcpts += 1
                out.append(b"250 2.1.5 Ok\r\n")
            elif verb == b"DATA":
                self.in_data = True
                self.pre = b"\r\n"
                out.append(b"354 End data with <CR><LF>.<CR><LF>\r\n")
            elif verb == b"QUIT":
                out.append(b"221 2.0.0 Bye\r\n")
                return b"".join(out), True
            elif verb in (b"HELO", b"MAIL", b"RSET", b"NOOP"):
                out.append(b"250 2.0.0 Ok\r\n")
            else:
                out.append(b"502 5.5.2 Command not recognized\r\n")
        return b"".join(out), False


class FastSink:
    """An SMTP sink for load (bench/relay): no aiosmtpd, no asyncio, no
    copies of the mail, only counters; one epoll loop (a thread, or the
    process in the process mode). host "0.0.0.0" serves every 127.0.0.x.
    Replies are a few hundred bytes at most, so a send never blocks."""

    def __init__(self, host, port, sock=None):
        """sock: an already listening socket to serve instead (the
        process mode's workers share one)."""
        if sock is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(1024)
        sock.setblocking(False)
        self.sock = sock
        self.port = sock.getsockname()[1]
        self.messages = 0
        self.rcpts = 0
        self.connections = 0
        self.running = True
        self.thread = None

    def start(self):
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.running = False
        if self.thread:
            self.thread.join(5)
        self.sock.close()

    def serve(self):
        """Until running is false (checked every 0.2 s)."""
        import select
        ep = select.epoll()
        lfd = self.sock.fileno()
        ep.register(lfd, select.EPOLLIN)
        conns = {}

        def close(fd):
            ep.unregister(fd)
            conns.pop(fd)[0].close()
        try:
            while self.running:
                for fd, _ in ep.poll(0.2):
                    if fd == lfd:
                        while True:
                            try:
                                c, _ = self.sock.accept()
                            except (BlockingIOError, InterruptedError):
                                break
                            self.connections += 1
                            c.setblocking(False)
                            c.send(b"220 fakemx ESMTP\r\n")
                            conns[c.fileno()] = (c, _FastSession(self))
                            ep.register(c.fileno(), select.EPOLLIN)
                        continue
                    c, sess = conns[fd]
                    try:
                        data = c.recv(262144)
                    except BlockingIOError:
                        continue
                    except OSError:
                        data = b""
                    if not data:
                        close(fd)
                        continue
                    out, done = sess.feed(data)
                    try:
                        if out:
                            c.send(out)
                    except OSError:
                        done = True
                    if done:
                        close(fd)
        finally:
            for fd in list(conns):
                close(fd)
            ep.close()

    def stats(self):
        return "messages=%d rcpts=%d connections=%d" % (
            self.messages, self.rcpts, self.connections)


class RecordSink:
    """An SMTP server for the fault soak (bench/soak): a thread per
    connection, every accepted message handed to on_message(mail_from,
    rcpts, data) before its 250 (so whatever got a 250 is recorded), and a
    mode that can change at any moment:

      "accept"    takes mail
      "tempfail"  each new connection fails one way at random: 421 at the
                  greeting, 450 to RCPT, or 451 after the whole message
      "refuse"    the listening socket is closed (connection refused)

    Replies follow the mode at the time of each command, so a session
    that began in "accept" can end in a 451. data is the message as
    received, dot-unstuffed, CRLF line ends. rcpt_reply(address), when
    set, may return a reply line for RCPT instead of 250 (e.g. "550 5.1.1
    no such user"). Counters: connections, messages (250s after DATA),
    tempfails."""

    def __init__(self, host, port, on_message=None):
        self.host = host
        self.port = port
        self.on_message = on_message
        self.rcpt_reply = None
        self.mode = "accept"
        self.lock = threading.Lock()
        self.connections = 0
        self.messages = 0
        self.tempfails = 0
        self.running = False
        self.sock = None
        self.thread = None

    def _listen(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, self.port))
        s.listen(64)
        s.settimeout(0.2)
        return s

    def start(self):
        self.sock = self._listen()
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        return self

    def set_mode(self, mode):
        assert mode in ("accept", "tempfail", "refuse")
        with self.lock:
            self.mode = mode
            if mode == "refuse" and self.sock is not None:
                self.sock.close()
                self.sock = None
            elif mode != "refuse" and self.sock is None:
                self.sock = self._listen()

    def stop(self):
        self.running = False
        if self.thread:
            self.thread.join(2)
        with self.lock:
            if self.sock is not None:
                self.sock.close()
                self.sock = None

    def _serve(self):
        while self.running:
            with self.lock:
                ls = self.sock
            if ls is None:
                time.sleep(0.1)
                continue
            try:
                c, _ = ls.accept()
            except (socket.timeout, OSError):
                continue
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._session, args=(c,),
                             daemon=True).start()

    def _session(self, c):
        import random
        c.settimeout(120)
        f = c.makefile("rb")
        fail = (random.choice(("greeting", "rcpt", "data"))
                if self.mode == "tempfail" else None)

        def send(line):
            c.sendall(line.encode() + b"\r\n")

        def failing(where):
            if self.mode == "tempfail" and fail in (where, None):
                with self.lock:
                    self.tempfails += 1
                return True
            return False
        try:
            if failing("greeting"):
                send("421 4.3.2 fakemx: try again later")
                return
            send("220 fakemx ESMTP")
            mail_from, rcpts = None, []
            while True:
                line = f.readline(4096)
                if not line:
                    return
                cmd = line.rstrip(b"\r\n").decode("ascii", "replace")
                verb = cmd[:4].upper()
                if verb == "EHLO":
                    send("250-fakemx\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
                         "250 ENHANCEDSTATUSCODES")
                elif verb == "HELO":
                    send("250 fakemx")
                elif verb == "MAIL":
                    mail_from = cmd[10:].strip().split(" ")[0].strip("<>")
                    rcpts = []
                    send("250 2.1.0 Ok")
                elif verb == "RCPT":
                    if mail_from is None:
                        send("503 5.5.1 MAIL first")
                    elif failing("rcpt"):
                        send("450 4.2.0 fakemx: mailbox busy")
                    else:
                        addr = cmd[8:].strip().split(" ")[0].strip("<>")
                        reply = self.rcpt_reply and self.rcpt_reply(addr)
                        if reply:
                            send(reply)
                            continue
                        rcpts.append(addr)
                        send("250 2.1.5 Ok")
                elif verb == "DATA":
                    if not rcpts:
                        send("554 5.5.1 no valid recipients")
                        continue
                    send("354 End data with <CR><LF>.<CR><LF>")
                    lines = []
                    while True:
                        l = f.readline(1 << 20)
                        if not l:
                            return
                        if l == b".\r\n":
                            break
                        lines.append(l[1:] if l.startswith(b".") else l)
                    data = b"".join(lines)
                    if failing("data"):
                        send("451 4.3.0 fakemx: try again later")
                    else:
                        if self.on_message:
                            self.on_message(mail_from, list(rcpts), data)
                        with self.lock:
                            self.messages += 1
                        send("250 2.0.0 Ok: queued")
                    mail_from, rcpts = None, []
                elif verb == "RSET":
                    mail_from, rcpts = None, []
                    send("250 2.0.0 Ok")
                elif verb == "NOOP":
                    send("250 2.0.0 Ok")
                elif verb == "QUIT":
                    send("221 2.0.0 Bye")
                    return
                else:
                    send("502 5.5.2 Command not recognized")
        except OSError:
            pass
        finally:
            f.close()
            c.close()


def queue_rows(env):
    """(id, mail_from, attempts, warned, is_bounce) of the queue."""
    return env.query("SELECT id, mail_from, attempts, warned, is_bounce "
                     "FROM queue ORDER BY id")


def wait_for(pred, timeout=15, step=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


def relay_setup(records, conf=None, **env_kw):
    """A running FakeDNS with records, one MX port free on 127.0.0.2-9 and
    an Env whose [relay] points at both (retry_first 1s). Returns
    (env, dns, port); the caller starts smtpd and the sinks."""
    import carteiro_test as ct
    dns = FakeDNS(records).start()
    port = ct.free_port("127.0.0.2")
    relay = {"resolver": "127.0.0.1:%d" % dns.port, "mx_port": str(port),
             "retry_first": "1s", "retry_max": "4s"}
    relay.update((conf or {}).get("relay", {}))
    full = dict(conf or {})
    full["relay"] = relay
    env = ct.Env(conf=full, **env_kw)
    return env, dns, port


def submit(env, rcpts, msg, user="alice@example.test", password="secret",
           mail_from=None):
    """Send msg (bytes) over the submission port with AUTH; returns the
    smtplib refused dict."""
    import smtplib
    s = smtplib.SMTP("127.0.0.1", env.ports["submission"], timeout=30)
    try:
        s.ehlo()
        s.login(user, password)
        return s.sendmail(mail_from or user, rcpts, msg)
    finally:
        try:
            s.quit()
        except Exception:
            pass


def queue_insert(env, mail_from, rcpts, data, next_attempt=None,
                 is_bounce=0, smtputf8=0):
    """Queue a message for remote rcpts through the store API
    (tests/tools/store_fixture.c, store_deliver), for scenarios submission
    cannot produce (null sender) or bulk loads. next_attempt: unix time
    (default now). Returns the queue id."""
    args = ["queue", "--from", mail_from]
    if next_attempt is not None:
        args += ["--next-attempt", str(int(next_attempt))]
    if is_bounce:
        args.append("--bounce")
    if smtputf8:
        args.append("--smtputf8")
    rows = env.store_fixture(*args, ",".join(rcpts), "-", input=data)
    return int(rows[0]["queue"])


def queue_ids(env):
    return [r[0] for r in env.query("SELECT id FROM queue ORDER BY id")]


def db_exec(env, sql, args=()):
    """One committed write to the store (env.execute: either backend)."""
    env.execute(sql, args)


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description="fake MX for benches")
    ap.add_argument("mode", choices=["sink"])
    ap.add_argument("--host", default="0.0.0.0")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--workers", type=int, default=1,
                    help="processes accepting on the one socket")
    ap.add_argument("--ready", help="write the bound port here when up")
    ap.add_argument("--stats", help="write the counters here at SIGTERM")
    a = ap.parse_args(argv)
    sink = FastSink(a.host, a.port)

    def _stop(*_):
        sink.running = False
    # Workers beyond the first are forked sharing the listening socket;
    # each reports its counters through a pipe when it is told to stop.
    children = []
    for _ in range(a.workers - 1):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            signal.signal(signal.SIGTERM, _stop)
            signal.signal(signal.SIGINT, _stop)
            sink.serve()
            os.write(w, b"%d %d %d" % (sink.messages, sink.rcpts,
                                       sink.connections))
            os._exit(0)
        os.close(w)
        children.append((pid, r))
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    if a.ready:
        with open(a.ready + ".tmp", "w") as f:
            f.write("%d\n" % sink.port)
        os.rename(a.ready + ".tmp", a.ready)
    sink.serve()
    sink.sock.close()
    for pid, r in children:
        os.kill(pid, signal.SIGTERM)
    for pid, r in children:
        with os.fdopen(r, "rb") as f:
            m, n, c = (int(x) for x in f.read().split())
        os.waitpid(pid, 0)
        sink.messages += m
        sink.rcpts += n
        sink.connections += c
    if a.stats:
        with open(a.stats, "w") as f:
            f.write(sink.stats() + "\n")
    else:
        print(sink.stats())


if __name__ == "__main__":
    main(sys.argv[1:])
