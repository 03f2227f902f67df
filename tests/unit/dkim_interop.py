"""DKIM interoperability helper for tests/unit/test_dkim.c (run with
Debian's /usr/bin/python3, which has python3-dkim and python3-nacl).

  verify DIR   every DIR/signed-*.eml must verify with dkim.verify, the
               public keys coming from DIR/<selector>.txt; exit 1 otherwise
  sign DIR     sign DIR/plain-*.eml with python3-dkim (rsa and ed25519,
               relaxed/simple and simple/simple) into DIR/py-*.eml, and
               write the keys' private text to DIR/py-<alg>.key
"""
import glob
import os
import subprocess
import sys

import dkim
import nacl.encoding
import nacl.signing


def verify(d):
    def dnsfunc(name, timeout=5):
        sel = name.decode().split("._domainkey.")[0]
        with open(os.path.join(d, sel + ".txt"), "rb") as f:
            return f.read().strip()
    bad = 0
    files = sorted(glob.glob(os.path.join(d, "signed-*.eml")))
    for fn in files:
        with open(fn, "rb") as f:
            msg = f.read()
        n = msg.count(b"DKIM-Signature:")
        for i in range(n):
            ok = dkim.DKIM(msg).verify(idx=i, dnsfunc=dnsfunc)
            if not ok:
                print("python3-dkim rejects %s signature %d" % (fn, i))
                bad += 1
    print("verified %d files" % len(files))
    return 1 if bad or not files else 0


def sign(d):
    rsa_key = os.path.join(d, "py-rsa.key")
    subprocess.run(["certtool", "--generate-privkey", "--rsa", "--bits",
                    "2048", "--outfile", rsa_key], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(rsa_key, "rb") as f:
        rsa_pem = f.read()
    # Keep only the PEM block (certtool prints key info before it).
    start = rsa_pem.index(b"-----BEGIN")
    rsa_pem = rsa_pem[start:]
    with open(rsa_key, "wb") as f:
        f.write(rsa_pem)
    seed = nacl.signing.SigningKey.generate()
    ed_b64 = seed.encode(encoder=nacl.encoding.Base64Encoder)
    with open(os.path.join(d, "py-ed25519.key"), "wb") as f:
        f.write(ed_b64)
    for fn in sorted(glob.glob(os.path.join(d, "plain-*.eml"))):
        with open(fn, "rb") as f:
            msg = f.read()
        base = os.path.basename(fn)[len("plain-"):-4]
        for alg, key, sel in ((b"rsa-sha256", rsa_pem, b"pyrsa"),
                              (b"ed25519-sha256", ed_b64, b"pyed")):
            for canon in ((b"relaxed", b"simple"), (b"simple", b"simple"),
                          (b"relaxed", b"relaxed")):
                sig = dkim.sign(msg, sel, b"example.test", key,
                                canonicalize=canon, signature_algorithm=alg,
                                include_headers=[b"from", b"to", b"subject"])
                out = os.path.join(d, "py-%s-%s-%s-%s.eml" % (
                    base, alg.decode(), canon[0].decode(), canon[1].decode()))
                with open(out, "wb") as f:
                    f.write(sig + msg)
    return 0


if __name__ == "__main__":
    sys.exit({"verify": verify, "sign": sign}[sys.argv[1]](sys.argv[2]))
