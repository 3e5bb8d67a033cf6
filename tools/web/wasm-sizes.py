#!/usr/bin/env python3
"""What is heavy in a wasm module: bytes per section, and code bytes per crate
and per function, from the module's `name` section.

    tools/web/wasm-sizes.py FILE.wasm [--top N]

Use it on the wasm before wasm-opt (which drops the names), e.g.
target/wasm32-unknown-unknown/wasm-release/frontend.wasm. Function names are
Rust's legacy mangling (`_ZN4core3fmt...E`) or already demangled; the crate is
the first path segment, and `<impl ...>` blocks are credited to the crate of
their first type.
"""
import re
import sys
from collections import Counter


def leb(buf, i):
    result = shift = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return result, i


def demangle_legacy(name):
    """`_ZN4core3fmt5write17h0123E` -> `core::fmt::write` (hash dropped)."""
    if not name.startswith("_ZN"):
        return name
    i, parts = 3, []
    while i < len(name) and name[i] != "E":
        m = re.match(r"\d+", name[i:])
        if not m:
            return name
        n = int(m.group())
        i += len(m.group())
        part = name[i : i + n]
        i += n
        if re.fullmatch(r"h[0-9a-f]{16}", part):
            continue
        for a, b in (("$LT$", "<"), ("$GT$", ">"), ("$u20$", " "), ("$RF$", "&"), ("..", "::"),
                     ("$C$", ","), ("$u7b$", "{"), ("$u7d$", "}"), ("$BP$", "*"), ("$u5b$", "["),
                     ("$u5d$", "]"), ("$u27$", "'"), ("$SP$", "@"), ("$LP$", "("), ("$RP$", ")")):
            part = part.replace(a, b)
        parts.append(part)
    return "::".join(parts)


def tidy(name):
    """Drops symbol hashes (`::h0123…`) and crate disambiguators (`core[c593…]`)."""
    name = re.sub(r"::h[0-9a-f]{16}$", "", name)
    return re.sub(r"\[[0-9a-f]{16}\]", "", name)


def crate_of(name):
    """The crate a function's code comes from: `<X as Y>::f` is X's when X is
    a path (`alloc::vec::Vec<…>`), else Y's (a generic `T`, a tuple, a slice)."""
    n = name.replace("mut ", "").replace("dyn ", "").replace("const ", "")
    m = re.match(r"<+&*\s*([^<>]*?)(?:<.*?)?\s+as\s+&*([A-Za-z_][A-Za-z0-9_]*)", n)
    if m:
        first = m.group(1).lstrip("&*( [")
        if "::" in first and re.match(r"[a-z_]", first):
            return first.split("::")[0]
        return m.group(2)
    n = n.lstrip("<&*( [")
    m = re.match(r"[A-Za-z_][A-Za-z0-9_]*", n)
    return m.group() if m else "?"


def main():
    path = sys.argv[1]
    top = int(sys.argv[sys.argv.index("--top") + 1]) if "--top" in sys.argv else 25
    buf = open(path, "rb").read()
    assert buf[:4] == b"\0asm", "not a wasm module"
    i = 8
    sections = Counter()
    n_imported_funcs = 0
    bodies = []
    names = {}
    while i < len(buf):
        sid = buf[i]
        size, j = leb(buf, i + 1)
        end = j + size
        if sid == 0:
            nlen, k = leb(buf, j)
            sname = buf[k : k + nlen].decode()
            sections[f"custom:{sname}"] += end - i
            if sname == "name":
                k += nlen
                while k < end:
                    sub = buf[k]
                    ssize, k2 = leb(buf, k + 1)
                    if sub == 1:
                        count, p = leb(buf, k2)
                        for _ in range(count):
                            idx, p = leb(buf, p)
                            ln, p = leb(buf, p)
                            names[idx] = buf[p : p + ln].decode(errors="replace")
                            p += ln
                    k = k2 + ssize
        else:
            label = {1: "type", 2: "import", 3: "function", 4: "table", 5: "memory", 6: "global",
                     7: "export", 8: "start", 9: "element", 10: "code", 11: "data", 12: "datacount"}.get(sid, str(sid))
            sections[label] += end - i
            if sid == 2:
                count, p = leb(buf, j)
                for _ in range(count):
                    for _ in range(2):
                        ln, p = leb(buf, p)
                        p += ln
                    kind = buf[p]
                    p += 1
                    if kind == 0:
                        _, p = leb(buf, p)
                        n_imported_funcs += 1
                    elif kind == 1:
                        p += 1
                        flags, p = leb(buf, p)
                        _, p = leb(buf, p)
                        if flags & 1:
                            _, p = leb(buf, p)
                    elif kind == 2:
                        flags, p = leb(buf, p)
                        _, p = leb(buf, p)
                        if flags & 1:
                            _, p = leb(buf, p)
                    elif kind == 3:
                        p += 2
            if sid == 10:
                count, p = leb(buf, j)
                for f in range(count):
                    bsize, q = leb(buf, p)
                    bodies.append((n_imported_funcs + f, q + bsize - p))
                    p = q + bsize
        i = end

    total = len(buf)
    print(f"{path}: {total} bytes, {len(bodies)} functions, {len(names)} named")
    print("\nsections:")
    for s, n in sections.most_common():
        print(f"  {n:>10}  {100 * n / total:5.1f}%  {s}")
    code = sum(n for _, n in bodies)
    if not names:
        print("\n(no name section: per-crate sizes need the wasm before wasm-opt)")
        return
    by_crate = Counter()
    by_fn = Counter()
    for idx, n in bodies:
        name = tidy(demangle_legacy(names.get(idx, f"func{idx}")))
        by_crate[crate_of(name)] += n
        by_fn[name] += n
    print(f"\ncode by crate (of {code} code bytes):")
    for c, n in by_crate.most_common(top):
        print(f"  {n:>10}  {100 * n / code:5.1f}%  {c}")
    print(f"\nlargest functions:")
    for f, n in by_fn.most_common(top):
        print(f"  {n:>10}  {f[:150]}")


if __name__ == "__main__":
    main()
