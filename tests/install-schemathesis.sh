#!/usr/bin/env bash
# Installs the pinned schemathesis (the OpenAPI conformance fuzzer used by
# gateway/tests/openapi.rs) into a virtualenv under target/, so it never touches the
# system Python (Debian's is "externally managed") and needs no PATH change: the test
# looks for target/schemathesis-venv/bin/schemathesis. Idempotent: does nothing when
# the pinned version is already there.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"

version=4.32.5
venv=target/schemathesis-venv
st="$venv/bin/schemathesis"
if [ -x "$st" ] && [ "$("$st" --version 2>/dev/null)" = "schemathesis, version $version" ]; then
  exit 0
fi
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  # Debian splits venv/ensurepip into python3-venv.
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
  else
    echo "python3 venv support is missing: install python3-venv" >&2
    exit 2
  fi
fi
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check "schemathesis==$version"
"$st" --version
