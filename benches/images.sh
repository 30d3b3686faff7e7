#!/usr/bin/env bash
# The whole fixture cluster (fixtures/flake: three nodes) two ways, in one run:
#   1. pi-burn images --flake fixtures/flake --out DIR (one firmware verification, nodes in parallel)
#   2. the baseline: the same six images one command at a time, as a user would script them
#      (pi-burn sdcard --image --node N, then pi-burn ssd --image --size 2G --node N, per node)
# and prints the median wall times, their ratio, and whether two `images` runs gave identical bytes.
#
# Usage: benches/images.sh [RUNS]      (default 5; needs python3 and bc)
set -euo pipefail
runs=${1:-5}
root=$(cd "$(dirname "$0")/.." && pwd)
for t in python3 bc cmp; do
  command -v "$t" >/dev/null || { echo "images.sh: $t is not installed" >&2; exit 1; }
done
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
bin=$root/target/release/pi-burn
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PI_BURN_CACHE_DIR=$work/cache
python3 "$root/fixtures/make-firmware-zip.py" "$work/fw.zip"
flake=$root/fixtures/flake
fw=(--firmware-zip "$work/fw.zip" --manifest "$root/fixtures/test-manifest.toml")

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

images() {
  rm -rf "$work/$1"
  "$bin" -q images --flake "$flake" --out "$work/$1" "${fw[@]}"
}

one_by_one() {
  rm -rf "$work/seq" && mkdir "$work/seq"
  for n in pi-alpha pi-beta pi-gamma; do
    "$bin" -q sdcard --image "$work/seq/$n-sdcard.img" --node "$n" --flake "$flake" "${fw[@]}"
    "$bin" -q ssd --node "$n" --flake "$flake" --image "$work/seq/$n-ssd.img" --size 2G
  done
}

time_it() {
  local t0 t1
  t0=$(now); "$@"; t1=$(now)
  echo "$t1 - $t0" | bc -l
}

a=(); b=()
for _ in $(seq "$runs"); do
  a+=("$(time_it images out)")
  b+=("$(time_it one_by_one)")
done
ma=$(printf '%s\n' "${a[@]}" | median)
mb=$(printf '%s\n' "${b[@]}" | median)
images out2
same=yes
for f in "$work"/out/*; do cmp -s "$f" "$work/out2/$(basename "$f")" || same="NO ($f)"; done
# The one-by-one SD images equal images' own (same inputs, same bytes).
for n in pi-alpha pi-beta pi-gamma; do
  cmp -s "$work/out/$n-sdcard.img" "$work/seq/$n-sdcard.img" || same="NO ($n-sdcard.img differs from sdcard --node)"
done
printf 'pi-burn images (3 nodes, 6 images)  median %.3f s\n' "$ma"
printf 'one command per image (baseline)    median %.3f s   baseline/images = %.2fx\n' "$mb" "$(echo "$mb / $ma" | bc -l)"
echo "two images runs and sdcard --node give identical bytes: $same"
