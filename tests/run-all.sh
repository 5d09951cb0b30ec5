#!/usr/bin/env bash
# The whole test suite, as CI runs it. Installs what the tests need on a fresh Debian
# machine (root), then runs formatting, lint and every test in the workspace.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"

need_pkgs=()
command -v cmake >/dev/null || need_pkgs+=(cmake)          # pingora builds zlib-ng with cmake
command -v curl >/dev/null || need_pkgs+=(curl)
command -v sipp >/dev/null || need_pkgs+=(sip-tester)      # SIP edge tests: sipp as carrier and caller
command -v promtool >/dev/null || need_pkgs+=(prometheus)  # promtool checks metrics and alert rules
command -v python3 >/dev/null || need_pkgs+=(python3 python3-venv)  # schemathesis (OpenAPI fuzzing)
[ -x /usr/bin/chromium ] || need_pkgs+=(chromium)          # browser tests (gateway/tests/console.rs)
command -v node >/dev/null || need_pkgs+=(nodejs npm)      # web/: playwright-core, esbuild
# The fleet store's tests start their own PostgreSQL clusters (c2c-test-support's PgServer).
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need_pkgs+=(postgresql)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
  else
    echo "missing packages: ${need_pkgs[*]} (run as root or install them)" >&2
    exit 2
  fi
fi

# schemathesis (PyPI, pinned) into target/schemathesis-venv; gateway/tests/openapi.rs runs it.
tests/install-schemathesis.sh
# The browser tests' packages, exactly as locked (playwright-core drives the Debian
# chromium above; it downloads no browser). Skipped when already installed from this lockfile.
if ! [ web/node_modules/.package-lock.json -nt web/package-lock.json ]; then
  (cd web && npm ci --no-audit --no-fund)
fi

# On CI every build is a first build: incremental state (2.2 GB for the test build) would
# only cost disk, and CI machines have run short of it. Local runs keep it.
if [ -n "${CI:-}" ]; then
  export CARGO_INCREMENTAL=0
fi
df -h . | sed 's/^/disk before the build: /'

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -q -- -D warnings
cargo test --workspace --no-fail-fast 2>&1 | tee /tmp/c2c-test-output.txt
df -h . | sed 's/^/disk after the tests: /'
# The test builds carry the bundled LiveKit simulator (cargo feature `sim`); a
# production build must not, and must refuse `url = "sim"` with a clear error.
tests/production-build.sh
