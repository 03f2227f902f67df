#!/usr/bin/python3
"""POP3 load generator for bench/pop3/run (never run by scripts/test).

  loader.py retr  HOST PORT USER PASS [--window N]
      log in (USER/PASS), UIDL, RETR every message (pipelined, N commands
      in flight, like a client that pipelines per RFC 2449), QUIT; prints
      one JSON line {"messages", "bytes", "seconds", "msgs_per_s"}.
  loader.py storm HOST PORT USER PASS [--clients 20] [--seconds 10]
      20 parallel clients log in and QUIT in a loop while one more session
      RETRs message 1 over and over; prints {"logins", "logins_per_s",
      "retr_p50_ms", "retr_p99_ms", "retr_n"}.
"""

import argparse
import json
import socket
import threading
import time


class Client:
    def __init__(self, host, port, timeout=20):
        self.s = socket.create_connection((host, port), timeout)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.pos = 0

    def _fill(self):
        c = self.s.recv(1 << 20)
        if not c:
            raise EOFError("server closed")
        if self.pos > 1 << 20:
            # keep the 2 bytes before pos: multi() looks back at them
            del self.buf[:self.pos - 2]
            self.pos = 2
        self.buf += c

    def line(self):
        while True:
            i = self.buf.find(b"\r\n", self.pos)
            if i >= 0:
                l = bytes(self.buf[self.pos:i])
                self.pos = i + 2
                return l
            self._fill()

    def multi(self):
        """Skip a multi-line body (the status line was just read, so the
        two bytes before pos are its CRLF); returns its byte count."""
        while True:
            i = self.buf.find(b"\r\n.\r\n", self.pos - 2)
            if i >= 0:
                n = i + 2 - self.pos
                self.pos = i + 5
                return n
            self._fill()

    def send(self, data):
        self.s.sendall(data)

    def cmd(self, c):
        self.send(c.encode() + b"\r\n")
        return self.line()

    def login(self, user, password):
        g = self.line()
        if not g.startswith(b"+OK"):
            raise RuntimeError("greeting %r" % g)
        r = self.cmd("USER " + user)
        if not r.startswith(b"+OK"):
            raise RuntimeError("USER: %r" % r)
        r = self.cmd("PASS " + password)
        if not r.startswith(b"+OK"):
            raise RuntimeError("PASS: %r" % r)

    def close(self):
        self.s.close()


def retr_all(a):
    c = Client(a.host, a.port)
    c.login(a.user, a.password)
    t0 = time.perf_counter()
    r = c.cmd("UIDL")
    assert r.startswith(b"+OK"), r
    nums = []
    while True:
        l = c.line()
        if l == b".":
            break
        nums.append(int(l.split()[0]))
    # The responses are counted by their terminators ("\r\n.\r\n" never
    # occurs inside a stuffed body), so the client costs next to nothing
    # per message and the server is what is measured.
    sent = 0
    done = 0
    total = 0
    assert c.pos == len(c.buf), "unexpected data after UIDL"
    tail = b""
    while sent < len(nums) and sent < a.window:
        c.send(b"RETR %d\r\n" % nums[sent])
        sent += 1
    while done < len(nums):
        data = c.s.recv(1 << 20)
        if not data:
            raise EOFError("server closed")
        chunk = tail + data
        k = chunk.count(b"\r\n.\r\n")
        total += len(chunk) - len(tail)
        tail = chunk[-4:]  # a terminator may span two reads
        done += k
        more = min(len(nums) - sent, k)
        if more > 0:
            c.send(b"".join(b"RETR %d\r\n" % nums[sent + i]
                            for i in range(more)))
            sent += more
    dt = time.perf_counter() - t0
    c.cmd("QUIT")
    c.close()
    print(json.dumps({"messages": len(nums), "bytes": total,
                      "seconds": round(dt, 3),
                      "msgs_per_s": round(len(nums) / dt, 1)}))


def storm(a):
    stop = threading.Event()
    counts = [0] * a.clients
    errors = []

    def worker(i):
        while not stop.is_set():
            try:
                c = Client(a.host, a.port)
                c.login(a.user, a.password)
                c.cmd("QUIT")
                c.close()
                counts[i] += 1
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))
                time.sleep(0.05)

    lat = []

    def retr_loop():
        c = Client(a.host, a.port)
        c.login(a.user, a.password)
        while not stop.is_set():
            t0 = time.perf_counter()
            c.send(b"RETR 1\r\n")
            r = c.line()
            assert r.startswith(b"+OK"), r
            c.multi()
            lat.append((time.perf_counter() - t0) * 1000.0)
            time.sleep(0.01)
        c.cmd("QUIT")
        c.close()

    rt = threading.Thread(target=retr_loop)
    rt.start()
    time.sleep(0.5)
    threads = [threading.Thread(target=worker, args=(i,))
               for i in range(a.clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(a.seconds)
    stop.set()
    for t in threads:
        t.join()
    dt = time.perf_counter() - t0
    rt.join()
    lat.sort()
    n = sum(counts)

    def pct(p):
        return round(lat[min(len(lat) - 1, int(len(lat) * p))], 2) \
            if lat else None
    print(json.dumps({"logins": n, "seconds": round(dt, 2),
                      "logins_per_s": round(n / dt, 1),
                      "retr_n": len(lat), "retr_p50_ms": pct(0.50),
                      "retr_p99_ms": pct(0.99), "errors": len(errors),
                      "first_error": errors[0] if errors else None}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=("retr", "storm"))
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("user")
    ap.add_argument("password")
    ap.add_argument("--window", type=int, default=32)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=10)
    a = ap.parse_args()
    if a.mode == "retr":
        retr_all(a)
    else:
        storm(a)


if __name__ == "__main__":
    main()
