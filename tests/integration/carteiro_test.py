"""Shared harness for carteiro integration tests.

Every test file is one scenario, run as `/usr/bin/python3 test_x.py` by
meson (env CARTEIRO_BUILD = build dir, CARTEIRO_SRC = source root). It uses
unittest; a failing assertion fails the meson test.

    env = Env()                     # temp dir, CA + server cert, config, db
    env.start_smtpd(); env.start_pop3d()
    ...
    env.stop()                      # SIGTERM, exit 0, no sanitizer report

Env() creates domain example.test and users alice@/bob@example.test with
password "secret" (argon2id via carteiroctl). Config overrides:
Env(conf={"smtpd": {"max_recipients": "3"}}).

Mail is created through the store API, never with SQL of the test's own:
env.store_fixture(...) runs tests/tools/store_fixture.c (wrapped by
pop3_fixtures.deliver_many and fakemx.queue_insert). Tests read the store
with SQL (env.query) for their assertions. The fakes are fakedns.py (DNS)
and fakemx.py (remote MX servers); the benches run the same two.

Backends: the suite runs against SQLite (the default) and, as meson suite
integration-pg, against PostgreSQL: CARTEIRO_TEST_BACKEND=postgresql and
CARTEIRO_TEST_PG_URL = a libpq URL or conninfo of a role that may CREATE
DATABASE (scripts/test starts a private cluster with scripts/pgcluster).
Then every Env (every TestStore) gets a fresh database of its own, dropped
at teardown, and [store] says backend = postgresql, url = ... dbname=<it>
([store] path stays: the node's local state, its lock, pid and stats files
are beside it). Tests never open the database themselves: env.query (read),
env.execute (one committed write), env.connect (a transaction held open),
env.schema_version() and env.integrity_problems() work on both, with SQL
that both engines accept and "?" placeholders. A test about SQLite itself
(its file, WAL, page limits) calls sqlite_only(reason) at the top (exit 77,
meson's SKIP, under any other backend); keep those few, and put what is
generic in a file of its own (test_ctl_verify beside test_ctl_backup).
"""

import atexit
import decimal
import os
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse

BUILD = os.environ.get("CARTEIRO_BUILD") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "build")
SRC = os.environ.get("CARTEIRO_SRC") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..")
SMTPD = os.path.join(BUILD, "smtpd", "carteiro-smtpd")
POP3D = os.path.join(BUILD, "pop3d", "carteiro-pop3d")
CTL = os.path.join(BUILD, "tools", "carteiroctl")
STORE_FIXTURE = os.path.join(BUILD, "tests", "store_fixture")

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                     "runtime error:", "WARNING: ThreadSanitizer")

USERS = ("alice@example.test", "bob@example.test")
PASSWORD = "secret"


BACKEND = os.environ.get("CARTEIRO_TEST_BACKEND") or "sqlite"
PG_URL = os.environ.get("CARTEIRO_TEST_PG_URL", "")
BACKENDS = ("sqlite", "postgresql")
if BACKEND not in BACKENDS:
    raise SystemExit("CARTEIRO_TEST_BACKEND=%s: expected one of %s" % (
        BACKEND, ", ".join(BACKENDS)))
if BACKEND == "postgresql" and not PG_URL:
    raise SystemExit("CARTEIRO_TEST_BACKEND=postgresql needs "
                     "CARTEIRO_TEST_PG_URL (a role that may CREATE DATABASE;"
                     " scripts/pgcluster start and url)")


def sqlite_only(reason):
    """Call at the top of a test file that is about SQLite itself: under
    another backend it prints why and exits 77 (meson: SKIP)."""
    if BACKEND != "sqlite":
        sys.stdout.write("SKIP: SQLite-only test under backend %s: %s\n" % (
            BACKEND, reason))
        sys.stdout.flush()
        sys.exit(77)


_ports_handed_out = set()


def free_port(host="127.0.0.1"):
    """A TCP port that was free a moment ago, never the same one twice in
    this process. Chosen below the kernel's ephemeral range (32768-60999
    here), so the source ports of the tests' own client connections can
    never take it before the daemon binds."""
    import random
    for _ in range(200):
        port = random.randint(10000, 32000)
        if port in _ports_handed_out:
            continue
        _ports_handed_out.add(port)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")


def make_certs(d, hostname="mail.example.test", names=()):
    """A throwaway CA and a server cert signed by it, with certtool, for
    hostname, localhost and the other DNS names in names.
    Returns (ca_pem, cert_pem, key_pem)."""
    ca_key, ca_crt = os.path.join(d, "ca.key.pem"), os.path.join(d, "ca.pem")
    key, crt = os.path.join(d, "server.key.pem"), os.path.join(d, "server.pem")
    ca_tmpl = os.path.join(d, "ca.tmpl")
    srv_tmpl = os.path.join(d, "server.tmpl")
    with open(ca_tmpl, "w") as f:
        f.write('cn = "carteiro test CA"\nca\ncert_signing_key\n'
                'expiration_days = 30\n')
    with open(srv_tmpl, "w") as f:
        f.write('cn = "%s"\ndns_name = "%s"\ndns_name = "localhost"\n'
                'ip_address = "127.0.0.1"\n'
                # the fake smarthost of test_relay_smarthost
                'ip_address = "127.0.0.6"\n'
                'tls_www_server\nencryption_key\n'
                'signing_key\nexpiration_days = 30\n' % (hostname, hostname))
        for n in names:
            f.write('dns_name = "%s"\n' % n)
    q = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    subprocess.run(["certtool", "--generate-privkey", "--key-type=ecdsa",
                    "--outfile", ca_key], **q)
    subprocess.run(["certtool", "--generate-self-signed", "--load-privkey",
                    ca_key, "--template", ca_tmpl, "--outfile", ca_crt], **q)
    subprocess.run(["certtool", "--generate-privkey", "--key-type=ecdsa",
                    "--outfile", key], **q)
    subprocess.run(["certtool", "--generate-certificate", "--load-privkey",
                    key, "--load-ca-certificate", ca_crt, "--load-ca-privkey",
                    ca_key, "--template", srv_tmpl, "--outfile", crt], **q)
    os.chmod(key, 0o600)
    os.chmod(ca_key, 0o600)
    return ca_crt, crt, key


class Daemon:
    def __init__(self, name, argv, log_path, ports):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.ports = ports
        self.proc = None

    def start(self, timeout=20):
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv, stdout=self.logf,
                                     stderr=self.logf)
        deadline = time.time() + timeout
        for port in self.ports:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError("%s exited with %d at start:\n%s" % (
                        self.name, self.proc.returncode, self.log()))
                try:
                    socket.create_connection(("127.0.0.1", port), 0.5).close()
                    break
                except OSError:
                    if time.time() > deadline:
                        raise RuntimeError("%s did not listen on %d:\n%s" % (
                            self.name, port, self.log()))
                    time.sleep(0.05)

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Stop; returns the exit status (negative = killed by signal)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError("%s did not exit within %ds after %s" % (
                self.name, timeout, sig))
        self.logf.close()
        return self.proc.returncode

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self.logf.close()


# -- the store under test, on either backend --

def _psycopg2():
    import psycopg2             # python3-psycopg2 (scripts/deps)
    import psycopg2.extensions  # noqa: F401 (make_dsn, parse_dsn)
    return psycopg2


# A quoted string or identifier, a "?" placeholder, or a "%".
_SQL_TOKEN = re.compile(r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|\?|%""")


def pg_sql(sql):
    """sqlite3-style SQL for psycopg2: each "?" placeholder outside quotes
    becomes "%s" and every literal "%" (quoted or not) "%%"."""
    def sub(m):
        t = m.group(0)
        if t == "?":
            return "%s"
        return t.replace("%", "%%")
    return _SQL_TOKEN.sub(sub, sql)


def _pg_value(v):
    """A psycopg2 value as sqlite3 would return it: bytea as bytes (not
    memoryview), an integral numeric (sum(), avg() of bigint) as int."""
    if isinstance(v, memoryview):
        return v.tobytes()
    if isinstance(v, decimal.Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    return v


class StoreConn:
    """One connection to a TestStore, in autocommit mode. execute() runs
    one statement ("?" placeholders) and returns its rows as a list of
    tuples, as sqlite3's fetchall() does ([] for a statement without
    rows); begin()/commit() hold a transaction open across calls."""

    def __init__(self, store, timeout=10):
        self.backend = store.backend
        if self.backend == "sqlite":
            self.con = sqlite3.connect(store.path, timeout=timeout,
                                       isolation_level=None)
        else:
            self.con = _psycopg2().connect(store.url,
                                           connect_timeout=timeout)
            self.con.autocommit = True

    def execute(self, sql, args=()):
        if self.backend == "sqlite":
            return self.con.execute(sql, args).fetchall()
        with self.con.cursor() as cur:
            cur.execute(pg_sql(sql), tuple(args))
            if cur.description is None:
                return []
            return [tuple(_pg_value(v) for v in row)
                    for row in cur.fetchall()]

    def begin(self, lock=()):
        """Open a transaction. lock: tables whose writers must wait until
        commit() while readers go on: SQLite takes the file's one write
        lock (BEGIN IMMEDIATE), PostgreSQL LOCK TABLE ... IN EXCLUSIVE
        MODE."""
        if self.backend == "sqlite":
            self.execute("BEGIN IMMEDIATE" if lock else "BEGIN")
            return
        self.execute("BEGIN")
        if lock:
            self.execute("LOCK TABLE %s IN EXCLUSIVE MODE" % ", ".join(lock))

    def commit(self):
        self.execute("COMMIT")

    def rollback(self):
        self.execute("ROLLBACK")

    def close(self):
        self.con.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# PostgreSQL databases this process created and has not dropped yet: an
# Env that is never stopped (a test that failed in setUp) still has its
# database dropped at exit, also after meson's SIGTERM on a timeout.
_pg_databases = set()


def _pg_admin(sql):
    """One statement on CARTEIRO_TEST_PG_ADMIN_URL (a superuser: DROP
    DATABASE ... WITH (FORCE) must be allowed to end every session on it),
    else on CARTEIRO_TEST_PG_URL itself (CREATE/DROP DATABASE cannot run in
    a transaction)."""
    con = _psycopg2().connect(os.environ.get("CARTEIRO_TEST_PG_ADMIN_URL")
                              or PG_URL, connect_timeout=30)
    try:
        con.autocommit = True
        with con.cursor() as cur:
            cur.execute(sql)
    finally:
        con.close()


def _pg_drop(name):
    # FORCE (PostgreSQL 13): a daemon still connected does not stop it.
    _pg_admin('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)
    _pg_databases.discard(name)


def _pg_drop_all():
    for name in sorted(_pg_databases):
        try:
            _pg_drop(name)
        except Exception as e:  # noqa: BLE001 (at exit: report, go on)
            sys.stderr.write("dropping database %s: %s\n" % (name, e))


def _pg_sigterm(signum, frame):
    raise SystemExit(128 + signum)  # runs _pg_drop_all (atexit)


class TestStore:
    """The store of one test. sqlite: the file at path. postgresql: a
    fresh database of its own on CARTEIRO_TEST_PG_URL (created here,
    dropped by drop(), at the latest when the process exits); path then
    names only the node's local state (lock, pid and stats files beside
    it). section() is the config's [store]."""

    def __init__(self, path):
        self.backend = BACKEND
        self.path = path
        self.dbname = None
        self.url = None
        if self.backend != "postgresql":
            return
        pg = _psycopg2()
        if "password" in pg.extensions.parse_dsn(PG_URL):
            raise RuntimeError("CARTEIRO_TEST_PG_URL has a password: the "
                               "config may not (use PGPASSFILE)")
        if not _pg_databases and \
                signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            atexit.register(_pg_drop_all)
            signal.signal(signal.SIGTERM, _pg_sigterm)
        # Unique across the parallel tests of one run, and short of
        # PostgreSQL's 63 bytes.
        self.dbname = "carteiro_t%d_%s" % (os.getpid(), secrets.token_hex(6))
        # template0 with UTF8: whatever the cluster's default encoding;
        # owned by the test role (it creates the citext extension).
        owner = pg.extensions.parse_dsn(PG_URL).get("user")
        _pg_admin('CREATE DATABASE "%s" TEMPLATE template0 ENCODING '
                  "'UTF8'%s" % (self.dbname, ' OWNER "%s"' % owner
                                if owner else ""))
        _pg_databases.add(self.dbname)
        # A URI when the cluster gave one: [store] url is one token.
        if PG_URL.startswith(("postgresql://", "postgres://")):
            u = urllib.parse.urlsplit(PG_URL)
            self.url = "%s://%s/%s%s" % (u.scheme, u.netloc, self.dbname,
                                         "?" + u.query if u.query else "")
        else:
            self.url = pg.extensions.make_dsn(PG_URL, dbname=self.dbname)

    @property
    def name(self):
        """The store as carteiroctl names it: the SQLite file, the
        PostgreSQL connection string."""
        return self.path if self.backend == "sqlite" else self.url

    def section(self):
        if self.backend == "sqlite":
            return {"path": self.path}
        return {"backend": "postgresql", "url": self.url, "path": self.path}

    def conf_text(self):
        """The [store] section as config text."""
        return "[store]\n" + "".join("%s = %s\n" % kv
                                     for kv in self.section().items())

    def connect(self, timeout=10):
        return StoreConn(self, timeout)

    def query(self, sql, args=()):
        """Rows of one statement, as a list of tuples."""
        with self.connect() as con:
            return con.execute(sql, args)

    def execute(self, sql, args=()):
        """One committed write."""
        with self.connect(timeout=30) as con:
            con.begin()
            con.execute(sql, args)
            con.commit()

    def untouched(self):
        """Nothing has been created in the store: no SQLite file, no table
        in the PostgreSQL database."""
        if self.backend == "sqlite":
            return not os.path.exists(self.path)
        return self.query("SELECT count(*) FROM information_schema.tables"
                          " WHERE table_schema = current_schema()") == [(0,)]

    def create_empty(self):
        """An empty database where the store belongs (schema version 0):
        an empty SQLite file; the PostgreSQL database is one already."""
        if self.backend == "sqlite":
            sqlite3.connect(self.path).close()

    def integrity_problems(self):
        """SQLite: PRAGMA integrity_check's findings ([] when "ok").
        PostgreSQL: [] once the server answers (the server owns its files
        and recovers them from its WAL; there is no file of ours to
        check)."""
        if self.backend == "sqlite":
            rows = self.query("PRAGMA integrity_check")
            return [] if rows == [("ok",)] else [r[0] for r in rows]
        self.query("SELECT 1")
        return []

    def drop(self):
        if self.dbname in _pg_databases:
            _pg_drop(self.dbname)


def write_conf(path, sections):
    """A carteiro.conf from {section: {key: value}}."""
    with open(path, "w") as f:
        for sec, kv in sections.items():
            f.write("[%s]\n" % sec)
            for k, v in kv.items():
                f.write("%s = %s\n" % (k, v))
            f.write("\n")


class Env:
    """A temp dir with certs, a config, an initialised store (a
    TestStore: self.store) and users."""

    def __init__(self, conf=None, users=USERS, domains=("example.test",),
                 hostname="mail.example.test"):
        self.dir = tempfile.mkdtemp(prefix="carteiro-test-")
        self.hostname = hostname
        self.ca, self.cert, self.key = make_certs(self.dir, hostname)
        self.store = TestStore(os.path.join(self.dir, "mail.db"))
        self.other_stores = []
        self.ports = {
            "mx": free_port(), "submission": free_port(),
            "submissions": free_port(), "pop3": free_port(),
            "pop3s": free_port(),
        }
        self.sections = {
            "server": {"hostname": hostname,
                       "postmaster": users[0] if users else "",
                       "log_level": "debug"},
            "store": self.store.section(),
            "tls": {"cert": self.cert, "key": self.key},
            "smtpd": {
                "mx_listen": "127.0.0.1:%d" % self.ports["mx"],
                "submission_listen": "127.0.0.1:%d" % self.ports["submission"],
                "submissions_listen": "127.0.0.1:%d" % self.ports["submissions"],
                # Loopback is exempt from DNSBL/SPF/DKIM/DMARC unless a
                # test asks for the checks (inbound_checks_exempt = "").
                "inbound_checks_exempt": "127.0.0.0/8",
            },
            # No test may reach a real DNS server: by default lookups go
            # to a closed local port and fail at once (tests that need DNS
            # start tests/integration/fakedns.py and point here).
            "relay": {"resolver": "127.0.0.1:%d" % free_port()},
            "pop3d": {
                "listen": "127.0.0.1:%d" % self.ports["pop3"],
                "tls_listen": "127.0.0.1:%d" % self.ports["pop3s"],
            },
        }
        for sec, kv in (conf or {}).items():
            self.sections.setdefault(sec, {}).update(kv)
        self.conf = os.path.join(self.dir, "carteiro.conf")
        self.write_conf()
        self.daemons = []
        self.smtpd = None
        self.pop3d = None
        self.ctl_ok("init")
        for d in domains:
            self.ctl_ok("domain", "add", d)
        for u in users:
            self.ctl_ok("user", "add", u, input=PASSWORD + "\n")

    @property
    def db(self):
        """[store] path: the SQLite file; under PostgreSQL the place of
        the node's local state (lock, pid and stats files beside it)."""
        return self.store.path

    @db.setter
    def db(self, path):
        self.store.path = path

    def write_conf(self):
        write_conf(self.conf, self.sections)

    # -- carteiroctl --
    def ctl(self, *args, input=None):
        return subprocess.run([CTL, "-c", self.conf] + list(args),
                              input=input, capture_output=True, text=True,
                              timeout=120)

    def ctl_ok(self, *args, input=None):
        r = self.ctl(*args, input=input)
        if r.returncode != 0:
            raise RuntimeError("carteiroctl %s failed (%d): %s%s" % (
                " ".join(args), r.returncode, r.stdout, r.stderr))
        return r.stdout

    # -- creating mail (tests/tools/store_fixture.c: the store API) --
    def store_fixture(self, *args, input=b""):
        """Run store_fixture on this store; one dict per created message
        ({"body": 3, "uidl": "..."} or {"queue": 2, "body": 3})."""
        # DB: the SQLite file or the PostgreSQL connection string.
        r = subprocess.run([STORE_FIXTURE, self.store.name] + list(args),
                           input=input, capture_output=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError("store_fixture %s failed (%d): %s" % (
                " ".join(args), r.returncode,
                r.stderr.decode(errors="replace")))
        return [dict(kv.split("=", 1) for kv in line.split())
                for line in r.stdout.decode().splitlines()]

    # -- daemons --
    def repick_ports(self):
        """New ports for every listener still on its harness-chosen
        127.0.0.1 port (after a bind race with another test)."""
        for key, (sec, opt) in {
                "mx": ("smtpd", "mx_listen"),
                "submission": ("smtpd", "submission_listen"),
                "submissions": ("smtpd", "submissions_listen"),
                "pop3": ("pop3d", "listen"),
                "pop3s": ("pop3d", "tls_listen")}.items():
            if self.sections[sec].get(opt) == "127.0.0.1:%d" % self.ports[key]:
                self.ports[key] = free_port()
                self.sections[sec][opt] = "127.0.0.1:%d" % self.ports[key]
        self.write_conf()

    def _start(self, name, binary, log, kinds, extra_args):
        for attempt in range(3):
            ports = [self.ports[k] for k, sec, opt in kinds
                     if self.sections[sec].get(opt)]
            d = Daemon(name, [binary, "-f", "-c", self.conf] + list(extra_args),
                       os.path.join(self.dir, log), ports)
            try:
                d.start()
            except RuntimeError as e:
                if "Address already in use" not in str(e) or attempt == 2:
                    raise
                self.repick_ports()
                continue
            self.daemons.append(d)
            return d

    def start_smtpd(self, extra_args=()):
        self.smtpd = self._start("carteiro-smtpd", SMTPD, "smtpd.log", (
            ("mx", "smtpd", "mx_listen"),
            ("submission", "smtpd", "submission_listen"),
            ("submissions", "smtpd", "submissions_listen")), extra_args)
        return self.smtpd

    def start_pop3d(self, extra_args=()):
        self.pop3d = self._start("carteiro-pop3d", POP3D, "pop3d.log", (
            ("pop3", "pop3d", "listen"),
            ("pop3s", "pop3d", "tls_listen")), extra_args)
        return self.pop3d

    def logs(self):
        return "\n".join("== %s (%s)\n%s" % (d.name, d.log_path, d.log())
                         for d in self.daemons)

    def stop(self, check=True):
        """SIGTERM every daemon; with check, each must exit 0 and no
        sanitizer report may appear in any log."""
        problems = []
        for d in self.daemons:
            if d.proc is None:
                continue
            try:
                rc = d.stop()
            except RuntimeError as e:
                problems.append(str(e))
                continue
            if check and rc != 0 and rc != -9:
                problems.append("%s exited with %s" % (d.name, rc))
        for d in self.daemons:
            text = d.log()
            for m in SANITIZER_MARKERS:
                if m in text:
                    problems.append("%s: sanitizer report in %s" % (
                        d.name, d.log_path))
        if problems and check:
            sys.stderr.write(self.logs()[-20000:] + "\n")
            # The temp dir stays for a look; a database does not.
            self.drop_stores()
            raise AssertionError("; ".join(problems))
        self.cleanup()

    def drop_stores(self):
        if os.environ.get("CARTEIRO_KEEP_TMP"):
            return
        for st in [self.store] + self.other_stores:
            st.drop()

    def cleanup(self):
        if os.environ.get("CARTEIRO_KEEP_TMP"):
            sys.stderr.write("kept %s%s\n" % (self.dir, "".join(
                " and database %s" % st.dbname for st in
                [self.store] + self.other_stores if st.dbname)))
        else:
            self.drop_stores()
            shutil.rmtree(self.dir, ignore_errors=True)

    def other_store(self, name):
        """A second, empty store like this Env's (dropped with it) and a
        config that uses it: (config path, TestStore at
        <dir>/<name>/mail.db; the directory is created, empty)."""
        d = os.path.join(self.dir, name)
        os.makedirs(d, exist_ok=True)
        st = TestStore(os.path.join(d, "mail.db"))
        self.other_stores.append(st)
        sections = dict(self.sections)
        sections["store"] = st.section()
        path = os.path.join(self.dir, name + ".conf")
        write_conf(path, sections)
        return path, st

    # -- store inspection, on either backend ("?" placeholders; rows as
    # lists of tuples, bytes for blobs) --
    def query(self, sql, args=()):
        return self.store.query(sql, args)

    def execute(self, sql, args=()):
        """One committed write (planting a state no daemon would)."""
        self.store.execute(sql, args)

    def connect(self, timeout=10):
        """A StoreConn, to hold a transaction open (begin(lock=...))."""
        return self.store.connect(timeout)

    def schema_version(self):
        """The store's schema version, as carteiroctl init reports it."""
        out = self.ctl_ok("init")
        m = re.search(r"\(schema version (\d+)\)$", out.strip())
        if m is None:
            raise RuntimeError("carteiroctl init said %r" % out)
        return int(m.group(1))

    def integrity_problems(self):
        return self.store.integrity_problems()

    def mailbox_bodies(self, address):
        """Every message of a mailbox as bytes, in arrival order, as RETR
        sends it (store_message_open): "Return-Path: <mailbox.return_path>"
        unless that is NULL, then the body from bodies.data_offset on."""
        con = self.connect()
        try:
            rows = con.execute(
                "SELECT m.body_id, m.return_path FROM mailbox m"
                " JOIN users u ON u.id = m.user_id"
                " WHERE u.address = ? ORDER BY m.id", (address,))
            out = []
            for (bid, rp) in rows:
                head = (b"" if rp is None else
                        b"Return-Path: <" + rp.encode() + b">\r\n")
                # Small bodies are inline in bodies.data (schema 3),
                # larger ones in body_chunks (data NULL).
                (inline, skip) = con.execute(
                    "SELECT data, data_offset FROM bodies WHERE id = ?",
                    (bid,))[0]
                if inline is not None:
                    out.append(head + bytes(inline)[skip:])
                    continue
                chunks = con.execute(
                    "SELECT data FROM body_chunks WHERE body_id = ? ORDER BY seq",
                    (bid,))
                out.append(head + b"".join(c[0] for c in chunks)[skip:])
            return out
        finally:
            con.close()

    # -- TLS for clients --
    def client_ssl_context(self):
        ctx = ssl.create_default_context(cafile=self.ca)
        return ctx

    def log_lines(self, daemon, event):
        """Log lines of a daemon that contain event=<event>."""
        return [l for l in daemon.log().splitlines()
                if ("event=%s " % event) in l + " "]


ADDED_HEADERS = (b"Return-Path:", b"Received:", b"Authentication-Results:",
                 b"X-Carteiro-DMARC:")


def strip_added_headers(msg):
    """The message with the header lines carteiro prepends at delivery
    (Return-Path:, Received:, Authentication-Results:, X-Carteiro-DMARC:)
    removed (leading header block only)."""
    lines = msg.split(b"\r\n")
    i = 0
    while i < len(lines):
        l = lines[i]
        if l.startswith(ADDED_HEADERS):
            i += 1
            while i < len(lines) and lines[i][:1] in (b" ", b"\t"):
                i += 1
            continue
        break
    return b"\r\n".join(lines[i:])


def recv_until(sock, pattern, timeout=10):
    """Read from a socket until the regex pattern (bytes) matches the data
    received so far; returns all of it. Raises on timeout/EOF."""
    sock.settimeout(timeout)
    data = b""
    rx = re.compile(pattern)
    deadline = time.time() + timeout
    while not rx.search(data):
        if time.time() > deadline:
            raise AssertionError("timeout waiting for %r, got %r" % (pattern, data))
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError("EOF waiting for %r, got %r" % (pattern, data))
        data += chunk
    return data


def main():
    unittest.main(verbosity=2)
