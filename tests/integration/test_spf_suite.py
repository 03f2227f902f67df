"""The OpenSPF RFC 7208 test suite (pyspf's rfc7208-tests.yml) through
`carteiroctl spf`, each scenario's zone served by a fake DNS
(fakedns_zone.py) with the semantics pyspf's driver gives it.

The suite is not copied into the repository: it is read from
<repo>/../shared/conformance/rfc7208-tests.yml, or from the file named by
CARTEIRO_RFC7208_SUITE. Without it the test fails and says where it
looked. Every test's first output word must be its expected result (or
one of them); where the suite gives an explanation, the "explanation"
line must carry it ("DEFAULT": no exp= explanation at all), compared
without regard to case: v-macro-ip6 expects %{ir} of an IPv6 address in
upper-case nibbles, where RFC 7208 7.4's own example has lower case. The
failures are listed together, with the evidence.
"""
import os
import re
import subprocess
import sys
import time
import unittest
from concurrent.futures import ThreadPoolExecutor

import yaml

import carteiro_test as ct
from fakedns_zone import ZoneDNS

SUITE_ENV = "CARTEIRO_RFC7208_SUITE"
# Per-try DNS timeout for carteiroctl (two tries): the suite's TIMEOUT
# entries and error.* names are meant to time out; everything else is
# answered at once by the fake on loopback.
TIMEOUT_MS = 400
WORKERS = 4


def suite_path():
    if os.environ.get(SUITE_ENV):
        return os.environ[SUITE_ENV]
    return os.path.join(ct.SRC, "..", "shared", "conformance",
                        "rfc7208-tests.yml")


class SpfSuite(unittest.TestCase):
    def test_rfc7208_suite(self):
        path = suite_path()
        if not os.path.isfile(path):
            self.fail("the RFC 7208 suite is missing: no file %s (set %s "
                      "to its path)" % (os.path.abspath(path), SUITE_ENV))
        with open(path, encoding="utf-8") as f:
            scenarios = [s for s in yaml.safe_load_all(f) if s]
        total = sum(len(s["tests"]) for s in scenarios)
        self.assertEqual(total, 203, "unexpected suite size")

        env = ct.Env(users=(), domains=())
        dns = ZoneDNS().start()
        env.sections["relay"]["resolver"] = "127.0.0.1:%d" % dns.port
        env.write_conf()
        failures = []
        passed = 0
        t0 = time.monotonic()
        try:
            with ThreadPoolExecutor(WORKERS) as pool:
                for sc in scenarios:
                    dns.load(sc.get("zonedata"))
                    names = list(sc["tests"])
                    outs = pool.map(
                        lambda n: self.run_one(env, sc["tests"][n]), names)
                    for name, (want, out) in zip(names, outs):
                        t = sc["tests"][name]
                        got = out.split()[0] if out.split() else "(nothing)"
                        exp = self.explanation(out)
                        if got not in want:
                            failures.append("%s/%s: expected %s, got %s\n%s"
                                            % (sc["description"], name,
                                               "|".join(want), got, out))
                        elif "explanation" in t and got == "fail" and \
                                exp != self.want_exp(t["explanation"]):
                            failures.append("%s/%s: explanation %r, got %r\n%s"
                                            % (sc["description"], name,
                                               t["explanation"], exp, out))
                        else:
                            passed += 1
        finally:
            dns.stop()
            env.stop()
        elapsed = time.monotonic() - t0
        print("RFC 7208 suite: %d of %d passed (%.1f s)"
              % (passed, total, elapsed), file=sys.stderr)
        if failures:
            self.fail("%d of %d RFC 7208 suite tests failed:\n\n%s"
                      % (len(failures), total, "\n".join(failures)))

    @staticmethod
    def explanation(out):
        m = re.search(r'(?m)^explanation "[^"]*" "((?:[^"\\]|\\.)*)"$', out)
        return re.sub(r'\\(.)', r'\1', m.group(1)).lower() if m else None

    @staticmethod
    def want_exp(e):
        return None if e == "DEFAULT" else str(e).lower()

    @staticmethod
    def run_one(env, t):
        want = t["result"] if isinstance(t["result"], list) else [t["result"]]
        argv = [ct.CTL, "-c", env.conf, "spf", "--timeout", str(TIMEOUT_MS),
                str(t["host"]), str(t["mailfrom"]), str(t["helo"])]
        r = subprocess.run(argv, capture_output=True, text=True,
                           errors="replace", timeout=60)
        return [str(w) for w in want], r.stdout + r.stderr


if __name__ == "__main__":
    unittest.main()
