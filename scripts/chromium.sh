#!/usr/bin/env bash
# Makes sure Debian's Chromium is installed for the dashboard's browser tests (driven by
# playwright-core through its executablePath, /usr/bin/chromium). Installs it with apt-get when
# missing (as root, or through sudo), like scripts/services.sh does for memcached.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then exit 0; fi
echo "services: installing chromium (Debian package) for the dashboard browser tests" >&2
if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
$SUDO apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
