#!/usr/bin/env bash
# A mobile or native client with DPoP (RFC 9449), by hand with curl and dpop_proof.py.
# ORIGIN, CA, USERNAME, PASSWORD (and DEVICE_TOKEN, if this device has one) from the environment.
set -euo pipefail
here=$(dirname "$0")
key=$(mktemp -d)/dpop-key.pem                    # a real app keeps this key with its tokens
proof() { python3 "$here/dpop_proof.py" "$key" "$@"; }
field() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
token() { curl -fsS --cacert "$CA" "$ORIGIN/auth/token" -H "DPoP: $(proof POST "$ORIGIN/auth/token")" "$@"; }

# 1. Password grant with a proof: the tokens are bound to the key (token_type "DPoP").
#    Keep device_token and send it with the next password grant of this user on this device.
res=$(token --data-urlencode grant_type=password --data-urlencode "username=$USERNAME" \
  --data-urlencode "password=$PASSWORD" ${DEVICE_TOKEN:+--data-urlencode "device_token=$DEVICE_TOKEN"})
echo "token_type: $(field token_type <<<"$res"), expires_in: $(field expires_in <<<"$res")"
access=$(field access_token <<<"$res")
refresh=$(field refresh_token <<<"$res")
echo "device_token: $(field device_token <<<"$res")"

# 2. Call the API: Authorization: DPoP, and a fresh proof naming method, URL and the token.
curl -fsS --cacert "$CA" "$ORIGIN/api/whoami" \
  -H "Authorization: DPoP $access" -H "DPoP: $(proof GET "$ORIGIN/api/whoami" "$access")"
echo

# 3. Refresh with a proof by the same key; the refresh token rotates: keep the new one.
res=$(token --data-urlencode grant_type=refresh_token --data-urlencode "refresh_token=$refresh")
access=$(field access_token <<<"$res")
refresh=$(field refresh_token <<<"$res")
curl -fsS --cacert "$CA" "$ORIGIN/api/notes" \
  -H "Authorization: DPoP $access" -H "DPoP: $(proof GET "$ORIGIN/api/notes" "$access")"
echo

# 4. Log out: revoke the session (RFC 7009).
curl -fsS --cacert "$CA" "$ORIGIN/auth/revoke" --data-urlencode "token=$refresh" -w 'revoke: %{http_code}\n'
