#!/usr/bin/env bash
# Flashing benchmark (issue 6), in one run, onto loop devices over fresh sparse files (root):
#   images: pi-burn's golden SD image (514 MiB, ~8 MB mapped, its own block map) and a 1 GiB
#           image half full of data (random 1 MiB chunks, every other one; bmaptool's block map)
#   tools:  pi-burn flash (with read-back verification and the capacity probe; pi-burn-np without
#           the probe), dd bs=4M oflag=direct conv=fsync, and
#           bmaptool copy (Debian bmap-tools; it checks range hashes, it does not read back)
# Prints the median wall time per tool and image, the ratio against bmaptool, and the bytes each
# wrote (from /sys/block/loopN/stat) against the image's mapped data.
# Targets: pi-burn no slower than bmaptool while also verifying; bytes written <= 1.1x mapped.
#
# Usage: sudo benches/flash.sh [RUNS]     (default 5; needs losetup, bmaptool, dd, python3, bc)
set -euo pipefail
runs=${1:-5}
root=$(cd "$(dirname "$0")/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "flash.sh: needs root (loop devices)" >&2; exit 1; }
for t in losetup bmaptool dd python3 bc sgdisk; do
  command -v "$t" >/dev/null || PATH=$PATH:/usr/sbin:/sbin
  command -v "$t" >/dev/null || { echo "flash.sh: $t is not installed" >&2; exit 1; }
done
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
bin=$root/target/release/pi-burn
work=$(mktemp -d)
loop=""
cleanup() { [ -n "$loop" ] && losetup -d "$loop" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

python3 "$root/fixtures/make-firmware-zip.py" "$work/fw.zip"
"$bin" -q sdcard --image "$work/golden.img" --firmware-zip "$work/fw.zip" --manifest "$root/fixtures/test-manifest.toml"
python3 - "$work/half.img" <<'PY'
import os, sys
with open(sys.argv[1], "wb") as f:
    f.truncate(1 << 30)
    for i in range(0, 1024, 2):
        f.seek(i << 20)
        f.write(os.urandom(1 << 20))
PY
# A disk image, not bare data: a GPT over the random pieces (flash refuses data without a table).
sgdisk -o -n 1:0:0 "$work/half.img" >/dev/null
bmaptool -q create "$work/half.img" -o "$work/half.img.bmap"

. "$root/benches/common.sh"
written() { echo $(( $(awk '{print $7}' "/sys/block/$(basename "$loop")/stat") * 512 )); }

run_one() {  # tool image -> "seconds bytes"
  local tool=$1 img=$2 size
  size=$(stat -c %s "$img")
  rm -f "$work/target"; truncate -s "$size" "$work/target"
  loop=$(losetup --show -f "$work/target")
  sync; echo 3 > /proc/sys/vm/drop_caches
  local b0 t0 t1 b1
  b0=$(written); t0=$(now)
  case $tool in
    pi-burn) "$bin" -q flash "$img" "$loop" --yes >/dev/null ;;
    pi-burn-np) "$bin" -q flash "$img" "$loop" --yes --no-probe >/dev/null ;;
    dd) dd if="$img" of="$loop" bs=4M oflag=direct conv=fsync status=none ;;
    bmaptool) bmaptool -q copy --bmap "$img.bmap" "$img" "$loop" ;;
  esac
  t1=$(now); b1=$(written)
  losetup -d "$loop"; loop=""
  echo "$(echo "$t1 - $t0" | bc -l) $((b1 - b0))"
}

printf '%-8s %-9s %10s %8s %14s %9s\n' image tool median_s vs_bmap bytes_written /mapped
for img in golden half; do
  m=$(mapped "$work/$img.img.bmap")
  declare -A med byt
  for tool in bmaptool pi-burn pi-burn-np dd; do
    : > "$work/r"
    for _ in $(seq "$runs"); do run_one "$tool" "$work/$img.img" >> "$work/r"; done
    med[$tool]=$(awk '{print $1}' "$work/r" | median)
    byt[$tool]=$(awk '{print $2}' "$work/r" | median)
  done
  for tool in bmaptool pi-burn pi-burn-np dd; do
    printf '%-8s %-9s %10.3f %7.2fx %14d %8.2fx\n' "$img" "$tool" "${med[$tool]}" \
      "$(echo "${med[$tool]} / ${med[bmaptool]}" | bc -l)" "${byt[$tool]}" "$(echo "${byt[$tool]} / $m" | bc -l)"
  done
  unset med byt
done
echo "(pi-burn also reads back and compares everything it wrote, and probes the device's capacity around its data, 64 samples and a wrap test put back; pi-burn-np is pi-burn --no-probe; bmaptool and dd do neither)"
