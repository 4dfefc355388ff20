#!/usr/bin/env bash
# Installs the Debian packages mpicr needs, only those missing, as root or through sudo.
#   scripts/system-packages.sh build   what building and running needs (compilers for the wrappers)
#   scripts/system-packages.sh test    that, plus what the tests and benchmarks compare against
set -euo pipefail

build=(gcc g++ gfortran make iproute2 procps util-linux)
test=(mpich libmpich-dev python3)

want=("${build[@]}")
if [[ "${1:-build}" == test ]]; then
    want+=("${test[@]}")
fi

missing=()
for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
    exit 0
fi

sudo=()
if [[ $(id -u) -ne 0 ]]; then
    sudo=(sudo)
fi
echo "mpicr: installing Debian packages: ${missing[*]}"
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
