#!/usr/bin/env bash
# Regenerate requirements.lock (every package pinned, with hashes) from pyproject.toml, for
# CPython 3.11 on x86_64 Linux (manylinux 2.28), the platform the quickstart targets.
# uv is used only here, to resolve; installs use plain pip --require-hashes.
set -euo pipefail
cd "$(dirname "$0")/.."
tool=$(mktemp -d)
python3 -m venv "$tool" && "$tool/bin/pip" install -q "uv==0.13.*"
# torch: the CPU wheel (PyPI's default Linux torch pulls 3 GB of CUDA libraries). It comes from
# pip's find-links here (/opt/wheels) or PyTorch's CPU index elsewhere; see README: installing.
printf 'torch==2.13.0+cpu\n' > "$tool/overrides.txt"
"$tool/bin/uv" pip compile pyproject.toml --extra test --generate-hashes --no-strip-extras \
  --override "$tool/overrides.txt" --find-links "${TORCH_FIND_LINKS:-/opt/wheels}" \
  --python-version 3.11 --python-platform x86_64-manylinux_2_28 --no-header -o requirements.lock
sed -i "s#--override $tool/overrides.txt#--override torch==2.13.0+cpu (scripts/lock.sh)#" requirements.lock
rm -rf "$tool"
echo "requirements.lock: $(grep -c '==' requirements.lock) packages"
