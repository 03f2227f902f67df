"""Several front-ends on one store (issue 18 item 3) for the multi-node
tests: a second node's config on the Env's database, and the backend.

The backend is PostgreSQL when CARTEIRO_TEST_PG_URL holds a libpq
connection string of a test cluster (scripts/test sets it; by hand:
scripts/pgcluster start DIR, then CARTEIRO_TEST_PG_URL="$(scripts/pgcluster
url DIR)"): each Env then gets a fresh database of its own on that cluster,
dropped at the end. Without it the nodes share one SQLite file (the
daemons' lock on it is shared), which is what the tests that make sense on
one machine run against."""

import copy
import os
import re
import secrets
import subprocess

import carteiro_test as ct

PG_URL = os.environ.get("CARTEIRO_TEST_PG_URL") or None
NEED_PG = ("this test needs PostgreSQL: set CARTEIRO_TEST_PG_URL to a test "
           "cluster's conninfo (scripts/test does; by hand: scripts/pgcluster "
           "start DIR; export CARTEIRO_TEST_PG_URL=\"$(scripts/pgcluster url "
           "DIR)\")")


def backend():
    return "postgresql" if PG_URL else "sqlite"


def psql(url, sql):
    """Rows of one SQL statement (lists of text) run by psql on url."""
    r = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-F", "|", "-v",
                        "ON_ERROR_STOP=1", "-d", url, "-c", sql],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("psql %r: %s" % (sql, r.stderr.strip()))
    return [l.split("|") for l in r.stdout.splitlines() if l != ""]


def _with_dbname(url, name):
    if url.startswith(("postgresql://", "postgres://")):
        base, _, query = url.partition("?")
        m = re.match(r"^(postgres(?:ql)?://[^/]*)(/[^?]*)?$", base)
        return m.group(1) + "/" + name + ("?" + query if query else "")
    if re.search(r"(^|\s)dbname=\S+", url):
        return re.sub(r"(^|\s)dbname=\S+", r"\1dbname=" + name, url)
    return url + " dbname=" + name


def store_conf(conf=None):
    """conf (a dict of sections for ct.Env) with [store] pointing at a
    fresh PostgreSQL database when the backend is PostgreSQL; the URL is
    in the returned dict's ["store"]["url"] (drop_store drops it)."""
    conf = copy.deepcopy(conf or {})
    if PG_URL:
        name = "carteiro_mn_%d_%s" % (os.getpid(), secrets.token_hex(4))
        psql(PG_URL, "CREATE DATABASE %s" % name)
        conf.setdefault("store", {}).update({
            "backend": "postgresql", "url": _with_dbname(PG_URL, name)})
    return conf


def drop_store(env):
    """After env.stop(): drop the test's PostgreSQL database."""
    url = env.sections.get("store", {}).get("url")
    if PG_URL and url:
        name = re.search(r"carteiro_mn_\w+", url).group(0)
        psql(PG_URL, "DROP DATABASE IF EXISTS %s WITH (FORCE)" % name)


def query(env, sql):
    """Rows of a read-only query on env's store, as tuples of text
    (PostgreSQL) or SQLite's values."""
    url = env.sections.get("store", {}).get("url")
    if url:
        return [tuple(r) for r in psql(url, sql)]
    return env.query(sql)


class Node:
    """Another front-end on env's store: the same config with its own
    listening ports (on PostgreSQL also its own [store] path, the node's
    local state), started with env's binaries and stopped by env.stop()."""

    LISTEN = {"mx": ("smtpd", "mx_listen"),
              "submission": ("smtpd", "submission_listen"),
              "submissions": ("smtpd", "submissions_listen"),
              "pop3": ("pop3d", "listen"),
              "pop3s": ("pop3d", "tls_listen")}

    def __init__(self, env, name):
        self.env = env
        self.name = name
        self.dir = os.path.join(env.dir, name)
        os.mkdir(self.dir)
        self.sections = copy.deepcopy(env.sections)
        self.ports = {}
        for key, (sec, opt) in self.LISTEN.items():
            if self.sections[sec].get(opt):
                self.ports[key] = ct.free_port()
                self.sections[sec][opt] = "127.0.0.1:%d" % self.ports[key]
        if PG_URL:
            self.sections["store"]["path"] = os.path.join(self.dir,
                                                          "mail.db")
        self.conf = os.path.join(self.dir, "carteiro.conf")
        with open(self.conf, "w") as f:
            for sec, kv in self.sections.items():
                f.write("[%s]\n" % sec)
                for k, v in kv.items():
                    f.write("%s = %s\n" % (k, v))
                f.write("\n")
        self.smtpd = None
        self.pop3d = None

    def _daemon(self, name, binary, kinds):
        ports = [self.ports[k] for k in kinds if k in self.ports]
        return ct.Daemon("%s (%s)" % (name, self.name),
                         [binary, "-f", "-c", self.conf],
                         os.path.join(self.dir, name + ".log"), ports)

    def smtpd_daemon(self):
        return self._daemon("carteiro-smtpd", ct.SMTPD,
                            ("mx", "submission", "submissions"))

    def start_smtpd(self):
        self.smtpd = self.smtpd_daemon()
        self.smtpd.start()
        self.env.daemons.append(self.smtpd)
        return self.smtpd

    def start_pop3d(self):
        self.pop3d = self._daemon("carteiro-pop3d", ct.POP3D,
                                  ("pop3", "pop3s"))
        self.pop3d.start()
        self.env.daemons.append(self.pop3d)
        return self.pop3d


def locator(env):
    """What store_open takes for env's store (tests/tools/store_fixture's
    DB argument): the SQLite path, or "postgresql:<conninfo>"."""
    url = env.sections.get("store", {}).get("url")
    if not url:
        return env.db
    return url if url.startswith(("postgresql://", "postgres://")) else (
        "postgresql:" + url)


def store_fixture(env, *args, input=b""):
    """ct.Env.store_fixture on either backend."""
    r = subprocess.run([ct.STORE_FIXTURE, locator(env)] + list(args),
                       input=input, capture_output=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError("store_fixture %s failed (%d): %s" % (
            " ".join(args), r.returncode, r.stderr.decode(errors="replace")))
    return [dict(kv.split("=", 1) for kv in line.split())
            for line in r.stdout.decode().splitlines()]
