#!/usr/bin/env bash
# REST `GET /auth/me` as an outside load tool sees it: wrk against `fafnir serve` (Bearer token),
# against a bare axum handler answering JSON of the same shape (a plain axum app: `axum::serve`,
# the system allocator), against the same bare handler on mimalloc (the allocator of Fafnir's
# binaries), and against that handler behind Fafnir's hardening layers and accept loop (what
# every route pays, on mimalloc), alternated, in one run.
#   cargo build --release -p fafnir-cli -p fafnir-benches --bin fafnir --bin load --bin bare-mimalloc
#   bash benches/wrk-me.sh [ROUNDS] [SECONDS] [CONNECTIONS]        # defaults: 3 5 64
# The last line gives the medians of the rounds' ratios; on a shared machine, use many short
# rounds (12 3) rather than a few long ones.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${1:-3}" SECS="${2:-5}" CONNS="${3:-64}"
command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk"; exit 1; }
BIN=target/release
dir="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$dir"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
P=$(port) B=$(port) M=$(port) H=$(port)
export FAFNIR_DATABASE_URL="sqlite://$dir/f.db" FAFNIR_LOG=warn FAFNIR_COOKIE_SECURE=false
echo 'correct horse battery staple' | $BIN/fafnir user create --email load0@example.com --password-stdin >/dev/null
FAFNIR_HTTP_ADDR=127.0.0.1:$P FAFNIR_GRPC_ADDR=127.0.0.1:$(port) $BIN/fafnir serve >"$dir/server.log" 2>&1 &
$BIN/load bare-server "$B" &
$BIN/bare-mimalloc plain "$M" &
$BIN/bare-mimalloc hardened "$H" &
for _ in $(seq 50); do
  curl -sf "http://127.0.0.1:$P/healthz" >/dev/null && curl -sf "http://127.0.0.1:$B/bare" >/dev/null \
    && curl -sf "http://127.0.0.1:$M/bare" >/dev/null && curl -sf "http://127.0.0.1:$H/bare" >/dev/null && break
  sleep 0.2
done
TOKEN=$(curl -s "http://127.0.0.1:$P/auth/token" -d grant_type=password -d username=load0@example.com \
  -d 'password=correct horse battery staple' | python3 -c 'import sys,json; print(json.load(sys.stdin)["access_token"])')
rps() { wrk -t2 -c"$CONNS" -d"${SECS}s" --latency "$@" | awk '/Requests\/sec/ {print $2}'; }
echo "| round | \`GET /auth/me\` req/s | bare req/s | bare (mimalloc) req/s | bare + hardening (mimalloc) req/s | me / bare | me / bare (mimalloc) | hardened / bare (mimalloc) |"
echo "|---|---|---|---|---|---|---|---|"
for r in $(seq "$ROUNDS"); do
  me=$(rps -H "authorization: Bearer $TOKEN" "http://127.0.0.1:$P/auth/me")
  bare=$(rps "http://127.0.0.1:$B/bare")
  mi=$(rps "http://127.0.0.1:$M/bare")
  hard=$(rps "http://127.0.0.1:$H/bare")
  echo "$me $bare $mi $hard" >>"$dir/rounds"
  echo "| $r | $me | $bare | $mi | $hard | $(python3 -c "print(f'{100*$me/$bare:.0f}% | {100*$me/$mi:.0f}% | {100*$hard/$mi:.0f}%')") |"
done
# On a shared machine single rounds swing by ±15 points: the medians of the rounds' ratios.
python3 - "$dir/rounds" <<'PY'
import statistics, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1])]
med = lambda xs: f"{100 * statistics.median(xs):.0f}%"
print(f"| median of {len(rows)} | | | | | {med([m / b for m, b, _, _ in rows])} | "
      f"{med([m / i for m, _, i, _ in rows])} | {med([h / i for _, _, i, h in rows])} |")
PY
