#!/usr/bin/env bash
# Regenerate requirements.lock (every package pinned, with hashes) from pyproject.toml, for
# CPython 3.11 on x86_64 Linux (manylinux 2.28), the platform the quickstart targets.
# uv is used only here, to resolve; installs use plain pip --require-hashes.
set -euo pipefail
cd "$(dirname "$0")/.."
tool=$(mktemp -d)
python3 -m venv "$tool" && "$tool/bin/pip" install -q "uv==0.13.*"
"$tool/bin/uv" pip compile pyproject.toml --extra test --generate-hashes --no-strip-extras \
  --python-version 3.11 --python-platform x86_64-manylinux_2_28 --no-header -o requirements.lock
rm -rf "$tool"
echo "requirements.lock: $(grep -c '==' requirements.lock) packages"
