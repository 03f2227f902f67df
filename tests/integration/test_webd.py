"""carteiro-webd: Thunderbird autoconfig on both paths for every local
domain (byte-exact body, and each server entry checked against the config's
listeners), Outlook Autodiscover, the MTA-STS policy (RFC 8461, byte-exact)
on HTTP and on HTTPS with the test certificate, the 4xx answers to bad
input (405 with Allow, 400 for "..", 404, 413, 414, 431), many connections
(the per-address limit leaves other addresses served), a slow client cut
after the idle timeout, SIGHUP loading a new certificate, -t, and that the
daemon answers after all of it. A client that trickles bytes is cut
at the whole-connection deadline (twice the idle timeout)."""

import http.client
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import unittest
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET

import carteiro_test as ct

WEBD = os.path.join(ct.BUILD, "webd", "carteiro-webd")
TIMEOUT_S = 3           # CARTEIRO_TEST_HTTP_TIMEOUT: the idle timeout
AD_REQ = ("http://schemas.microsoft.com/exchange/autodiscover/outlook/"
          "requestschema/2006")
AD_NS = "{http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006}"
AD_NS_A = ("{http://schemas.microsoft.com/exchange/autodiscover/outlook/"
           "responseschema/2006a}")


def start_webd(env):
    """Run carteiro-webd on two fresh ports of env (plain and TLS)."""
    for attempt in range(3):
        env.ports["http"], env.ports["https"] = ct.free_port(), ct.free_port()
        env.sections.setdefault("http", {}).update({
            "listen": "127.0.0.1:%d" % env.ports["http"],
            "tls_listen": "127.0.0.1:%d" % env.ports["https"]})
        env.write_conf()
        d = ct.Daemon("carteiro-webd", [WEBD, "-f", "-c", env.conf],
                      os.path.join(env.dir, "webd.log"),
                      [env.ports["http"], env.ports["https"]])
        os.environ["CARTEIRO_TEST_HTTP_TIMEOUT"] = str(TIMEOUT_S)
        try:
            d.start()
        except RuntimeError as e:
            if "Address already in use" not in str(e) or attempt == 2:
                raise
            continue
        finally:
            del os.environ["CARTEIRO_TEST_HTTP_TIMEOUT"]
        env.daemons.append(d)
        # The ports listen from the bind on; the privilege drop and the
        # listener threads come after. Ready is the start line.
        deadline = time.time() + 20
        while "event=http.start " not in d.log():
            if time.time() > deadline or d.proc.poll() is not None:
                raise RuntimeError("carteiro-webd did not start:\n" +
                                   d.log())
            time.sleep(0.05)
        return d


def request(port, path, host=None, method="GET", body=None, headers=None,
            tls_ctx=None, source=None):
    """(status, headers dict with lower-case names, body bytes)."""
    if tls_ctx is not None:
        c = http.client.HTTPSConnection("localhost", port, timeout=20,
                                        context=tls_ctx)
    else:
        c = http.client.HTTPConnection(
            "127.0.0.1", port, timeout=20,
            source_address=(source, 0) if source else None)
    h = dict(headers or {})
    if host is not None:
        h["Host"] = host
    try:
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        return (r.status, {k.lower(): v for k, v in r.getheaders()},
                r.read())
    finally:
        c.close()


def raw(port, data, timeout=20):
    """Send data on a fresh socket; the status code of the reply."""
    with socket.create_connection(("127.0.0.1", port), timeout) as s:
        s.sendall(data)
        buf = b""
        while b"\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
    return int(buf.split(b" ", 2)[1]) if buf.startswith(b"HTTP/1.") else None


def expected_autoconfig(env, domain, services):
    """The body carteiro-webd must send; services = [(kind, port, sock)]."""
    out = ('<?xml version="1.0" encoding="UTF-8"?>\n'
           '<clientConfig version="1.1">\n'
           '  <emailProvider id="%s">\n'
           '    <domain>%s</domain>\n'
           '    <displayName>%s</displayName>\n'
           '    <displayShortName>%s</displayShortName>\n' % ((domain,) * 4))
    for kind, port, sock in services:
        tag = "incomingServer" if kind == "pop3" else "outgoingServer"
        out += ('    <%s type="%s">\n'
                '      <hostname>%s</hostname>\n'
                '      <port>%d</port>\n'
                '      <socketType>%s</socketType>\n'
                '      <username>%%EMAILADDRESS%%</username>\n'
                '      <authentication>password-cleartext</authentication>\n'
                '    </%s>\n' % (tag, kind, env.hostname, port, sock, tag))
    return (out + '  </emailProvider>\n</clientConfig>\n').encode()


def all_services(env):
    return [("pop3", env.ports["pop3s"], "SSL"),
            ("pop3", env.ports["pop3"], "STARTTLS"),
            ("smtp", env.ports["submissions"], "SSL"),
            ("smtp", env.ports["submission"], "STARTTLS")]


def autodiscover_body(address):
    return ('<?xml version="1.0" encoding="utf-8"?>\r\n'
            '<Autodiscover xmlns="%s">\r\n  <Request>\r\n'
            '    <EMailAddress>%s</EMailAddress>\r\n'
            '    <AcceptableResponseSchema>%s</AcceptableResponseSchema>\r\n'
            '  </Request>\r\n</Autodiscover>\r\n' % (
                AD_REQ, address, AD_NS_A[1:-1])).encode()


class Webd(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = ct.Env(conf={"http": {
            "mta_sts_mode": "enforce", "mta_sts_max_age": "1d",
            "mta_sts_mx": "mx2.example.test, mail.example.test"}})
        cls.webd = start_webd(cls.env)
        cls.http = cls.env.ports["http"]
        cls.https = cls.env.ports["https"]

    @classmethod
    def tearDownClass(cls):
        cls.env.stop()

    def assert_alive(self):
        st, _, body = request(self.http, "/mail/config-v1.1.xml",
                              host="autoconfig.example.test")
        self.assertEqual(st, 200)
        self.assertEqual(body, expected_autoconfig(
            self.env, "example.test", all_services(self.env)))

    # -- autoconfig --
    def test_autoconfig_exact_on_both_paths(self):
        want = expected_autoconfig(self.env, "example.test",
                                   all_services(self.env))
        for path, host in (
                ("/mail/config-v1.1.xml", "autoconfig.example.test"),
                ("/mail/config-v1.1.xml", "AutoConfig.Example.Test:80"),
                ("/.well-known/autoconfig/mail/config-v1.1.xml",
                 "example.test"),
                ("/mail/config-v1.1.xml?emailaddress=alice%40example.test",
                 "mail.example.test"),
                ("/.well-known/autoconfig/mail/config-v1.1.xml"
                 "?emailaddress=bob@example.test", "example.test")):
            st, hdr, body = request(self.http, path, host=host)
            self.assertEqual((st, body), (200, want), (path, host))
            self.assertEqual(hdr["content-type"],
                             "application/xml; charset=utf-8")

    def test_autoconfig_entries_match_the_listeners(self):
        _, _, body = request(self.http, "/mail/config-v1.1.xml",
                             host="autoconfig.example.test")
        root = ET.fromstring(body)
        self.assertEqual(root.tag, "clientConfig")
        self.assertEqual(root.get("version"), "1.1")
        prov = root.find("emailProvider")
        self.assertEqual(prov.get("id"), "example.test")
        self.assertEqual([d.text for d in prov.findall("domain")],
                         ["example.test"])
        got = []
        for srv in prov:
            if srv.tag not in ("incomingServer", "outgoingServer"):
                continue
            self.assertEqual(srv.findtext("hostname"),
                             self.env.sections["server"]["hostname"])
            self.assertEqual(srv.findtext("username"), "%EMAILADDRESS%")
            self.assertEqual(srv.findtext("authentication"),
                             "password-cleartext")
            got.append((srv.tag, srv.get("type"), int(srv.findtext("port")),
                        srv.findtext("socketType")))
        s = self.env.sections
        port = lambda sec, key: int(s[sec][key].rsplit(":", 1)[1])
        self.assertEqual(got, [
            ("incomingServer", "pop3", port("pop3d", "tls_listen"), "SSL"),
            ("incomingServer", "pop3", port("pop3d", "listen"), "STARTTLS"),
            ("outgoingServer", "smtp", port("smtpd", "submissions_listen"),
             "SSL"),
            ("outgoingServer", "smtp", port("smtpd", "submission_listen"),
             "STARTTLS")])

    def test_autoconfig_domain_added_later_and_unknown(self):
        for host, path in (
                ("autoconfig.unknown.test", "/mail/config-v1.1.xml"),
                ("unknown.test",
                 "/.well-known/autoconfig/mail/config-v1.1.xml"),
                ("autoconfig.example.test",
                 "/mail/config-v1.1.xml?emailaddress=a@unknown.test"),
                ("autoconfig.example.test",
                 "/mail/config-v1.1.xml?emailaddress=nobody"),
                (None, "/mail/config-v1.1.xml")):
            st, _, _ = request(self.http, path, host=host or "")
            self.assertEqual(st, 404, (host, path))
        self.env.ctl_ok("domain", "add", "later.test")
        st, _, body = request(self.http, "/mail/config-v1.1.xml",
                              host="autoconfig.later.test")
        self.assertEqual((st, body), (200, expected_autoconfig(
            self.env, "later.test", all_services(self.env))))
        self.env.ctl_ok("domain", "del", "later.test")
        st, _, _ = request(self.http, "/mail/config-v1.1.xml",
                           host="autoconfig.later.test")
        self.assertEqual(st, 404)

    # -- Autodiscover --
    def test_autodiscover(self):
        for path in ("/autodiscover/autodiscover.xml",
                     "/Autodiscover/Autodiscover.xml"):
            st, hdr, body = request(
                self.http, path, host="autodiscover.example.test",
                method="POST", body=autodiscover_body("alice@example.test"),
                headers={"Content-Type": "text/xml"})
            self.assertEqual(st, 200, body)
            self.assertEqual(hdr["content-type"],
                             "application/xml; charset=utf-8")
            root = ET.fromstring(body)
            self.assertEqual(root.tag, AD_NS + "Autodiscover")
            acct = root.find(AD_NS_A + "Response/" + AD_NS_A + "Account")
            self.assertEqual(acct.findtext(AD_NS_A + "AccountType"), "email")
            self.assertEqual(acct.findtext(AD_NS_A + "Action"), "settings")
            got = []
            for p in acct.findall(AD_NS_A + "Protocol"):
                f = lambda n: p.findtext(AD_NS_A + n)
                self.assertEqual(f("Server"), self.env.hostname)
                self.assertEqual(f("LoginName"), "alice@example.test")
                self.assertEqual((f("SPA"), f("SSL"), f("AuthRequired"),
                                  f("DomainRequired")),
                                 ("off", "on", "on", "off"))
                got.append((f("Type"), int(f("Port")), f("Encryption")))
            e = self.env.ports
            self.assertEqual(got, [
                ("POP3", e["pop3s"], "SSL"), ("POP3", e["pop3"], "TLS"),
                ("SMTP", e["submissions"], "SSL"),
                ("SMTP", e["submission"], "TLS")])

    def test_autodiscover_bad_input(self):
        p = "/autodiscover/autodiscover.xml"
        st, hdr, _ = request(self.http, p, host="example.test")
        self.assertEqual((st, hdr.get("allow")), (405, "POST"))
        for body, want in (
                (b"", 400),
                (b"<Autodiscover><Request></Request></Autodiscover>", 400),
                (b"<EMailAddress>not-an-address</EMailAddress>", 400),
                (b"<EMailAddress>a@b@example.test</EMailAddress>", 400),
                (b"<EMailAddress>a&lt;b@example.test</EMailAddress>", 400),
                (b"<EMailAddress>x@unknown.test</EMailAddress>", 404),
                # a namespace prefix and blanks around the address
                (b"<a:EMailAddress> bob@EXAMPLE.test\n</a:EMailAddress>",
                 200),
                (b"x" * 20000, 413)):
            st, _, _ = request(self.http, p, host="example.test",
                               method="POST", body=body)
            self.assertEqual(st, want, body[:60])
        # A body past the limit without Content-Length (chunked): 413.
        c = http.client.HTTPConnection("127.0.0.1", self.http, timeout=20)
        c.putrequest("POST", p, skip_host=True)
        c.putheader("Host", "example.test")
        c.putheader("Transfer-Encoding", "chunked")
        c.endheaders()
        for _ in range(20):
            c.send(b"400\r\n" + b"y" * 0x400 + b"\r\n")
        c.send(b"0\r\n\r\n")
        self.assertEqual(c.getresponse().status, 413)
        c.close()
        self.assert_alive()

    # -- MTA-STS --
    def test_mta_sts_policy_exact(self):
        want = (b"version: STSv1\r\nmode: enforce\r\n"
                b"mx: mail.example.test\r\nmx: mx2.example.test\r\n"
                b"max_age: 86400\r\n")
        st, hdr, body = request(self.http, "/.well-known/mta-sts.txt",
                                host="mta-sts.example.test")
        self.assertEqual((st, body), (200, want))
        self.assertEqual(hdr["content-type"], "text/plain")
        for host in ("mta-sts.unknown.test", "example.test",
                     "autoconfig.example.test", "mta-sts.", ""):
            st, _, _ = request(self.http, "/.well-known/mta-sts.txt",
                               host=host)
            self.assertEqual(st, 404, host)

    def test_https_with_the_test_certificate(self):
        ctx = self.env.client_ssl_context()
        st, _, body = request(self.https, "/.well-known/mta-sts.txt",
                              host="mta-sts.example.test", tls_ctx=ctx)
        self.assertEqual(st, 200)
        self.assertTrue(body.startswith(b"version: STSv1\r\nmode: enforce"))
        st, _, body = request(self.https, "/mail/config-v1.1.xml",
                              host="autoconfig.example.test", tls_ctx=ctx)
        self.assertEqual((st, body), (200, expected_autoconfig(
            self.env, "example.test", all_services(self.env))))
        # Plain HTTP on the TLS port gets no HTTP answer.
        self.assertIsNone(raw(self.https, b"GET / HTTP/1.0\r\n\r\n"))

    # -- bad input --
    def test_methods_other_than_get_and_post(self):
        for m in ("PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "FOO"):
            st, hdr, _ = request(self.http, "/mail/config-v1.1.xml",
                                 host="autoconfig.example.test", method=m)
            self.assertEqual((st, hdr.get("allow")), (405, "GET, POST"), m)
        st, hdr, _ = request(self.http, "/.well-known/mta-sts.txt",
                             host="mta-sts.example.test", method="POST",
                             body=b"x")
        self.assertEqual((st, hdr.get("allow")), (405, "GET"))
        self.assert_alive()

    def test_paths(self):
        h = b"Host: autoconfig.example.test\r\n\r\n"
        for path in (b"/mail/../mail/config-v1.1.xml",
                     b"/../../etc/passwd",
                     b"/mail/%2e%2e/mail/config-v1.1.xml",
                     b"/.well-known/%2E%2E/mta-sts.txt",
                     b"/mail\\config-v1.1.xml"):
            self.assertEqual(raw(self.http, b"GET " + path +
                                 b" HTTP/1.1\r\n" + h), 400, path)
        for path in ("/", "/index.html", "/mail/config-v1.1.xml.bak",
                     "/.well-known/", "/metrics2"):
            st, _, _ = request(self.http, path,
                               host="autoconfig.example.test")
            self.assertEqual(st, 404, path)
        self.assert_alive()

    def test_oversized_url_and_headers(self):
        st, _, _ = request(self.http, "/mail/config-v1.1.xml?x=" +
                           "a" * 20000, host="autoconfig.example.test")
        self.assertEqual(st, 414)
        st, _, _ = request(self.http, "/mail/config-v1.1.xml",
                           host="autoconfig.example.test",
                           headers={"X-Big": "b" * 20000})
        self.assertEqual(st, 431)
        many = {"X-H%d" % i: "v" * 100 for i in range(300)}
        st, _, _ = request(self.http, "/mail/config-v1.1.xml",
                           host="autoconfig.example.test", headers=many)
        self.assertEqual(st, 431)
        # HTTP/1.1 without Host is refused by the library (strict mode).
        self.assertEqual(raw(self.http, b"GET /mail/config-v1.1.xml "
                             b"HTTP/1.1\r\n\r\n"), 400)
        self.assert_alive()

    def test_junk(self):
        # Random bytes, random request lines and random Autodiscover
        # bodies (fixed seed): whatever comes back, the daemon stays.
        rnd = random.Random(15)
        for i in range(150):
            kind = i % 3
            if kind == 0:
                data = bytes(rnd.randrange(256)
                             for _ in range(rnd.randrange(1, 400)))
            elif kind == 1:
                data = (rnd.choice([b"GET", b"POST", b"G\x00T", b""]) +
                        b" " + bytes(rnd.randrange(32, 127) for _ in
                                     range(rnd.randrange(0, 80))) +
                        rnd.choice([b" HTTP/1.1", b" HTTP/9.9", b""]) +
                        b"\r\nHost: " +
                        rnd.choice([b"autoconfig.example.test",
                                    b"mta-sts.example.test", b"\xff\x00",
                                    b"[::1]:x", b""]) + b"\r\n\r\n")
            else:
                body = bytes(rnd.choice(b"<>:/@ aEMailAdres.x\x00\xc3")
                             for _ in range(rnd.randrange(0, 300)))
                body += b"<EMailAddress>" + body[:40] + b"</EMailAddress>"
                data = (b"POST /autodiscover/autodiscover.xml HTTP/1.1\r\n"
                        b"Host: example.test\r\nContent-Length: %d\r\n"
                        b"\r\n" % len(body)) + body
            # No waiting for the answer (an unfinished request waits
            # for the idle timeout): send, read what is there, go.
            try:
                with socket.create_connection(("127.0.0.1", self.http),
                                              20) as s:
                    s.sendall(data)
                    s.settimeout(0.05)
                    s.recv(4096)
            except OSError:
                pass
        self.assert_alive()

    def test_many_connections(self):
        socks = []
        try:
            for _ in range(200):
                socks.append(socket.create_connection(
                    ("127.0.0.1", self.http), 20))
            # 127.0.0.1 has used up its share; another address has not.
            st, _, _ = request(self.http, "/mail/config-v1.1.xml",
                               host="autoconfig.example.test",
                               source="127.0.0.2")
            self.assertEqual(st, 200)
        finally:
            for s in socks:
                s.close()
        # Then 96 requests, 8 at a time, all answered.
        results = []

        def worker():
            for _ in range(12):
                try:
                    results.append(request(
                        self.http, "/.well-known/mta-sts.txt",
                        host="mta-sts.example.test")[0])
                except OSError as e:
                    results.append(repr(e))
        deadline = time.time() + 30
        while time.time() < deadline:   # the closed sockets drain
            try:
                if request(self.http, "/.well-known/mta-sts.txt",
                           host="mta-sts.example.test")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertEqual(results, [200] * 96)
        self.assert_alive()

    def test_slow_client_is_cut(self):
        s = socket.create_connection(("127.0.0.1", self.http), 20)
        s.sendall(b"GET /mail/config-v1.1.xml HTTP/1.1\r\nHost: auto")
        t0 = time.time()
        self.assert_alive()     # served meanwhile
        s.settimeout(TIMEOUT_S + 30)
        try:
            data = s.recv(4096)
        except ConnectionResetError:
            data = b""
        elapsed = time.time() - t0
        s.close()
        self.assertEqual(data, b"")
        self.assertGreater(elapsed, TIMEOUT_S - 1)
        self.assertLess(elapsed, TIMEOUT_S + 25)
        self.assert_alive()

    def test_trickling_client_is_cut_at_the_deadline(self):
        # A byte a second never lets the idle timeout fire; the whole
        # connection may last twice the idle timeout.
        s = socket.create_connection(("127.0.0.1", self.http), 20)
        t0 = time.time()
        s.sendall(b"GET /mail/config-v1.1.xml HTTP/1.1\r\nX-Slow: ")
        s.settimeout(1.0)
        closed = False
        while time.time() - t0 < 4 * TIMEOUT_S + 20:
            try:
                s.sendall(b"a")
                if s.recv(4096) == b"":
                    closed = True
                    break
            except socket.timeout:
                continue
            except OSError:
                closed = True
                break
        elapsed = time.time() - t0
        s.close()
        self.assertTrue(closed, "still open after %.1f s" % elapsed)
        self.assertGreater(elapsed, 2 * TIMEOUT_S - 1)
        self.assertLess(elapsed, 4 * TIMEOUT_S + 20)
        # The line may be written just after the socket is shut.
        t1 = time.time()
        while ("event=http.deadline cut=" not in self.webd.log() and
               time.time() - t1 < 10):
            time.sleep(0.1)
        self.assertIn("event=http.deadline cut=", self.webd.log())
        self.assert_alive()

    def test_zz_sighup_loads_a_new_certificate(self):
        d = os.path.join(self.env.dir, "new")
        os.mkdir(d)
        ca2, crt2, key2 = ct.make_certs(d, self.env.hostname)
        old_ctx = self.env.client_ssl_context()
        new_ctx = ssl.create_default_context(cafile=ca2)
        shutil.copy(crt2, self.env.cert)
        shutil.copy(key2, self.env.key)
        self.webd.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 20
        while "event=http.reload result=ok" not in self.webd.log():
            self.assertLess(time.time(), deadline, self.webd.log())
            time.sleep(0.05)
        st, _, _ = request(self.https, "/.well-known/mta-sts.txt",
                           host="mta-sts.example.test", tls_ctx=new_ctx)
        self.assertEqual(st, 200)
        with self.assertRaises(ssl.SSLError):
            request(self.https, "/.well-known/mta-sts.txt",
                    host="mta-sts.example.test", tls_ctx=old_ctx)
        self.assert_alive()

    def test_request_log_line(self):
        request(self.http, "/.well-known/mta-sts.txt",
                host="mta-sts.example.test", headers={"X-T": "logline"})
        lines = [l for l in self.webd.log().splitlines()
                 if "event=http.request " in l and
                 "host=mta-sts.example.test" in l]
        self.assertIn("level=info event=http.request ip=127.0.0.1 tls=no "
                      "method=GET host=mta-sts.example.test "
                      "path=/.well-known/mta-sts.txt status=200 bytes=92",
                      lines[-3:])


class Config(unittest.TestCase):
    def test_services_that_are_off_are_left_out(self):
        env = ct.Env(conf={"pop3d": {"listen": ""},
                           "smtpd": {"submissions_listen": ""},
                           "http": {"autoconfig": "yes", "mta_sts": "no"}})
        try:
            start_webd(env)
            st, _, body = request(env.ports["http"], "/mail/config-v1.1.xml",
                                  host="autoconfig.example.test")
            self.assertEqual((st, body), (200, expected_autoconfig(
                env, "example.test",
                [("pop3", env.ports["pop3s"], "SSL"),
                 ("smtp", env.ports["submission"], "STARTTLS")])))
            st, _, _ = request(env.ports["http"], "/.well-known/mta-sts.txt",
                               host="mta-sts.example.test")
            self.assertEqual(st, 404)
        finally:
            env.stop()

    @unittest.skipIf(os.geteuid() != 0, "needs root to drop privileges")
    def test_privilege_drop_and_a_reload_that_cannot_read(self):
        env = ct.Env(conf={"server": {"user": "nobody"}})
        try:
            webd = start_webd(env)
            with open("/proc/%d/status" % webd.proc.pid) as f:
                self.assertRegex(f.read(), r"Uid:\t65534\t65534\t65534\t65534")
            self.assertIn("event=http.privdrop user=nobody", webd.log())
            # The key is root's (0600): a reload as nobody fails, says
            # so, and the old certificate keeps serving.
            self.assertIn("event=tls.not_reloadable", webd.log())
            webd.proc.send_signal(signal.SIGHUP)
            deadline = time.time() + 20
            while "event=http.reload " not in webd.log():
                self.assertLess(time.time(), deadline, webd.log())
                time.sleep(0.05)
            self.assertIn("event=http.reload result=error", webd.log())
            for tls in (None, env.client_ssl_context()):
                st, _, _ = request(env.ports["https" if tls else "http"],
                                   "/.well-known/mta-sts.txt",
                                   host="mta-sts.example.test", tls_ctx=tls)
                self.assertEqual(st, 200)
        finally:
            env.stop()

    def test_check_and_bad_mode(self):
        env = ct.Env(conf={"http": {"listen": "127.0.0.1:1",
                                    "tls_listen": ""}})
        try:
            r = subprocess.run([WEBD, "-t", "-c", env.conf],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 0, r.stderr)
            env.sections["http"]["mta_sts_mode"] = "strict"
            env.write_conf()
            r = subprocess.run([WEBD, "-t", "-c", env.conf],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 1)
            self.assertIn("[http] mta_sts_mode: expected none, testing or "
                          "enforce", r.stderr)
            # HTTPS without a certificate, and nothing to listen on.
            env.sections["http"]["mta_sts_mode"] = "none"
            env.sections["http"]["tls_listen"] = "127.0.0.1:2"
            del env.sections["tls"]
            env.sections["smtpd"].update(submission_listen="",
                                         submissions_listen="")
            env.sections["pop3d"].update(listen="", tls_listen="")
            env.write_conf()
            r = subprocess.run([WEBD, "-t", "-c", env.conf],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual((r.returncode, r.stderr), (1,
                "carteiro-webd: [http] tls_listen needs [tls] cert and key "
                "(or set it empty)\ncarteiro-webd: configuration %s has "
                "errors\n" % env.conf))
            r = subprocess.run([WEBD, "-f", "-c", env.conf],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 1)
            self.assertIn("tls_listen needs [tls] cert and key", r.stderr)
            env.sections["http"].update(listen="", tls_listen="")
            env.write_conf()
            r = subprocess.run([WEBD, "-t", "-c", env.conf],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 1)
            self.assertIn("no listen address in [http]", r.stderr)
        finally:
            env.cleanup()


if __name__ == "__main__":
    unittest.main()
