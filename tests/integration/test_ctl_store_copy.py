"""carteiroctl store copy --to URL (issue 18 item 4).

A SQLite store filled through real SMTP (MX and submission), POP3 and the
store fixture (three users, an alias to two of them, a multi-chunk
message, queued remote mail with DSN options, a message deleted over POP3
so that UIDLs have a gap, an import with the old server's UIDLs) is
copied while carteiro-smtpd and carteiro-pop3d run. carteiro-pop3d on the
copy then shows every UIDL and every message byte for byte as on the
original; carteiroctl verify says the same "ok" on both; the queue
listing is the same; a second copy into the copy is refused.

test_copy_to_postgresql needs a PostgreSQL cluster: CARTEIRO_TEST_PG_URL
(a role that may CREATE DATABASE; scripts/test sets it), else a private
cluster from scripts/pgcluster; without either it fails and says so.
test_copy_to_sqlite_file runs the same checks with a new SQLite file as
the target."""

import atexit
import os
import poplib
import re
import secrets
import shutil
import smtplib
import subprocess
import sqlite3
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

import carteiro_test as ct
import pop3_fixtures as pf

ALICE, BOB, CAROL = ("alice@example.test", "bob@example.test",
                     "carol@example.test")
USERS = (ALICE, BOB, CAROL)
if os.environ.get("CARTEIRO_TEST_BACKEND", "sqlite") != "sqlite":
    # The copy reads a SQLite store: the suite's SQLite run covers it,
    # with CARTEIRO_TEST_PG_URL as the target (meson: exit 77 is SKIP).
    sys.stdout.write("SKIP: store copy reads a SQLite store\n")
    sys.exit(77)

PGCLUSTER = os.path.join(ct.SRC, "scripts", "pgcluster")
MBOX = (b"From old@example.org Thu Dec  3 10:00:00 2026\n"
        b"Subject: old one\n\nfrom the old server\n\n"
        b"From old@example.org Fri Dec  4 10:00:00 2026\n"
        b"Subject: old two\n\nalso old\n\n")


_cluster = []  # the private cluster of this process, started once


def _stop_cluster():
    for d in _cluster:
        subprocess.run([PGCLUSTER, "stop", d], capture_output=True,
                       timeout=120)
        shutil.rmtree(os.path.dirname(d), ignore_errors=True)
    del _cluster[:]


def private_cluster():
    """scripts/pgcluster's cluster for this process (started on first
    use, stopped at exit); its directory."""
    if _cluster:
        return _cluster[0]
    if not os.access(PGCLUSTER, os.X_OK):
        raise AssertionError(
            "no PostgreSQL for this test: set CARTEIRO_TEST_PG_URL (a role "
            "that may CREATE DATABASE) or provide scripts/pgcluster (%s is "
            "missing)" % PGCLUSTER)
    d = tempfile.mkdtemp(prefix="carteiro-pg-")
    os.chmod(d, 0o755)  # the server's user goes inside
    d = os.path.join(d, "c")
    _cluster.append(d)
    atexit.register(_stop_cluster)
    r = subprocess.run([PGCLUSTER, "start", d], capture_output=True,
                       text=True, timeout=180)
    if r.returncode != 0:
        raise AssertionError("scripts/pgcluster start failed (%d): %s" %
                             (r.returncode, r.stderr))
    return d


class PgDatabase:
    """A new, empty PostgreSQL database: on CARTEIRO_TEST_PG_URL, else
    on a private cluster of scripts/pgcluster. url is its postgresql://
    URI (no password: a passfile holds it)."""

    def __init__(self):
        self.name = "carteiro_copy_%s" % secrets.token_hex(6)
        base = os.environ.get("CARTEIRO_TEST_PG_URL", "")
        if not base:
            r = subprocess.run([PGCLUSTER, "uri", private_cluster()],
                               capture_output=True, text=True, timeout=60)
            if r.returncode != 0:
                raise AssertionError("scripts/pgcluster uri failed: %s" %
                                     r.stderr)
            base = r.stdout.strip()
        self.admin = self.as_uri(base)
        self.psql(["-c", 'CREATE DATABASE "%s"' % self.name])
        self.url = self.with_dbname(base, self.name)

    @staticmethod
    def as_uri(url):
        """A keyword string as a postgresql:// URI ([store] url is one
        word)."""
        if url.startswith(("postgresql://", "postgres://")):
            return url
        kv = dict(w.split("=", 1) for w in url.split())
        host = kv.pop("host", "")
        port = kv.pop("port", "")
        user = kv.pop("user", "")
        db = kv.pop("dbname", "")
        return "postgresql://%s%s%s/%s%s" % (
            urllib.parse.quote(user) + "@" if user else "",
            urllib.parse.quote(host), ":" + port if port else "",
            urllib.parse.quote(db),
            "?" + urllib.parse.urlencode(kv) if kv else "")

    @classmethod
    def with_dbname(cls, url, name):
        # By hand: urlunsplit drops the "//" of an empty host
        # ("postgresql:///db?host=/socket/dir").
        u = urllib.parse.urlsplit(cls.as_uri(url))
        return "%s://%s/%s%s" % (u.scheme, u.netloc, name,
                                 "?" + u.query if u.query else "")

    def psql(self, args, url=None):
        r = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1",
                            "-d", url or self.admin] + args,
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise AssertionError("psql %s failed: %s" % (args, r.stderr))
        return r.stdout

    def drop(self):
        # The harness's superuser when it has one (scripts/test): FORCE
        # may then end any session still on the database.
        if self.name is not None:
            self.psql(["-c", 'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' %
                       self.name],
                      os.environ.get("CARTEIRO_TEST_PG_ADMIN_URL"))
        self.name = None


def smtp_send(port, mail_from, rcpts, msg, login=None, mail_opts=(),
              rcpt_opts=None):
    s = smtplib.SMTP("127.0.0.1", port, timeout=60)
    try:
        s.ehlo()
        if login:
            s.login(login, ct.PASSWORD)
        code, text = s.mail(mail_from, list(mail_opts))
        assert code == 250, (code, text)
        for a in rcpts:
            code, text = s.rcpt(a, list((rcpt_opts or {}).get(a, ())))
            assert code == 250, (a, code, text)
        code, text = s.data(msg)
        assert code == 250, (code, text)
    finally:
        s.quit()


def sender(env, stop, acked, errors, tag):
    """Mail to alice and bob over the MX listener until stop is set;
    acked gets (Message-ID, monotonic time after the 250)."""
    n = 0
    while not stop.is_set():
        try:
            s = smtplib.SMTP("127.0.0.1", env.ports["mx"], timeout=30)
            for _ in range(5):
                n += 1
                mid = "<load-%s-%d@example.org>" % (tag, n)
                s.sendmail("load@example.org", [ALICE, BOB],
                           "Subject: load %d\r\nMessage-ID: %s\r\n\r\n"
                           "%s\r\n" % (n, mid, "x" * (n * 997 % 90000)))
                acked.append((mid, time.monotonic()))
            s.quit()
        except (OSError, smtplib.SMTPException) as e:
            errors.append(repr(e))
            time.sleep(0.05)


def deleter(env, stop, errors):
    """bob deletes everything he has, again and again."""
    while not stop.is_set():
        try:
            p = pf.pop3(env, tls="none", user=BOB)
            for i in range(1, len(p.list()[1]) + 1):
                p.dele(i)
            p.quit()
        except Exception as e:  # noqa: BLE001 (reported by the test)
            errors.append(repr(e))
        time.sleep(0.05)


def mailboxes(env):
    """{user: [(uidl, size, message bytes)]} over POP3, every message
    retrieved whole (poplib undoes the dot-stuffing)."""
    out = {}
    for user in USERS:
        p = pf.pop3(env, tls="none", user=user)
        try:
            uidls = [l.decode().split(" ", 1) for l in p.uidl()[1]]
            sizes = dict(l.decode().split(" ", 1) for l in p.list()[1])
            msgs = []
            for num, uidl in uidls:
                lines = p.retr(int(num))[1]
                msgs.append((uidl, int(sizes[num]),
                             b"".join(l + b"\r\n" for l in lines)))
            out[user] = msgs
        finally:
            p.quit()
    return out


def queue_text(env, conf):
    """queue list and queue show of every message, the ages (which tick
    between the two runs) cut out."""
    r = subprocess.run([ct.CTL, "-c", conf, "queue", "list"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    text = re.sub(r"^(\d+) \d+[smhd] ", r"\1 AGE ", r.stdout, flags=re.M)
    for qid in re.findall(r"^(\d+) ", r.stdout, flags=re.M):
        s = subprocess.run([ct.CTL, "-c", conf, "queue", "show", qid],
                           capture_output=True, text=True, timeout=60)
        assert s.returncode == 0, s.stderr
        text += re.sub(r"\(\d+[smhd] ago\)", "(AGE ago)", s.stdout)
    return text


# Rows compared between the original and the copy, beyond what POP3 and
# carteiroctl show.
ROWS_SQL = (
    "SELECT q.id, q.mail_from, q.dsn_ret, q.dsn_envid, r.address, "
    "r.dsn_notify, r.dsn_orcpt, r.status FROM queue q JOIN queue_rcpt r "
    "ON r.queue_id = q.id ORDER BY r.id",
    "SELECT id, address, domain_id, hash, quota, used, enabled, next_uid, "
    "uid_epoch, expire FROM users ORDER BY id",
    "SELECT id, source, dest FROM aliases ORDER BY id",
    "SELECT m.id, m.user_id, m.uidl, m.body_id, m.size, m.arrived, "
    "m.return_path, m.first_retrieved, m.mbox_from FROM mailbox m "
    "ORDER BY m.id",
    "SELECT id, size, refs, created, data_offset FROM bodies ORDER BY id",
    "SELECT user_id, key, uidl, at FROM imported ORDER BY user_id, key",
    "SELECT name, value FROM settings ORDER BY name",
)


def run_sql(where, sql):
    """Run SQL statements on a SQLite file or a PostgreSQL URL."""
    if os.path.isfile(where):
        con = sqlite3.connect(where, timeout=10)
        try:
            con.executescript(sql)
        finally:
            con.close()
        return
    r = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d",
                        where, "-c", sql], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr


# Damage planted in the original and in the copy (PostgreSQL spells a
# bytea literal its own way); verify must word each problem the same.
DAMAGE = (
    "UPDATE users SET used = used + 5 WHERE address = 'bob@example.test';"
    "UPDATE bodies SET refs = refs + 1 WHERE id = 1;"
    "UPDATE mailbox SET uidl = 'bad uidl' WHERE id = 2;"
    "UPDATE users SET next_uid = 2 WHERE address = 'carol@example.test';"
    "UPDATE body_chunks SET data = %s WHERE seq = 1;"
    "INSERT INTO body_chunks (body_id, seq, data) VALUES (999, 0, %s);")


def table_rows(where, sql):
    """The rows of sql as psql -At prints them ('|' between values,
    NULL as empty), from a SQLite file or a PostgreSQL URL."""
    if os.path.isfile(where):
        con = sqlite3.connect(where, timeout=10)
        try:
            rows = con.execute(sql).fetchall()
        finally:
            con.close()
        return "".join("|".join("" if v is None else str(v) for v in row) +
                       "\n" for row in rows)
    r = subprocess.run(["psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                        "-d", where, "-c", sql], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


class StoreCopy(unittest.TestCase):
    def setUp(self):
        self.env = ct.Env(users=USERS)
        self.pg = None

    def tearDown(self):
        try:
            self.env.stop()
        finally:
            if self.pg is not None:
                self.pg.drop()

    def fill(self):
        """Mail in every shape the store has, with the daemons running."""
        env = self.env
        env.ctl_ok("alias", "add", "info@example.test", ALICE + "," + BOB)
        env.ctl_ok("user", "quota", BOB, "50000000")
        env.ctl_ok("dkim", "keygen", "example.test")
        env.start_smtpd()
        pf.start(env)
        for i in range(3):
            smtp_send(env.ports["mx"], "sender@example.org",
                      [ALICE, CAROL],
                      b"From: sender@example.org\r\nSubject: mx %d\r\n\r\n"
                      b"hello %d\r\n.leading dot\r\n" % (i, i))
        smtp_send(env.ports["mx"], "list@example.org", ["info@example.test"],
                  b"Subject: to the alias\r\n\r\nboth get it\r\n")
        big = b"".join(b"line %06d %s\r\n" % (i, b"x" * (i % 90))
                       for i in range(6000))
        self.assertGreater(len(big), 3 * 65536)
        smtp_send(env.ports["mx"], "big@example.org", [ALICE, BOB],
                  b"Subject: big\r\n\r\n" + big)
        # Queued remote mail with DSN options (the relay cannot resolve
        # anything here: it stays queued).
        smtp_send(env.ports["submission"], ALICE,
                  ["far@remote.example", "near@remote.example"],
                  b"From: alice@example.test\r\nSubject: out\r\n\r\nout\r\n",
                  login=ALICE, mail_opts=("RET=HDRS", "ENVID=copy+2Btest"),
                  rcpt_opts={"far@remote.example": (
                      "NOTIFY=SUCCESS,FAILURE",
                      "ORCPT=rfc822;far@remote.example")})
        env.store_fixture("deliver", CAROL, "-",
                          input=b"Subject: fixture\r\n\r\nvia the store\r\n")
        # Alice deletes her second message: a gap in her UIDLs.
        p = pf.pop3(env, tls="none", user=ALICE)
        p.dele(2)
        p.quit()
        src = os.path.join(env.dir, "in.mbox")
        with open(src, "wb") as f:
            f.write(MBOX)
        umap = os.path.join(env.dir, "uidl.map")
        with open(umap, "w") as f:
            f.write("OLD-UIDL-0001 1\nOLD-UIDL-0002 2\n")
        env.ctl_ok("mailbox", "import", BOB, src, "--uidl-map", umap)
        # The relay's first attempt is over before the copy.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and env.query(
                "SELECT count(*) FROM queue WHERE attempts = 0")[0][0]:
            time.sleep(0.1)
        self.assertEqual(env.query("SELECT count(*) FROM queue"), [(1,)])

    def check_copy(self, target_url, target_store):
        """Copy into target_url while the daemons run, then compare
        pop3d, verify and the queue on both. target_store: [store] of a
        config on the copy."""
        env = self.env
        self.fill()
        counts = env.query(
            "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM "
            "mailbox), (SELECT count(*) FROM bodies), (SELECT count(*) "
            "FROM queue)")[0]
        self.assertEqual(counts[0], 3)
        self.assertGreaterEqual(env.query(
            "SELECT count(*) FROM body_chunks")[0][0], 4)
        # Read (and so marked retrieved) before the copy: RETR on the
        # copy then changes nothing either.
        before = mailboxes(env)
        r = env.ctl("store", "copy", "--to", target_url)
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        lines = r.stdout.splitlines()
        self.assertEqual(len(lines), 2, r.stdout)
        self.assertRegex(lines[0], r"^copied %d users, %d messages, %d "
                         r"bodies, %d queued \(\d+ rows\)$" % counts)
        self.assertEqual(lines[1], "DKIM keys are files, not copied: copy "
                         "%s to every node" % os.path.join(env.dir, "dkim"))
        max_id = env.query("SELECT max(id) FROM mailbox")[0][0]
        env.smtpd.stop()
        env.pop3d.stop()
        sqlite_conf = os.path.join(env.dir, "sqlite.conf")
        shutil.copy(env.conf, sqlite_conf)
        sqlite_queue = queue_text(env, sqlite_conf)
        sqlite_verify = env.ctl_ok("verify")
        self.assertIn("far@remote.example", sqlite_queue)
        sqlite_rows = [table_rows(env.db, sql) for sql in ROWS_SQL]
        self.assertIn("|2|copy+2Btest|far@remote.example|6|"
                      "rfc822;far@remote.example|", sqlite_rows[0])

        # The same server on the copy.
        env.sections["store"] = target_store
        env.write_conf()
        pf.start(env)
        after = mailboxes(env)
        for user in USERS:
            self.assertEqual([m[0] for m in after[user]],
                             [m[0] for m in before[user]], user)
            self.assertEqual(after[user], before[user], user)
        self.assertEqual([m[0] for m in before[BOB]][-2:],
                         ["OLD-UIDL-0001", "OLD-UIDL-0002"])
        alice = [int(m[0].split(".")[1]) for m in before[ALICE]]
        self.assertEqual(alice[:2], [1, 3])  # 2 was deleted
        self.assertTrue(any(m[1] > 3 * 65536 for m in before[ALICE]))
        copy_verify = env.ctl_ok("verify")
        norm = re.compile(r"schema \d+")
        self.assertRegex(sqlite_verify, r"^ok: schema \d+, 3 users, %d "
                         r"messages, %d bodies, %d queued\n$" % counts[1:])
        self.assertEqual(norm.sub("schema N", copy_verify),
                         norm.sub("schema N", sqlite_verify))
        self.assertEqual(queue_text(env, env.conf), sqlite_queue)
        self.assertEqual([table_rows(target_url, sql) for sql in ROWS_SQL],
                         sqlite_rows)

        # New mail on the copy gets new ids and UIDLs (on PostgreSQL: the
        # identities were moved past the copied ids).
        env.start_smtpd()
        smtp_send(env.ports["mx"], "late@example.org", [ALICE],
                  b"Subject: after the copy\r\n\r\nnew\r\n")
        now = mailboxes(env)
        self.assertEqual(now[ALICE][:-1], before[ALICE])
        self.assertGreater(int(now[ALICE][-1][0].split(".")[1]),
                           max(alice))
        self.assertEqual(table_rows(target_url, "SELECT count(*) FROM "
                                    "mailbox WHERE id > %d" % max_id),
                         "1\n")
        env.smtpd.stop()

        # A second copy into the copy is refused, and changes nothing.
        r = subprocess.run([ct.CTL, "-c", sqlite_conf, "store", "copy",
                            "--to", target_url], capture_output=True,
                           text=True, timeout=300)
        self.assertEqual((r.returncode, r.stdout, r.stderr), (
            1, "", "carteiroctl: store copy: the target store is not empty "
            "(1 row in domains): copy only into a new, empty store\n"))
        self.assertEqual(mailboxes(env), now)

    def test_copy_under_load(self):
        """A copy taken while mail arrives and bob deletes is one
        consistent state: it verifies, and holds every message acked
        before the copy began."""
        env = self.env
        self.pg = PgDatabase()
        env.start_smtpd()
        pf.start(env)
        stop = threading.Event()
        acked, errors = [], []
        threads = [threading.Thread(target=sender,
                                    args=(env, stop, acked, errors, t))
                   for t in ("a", "b")]
        threads.append(threading.Thread(target=deleter,
                                        args=(env, stop, errors)))
        for t in threads:
            t.start()
        try:
            deadline = time.monotonic() + 60
            while len(acked) < 40 and time.monotonic() < deadline:
                time.sleep(0.05)
            began = time.monotonic()
            r = env.ctl("store", "copy", "--to", self.pg.url)
            ended = time.monotonic()
            n_before = len(acked)
            deadline = time.monotonic() + 60
            while len(acked) < n_before + 10 and \
                    time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            stop.set()
            for t in threads:
                t.join(60)
        self.assertEqual(errors, [])
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        before = set(m for (m, t) in acked if t < began)
        after = set(m for (m, t) in acked if t > ended)
        self.assertGreaterEqual(len(before), 40)
        self.assertGreaterEqual(len(after), 10)
        env.smtpd.stop()
        env.pop3d.stop()
        node = os.path.join(env.dir, "node")
        os.makedirs(node)
        env.sections["store"] = {"backend": "postgresql", "url": self.pg.url,
                                 "path": os.path.join(node, "mail.db")}
        env.write_conf()
        self.assertRegex(env.ctl_ok("verify"), r"^ok: ")
        pf.start(env)
        p = pf.pop3(env, tls="none", user=ALICE)
        ids = set()
        for i in range(1, len(p.list()[1]) + 1):
            for line in p.top(i, 0)[1]:
                if line.startswith(b"Message-ID: "):
                    ids.add(line[12:].decode())
        p.quit()
        self.assertEqual(before - ids, set())
        self.assertEqual(after & ids, set())

    def test_copy_to_postgresql(self):
        self.pg = PgDatabase()
        # [store] path: the node's own state (lock, pid files) beside it.
        node = os.path.join(self.env.dir, "node")
        os.makedirs(node)
        self.check_copy(self.pg.url, {
            "backend": "postgresql", "url": self.pg.url,
            "path": os.path.join(node, "mail.db")})

    def test_verify_same_problems(self):
        """verify words the same damage the same on both backends."""
        env = self.env
        rows = env.store_fixture("deliver", "--count", "3", "--size",
                                 "150000", ",".join(USERS))
        self.assertEqual(len(rows), 3)
        self.pg = PgDatabase()
        r = env.ctl("store", "copy", "--to", self.pg.url)
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        sqlite_conf = os.path.join(env.dir, "sqlite.conf")
        shutil.copy(env.conf, sqlite_conf)
        run_sql(env.db, DAMAGE % ("x'616263'", "x'61'"))
        run_sql(self.pg.url, DAMAGE % ("'\\x616263'::bytea",
                                       "'\\x61'::bytea"))
        node = os.path.join(env.dir, "node")
        os.makedirs(node)
        env.sections["store"] = {"backend": "postgresql", "url": self.pg.url,
                                 "path": os.path.join(node, "mail.db")}
        env.write_conf()
        got = []
        for conf in (sqlite_conf, env.conf):
            got.append(subprocess.run([ct.CTL, "-c", conf, "verify"],
                                      capture_output=True, text=True,
                                      timeout=120))
        a, b = got
        self.assertEqual((a.returncode, a.stderr),
                         (1, "carteiroctl: verify: 9 problems found\n"))
        self.assertEqual((b.returncode, b.stdout, b.stderr),
                         (a.returncode, a.stdout, a.stderr))
        carol = [u for (u,) in env.query(
            "SELECT m.uidl FROM mailbox m JOIN users u ON u.id = m.user_id "
            "WHERE u.address = ? ORDER BY m.id", (CAROL,))]
        self.assertEqual(len(carol), 3)
        # One line per problem, in the checks' order (UNIQUE (user_id,
        # uidl) and the foreign keys keep the other checks from being
        # planted on PostgreSQL).
        self.assertEqual(a.stdout, "".join(l + "\n" for l in (
            "body 1: refs is 4, but 3 mailbox and 0 queue rows use it",
            "orphan chunks: 1 chunk rows of body 999, which does not exist",
            "body 1: 150000 bytes, but its 3 chunks hold 84467 bytes "
            "(last seq 2)",
            "body 2: 150000 bytes, but its 3 chunks hold 84467 bytes "
            "(last seq 2)",
            "body 3: 150000 bytes, but its 3 chunks hold 84467 bytes "
            "(last seq 2)",
            "mailbox bob@example.test: message 2 has an invalid UIDL "
            "(hex 626164207569646C)",
            "mailbox carol@example.test: UIDL %s is not below next_uid 2 "
            "(it would be given again)" % carol[1],
            "mailbox carol@example.test: UIDL %s is not below next_uid 2 "
            "(it would be given again)" % carol[2],
            "user bob@example.test: used is 450005 bytes, but the mailbox "
            "holds 450000")))

    def test_copy_to_sqlite_file(self):
        d = os.path.join(self.env.dir, "copy")
        os.makedirs(d)
        path = os.path.join(d, "mail.db")
        self.check_copy(path, {"path": path})

    def test_password_in_url_refused(self):
        for url in ("postgresql://carteiro:hunter2@127.0.0.1/mail",
                    "host=127.0.0.1 dbname=mail password=hunter2"):
            r = self.env.ctl("store", "copy", "--to", url)
            self.assertEqual((r.returncode, r.stdout, r.stderr), (
                1, "", "carteiroctl: store copy: the PostgreSQL connection "
                "string must not hold a password (use a passfile, "
                "PGPASSFILE or a service file)\n"))


if __name__ == "__main__":
    unittest.main()
