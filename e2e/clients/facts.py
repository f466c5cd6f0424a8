"""Checks the facts docs/clients.md states (beyond the examples) against the running server.
Run by ./run with ORIGIN, CA, USERNAME, PASSWORD, KEY_ID, SECRET; prints one line per fact
and exits non-zero at the first that does not hold."""
import base64
import json
import os
import subprocess
import sys
import tempfile
import time

import requests
from cryptography.hazmat.primitives.asymmetric import ec

from dpop_proof import b64url, proof, public_jwk

ORIGIN, CA = os.environ["ORIGIN"], os.environ["CA"]
USER, PASSWORD = os.environ["USERNAME"], os.environ["PASSWORD"]
http = requests.Session()
http.verify = CA
http.trust_env = False  # else REQUESTS_CA_BUNDLE, when set, wins over http.verify in http.get()
count = 0


def fact(what: str, cond: bool, detail: object = "") -> None:
    global count
    if not cond:
        sys.exit(f"FACT DOES NOT HOLD: {what}: {detail}")
    count += 1
    print(f"fact {count}: {what}")


def claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def grant(key, **params) -> requests.Response:
    headers = {"DPoP": proof(key, "POST", f"{ORIGIN}/auth/token")} if key else {}
    return http.post(f"{ORIGIN}/auth/token", data=params, headers=headers)


# Discovery and keys.
meta = http.get(f"{ORIGIN}/.well-known/oauth-authorization-server").json()
fact("RFC 8414 metadata names issuer and endpoints",
     meta["issuer"] == ORIGIN and meta["token_endpoint"] == f"{ORIGIN}/auth/token"
     and meta["revocation_endpoint"] == f"{ORIGIN}/auth/revoke"
     and meta["jwks_uri"] == f"{ORIGIN}/.well-known/jwks.json", meta)
fact("metadata: grants, auth methods, DPoP algorithms",
     meta["grant_types_supported"] == ["password", "refresh_token"]
     and meta["token_endpoint_auth_methods_supported"] == ["none"]
     and meta["dpop_signing_alg_values_supported"] == ["ES256", "EdDSA"], meta)
jwks = http.get(meta["jwks_uri"]).json()
fact("JWKS publishes EdDSA keys", jwks["keys"] and all(k["kty"] == "OKP" for k in jwks["keys"]), jwks)

# Browser sessions: error codes of the cookie flow.
web = requests.Session()
web.verify, web.trust_env = CA, False
res = web.post(f"{ORIGIN}/auth/login", json={"username": USER, "password": "wrong password"}, headers={"Origin": ORIGIN})
fact("wrong password at /auth/login: 401 invalid_credentials {error, message}",
     res.status_code == 401 and res.json() == {"error": "invalid_credentials", "message": res.json()["message"]}, res.text)
login = web.post(f"{ORIGIN}/auth/login", json={"username": USER, "password": PASSWORD}, headers={"Origin": ORIGIN})
fact("login answers {user, session, csrf_token} and the claims cookie says client_id browser",
     login.status_code == 200 and {"user", "session", "csrf_token"} <= set(login.json())
     and claims("x." + web.cookies["__Host-tessera-claims"] + ".x")["client_id"] == "browser", login.text)
csrf = web.cookies["__Host-tessera-csrf"]
res = web.post(f"{ORIGIN}/api/notes", json={"text": "x"}, headers={"Origin": ORIGIN})
fact("an unsafe request without X-CSRF-Token: 403 csrf_failed", res.status_code == 403 and res.json()["error"] == "csrf_failed", res.text)
res = web.post(f"{ORIGIN}/api/notes", json={"text": "x"}, headers={"Origin": "https://elsewhere.example", "X-CSRF-Token": csrf})
fact("... with the token but another Origin: 403 csrf_failed", res.status_code == 403 and res.json()["error"] == "csrf_failed", res.text)
res = web.post(f"{ORIGIN}/api/notes", json={"text": "x"}, headers={"Sec-Fetch-Site": "cross-site", "X-CSRF-Token": csrf})
fact("... with the token but Sec-Fetch-Site cross-site: 403 csrf_failed", res.status_code == 403 and res.json()["error"] == "csrf_failed", res.text)
res = web.post(f"{ORIGIN}/api/notes", json={"text": "x"}, headers={"Sec-Fetch-Site": "same-origin", "X-CSRF-Token": csrf})
fact("... with the token and no Origin: accepted", res.status_code == 201, res.text)

# Tokens: shape, claims, binding.
key = ec.generate_private_key(ec.SECP256R1())
res = grant(key, grant_type="password", username=USER, password=PASSWORD, client_id="ignored")
body = res.json()
fact("password grant answers RFC 6749 §5.1 fields + device_token, no-store",
     res.status_code == 200 and set(body) == {"access_token", "token_type", "expires_in", "refresh_token", "device_token"}
     and body["token_type"] == "DPoP" and res.headers["cache-control"] == "no-store", body)
c = claims(body["access_token"])
jkt = b64url(__import__("hashlib").sha256(json.dumps(public_jwk(key), separators=(",", ":"), sort_keys=True).encode()).digest())
fact("access token: typ at+jwt, client_id api, cnf.jkt = the key's RFC 7638 thumbprint",
     json.loads(base64.urlsafe_b64decode(body["access_token"].split(".")[0] + "=="))["typ"] == "at+jwt"
     and c["client_id"] == "api" and c["cnf"] == {"jkt": jkt} and c["iss"] == ORIGIN and c["aud"] == ORIGIN
     and {"sub", "sid", "iat", "nbf", "exp", "jti", "roles", "username"} <= set(c), c)
access = body["access_token"]
plain = grant(None, grant_type="password", username=USER, password=PASSWORD).json()
fact("without DPoP the token_type is Bearer and there is no cnf",
     plain["token_type"] == "Bearer" and "cnf" not in claims(plain["access_token"]), plain)

url = f"{ORIGIN}/api/whoami"
res = http.get(url, headers={"Authorization": f"Bearer {access}"})
fact("a DPoP-bound token sent as Bearer is 401 {error, message}",
     res.status_code == 401 and set(res.json()) == {"error", "message"}, res.text)
res = http.get(url, headers={"Authorization": f"DPoP {access}"})
fact("Authorization: DPoP without a DPoP proof is 401", res.status_code == 401, res.text)
p = proof(key, "GET", url + "?ignored=query", access)
res = http.get(url + "?x=1", headers={"Authorization": f"DPoP {access}", "DPoP": p})
fact("htu: the query is not compared", res.status_code == 200, res.text)
res = http.get(url, headers={"Authorization": f"DPoP {access}", "DPoP": p})
fact("a proof is single use (same jti again: 401 invalid_dpop_proof + WWW-Authenticate)",
     res.status_code == 401 and res.json()["error"] == "invalid_dpop_proof"
     and 'algs="ES256 EdDSA"' in res.headers.get("www-authenticate", ""), (res.status_code, res.text))
res = http.get(url, headers={"Authorization": f"DPoP {access}", "DPoP": proof(key, "GET", "https://elsewhere.example/api/whoami", access)})
fact("htu naming another origin is refused", res.status_code == 401, res.text)
res = http.get(url, headers={"Authorization": f"DPoP {access}", "DPoP": proof(key, "GET", url)})
fact("a proof without ath is refused", res.status_code == 401, res.text)
other = ec.generate_private_key(ec.SECP256R1())
res = grant(other, grant_type="refresh_token", refresh_token=body["refresh_token"])
fact("a bound refresh token with another key's proof: 400 invalid_dpop_proof {error, error_description}",
     res.status_code == 400 and res.json()["error"] == "invalid_dpop_proof" and "error_description" in res.json(), res.text)

# Refresh rotation, grace, reuse (refresh_grace is 1 s in ./run's configuration).
first = grant(key, grant_type="refresh_token", refresh_token=body["refresh_token"]).json()
again = grant(key, grant_type="refresh_token", refresh_token=body["refresh_token"]).json()
fact("within refresh_grace the same old token gets the same successor",
     first["refresh_token"] != body["refresh_token"] and again["refresh_token"] == first["refresh_token"], (first, again))
time.sleep(2.1)  # > refresh_grace, whole seconds
res = grant(key, grant_type="refresh_token", refresh_token=body["refresh_token"])
fact("after refresh_grace reuse is 401 refresh_token_reused", res.status_code == 401 and res.json()["error"] == "refresh_token_reused", res.text)
res = grant(key, grant_type="refresh_token", refresh_token=first["refresh_token"])
fact("... and the whole session is gone", res.status_code == 400 and res.json()["error"] == "invalid_grant", res.text)

# Error shapes.
res = grant(None, grant_type="password", username=USER, password="wrong password")
fact("wrong password at /auth/token: 400 invalid_grant {error, error_description}",
     res.status_code == 400 and set(res.json()) == {"error", "error_description"} and res.json()["error"] == "invalid_grant", res.text)
res = grant(None, grant_type="client_credentials")
fact("unknown grant: 400 unsupported_grant_type", res.status_code == 400 and res.json()["error"] == "unsupported_grant_type", res.text)
res = http.post(f"{ORIGIN}/auth/revoke", data={"token": "not-a-token-we-know"})
fact("revoke answers 200 for a token it does not know (RFC 7009 §2.2)", res.status_code == 200, res.text)

# Signatures: @target-uri must name tessera's origin; tag is refused; Content-Digest sha-512.
import hashlib
import hmac
import secrets

SECRET = base64.urlsafe_b64decode(os.environ["SECRET"] + "=" * (-len(os.environ["SECRET"]) % 4))


def signed(method: str, sign_url: str, body: bytes | None = None, digest: str = "sha-256",
           extra_params: str = "", send_body: bytes | None = None) -> requests.Response:
    comps, headers = [("@method", method), ("@target-uri", sign_url)], {}
    if body is not None:
        h = hashlib.new(digest.replace("-", ""), body).digest()
        headers["Content-Digest"] = f"{digest}=:{base64.b64encode(h).decode()}:"
        comps.append(("content-digest", headers["Content-Digest"]))
    names = " ".join(f'"{n}"' for n, _ in comps)
    params = f'({names});created={int(time.time())};keyid="{os.environ["KEY_ID"]}";nonce="{secrets.token_urlsafe(12)}"{extra_params}'
    base = "".join(f'"{n}": {v}\n' for n, v in comps) + f'"@signature-params": {params}'
    mac = hmac.new(SECRET, base.encode(), hashlib.sha256).digest()
    headers["Signature-Input"] = f"any-label={params}"
    headers["Signature"] = f"any-label=:{base64.b64encode(mac).decode()}:"
    return http.request(method, url, headers=headers, data=body if send_body is None else send_body)


fact("the client secret is unpadded base64url of 32 bytes",
     len(SECRET) == 32 and "=" not in os.environ["SECRET"] and "+" not in os.environ["SECRET"] and "/" not in os.environ["SECRET"])
fact("any label, no alg parameter: accepted", signed("GET", url).status_code == 200)
fact("a signature whose @target-uri names another origin is 401",
     signed("GET", "https://elsewhere.example/api/whoami").status_code == 401)
fact("a tag parameter is refused", signed("GET", url, extra_params=';tag="x"').status_code == 401)
fact("an expires in the past is refused",
     signed("GET", url, extra_params=f";expires={int(time.time()) - 1}").status_code == 401)
fact("alg other than hmac-sha256 is refused", signed("GET", url, extra_params=';alg="ed25519"').status_code == 401)
fact("a sha-512 Content-Digest is accepted", signed("POST", url, b'{"n":1}', "sha-512").status_code == 200)
fact("a body that does not match its Content-Digest is 401",
     signed("POST", url, b'{"n":1}', send_body=b'{"n":2}').status_code == 401)

# The device token lifts the per-username limit (run this last: it locks the user out).
device = grant(None, grant_type="password", username=USER, password=PASSWORD).json()["device_token"]
codes = [grant(None, grant_type="password", username=USER, password="wrong password").status_code for _ in range(8)]
res = grant(None, grant_type="password", username=USER, password=PASSWORD)
fact("after repeated failures the username is limited: 429 rate_limited + Retry-After",
     429 in codes and res.status_code == 429 and res.json()["error"] == "rate_limited" and "retry-after" in res.headers, (codes, res.text))
res = grant(None, grant_type="password", username=USER, password=PASSWORD, device_token=device)
fact("... but not with this device's device_token", res.status_code == 200, res.text)
print(f"facts: {count} hold")
