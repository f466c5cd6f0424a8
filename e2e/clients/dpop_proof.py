#!/usr/bin/env python3
"""Prints a DPoP proof (RFC 9449 §4.2) for one request, for curl:

    python3 dpop_proof.py KEY.pem METHOD URL [ACCESS_TOKEN]

KEY.pem is the device's P-256 key (ES256); it is created (mode 0600) on first use. Pass the
access token when calling the API with it, so the proof carries its hash (`ath`).
`python3 dpop_proof.py KEY.pem jkt` prints the key's RFC 7638 thumbprint instead.
Needs the `cryptography` package.
"""
import base64
import hashlib
import json
import os
import sys
import time
import uuid

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def load_or_create(path: str) -> ec.EllipticCurvePrivateKey:
    try:
        with open(path, "rb") as f:
            return serialization.load_pem_private_key(f.read(), password=None)
    except FileNotFoundError:
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
            f.write(pem)
        return key


def public_jwk(key: ec.EllipticCurvePrivateKey) -> dict:
    n = key.public_key().public_numbers()
    return {"crv": "P-256", "kty": "EC", "x": b64url(n.x.to_bytes(32, "big")), "y": b64url(n.y.to_bytes(32, "big"))}


def proof(key: ec.EllipticCurvePrivateKey, method: str, url: str, access_token: str | None = None) -> str:
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": public_jwk(key)}
    claims = {
        "jti": str(uuid.uuid4()),  # single use: a new one for every request
        "htm": method,
        "htu": url.split("?")[0].split("#")[0],  # scheme, host and path; no query or fragment
        "iat": int(time.time()),
    }
    if access_token:
        claims["ath"] = b64url(hashlib.sha256(access_token.encode()).digest())
    signing_input = ".".join(b64url(json.dumps(part).encode()) for part in (header, claims))
    r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    return signing_input + "." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


if __name__ == "__main__":
    key = load_or_create(sys.argv[1])
    if sys.argv[2:] == ["jkt"]:
        members = json.dumps(public_jwk(key), separators=(",", ":"), sort_keys=True)  # RFC 7638 §3
        print(b64url(hashlib.sha256(members.encode()).digest()))
    else:
        print(proof(key, sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else None))
