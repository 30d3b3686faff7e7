# Shared by the benchmarks (sourced): small helpers on bmaps, clocks and medians.

mapped() {  # bytes listed in a bmap
  python3 - "$1" <<'PY'
import re, sys
t = re.sub(r"<!--.*?-->", "", open(sys.argv[1]).read(), flags=re.S)
bs = int(re.search(r"<BlockSize>\s*(\d+)", t).group(1))
size = int(re.search(r"<ImageSize>\s*(\d+)", t).group(1))
n = 0
for a, b in re.findall(r">\s*(\d+)(?:-(\d+))?\s*</Range>", t):
    a = int(a); b = int(b) if b else a
    n += min((b + 1) * bs, size) - a * bs
print(n)
PY
}

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
