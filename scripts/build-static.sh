#!/usr/bin/env bash
# Builds the release `demo` as one fully static x86_64 musl executable,
# checks that it is static, runs its self-check (fork, server and socket
# hand-off inside the static binary), and prints its path as the last line.
#
# Route 1: rustup's x86_64-unknown-linux-musl target, when it is installed.
# Route 2: Debian packages only: rustc-web/cargo-web with the matching
#          rust-web-src std sources and -Zbuild-std, musl-dev for crt objects
#          and libc, libunwind-14-dev for the unwinder (plus a one-function
#          shim: Debian's libunwind calls glibc's __fprintf_chk).
# ROUTE=rustup|debian forces one.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=x86_64-unknown-linux-musl
log() { printf '[build-static] %s\n' "$*" >&2; }

route=${ROUTE:-}
if [ -z "$route" ]; then
  if command -v rustup >/dev/null && rustup target list --installed 2>/dev/null | grep -qx "$TARGET"; then
    route=rustup
  else
    route=debian
  fi
fi

debian_toolchain() {
  local pkgs="rustc-web cargo-web rust-web-src libunwind-14-dev musl-dev musl-tools"
  # shellcheck disable=SC2086
  if ! dpkg -s $pkgs >/dev/null 2>&1; then
    log "installing $pkgs"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq $pkgs >/dev/null
  fi
  # rustc links the musl target "self-contained": crt objects, libc.a and
  # libunwind.a from this directory of the (Debian) sysroot.
  local sc
  sc="$(/usr/bin/rustc --print sysroot)/lib/rustlib/$TARGET/lib/self-contained"
  if [ ! -f "$sc/libunwind.a" ]; then
    log "filling $sc"
    mkdir -p "$sc"
    cp /usr/lib/x86_64-linux-musl/{crt1.o,Scrt1.o,rcrt1.o,crti.o,crtn.o,libc.a} "$sc/"
    for f in crtbegin.o crtbeginS.o crtend.o crtendS.o; do cp "$(gcc -print-file-name=$f)" "$sc/"; done
    local tmp
    tmp=$(mktemp -d)
    printf '%s\n' '#include <stdarg.h>' '#include <stdio.h>' \
      'int __fprintf_chk(FILE *f, int flag, const char *fmt, ...) {' \
      '  (void)flag; va_list ap; va_start(ap, fmt); int r = vfprintf(f, fmt, ap); va_end(ap); return r; }' \
      > "$tmp/shim.c"
    musl-gcc -O2 -fPIC -c "$tmp/shim.c" -o "$tmp/shim.o"
    cp /usr/lib/llvm-14/lib/libunwind.a "$tmp/libunwind.a"
    ar rcs "$tmp/libunwind.a" "$tmp/shim.o"
    mv "$tmp/libunwind.a" "$sc/libunwind.a"
    rm -rf "$tmp"
  fi
}

# Runs Debian's cargo (rustup's shims would shadow it) with std built from source.
debian_cargo() {
  PATH=/usr/bin:$PATH RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1 \
    /usr/bin/cargo "$@" --target "$TARGET" --target-dir target/musl-debian
}

case "$route" in
  rustup)
    log "route: rustup's $TARGET target"
    cargo build --profile static --target "$TARGET" -p demo
    cargo build -p ipc-core --no-default-features --target "$TARGET"
    out=${CARGO_TARGET_DIR:-target}/$TARGET/static/demo
    ;;
  debian)
    log "route: Debian's rustc-web with -Zbuild-std"
    debian_toolchain
    debian_cargo build --profile static -Zbuild-std=std,panic_abort -p demo
    # ipc-core alone, without std: only core is needed.
    debian_cargo build -Zbuild-std=core -p ipc-core --no-default-features
    out=target/musl-debian/$TARGET/static/demo
    ;;
  *) log "unknown ROUTE=$route"; exit 2 ;;
esac

if readelf -lW "$out" | grep -q 'Requesting program interpreter' || readelf -dW "$out" | grep -q '(NEEDED)'; then
  log "NOT static: $out"
  readelf -lW "$out" | grep -i interpreter >&2 || true
  readelf -dW "$out" | grep NEEDED >&2 || true
  exit 1
fi
log "static: $(file -b "$out" | cut -d, -f1-5)"
log "size: $(stat -c %s "$out") bytes (stripped)"
log "self-check of the static binary:"
"$out" >&2
echo "$out"
