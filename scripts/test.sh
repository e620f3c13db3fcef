#!/usr/bin/env bash
# Builds longattn and runs every test: the release build on every ISA path the CPU has; the
# install and the two example applications built against it (find_package, pkg-config); the
# suite again under AddressSanitizer + UndefinedBehaviorSanitizer; a bounded fuzz run of the
# .npy reader.
set -euo pipefail
cd "$(dirname "$0")/.."

# A clone anywhere must pass: no code, build file or script may read a folder beside the project.
if git grep -n -E '\.\./shared' -- ':!*.md' ':!*.npy'; then
  echo "test.sh: the lines above read a folder outside the project; keep what they need in it (tests/golden)" >&2
  exit 1
fi
scripts/install-deps.sh

jobs=$(nproc)
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build/release -j "$jobs"
ctest --test-dir build/release --output-on-failure -j "$jobs"

# Install into a temporary prefix; build and run the examples as an application would.
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install build/release --prefix "$prefix" > /dev/null
rm -rf build/example  # built against this prefix only
cmake -S examples/find_package -B build/example -G Ninja -DCMAKE_PREFIX_PATH="$prefix" > /dev/null
cmake --build build/example
build/example/attention_example
build/example/attention_example_static
PKG_CONFIG_PATH="$(dirname "$(find "$prefix" -name longattn.pc)")" make -s -C examples/pkg_config OUT="$PWD/build/example"
build/example/attention_example_pkgconfig

# Line tables (-g1) are all a sanitizer report prints; full debug info (-g) made the
# heaviest files take 20-35 % longer to compile. -O1 except where the run spends its time
# (the kernels and the fp64 reference, which CMake compiles at -O2 under sanitizers).
cmake -S . -B build/sanitize -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" \
  -DLONGATTN_SANITIZE=address,undefined -DLONGATTN_BUILD_BENCH=OFF
cmake --build build/sanitize -j "$jobs"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build/sanitize --output-on-failure -j "$jobs"

# Fuzz the .npy reader for a bounded time, seeded with the golden arrays and the inputs that
# once crashed it (tests/npy_corpus).
mkdir -p build/fuzz/corpus
clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -I. -Iinclude \
  tests/fuzz/npy_fuzzer.cpp tools/npy.cpp -o build/fuzz/npy_fuzzer
find tests/golden -name '*.npy' -size -64k -exec cp {} build/fuzz/corpus/ \;
cp tests/npy_corpus/*.npy build/fuzz/corpus/
build/fuzz/npy_fuzzer -max_total_time=30 -rss_limit_mb=2048 -artifact_prefix=build/fuzz/ build/fuzz/corpus 2>&1 | tail -n 3
