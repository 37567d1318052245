#!/usr/bin/env bash
# The README's test command: installs what is missing (tooling/setup.sh), then builds and runs every
# test, including the real-weight encoder golden test. With CI=true nothing may be skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tooling/setup.sh
swift build --build-tests
swift test --skip-build
swift build -c release --product curvalid
if swift format --version >/dev/null 2>&1; then
  swift format lint --strict -r Package.swift Sources Tests
fi
