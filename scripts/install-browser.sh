#!/usr/bin/env bash
# Debian's Chromium (and its driver) for the tests that render pages headless: installed once, where
# missing, so `make test` on a fresh machine needs nothing else.
set -euo pipefail
command -v chromium >/dev/null && exit 0
export DEBIAN_FRONTEND=noninteractive
sudo_cmd=$([ "$(id -u)" = 0 ] && echo "" || echo sudo)
$sudo_cmd apt-get update -qq
$sudo_cmd apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null
