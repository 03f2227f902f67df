"""FakeDNS serving a zone of the OpenSPF RFC 7208 test suite (zonedata of
one scenario), with the semantics pyspf's own driver gives it:

    dns = ZoneDNS().start()
    dns.load(scenario["zonedata"])     # swap zones between scenarios
    ... dns.port ...; dns.stop()

- names are case-insensitive; names not in the zone are NXDOMAIN, except
  names starting with "error.", which get no answer at all (a timeout);
- a name's records of the asked type are answered; an SPF record is also
  served as TXT when the name has no TXT; "TXT: NONE" means the name
  exists with no TXT (and stops that fallback);
- a bare TIMEOUT entry: queries for types with no record there get no
  answer; "TYPE: TIMEOUT": queries for that type get no answer;
- a CNAME is answered with itself and its target's records;
- TXT/SPF values are one record, a list is one record of several strings;
  each string is cut at 255 octets (RFC 1035 3.3.14); UTF-8 and NUL
  octets are kept as they are;
- over UDP, answers over 512 octets are truncated, so the client retries
  over TCP (FakeDNS tcp=True).
"""

from dnslib import (A, AAAA, CNAME, MX, PTR, QTYPE, RCODE, RR, TXT,
                    DNSRecord)

from fakedns import FakeDNS

CNAME_MAX = 8


class ZoneDNS(FakeDNS):
    def __init__(self, port=0, ttl=60):
        super().__init__({}, port=port, ttl=ttl, tcp=True)
        self.zone = {}

    def load(self, zonedata):
        """zonedata: the scenario's mapping name -> list of entries."""
        zone = {}
        for name, entries in (zonedata or {}).items():
            recs = []
            for e in entries or []:
                if e == "TIMEOUT":
                    recs.append(("TIMEOUT", None))
                    continue
                for t, v in e.items():
                    recs.append((t.upper(), v))
            zone[str(name).lower().rstrip(".")] = recs
        with self.lock:
            self.zone = zone
            self.queries = []

    @staticmethod
    def _qname(q):
        # The raw labels: names from macro expansion may hold any octet.
        return b".".join(q.qname.label).decode("latin-1").lower()

    def _records(self, recs, qtype):
        """(values, timeout) for qtype at a name's records."""
        vals = [v for t, v in recs if t == qtype]
        if qtype == "TXT" and not vals:
            vals = [v for t, v in recs if t == "SPF"]
        if any(v == "TIMEOUT" for v in vals):
            return [], True
        vals = [v for v in vals if not (qtype == "TXT" and v == "NONE")]
        if not vals and any(t == "TIMEOUT" for t, _ in recs):
            return [], True
        return vals, False

    def _rdata(self, qtype, v):
        if qtype == "A":
            return A(str(v))
        if qtype == "AAAA":
            return AAAA(str(v))
        if qtype == "MX":
            return MX(str(v[1]), int(v[0]))
        if qtype == "PTR":
            return PTR(str(v))
        if qtype == "CNAME":
            return CNAME(str(v))
        if qtype == "TXT":
            strings = v if isinstance(v, list) else [v]
            parts = []
            for s in strings:
                b = str(s).encode("utf-8")
                parts += [b[i:i + 255] for i in range(0, len(b), 255)] or [b""]
            return TXT(parts)
        return None

    def _answer(self, data):
        req = DNSRecord.parse(data)
        q = req.q
        name = self._qname(q)
        qtype = QTYPE.get(q.qtype, str(q.qtype))
        with self.lock:
            self.queries.append((name, qtype))
            zone = self.zone
        reply = req.reply()
        owner = q.qname
        for _ in range(CNAME_MAX):
            recs = zone.get(name)
            if recs is None:
                if name.startswith("error."):
                    return None
                reply.header.rcode = RCODE.NXDOMAIN
                return self._negative(reply, q)
            cname = [v for t, v in recs if t == "CNAME"]
            if cname and qtype != "CNAME":
                reply.add_answer(RR(owner, QTYPE.CNAME,
                                    rdata=CNAME(str(cname[0])), ttl=self.ttl))
                owner = str(cname[0])
                name = owner.lower().rstrip(".")
                continue
            vals, timeout = self._records(recs, qtype)
            if timeout:
                return None
            for v in vals:
                rdata = self._rdata(qtype, v)
                if rdata is not None:
                    reply.add_answer(RR(owner, q.qtype, rdata=rdata,
                                        ttl=self.ttl))
            break
        if not any(rr.rtype == q.qtype for rr in reply.rr):
            return self._negative(reply, q)
        return reply.pack()
