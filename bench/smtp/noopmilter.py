"""A milter that looks at everything and changes nothing (python3-milter,
libmilter underneath): bench/smtp/run MILTER=noop measures what the milter
round trips cost carteiro-smtpd.

    /usr/bin/python3 noopmilter.py PORT"""

import sys

import Milter


class Noop(Milter.Base):
    def connect(self, hostname, family, hostaddr):
        return Milter.CONTINUE

    def envfrom(self, f, *args):
        return Milter.CONTINUE

    def envrcpt(self, to, *args):
        return Milter.CONTINUE

    def header(self, name, value):
        return Milter.CONTINUE

    def eoh(self):
        return Milter.CONTINUE

    def body(self, chunk):
        return Milter.CONTINUE

    def eom(self):
        return Milter.CONTINUE


if __name__ == "__main__":
    Milter.factory = Noop
    Milter.runmilter("noop", "inet:%s@127.0.0.1" % sys.argv[1], 240)
