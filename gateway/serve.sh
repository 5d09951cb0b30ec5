#!/usr/bin/env bash
# Runs the gateway with the example policies (embedded sled in ./data, the bundled
# LiveKit simulator, SIP edge on 127.0.0.1:5060). On a fresh Debian machine it first
# installs cmake, which Pingora's zlib-ng build needs. Builds with the `sim` feature. Extra arguments go to `serve`.
# With C2C_BIN set, runs that binary instead of building a release one (the README
# walkthrough's CI run uses a debug build: tests/walkthrough.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${C2C_BIN:-}" ]; then
  exec "$C2C_BIN" serve "$@"
fi
if ! command -v cmake >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake >/dev/null
  else
    echo "cmake is required to build Pingora (sudo apt-get install cmake)" >&2
    exit 2
  fi
fi
# `--features sim`: the example policies use the bundled LiveKit simulator, which a
# production build (no features) leaves out.
exec cargo run --release -p c2c-gateway --features sim -- serve "$@"
