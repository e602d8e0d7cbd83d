#!/bin/sh
# Checks what a make target needs and installs what is missing on Debian.
# Usage: tools/deps.sh GROUP...   (build, check, fuzz, bench)
# As root it runs apt-get; otherwise it prints the exact apt-get line and fails.
set -eu

missing=""
need_cmd() { command -v "$1" >/dev/null 2>&1 || missing="$missing $2"; }
need_pc()  { pkg-config --exists "$1" 2>/dev/null || missing="$missing $2"; }
need_file() { [ -e "$1" ] || missing="$missing $2"; }

for group in "$@"; do
  case "$group" in
    build)
      need_cmd cc gcc; need_cmd make make; need_cmd cmake cmake; need_cmd pkg-config pkg-config
      need_pc libcrypto libssl-dev; need_pc libuv libuv1-dev; need_pc libcares libc-ares-dev
      need_pc sqlite3 libsqlite3-dev ;;
    check)
      # gcc's ASan/UBSan runtimes come with gcc itself (libasan8, libubsan1).
      need_file /usr/lib/gcc/x86_64-linux-gnu/12/libasan.so libasan8
      need_file /usr/lib/gcc/x86_64-linux-gnu/12/libubsan.so libubsan1
      need_cmd python3 python3
      need_cmd dnsmasq dnsmasq-base
      need_cmd sipp sip-tester
      need_cmd sipsak sipsak
      need_file /usr/sbin/kamailio kamailio
      need_cmd openssl openssl ;;
    fuzz)
      need_cmd clang clang
      need_file /usr/lib/llvm-14/lib/clang/14.0.6/lib/linux/libclang_rt.fuzzer-x86_64.a libclang-rt-14-dev ;;
    bench)
      need_pc sofia-sip-ua libsofia-sip-ua-dev; need_pc libosip2 libosip2-dev
      need_pc libre libre-dev; need_pc belle-sip libbellesip-dev
      need_cmd valgrind valgrind
      need_cmd python3 python3; need_cmd sipp sip-tester; need_cmd taskset util-linux
      need_file /usr/sbin/kamailio kamailio ;;
    *) echo "deps.sh: unknown group $group" >&2; exit 2 ;;
  esac
done

# Only the first dependency check of a fresh machine needs pkg-config itself.
[ -z "$missing" ] && exit 0
pkgs=$(echo $missing | tr ' ' '\n' | sort -u | tr '\n' ' ')
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "deps: installing $pkgs"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $pkgs
else
  echo "deps: missing packages. Run:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y $pkgs" >&2
  exit 1
fi
