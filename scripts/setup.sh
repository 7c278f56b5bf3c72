#!/usr/bin/env bash
# Creates or updates ./.venv from uv.lock, and installs the Debian packages the
# project uses (Fashion-MNIST, Chromium for the report's browser test) when they
# are missing and apt-get is usable. Safe to run again: it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

want_apt=()
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || want_apt+=(dataset-fashion-mnist)
if [ "${FASHION_TUNE_SKIP_BROWSER:-0}" != 1 ] && ! command -v chromium >/dev/null 2>&1; then
  want_apt+=(chromium)
fi
if [ ${#want_apt[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo -n"
  if command -v apt-get >/dev/null 2>&1 && { [ -z "$sudo" ] || sudo -n true 2>/dev/null; }; then
    echo "setup: installing Debian packages: ${want_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get install -y -q "${want_apt[@]}" >/dev/null 2>&1 || {
      $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q "${want_apt[@]}" >/dev/null
    }
  else
    echo "setup: apt-get not usable; missing: ${want_apt[*]} (fashion-mnist can also be downloaded, see README)" >&2
  fi
fi

# uv: use the one on PATH, else bootstrap a pinned copy into .tools/
UV_VERSION=0.13.8
if command -v uv >/dev/null 2>&1; then
  UV=uv
else
  if [ ! -x .tools/bin/uv ]; then
    echo "setup: bootstrapping uv ${UV_VERSION} into .tools/"
    python3 -m venv .tools
    .tools/bin/pip install -q "uv==${UV_VERSION}"
  fi
  UV=.tools/bin/uv
fi
# bytecode compiled once here: every Ray worker and CLI start would otherwise compile
# torch and Ray from source when PYTHONDONTWRITEBYTECODE is set
"$UV" sync --locked --quiet --extra inception --compile-bytecode
