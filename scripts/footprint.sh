#!/usr/bin/env bash
# Issue 13's footprint figures: the stripped binary's size and the server's memory when idle.
# Builds the profile (release by default; PROFILE=small for the small one), starts
# `tenantry serve` on a fresh data dir, waits for /readyz to answer 200, waits a second more,
# and reads /proc/PID/status: VmRSS (the goal is 30 MiB idle), split into RssAnon (the heap and
# stacks) and RssFile (mostly the binary's own code pages), three times (a fresh dir, then the
# same dir again, twice). Run from the project root: scripts/footprint.sh
# (BIN=path/to/tenantry measures that binary instead, without building.)
set -eu
PROFILE=${PROFILE:-release}
if [ -z "${BIN:-}" ]; then
  cargo build --profile "$PROFILE" --quiet
fi
bin=${BIN:-target/$PROFILE/tenantry}
tmp=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$tmp"' EXIT
pid=
echo "binary ($bin): $(stat -c %s "$bin") bytes"
for run in fresh again again; do
  port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
  "$bin" serve --listen "127.0.0.1:$port" --data-dir "$tmp/data" >"$tmp/log" 2>&1 &
  pid=$!
  for _ in $(seq 300); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/readyz")" = 200 ] && break
    sleep 0.05
  done
  sleep 1
  kib() { awk -v k="$1" '$1==k":" {print $2}' "/proc/$pid/status"; }
  printf 'idle (%s data dir): VmRSS %.1f MiB = RssAnon %.1f + RssFile %.1f (+ RssShmem)\n' "$run" \
    "$(echo "$(kib VmRSS)/1024" | bc -l)" "$(echo "$(kib RssAnon)/1024" | bc -l)" "$(echo "$(kib RssFile)/1024" | bc -l)"
  kill "$pid"; wait "$pid" 2>/dev/null || true
done
