#!/usr/bin/env bash
# A browser session, done by hand with curl: what a fetch wrapper other than tessera.js must
# send. ORIGIN (tessera's public_origin), CA (its certificate), USERNAME and PASSWORD come
# from the environment.
set -euo pipefail
jar=$(mktemp)
trap 'rm -f "$jar"' EXIT
# Every request: the cookie jar, and the Origin a browser sends (it must be public_origin).
web() { curl -fsS --cacert "$CA" -b "$jar" -c "$jar" -H "Origin: $ORIGIN" "$@"; }
# The CSRF token is the value of the script-readable __Host-tessera-csrf cookie, read anew
# before each unsafe request (a refresh replaces it).
csrf() { awk '$6 == "__Host-tessera-csrf" { print $7 }' "$jar"; }

# 1. Log in (JSON). The answer sets __Host-tessera-claims, __Host-tessera-sig (the access
#    token, split), the refresh cookie, __Host-tessera-csrf and the device cookie.
login=$(python3 -c 'import json, os; print(json.dumps({"username": os.environ["USERNAME"], "password": os.environ["PASSWORD"]}))')
web "$ORIGIN/auth/login" -H 'Content-Type: application/json' --data "$login"
echo

# 2. Safe methods (GET, HEAD, OPTIONS): the cookies are enough.
web "$ORIGIN/api/notes"
echo

# 3. Unsafe methods: also X-CSRF-Token.
web "$ORIGIN/api/notes" -H "X-CSRF-Token: $(csrf)" \
  -H 'Content-Type: application/json' --data '{"text":"hello from curl"}'
echo

# 4. Without it, 403 (and nothing reaches the API).
code=$(curl -sS -o /dev/null -w '%{http_code}' --cacert "$CA" -b "$jar" -H "Origin: $ORIGIN" \
  -X POST "$ORIGIN/api/notes")
echo "without X-CSRF-Token: $code"

# 5. Refresh (when a request answers 401, or before the access token's exp), then log out;
#    both are unsafe requests too.
web -X POST "$ORIGIN/auth/refresh" -H "X-CSRF-Token: $(csrf)" >/dev/null
web -X POST "$ORIGIN/auth/logout" -H "X-CSRF-Token: $(csrf)" -o /dev/null -w 'logout: %{http_code}\n'
