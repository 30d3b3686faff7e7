#!/usr/bin/env bash
# What a user feels on a slow card (issue 20), in one run: the time to a burned card on a fake
# device (fixtures/fake-device.py: a FUSE file behind a loop device) limited to 20 MB/s writes
# and 40 MB/s reads, 1 GiB, fresh for every run.
#   pi-burn   pi-burn sdcard DEVICE: capacity probe, sparse write, table last, read back
#   bmaptool  bmaptool copy of pi-burn's golden image with its block map (no read-back)
#   dd        dd of the whole golden image, bs=4M oflag=direct conv=fsync (no read-back)
#   primer    the primer's recipe: a partition (sfdisk), mkfs.vfat -F32, mcopy of the release's
#             files, sync (no read-back)
# Beside them the physical limit: the card's own data (the golden image's mapped bytes) written
# once and read back once at those rates. Prints the median wall time per tool, its ratio to the
# limit and to bmaptool, and the bytes each wrote and read (from /sys/block/loopN/stat).
#
# Usage: sudo benches/slow-card.sh [RUNS]   (default 3; needs losetup, fusermount3, bmaptool,
#                                             mkfs.vfat, mcopy, sfdisk, python3-fusepy, bc)
set -euo pipefail
runs=${1:-3}
wmbps=20
rmbps=40
root=$(cd "$(dirname "$0")/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "slow-card.sh: needs root (loop devices)" >&2; exit 1; }
PATH=$PATH:/usr/sbin:/sbin
for t in losetup fusermount3 bmaptool mkfs.vfat mcopy sfdisk bc dd; do
  command -v "$t" >/dev/null || { echo "slow-card.sh: $t is not installed" >&2; exit 1; }
done
/usr/bin/python3 -c "import fusepy" 2>/dev/null || { echo "slow-card.sh: python3-fusepy is not installed" >&2; exit 1; }
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
bin=$root/target/release/pi-burn
manifest=$root/fixtures/test-manifest.toml
work=$(mktemp -d)
loop="" fuse=""
stop_device() {
  [ -n "$loop" ] && losetup -d "$loop" 2>/dev/null || true
  loop=""
  if [ -n "$fuse" ]; then
    fusermount3 -u -z "$work/mnt" 2>/dev/null || true
    kill "$fuse" 2>/dev/null || true
    wait "$fuse" 2>/dev/null || true
    fuse=""
  fi
}
cleanup() { stop_device; rm -rf "$work"; }
trap cleanup EXIT
. "$root/benches/common.sh"

python3 "$root/fixtures/make-firmware-zip.py" "$work/fw.zip"
mkdir "$work/tree"
(cd "$work/tree" && python3 -m zipfile -e "$work/fw.zip" .)
"$bin" -q sdcard --image "$work/golden.img" --firmware-zip "$work/fw.zip" --manifest "$manifest"
mapped=$(mapped "$work/golden.img.bmap")

start_device() {
  /usr/bin/python3 "$root/fixtures/fake-device.py" "$work/mnt" --claimed 1G \
    --write-mbps "$wmbps" --read-mbps "$rmbps" &
  fuse=$!
  for _ in $(seq 100); do [ -e "$work/mnt/disk" ] && break; sleep 0.05; done
  loop=$(losetup --show -f "$work/mnt/disk")
}

stat_bytes() { awk -v f="$1" '{printf "%.0f\n", $f * 512}' "/sys/block/$(basename "$loop")/stat"; }

run_one() {  # tool -> "seconds written read"
  local tool=$1 w0 r0 t0 t1
  start_device
  sync; echo 3 > /proc/sys/vm/drop_caches
  w0=$(stat_bytes 7); r0=$(stat_bytes 3); t0=$(now)
  case $tool in
    pi-burn) "$bin" -q sdcard "$loop" --yes --firmware-zip "$work/fw.zip" --manifest "$manifest" >/dev/null ;;
    bmaptool) bmaptool -q copy --bmap "$work/golden.img.bmap" "$work/golden.img" "$loop" ;;
    dd) dd if="$work/golden.img" of="$loop" bs=4M oflag=direct conv=fsync status=none ;;
    primer)
      echo "start=2048, type=c" | sfdisk -q --no-reread "$loop" 2>/dev/null
      mkfs.vfat -F 32 --offset 2048 "$loop" $(( (1 << 30) / 1024 - 1024 )) >/dev/null 2>&1
      (cd "$work/tree" && mcopy -s -i "$loop@@1M" ./* ::/)
      sync ;;
  esac
  t1=$(now)
  echo "$(echo "$t1 - $t0" | bc -l) $(( $(stat_bytes 7) - w0 )) $(( $(stat_bytes 3) - r0 ))"
  stop_device
}

limit=$(echo "$mapped / ($wmbps * 1000000) + $mapped / ($rmbps * 1000000)" | bc -l)
echo "slow card: ${wmbps} MB/s writes, ${rmbps} MB/s reads; the card's data: $mapped bytes (golden image, mapped)"
printf '%-9s %10s %9s %9s %14s %14s %s\n' tool median_s vs_limit vs_bmap bytes_written bytes_read reads_back
declare -A med wr rd
for tool in bmaptool pi-burn dd primer; do
  : > "$work/r"
  for _ in $(seq "$runs"); do run_one "$tool" >> "$work/r"; done
  med[$tool]=$(awk '{print $1}' "$work/r" | median)
  wr[$tool]=$(awk '{print $2}' "$work/r" | median)
  rd[$tool]=$(awk '{print $3}' "$work/r" | median)
done
printf '%-9s %10.3f %8.2fx %8s %14d %14d %s\n' limit "$limit" 1 - "$mapped" "$mapped" "yes (once)"
for tool in pi-burn bmaptool dd primer; do
  printf '%-9s %10.3f %8.2fx %8.2fx %14d %14d %s\n' "$tool" "${med[$tool]}" \
    "$(echo "${med[$tool]} / $limit" | bc -l)" "$(echo "${med[$tool]} / ${med[bmaptool]}" | bc -l)" \
    "${wr[$tool]}" "${rd[$tool]}" "$([ "$tool" = pi-burn ] && echo "yes, and the capacity probe" || echo no)"
done
