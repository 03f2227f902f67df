"""Log field forgery (issue #11 item 11): an address such as
<"x result=ok kind=failed"@ext.test> goes through submission to a remote
domain that bounces and defers, and through the MX listener into a
forward that bounces back to it, and no log line gains a field: every
line of carteiro-smtpd parses strictly as key=value pairs with unique
keys, and the address shows up only escaped (common/log.c log_value)."""

import os
import re
import smtplib
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import carteiro_test as ct  # noqa: E402
from fakemx import Sink, relay_setup, wait_for  # noqa: E402

RECORDS = {
    "remote.test": {"MX": [(10, "mx1.remote.test")]},
    "ext.test": {"MX": [(10, "mx1.remote.test")]},
    "mx1.remote.test": {"A": ["127.0.0.2"]},
}

FORGED = '"x result=ok kind=failed"@ext.test'
DEFERRED = '"d result=ok kind=delayed status=sent"@ext.test'
# log_value's form of them: quoted, their quotes as \x22.
FORGED_LOGGED = '"\\x22x result=ok kind=failed\\x22@ext.test"'
DEFERRED_LOGGED = '"\\x22d result=ok kind=delayed status=sent\\x22@ext.test"'

# One field: a key, then a token (no space, '"', '\\' or '=') or a quoted
# string whose only escape is \xNN.
FIELD = re.compile(r' ([a-z][a-z0-9_.]*)=([^\s"\\=]+|"(?:[ !#-\[\]-~]|'
                   r'\\x[0-9a-f]{2})*")')
HEAD = re.compile(r'level=(error|warn|info|debug)')


def parse(line):
    """The fields of a log line as a list of (key, value); raises
    ValueError when the line is not strictly key=value."""
    m = HEAD.match(line)
    if not m:
        raise ValueError("no level: %r" % line)
    pos, fields = m.end(), [("level", m.group(1))]
    while pos < len(line):
        m = FIELD.match(line, pos)
        if not m:
            raise ValueError("not key=value at %d: %r" % (pos, line))
        fields.append((m.group(1), m.group(2)))
        pos = m.end()
    return fields


def rcpt_reply(addr):
    if addr.startswith("p5") or "kind=failed" in addr:
        return "550 5.1.1 <%s>: Recipient address rejected" % addr
    if "kind=delayed" in addr:
        return "451 4.3.0 <%s>: try again later" % addr
    return None


def send(port, mail_from, rcpts, data, login=None):
    """One transaction with the addresses sent as they are (smtplib's
    sendmail would re-quote them)."""
    s = smtplib.SMTP("127.0.0.1", port, timeout=30)
    try:
        s.ehlo("client.ext.test")
        if login:
            s.login(*login)
        code, text = s.docmd("MAIL FROM:<%s>" % mail_from)
        assert code == 250, (code, text)
        for r in rcpts:
            code, text = s.docmd("RCPT TO:<%s>" % r)
            assert code == 250, (r, code, text)
        code, text = s.data(data)
        assert code == 250, (code, text)
        s.quit()
    finally:
        s.close()


def logged(env, event, **want):
    """Lines of event whose fields include want (values as logged)."""
    out = []
    for line in env.log_lines(env.smtpd, event):
        try:
            f = dict(parse(line))
        except ValueError:
            continue
        if all(f.get(k) == v for k, v in want.items()):
            out.append(line)
    return out


class LogFields(unittest.TestCase):
    def setUp(self):
        self.env, self.dns, port = relay_setup(RECORDS)
        self.sink = Sink("127.0.0.2", port)
        self.sink.rcpt_reply = rcpt_reply
        self.sink.start()
        # A forward to a remote address that bounces.
        self.env.ctl_ok("alias", "add", "fwd@example.test",
                        "p5fwd@remote.test")
        self.env.start_smtpd()

    def tearDown(self):
        self.sink.stop()
        self.env.stop()
        self.dns.stop()

    def test_forged_fields(self):
        env = self.env
        # Submission: one recipient bounces, one is deferred.
        send(env.ports["submission"], "alice@example.test",
             [FORGED, DEFERRED],
             b"From: alice@example.test\r\nSubject: fields\r\n\r\nhi\r\n",
             login=("alice@example.test", ct.PASSWORD))
        # MX listener: the forged address as the sender of a forward that
        # bounces, so the DSN goes back to it over the relay (and is
        # refused there too: a DSN that fails is dropped).
        send(env.ports["mx"], FORGED, ["fwd@example.test"],
             b"Subject: via mx\r\n\r\nhi\r\n")

        self.assertTrue(wait_for(
            lambda: env.mailbox_bodies("alice@example.test")))
        self.assertTrue(wait_for(lambda: logged(
            env, "relay.delivery", rcpt=DEFERRED_LOGGED, status="deferred")))
        self.assertTrue(wait_for(lambda: logged(
            env, "relay.bounce", **{"from": FORGED_LOGGED, "kind": "failed",
                                    "result": "queued"})))
        self.assertTrue(wait_for(lambda: logged(
            env, "relay.delivery", rcpt=FORGED_LOGGED, status="bounced")))
        self.assertTrue(logged(env, "smtp.mail", **{"from": FORGED_LOGGED}))

        # Every line of the log is strictly key=value, no key twice.
        lines = env.smtpd.log().splitlines()
        self.assertTrue(lines)
        for line in lines:
            try:
                fields = parse(line)
            except ValueError as e:
                self.fail(str(e))
            keys = [k for k, _ in fields]
            self.assertEqual(len(keys), len(set(keys)), line)
            f = dict(fields)
            # The forged words never stand as fields of their own.
            self.assertNotEqual(f.get("kind"), "delayed", line)
            if "ext.test" in line and f.get("event") in (
                    "relay.bounce", "relay.delivery"):
                self.assertNotEqual(f.get("result"), "ok", line)
                self.assertNotEqual(f.get("status"), "sent", line)


if __name__ == "__main__":
    ct.main()
