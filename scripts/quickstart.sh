#!/usr/bin/env bash
# One entry point for a fresh machine:
#   bash scripts/quickstart.sh run    set up everything, materialize the whole pipeline once
#   bash scripts/quickstart.sh test   set up everything, run the test suite
# Setup is idempotent: system packages and the virtualenv are only installed when missing
# or when pyproject.toml or requirements.lock changed. Regenerate the lock after changing a
# dependency: bash scripts/lock.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. scripts/llama_build.sh

log() { printf '\n==> %s\n' "$*"; }

setup() {
  local need=()
  command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)
  [ -x /usr/bin/python3 ] || need+=(python3-minimal)
  # the browser test drives Debian's Chromium (Playwright's own browser download is not used)
  if [ "${1:-}" = test ] && [ ! -x /usr/bin/chromium ]; then need+=(chromium); fi
  # the PostgreSQL instance test starts a throwaway server of its own (Debian's postgresql)
  if [ "${1:-}" = test ] && ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then need+=(postgresql); fi
  if [ ${#need[@]} -gt 0 ]; then
    log "installing system packages: ${need[*]}"
    local SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
  fi
  local py=${PYTHON:-python3}
  "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
    || { echo "Python 3.11+ is required (found $("$py" --version))" >&2; exit 1; }
  [ -x .venv/bin/python ] || { log "creating .venv"; "$py" -m venv .venv; }
  # llama.cpp is compiled for the instruction sets this machine really runs (scripts/llama_cmake_args.sh
  # executes one instruction of each), never -march=native: docs/installing.md says why.
  local cmake_args; cmake_args=$(bash scripts/llama_cmake_args.sh)
  local llama_req; llama_req=$(mktemp)
  llama_requirement "$llama_req"
  # two stamps: the compiled llama.cpp (its locked sdist and flags), and everything else
  local llama_stamp; llama_stamp=$(llama_stamp "$llama_req" "$cmake_args")
  local stamp; stamp=$(cat pyproject.toml requirements.lock | sha256sum | cut -c1-16)
  if [ "$(cat .venv/.llama_installed 2>/dev/null)" != "$llama_stamp" ]; then
    log "compiling llama-cpp-python (about 7 minutes on 2 cores) with: $cmake_args"
    llama_compile "$llama_req" "$cmake_args"
    echo "$llama_stamp" > .venv/.llama_installed
    rm -f .venv/.build_checked
  fi
  rm -f "$llama_req"
  if [ "$(cat .venv/.installed 2>/dev/null)" != "$stamp" ]; then
    log "installing Python packages from requirements.lock"
    # every other package at the version and hash the lock names; then the platform itself, no new deps
    .venv/bin/pip install -q --require-hashes -r requirements.lock
    .venv/bin/pip install -q --no-deps -e .
    echo "$stamp" > .venv/.installed
  fi
  # the compiled llama.cpp must run here: load the embedded model and decode a few tokens in a
  # child process; a build that dies (SIGILL) stops set-up with one line and the rebuild command
  if [ "$(cat .venv/.build_checked 2>/dev/null)" != "$llama_stamp" ]; then
    log "checking the llama.cpp build (load the model, decode a few tokens)"
    .venv/bin/python -m synth_assets.core.generators.build_check || exit 1
    echo "$llama_stamp" > .venv/.build_checked
  fi
  export PATH="$ROOT/.venv/bin:$PATH"
  export DAGSTER_HOME="${DAGSTER_HOME:-$ROOT/dagster_home}"
  mkdir -p "$DAGSTER_HOME"
  [ -f "$DAGSTER_HOME/dagster.yaml" ] || cp "$ROOT/dagster_home/dagster.yaml" "$DAGSTER_HOME/"
}

case "${1:-}" in
  run)
    setup
    log "materializing every asset (a new generation) into ${SYNTH_DUCKDB_PATH:-$DAGSTER_HOME/warehouse.duckdb}"
    start=$(date +%s)
    synth run   # the next generation (a dynamic partition of the graph), recorded in $DAGSTER_HOME
    log "done in $(( $(date +%s) - start ))s"
    synth summary
    cat <<MSG

Open the UI:  DAGSTER_HOME=$DAGSTER_HOME .venv/bin/dagster dev -w workspace.yaml   (http://127.0.0.1:3000)
MSG
    ;;
  test)
    setup test
    shift
    log "linting (ruff check, ruff format --check)"
    ruff check . && ruff format --check . >/dev/null \
      || { echo "lint: fix with .venv/bin/ruff check --fix . && .venv/bin/ruff format ." >&2; exit 1; }
    log "running the tests"
    python -m pytest "$@"
    ;;
  *)
    echo "usage: bash scripts/quickstart.sh run|test [pytest args]" >&2
    exit 2
    ;;
esac
