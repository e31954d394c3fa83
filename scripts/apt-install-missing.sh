#!/usr/bin/env bash
# apt-install-missing.sh "<target>" pkg...: install the Debian packages named (those found missing)
# when running as root on a machine with apt-get. Exits 1, saying what <target> needs, when they are
# not installed (not root, no apt-get, or apt-get failed); the caller decides whether that stops it.
set -u
target=$1; shift
[ $# -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing $* (apt-get) for make $target"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@") >/dev/null && exit 0
fi
echo "warning: make $target needs $* (apt-get install $*)"
exit 1
