#!/usr/bin/env bash
# One directory of 5,000 and of 20,000 small files on the firmware card: pi-burn sdcard --image,
# median wall time of each and the ratio between them (4x for a build linear in the entries,
# 16x for a quadratic one; issue 14 measured 15 s and 314 s before the tree writer). Every image
# is checked with fsck.fat -n. (mtools' mcopy, the shell recipe's copier, is itself quadratic
# here: over 12 minutes for 5,000 files, so it is no baseline.)
#
# Usage: benches/big-dir.sh [RUNS]      (default 3; needs dosfstools python3 bc)
set -euo pipefail
runs=${1:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
for t in fsck.fat python3 bc; do
  command -v "$t" >/dev/null || PATH=$PATH:/usr/sbin:/sbin
  command -v "$t" >/dev/null || { echo "big-dir.sh: $t is not installed" >&2; exit 1; }
done
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
bin=$root/target/release/pi-burn
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 "$root/fixtures/make-firmware-zip.py" "$work/fw.zip"
now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf '%-8s %-14s %10s %8s\n' files tool median_s vs_5000
for n in 5000 20000; do
  python3 - "$work/fw.zip" "$work/big$n.zip" "$n" <<'PY'
import sys, zipfile
src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
with zipfile.ZipFile(src) as a, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as b:
    for i in a.infolist():
        b.writestr(i, a.read(i.filename))
    for k in range(n):
        b.writestr(f"many/file-{k:05d}.txt", f"file {k}\n")
PY
  sha=$(sha256sum "$work/big$n.zip" | cut -d' ' -f1)
  : > "$work/p"
  for _ in $(seq "$runs"); do
    rm -f "$work/p.img"*
    t0=$(now)
    "$bin" -q sdcard --image "$work/p.img" --firmware-zip "$work/big$n.zip" --sha256 "$sha" \
      --manifest "$root/fixtures/test-manifest.toml"
    t1=$(now); echo "$t1 - $t0" | bc -l >> "$work/p"
  done
  python3 - "$work/p.img" "$work/part.img" <<'PY'
import sys
with open(sys.argv[1], "rb") as a, open(sys.argv[2], "wb") as b:
    a.seek(1 << 20); b.write(a.read(512 << 20))
PY
  fsck.fat -n "$work/part.img" >/dev/null || { echo "big-dir.sh: fsck.fat failed on $n files" >&2; exit 1; }
  mp=$(median < "$work/p")
  [ "$n" = 5000 ] && base=$mp
  printf '%-8s %-14s %10.3f %7.1fx\n' "$n" pi-burn "$mp" "$(echo "$mp / $base" | bc -l)"
done
