#!/usr/bin/env python3
"""Tables for bench/request_cost.sh: where perfhost's cost per request goes.

  request_cost.py allocs DHAT_N.json DHAT_2N.json REQUESTS_DIFF
  request_cost.py instructions ANNOTATE_N.txt ANNOTATE_2N.txt REQUESTS_DIFF
  request_cost.py calls CALLGRIND_N CALLGRIND_2N REQUESTS_DIFF
  request_cost.py native OUT_DIR ROUNDS
  request_cost.py memory DHAT_USERS.json DHAT_2USERS.json USERS_DIFF
  request_cost.py profile PERF_SCRIPT.txt

`allocs`, `instructions` and `calls` take two runs of N and 2N requests and print the difference divided
by the requests between them (the marginal cost: start-up and plugin loading cancel out).
"""

import collections
import json
import re
import statistics
import sys

GENERIC = re.compile(r"<[^<>]*>")


def short(name, width=150):
    """A symbol without its generic arguments, cut to `width`."""
    for _ in range(4):
        name = GENERIC.sub("<>", name)
    name = re.sub(r"/rustc/[0-9a-f]+/library/|/root/\.cargo/registry/src/[^/]+/", "", name)
    return name[:width]


def crate(function, obj=""):
    """The part of the program a function belongs to: the crate of its path, libc's allocator or
    copies, the kernel, or the compiled guest."""
    if "kernel" in obj:
        return "kernel"
    if "libc.so" in obj or "ld-linux" in obj:
        if re.search(r"malloc|free|_int_|unlink_chunk|consolidate|realloc|calloc|tcache", function):
            return "libc malloc/free"
        if re.search(r"mem(cpy|move|set|cmp)", function):
            return "libc memcpy/memset"
        return "libc, other"
    if "vdso" in obj:
        return "vDSO (clock)"
    if ".cwasm" in obj or function.startswith("wasm["):
        return "guest (compiled plugin)"
    if function in ("[unknown]", "???") or function.startswith("0x"):
        return "unknown (JIT code, trampolines)"
    match = re.match(r"[A-Za-z_][A-Za-z0-9_]*", function.lstrip("<"))
    name = match.group(0) if match else function[:20]
    if name.startswith("wasmtime") or name.startswith("cranelift"):
        return "wasmtime"
    if name.startswith("futures"):
        return "futures"
    if name.startswith("_mi_") or name.startswith("mi_"):
        return "mimalloc"
    if name in ("core", "alloc", "std", "T", "F"):
        return "core/alloc/std (generic code)"
    return name


def shares(counter, total, top, count=False):
    """The `top` largest entries of `counter` with their share of `total` (and the count)."""
    for name, value in counter.most_common(top):
        amount = f"{value:8,.0f}  " if count else ""
        print(f"  {amount}{value * 100 / total:5.1f}%  {name}")


def allocs(path_n, path_2n, requests):
    def load(path):
        data = json.load(open(path))
        frames = data["ftbl"]
        sites = collections.Counter()
        for pp in data["pps"]:
            chain = [frames[i] for i in pp["fs"]]
            ours = [f for f in chain if not re.search(r"library/(alloc|core|std)/|malloc|\?\?\?|\[root\]", f)]
            where = " <- ".join(short(re.sub(r"^0x[0-9A-F]+: ", "", f), 90) for f in ours[:2])
            sites[where or "(no frames: called on a wasmtime fiber stack)"] += pp["tbk"]
        return data, sites

    (d1, s1), (d2, s2) = load(path_n), load(path_2n)
    blocks = (sum(p["tbk"] for p in d2["pps"]) - sum(p["tbk"] for p in d1["pps"])) / requests
    nbytes = (sum(p["tb"] for p in d2["pps"]) - sum(p["tb"] for p in d1["pps"])) / requests
    print(f"allocations per request (marginal): {blocks:.1f}, {nbytes:,.0f} bytes")
    diff = collections.Counter({k: (s2[k] - s1[k]) / requests for k in set(s1) | set(s2)})
    print("allocation sites, per request:")
    for where, count in diff.most_common(25):
        if count >= 0.05:
            print(f"  {count:5.2f}  {where}")


def instructions(path_n, path_2n, requests):
    def load(path):
        costs = collections.Counter()
        for line in open(path):
            m = re.match(r"\s*([\d,]+)\s+\([ \d.]+%\)\s+(.*)$", line)
            if not m or "PROGRAM TOTALS" in line:
                continue
            rest = m.group(2)
            function = rest.split(":", 1)[1] if ":" in rest else rest
            obj = re.search(r"\[([^\]]*)\]\s*$", rest)
            function = re.sub(r"\s*\[[^\]]*\]\s*$", "", function)
            costs[(function, obj.group(1) if obj else "")] += int(m.group(1).replace(",", ""))
        return costs

    c1, c2 = load(path_n), load(path_2n)
    by_crate = collections.Counter()
    by_function = collections.Counter()
    for key in set(c1) | set(c2):
        delta = (c2[key] - c1[key]) / requests
        by_crate[crate(*key)] += delta
        by_function[short(key[0], 110)] += delta
    total = sum(by_crate.values())
    print(f"instructions per request (marginal, callgrind): {total:,.0f}")
    shares(by_crate, total, 16, count=True)
    print("top functions (self):")
    shares(by_function, total, 20, count=True)


# What happens per request, as calls of the function that does it (callgrind's call counts).
EVENTS = [
    ("guest entered (host -> WebAssembly)", "wasmtime::runtime::func::invoke_wasm_and_catch_traps"),
    ("fiber resumed (a guest call or host call switching stacks)", "wasmtime::runtime::fiber::resume_fiber"),
    ("host function called by the guest", "wasmtime::runtime::component::func::host::HostFn::entrypoint"),
    ("host task created (wasmtime makes one per guest -> host call)",
     "wasmtime::runtime::component::concurrent::<impl wasmtime::runtime::store::StoreOpaque>::host_task_create"),
    ("tokio task woken", "tokio::runtime::task::waker::wake_by_val"),
    ("tokio task woken (by reference)", "tokio::runtime::task::waker::wake_by_ref"),
    ("future of a FuturesUnordered woken",
     "<futures_util::stream::futures_unordered::task::Task<Fut> as futures_util::stream::futures_unordered::task::ArcWake>::wake_by_ref"),
    ("hyper's connection polled for a request", "hyper::client::dispatch::Receiver<T,U>::poll_recv"),
    ("clock read (Instant::now and tokio's clock)", "clock_gettime@@GLIBC_2.17"),
    ("malloc", ("malloc", "_rjem_malloc", "mi_malloc")),
]


def calls(path_n, path_2n, requests):
    def load(path):
        # The compressed callgrind format: "cfn=(id) name" names a callee once, "cfn=(id)" after;
        # the "calls=COUNT …" line that follows counts the calls to it from the current function.
        # A function calling itself (recursion; "NAME'2" is callgrind's name for a recursion
        # level) is one event, not two.
        base = lambda id_: re.sub(r"'\d+$", "", names.get(id_, id_))
        names, counts, caller, callee = {}, collections.Counter(), None, None
        for line in open(path, errors="replace"):
            if line.startswith(("cfn=", "fn=")):
                m = re.match(r"c?fn=\((\d+)\)(?: (.*))?", line.rstrip("\n"))
                if not m:
                    continue
                if m.group(2):
                    names[m.group(1)] = m.group(2)
                if line.startswith("cfn="):
                    callee = m.group(1)
                else:
                    caller = m.group(1)
            elif line.startswith("calls=") and callee and base(caller) != base(callee):
                counts[callee] += int(line[6:].split()[0])
        by_name = collections.Counter()  # one name may be several instantiations
        for id_, count in counts.items():
            by_name[names.get(id_, id_)] += count
        return by_name

    c1, c2 = load(path_n), load(path_2n)
    print("calls per request (marginal, callgrind):")
    for label, functions in EVENTS:
        functions = (functions,) if isinstance(functions, str) else functions
        seen = [f for f in functions if f in c2]
        if not seen:  # inlined everywhere in this build
            print(f"  {'n/a':>7}  {label}")
            continue
        per_request = sum(c2[f] - c1[f] for f in seen) / requests
        print(f"  {per_request:7.2f}  {label}")


def native(out, rounds):
    """The rounds of `plugin bench http_get` (native-R.out) and oha (oha-R-USERS.json/.time)."""
    rows = collections.defaultdict(lambda: collections.defaultdict(list))
    for r in range(1, rounds + 1):
        for line in open(f"{out}/native-{r}.out"):
            cols = line.split()
            if len(cols) == 6 and cols[0] in ("native", "wasm") and cols[1].isdigit():
                rows[int(cols[1])][cols[0]].append(float(cols[5]))
        for users in rows:
            try:
                report = json.load(open(f"{out}/oha-{r}-{users}.json"))
                user, system = map(float, open(f"{out}/oha-{r}-{users}.time").read().split()[-2:])
            except (OSError, ValueError):
                continue
            requests = sum(report.get("statusCodeDistribution", {}).values())
            if requests:
                rows[users]["oha"].append((user + system) * 1e6 / requests)
    median = statistics.median
    print("CPU µs per request, median of rounds; ratios: median of each round's (min-max)")
    print(f"  {'users':>6} {'native':>8} {'wasm':>8} {'oha':>8}  {'wasm/native':>18}  {'native/oha':>18}  {'wasm/oha':>18}")

    def ratio(a, b):
        pairs = [x / y for x, y in zip(a, b) if y]
        return f"{median(pairs):.2f} ({min(pairs):.2f}-{max(pairs):.2f})" if pairs else "-"

    for users in sorted(rows):
        got = rows[users]
        cell = lambda kind: f"{median(got[kind]):8.1f}" if got[kind] else f"{'-':>8}"
        print(f"  {users:>6} {cell('native')} {cell('wasm')} {cell('oha')}  "
              f"{ratio(got['wasm'], got['native']):>18}  {ratio(got['native'], got['oha']):>18}  "
              f"{ratio(got['wasm'], got['oha']):>18}")


# Allocator and generic frames: the site of an allocation is the first frame past them.
ALLOCATOR_FRAME = re.compile(
    r"UnknownInlinedFun|alloc::|core::ptr|RawVec|__rust|malloc|realloc|calloc|memalign|^alloc(_impl\w*)? "
)


def memory(path_n, path_2n, users):
    """Heap at DHAT's global peak (t-gmax) by allocation site, per user between two runs."""

    def load(path):
        d = json.load(open(path))
        frames, by_site = d["ftbl"], collections.Counter()
        for pp in d["pps"]:
            if not pp.get("gb"):
                continue
            site = []
            for i in pp["fs"][1:]:
                frame = re.sub(r"^0x[0-9A-F]+: ", "", frames[i])
                if ALLOCATOR_FRAME.search(frame):
                    continue
                site.append(short(re.sub(r"\s*\(.*?\)\s*$", "", frame), 60))
                if len(site) == 3:
                    break
            by_site[" <- ".join(site) or "(no frames: made on a wasmtime fiber stack)"] += pp["gb"]
        return by_site

    c1, c2 = load(path_n), load(path_2n)
    per_user = collections.Counter({k: (c2[k] - c1[k]) / users for k in set(c1) | set(c2)})
    total = sum(c2.values()) - sum(c1.values())
    print(f"heap per user at the peak (marginal, DHAT): {total / users / 1024:.1f} KiB; by site:")
    for site, size in per_user.most_common(12):
        if size >= 32:
            print(f"  {size / 1024:6.2f} KiB  {site}")


def profile(path):
    samples, frames = [], []
    for line in open(path):
        text = line.strip()
        if not text:
            if frames:
                samples.append(frames)
            frames = []
            continue
        m = re.match(r"([0-9a-f]+)\s+(.*?)\s+\((.*)\)$", text)
        if m:
            frames.append((m.group(2), m.group(3)))
    if frames:
        samples.append(frames)
    # Compiling the plugin (a cache miss) is start-up, not requests.
    samples = [s for s in samples if not any("cranelift" in f[0] for f in s)]
    total = len(samples) or 1
    leaf = collections.Counter(crate(*s[0]) for s in samples)
    symbols = collections.Counter(short(s[0][0], 110) for s in samples)
    kernel_callers = collections.Counter()
    for s in samples:
        if crate(*s[0]) == "kernel":
            kernel_callers[" <- ".join(short(f[0], 40) for f in s[1:5])] += 1
    print(f"CPU samples (CPU clock): {len(samples)}; self time by part of the program:")
    shares(leaf, total, 16)
    print("top symbols (self):")
    shares(symbols, total, 20)
    print("kernel samples by call path:")
    shares(kernel_callers, total, 6)


if __name__ == "__main__":
    mode, *args = sys.argv[1:] or ["help"]
    if mode == "allocs" and len(args) == 3:
        allocs(args[0], args[1], float(args[2]))
    elif mode == "instructions" and len(args) == 3:
        instructions(args[0], args[1], float(args[2]))
    elif mode == "calls" and len(args) == 3:
        calls(args[0], args[1], float(args[2]))
    elif mode == "native" and len(args) == 2:
        native(args[0], int(args[1]))
    elif mode == "memory" and len(args) == 3:
        memory(args[0], args[1], float(args[2]))
    elif mode == "profile" and len(args) == 1:
        profile(args[0])
    else:
        print(__doc__.strip(), file=sys.stderr)
        sys.exit(2)
