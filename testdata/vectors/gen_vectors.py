#!/usr/bin/env python3
"""Regenerates dpop.json and httpsig.json: an implementation independent of tessera's Rust
code (Python `cryptography`, `hmac`, `hashlib`) makes the proofs, signature bases and
signatures, so the Rust tests check tessera against something other than itself.

Deterministic: Ed25519 is deterministic, ES256 uses RFC 6979 deterministic nonces, and all
keys are fixed. Run from anywhere: `python3 testdata/vectors/gen_vectors.py`.
The RFC examples are copied from the RFCs, not generated.
"""

import base64
import hashlib
import hmac
import json
import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

HERE = os.path.dirname(os.path.abspath(__file__))


def b64u(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def b64u_dec(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def sha256(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


def compact(obj) -> str:
    return json.dumps(obj, separators=(",", ":"))


# ---------------------------------------------------------------- DPoP (RFC 9449)

# RFC 8037 Appendix A.1 Ed25519 key.
ED_D = b64u_dec("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
ED_KEY = ed25519.Ed25519PrivateKey.from_private_bytes(ED_D)
ED_X = ED_KEY.public_key().public_bytes_raw()
assert b64u(ED_X) == "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
ED_JWK = {"kty": "OKP", "crv": "Ed25519", "x": b64u(ED_X)}

# A fixed P-256 key (private scalar chosen for the vectors, never used elsewhere).
EC_KEY = ec.derive_private_key(
    0x1D3C5A7E9B2F4D6C8A0E1F3B5D7C9A2E4F6B8D0C1E3A5F7B9D2C4E6A8F0B1D3C, ec.SECP256R1()
)
_nums = EC_KEY.public_key().public_numbers()
EC_X, EC_Y = _nums.x.to_bytes(32, "big"), _nums.y.to_bytes(32, "big")
EC_JWK = {"kty": "EC", "crv": "P-256", "x": b64u(EC_X), "y": b64u(EC_Y)}


def thumbprint(jwk) -> str:
    req = {k: jwk[k] for k in (["crv", "kty", "x", "y"] if jwk["kty"] == "EC" else ["crv", "kty", "x"])}
    return b64u(sha256(json.dumps(req, sort_keys=True, separators=(",", ":")).encode()))


def jws(header, payload, key="ed", raw_header=None, raw_payload=None, der=False) -> str:
    h = raw_header if raw_header is not None else compact(header)
    p = raw_payload if raw_payload is not None else compact(payload)
    signing_input = (b64u(h.encode()) + "." + b64u(p.encode())).encode()
    if key == "ed":
        sig = ED_KEY.sign(signing_input)
    elif key == "ec":
        det = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)
        d = EC_KEY.sign(signing_input, det)
        if der:
            sig = d
        else:
            r, s = decode_dss_signature(d)
            sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    elif key == "hs256":
        sig = hmac.new(b"k" * 32, signing_input, hashlib.sha256).digest()
    else:
        raise ValueError(key)
    return signing_input.decode() + "." + b64u(sig)


T = 1_700_000_000
HTU = "https://api.example.com/v1/resource"
TOKEN = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhbGljZSJ9.c2ln"
ED_HDR = {"typ": "dpop+jwt", "alg": "EdDSA", "jwk": ED_JWK}
EC_HDR = {"typ": "dpop+jwt", "alg": "ES256", "jwk": EC_JWK}


def claims(**kw):
    c = {"jti": "jti-1", "htm": "GET", "htu": HTU, "iat": T}
    c.update(kw)
    return {k: v for k, v in c.items() if v is not None}


def check(**kw):
    c = {"method": "GET", "htu": HTU, "access_token": None, "now": T, "max_age": 60, "max_skew": 5, "nonce": None}
    c.update(kw)
    return c


def ok(jwk, jti="jti-1", iat=T):
    return {"ok": {"jkt": thumbprint(jwk), "jti": jti, "iat": iat}}


def err(name):
    return {"error": name}


RFC9449_FIG3 = (
    "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19"
    ".eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIjoiUE9TVCIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwiaWF0IjoxNTYyMjYyNjE2fQ"
    ".2-GxA6T8lP4vfrg8v-FdWP0A0zdrj8igiMLvqRMUvwnQg4PtFLbdLXiOSsX0x7NVY-FNyJK70nfbV37xRZT3Lg"
)
RFC9449_FIG13 = (
    "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19"
    ".eyJqdGkiOiJlMWozVl9iS2ljOC1MQUVCIiwiaHRtIjoiR0VUIiwiaHR1IjoiaHR0cHM6Ly9yZXNvdXJjZS5leGFtcGxlLm9yZy9wcm90ZWN0ZWRyZXNvdXJjZSIsImlhdCI6MTU2MjI2MjYxOCwiYXRoIjoiZlVIeU8ycjJaM0RaNTNFc05yV0JiMHhXWG9hTnk1OUlpS0NBcWtzbVFFbyJ9"
    ".2oW9RP35yRqzhrtNP86L-Ey71EOptxRimPPToA1plemAgR6pxHF8y6-yqyVnmcw6Fy1dqd-jfxSYoMxhAJpLjA"
)
RFC9449_JKT = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
RFC9449_TOKEN = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"


def dpop_vectors():
    good_ed = jws(ED_HDR, claims())
    h, p, s = good_ed.split(".")
    other_payload = b64u(compact(claims(htm="POST")).encode())
    bad_point = dict(EC_JWK, y=b64u((int.from_bytes(EC_Y, "big") ^ 1).to_bytes(32, "big")))
    proofs = [
        # RFC 9449's own examples (Figures 3 and 13), checked at their own time.
        {"name": "rfc9449-fig3-token-request", "proof": RFC9449_FIG3,
         "check": check(method="POST", htu="https://server.example.com/token", now=1562262616 + 10),
         "expect": {"ok": {"jkt": RFC9449_JKT, "jti": "-BwC3ESc6acc2lTc", "iat": 1562262616}}},
        {"name": "rfc9449-fig3-htu-normalised", "proof": RFC9449_FIG3,
         "check": check(method="POST", htu="https://SERVER.example.com:443/token?x=1#f", now=1562262616),
         "expect": {"ok": {"jkt": RFC9449_JKT, "jti": "-BwC3ESc6acc2lTc", "iat": 1562262616}}},
        {"name": "rfc9449-fig3-stale", "proof": RFC9449_FIG3,
         "check": check(method="POST", htu="https://server.example.com/token", now=1562262616 + 61),
         "expect": err("Stale")},
        {"name": "rfc9449-fig3-wrong-method", "proof": RFC9449_FIG3,
         "check": check(method="GET", htu="https://server.example.com/token", now=1562262616),
         "expect": err("MethodMismatch")},
        {"name": "rfc9449-fig13-resource-request", "proof": RFC9449_FIG13,
         "check": check(htu="https://resource.example.org/protectedresource", access_token=RFC9449_TOKEN, now=1562262618),
         "expect": {"ok": {"jkt": RFC9449_JKT, "jti": "e1j3V_bKic8-LAEB", "iat": 1562262618}}},
        {"name": "rfc9449-fig13-other-token", "proof": RFC9449_FIG13,
         "check": check(htu="https://resource.example.org/protectedresource", access_token=RFC9449_TOKEN + "x", now=1562262618),
         "expect": err("AthMismatch")},
        {"name": "rfc9449-fig3-token-given-but-no-ath", "proof": RFC9449_FIG3,
         "check": check(method="POST", htu="https://server.example.com/token", access_token=RFC9449_TOKEN, now=1562262616),
         "expect": err("AthMissing")},
        # Generated here.
        {"name": "eddsa-ok", "proof": good_ed, "check": check(), "expect": ok(ED_JWK)},
        {"name": "es256-ok", "proof": jws(EC_HDR, claims(), key="ec"), "check": check(), "expect": ok(EC_JWK)},
        {"name": "es256-ok-with-ath-and-nonce",
         "proof": jws(EC_HDR, claims(ath=b64u(sha256(TOKEN.encode())), nonce="n-1"), key="ec"),
         "check": check(access_token=TOKEN, nonce="n-1"), "expect": ok(EC_JWK)},
        {"name": "eddsa-ok-unknown-claims-ignored", "proof": jws(ED_HDR, claims(ext={"a": [1, 2]}, foo="bar")),
         "check": check(), "expect": ok(ED_JWK)},
        {"name": "eddsa-ok-iat-at-max-age", "proof": jws(ED_HDR, claims(iat=T - 60)), "check": check(), "expect": ok(ED_JWK, iat=T - 60)},
        {"name": "eddsa-ok-iat-at-max-skew", "proof": jws(ED_HDR, claims(iat=T + 5)), "check": check(), "expect": ok(ED_JWK, iat=T + 5)},
        {"name": "eddsa-ok-webcrypto-jwk-members",
         "proof": jws(dict(ED_HDR, jwk=dict(ED_JWK, ext=True, key_ops=["verify"], alg="EdDSA", use="sig", kid="k1")), claims()),
         "check": check(), "expect": ok(ED_JWK)},
        {"name": "es256-der-signature", "proof": jws(EC_HDR, claims(), key="ec", der=True), "check": check(), "expect": err("BadSignature")},
        {"name": "es256-point-not-on-curve", "proof": jws(dict(EC_HDR, jwk=bad_point), claims(), key="ec"),
         "check": check(), "expect": err("BadSignature")},
        {"name": "es256-short-coordinate", "proof": jws(dict(EC_HDR, jwk=dict(EC_JWK, x=b64u(EC_X[1:]))), claims(), key="ec"),
         "check": check(), "expect": err("BadKey")},
        {"name": "tampered-payload", "proof": f"{h}.{other_payload}.{s}", "check": check(method="POST"), "expect": err("BadSignature")},
        {"name": "tampered-signature", "proof": f"{h}.{p}.{s[:-2]}{'AA' if s[-2:] != 'AA' else 'BA'}", "check": check(), "expect": err("BadSignature")},
        {"name": "wrong-htm", "proof": good_ed, "check": check(method="POST"), "expect": err("MethodMismatch")},
        {"name": "htm-case-sensitive", "proof": jws(ED_HDR, claims(htm="get")), "check": check(), "expect": err("MethodMismatch")},
        {"name": "wrong-htu-path", "proof": good_ed, "check": check(htu="https://api.example.com/v1/other"), "expect": err("UrlMismatch")},
        {"name": "wrong-htu-host", "proof": good_ed, "check": check(htu="https://evil.example.com/v1/resource"), "expect": err("UrlMismatch")},
        {"name": "wrong-htu-scheme", "proof": good_ed, "check": check(htu="http://api.example.com/v1/resource"), "expect": err("UrlMismatch")},
        {"name": "htu-claim-with-query-and-default-port", "proof": jws(ED_HDR, claims(htu="https://API.example.com:443/v1/resource?a=1#x")),
         "check": check(), "expect": ok(ED_JWK)},
        {"name": "htu-claim-not-a-url", "proof": jws(ED_HDR, claims(htu="/v1/resource")), "check": check(), "expect": err("UrlMismatch")},
        {"name": "htu-claim-with-userinfo", "proof": jws(ED_HDR, claims(htu="https://u@api.example.com/v1/resource")), "check": check(), "expect": err("UrlMismatch")},
        {"name": "stale-iat", "proof": jws(ED_HDR, claims(iat=T - 61)), "check": check(), "expect": err("Stale")},
        {"name": "future-iat", "proof": jws(ED_HDR, claims(iat=T + 6)), "check": check(), "expect": err("FromFuture")},
        {"name": "iat-string", "proof": jws(ED_HDR, claims(iat=str(T))), "check": check(), "expect": err("BadClaims")},
        {"name": "iat-float", "proof": jws(ED_HDR, {}, raw_payload='{"jti":"jti-1","htm":"GET","htu":"%s","iat":%d.0}' % (HTU, T)), "check": check(), "expect": err("BadClaims")},
        {"name": "iat-negative", "proof": jws(ED_HDR, claims(iat=-1)), "check": check(), "expect": err("BadClaims")},
        {"name": "missing-jti", "proof": jws(ED_HDR, claims(jti=None)), "check": check(), "expect": err("BadClaims")},
        {"name": "empty-jti", "proof": jws(ED_HDR, claims(jti="")), "check": check(), "expect": err("BadClaims")},
        {"name": "jti-128-chars", "proof": jws(ED_HDR, claims(jti="j" * 128)), "check": check(), "expect": ok(ED_JWK, jti="j" * 128)},
        {"name": "jti-129-chars", "proof": jws(ED_HDR, claims(jti="j" * 129)), "check": check(), "expect": err("BadClaims")},
        {"name": "missing-htu", "proof": jws(ED_HDR, claims(htu=None)), "check": check(), "expect": err("BadClaims")},
        {"name": "duplicate-claim", "proof": jws(ED_HDR, {}, raw_payload='{"jti":"a","htm":"GET","htm":"POST","htu":"%s","iat":%d}' % (HTU, T)), "check": check(), "expect": err("BadClaims")},
        {"name": "claims-array", "proof": jws(ED_HDR, {}, raw_payload='["jti-1","GET","%s",%d]' % (HTU, T)), "check": check(), "expect": err("BadClaims")},
        {"name": "ath-null", "proof": jws(ED_HDR, claims(ath=None) | {"ath": None}), "check": check(), "expect": err("BadClaims")},
        {"name": "ath-missing", "proof": good_ed, "check": check(access_token=TOKEN), "expect": err("AthMissing")},
        {"name": "ath-mismatch", "proof": jws(ED_HDR, claims(ath=b64u(sha256(b"other")))), "check": check(access_token=TOKEN), "expect": err("AthMismatch")},
        {"name": "ath-ignored-without-token", "proof": jws(ED_HDR, claims(ath=b64u(sha256(b"other")))), "check": check(), "expect": ok(ED_JWK)},
        {"name": "nonce-required", "proof": good_ed, "check": check(nonce="n-1"), "expect": err("NonceRequired")},
        {"name": "nonce-mismatch", "proof": jws(ED_HDR, claims(nonce="n-0")), "check": check(nonce="n-1"), "expect": err("NonceMismatch")},
        {"name": "typ-jwt", "proof": jws(dict(ED_HDR, typ="JWT"), claims()), "check": check(), "expect": err("BadType")},
        {"name": "typ-case", "proof": jws(dict(ED_HDR, typ="DPOP+JWT"), claims()), "check": check(), "expect": err("BadType")},
        {"name": "typ-at-jwt", "proof": jws(dict(ED_HDR, typ="at+jwt"), claims()), "check": check(), "expect": err("BadType")},
        {"name": "typ-missing", "proof": jws({"alg": "EdDSA", "jwk": ED_JWK}, claims()), "check": check(), "expect": err("BadHeader")},
        {"name": "alg-none-empty-signature", "proof": b64u(compact(dict(ED_HDR, alg="none")).encode()) + "." + p + ".", "check": check(), "expect": err("Malformed")},
        {"name": "alg-none-with-signature", "proof": jws(dict(ED_HDR, alg="none"), claims()), "check": check(), "expect": err("UnsupportedAlgorithm")},
        {"name": "alg-hs256", "proof": jws(dict(ED_HDR, alg="HS256"), claims(), key="hs256"), "check": check(), "expect": err("UnsupportedAlgorithm")},
        {"name": "alg-rs256", "proof": jws(dict(ED_HDR, alg="RS256"), claims()), "check": check(), "expect": err("UnsupportedAlgorithm")},
        {"name": "alg-es384", "proof": jws(dict(EC_HDR, alg="ES384"), claims(), key="ec"), "check": check(), "expect": err("UnsupportedAlgorithm")},
        {"name": "alg-ed25519", "proof": jws(dict(ED_HDR, alg="Ed25519"), claims()), "check": check(), "expect": err("UnsupportedAlgorithm")},
        {"name": "alg-es256-with-okp-key", "proof": jws(dict(ED_HDR, alg="ES256"), claims()), "check": check(), "expect": err("AlgorithmKeyMismatch")},
        {"name": "alg-eddsa-with-ec-key", "proof": jws(dict(EC_HDR, alg="EdDSA"), claims(), key="ec"), "check": check(), "expect": err("AlgorithmKeyMismatch")},
        {"name": "jwk-alg-disagrees", "proof": jws(dict(ED_HDR, jwk=dict(ED_JWK, alg="ES256")), claims()), "check": check(), "expect": err("AlgorithmKeyMismatch")},
        {"name": "jwk-use-enc", "proof": jws(dict(ED_HDR, jwk=dict(ED_JWK, use="enc")), claims()), "check": check(), "expect": err("AlgorithmKeyMismatch")},
        {"name": "private-d-in-okp-jwk", "proof": jws(dict(ED_HDR, jwk=dict(ED_JWK, d=b64u(ED_D))), claims()), "check": check(), "expect": err("PrivateKeyInHeader")},
        {"name": "private-d-in-ec-jwk", "proof": jws(dict(EC_HDR, jwk=dict(EC_JWK, d="AAAA")), claims(), key="ec"), "check": check(), "expect": err("PrivateKeyInHeader")},
        {"name": "symmetric-k-in-jwk", "proof": jws(dict(ED_HDR, jwk={"kty": "oct", "k": "AAAA", "crv": "x", "x": "y"}), claims()), "check": check(), "expect": err("PrivateKeyInHeader")},
        {"name": "jwk-missing", "proof": jws({"typ": "dpop+jwt", "alg": "EdDSA"}, claims()), "check": check(), "expect": err("BadKey")},
        {"name": "kid-instead-of-jwk", "proof": jws({"typ": "dpop+jwt", "alg": "EdDSA", "kid": "k1"}, claims()), "check": check(), "expect": err("BadHeader")},
        {"name": "kid-besides-jwk", "proof": jws(dict(ED_HDR, kid="k1"), claims()), "check": check(), "expect": err("BadHeader")},
        {"name": "jku-header", "proof": jws(dict(ED_HDR, jku="https://evil.example/jwks"), claims()), "check": check(), "expect": err("BadHeader")},
        {"name": "x5u-header", "proof": jws(dict(ED_HDR, x5u="https://evil.example/cert"), claims()), "check": check(), "expect": err("BadHeader")},
        {"name": "x5c-header", "proof": jws(dict(ED_HDR, x5c=["MIIB"]), claims()), "check": check(), "expect": err("BadHeader")},
        {"name": "crit-header", "proof": jws(dict(ED_HDR, crit=["exp"]), claims()), "check": check(), "expect": err("BadHeader")},
        {"name": "duplicate-header-alg", "proof": jws({}, claims(), raw_header='{"typ":"dpop+jwt","alg":"none","alg":"EdDSA","jwk":%s}' % compact(ED_JWK)), "check": check(), "expect": err("BadHeader")},
        {"name": "duplicate-jwk-x", "proof": jws({}, claims(), raw_header='{"typ":"dpop+jwt","alg":"EdDSA","jwk":{"kty":"OKP","crv":"Ed25519","x":"%s","x":"%s"}}' % (b64u(b"\0" * 32), b64u(ED_X))), "check": check(), "expect": err("BadHeader")},
        {"name": "header-array", "proof": jws({}, claims(), raw_header='["dpop+jwt","EdDSA"]'), "check": check(), "expect": err("BadHeader")},
        {"name": "jwk-array", "proof": jws({}, claims(), raw_header='{"typ":"dpop+jwt","alg":"EdDSA","jwk":["OKP","Ed25519","%s"]}' % b64u(ED_X)), "check": check(), "expect": err("BadHeader")},
        {"name": "ec-jwk-without-y", "proof": jws(dict(EC_HDR, jwk={k: v for k, v in EC_JWK.items() if k != "y"}), claims(), key="ec"), "check": check(), "expect": err("BadKey")},
        {"name": "okp-jwk-wrong-curve", "proof": jws(dict(ED_HDR, jwk=dict(ED_JWK, crv="X25519")), claims()), "check": check(), "expect": err("BadKey")},
        {"name": "rsa-jwk", "proof": jws(dict(ED_HDR, alg="ES256", jwk={"kty": "RSA", "n": "AQAB", "e": "AQAB"}), claims()), "check": check(), "expect": err("BadHeader")},
        {"name": "two-segments", "proof": f"{h}.{p}", "check": check(), "expect": err("Malformed")},
        {"name": "four-segments", "proof": f"{h}.{p}.{s}.{s}", "check": check(), "expect": err("Malformed")},
        {"name": "five-segments-jwe-shape", "proof": f"{h}.{p}.{s}.{p}.{s}", "check": check(), "expect": err("Malformed")},
        {"name": "padded-segment", "proof": f"{h}.{p}=.{s}", "check": check(), "expect": err("Malformed")},
        {"name": "std-alphabet", "proof": f"{h}.{p}.{s.replace('-', '+').replace('_', '/')}", "check": check(),
         "expect": err("Malformed") if ("-" in s or "_" in s) else ok(ED_JWK)},
        {"name": "whitespace", "proof": f" {good_ed}", "check": check(), "expect": err("Malformed")},
        {"name": "json-serialization", "proof": compact({"protected": h, "payload": p, "signature": s}), "check": check(), "expect": err("Malformed")},
        {"name": "empty", "proof": "", "check": check(), "expect": err("Malformed")},
        {"name": "oversized", "proof": jws(ED_HDR, claims(pad="x" * 4000)), "check": check(), "expect": err("TooLarge")},
    ]
    thumbprints = [
        {"name": "rfc8037-a3-ed25519", "jwk": {"crv": "Ed25519", "kty": "OKP", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
         "expect": {"ok": "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"}},
        {"name": "rfc9449-example-p256", "jwk": {"kty": "EC", "x": "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs", "y": "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA", "crv": "P-256"},
         "expect": {"ok": RFC9449_JKT}},
        {"name": "generated-p256", "jwk": EC_JWK, "expect": {"ok": thumbprint(EC_JWK)}},
        {"name": "metadata-members-do-not-change-thumbprint", "jwk": dict(ED_JWK, kid="k1", use="sig", alg="EdDSA"),
         "expect": {"ok": "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"}},
        {"name": "private-d", "jwk": dict(ED_JWK, d=b64u(ED_D)), "expect": {"error": "PrivateKeyInHeader"}},
        {"name": "rsa", "jwk": {"kty": "RSA", "n": "AQAB", "e": "AQAB"}, "expect": {"error": "BadKey"}},
        {"name": "padded-x", "jwk": dict(ED_JWK, x=ED_JWK["x"] + "="), "expect": {"error": "BadKey"}},
    ]
    htu = [
        {"input": "https://API.Example.com:443/Path/x?q=1#f", "output": "https://api.example.com/Path/x"},
        {"input": "HTTP://example.com:80", "output": "http://example.com/"},
        {"input": "http://example.com:443/a", "output": "http://example.com:443/a"},
        {"input": "https://example.com:8443/a/", "output": "https://example.com:8443/a/"},
        {"input": "https://example.com?x=1", "output": "https://example.com/"},
        {"input": "https://[2001:db8::1]:443/a", "output": "https://[2001:db8::1]/a"},
        {"input": "https://example.com/a%2Fb", "output": "https://example.com/a%2Fb"},
        {"input": "https://user:pw@example.com/", "output": None},
        {"input": "ftp://example.com/", "output": None},
        {"input": "https://example.com/a b", "output": None},
        {"input": "https://example.com:65536/", "output": None},
        {"input": "/relative/path", "output": None},
        {"input": "https://", "output": None},
    ]
    ath = [
        {"access_token": RFC9449_TOKEN, "ath": "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"},
        {"access_token": TOKEN, "ath": b64u(sha256(TOKEN.encode()))},
    ]
    return {
        "description": "DPoP (RFC 9449) proof verification vectors; see README.md",
        "thumbprints": thumbprints,
        "normalize_htu": htu,
        "ath": ath,
        "proofs": proofs,
    }


# ---------------------------------------------------------------- RFC 9421 / RFC 9530

SECRET = bytes(range(32, 64))  # 32 bytes, fixed for the vectors
TARGET = "https://api.example.com/v1/items?limit=10&x=%20y"
BODY = '{"hello": "world"}'


def cdig(body: str) -> str:
    return "sha-256=:" + b64(sha256(body.encode())) + ":"


def sig_params(components, params: str) -> str:
    return "(" + " ".join('"%s"' % c for c in components) + ")" + params


def authority(uri):
    rest = uri.split("://", 1)[1]
    auth = rest.split("/", 1)[0].split("?", 1)[0].lower()
    if uri.lower().startswith("https://") and auth.endswith(":443"):
        auth = auth[:-4]
    if uri.lower().startswith("http://") and auth.endswith(":80"):
        auth = auth[:-3]
    return auth


def path_query(uri):
    rest = uri.split("://", 1)[1]
    after = rest[len(rest.split("/", 1)[0].split("?", 1)[0]):]
    path, _, query = after.partition("?")
    return (path or "/"), "?" + query


def base_for(req, components, params_value):
    lines = []
    for c in components:
        if c == "@method":
            v = req["method"]
        elif c == "@target-uri":
            v = req["target_uri"]
        elif c == "@authority":
            v = authority(req["target_uri"])
        elif c == "@path":
            v = path_query(req["target_uri"])[0]
        elif c == "@query":
            v = path_query(req["target_uri"])[1]
        else:
            v = (req.get(c.replace("-", "_")) or "").strip()
        lines.append('"%s": %s' % (c, v))
    lines.append('"@signature-params": ' + params_value)
    return "\n".join(lines)


def signed(name, expect, method="POST", target_uri=TARGET, body=BODY, components=None,
           params=';created=%d;keyid="client-1";nonce="n-%s"' % (T, "x"), label="sig1",
           content_digest="auto", content_type=None, content_length=None, secret=SECRET,
           now=T, window=300, keyid_known=True, input_override=None, sig_override=None,
           tamper=None):
    if components is None:
        components = ["@method", "@target-uri"] + (["content-digest"] if body else [])
    if content_digest == "auto":
        content_digest = cdig(body) if body else None
    req = {"method": method, "target_uri": target_uri, "content_digest": content_digest,
           "content_type": content_type, "content_length": content_length}
    pv = sig_params(components, params)
    base = base_for(req, components, pv)
    sig = hmac.new(secret, base.encode(), hashlib.sha256).digest()
    case = {
        "name": name,
        "request": dict(req, has_body=bool(body), body=body,
                        signature_input=input_override or f"{label}={pv}",
                        signature=sig_override or f"{label}=:{b64(sig)}:"),
        "secret_b64": b64(SECRET),
        "keyid_known": keyid_known,
        "now": now,
        "window": window,
        "expect": expect,
    }
    if tamper:
        tamper(case["request"])
    if expect == "ok":
        case["expect"] = {"ok": {"base": base}}
    return case


def err_case(name, error, **kw):
    return signed(name, {"error": error}, **kw)


def httpsig_vectors():
    p = lambda **kw: "".join(
        ";%s=%s" % (k, v if isinstance(v, int) else '"%s"' % v) for k, v in kw.items())
    std = dict(created=T, keyid="client-1", nonce="n-x")
    requests = [
        signed("post-with-body", "ok"),
        signed("get-without-body", "ok", method="GET", body=""),
        signed("all-supported-components", "ok",
               components=["@method", "@target-uri", "@authority", "@path", "@query", "content-digest", "content-type", "content-length"],
               content_type=" application/json ", content_length="18", target_uri="https://API.example.com:443/v1/items?limit=10"),
        signed("query-absent-gives-lone-question-mark", "ok", method="GET", body="", target_uri="https://api.example.com/v1",
               components=["@method", "@target-uri", "@query", "@path"]),
        signed("alg-and-expires", "ok", params=p(**std, alg="hmac-sha256", expires=T + 60)),
        signed("param-order-free", "ok", params=p(nonce="n-x", keyid="client-1", created=T)),
        signed("other-label", "ok", label="my-sig_1.x"),
        signed("created-at-window-edge-past", "ok", now=T + 300),
        signed("created-at-window-edge-future", "ok", now=T - 300),
        err_case("created-stale", "Stale", now=T + 301),
        err_case("created-future", "FromFuture", now=T - 301),
        err_case("expired", "Expired", params=p(**std, expires=T + 10), now=T + 11),
        err_case("expires-before-created", "BadParameter", params=p(**std, expires=T - 1)),
        err_case("wrong-secret", "BadSignature", secret=bytes(32)),
        err_case("unknown-keyid", "BadSignature", keyid_known=False),
        err_case("tampered-method", "BadSignature", tamper=lambda r: r.update(method="PUT")),
        err_case("tampered-path", "BadSignature", tamper=lambda r: r.update(target_uri=TARGET.replace("/v1/items", "/v1/admin"))),
        err_case("tampered-query", "BadSignature", tamper=lambda r: r.update(target_uri=TARGET.replace("limit=10", "limit=99"))),
        err_case("tampered-host", "BadSignature", tamper=lambda r: r.update(target_uri=TARGET.replace("api.", "evil."))),
        err_case("tampered-body", "DigestMismatch", tamper=lambda r: r.update(body=BODY.replace("world", "w0rld"))),
        err_case("tampered-digest-header", "BadSignature", tamper=lambda r: r.update(content_digest=cdig("other"))),
        err_case("body-without-digest-covered", "MissingComponent", components=["@method", "@target-uri"]),
        err_case("digest-covered-but-absent", "MissingHeader", content_digest=None),
        err_case("digest-header-malformed", "DigestMismatch", content_digest="sha-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE="),
        err_case("digest-unsupported-alg-only", "DigestMismatch", content_digest="md5=:" + b64(hashlib.md5(BODY.encode()).digest()) + ":"),
        err_case("body-but-has-body-false", "MissingComponent", components=["@method", "@target-uri"], content_digest=None,
                 tamper=lambda r: r.update(has_body=False)),
        err_case("method-not-covered", "MissingComponent", components=["@target-uri", "content-digest"]),
        err_case("target-uri-not-covered", "MissingComponent", components=["@method", "@path", "@query", "@authority", "content-digest"]),
        err_case("unknown-component-date", "UnknownComponent", components=["@method", "@target-uri", "content-digest", "date"]),
        err_case("unknown-component-request-target", "UnknownComponent", components=["@method", "@target-uri", "content-digest", "@request-target"]),
        err_case("uppercase-component", "UnknownComponent", components=["@METHOD", "@target-uri", "content-digest"]),
        err_case("component-with-parameter", "UnknownComponent",
                 input_override='sig1=("@method" "@target-uri" "content-digest";sf)' + p(**std)),
        err_case("duplicate-component", "DuplicateComponent", components=["@method", "@target-uri", "@method", "content-digest"]),
        err_case("missing-created", "MissingParameter", params=p(keyid="client-1", nonce="n-x")),
        err_case("missing-keyid", "MissingParameter", params=p(created=T, nonce="n-x")),
        err_case("missing-nonce", "MissingParameter", params=p(created=T, keyid="client-1")),
        err_case("alg-mismatch", "UnsupportedAlgorithm", params=p(**std, alg="hmac-sha512")),
        err_case("alg-rsa", "UnsupportedAlgorithm", params=p(**std, alg="rsa-pss-sha512")),
        err_case("created-string", "BadParameter", params=p(created=str(T), keyid="client-1", nonce="n-x")),
        err_case("created-negative", "BadParameter", params=p(created=-1, keyid="client-1", nonce="n-x")),
        err_case("nonce-empty", "BadParameter", params=p(created=T, keyid="client-1", nonce="")),
        err_case("nonce-129", "BadParameter", params=p(created=T, keyid="client-1", nonce="n" * 129)),
        err_case("duplicate-param", "BadParameter", params=p(**std) + ";created=%d" % T),
        err_case("unknown-param", "UnknownParameter", params=p(**std, foo="bar")),
        err_case("tag-param-not-supported", "UnknownParameter", params=p(**std, tag="app")),
        err_case("two-signatures", "MultipleSignatures",
                 tamper=lambda r: r.update(signature_input=r["signature_input"] + ", sig2=" + r["signature_input"].split("=", 1)[1],
                                           signature=r["signature"] + ", sig2=" + r["signature"].split("=", 1)[1])),
        err_case("label-mismatch", "LabelMismatch", tamper=lambda r: r.update(signature="other" + r["signature"][4:])),
        err_case("signature-not-bytes", "Malformed", tamper=lambda r: r.update(signature='sig1="abc"')),
        err_case("target-with-userinfo", "BadTargetUri", target_uri="https://u:p@api.example.com/v1"),
        err_case("target-relative", "BadTargetUri", target_uri="/v1/items"),
        err_case("method-with-space", "BadMethod", method="GE T"),
        err_case("digest-value-with-newline", "BadHeaderValue",
                 tamper=lambda r: r.update(content_digest=r["content_digest"] + "\n\"@method\": GET")),
    ]
    digests = [
        {"body": BODY, "header": "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:", "ok": True},
        {"body": BODY, "header": "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:", "ok": True},
        {"body": BODY, "header": "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:, sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:", "ok": True},
        {"body": BODY, "header": "md5=:AAAA:, sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:", "ok": True},
        {"body": BODY, "header": "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:, sha-512=:AAAA:", "ok": False},
        {"body": BODY, "header": "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:, sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:", "ok": False},
        {"body": BODY, "header": "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:;a=1", "ok": False},
        {"body": BODY, "header": "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:,", "ok": False},
        {"body": BODY, "header": "md5=:AAAA:", "ok": False},
        {"body": BODY, "header": "", "ok": False},
        {"body": "", "header": "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:", "ok": True},
        {"body": "other", "header": "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:", "ok": False},
    ]
    for d in digests:
        assert (d["body"] == BODY or d["body"] == "") or not d["ok"]
    rfc = {
        "name": "rfc9421-b.2.5-hmac-sha256",
        "secret_b64": "uzvJfB4u3N0Jy4T7NZ75MDVcr8zSTInedJtkgcu46YW4XByzNJjxBdtjUkdJPBtbmHhIDi6pcl8jsasjlTMtDQ==",
        "signature_base": '"date": Tue, 20 Apr 2021 02:07:55 GMT\n"@authority": example.com\n"content-type": application/json\n'
                          '"@signature-params": ("date" "@authority" "content-type");created=1618884473;keyid="test-shared-secret"',
        "signature_input": 'sig-b25=("date" "@authority" "content-type");created=1618884473;keyid="test-shared-secret"',
        "signature": "sig-b25=:pxcQw6G3AjtMBQjwo8XzkZf/bws5LelbaMk5rGIGtE8=:",
        "signature_b64": "pxcQw6G3AjtMBQjwo8XzkZf/bws5LelbaMk5rGIGtE8=",
    }
    assert b64(hmac.new(base64.b64decode(rfc["secret_b64"]), rfc["signature_base"].encode(), hashlib.sha256).digest()) == rfc["signature_b64"]
    return {
        "description": "RFC 9421 hmac-sha256 request signature and RFC 9530 Content-Digest vectors; see README.md",
        "rfc9421_b25": rfc,
        "content_digest": digests,
        "requests": requests,
    }


def main():
    for name, data in [("dpop.json", dpop_vectors()), ("httpsig.json", httpsig_vectors())]:
        with open(os.path.join(HERE, name), "w") as f:
            json.dump(data, f, indent=1, ensure_ascii=True)
            f.write("\n")


if __name__ == "__main__":
    main()
