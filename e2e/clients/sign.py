#!/usr/bin/env python3
"""Prints the headers of an RFC 9421 `hmac-sha256` signature for one request, for curl:

    python3 sign.py METHOD URL [BODY_FILE] | curl -H @- ...

KEY_ID and SECRET (as `tessera client add` printed them) come from the environment. With a
body (BODY_FILE, `-` for stdin) it also prints `Content-Digest` (RFC 9530) and signs it.
URL must name tessera's `public_origin` (or an `origin_aliases` entry) and the exact path
and query curl sends. Only the standard library is needed.
"""
import base64
import hashlib
import hmac
import os
import secrets
import sys
import time

method, url = sys.argv[1], sys.argv[2]
key_id, secret_b64 = os.environ["KEY_ID"], os.environ["SECRET"]
secret = base64.urlsafe_b64decode(secret_b64 + "=" * (-len(secret_b64) % 4))  # 32 bytes

components = [("@method", method), ("@target-uri", url)]
headers = []
if len(sys.argv) > 3:
    body = sys.stdin.buffer.read() if sys.argv[3] == "-" else open(sys.argv[3], "rb").read()
    digest = "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode() + ":"
    components.append(("content-digest", digest))
    headers.append("Content-Digest: " + digest)

names = " ".join(f'"{name}"' for name, _ in components)
params = f'({names});created={int(time.time())};keyid="{key_id}";nonce="{secrets.token_urlsafe(16)}";alg="hmac-sha256"'
base = "".join(f'"{name}": {value}\n' for name, value in components) + f'"@signature-params": {params}'
mac = hmac.new(secret, base.encode(), hashlib.sha256).digest()

headers.append("Signature-Input: sig1=" + params)
headers.append("Signature: sig1=:" + base64.b64encode(mac).decode() + ":")
print("\n".join(headers))
