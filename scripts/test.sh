#!/usr/bin/env bash
# The whole test suite, from a fresh clone: install, lint, type-check, test.
# The README's second set-up command and .ci/run both run exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -e '.[dev]'
# The real Node.js Grenache packages for the interop tests, from the npm registry alone.
if command -v npm >/dev/null; then
  (cd interop/node && npm ci --no-audit --no-fund --loglevel=error)
fi
# nftables (partitions) and libfaketime (clock faults) for the fault harness (tests/nemesis),
# where we are root and have apt; elsewhere the fault tests skip and say why.
if { ! command -v nft || ! command -v faketime; } >/dev/null && [ "$(id -u)" = 0 ] \
    && command -v apt-get >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nftables faketime) \
    >/dev/null 2>&1 || echo "nftables/faketime not installed: some fault tests will skip"
fi
# The install above builds the engine's compiled hot path; a test fails if it could not.
export PEERBOOK_REQUIRE_COMPILED=1
echo "== ruff check"; python3 -m ruff check .
echo "== ruff format --check"; python3 -m ruff format --check .
echo "== mypy --strict"; python3 -m mypy --strict
echo "== pytest"; python3 -m pytest -q "$@"
