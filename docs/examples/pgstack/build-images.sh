#!/bin/bash
# Builds the images of the example stack from Debian's packages, without a
# registry or docker: mmdebstrap makes a root filesystem, `warren image pack
# --rootfs` turns it into an image archive for `warren image load`.
#
#   build-images.sh ROOTFS_DIR OUT_DIR
#
# ROOTFS_DIR keeps the root filesystems (an existing one is reused: they
# depend only on this script and pg-start.sh); OUT_DIR receives postgres.tar
# and nginx.tar. Needs root (or mmdebstrap's unshare mode), mmdebstrap and
# the Debian mirror; WARREN names the warren binary (default: warren).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rootfs=${1:?usage: build-images.sh ROOTFS_DIR OUT_DIR}
out=${2:?usage: build-images.sh ROOTFS_DIR OUT_DIR}
warren=${WARREN:-warren}
suite=bookworm
mkdir -p "$rootfs" "$out"
# mmdebstrap filters every package through mmtarfilter (python3): the
# system's python, not a version manager's shim found earlier on PATH, which
# costs a process start per package.
export PATH="/usr/bin:$PATH"

# Documentation, manuals, locales and PostgreSQL's JIT (LLVM, a third of the
# size; the server runs with jit=off) are left out of the images.
slim=(
	--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*'
	--dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/i18n/*'
	--dpkgopt='path-exclude=/usr/share/info/*' --dpkgopt='path-exclude=/usr/share/zoneinfo/right/*'
)

build() { # name, then mmdebstrap arguments
	local name=$1; shift
	[ -s "$rootfs/$name.tar" ] && return 0
	# The output format follows the file name: it must end in .tar.
	mmdebstrap --quiet --variant=essential "${slim[@]}" "$@" "$suite" "$rootfs/$name.tmp.tar"
	mv "$rootfs/$name.tmp.tar" "$rootfs/$name.tar"
}

build postgres --include=postgresql-15 \
	--dpkgopt='path-exclude=/usr/lib/x86_64-linux-gnu/libLLVM*' \
	--dpkgopt='path-exclude=/usr/lib/x86_64-linux-gnu/libz3*' \
	--dpkgopt='path-exclude=/usr/lib/postgresql/15/lib/llvmjit*' \
	--dpkgopt='path-exclude=/usr/lib/postgresql/15/lib/bitcode/*' \
	--customize-hook='rm -rf "$1/var/lib/postgresql/15" "$1/etc/postgresql/15"' \
	--customize-hook="upload $here/pg-start.sh /usr/local/bin/pg-start" \
	--customize-hook='chmod 0755 "$1/usr/local/bin/pg-start"' \
	--customize-hook='install -d -o postgres -g postgres -m 0700 "$1/var/lib/postgresql/data"' &
pg=$!
build nginx --include=nginx-light \
	--customize-hook='rm -f "$1/etc/nginx/sites-enabled/default"' &
ng=$!
wait $pg
wait $ng

"$warren" image pack --rootfs "$rootfs/postgres.tar" --name example/postgres:15 \
	--entrypoint /usr/local/bin/pg-start --env PGDATA=/var/lib/postgresql/data --expose 5432/tcp -o "$out/postgres.tar"
"$warren" image pack --rootfs "$rootfs/nginx.tar" --name example/nginx:1.22 \
	--entrypoint /usr/sbin/nginx --cmd -g --cmd 'daemon off;' --expose 80/tcp -o "$out/nginx.tar"
