"""bench/loop/probe.py: round-trip times of commands on carteiro-smtpd's
event loop, measured from outside while the server is under load.

    probe.py PORT SECONDS SESSIONS OUT.json [--local A] [--alias A] [--unknown A]

Each session is its own process (no GIL hand-offs in the timings) with one
SMTP connection that repeats, until SECONDS are over:

    MAIL FROM:<probe@remote.test>             -> 250   (timed: "mail")
    8 x { RCPT TO:<...> -> 250 or 550 (timed: "rcpt"/"rcpt550"),
          NOOP          -> 250        (timed: "noop") }
    RSET                                      -> 250   (timed: "rset")

The RCPTs cycle through a local user, an alias (which also forwards to a
remote domain) and an unknown user: every one of them runs store_resolve
in a read snapshot on the loop thread. NOOP touches no SQLite: it is the
control. When the NOOP tail is as long as the RCPT tail, the time went to
scheduling (CPU), not to the store.

A round trip is the time from the write of the command to the arrival of
the whole reply line (time.perf_counter_ns). Commands are paced (a random
0.5-2.5 ms pause after each reply) so the samples spread over the run
instead of following each other; a stall of the loop therefore shows up in
every session at once, and its length is the max.

Writes OUT.json: {"kind": [[t_start_ns, rtt_ns], ...], ...} merged over
sessions, plus "errors" (unexpected replies or dropped sessions).
"""

import json
import multiprocessing as mp
import os
import random
import socket
import sys
import time

RCPTS_PER_TX = 8


class Session:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), 10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def line(self):
        while b"\r\n" not in self.buf:
            d = self.sock.recv(4096)
            if not d:
                raise ConnectionError("server closed the connection")
            self.buf += d
        ln, self.buf = self.buf.split(b"\r\n", 1)
        return ln

    def reply(self):
        """The whole reply; the code and the time its last line arrived."""
        while True:
            ln = self.line()
            if len(ln) < 4 or ln[3:4] != b"-":
                return ln[:3].decode(), time.perf_counter_ns()

    def cmd(self, text):
        t0 = time.perf_counter_ns()
        self.sock.sendall(text.encode() + b"\r\n")
        code, t1 = self.reply()
        return code, t0, t1 - t0


def session_main(idx, port, seconds, rcpts, outq):
    rnd = random.Random(idx)
    res = {"mail": [], "rcpt": [], "rcpt550": [], "noop": [], "rset": []}
    errors = []
    deadline = time.monotonic() + seconds
    s = None

    def pause():
        time.sleep(0.0005 + rnd.random() * 0.002)

    def timed(kind, text, want):
        code, t0, rtt = s.cmd(text)
        if code != want:
            errors.append("%s -> %s (wanted %s)" % (text, code, want))
        res[kind].append((t0, rtt))
        pause()

    try:
        s = Session(port)
        code, _ = s.reply()
        if code != "220":
            raise ConnectionError("greeting " + code)
        code, _, _ = s.cmd("EHLO probe%d.test" % idx)
        if code != "250":
            raise ConnectionError("EHLO " + code)
        k = idx
        while time.monotonic() < deadline:
            timed("mail", "MAIL FROM:<probe%d@remote.test>" % idx, "250")
            for _ in range(RCPTS_PER_TX):
                addr, want = rcpts[k % len(rcpts)]
                k += 1
                timed("rcpt" if want == "250" else "rcpt550",
                      "RCPT TO:<%s>" % addr, want)
                timed("noop", "NOOP", "250")
            timed("rset", "RSET", "250")
        s.cmd("QUIT")
    except (OSError, ConnectionError) as e:
        errors.append("session %d: %s" % (idx, e))
    outq.put((res, errors))


def main():
    port, seconds, nsess, out = (int(sys.argv[1]), float(sys.argv[2]),
                                 int(sys.argv[3]), sys.argv[4])
    opts = dict(zip(sys.argv[5::2], sys.argv[6::2]))
    rcpts = [(opts.get("--local", "bench@bench.test"), "250"),
             (opts.get("--alias", "fwd@bench.test"), "250"),
             (opts.get("--local", "bench@bench.test"), "250"),
             (opts.get("--unknown", "nobody@bench.test"), "550")]
    q = mp.Queue()
    procs = [mp.Process(target=session_main,
                        args=(i, port, seconds, rcpts, q))
             for i in range(nsess)]
    for p in procs:
        p.start()
    merged = {}
    errors = []
    for _ in procs:
        res, err = q.get()
        for k, v in res.items():
            merged.setdefault(k, []).extend(v)
        errors.extend(err)
    for p in procs:
        p.join()
    merged["errors"] = errors
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(merged, f)
    os.rename(tmp, out)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
