#!/usr/bin/env bash
# Install Debian's headless-capable Chromium for the Space's screenshot tests (tests/space/test_space_screenshots.py).
#
#   scripts/install_chromium.sh          # as root (CI), or with passwordless sudo
#
# Idempotent: when a working chromium binary is already present nothing is installed. Runs `apt-get update`
# first so that a fresh machine (empty package lists) can install it. The tests start it with
#   chromium --headless --no-sandbox --disable-gpu --disable-background-networking ... --screenshot=OUT URL
# Override the binary the tests use with TREECOT_CHROMIUM=/path/to/chromium.
set -euo pipefail

say() { printf '[install_chromium] %s\n' "$*" >&2; }

for candidate in "${TREECOT_CHROMIUM:-}" /usr/bin/chromium /usr/bin/chromium-browser; do
    if [ -n "$candidate" ] && [ -x "$candidate" ] && "$candidate" --version >/dev/null 2>&1; then
        say "already installed: $("$candidate" --version)"
        exit 0
    fi
done

if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
else
    say "ERROR: installing chromium needs root (or passwordless sudo); run: apt-get update && apt-get install -y chromium"
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
say "apt-get update"
"${SUDO[@]}" apt-get update -qq
say "apt-get install -y chromium"
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null

if ! /usr/bin/chromium --version >/dev/null 2>&1; then
    say "ERROR: /usr/bin/chromium does not run after the install"
    exit 1
fi
say "installed: $(/usr/bin/chromium --version)"
