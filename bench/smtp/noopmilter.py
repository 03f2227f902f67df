"""A milter that sees everything and changes nothing (python3-milter,
libmilter underneath): bench/smtp/run MILTER=noop measures what a milter
costs carteiro-smtpd. Like a real filter that only decides at the end, it
negotiates "no reply" for every step before end of body (SMFIP_NR_*), so
carteiro streams connect..body without waiting and waits only for the
option negotiation and end of body. NOOP_REPLIES=1 answers every step
instead (a round trip per header: that measures the Python milter).

    /usr/bin/python3 noopmilter.py PORT"""

import os

import sys

import Milter


NR = (lambda f: f) if os.environ.get("NOOP_REPLIES") else Milter.noreply


class Noop(Milter.Base):
    @NR
    def connect(self, hostname, family, hostaddr):
        return Milter.CONTINUE

    @NR
    def envfrom(self, f, *args):
        return Milter.CONTINUE

    @NR
    def envrcpt(self, to, *args):
        return Milter.CONTINUE

    @NR
    def header(self, name, value):
        return Milter.CONTINUE

    @NR
    def eoh(self):
        return Milter.CONTINUE

    @NR
    def body(self, chunk):
        return Milter.CONTINUE

    def eom(self):
        return Milter.CONTINUE


if __name__ == "__main__":
    Milter.factory = Noop
    Milter.runmilter("noop", "inet:%s@127.0.0.1" % sys.argv[1], 240)
