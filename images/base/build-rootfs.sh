#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
# Build the root filesystem of d2s/base with debootstrap and write it as a gzip'd tarball.
# Usage: build-rootfs.sh OUT_TARBALL WORKDIR   (as root; WORKDIR must not be mounted noexec)
# Environment: D2S_DEBIAN_MIRROR (default http://deb.debian.org/debian).
set -euo pipefail

out=${1:?usage: build-rootfs.sh OUT_TARBALL WORKDIR}
work=${2:?usage: build-rootfs.sh OUT_TARBALL WORKDIR}
here=$(cd "$(dirname "$0")" && pwd)
suite=bookworm
mirror=${D2S_DEBIAN_MIRROR:-http://deb.debian.org/debian}
include=$(grep -v -E '^\s*(#|$)' "$here/packages.txt" | tr -s ' \n' ',' | sed 's/,$//')
rootfs="$work/rootfs"

if [[ $(id -u) -ne 0 ]]; then
    echo "build-rootfs.sh: debootstrap needs root" >&2
    exit 1
fi
rm -rf "$rootfs"
mkdir -p "$rootfs"

debootstrap --variant=minbase --components=main --include="$include" "$suite" "$rootfs" "$mirror"

# Sources for images built FROM this one (security updates are on the same mirror host).
cat >"$rootfs/etc/apt/sources.list" <<SOURCES
deb $mirror $suite main
deb $mirror $suite-updates main
deb ${mirror%/debian}/debian-security $suite-security main
SOURCES

# Container conventions, as the usual Debian container images have them.
cat >"$rootfs/usr/sbin/policy-rc.d" <<'POLICY'
#!/bin/sh
# No init system in a container: never start services from package scripts.
exit 101
POLICY
chmod 0755 "$rootfs/usr/sbin/policy-rc.d"
cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT
cat >"$rootfs/etc/apt/apt.conf.d/docker-no-languages" <<'APT'
Acquire::Languages "none";
APT
cat >"$rootfs/etc/apt/apt.conf.d/docker-no-recommends" <<'APT'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
APT
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim" <<'DPKG'
# Keep images small: no docs, man pages or translations (copyright files stay).
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
DPKG
find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$rootfs/usr/share/man/"* "$rootfs/usr/share/info/"*
find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +

# Host-specific and volatile files: docker provides /dev, /etc/hosts, /etc/hostname, /etc/resolv.conf.
rm -rf "$rootfs/dev/"* "$rootfs/proc/"* "$rootfs/sys/"* "$rootfs/tmp/"* "$rootfs/run/"*
rm -rf "$rootfs/var/lib/apt/lists/"* "$rootfs/var/cache/apt/"*.bin "$rootfs/var/cache/apt/archives/"*.deb
rm -rf "$rootfs/var/cache/ldconfig/aux-cache" "$rootfs/var/log/"*.log "$rootfs/var/log/apt/"*
rm -f "$rootfs/etc/resolv.conf" "$rootfs/etc/hostname"
: >"$rootfs/etc/machine-id"

tmp="$out.tmp.$$"
tar --numeric-owner --xattrs --sort=name -C "$rootfs" -c . | gzip -1 >"$tmp"
mv -f "$tmp" "$out"
rm -rf "$rootfs"
