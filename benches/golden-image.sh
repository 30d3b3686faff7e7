#!/usr/bin/env bash
# Builds the same 514 MiB firmware SD image from the fixture zip three ways, in one run:
#   1. pi-burn sdcard --image (release build)
#   2. the shell recipe: unzip + truncate + sfdisk + mkfs.vfat --offset + mcopy -s
#   3. unzip + genimage (Debian's genimage: mkdosfs + mcopy + its own GPT writer)
# Each starts from the zip; only pi-burn also verifies it (SHA-256 and NAR hash).
# and prints median wall times, the ratios against pi-burn, and allocated bytes against the
# payload plus FAT metadata. Targets (issue 2): pi-burn >= 4x faster than genimage, >= 10x
# faster than the shell recipe, allocating <= 1.25x (payload + FAT metadata).
#
# Usage: benches/golden-image.sh [RUNS]      (default 7; needs fdisk dosfstools mtools genimage unzip bc)
set -euo pipefail
runs=${1:-7}
root=$(cd "$(dirname "$0")/.." && pwd)
for t in sfdisk mkfs.vfat mcopy genimage python3 fsck.fat unzip bc; do
  command -v "$t" >/dev/null || PATH=$PATH:/usr/sbin:/sbin
  command -v "$t" >/dev/null || { echo "golden-image.sh: $t is not installed" >&2; exit 1; }
done
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
bin=$root/target/release/pi-burn
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 "$root/fixtures/make-firmware-zip.py" "$work/fw.zip"
mkdir -p "$work/tree"
python3 -c "import zipfile,sys; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])" "$work/fw.zip" "$work/tree"
payload=$(find "$work/tree" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
alloc() { echo $(( $(stat -c %b "$1") * $(stat -c %B "$1") )); }

pi_burn() {
  rm -f "$work/pb.img"
  "$bin" -q sdcard --image "$work/pb.img" --firmware-zip "$work/fw.zip" \
    --manifest "$root/fixtures/test-manifest.toml"
}

unpack() {
  rm -rf "$work/tree"
  mkdir "$work/tree"
  unzip -q "$work/fw.zip" -d "$work/tree"
}

shell_recipe() {
  unpack
  rm -f "$work/sh.img"
  truncate -s 514M "$work/sh.img"
  printf 'label: gpt\nstart=2048, size=1048576, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="disk-sdcard-FIRMWARE"\n' \
    | sfdisk -q "$work/sh.img"
  mkfs.vfat -F 32 -n FIRMWARE --offset 2048 "$work/sh.img" 524288 >/dev/null
  MTOOLS_SKIP_CHECK=1 mcopy -s -i "$work/sh.img@@1M" "$work/tree"/* ::/
}

cat > "$work/genimage.cfg" <<CFG
image firmware.vfat {
  vfat { label = "FIRMWARE" extraargs = "-F 32" }
  size = 512M
}
image gi.img {
  hdimage { partition-table-type = "gpt" }
  partition firmware {
    image = "firmware.vfat"
    offset = 1M
    partition-type-uuid = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
  }
  size = 514M
}
CFG
genimage_run() {
  unpack
  rm -rf "$work/gi-out" "$work/gi-tmp"
  genimage --config "$work/genimage.cfg" --rootpath "$work/tree" --tmppath "$work/gi-tmp" \
    --inputpath "$work/gi-out" --outputpath "$work/gi-out" >/dev/null 2>&1
}

declare -A times
for name in pi_burn shell_recipe genimage_run; do
  for _ in $(seq "$runs"); do
    sync
    t0=$(now); $name; t1=$(now)
    echo "$t1 - $t0" | bc -l
  done | median > "$work/$name.median"
  times[$name]=$(cat "$work/$name.median")
done

# FAT metadata of pi-burn's image: reserved sectors, both FATs, the GPT's first MiB.
dd if="$work/pb.img" of="$work/p1" bs=1M skip=1 count=512 status=none
per_fat=$(fsck.fat -n -v "$work/p1" | awk '/bytes per FAT/ {print $1}')
meta=$(( 2 * per_fat + 1048576 ))

printf '%-14s %12s %10s %16s\n' tool median_s ratio allocated_bytes
for pair in "pi-burn:pi_burn:pb.img" "shell-recipe:shell_recipe:sh.img" "genimage:genimage_run:gi-out/gi.img"; do
  IFS=: read -r label fn img <<<"$pair"
  ratio=$(echo "${times[$fn]} / ${times[pi_burn]}" | bc -l)
  printf '%-14s %12.4f %9.1fx %16d\n' "$label" "${times[$fn]}" "$ratio" "$(alloc "$work/$img")"
done
pb_alloc=$(alloc "$work/pb.img")
printf 'payload %d B + FAT metadata %d B = %d B; pi-burn allocates %.3fx of that (target <= 1.25x)\n' \
  "$payload" "$meta" $((payload + meta)) "$(echo "$pb_alloc / ($payload + $meta)" | bc -l)"
printf 'speed-up: %.1fx vs genimage (target >= 4x), %.1fx vs shell recipe (target >= 10x)\n' \
  "$(echo "${times[genimage_run]} / ${times[pi_burn]}" | bc -l)" \
  "$(echo "${times[shell_recipe]} / ${times[pi_burn]}" | bc -l)"
