# Sourced by scripts/quickstart.sh and scripts/rebuild_llama.sh (run from the repository root):
# how llama-cpp-python is compiled, and the stamp that says which build .venv holds.

# llama_requirement FILE: the lock's llama-cpp-python line with its hashes, into FILE
llama_requirement() {
  awk '/^llama-cpp-python==/{p=1} p&&/^ +--hash/{print; next} p&&!/^llama-cpp-python==/{p=0} p{print}' \
    requirements.lock > "$1"
}

# llama_stamp FILE ARGS: identity of a build (the locked sdist and the CMake flags)
llama_stamp() {
  (cat "$1"; echo "$2") | sha256sum | cut -c1-16
}

# llama_compile FILE ARGS: compile and install it into .venv from its hashed sdist with ARGS,
# without pip's wheel cache (a wheel cached from another build would carry that build's instructions)
llama_compile() {
  CMAKE_ARGS="$2" FORCE_CMAKE=1 .venv/bin/pip install -q --no-cache-dir --no-deps \
    --force-reinstall --require-hashes -r "$1"
}
