#!/usr/bin/env bash
# The browser tests drive Debian's Chromium through playwright-core (never a browser download). Installs the
# Debian packages chromium and chromium-driver when no Chromium is there; CHROMIUM_PATH names another binary.
set -euo pipefail
if [ -n "${CHROMIUM_PATH:-}" ]; then
  [ -x "$CHROMIUM_PATH" ] || { echo "CHROMIUM_PATH=$CHROMIUM_PATH is not an executable file" >&2; exit 1; }
  exit 0
fi
[ -x /usr/bin/chromium ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing Debian's chromium and chromium-driver for the browser tests ..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q chromium chromium-driver >/dev/null; }
  exit 0
fi
echo "Chromium is missing: install Debian's packages chromium and chromium-driver (as root: apt-get install chromium chromium-driver), or set CHROMIUM_PATH" >&2
exit 1
