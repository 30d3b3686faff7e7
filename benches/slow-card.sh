#!/usr/bin/env bash
# What a user feels on a slow card (issues 20, 29), in one run: the time to a burned card on a
# fake device (fixtures/fake-device.py: a FUSE file behind a loop device) limited to 20 MB/s
# writes and 40 MB/s reads, 1 GiB, fresh for every run.
#   pi-burn   pi-burn sdcard DEVICE: the probe's samples stamped beside the card, sparse write,
#             table last, the samples read back, the card read back
#   before    the same with the pi-burn binary given as BEFORE=/path/to/pi-burn (an older build:
#             its row is measured in this run, on this machine)
#   bmaptool  bmaptool copy of pi-burn's golden image with its block map (no read-back)
#   dd        dd of the whole golden image, bs=4M oflag=direct conv=fsync (no read-back)
#   primer    the primer's recipe: a partition (sfdisk), mkfs.vfat -F32, mcopy of the release's
#             files, sync (no read-back)
# Beside them the physical limit: the card's own data (the golden image's mapped bytes) written
# once and read back once at those rates. Prints the median wall time per tool, its ratio to the
# limit and to bmaptool, and the bytes each wrote and read (from /sys/block/loopN/stat), then
# the same bytes per phase.
#
# Then, once each (PROBES=0 skips them; about two minutes), the full capacity tests on the same
# slow 1 GiB device, which write no card: `pi-burn probe` and f3probe (Debian's f3).
#
# Usage: sudo [BEFORE=old/pi-burn] benches/slow-card.sh [RUNS]   (default 3; needs losetup,
#   fusermount3, bmaptool, mkfs.vfat, mcopy, sfdisk, python3-fusepy, bc, and f3probe for its row)
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
before=${BEFORE:-}
if [ -n "$before" ] && [ ! -x "$before" ]; then
  echo "slow-card.sh: BEFORE=$before is not an executable" >&2; exit 1
fi
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
# The device's bytes (written read) since the last mark, in MB.
mark() { mw=$(stat_bytes 7); mr=$(stat_bytes 3); }
since() { echo "$(( $(stat_bytes 7) - mw )) $(( $(stat_bytes 3) - mr ))" | awk '{printf "%.2f/%.2f", $1/1e6, $2/1e6}'; }

# pi-burn's own count per phase, from its --json: probe (written/read), data written, read back.
burn_phases() {
  python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
p = j.get("probe") or {}
mb = lambda n: n / 1e6
print("probe %.2f/%.2f data %.2f/0 read-back 0/%.2f" % (mb(p.get("bytes_written", 0)), mb(p.get("bytes_read", 0)), mb(j["bytes_written"]), mb(j["bytes_read_back"])))
' "$1"
}

run_one() {  # tool -> "seconds written read phases..."
  local tool=$1 w0 r0 t0 t1 phases=""
  start_device
  sync; echo 3 > /proc/sys/vm/drop_caches
  w0=$(stat_bytes 7); r0=$(stat_bytes 3); t0=$(now)
  case $tool in
    pi-burn|before)
      local b=$bin; [ "$tool" = before ] && b=$before
      "$b" --json sdcard "$loop" --yes --firmware-zip "$work/fw.zip" --manifest "$manifest" \
        >"$work/json" 2>/dev/null ;;
    bmaptool) bmaptool -q copy --bmap "$work/golden.img.bmap" "$work/golden.img" "$loop" ;;
    dd) dd if="$work/golden.img" of="$loop" bs=4M oflag=direct conv=fsync status=none ;;
    primer)
      mark
      echo "start=2048, type=c" | sfdisk -q --no-reread "$loop" 2>/dev/null
      mkfs.vfat -F 32 --offset 2048 "$loop" $(( (1 << 30) / 1024 - 1024 )) >/dev/null 2>&1
      sync
      phases="sfdisk+mkfs $(since)"; mark
      (cd "$work/tree" && mcopy -s -i "$loop@@1M" ./* ::/ 2>/dev/null)
      sync
      phases="$phases mcopy+sync $(since)" ;;
  esac
  t1=$(now)
  case $tool in pi-burn|before) phases="pi-burn's count: $(burn_phases "$work/json")" ;; esac
  echo "$(echo "$t1 - $t0" | bc -l) $(( $(stat_bytes 7) - w0 )) $(( $(stat_bytes 3) - r0 )) $phases"
  stop_device
}

limit=$(echo "$mapped / ($wmbps * 1000000) + $mapped / ($rmbps * 1000000)" | bc -l)
tools="bmaptool pi-burn dd primer"
[ -n "$before" ] && tools="$tools before"
echo "slow card: ${wmbps} MB/s writes, ${rmbps} MB/s reads; the card's data: $mapped bytes (golden image, mapped)"
declare -A med wr rd ph
for tool in $tools; do
  : > "$work/r"
  for _ in $(seq "$runs"); do run_one "$tool" >> "$work/r"; done
  med[$tool]=$(awk '{print $1}' "$work/r" | median)
  wr[$tool]=$(awk '{print $2}' "$work/r" | median)
  rd[$tool]=$(awk '{print $3}' "$work/r" | median)
  # The phases of the run whose time is the median.
  ph[$tool]=$(awk -v m="${med[$tool]}" '$1 == m {$1=$2=$3=""; sub(/^ +/, ""); print; exit}' "$work/r")
done
printf '%-9s %10s %9s %9s %14s %14s %s\n' tool median_s vs_limit vs_bmap bytes_written bytes_read reads_back
printf '%-9s %10.3f %8.2fx %8s %14d %14d %s\n' limit "$limit" 1 - "$mapped" "$mapped" "yes (once)"
for tool in pi-burn ${before:+before} bmaptool dd primer; do
  printf '%-9s %10.3f %8.2fx %8.2fx %14d %14d %s\n' "$tool" "${med[$tool]}" \
    "$(echo "${med[$tool]} / $limit" | bc -l)" "$(echo "${med[$tool]} / ${med[bmaptool]}" | bc -l)" \
    "${wr[$tool]}" "${rd[$tool]}" \
    "$(case $tool in pi-burn|before) echo "yes, and the capacity probe" ;; *) echo no ;; esac)"
done
echo "bytes per phase, MB written/read:"
for tool in pi-burn ${before:+before} primer; do
  printf '  %-9s %s\n' "$tool" "${ph[$tool]}"
done

[ "${PROBES:-1}" = 0 ] && exit 0
echo "full capacity tests on the same slow 1 GiB device (once each; no card written):"
printf '%-14s %10s %14s %14s %s\n' tool seconds bytes_written bytes_read verdict
probe_row() {  # tool
  local name=$1 t0 t1 w0 r0 out
  start_device
  w0=$(stat_bytes 7); r0=$(stat_bytes 3); t0=$(now)
  case $name in
    "pi-burn probe") out=$("$bin" probe "$loop" --yes 2>&1 || true) ;;
    f3probe) out=$(f3probe "$loop" 2>&1 || true) ;;
  esac
  t1=$(now)
  printf '%-14s %10.3f %14d %14d %s\n' "$name" "$(echo "$t1 - $t0" | bc -l)" \
    "$(( $(stat_bytes 7) - w0 ))" "$(( $(stat_bytes 3) - r0 ))" \
    "$(echo "$out" | grep -m1 -oE 'no sign[^:]*|a counterfeit|Good news|Bad news[^.]*')"
  stop_device
}
probe_row "pi-burn probe"
if command -v f3probe >/dev/null; then
  probe_row f3probe
else
  echo "f3probe        (not installed: apt-get install f3)"
fi
