#!/usr/bin/env bash
# Installs the Debian 12 packages longattn builds with, and any packages named as arguments
# (what a script needs beyond the build), skipping those already there.
# Runs as root, or through sudo otherwise. Safe to run again.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  # Debian's oneDNN CMake config looks for OpenCL (a Recommends, which
  # --no-install-recommends skips): without it find_package(dnnl) fails.
  libdnnl-dev ocl-icd-opencl-dev libtbb-dev libxsimd-dev xtl-dev doctest-dev libbenchmark-dev
  libcli11-dev nlohmann-json3-dev
  libopenmpi-dev openmpi-bin
  clang libclang-rt-14-dev python3-numpy
  python3-dev python3-venv python3-pip
  "$@"
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "Installing: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
