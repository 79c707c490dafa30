#!/usr/bin/env bash
# Builds .gpu_carry/ (git-ignored through .git/info/exclude), the folder tools/gpu_session.sh expects beside the
# checkout on the GPU machine, which has no libpcre2-dev and no cpp-httplib: pcre2's header and library, and
# cpp-httplib's header and library with the OpenSSL, zlib and Brotli headers its Debian build includes, each with a
# relocatable pkg-config file. Run on the CPU machine after scripts/setup.sh (the Debian packages are its source);
# then carry ".gpu_carry" in every device call.
#   tools/make_gpu_carry.sh
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
carry="$repo/.gpu_carry"
lib=/usr/lib/x86_64-linux-gnu
for f in /usr/include/pcre2.h /usr/include/httplib.h "$lib/libcpp-httplib.so" "$lib/libpcre2-8.so"; do
  [[ -e "$f" ]] || { echo "make_gpu_carry.sh: $f is missing (run scripts/setup.sh first)" >&2; exit 1; }
done
grep -qx ".gpu_carry/" "$repo/.git/info/exclude" 2>/dev/null || echo ".gpu_carry/" >>"$repo/.git/info/exclude"
rm -rf "$carry/pcre2" "$carry/httplib"
mkdir -p "$carry/pcre2/include" "$carry/pcre2/lib/pkgconfig" "$carry/httplib/include" "$carry/httplib/lib/pkgconfig" "$carry/lines"

cp /usr/include/pcre2.h "$carry/pcre2/include/"
cp -P "$lib"/libpcre2-8.so* "$carry/pcre2/lib/"
pcre2_version="$(pkg-config --modversion libpcre2-8)"
cat >"$carry/pcre2/lib/pkgconfig/libpcre2-8.pc" <<PC
prefix=\${pcfiledir}/../..
Name: libpcre2-8
Description: PCRE2 8-bit, carried to the GPU machine
Version: $pcre2_version
Libs: -L\${prefix}/lib -lpcre2-8
Cflags: -I\${prefix}/include
PC

cp /usr/include/httplib.h /usr/include/zlib.h /usr/include/zconf.h "$carry/httplib/include/"
cp -r /usr/include/openssl /usr/include/brotli "$carry/httplib/include/"
cp /usr/include/x86_64-linux-gnu/openssl/* "$carry/httplib/include/openssl/"
cp -P "$lib"/libcpp-httplib.so* "$lib"/libbrotli*.so.1* "$carry/httplib/lib/"
# cpp-httplib.pc names these in Requires.private: header-only stand-ins, at this machine's versions.
for name in openssl zlib libbrotlicommon libbrotlidec libbrotlienc; do
  cat >"$carry/httplib/lib/pkgconfig/$name.pc" <<PC
prefix=\${pcfiledir}/../..
Name: $name
Description: headers carried for cpp-httplib
Version: $(pkg-config --modversion "$name")
Cflags: -I\${prefix}/include
Libs:
PC
done
sed -e 's|^prefix=/usr|prefix=${pcfiledir}/../..|' -e 's|^libdir=.*|libdir=${prefix}/lib|' \
  "$lib/pkgconfig/cpp-httplib.pc" >"$carry/httplib/lib/pkgconfig/cpp-httplib.pc"
PKG_CONFIG_PATH="$carry/pcre2/lib/pkgconfig:$carry/httplib/lib/pkgconfig" pkg-config --exists cpp-httplib libpcre2-8
echo "make_gpu_carry.sh: $carry ($(du -sh "$carry" | cut -f1)); carry \".gpu_carry\" in device calls"
