#!/usr/bin/env python3
"""The refresher's sealing of the Gitee copy, in Python, for tests.

Tests need sealed files the refresher would not write on its own: sealed
with a chosen key (key rotation), for another token name (replay), with a
fixed nonce (the test vector).  This module writes them by the rules of
docs/protocol.md ("The sealed Gitee copy"); ``python3 sealer.py --check``
proves it reproduces tests/vectors/sealed-v1.json byte for byte, and the
C unit test (tests/unit/test_seal.c) proves the refresher's code does too,
so what this module seals is what the refresher seals.

Needs the ``cryptography`` package (Debian: python3-cryptography), which
scripts/bootstrap --test installs.
"""

import base64
import hashlib
import json
import os
import sys

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

HERE = os.path.dirname(os.path.abspath(__file__))
VECTOR = os.path.join(os.path.dirname(HERE), "vectors", "sealed-v1.json")


def b64(data):
    return base64.b64encode(data).decode("ascii")


def new_key():
    """A random share key, as `tokendist keygen` prints it."""
    return b64(os.urandom(32))


def kid(key_b64):
    """The key's fingerprint: the first 8 bytes of SHA-256 of the raw key, in hex."""
    return hashlib.sha256(base64.b64decode(key_b64, validate=True)).hexdigest()[:16]


def aad(key_id, name, generated):
    return f"tokendist-sealed\n1\nA256GCM\n{key_id}\n{name}\n{generated}".encode("ascii")


def seal_text(key_b64, name, generated, plaintext, nonce=None):
    """The envelope's JSON text (the refresher's compact layout) sealing the
    record text ``plaintext`` (str or bytes)."""
    data = plaintext.encode("utf-8") if isinstance(plaintext, str) else plaintext
    nonce = os.urandom(12) if nonce is None else nonce
    key_id = kid(key_b64)
    ct = AESGCM(base64.b64decode(key_b64, validate=True)).encrypt(nonce, data, aad(key_id, name, generated))
    env = {"v": 1, "alg": "A256GCM", "kid": key_id, "name": name, "generated_timestamp": generated,
           "nonce": b64(nonce), "ct": b64(ct)}
    return json.dumps(env, separators=(",", ":"))


def seal(key_b64, record, name="default", nonce=None):
    """Seals a record (a dict) the way the refresher does."""
    return seal_text(key_b64, name, record["generated_timestamp"],
                     json.dumps(record, ensure_ascii=False, separators=(",", ":")), nonce)


def vector():
    with open(VECTOR, encoding="utf-8") as f:
        return json.load(f)


def check():
    """Reproduces the test vector; returns a list of mismatches."""
    v = vector()
    problems = []
    if kid(v["key"]) != v["kid"]:
        problems.append("kid")
    if aad(v["kid"], v["name"], v["generated_timestamp"]).decode() != v["aad"]:
        problems.append("aad")
    text = seal_text(v["key"], v["name"], v["generated_timestamp"], v["plaintext"],
                     base64.b64decode(v["nonce"]))
    if text != v["file"]:
        problems.append("file")
    if json.loads(text) != v["envelope"]:
        problems.append("envelope")
    return problems


if __name__ == "__main__":
    if sys.argv[1:] == ["--check"]:
        bad = check()
        print("sealer: " + ("reproduces the vector" if not bad else "MISMATCH: " + ", ".join(bad)))
        sys.exit(1 if bad else 0)
    sys.exit("usage: sealer.py --check")
