#!/usr/bin/env bash
# The README's serve command: installs what is missing, builds in release mode and serves the
# default model. Extra arguments go to `curvalid serve` (see `curvalid serve --help`).
set -euo pipefail
cd "$(dirname "$0")/.."

bash tooling/setup.sh
swift build -c release --product curvalid
exec .build/release/curvalid serve "$@"
