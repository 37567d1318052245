#!/usr/bin/env bash
# The README's serve command: installs what is missing, builds in release mode and serves the
# default model on 127.0.0.1:7433. Extra arguments go to `curvalid serve` (`--help` lists them).
#
# Decisions are audited by default, into $CURVALID_AUDIT_DB
# (default ${XDG_DATA_HOME:-~/.local/share}/curvalid/audit.sqlite), unless the arguments name
# --audit or --config themselves.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tooling/setup.sh
swift build -c release --product curvalid

arguments=("$@")
audit_given=false
for argument in "$@"; do
  case "$argument" in
    --audit | --audit=* | --config | --config=*) audit_given=true ;;
  esac
done
if [ "$audit_given" = false ]; then
  audit="${CURVALID_AUDIT_DB:-${XDG_DATA_HOME:-$HOME/.local/share}/curvalid/audit.sqlite}"
  mkdir -p "$(dirname "$audit")"
  arguments+=(--audit "$audit")
fi
exec .build/release/curvalid serve "${arguments[@]}"
