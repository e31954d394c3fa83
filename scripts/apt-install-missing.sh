#!/usr/bin/env bash
# apt-install-missing.sh "<target>" pkg...: install the Debian packages named (those found missing)
# when running as root on a machine with apt-get; otherwise say what <target> needs and go on.
set -u
target=$1; shift
[ $# -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing $* (apt-get) for make $target"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@") >/dev/null
else
  echo "warning: make $target needs $* (apt-get install $*)"
fi
