"""A private Dovecot POP3 server for the migration tests (issue 14): its
own config, base_dir and log under a test's temp dir, a passwd-file with
one user, mail_location = maildir:<dir>/mail/%n/Maildir. It is how
bench/pop3/run starts Dovecot; Debian package dovecot-pop3d
(scripts/deps)."""

import os
import poplib
import shutil
import socket
import subprocess
import time

import carteiro_test as ct

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
DOVEADM = shutil.which("doveadm") or "/usr/bin/doveadm"


def available():
    return os.path.exists(DOVECOT) and os.path.exists(DOVEADM)


class Dovecot:
    def __init__(self, workdir, user="alice", extra=""):
        self.dir = os.path.join(workdir, "dovecot")
        self.user = user
        self.maildir = os.path.join(self.dir, "mail", user, "Maildir")
        for d in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(self.maildir, d), exist_ok=True)
        os.makedirs(os.path.join(self.dir, "run"), exist_ok=True)
        os.makedirs(os.path.join(self.dir, "state"), exist_ok=True)
        self.port = ct.free_port()
        self.extra = extra
        self.conf = os.path.join(self.dir, "dovecot.conf")
        self.running = False

    def start(self):
        pw = subprocess.run([DOVEADM, "pw", "-s", "SHA512-CRYPT", "-p",
                             ct.PASSWORD], capture_output=True, text=True,
                            check=True).stdout.strip()
        with open(os.path.join(self.dir, "passwd"), "w") as f:
            f.write("%s:%s\n" % (self.user, pw))
        subprocess.run(["chown", "-R", "nobody:nogroup",
                        os.path.join(self.dir, "mail")], check=True)
        # The mail user (nobody) must reach its Maildir.
        d = self.dir
        while d != "/" and not os.path.basename(d).startswith(
                "carteiro-test-"):
            d = os.path.dirname(d)
        for x in (d, self.dir):
            os.chmod(x, 0o755)
        with open(self.conf, "w") as f:
            f.write("""protocols = pop3
listen = 127.0.0.1
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
first_valid_uid = 1
mail_location = maildir:{d}/mail/%n/Maildir
passdb {{
  driver = passwd-file
  args = scheme=SHA512-CRYPT {d}/passwd
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={d}/mail/%n
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
{extra}
""".format(d=self.dir, port=self.port, extra=self.extra))
        subprocess.run([DOVECOT, "-c", self.conf], check=True)
        self.running = True
        deadline = time.time() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                return
            except OSError:
                if time.time() > deadline:
                    raise RuntimeError("dovecot did not start: " +
                                       self.log())
                time.sleep(0.1)

    def log(self):
        try:
            return open(os.path.join(self.dir, "dovecot.log")).read()
        except OSError:
            return ""

    def stop(self):
        if self.running:
            subprocess.run([DOVECOT, "-c", self.conf, "stop"],
                           capture_output=True)
            self.running = False
            # dovecot stop returns before the master has gone
            pidf = os.path.join(self.dir, "run", "master.pid")
            deadline = time.time() + 10
            while os.path.exists(pidf) and time.time() < deadline:
                time.sleep(0.05)

    def pop3(self):
        p = poplib.POP3("127.0.0.1", self.port, timeout=20)
        p.user(self.user)
        p.pass_(ct.PASSWORD)
        return p
