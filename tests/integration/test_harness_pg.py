"""The harness's PostgreSQL side (carteiro_test.TestStore, issue 18 item
5), without daemons: every Env gets a fresh database of its own, written
into [store] as backend/url (path stays), dropped at teardown and at the
latest at exit (also after SIGTERM); env.query and friends translate "?"
placeholders and return rows as sqlite3 does (tuples, bytes for bytea, int
for integral numerics); StoreConn.begin(lock=...) makes writers wait while
readers go on. Only under CARTEIRO_TEST_BACKEND=postgresql (exit 77, SKIP,
otherwise): meson suite integration-pg."""

import os
import re
import signal
import subprocess
import sys
import time
import unittest

import carteiro_test as ct

if ct.BACKEND != "postgresql":
    print("SKIP: the PostgreSQL harness self-test needs "
          "CARTEIRO_TEST_BACKEND=postgresql and CARTEIRO_TEST_PG_URL")
    sys.exit(77)

import psycopg2  # noqa: E402 (after the skip: only the pg suite needs it)


def databases():
    """Names of the databases on the cluster."""
    con = psycopg2.connect(ct.PG_URL)
    try:
        with con.cursor() as cur:
            cur.execute("SELECT datname FROM pg_database")
            return {r[0] for r in cur.fetchall()}
    finally:
        con.close()


class NoCtlEnv(ct.Env):
    """An Env whose carteiroctl calls (init, domain add, user add) are not
    run: the C side's backend is not what this tests."""

    def ctl_ok(self, *args, input=None):
        return ""


class HarnessPgTest(unittest.TestCase):
    def test_env_gets_its_own_database_and_drops_it(self):
        a, b = NoCtlEnv(), NoCtlEnv()
        try:
            self.assertNotEqual(a.store.dbname, b.store.dbname)
            self.assertLessEqual(len(a.store.dbname), 63)
            self.assertTrue({a.store.dbname, b.store.dbname} <= databases())
            # [store] in the written config: backend, url with the dbname,
            # path still the local state's place in the temp dir.
            with open(a.conf) as f:
                text = f.read()
            m = re.search(r"^\[store\]\n((?:[^\[\n][^\n]*\n)*)", text, re.M)
            self.assertIsNotNone(m, text)
            store = dict(l.split(" = ", 1) for l in m.group(1).splitlines())
            self.assertEqual(store["backend"], "postgresql")
            self.assertEqual(store["path"], os.path.join(a.dir, "mail.db"))
            # A URI (postgresql:///<db>?host=...) or a conninfo.
            self.assertTrue(
                re.search(r"(/|dbname=)%s(\?|\s|$)" % a.store.dbname,
                          store["url"]), store["url"])
            self.assertNotIn("password", store["url"])
            # The url reaches that database and no other.
            con = psycopg2.connect(store["url"])
            with con.cursor() as cur:
                cur.execute("SELECT current_database()")
                self.assertEqual(cur.fetchone()[0], a.store.dbname)
            con.close()
            self.assertTrue(a.store.untouched())
        finally:
            names = (a.store.dbname, b.store.dbname)
            a.stop()
            b.stop()
        self.assertEqual(databases() & set(names), set())
        self.assertFalse(os.path.exists(a.dir))

    def test_other_store(self):
        env = NoCtlEnv()
        try:
            conf, st = env.other_store("second")
            self.assertNotEqual(st.dbname, env.store.dbname)
            with open(conf) as f:
                text = f.read()
            self.assertIn("url = %s\n" % st.url, text)
            self.assertIn("path = %s\n" % os.path.join(env.dir, "second",
                                                       "mail.db"), text)
            self.assertIn("[smtpd]\n", text)
        finally:
            env.stop()
        self.assertNotIn(st.dbname, databases())

    def test_query_like_sqlite3(self):
        env = NoCtlEnv()
        try:
            env.execute("CREATE TABLE t (id bigint PRIMARY KEY, name text,"
                        " data bytea, n integer)")
            every_byte = bytes(range(256)) * 3
            env.execute("INSERT INTO t VALUES (?, ?, ?, ?)",
                        (1, "100% 'quoted' ?", every_byte, 7))
            env.execute("INSERT INTO t VALUES (?, ?, ?, ?)",
                        (2, "b\u00fccher", b"", None))
            rows = env.query("SELECT id, name, data, n FROM t WHERE id = ?",
                             (1,))
            self.assertEqual(rows, [(1, "100% 'quoted' ?", every_byte, 7)])
            self.assertIs(type(rows[0]), tuple)
            self.assertIs(type(rows[0][2]), bytes)
            # A "?" and a "%" inside quotes are text, not placeholders.
            self.assertEqual(env.query(
                "SELECT id FROM t WHERE name LIKE '100%' AND name <> '?'"
                " AND id = ?", (1,)), [(1,)])
            self.assertEqual(env.query("SELECT '?', '%'"), [("?", "%")])
            # sum() of bigint is numeric in PostgreSQL: an int here, as in
            # SQLite.
            [(total,)] = env.query("SELECT sum(id) FROM t")
            self.assertEqual((total, type(total)), (3, int))
            self.assertEqual(env.query("SELECT count(*) FROM t WHERE id > ?",
                                       (5,)), [(0,)])
            self.assertEqual(env.query("SELECT n FROM t WHERE id = 2"),
                             [(None,)])
            self.assertEqual(env.query("SELECT data FROM t WHERE id = 2"),
                             [(b"",)])
            # A statement without rows returns [], like fetchall().
            self.assertEqual(env.query("UPDATE t SET n = ? WHERE id = ?",
                                       (8, 2)), [])
            self.assertEqual(env.query("SELECT n FROM t ORDER BY id"),
                             [(7,), (8,)])
            self.assertFalse(env.store.untouched())
        finally:
            env.stop()

    def test_mailbox_bodies(self):
        """Inline and chunked bodies, with and without Return-Path, on
        tables shaped like the store's."""
        env = NoCtlEnv()
        try:
            for sql in (
                    "CREATE TABLE users (id bigint, address text)",
                    "CREATE TABLE mailbox (id bigint, user_id bigint,"
                    " body_id bigint, return_path text)",
                    "CREATE TABLE bodies (id bigint, data bytea,"
                    " data_offset integer)",
                    "CREATE TABLE body_chunks (body_id bigint, seq integer,"
                    " data bytea)"):
                env.execute(sql)
            env.execute("INSERT INTO users VALUES (1, ?)", (ct.USERS[0],))
            env.execute("INSERT INTO mailbox VALUES (2, 1, 10, NULL),"
                        " (1, 1, 11, ?)", ("a@b.test",))
            env.execute("INSERT INTO bodies VALUES (10, ?, 2), (11, NULL, 1)",
                        (b"xxinline\r\n",))
            env.execute("INSERT INTO body_chunks VALUES (11, 1, ?), (11, 0, ?)",
                        (b"\x00\xff two", b"Zone "))
            self.assertEqual(env.mailbox_bodies(ct.USERS[0]), [
                b"Return-Path: <a@b.test>\r\none \x00\xff two",
                b"inline\r\n"])
            self.assertEqual(env.integrity_problems(), [])
        finally:
            env.stop()

    def test_lock_makes_writers_wait_not_readers(self):
        env = NoCtlEnv()
        try:
            env.execute("CREATE TABLE d (name text)")
            con = env.connect()
            con.begin(lock=("d",))
            con.execute("INSERT INTO d VALUES (?)", ("held",))
            other = env.connect()
            # A reader goes on (and does not see the uncommitted row).
            self.assertEqual(other.execute("SELECT count(*) FROM d"), [(0,)])
            other.execute("SET lock_timeout = 300")
            t0 = time.monotonic()
            with self.assertRaises(psycopg2.errors.LockNotAvailable):
                other.execute("INSERT INTO d VALUES ('w')")
            self.assertGreaterEqual(time.monotonic() - t0, 0.25)
            con.commit()
            other.execute("INSERT INTO d VALUES ('w')")
            self.assertEqual(env.query("SELECT name FROM d ORDER BY name"),
                             [("held",), ("w",)])
            other.close()
            con.close()
        finally:
            env.stop()

    def test_dropped_at_exit_when_never_stopped(self):
        """A test that dies without env.stop() (an exception in setUp, an
        assertion, meson's SIGTERM on a timeout) leaves no database."""
        prog = ("import sys, time\n"
                "sys.path.insert(0, %r)\n"
                "import carteiro_test as ct\n"
                "st = ct.TestStore('/nonexistent/mail.db')\n"
                "print(st.dbname, flush=True)\n"
                "if sys.argv[1] == 'raise':\n"
                "    raise RuntimeError('test failed')\n"
                "time.sleep(60)\n" % os.path.dirname(
                    os.path.abspath(ct.__file__)))
        for how in ("raise", "sigterm"):
            p = subprocess.Popen([sys.executable, "-c", prog, how],
                                 stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
            name = p.stdout.readline().strip()
            self.assertTrue(name.startswith("carteiro_t"), (how, name))
            if how == "sigterm":
                self.assertIn(name, databases())
                p.send_signal(signal.SIGTERM)
            _, err = p.communicate(timeout=60)
            self.assertNotEqual(p.returncode, 0, how)
            self.assertNotIn(name, databases(), (how, err))

    def test_pg_sql(self):
        self.assertEqual(ct.pg_sql("SELECT a FROM t WHERE b = ? AND c = ?"),
                         "SELECT a FROM t WHERE b = %s AND c = %s")
        self.assertEqual(ct.pg_sql("SELECT '?', \"?\", 5 % 2, '%' || ?"),
                         "SELECT '?', \"?\", 5 %% 2, '%%' || %s")
        self.assertEqual(ct.pg_sql("SELECT 'it''s ?' = ?"),
                         "SELECT 'it''s ?' = %s")


if __name__ == "__main__":
    ct.main()
