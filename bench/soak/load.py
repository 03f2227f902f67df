"""The load of bench/soak: SMTP senders on the three listeners, POP3
readers that retrieve and delete, and the ledger that records what each
side was told.

What counts as a promise:
  - an SMTP recipient is acknowledged when RCPT got 2xx and the DATA that
    followed got 250 (its message id and the recipient go in the ledger);
  - a POP3 delete is confirmed when DELE got +OK and the session's QUIT
    got +OK; a QUIT sent without an answer (a kill in between) makes the
    deletes uncertain: the message may be there or not.
Every message carries its id in Message-ID and Subject, and a hash of its
body (X-Soak-Sum) that whoever receives it checks.
"""

import hashlib
import poplib
import random
import re
import smtplib
import threading
import time

MSGID_RE = re.compile(rb"^Message-ID:[ \t]*<([^>]+)>", re.I | re.M)
SUM_RE = re.compile(rb"^X-Soak-Sum:[ \t]*([0-9a-f]+)", re.I | re.M)


def parse(data):
    """(message id, body intact?) of a message as received; id None when
    it is not one of ours (a DSN, say)."""
    head, sep, body = data.partition(b"\r\n\r\n")
    m = MSGID_RE.search(head)
    if not m or not m.group(1).startswith(b"soak-"):
        return None, True
    s = SUM_RE.search(head)
    ok = bool(s) and hashlib.sha256(body).hexdigest()[:32] == s.group(1).decode()
    return m.group(1).decode(), ok


class Ledger:
    """Everything the clients and the fake MXes were told, under one
    lock. Times are time.monotonic()."""

    def __init__(self, run):
        self.run = run
        self.lock = threading.Lock()
        self.seq = 0
        self.attempted = {}         # id -> (listener, rcpts)
        self.acked = {}             # id -> [rcpts acknowledged]
        self.cut = set()            # ids whose sender hung up mid-data
        self.smtp = {"sessions": 0, "session_errors": 0, "connect_errors": 0,
                     "rcpt_refused": 0, "data_refused": 0, "lost_at_data": 0,
                     "bdat": 0}
        self.smtp_errors = {}       # exception name -> count
        # POP3, keyed (user, id)
        self.deleted = {}           # -> monotonic time of the QUIT +OK
        self.uncertain = set()      # QUIT sent, no answer
        self.seen_live = set()      # seen by some session
        self.resurrected_live = []  # (user, id) seen after a confirmed delete
        self.pop = {"sessions": 0, "session_errors": 0, "retr": 0,
                    "retr_corrupt": 0, "dele": 0, "quit_ok": 0,
                    "quit_lost": 0, "quit_err": 0, "no_quit": 0,
                    "cmd_err": 0}
        self.pop_errors = {}
        # fake MXes: (time, rcpt, id, intact)
        self.deliveries = []
        self.kills = {"smtpd": [], "pop3d": []}
        self.crashes = []           # (daemon, returncode)
        self.samples = {}           # exception name -> first messages

    def next_id(self):
        with self.lock:
            self.seq += 1
            return "soak-%s-%d@soak.test" % (self.run, self.seq), self.seq

    def error(self, table, e):
        name = type(e).__name__
        with self.lock:
            table[name] = table.get(name, 0) + 1
            samples = self.samples.setdefault(name, [])
            if len(samples) < 3:
                samples.append(str(e)[:120])

    def delivered(self, mail_from, rcpts, data):
        """fakemx.RecordSink's on_message."""
        mid, ok = parse(data)
        now = time.monotonic()
        with self.lock:
            for r in rcpts:
                self.deliveries.append((now, r.lower(), mid, ok))


def make_message(ledger, rng, mail_from, rcpts):
    """(id, bytes): a message of 1-6 KB, one in 20 of 60-250 KB, with some
    lines that start with a dot."""
    mid, n = ledger.next_id()
    size = rng.randint(60000, 250000) if rng.random() < 0.05 else \
        rng.randint(1000, 6000)
    lines, total = [], 0
    i = 0
    while total < size:
        word = rng.choice(("alpha", "beta", "gamma", ".dot", "..two", "delta"))
        l = ("%s %s line %d " % (word, mid, i) +
             "x" * rng.randint(0, 70)).encode() + b"\r\n"
        if rng.random() < 0.02:
            l = b".\r\n"      # a lone dot inside the body
        lines.append(l)
        total += len(l)
        i += 1
    body = b"".join(lines)
    head = ("From: <%s>\r\nTo: %s\r\nSubject: soak %d\r\n"
            "Message-ID: <%s>\r\nDate: Thu, 03 Dec 2026 12:00:00 +0000\r\n"
            "X-Soak-Sum: %s\r\n\r\n" % (
                mail_from, ", ".join("<%s>" % r for r in rcpts), n, mid,
                hashlib.sha256(body).hexdigest()[:32])).encode()
    return mid, head + body


class Sender(threading.Thread):
    """Sessions on one listener ("mx", "submission" with STARTTLS+AUTH, or
    "submissions", implicit TLS + AUTH), 1-3 messages each, until stop."""

    def __init__(self, env, ledger, listener, stop, seed, pause,
                 local, remote, senders):
        super().__init__(daemon=True, name="smtp-%s" % listener)
        self.env, self.ledger, self.listener = env, ledger, listener
        self.stop, self.rng, self.pause = stop, random.Random(seed), pause
        self.local, self.remote, self.senders = local, remote, senders

    def run(self):
        while not self.stop.is_set():
            try:
                self.session()
            except Exception as e:      # noqa: BLE001 (recorded, go on)
                self.ledger.error(self.ledger.smtp_errors, e)
            self.stop.wait(self.rng.uniform(0, self.pause))

    def connect(self):
        port = self.env.ports[self.listener]
        ctx = self.env.client_ssl_context()
        if self.listener == "submissions":
            s = smtplib.SMTP_SSL("127.0.0.1", port, timeout=120, context=ctx)
        else:
            s = smtplib.SMTP("127.0.0.1", port, timeout=120)
        s.ehlo("client.soak.test")
        if self.listener == "submission":
            s.starttls(context=ctx)
            s.ehlo("client.soak.test")
        return s

    def session(self):
        L = self.ledger
        rng = self.rng
        try:
            s = self.connect()
            if self.listener != "mx":
                user = rng.choice(self.senders)
                s.login(user, "secret")
        except (OSError, smtplib.SMTPException) as e:
            with L.lock:
                L.smtp["connect_errors"] += 1
            L.error(L.smtp_errors, e)
            return
        with L.lock:
            L.smtp["sessions"] += 1
        try:
            for _ in range(rng.choice((1, 1, 1, 2, 3))):
                if self.stop.is_set():
                    break
                if self.listener == "mx":
                    mail_from = "sender%d@ext.soak" % rng.randint(1, 9)
                    rcpts = rng.sample(self.local, rng.choice((1, 1, 2)))
                else:
                    mail_from = user
                    pool = self.local + self.remote * 2
                    rcpts = list(dict.fromkeys(
                        rng.choice(pool) for _ in range(rng.choice((1, 1, 2)))))
                if self.transaction(s, mail_from, rcpts) == "cut":
                    return
            s.quit()
        except (OSError, smtplib.SMTPException) as e:
            with L.lock:
                L.smtp["session_errors"] += 1
            L.error(L.smtp_errors, e)
        finally:
            s.close()

    def transaction(self, s, mail_from, rcpts):
        L = self.ledger
        mid, data = make_message(L, self.rng, mail_from, rcpts)
        with L.lock:
            L.attempted[mid] = (self.listener, list(rcpts), mail_from)
        cut = self.rng.random() < 0.04
        if self.rng.random() < 0.3:
            return self.transaction_bdat(s, mid, mail_from, rcpts, data, cut)
        code, msg = s.mail(mail_from)
        if code != 250:
            raise smtplib.SMTPSenderRefused(code, msg, mail_from)
        ok = []
        for r in rcpts:
            code, msg = s.rcpt(r)
            if code in (250, 251):
                ok.append(r.lower())
            else:
                with L.lock:
                    L.smtp["rcpt_refused"] += 1
        if not ok:
            s.rset()
            return
        if cut:
            # hang up in the middle of the data: nothing may be stored
            code, msg = s.docmd("DATA")
            if code != 354:
                raise smtplib.SMTPDataError(code, msg)
            stuffed = re.sub(rb"(?m)^\.", b"..", data)
            s.send(stuffed[:self.rng.randint(0, len(stuffed) - 1)])
            return self.hang_up(s, mid)
        try:
            code, msg = s.data(data)
        except smtplib.SMTPDataError as e:
            with L.lock:
                L.smtp["data_refused"] += 1
            L.error(L.smtp_errors, e)
            s.rset()
            return
        except (OSError, smtplib.SMTPException):
            with L.lock:
                L.smtp["lost_at_data"] += 1
            raise
        if code == 250:
            with L.lock:
                L.acked[mid] = ok

    def hang_up(self, s, mid):
        with self.ledger.lock:
            self.ledger.cut.add(mid)
        s.close()
        return "cut"

    def transaction_bdat(self, s, mid, mail_from, rcpts, data, cut):
        """MAIL and the RCPTs pipelined, then the message in 1-4 BDAT
        chunks (RFC 3030), pipelined too; acknowledged by the 250 to
        BDAT LAST."""
        L = self.ledger
        with L.lock:
            L.smtp["bdat"] += 1
        s.send(("MAIL FROM:<%s>\r\n" % mail_from).encode() +
               b"".join(b"RCPT TO:<%s>\r\n" % r.encode() for r in rcpts))
        code, msg = s.getreply()
        if code != 250:
            raise smtplib.SMTPSenderRefused(code, msg, mail_from)
        ok = []
        for r in rcpts:
            code, msg = s.getreply()
            if code in (250, 251):
                ok.append(r.lower())
            else:
                with L.lock:
                    L.smtp["rcpt_refused"] += 1
        if not ok:
            s.rset()
            return
        k = self.rng.randint(1, 4)
        cuts = sorted(self.rng.sample(range(1, len(data)), k - 1))
        parts = [data[a:b] for a, b in zip([0] + cuts, cuts + [len(data)])]
        if cut:
            # every chunk but LAST, the last one only in part
            for part in parts[:-1]:
                s.send(b"BDAT %d\r\n" % len(part) + part)
            last = parts[-1]
            s.send(b"BDAT %d LAST\r\n" % len(last) +
                   last[:self.rng.randint(0, len(last) - 1)])
            return self.hang_up(s, mid)
        try:
            for i, part in enumerate(parts):
                s.send(b"BDAT %d%s\r\n" % (
                    len(part), b" LAST" if i == len(parts) - 1 else b"") + part)
            codes = [s.getreply()[0] for _ in parts]
        except (OSError, smtplib.SMTPException):
            with L.lock:
                L.smtp["lost_at_data"] += 1
            raise
        if codes == [250] * len(parts):
            with L.lock:
                L.acked[mid] = ok
        else:
            with L.lock:
                L.smtp["data_refused"] += 1
            L.error(L.smtp_errors, smtplib.SMTPDataError(
                codes[-1], "BDAT replies %s" % codes))
            s.rset()


class Reader(threading.Thread):
    """POP3 sessions of one user until stop: log in (plain with STLS,
    implicit TLS, or plain on loopback), UIDL, TOP 0 of each message not
    seen before (to learn its id), RETR a few (body checked), DELE most of
    ours, then QUIT (one session in ten hangs up without it)."""

    def __init__(self, env, ledger, user, stop, seed, pause, name=None):
        super().__init__(daemon=True, name=name or "pop3-%s" % user)
        self.env, self.ledger, self.user = env, ledger, user
        self.stop, self.rng, self.pause = stop, random.Random(seed), pause
        self.ids = {}       # uidl -> message id (UIDLs are never reused)

    def run(self):
        while not self.stop.is_set():
            try:
                self.session()
            except Exception as e:      # noqa: BLE001
                self.ledger.error(self.ledger.pop_errors, e)
            self.stop.wait(self.rng.uniform(0.2, self.pause))

    def connect(self):
        ctx = self.env.client_ssl_context()
        how = self.rng.choice(("stls", "pop3s", "plain"))
        if how == "pop3s":
            return poplib.POP3_SSL("127.0.0.1", self.env.ports["pop3s"],
                                   context=ctx, timeout=60)
        p = poplib.POP3("127.0.0.1", self.env.ports["pop3"], timeout=60)
        if how == "stls":
            p.stls(context=ctx)
        return p

    def cmd(self, f, *args):
        """f(*args), or None when the server answered -ERR (another
        session of the same user deleted the message meanwhile)."""
        try:
            return f(*args)
        except poplib.error_proto as e:
            if str(e) == "-ERR EOF":
                raise
            with self.ledger.lock:
                self.ledger.pop["cmd_err"] += 1
                s = self.ledger.samples.setdefault("pop3 -ERR", [])
                if len(s) < 3:
                    s.append("%s %s: %s" % (self.user, f.__name__,
                                            str(e)[:100]))
            return None

    def session(self):
        L, rng, user = self.ledger, self.rng, self.user
        dele = []
        quit_sent = False
        try:
            p = self.connect()
        except (OSError, poplib.error_proto) as e:
            with L.lock:
                L.pop["session_errors"] += 1
            L.error(L.pop_errors, e)
            return
        try:
            p.user(user)
            t_login = time.monotonic()
            p.pass_("secret")
            with L.lock:
                L.pop["sessions"] += 1
            listing = []
            for line in p.uidl()[1]:
                num, uidl = line.decode().split()
                listing.append((int(num), uidl))
            for num, uidl in listing:
                if uidl not in self.ids:
                    top = self.cmd(p.top, num, 0)
                    if top is None:
                        continue
                    self.ids[uidl] = parse(b"\r\n".join(top[1]) +
                                           b"\r\n")[0]
                mid = self.ids[uidl]
                if mid is None:
                    continue
                key = (user, mid)
                with L.lock:
                    L.seen_live.add(key)
                    t = L.deleted.get(key)
                    if t is not None and t < t_login:
                        L.resurrected_live.append(key)
            ours = [(n, u) for n, u in listing
                    if self.ids.get(u) is not None]
            for num, uidl in rng.sample(ours, min(len(ours), 4)):
                r = self.cmd(p.retr, num)
                if r is None:
                    continue
                mid, ok = parse(b"\r\n".join(r[1]) + b"\r\n")
                with L.lock:
                    L.pop["retr"] += 1
                    if not ok or mid != self.ids[uidl]:
                        L.pop["retr_corrupt"] += 1
            for num, uidl in ours:
                if rng.random() < 0.7 and self.cmd(p.dele, num) is not None:
                    dele.append((user, self.ids[uidl]))
            with L.lock:
                L.pop["dele"] += len(dele)
            if rng.random() < 0.1:
                with L.lock:
                    L.pop["no_quit"] += 1
                return
            quit_sent = True
            p.quit()
            now = time.monotonic()
            with L.lock:
                L.pop["quit_ok"] += 1
                for k in dele:
                    L.deleted.setdefault(k, now)
        except poplib.error_proto as e:
            # poplib reports a connection closed mid-reply as "-ERR EOF"
            eof = str(e) == "-ERR EOF"
            with L.lock:
                if quit_sent and eof:
                    L.pop["quit_lost"] += 1
                    L.uncertain.update(dele)
                elif quit_sent:
                    L.pop["quit_err"] += 1
                    L.uncertain.update(dele)
                else:
                    L.pop["session_errors"] += 1
            L.error(L.pop_errors, e)
        except (OSError, EOFError) as e:
            with L.lock:
                if quit_sent:
                    L.pop["quit_lost"] += 1
                    L.uncertain.update(dele)
                else:
                    L.pop["session_errors"] += 1
            L.error(L.pop_errors, e)
        finally:
            try:
                p.close()
            except OSError:
                pass
