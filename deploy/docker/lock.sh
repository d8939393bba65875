#!/usr/bin/env bash
# Regenerate deploy/docker/requirements.lock: the image's exact dependency set,
# constrained to what the test suite runs with in .venv so that the image runs
# the versions CI tested. Run after changing dependencies in pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/../.."
freeze=$(mktemp)
trap 'rm -f "$freeze"' EXIT
.venv/bin/uv pip freeze --python .venv/bin/python | grep -v -E '^(-e |ceilgrid)' > "$freeze"
.venv/bin/uv pip compile pyproject.toml --universal --python-version 3.11 --no-annotate --generate-hashes \
  -c "$freeze" --custom-compile-command deploy/docker/lock.sh -q \
  -o deploy/docker/requirements.lock
