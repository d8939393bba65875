#!/usr/bin/env bash
# System packages for the full test suite: a Docker engine (run-launcher test) and
# its compose plugin (full-stack test), nginx (TLS/auth proxy test), Chromium and
# its chromedriver (UI screenshots, the editor's Selenium tests), debootstrap (a
# base image without a registry). Idempotent; skips what is already installed.
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
# The compose plugin (`docker compose`, for the full-stack test). Bookworm has only
# docker-compose 1.x; trixie's docker-compose package is the plugin (a Go binary
# needing only libc6): fetched with a private apt configuration, so the system's
# sources stay bookworm's.
if command -v docker >/dev/null && ! docker compose version >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-system-deps: need root to install the docker compose plugin (the stack test will be skipped)" >&2
    exit 0
  fi
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/sources" "$tmp/lists/partial" "$tmp/cache/archives/partial"
  printf 'Types: deb\nURIs: %s\nSuites: trixie\nComponents: main\nSigned-By: %s\n' \
    "${CEILGRID_DEBIAN_MIRROR:-http://deb.debian.org/debian}" \
    /usr/share/keyrings/debian-archive-keyring.gpg > "$tmp/sources/trixie.sources"
  apt_private=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$tmp/sources"
    -o "Dir::State::Lists=$tmp/lists" -o "Dir::Cache=$tmp/cache" -o APT::Sandbox::User=root)
  apt-get "${apt_private[@]}" update -qq
  (cd "$tmp" && apt-get "${apt_private[@]}" download -qq docker-compose)
  dpkg -i "$tmp"/docker-compose_*.deb >/dev/null
  docker compose version
fi
