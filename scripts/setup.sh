#!/usr/bin/env bash
# Makes this machine able to build and test evlog; safe to run again (it only installs
# what is missing, and runs `apt-get update` only when it has something to install).
#
#   scripts/setup.sh
#
# Needs: Debian or Ubuntu for the system packages (elsewhere it says what to install),
# root or sudo only when a package is missing, and Rust installed with rustup.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the build needs, and why:
#   libclang-dev  librocksdb-sys generates its Rust bindings with bindgen, which loads libclang
#   g++           compiles RocksDB's C++ and lz4's C (the cc crate runs c++ / cc)
packages=(libclang-dev g++)

# Oldest Rust that builds the workspace (rust-version in Cargo.toml).
rust_min=1.85

# Runs a command as root: directly when we are root, else through sudo.
as_root() {
  if [[ $(id -u) -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    echo "setup: need root or sudo to run: $*" >&2
    exit 1
  fi
}

installed() {
  dpkg -s "$1" 2>/dev/null | grep -q '^Status: install ok installed'
}

# --- System packages.
if command -v dpkg >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  missing=()
  for pkg in "${packages[@]}"; do
    installed "$pkg" || missing+=("$pkg")
  done
  if ((${#missing[@]} > 0)); then
    echo "setup: installing ${missing[*]}"
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y --no-install-recommends "${missing[@]}"
  fi
else
  echo "setup: not Debian/Ubuntu: install libclang and a C++ compiler yourself" \
    "(packages ${packages[*]} on Debian)" >&2
fi

# --- Rust.
if ! command -v cargo >/dev/null 2>&1; then
  if [[ -x $HOME/.cargo/bin/cargo ]]; then
    echo "setup: cargo is installed but not on PATH: run  source \"\$HOME/.cargo/env\"" >&2
  else
    echo "setup: cargo not found. Install Rust with rustup (https://rustup.rs):" >&2
    echo "  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh" >&2
  fi
  exit 1
fi

rust_have=$(rustc --version | awk '{print $2}')
if [[ $(printf '%s\n%s\n' "$rust_min" "$rust_have" | sort -V | head -n 1) != "$rust_min" ]]; then
  echo "setup: rustc $rust_have is older than $rust_min: run  rustup update stable" >&2
  exit 1
fi

# rustfmt and clippy: scripts/test.sh runs both.
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  if command -v rustup >/dev/null 2>&1; then
    echo "setup: adding the rustfmt and clippy components"
    rustup component add rustfmt clippy
  else
    echo "setup: rustfmt or clippy is missing and rustup is not available to add them" >&2
    exit 1
  fi
fi

# --- Python, for the minimal Python client the tests run (docs/protocol.md): a
# virtualenv of our own, so nothing is installed into the system's Python.
python_env="$HOME/.cache/evlog/python"
python_requirements=docs/examples/python/requirements.txt
if ! command -v python3 >/dev/null 2>&1; then
  echo "setup: python3 not found: install Python 3.9 or newer (Debian: python3 python3-venv)" >&2
  exit 1
fi
if ! cmp -s "$python_requirements" "$python_env/requirements.txt" 2>/dev/null; then
  echo "setup: installing $python_requirements into $python_env"
  python3 -m venv "$python_env"
  "$python_env/bin/pip" install --quiet --disable-pip-version-check -r "$python_requirements"
  cp "$python_requirements" "$python_env/requirements.txt"
fi

echo "setup: ok (rustc $rust_have, ${packages[*]} present, Python client deps in $python_env)"
