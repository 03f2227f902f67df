"""A fake DNS server for the relay tests (python3-dnslib), on 127.0.0.1/UDP.

    dns = FakeDNS({
        "remote.test": {"MX": [(10, "mx1.remote.test"), (20, "mx2.remote.test")]},
        "mx1.remote.test": {"A": ["127.0.0.2"]},
        "null.test": {"MX": [(0, ".")]},
        "broken.test": "SERVFAIL",      # or "NXDOMAIN", or "DROP" (no answer)
    })
    dns.start(); ... dns.port ...; dns.stop()

Names missing from the table are NXDOMAIN; a known name without the asked
type is NOERROR with no answers. Both carry an SOA (TTL and MINIMUM 60),
as RFC 2308 3 has authoritative servers do, so they may be cached. dns.set(name, value) changes the table
while the server runs; dns.queries counts (name, type) pairs asked.
"""

import socket
import threading

from dnslib import A, AAAA, MX, QTYPE, RCODE, RR, SOA, TXT, DNSRecord


class FakeDNS:
    def __init__(self, records=None):
        self.records = {k.lower().rstrip("."): v
                        for k, v in (records or {}).items()}
        self.lock = threading.Lock()
        self.queries = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
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
                rdata = TXT(value)
            else:
                continue
            reply.add_answer(RR(q.qname, q.qtype, rdata=rdata, ttl=60))
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
