#!/usr/bin/env python3
"""The import graph of pi-burn's modules, and its cycles.

Reads every .rs file under SRC (default: src), takes the `crate::a::b` and `super::b` paths
each one names (comments and `#[cfg(test)] mod tests` blocks left out, test files too), and
builds two graphs: between the top-level modules (src/a.rs, src/a/), and, inside each folder,
between its modules (src/a/b.rs, src/a/b/). Prints both, then every cycle (a strongly
connected component of more than one module); exits 1 when there is one.

    python3 .ci/imports.py [SRC] [--quiet]
"""
import os
import re
import sys


def modules(src):
    """module path ("write/engine") -> source text without comments and unit tests."""
    out = {}
    for d, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(d, f), src)[:-3].split(os.sep)
            if rel[-1] == "mod":
                rel = rel[:-1]
            if rel and rel[-1] == "tests":
                continue
            text = open(os.path.join(d, f), encoding="utf-8").read()
            text = re.sub(r"//[^\n]*", "", text)
            text = re.sub(r"#\[cfg\(test\)\]\s*mod tests\s*\{.*", "", text, flags=re.S)
            out["/".join(rel)] = text
    return out


def graphs(mods):
    top, inner = {}, {}
    for m, text in mods.items():
        parts = m.split("/")
        if parts == ["main"] or parts == ["lib"]:
            continue
        for a, b in re.findall(r"\bcrate::([a-z_0-9]+)(?:::([a-z_0-9]+))?", text):
            if a != parts[0]:
                top.setdefault(parts[0], set()).add(a)
            elif len(parts) >= 2 and b and b != parts[1] and f"{a}/{b}" in mods:
                inner.setdefault(f"{a}/{parts[1]}", set()).add(f"{a}/{b}")
        if len(parts) == 2:
            for b in re.findall(r"\bsuper::([a-z_0-9]+)", text):
                if b != parts[1] and f"{parts[0]}/{b}" in mods:
                    inner.setdefault(m, set()).add(f"{parts[0]}/{b}")
    return top, inner


def cycles(edges):
    """Strongly connected components of more than one node (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    nodes = set(edges) | {w for ws in edges.values() for w in ws}
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    quiet = "--quiet" in sys.argv
    src = args[0] if args else "src"
    top, inner = graphs(modules(src))
    found = cycles(top) + cycles(inner)
    if not quiet:
        print("top-level modules:")
        for k in sorted(top):
            print(f"  {k} -> {' '.join(sorted(top[k]))}")
        print("inside folders:")
        for k in sorted(inner):
            print(f"  {k} -> {' '.join(sorted(inner[k]))}")
    for c in found:
        print("cycle: " + " <-> ".join(c))
    if not found and not quiet:
        print("no cycles")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
