"""A service client with RFC 9421 signatures, using requests and http-message-signatures.
ORIGIN, CA, KEY_ID and SECRET (from `tessera client add NAME`) from the environment."""
import base64
import os
import secrets

import requests
from http_message_signatures import HTTPMessageSigner, MappingKeyResolver, algorithms

secret = base64.urlsafe_b64decode(os.environ["SECRET"] + "=" * (-len(os.environ["SECRET"]) % 4))
key_id = os.environ["KEY_ID"]
signer = HTTPMessageSigner(
    signature_algorithm=algorithms.HMAC_SHA256,
    key_resolver=MappingKeyResolver(public_keys={}, private_keys={key_id: secret}),
)
session = requests.Session()
session.verify = os.environ["CA"]  # the self-signed certificate as trust anchor


def send(method: str, path: str, json_body: bytes | None = None) -> requests.Response:
    headers = {"Content-Type": "application/json"} if json_body is not None else {}
    req = requests.Request(method, os.environ["ORIGIN"] + path, headers=headers, data=json_body).prepare()
    signer.sign(
        req,
        key_id=key_id,
        nonce=secrets.token_urlsafe(16),  # required by tessera, single use
        covered_component_ids=("@method", "@target-uri"),
        body=json_body,  # adds Content-Digest (sha-256) and covers it
    )
    return session.send(req)


res = send("GET", "/api/whoami?from=python")
res.raise_for_status()
print("GET:", res.json()["headers"]["x-tessera-client"])
res = send("POST", "/api/whoami", b'{"text":"hello from http-message-signatures"}')
res.raise_for_status()
print("POST:", res.json()["headers"]["x-tessera-client"])
