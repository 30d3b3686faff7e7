#!/usr/bin/env bash
# Compares two pi-burn binaries flashing the same 1 GiB half-full GPT image (with its block map)
# onto a loop device, alternating runs, and prints each one's median and the ratio new/old.
# Usage (root): benches/flash-ab.sh OLD_BINARY NEW_BINARY [RUNS] [extra flash options]
set -euo pipefail
old=$1 new=$2 runs=${3:-9}; shift 2; [ $# -gt 0 ] && shift
[ "$(id -u)" = 0 ] || { echo "flash-ab.sh: needs root (loop devices)" >&2; exit 1; }
PATH=$PATH:/usr/sbin:/sbin
w=$(mktemp -d); loop=""
cleanup() { [ -n "$loop" ] && losetup -d "$loop" 2>/dev/null; rm -rf "$w"; }
trap cleanup EXIT
python3 - "$w/half.img" <<'PY'
import os, sys
with open(sys.argv[1], "wb") as f:
    f.truncate(1 << 30)
    for i in range(0, 1024, 2):
        f.seek(i << 20)
        f.write(os.urandom(1 << 20))
PY
sgdisk -o -n 1:0:0 "$w/half.img" >/dev/null
bmaptool -q create "$w/half.img" -o "$w/half.img.bmap"
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
: > "$w/old"; : > "$w/new"
for _ in $(seq "$runs"); do
  for which in old new; do
    bin=$old; [ "$which" = new ] && bin=$new
    rm -f "$w/t"; truncate -s 1G "$w/t"; loop=$(losetup --show -f "$w/t")
    sync; echo 3 > /proc/sys/vm/drop_caches
    t0=$(date +%s.%N); "$bin" -q flash "$w/half.img" "$loop" --yes "$@" >/dev/null; t1=$(date +%s.%N)
    losetup -d "$loop"; loop=""
    echo "$t1 - $t0" | bc -l >> "$w/$which"
  done
done
mo=$(median < "$w/old"); mn=$(median < "$w/new")
printf 'old %s s, new %s s (median of %s), new/old %.2fx\n' "$mo" "$mn" "$runs" "$(echo "$mn / $mo" | bc -l)"
