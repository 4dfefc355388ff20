#!/bin/sh
# Installs mpicr's libmpi, headers, Fortran module and compiler wrappers into PREFIX:
#   PREFIX/bin/{mpicc,mpicxx,mpif90,mpifort,mpif77}
#   PREFIX/include/{mpi.h,mpif.h,mpi.f90,mpi.mod}
#   PREFIX/lib/{libmpi.so,libmpi.a}
# from a release build (target/release, or $MPICR_BUILD_DIR). Run `cargo build --release`
# first. The launcher (mpicr, mpirun, mpiexec) is installed by the top-level install script.
set -eu

if [ $# -ne 1 ]; then
    echo "usage: $0 PREFIX" >&2
    exit 2
fi
prefix=$1
here=$(cd "$(dirname "$0")/.." && pwd)
build=${MPICR_BUILD_DIR:-${CARGO_TARGET_DIR:-$here/target}/release}
abi=$here/crates/abi

for f in libmpi.so libmpi.a mpicc mpicxx mpif90 mpifort mpif77; do
    if [ ! -f "$build/$f" ]; then
        echo "install-prefix: $build/$f is missing; run cargo build --release first" >&2
        exit 1
    fi
done

mkdir -p "$prefix/bin" "$prefix/include" "$prefix/lib"
for w in mpicc mpicxx mpif90 mpifort mpif77; do
    install -m 0755 "$build/$w" "$prefix/bin/$w"
done
install -m 0755 "$build/libmpi.so" "$prefix/lib/libmpi.so"
install -m 0644 "$build/libmpi.a" "$prefix/lib/libmpi.a"
for h in mpi.h mpif.h mpi.f90; do
    install -m 0644 "$abi/include/$h" "$prefix/include/$h"
done

# The Fortran module is specific to the compiler version: build it with the installed one.
if command -v "${MPICR_FC:-gfortran}" >/dev/null 2>&1; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    "${MPICR_FC:-gfortran}" -c -I"$prefix/include" -J "$tmp" "$prefix/include/mpi.f90" -o "$tmp/mpi.o"
    install -m 0644 "$tmp/mpi.mod" "$prefix/include/mpi.mod"
else
    echo "install-prefix: gfortran not found; the Fortran mpi module is not installed" >&2
fi
echo "installed libmpi and the compiler wrappers into $prefix"
