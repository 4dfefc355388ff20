#!/usr/bin/env bash
# Installs mpicr on a fresh Debian machine and runs its demo.
#   scripts/install.sh            installs into /usr/local (root) or ~/.local (others)
#   PREFIX=/opt/mpicr scripts/install.sh
# Needs Rust (cargo) already; installs the system packages it needs itself.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null; then
    echo "mpicr: cargo is missing; install Rust first (https://rustup.rs)" >&2
    exit 1
fi
bash scripts/system-packages.sh build

echo "mpicr: building (release)"
cargo build --release --workspace --locked

if [[ $(id -u) -eq 0 ]]; then
    prefix=${PREFIX:-/usr/local}
else
    prefix=${PREFIX:-$HOME/.local}
fi
build=${CARGO_TARGET_DIR:-target}/release
mkdir -p "$prefix/bin"
for b in mpicr mpirun mpiexec mpi_checkpoint mpi_restart mpicr-heat; do
    install -m 0755 "$build/$b" "$prefix/bin/"
done
if [[ -x scripts/install-prefix.sh ]]; then
    bash scripts/install-prefix.sh "$prefix"
fi
echo "mpicr: installed into $prefix/bin"
case ":$PATH:" in
    *":$prefix/bin:"*) ;;
    *) echo "mpicr: add $prefix/bin to your PATH" ;;
esac

"$prefix/bin/mpicr" demo
