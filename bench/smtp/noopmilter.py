"""A milter that changes nothing (python3-milter, libmilter underneath):
bench/smtp/run MILTER=noop measures what a milter costs carteiro-smtpd.

NOOP_MODE picks how much it looks at:
  skip     (default) only end of body: it negotiates away every other
           step (SMFIP_NO*), as a filter that needs nothing else does;
  noreply  every step, none answered (SMFIP_NR_*): carteiro streams
           connect..body and waits only for end of body;
  replies  every step answered: a round trip per header (mostly measures
           the Python milter).

    /usr/bin/python3 noopmilter.py PORT"""

import os
import sys

import Milter

MODE = os.environ.get("NOOP_MODE", "skip")


def step(f):
    return Milter.noreply(f) if MODE == "noreply" else f


class Noop(Milter.Base):
    def eom(self):
        return Milter.CONTINUE


class NoopAll(Noop):
    @step
    def connect(self, hostname, family, hostaddr):
        return Milter.CONTINUE

    @step
    def envfrom(self, f, *args):
        return Milter.CONTINUE

    @step
    def envrcpt(self, to, *args):
        return Milter.CONTINUE

    @step
    def header(self, name, value):
        return Milter.CONTINUE

    @step
    def eoh(self):
        return Milter.CONTINUE

    @step
    def body(self, chunk):
        return Milter.CONTINUE


if __name__ == "__main__":
    Milter.factory = Noop if MODE == "skip" else NoopAll
    Milter.runmilter("noop", "inet:%s@127.0.0.1" % sys.argv[1], 240)
