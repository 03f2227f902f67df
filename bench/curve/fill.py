#!/usr/bin/python3
"""bench/curve/fill.py: --framed input for store_fixture (deliver).

    fill.py COUNT SIZE ADDR[,ADDR...] [START]

COUNT messages of SIZE bytes (headers included), message i (from START)
to the i-th address modulo the list, one frame each: "SIZE ADDR\\n" then
the bytes. Every message differs (Message-ID, Subject), so the bodies are
not deduplicated anywhere."""

import sys


def main():
    count, size = int(sys.argv[1]), int(sys.argv[2])
    addrs = sys.argv[3].split(",")
    start = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    out = sys.stdout.buffer
    pad = b"x" * 76 + b"\r\n"
    for i in range(start, start + count):
        addr = addrs[i % len(addrs)]
        head = ("From: fill@remote.test\r\nTo: %s\r\n"
                "Subject: curve %d\r\nMessage-ID: <%d.curve@remote.test>\r\n"
                "\r\n" % (addr, i, i)).encode()
        body = (pad * (size // len(pad) + 1))[:max(0, size - len(head) - 2)]
        msg = head + body + b"\r\n"
        out.write(b"%d %s\n" % (len(msg), addr.encode()))
        out.write(msg)


if __name__ == "__main__":
    main()
