"""A fake DNS server for the relay tests (python3-dnslib), on 127.0.0.1/UDP.

    dns = FakeDNS({
        "remote.test": {"MX": [(10, "mx1.remote.test"), (20, "mx2.remote.test")]},
        "mx1.remote.test": {"A": ["127.0.0.2"]},
        "null.test": {"MX": [(0, ".")]},
        "example.test": {"TXT": ["v=spf1 -all"]},  # split at 255 octets
        "1.2.0.192.in-addr.arpa": {"PTR": ["mail.example.test"]},
        "_submissions._tcp.example.test": {"SRV": [(0, 1, 465, "mail.example.test")]},
        "broken.test": "SERVFAIL",      # or "NXDOMAIN", or "DROP" (no answer)
        "_25._tcp.mx1.remote.test": {"TLSA": [(3, 1, 1, "ab12...")],
                                     "AD": True},
    })
    dns.start(); ... dns.port ...; dns.stop()

TLSA values are (usage, selector, matching type, data in hex) (RFC 6698).
"AD": True on a name sets the AD bit on its answers, as a validating
resolver does for authenticated data (RFC 4035 3.2.3).

Names missing from the table are NXDOMAIN; a known name without the asked
type is NOERROR with no answers. Both carry an SOA (TTL and MINIMUM 60),
as RFC 2308 3 has authoritative servers do, so they may be cached. dns.set(name, value) changes the table
while the server runs; dns.queries counts (name, type) pairs asked.
FakeDNS(records, port=P, ttl=S) binds a given port and sets the answers'
TTL (default 60 s). With tcp=True it also answers over TCP on the same
port, and UDP answers over 512 octets are truncated (TC set, RFC 1035
4.2.1) so that the client asks again over TCP. Subclasses change the
answers by overriding _answer(data) -> packed reply bytes, or None for no
answer at all (fakedns_zone.py serves the RFC 7208 suite's zones so).

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

from dnslib import (A, AAAA, MX, PTR, QTYPE, RCODE, RR, SOA, SRV, TLSA, TXT,
                    DNSRecord)


class FakeDNS:
    def __init__(self, records=None, port=0, ttl=60, tcp=False):
        self.records = {k.lower().rstrip("."): v
                        for k, v in (records or {}).items()}
        self.ttl = ttl
        self.lock = threading.Lock()
        self.queries = []
        self.fail_rate = 0.0
        self.fail_kinds = ("DROP", "SERVFAIL")
        self.failed = 0
        self.tcp = None
        # With TCP, the same port number must be free for both: a random
        # UDP port may already be taken on TCP, so try again.
        for attempt in range(50):
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.bind(("127.0.0.1", port))
            self.port = self.sock.getsockname()[1]
            if not tcp:
                break
            self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                self.tcp.bind(("127.0.0.1", self.port))
            except OSError:
                self.tcp.close()
                self.sock.close()
                self.tcp = None
                if port != 0 or attempt == 49:
                    raise
                continue
            self.tcp.listen(16)
            break
        self.thread = None
        self.tcp_thread = None
        self.running = False

    def set(self, name, value):
        with self.lock:
            self.records[name.lower().rstrip(".")] = value

    def start(self):
        self.running = True
        self.sock.settimeout(0.2)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        if self.tcp is not None:
            self.tcp.settimeout(0.2)
            self.tcp_thread = threading.Thread(target=self._serve_tcp,
                                               daemon=True)
            self.tcp_thread.start()
        return self

    def stop(self):
        self.running = False
        if self.thread:
            self.thread.join(2)
        if self.tcp_thread:
            self.tcp_thread.join(2)
        self.sock.close()
        if self.tcp is not None:
            self.tcp.close()

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
        # dnslib copies the query's flags; AD only where the table says.
        reply.header.ad = 0
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
        if entry.get("AD"):
            reply.header.ad = 1
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
            elif qtype == "SRV":
                prio, weight, port, target = value
                rdata = SRV(prio, weight, port, target)
            elif qtype == "TLSA":
                usage, selector, mtype, data = value
                rdata = TLSA(usage, selector, mtype, bytes.fromhex(data))
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
            if out is not None and self.tcp is not None and len(out) > 512:
                # RFC 1035 4.2.1: the client retries over TCP. The
                # question stays (dnslib's truncate() drops it, and
                # c-ares ignores a reply that does not echo its question).
                trunc = DNSRecord.parse(out)
                trunc.rr, trunc.auth, trunc.ar = [], [], []
                trunc.header.tc = 1
                out = trunc.pack()
            if out is not None:
                try:
                    self.sock.sendto(out, addr)
                except OSError:
                    pass

    def _serve_tcp(self):
        while self.running:
            try:
                conn, _ = self.tcp.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            threading.Thread(target=self._serve_conn, args=(conn,),
                             daemon=True).start()

    def _serve_conn(self, conn):
        """RFC 1035 4.2.2: each message after a two-octet length."""
        conn.settimeout(5)
        with conn:
            while self.running:
                try:
                    head = self._recv_all(conn, 2)
                    if head is None:
                        return
                    data = self._recv_all(conn, int.from_bytes(head, "big"))
                    if data is None:
                        return
                except OSError:
                    return
                try:
                    out = self._answer(data)
                except Exception:
                    return
                if out is None:
                    continue
                try:
                    conn.sendall(len(out).to_bytes(2, "big") + out)
                except OSError:
                    return

    @staticmethod
    def _recv_all(conn, n):
        buf = b""
        while len(buf) < n:
            chunk = conn.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf


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
