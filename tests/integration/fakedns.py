"""A fake DNS server for the relay tests (python3-dnslib), on 127.0.0.1/UDP.

    dns = FakeDNS({
        "remote.test": {"MX": [(10, "mx1.remote.test"), (20, "mx2.remote.test")]},
        "mx1.remote.test": {"A": ["127.0.0.2"]},
        "null.test": {"MX": [(0, ".")]},
        "example.test": {"TXT": ["v=spf1 -all"]},  # split at 255 octets
        "1.2.0.192.in-addr.arpa": {"PTR": ["mail.example.test"]},
        "broken.test": "SERVFAIL",      # or "NXDOMAIN", or "DROP" (no answer)
    })
    dns.start(); ... dns.port ...; dns.stop()

Names missing from the table are NXDOMAIN; a known name without the asked
type is NOERROR with no answers. Both carry an SOA (TTL and MINIMUM 60),
as RFC 2308 3 has authoritative servers do, so they may be cached. dns.set(name, value) changes the table
while the server runs; dns.queries counts (name, type) pairs asked.
FakeDNS(records, port=P, ttl=S) binds a given port and sets the answers'
TTL (default 60 s).

Faults for load (bench/soak): dns.fail_rate = 0.3 answers that share of
all queries, chosen at random, with one of dns.fail_kinds ("DROP",
"SERVFAIL"; both by default) instead of the table; dns.failed counts them.
0 (the default) turns it off.

The benches run the same server as a process (bench/relay, bench/checks):

    python3 fakedns.py --port P [--ttl S] [--ready FILE] ZONE.json|-

ZONE is the table above as JSON (MX values as [pref, host] lists); with
--ready the bound port is written to FILE once it answers. It serves until
SIGTERM.
"""

import json
import os
import random
import signal
import socket
import sys
import threading

from dnslib import A, AAAA, MX, PTR, QTYPE, RCODE, RR, SOA, TXT, DNSRecord


class FakeDNS:
    def __init__(self, records=None, port=0, ttl=60):
        self.records = {k.lower().rstrip("."): v
                        for k, v in (records or {}).items()}
        self.ttl = ttl
        self.lock = threading.Lock()
        self.queries = []
        self.fail_rate = 0.0
        self.fail_kinds = ("DROP", "SERVFAIL")
        self.failed = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port))
        self.port = self.sock.getsockname()[1]
        self.thread = None
        self.running = False

    def set(self, name, value):
        with self.lock:
            self.records[name.lower().rstrip(".")] = value

    def start(self):
        self.running = True
        self.sock.settimeout(0.2)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.running = False
        if self.thread:
            self.thread.join(2)
        self.sock.close()

    def _answer(self, data):
        req = DNSRecord.parse(data)
        q = req.q
        name = str(q.qname).lower().rstrip(".")
        qtype = QTYPE[q.qtype]
        with self.lock:
            self.queries.append((name, qtype))
            entry = self.records.get(name)
            if self.fail_rate and random.random() < self.fail_rate:
                self.failed += 1
                entry = random.choice(self.fail_kinds)
        reply = req.reply()
        if entry is None:
            reply.header.rcode = RCODE.NXDOMAIN
            return self._negative(reply, q)
        if entry == "DROP":
            return None
        if entry == "SERVFAIL":
            reply.header.rcode = RCODE.SERVFAIL
            return reply.pack()
        if entry == "NXDOMAIN":
            reply.header.rcode = RCODE.NXDOMAIN
            return self._negative(reply, q)
        for value in entry.get(qtype, []):
            if qtype == "MX":
                pref, host = value
                rdata = MX(host if host != "." else ".", pref)
            elif qtype == "A":
                rdata = A(value)
            elif qtype == "AAAA":
                rdata = AAAA(value)
            elif qtype == "TXT":
                # One record; its text in strings of at most 255 octets
                # (RFC 1035 3.3.14), as DKIM keys need.
                b = value.encode() if isinstance(value, str) else value
                rdata = TXT([b[i:i + 255] for i in range(0, len(b), 255)]
                            or [b""])
            elif qtype == "PTR":
                rdata = PTR(value)
            else:
                continue
            reply.add_answer(RR(q.qname, q.qtype, rdata=rdata,
                                ttl=self.ttl))
        if not reply.rr:
            return self._negative(reply, q)
        return reply.pack()

    @staticmethod
    def _negative(reply, q):
        reply.add_auth(RR(q.qname, QTYPE.SOA, ttl=60, rdata=SOA(
            "ns.fake.test", "hostmaster.fake.test",
            (1, 3600, 600, 86400, 60))))
        return reply.pack()

    def _serve(self):
        while self.running:
            try:
                data, addr = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                break
            try:
                out = self._answer(data)
            except Exception:  # a malformed query: ignore it
                continue
            if out is not None:
                try:
                    self.sock.sendto(out, addr)
                except OSError:
                    pass


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description="fake DNS server (UDP)")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--ttl", type=int, default=60)
    ap.add_argument("--ready", help="write the bound port here when up")
    ap.add_argument("zone", help="JSON file of records, or - for stdin")
    a = ap.parse_args(argv)
    if a.zone == "-":
        records = json.load(sys.stdin)
    else:
        with open(a.zone) as f:
            records = json.load(f)
    dns = FakeDNS(records, port=a.port, ttl=a.ttl).start()
    if a.ready:
        tmp = a.ready + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % dns.port)
        os.rename(tmp, a.ready)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    while not done.wait(3600):
        pass
    dns.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
