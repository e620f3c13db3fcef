#!/usr/bin/env bash
# Builds longattn and runs every test: the release build on every ISA path the CPU has (with
# ring attention on 1-4 MPI ranks); a few hundred random cases of `longattn selftest`; the
# Python package (pip install ., pytest); the install and the two example applications built
# against it (find_package, pkg-config); the suite again under AddressSanitizer +
# UndefinedBehaviorSanitizer; the concurrency cases under ThreadSanitizer; bounded fuzz runs of
# the .npy reader, the validation and the command line.
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
# Random cases over every option, shape and dtype on every ISA path and 1 and 2 threads, a new
# seed each run: the seed is printed, and every failure with the line that reproduces it.
build/release/tools/longattn selftest --cases 300

# The Python package as a user installs it: `pip install .` in a virtual environment (its build
# and test requirements from PyPI, PyTorch among them for the drop-in's tests), then its tests.
python3 -m venv build/python-venv
build/python-venv/bin/pip install -q ".[test]"
(cd build && python-venv/bin/python -m pytest -q ../python/tests)

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
for ring in build/example/ring_example build/example/ring_example_pkgconfig; do
  OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun -np 2 --oversubscribe "$ring"
done

# Line tables (-g1) are all a sanitizer report prints; full debug info (-g) made the
# heaviest files take 20-35 % longer to compile. -O1 except where the run spends its time
# (the kernels and the fp64 reference, which CMake compiles at -O2 under sanitizers).
cmake -S . -B build/sanitize -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" \
  -DLONGATTN_SANITIZE=address,undefined -DLONGATTN_BUILD_BENCH=OFF
cmake --build build/sanitize -j "$jobs"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build/sanitize --output-on-failure -j "$jobs"

# ThreadSanitizer on the concurrency cases whose calls each run on their caller's thread: 8
# application threads at once on attention(), on one plan and on one layer, every thread the
# application's; tests/tsan.supp ignores libtbb's own clearing of the memory it recycles (each
# suppression explained there). With TBB's own workers too, their hand-offs happen inside
# Debian's uninstrumented libtbb, and TSan reports every block a worker ran (tried: TBB's
# blocked_range, our scratch, std::string); only a TBB built with TSan would let those cases in.
cmake -S . -B build/tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" -DLONGATTN_SANITIZE=thread -DLONGATTN_BUILD_BENCH=OFF
cmake --build build/tsan -j "$jobs" --target longattn_concurrency_tests
TSAN_OPTIONS="halt_on_error=1 suppressions=$PWD/tests/tsan.supp" build/tsan/tests/longattn_concurrency_tests \
  --test-case="*each call on its caller's thread*,one layer's forward from 8 threads*"

# Fuzz for a bounded time each, under AddressSanitizer and UndefinedBehaviorSanitizer (a clang
# build): the .npy reader, attention()'s validation of shapes, strides and options (an Error
# before any write, or the fp64 reference's answer), and the command line's argument parsing.
# Each starts from its corpus folder in tests/fuzz/corpus (the npy one also from the golden
# arrays); an input that crashes one is left in build/fuzz/ as <name>-crash-*, to be added to
# that folder once fixed.
cmake -S . -B build/fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" -DLONGATTN_SANITIZE=address,undefined \
  -DLONGATTN_FUZZERS=ON -DLONGATTN_BUILD_TESTS=OFF
cmake --build build/fuzz -j "$jobs" --target npy_fuzzer validation_fuzzer cli_fuzzer
mkdir -p build/fuzz/corpus/npy build/fuzz/corpus/validation build/fuzz/corpus/cli
find tests/golden -name '*.npy' -size -64k -exec cp {} build/fuzz/corpus/npy/ \;
fuzz() {
  local name=$1 seconds=$2
  shift 2
  build/fuzz/tests/fuzz/"$name"_fuzzer -max_total_time="$seconds" -rss_limit_mb=2048 \
    -artifact_prefix=build/fuzz/"$name"- "$@" build/fuzz/corpus/"$name" tests/fuzz/corpus/"$name" 2>&1 | tail -n 2
}
fuzz npy 30
fuzz validation 60
fuzz cli 30 -dict=tests/fuzz/cli.dict
