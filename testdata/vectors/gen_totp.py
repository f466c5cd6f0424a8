#!/usr/bin/env python3
"""Regenerates totp_pyotp.json: TOTP codes (RFC 6238: SHA-1, 6 digits, 30 s) computed by
Python `pyotp`, an implementation independent of the `totp-rs` crate tessera uses, so
`crates/tessera-core/tests/totp.rs` checks tessera against something other than itself.

Deterministic: the secrets and times are fixed. `pip install pyotp`, then run from
anywhere: `python3 testdata/vectors/gen_totp.py`.
"""

import base64
import importlib.metadata
import json
import os

import pyotp

HERE = os.path.dirname(os.path.abspath(__file__))

# base32 secrets (RFC 4648, no padding): RFC 6238's 20-byte ASCII seed, a 16-byte
# (minimum) one, two 20-byte ones like tessera generates, a 32-byte one and a 64-byte one.
SECRETS = [
    base64.b32encode(b"12345678901234567890").decode().rstrip("="),
    base64.b32encode(bytes(range(16))).decode().rstrip("="),
    base64.b32encode(bytes(range(100, 120))).decode().rstrip("="),
    "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
    base64.b32encode(bytes((7 * i + 3) % 256 for i in range(32))).decode().rstrip("="),
    base64.b32encode(bytes((31 * i + 11) % 256 for i in range(64))).decode().rstrip("="),
]

# Unix times: step edges (a multiple of 30 and the second before it), RFC 6238's times,
# and times around now and far ahead (beyond 2^32 seconds).
TIMES = [
    30, 59, 60, 89, 1_111_111_109, 1_111_111_111, 1_234_567_890, 1_700_000_000,
    1_700_000_029, 1_800_000_015, 2_000_000_000, 20_000_000_000,
]


def main() -> None:
    cases = []
    for secret in SECRETS:
        totp = pyotp.TOTP(secret, digits=6, interval=30)  # SHA-1 is pyotp's default
        for t in TIMES:
            step = t // 30
            cases.append({
                "secret_b32": secret,
                "time": t,
                "step": step,
                "code": totp.at(t),
                # Codes of the steps around it (those after 1970), as pyotp computes them.
                "neighbours": {
                    str(d): totp.at((step + d) * 30) for d in (-2, -1, 1, 2) if step + d >= 0
                },
            })
    doc = {
        "generator": "testdata/vectors/gen_totp.py (pyotp %s)" % importlib.metadata.version("pyotp"),
        "algorithm": "SHA1",
        "digits": 6,
        "period": 30,
        "cases": cases,
    }
    with open(os.path.join(HERE, "totp_pyotp.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
