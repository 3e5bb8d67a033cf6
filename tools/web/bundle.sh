#!/usr/bin/env bash
# Assembles the web bundle in a site root (`make build-web` runs this).
#
#   tools/web/bundle.sh build <frontend.wasm> <site-root>
#       wasm-opt (flags in WASM_OPT, e.g. "-O1"; empty skips it), then
#       wasm-bindgen, the stylesheet, hls.js and public/, then `finish`.
#       Skipped when its inputs are those of the site root's last build.
#   tools/web/bundle.sh finish <site-root>
#       Gives pkg/onair.js + pkg/onair_bg.wasm, pkg/onair.css and
#       pkg/hls.min.js content-hashed names (onair-<h>.js + onair-<h>_bg.wasm,
#       onair-<h>.css, hls-<h>.min.js; <h> = 16 hex digits of SHA-256), lists
#       them in pkg/assets.txt (what the server reads), deletes the previous
#       build's hashed files, and writes a .br (brotli -q 11) and a .gz
#       (gzip -9) next to every text file and wasm of 256 bytes or more.
#
# Needs wasm-bindgen, wasm-opt (Debian's binaryen), brotli and gzip: `make deps`
# installs them.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

die() { echo "bundle.sh: $*" >&2; exit 1; }
hash16() { cat "$@" | sha256sum | cut -c1-16; }

# Brotli and gzip variants of every compressible file under $1 that has none
# yet or an older one. A variant that is not smaller is not kept.
precompress() {
  local f
  find "$1" -type f \( -name '*.js' -o -name '*.mjs' -o -name '*.wasm' -o -name '*.css' \
      -o -name '*.svg' -o -name '*.html' -o -name '*.json' -o -name '*.txt' -o -name '*.xml' \
      -o -name '*.webmanifest' \) -size +255c -print0 |
  while IFS= read -r -d '' f; do
    if [ ! -f "$f.br" ] || [ "$f" -nt "$f.br" ]; then
      brotli -q 11 -f -o "$f.br" "$f"
      [ "$(stat -c%s "$f.br")" -lt "$(stat -c%s "$f")" ] || rm -f "$f.br"
    fi
    if [ ! -f "$f.gz" ] || [ "$f" -nt "$f.gz" ]; then
      gzip -9 -n -c "$f" > "$f.gz.tmp" && mv "$f.gz.tmp" "$f.gz"
      [ "$(stat -c%s "$f.gz")" -lt "$(stat -c%s "$f")" ] || rm -f "$f.gz"
    fi
  done
}

# Moves pkg/$1 to pkg/$2 unless pkg/$2 is already there (same name, same bytes).
place() {
  local pkg=$1 from=$2 to=$3
  if [ -f "$pkg/$to" ]; then rm -f "$pkg/$from"; else mv "$pkg/$from" "$pkg/$to"; fi
}

finish() {
  local site=$1 pkg=$1/pkg
  for f in onair.js onair_bg.wasm onair.css hls.min.js; do
    [ -f "$pkg/$f" ] || die "missing $pkg/$f"
  done
  local bundle css hls
  bundle=$(hash16 "$pkg/onair.js" "$pkg/onair_bg.wasm")
  css=$(hash16 "$pkg/onair.css")
  hls=$(hash16 "$pkg/hls.min.js")
  local js_name="onair-$bundle.js" wasm_name="onair-${bundle}_bg.wasm"
  local css_name="onair-$css.css" hls_name="hls-$hls.min.js"
  place "$pkg" onair.js "$js_name"
  place "$pkg" onair_bg.wasm "$wasm_name"
  place "$pkg" onair.css "$css_name"
  place "$pkg" hls.min.js "$hls_name"
  # The previous builds' hashed files and their variants.
  local f base
  for f in "$pkg"/onair-* "$pkg"/hls-*; do
    [ -e "$f" ] || continue
    base=$(basename "$f"); base=${base%.br}; base=${base%.gz}
    case "$base" in
      "$js_name" | "$wasm_name" | "$css_name" | "$hls_name") ;;
      *) rm -f "$f" ;;
    esac
  done
  printf '# Written by tools/web/bundle.sh: the bundle'"'"'s content-hashed names.\njs: %s\nwasm: %s\ncss: %s\nhls: %s\n' \
    "$js_name" "$wasm_name" "$css_name" "$hls_name" > "$pkg/assets.txt.tmp"
  mv "$pkg/assets.txt.tmp" "$pkg/assets.txt"
  precompress "$site"
}

# Whether every file pkg/assets.txt names is there.
complete() {
  local key name
  while read -r key name; do
    case "$key" in '#'* | '') continue ;; esac
    [ -f "$1/$name" ] || return 1
  done < "$1/assets.txt"
}

build() {
  local wasm=$1 site=$2 pkg=$2/pkg
  local css="$repo/style/main.css" hls="$repo/end2end/node_modules/hls.js/dist/hls.min.js"
  [ -f "$wasm" ] || die "missing $wasm"
  [ -f "$hls" ] || die "missing $hls (run: cd end2end && npm ci)"
  mkdir -p "$pkg"
  cp -rp "$repo/public/." "$site/"
  # Same inputs as the last build: nothing to do (wasm-opt alone takes a minute).
  local inputs
  inputs=$( { sha256sum "$wasm" "$css" "$hls" "$0"; wasm-bindgen --version; echo "WASM_OPT=${WASM_OPT:-}"; } | sha256sum | cut -c1-64)
  if [ -f "$pkg/assets.txt" ] && [ "$(cat "$pkg/.inputs" 2>/dev/null)" = "$inputs" ] && complete "$pkg"; then
    precompress "$site"
    return
  fi
  rm -f "$pkg/.inputs"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  local input=$wasm
  if [ -n "${WASM_OPT:-}" ]; then
    # Before wasm-bindgen, not after: Debian's binaryen 108 rewrites the export
    # of wasm-bindgen's externref table (table 1) to table 0, and the page
    # then fails in WebAssembly.Table.set(). Rust's wasm32 target emits these
    # post-MVP features; binaryen needs to be told.
    # shellcheck disable=SC2086
    wasm-opt $WASM_OPT --enable-bulk-memory --enable-nontrapping-float-to-int \
      --enable-sign-ext --enable-mutable-globals --enable-reference-types --enable-multivalue \
      "$wasm" -o "$tmp/frontend.opt.wasm"
    input=$tmp/frontend.opt.wasm
  fi
  wasm-bindgen --target web --no-typescript --out-dir "$tmp" --out-name onair "$input"
  [ ! -e "$tmp/snippets" ] || die "wasm-bindgen wrote JS snippets; bundle.sh does not hash them yet"
  mv "$tmp/onair.js" "$tmp/onair_bg.wasm" "$pkg/"
  cp "$css" "$pkg/onair.css"
  cp "$hls" "$pkg/hls.min.js"
  finish "$site"
  echo "$inputs" > "$pkg/.inputs"
}

case "${1:-}" in
  build) [ $# -eq 3 ] || die "usage: $0 build <frontend.wasm> <site-root>"; build "$2" "$3" ;;
  finish) [ $# -eq 2 ] || die "usage: $0 finish <site-root>"; finish "$2" ;;
  *) die "usage: $0 build <frontend.wasm> <site-root> | finish <site-root>" ;;
esac
