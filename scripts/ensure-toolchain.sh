#!/usr/bin/env bash
# Makes sure what the build and tests need is on this machine: a Rust toolchain with
# rustfmt and clippy, a C compiler for the bundled SQLite, and Perl and make for the
# vendored OpenSSL, and curl and the openssl command for the EST tests. Installs what is missing
# (Debian packages via apt-get, toolchain components via rustup). Safe to run repeatedly.
set -euo pipefail

need_apt=()
command -v cc >/dev/null 2>&1 || need_apt+=(gcc libc6-dev)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
# The vendored OpenSSL (bastion-tls) is configured by Perl scripts and built with make.
command -v make >/dev/null 2>&1 || need_apt+=(make)
perl -MIPC::Cmd -MFile::Compare -e 1 >/dev/null 2>&1 || need_apt+=(perl)
# The EST tests drive the server with clients the project did not write.
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need_apt[*]}" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install Rust with rustup (https://rustup.rs) and re-run" >&2
  exit 1
fi
if command -v rustup >/dev/null 2>&1; then
  cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
  cargo clippy --version >/dev/null 2>&1 || rustup component add clippy
fi
