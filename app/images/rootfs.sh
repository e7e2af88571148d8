#!/usr/bin/env bash
# rootfs.sh OUT.tar PACKAGE...: a Debian bookworm minbase root file system holding the
# given packages, written as a tarball to OUT.tar (the build recipe of Traindeck's local
# engine images; `traindeck images build ENGINE` runs it, then `docker import`s OUT.tar).
#
# Only Debian's package mirror is needed (TRAINDECK_DEBIAN_MIRROR, default
# http://deb.debian.org/debian); debootstrap must be installed and the script run as root.
set -euo pipefail

out=${1:?usage: rootfs.sh OUT.tar PACKAGE...}
shift
packages=$(IFS=,; echo "$*")
mirror=${TRAINDECK_DEBIAN_MIRROR:-http://deb.debian.org/debian}

command -v debootstrap >/dev/null || { echo "debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }
[[ ${EUID} -eq 0 ]] || { echo "debootstrap needs root: run as root" >&2; exit 1; }

work=$(mktemp -d /var/tmp/traindeck-rootfs.XXXXXX)
trap 'rm -rf --one-file-system "${work}"' EXIT
if ! debootstrap --variant=minbase --include="${packages}" bookworm "${work}/root" "${mirror}" \
        >"${work}/debootstrap.log" 2>&1; then
    tail -n 5 "${work}/debootstrap.log" >&2
    echo "debootstrap failed (mirror ${mirror})" >&2
    exit 1
fi
cd "${work}/root"
[ -e usr/bin/python ] || ln -s python3 usr/bin/python
# Caches, docs and host-specific files the engine provides at run time.
rm -rf var/cache/apt/archives/*.deb var/cache/apt/*.bin var/lib/apt/lists/* \
       usr/share/doc/* usr/share/man/* usr/share/info/* var/log/*.log etc/resolv.conf etc/hostname
tar --numeric-owner -C "${work}/root" -c . >"${out}.tmp"
mv -f "${out}.tmp" "${out}"
