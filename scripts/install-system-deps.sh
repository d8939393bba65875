#!/usr/bin/env bash
# System packages for the full test suite: a Docker engine (run-launcher test),
# nginx (TLS/auth proxy test), Chromium and its chromedriver (UI screenshots, the
# editor's Selenium tests), debootstrap (a base
# image without a registry). Idempotent; skips what is already installed.
set -euo pipefail
need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v nginx >/dev/null || need+=(nginx)
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v openssl >/dev/null || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-system-deps: need root to install: ${need[*]} (tests needing them will be skipped)" >&2
    exit 0
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
