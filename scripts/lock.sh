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
# A package pinned only with an extra (uvicorn[standard]==0.54.0) leaves a bare requirement on
# it (llama-cpp-python[server]'s "uvicorn>=0.22") unpinned for pip until late: when PyPI
# published uvicorn 0.55.0 the hash-checked install picked it and failed (2026-12-02). Each such
# line gets the bare name pinned beside it, same version and hashes.
python3 - <<'PY'
import re
lines, out, i = open("requirements.lock").read().split("\n"), [], 0
while i < len(lines):
    m = re.match(r"^([A-Za-z0-9_.-]+)\[[^\]]+\](==\S+ \\)$", lines[i])
    j = i + 1
    while j < len(lines) and lines[j].startswith("    --hash"):
        j += 1
    out += lines[i:j]
    if m:
        out += [m.group(1) + m.group(2)] + lines[i + 1 : j] + ["    # the bare name pinned too (scripts/lock.sh)"]
    i = j
open("requirements.lock", "w").write("\n".join(out))
PY
rm -rf "$tool"
echo "requirements.lock: $(grep -c '==' requirements.lock) packages"
