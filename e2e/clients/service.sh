#!/usr/bin/env bash
# A service client with RFC 9421 signatures, by hand with curl and sign.py.
# ORIGIN, CA, KEY_ID and SECRET (from `tessera client add NAME`) from the environment.
set -euo pipefail
here=$(dirname "$0")

# A GET: @method and @target-uri signed, no body.
python3 "$here/sign.py" GET "$ORIGIN/api/whoami?from=curl" |
  curl -fsS --cacert "$CA" -H @- "$ORIGIN/api/whoami?from=curl"
echo

# A POST: the body's Content-Digest is signed too; curl must send exactly these bytes.
body='{"text":"hello from a service"}'
printf %s "$body" | python3 "$here/sign.py" POST "$ORIGIN/api/whoami" - |
  curl -fsS --cacert "$CA" -H @- -H 'Content-Type: application/json' --data-binary "$body" "$ORIGIN/api/whoami"
echo

# The same signed request twice: the nonce is single use, so the second is 401.
signed=$(mktemp)
python3 "$here/sign.py" GET "$ORIGIN/api/whoami" >"$signed"
for try in 1 2; do
  curl -sS --cacert "$CA" -H @"$signed" "$ORIGIN/api/whoami" -o /dev/null -w "send $try: %{http_code}\n"
done
rm "$signed"
