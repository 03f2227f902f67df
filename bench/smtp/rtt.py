"""bench/smtp/rtt.py PORT N: one SMTP session after another (no
concurrency), N messages of 1 KB, and the mean wait for each reply:
connect + greeting, EHLO, MAIL, RCPT, DATA, the message (its 250: for
carteiro the commit), QUIT. Run it against carteiro-smtpd and smtp-sink
on the same machine to see which step a session waits on; the addresses
are bench/smtp/run's (sender@remote.test to bench@bench.test).

    /usr/bin/python3 bench/smtp/rtt.py 2525 1000
"""
import socket
import sys
import time

STEPS = ["connect+greet", "EHLO", "MAIL", "RCPT", "DATA", "body", "QUIT"]
BODY = b"Subject: x\r\n\r\n" + b"x" * 1000 + b"\r\n.\r\n"
COMMANDS = [b"EHLO rtt.test\r\n", b"MAIL FROM:<sender@remote.test>\r\n",
            b"RCPT TO:<bench@bench.test>\r\n", b"DATA\r\n", BODY,
            b"QUIT\r\n"]


def reply(sock):
    """Read one whole (possibly multi-line) reply; return its code."""
    buf = b""
    while True:
        data = sock.recv(4096)
        if not data:
            raise SystemExit("rtt.py: connection closed mid-reply")
        buf += data
        if not buf.endswith(b"\r\n"):
            continue
        last = buf.split(b"\r\n")[-2]
        if len(last) >= 4 and last[3:4] == b" ":
            return int(last[:3])


def main():
    port, n = int(sys.argv[1]), int(sys.argv[2])
    total = [0.0] * len(STEPS)
    for _ in range(n):
        t = time.perf_counter()
        sock = socket.create_connection(("127.0.0.1", port))
        codes = [reply(sock)]
        t1 = time.perf_counter()
        total[0] += t1 - t
        t = t1
        for k, cmd in enumerate(COMMANDS, 1):
            sock.sendall(cmd)
            codes.append(reply(sock))
            t1 = time.perf_counter()
            total[k] += t1 - t
            t = t1
        sock.close()
        if codes != [220, 250, 250, 250, 354, 250, 221]:
            raise SystemExit("rtt.py: unexpected replies %r" % codes)
    print(" ".join("%s=%.0fus" % (STEPS[k], total[k] / n * 1e6)
                   for k in range(len(STEPS))),
          "total=%.0fus" % (sum(total) / n * 1e6))


if __name__ == "__main__":
    main()
