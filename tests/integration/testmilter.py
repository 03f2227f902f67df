"""A test milter written with python3-milter (Debian's pymilter, libmilter
underneath): it does what a keyword in the Subject asks, at end of body,
and writes what it saw (macros per stage, headers, body size) as one JSON
file per message into a directory, named by the queue id macro "i".

    /usr/bin/python3 testmilter.py PORT OUTDIR

Keywords: [reject] [tempfail] [discard] [accept] [quarantine] [addheader]
[insheader] [chgheader] [delheader] [replbody] [addrcpt] [delrcpt]
[chgfrom] [hang] [skip] (after the first body chunk) [addbad] (adds an
unknown local and a remote recipient); several may be combined. A sender containing
"rcptrej" gets bob@example.test refused at RCPT."""

import json
import os
import sys
import time

import Milter

OUT = sys.argv[2] if len(sys.argv) > 2 else "."
MACROS = ("j", "_", "{daemon_name}", "{client_addr}", "{client_name}",
          "{tls_version}", "{cipher}", "{auth_type}", "{auth_authen}", "i",
          "{mail_addr}", "{rcpt_addr}")


class TestMilter(Milter.Base):
    def __init__(self):
        self.seen = {"macros": {}, "headers": [], "rcpts": [], "body": 0}
        self.subject = ""
        self.sender = ""

    def macros(self, stage):
        got = {}
        for m in MACROS:
            v = self.getsymval(m)
            if v is not None:
                got[m] = v
        self.seen["macros"][stage] = got

    def connect(self, hostname, family, hostaddr):
        self.seen["connect"] = [hostname, str(hostaddr)]
        self.macros("connect")
        return Milter.CONTINUE

    def hello(self, helo):
        self.seen["helo"] = helo
        self.macros("helo")
        return Milter.CONTINUE

    def envfrom(self, f, *args):
        self.sender = f
        self.seen["mail"] = f
        self.macros("mail")
        return Milter.CONTINUE

    def envrcpt(self, to, *args):
        self.seen["rcpts"].append(to)
        self.macros("rcpt:" + to)
        if "rcptrej" in self.sender and "bob@" in to:
            self.setreply("550", "5.1.1", "bob is not wanted here")
            return Milter.REJECT
        return Milter.CONTINUE

    def header(self, name, value):
        self.seen["headers"].append([name, value])
        if name.lower() == "subject":
            self.subject = value
        return Milter.CONTINUE

    def eoh(self):
        self.macros("eoh")
        return Milter.CONTINUE

    def body(self, chunk):
        self.seen["body"] += len(chunk)
        self.seen.setdefault("chunks", []).append(len(chunk))
        if "[skip]" in self.subject:
            return Milter.SKIP
        return Milter.CONTINUE

    def eom(self):
        self.macros("eom")
        qid = self.getsymval("i") or "noid"
        with open(os.path.join(OUT, qid + ".json"), "w") as f:
            json.dump(self.seen, f)
        s = self.subject
        if "[hang]" in s:
            time.sleep(120)
        if "[reject]" in s:
            self.setreply("554", "5.7.1", "Rejected by the test milter")
            return Milter.REJECT
        if "[tempfail]" in s:
            self.setreply("451", "4.7.1", "Try again later, says the milter")
            return Milter.TEMPFAIL
        if "[discard]" in s:
            return Milter.DISCARD
        if "[accept]" in s:
            return Milter.ACCEPT
        if "[quarantine]" in s:
            self.quarantine("test reason")
        if "[addheader]" in s:
            self.addheader("X-Test-Milter", "added")
        if "[insheader]" in s:
            self.addheader("X-Inserted", "at the top", 0)
        if "[chgheader]" in s:
            self.chgheader("X-Change-Me", 1, "new value")
        if "[delheader]" in s:
            self.chgheader("X-Remove-Me", 1, "")
        if "[replbody]" in s:
            self.replacebody(b"Replaced body.\r\nSecond line.\r\n")
        if "[addrcpt]" in s:
            self.addrcpt("<bob@example.test>")
        if "[addbad]" in s:
            self.addrcpt("<nobody@example.test>")
            self.addrcpt("<stranger@remote.test>")
        if "[delrcpt]" in s:
            self.delrcpt("<alice@example.test>")
        if "[chgfrom]" in s:
            self.chgfrom("<changed@sender.test>")
        return Milter.CONTINUE


def main():
    port = sys.argv[1]
    Milter.factory = TestMilter
    Milter.set_flags(Milter.ADDHDRS | Milter.CHGHDRS | Milter.CHGBODY |
                     Milter.ADDRCPT | Milter.DELRCPT | Milter.QUARANTINE |
                     Milter.CHGFROM)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    Milter.runmilter("testmilter", "inet:%s@127.0.0.1" % port, 240)


if __name__ == "__main__":
    main()
