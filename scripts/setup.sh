#!/usr/bin/env bash
# Shared by demo.sh and test.sh: system compilers/devices (apt, when root) and a .venv with tinyjax installed.
#   setup.sh "apt packages..." "pip extras"
set -euo pipefail
cd "$(dirname "$0")/.."
packages=$1 extras=$2
missing=$(for p in $packages; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
if [ -n "$missing" ]; then
  if [ "$(id -u)" != 0 ]; then echo "please install: $missing (apt-get, as root)" >&2; exit 1; fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
# (pip 23.2, the one Python 3.11 ships, rejects an empty extras list: ".[]")
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extras:+[$extras]}"
