#!/usr/bin/env bash
# Builds target/debian/tenantry_<version>_amd64.deb, checks it with lintian (no errors allowed),
# unpacks it into a throwaway root with `dpkg -x`, and checks that every file is where it should
# be, with its mode, that the unpacked binary runs, and that systemd accepts the unpacked unit.
#
# Usage: scripts/package.sh [--no-build] [--profile dev]
#   --no-build     reuse the binary already built
#   --profile dev  package the dev-profile binary (target/debug/tenantry), which `cargo test`
#                  builds anyway: CI checks the packaging this way without a second, release
#                  build of every dependency. Releases use the default, the release profile.
set -euo pipefail
cd "$(dirname "$0")/.."

build=1 profile=release
while [ $# -gt 0 ]; do
  case $1 in
    --no-build) build=0 ;;
    --profile) profile=$2; shift ;;
    *) echo "usage: $0 [--no-build] [--profile dev]" >&2; exit 2 ;;
  esac
  shift
done
if [ "$profile" = dev ]; then bin=target/debug/tenantry; else bin=target/$profile/tenantry; fi
if [ "$build" = 1 ]; then
  cargo build --locked --profile "$profile"
fi
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)

# Man pages and completions, generated from the clap definitions of this very binary.
rm -rf target/assets && mkdir -p target/assets/man target/assets/completions
"$bin" man --out-dir target/assets/man >/dev/null
gzip -9n target/assets/man/*.1
"$bin" completions bash > target/assets/completions/tenantry.bash
"$bin" completions zsh > target/assets/completions/_tenantry
"$bin" completions fish > target/assets/completions/tenantry.fish

rm -f target/debian/tenantry_*.deb
# cargo-deb warns that a dev profile is for checks only; that is what it is used for here.
cargo deb --no-build --locked --strip --profile "$profile" \
  --output "target/debian/tenantry_${version}_amd64.deb" 2> >(grep -v 'dev profile\|debug symbols set' >&2) >/dev/null
deb="target/debian/tenantry_${version}_amd64.deb"
echo "built $deb ($(du -h "$deb" | cut -f1))"

echo "lintian:"
lintian --fail-on error --suppress-tags-from-file packaging/lintian-suppressed "$deb" || {
  echo "lintian found errors in $deb" >&2; exit 1; }

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
dpkg-deb -x "$deb" "$root"
dpkg-deb -e "$deb" "$root/DEBIAN"

fail=0
check() { # path mode
  local path=$1 mode=$2 got
  if [ ! -e "$root/$path" ]; then echo "missing: /$path" >&2; fail=1; return; fi
  got=$(stat -c %a "$root/$path")
  if [ "$got" != "$mode" ]; then echo "/$path has mode $got, expected $mode" >&2; fail=1; fi
}
check usr/bin/tenantry 755
check usr/lib/systemd/system/tenantry.service 644
check etc/tenantry/tenantry.toml 640
check usr/share/man/man1/tenantry.1.gz 644
check usr/share/man/man1/tenantry-serve.1.gz 644
check usr/share/man/man1/tenantry-backup-restore.1.gz 644
check usr/share/man/man1/tenantry-compact.1.gz 644
check usr/share/bash-completion/completions/tenantry 644
check usr/share/zsh/vendor-completions/_tenantry 644
check usr/share/fish/vendor_completions.d/tenantry.fish 644
check usr/share/doc/tenantry/copyright 644
grep -qx /etc/tenantry/tenantry.toml "$root/DEBIAN/conffiles" || { echo "tenantry.toml is not a conffile" >&2; fail=1; }
grep -q 'adduser --system' "$root/DEBIAN/postinst" || { echo "postinst does not create the system user" >&2; fail=1; }
grep -q 'deb-systemd-helper' "$root/DEBIAN/postinst" || { echo "postinst does not enable the unit" >&2; fail=1; }
if file "$root/usr/bin/tenantry" | grep -q 'not stripped'; then echo "the binary is not stripped" >&2; fail=1; fi
"$root/usr/bin/tenantry" --version | grep -qx "tenantry $version" || { echo "the unpacked binary does not run" >&2; fail=1; }
# Every key of the shipped config is commented, so it parses to the defaults.
if grep -Ev '^\s*(#|$)' "$root/etc/tenantry/tenantry.toml"; then echo "tenantry.toml sets keys" >&2; fail=1; fi
man -l "$root/usr/share/man/man1/tenantry-backup-create.1.gz" 2>/dev/null | grep -q -- '--recipient' \
  || { echo "the backup-create man page does not render" >&2; fail=1; }
# The unit as packaged: its hardening score, and systemd-analyze verify with the unpacked binary.
MANPATH="$root/usr/share/man" scripts/check-systemd.sh "$root/usr/bin/tenantry" \
  "$root/usr/lib/systemd/system/tenantry.service" || fail=1

[ "$fail" = 0 ] || exit 1
echo "package check: ok ($deb)"
