#!/usr/bin/env bash
# A production build of the gateway (no cargo features) contains no LiveKit simulator,
# and refuses, saying why, to serve a policy that asks for it (`url = "sim"`).
# Run by tests/run-all.sh after the test suite (which builds with the `sim` feature).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"

if cargo tree -p c2c-gateway -e normal,build --prefix none | grep -q '^livekit-sim '; then
  echo "production-build: livekit-sim is a dependency of a build without features" >&2
  exit 1
fi
cargo clippy -q -p c2c-gateway --lib --bins -- -D warnings
cargo build -q -p c2c-gateway
work=$(mktemp -d "${TMPDIR:-/tmp}/c2c-production-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
set +e
timeout 60 ./target/debug/c2c-gateway serve --policies policies --data "$work/data" \
  --listen 127.0.0.1:0 --sip-listen 127.0.0.1:0 >"$work/out" 2>&1
rc=$?
set -e
if [ "$rc" -eq 0 ] || [ "$rc" -eq 124 ]; then
  echo "production-build: serve with url = \"sim\" did not refuse to start (exit $rc)" >&2
  cat "$work/out" >&2
  exit 1
fi
if ! grep -q 'this build has no bundled simulator' "$work/out"; then
  echo "production-build: serve failed (exit $rc) without naming the missing simulator:" >&2
  cat "$work/out" >&2
  exit 1
fi
echo "production-build: no simulator in the build; url = \"sim\" refused with a clear error"
