#!/usr/bin/env bash
# A Debian 13 (trixie) root file system with GIMP 3, GEGL 0.4.62 and what
# gegl-vae builds with: Debian 12 has no GIMP 3.  Needs root and debootstrap.
#   gimp3-root.sh ROOT            makes ROOT once; a later call only installs
#                                 packages added to the list below
#   gimp3-root.sh ROOT run CMD…   runs CMD (bash -c) inside ROOT with this
#                                 repository at /src and ../shared/models at /models
# proc, dev and the two folders are mounted for the command and unmounted on
# any exit (a trap), failure or signal included.  One caller at a time (flock).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
[ $# -ge 1 ] || { echo "usage: gimp3-root.sh ROOT [run CMD…]" >&2; exit 2; }
target=$(realpath -m "$1")
shift
packages=(
  gimp libgimp-3.0-dev gegl libgegl-dev libbabl-dev   # GIMP 3.0.4, GEGL 0.4.62, gegl-imgcmp
  meson ninja-build gcc pkg-config gettext
  libglib2.0-dev libjson-glib-dev libpng-dev libopenblas-openmp-dev zlib1g-dev
  python3-gi                       # GIMP's Python-fu; GEGL from Python (tests/gimp3/bench.py)
  xvfb xdotool imagemagick         # the GUI: screenshot (docs/), menus and dialog through
  dbus at-spi2-core gir1.2-atspi-2.0  # the accessibility tree
  fonts-dejavu-core fonts-noto-cjk locales-all
)

[ "$(id -u)" -eq 0 ] || { echo "gimp3-root: needs root (debootstrap, chroot, mount)" >&2; exit 1; }
command -v debootstrap > /dev/null ||
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap > /dev/null
mkdir -p "$(dirname "$target")"
exec 9> "$target.lock"
flock 9

mounted=()
unmount_all () {
  local i
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[i]}" 2>/dev/null || true; done
  mounted=()
}
trap unmount_all EXIT
trap 'exit 130' INT TERM
mount_in () { # mount-arguments… TARGET (the last one)
  mount "$@"
  mounted+=("${!#}")
}

in_root () {
  chroot "$1" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    DEBIAN_FRONTEND=noninteractive "${@:2}"
}

if [ ! -f "$target/.gegl-vae-packages" ]; then
  # made under another name and renamed when complete: a half-made root is never reused
  mirror=$(grep -hsE '^URIs:|^deb ' /etc/apt/sources.list.d/* /etc/apt/sources.list |
             grep -m1 -oE 'https?://[^ ]+/debian/?' || true)
  mirror=${mirror:-http://deb.debian.org/debian}
  rm -rf "$target.new"
  echo "gimp3-root: debootstrap trixie from $mirror into $target" >&2
  debootstrap --variant=minbase trixie "$target.new" "$mirror" > "$target.debootstrap.log" 2>&1 ||
    { tail -20 "$target.debootstrap.log" >&2; exit 1; }
  : > "$target.new/.gegl-vae-packages"
  mv "$target.new" "$target"
fi

if [ "$(cat "$target/.gegl-vae-packages")" != "${packages[*]}" ]; then
  cp /etc/resolv.conf "$target/etc/resolv.conf"
  mount_in -t proc proc "$target/proc"
  echo "gimp3-root: installing ${packages[*]}" >&2
  in_root "$target" apt-get update -qq
  in_root "$target" apt-get install -y -qq --no-install-recommends "${packages[@]}" > "$target.apt.log" 2>&1 ||
    { tail -20 "$target.apt.log" >&2; exit 1; }
  in_root "$target" apt-get clean
  echo "${packages[*]}" > "$target/.gegl-vae-packages"
  unmount_all
fi

[ "${1:-}" = run ] || exit 0
shift
mkdir -p "$target/src" "$target/models"
mount_in -t proc proc "$target/proc"
mount_in --bind /dev "$target/dev"
mount_in --bind "$repo" "$target/src"
if [ -d "$repo/../shared/models" ]; then mount_in --bind "$repo/../shared/models" "$target/models"; fi
in_root "$target" bash -c "cd /src && $*"
