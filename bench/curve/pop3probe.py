#!/usr/bin/python3
"""bench/curve/pop3probe.py: POP3 timings for bench/curve/run.

    pop3probe.py PORT USER PASS login REPEAT
        USER/PASS + STAT + UIDL (all lines read) + QUIT, REPEAT times after
        one warm-up (the credential cache is warm, as for a polling
        client); prints median and max ms and the STAT count.
    pop3probe.py PORT USER PASS retr N
        one session, RETR of messages 1..N pipelined (64 in flight);
        prints msgs/s.
Prints one line of key=value."""

import socket
import statistics
import sys
import time


class Pop3:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), 60)
        self.buf = b""
        self.line()

    def fill(self):
        chunk = self.s.recv(1 << 20)
        if not chunk:
            raise SystemExit("pop3probe: connection closed")
        self.buf += chunk

    def line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                ln, self.buf = self.buf[:i + 2], self.buf[i + 2:]
                return ln
            self.fill()

    def cmd(self, c):
        self.s.sendall(c.encode() + b"\r\n")
        r = self.line()
        if not r.startswith(b"+OK"):
            raise SystemExit("pop3probe: %s -> %r" % (c, r))
        return r

    def multi(self):
        """Reads a multi-line response in big chunks (so the client's own
        cost stays small next to the server's); returns its line count."""
        data = b""
        start = 0
        while True:
            if self.buf.startswith(b".\r\n"):
                self.buf = self.buf[3:]
                return 0
            i = self.buf.find(b"\r\n.\r\n", start)
            if i >= 0:
                end = i + 2
                data, self.buf = self.buf[:end], self.buf[end + 3:]
                return data.count(b"\r\n")
            start = max(0, len(self.buf) - 4)
            self.fill()

    def login(self, user, pw):
        self.cmd("USER " + user)
        self.cmd("PASS " + pw)

    def close(self):
        self.s.sendall(b"QUIT\r\n")
        self.line()
        self.s.close()


def session(port, user, pw):
    t0 = time.monotonic()
    p = Pop3(port)
    p.login(user, pw)
    count = int(p.cmd("STAT").split()[1])
    p.cmd("UIDL")
    n = p.multi()
    t1 = time.monotonic()
    p.close()
    if n != count:
        raise SystemExit("pop3probe: UIDL %d lines, STAT %d" % (n, count))
    return (t1 - t0) * 1000, count


def main():
    port, user, pw, mode, n = (int(sys.argv[1]), sys.argv[2], sys.argv[3],
                               sys.argv[4], int(sys.argv[5]))
    if mode == "login":
        session(port, user, pw)
        times = []
        for _ in range(n):
            ms, count = session(port, user, pw)
            times.append(ms)
        print("msgs=%d login_uidl_ms_median=%.1f login_uidl_ms_max=%.1f"
              % (count, statistics.median(times), max(times)))
        return
    p = Pop3(port)
    p.login(user, pw)
    count = int(p.cmd("STAT").split()[1])
    n = min(n, count)
    t0 = time.monotonic()
    sent = got = 0
    while got < n:
        while sent < n and sent - got < 64:
            sent += 1
            p.s.sendall(b"RETR %d\r\n" % sent)
        r = p.line()
        if not r.startswith(b"+OK"):
            raise SystemExit("pop3probe: RETR -> %r" % r)
        p.multi()
        got += 1
    dt = time.monotonic() - t0
    p.close()
    print("retr=%d retr_per_s=%.0f" % (n, n / dt))


if __name__ == "__main__":
    main()
