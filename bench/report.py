"""Turn timings into tables, a JSON file and a plot; describe the machine they came from."""
from __future__ import annotations

import datetime
import io
import json
import os
import platform
import sys
from typing import List, Optional

import numpy as np

import fastloss
from bench import peers
from bench.workloads import (LOSSES, is_rowwise, title, Workload, headline_workloads,
                             short_name)

PEER_KINDS = (("numpy", "NumPy"), ("torch", "PyTorch"), ("sklearn", "sklearn"))


# ---------------------------------------------------------------------------------------
# Conditions

def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_flags() -> List[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    return [x for x in ("avx2", "fma", "avx512f", "avx512dq", "avx512vl")
                            if x in have]
    except OSError:
        pass
    return []


def _loadavg() -> Optional[List[float]]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def conditions(threads_used, dtypes, mode: str, argv) -> dict:
    cfg = fastloss.show_config(file=io.StringIO())
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    versions = {"python": sys.version.split()[0], "numpy": np.__version__,
                "torch": peers.TORCH.version, "sklearn": peers.SKLEARN.version,
                "fastloss": fastloss.__version__}
    mpl = peers.optional_import("matplotlib", "matplotlib")
    versions["matplotlib"] = mpl.version
    out = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": "python -m bench " + " ".join(argv),
        "mode": mode,
        "cpu_model": _cpu_model(),
        "cpu_flags": _cpu_flags(),
        "os_cpu_count": os.cpu_count(),
        "affinity_cpus": affinity,
        "threads_used": sorted(set(threads_used)),
        "dtypes": sorted(set(dtypes)),
        "platform": platform.platform(),
        "loadavg_at_start": _loadavg(),
        "versions": versions,
        "fastloss_config": {k: (v if isinstance(v, (int, float, str, bool, type(None), dict))
                                else list(v)) for k, v in cfg.items()},
        "env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "FASTLOSS_ISA",
                                           "FASTLOSS_BENCH_DISABLE") if k in os.environ},
    }
    if peers.TORCH.module is not None:
        try:
            out["torch_cpu_capability"] = peers.TORCH.module.backends.cpu.get_cpu_capability()
        except Exception:
            pass
    return out


def _build_kind(cfg: dict) -> str:
    """'portable' (a release wheel's build), 'native' (-march=native) or 'local'; and how
    log1p/expm1 are vectorized where they are not plain libmvec."""
    kind = ("portable" if cfg.get("portable_build") else
            "native" if cfg.get("native_build") else "local")
    vm = cfg.get("vector_math") or {}
    odd = sorted({v for k, v in vm.items() if v != "libmvec"})
    return kind + (f" (log1p/expm1: {', '.join(odd)})" if odd else "")


def header(c: dict) -> str:
    v, cfg = c["versions"], c["fastloss_config"]
    lines = [
        "fastloss benchmark: fastloss vs NumPy / PyTorch / scikit-learn, interleaved, "
        "median of repeats",
        f"  date      : {c['date']}   ({c['mode']} mode)",
        f"  CPU       : {c['cpu_model']} ({', '.join(c['cpu_flags']) or 'no AVX2'}); "
        f"os.cpu_count() = {c['os_cpu_count']}, usable = {c['affinity_cpus']}",
        f"  threads   : {', '.join(map(str, c['threads_used']))}   dtypes: "
        f"{', '.join(c['dtypes'])}",
        f"  versions  : Python {v['python']}, NumPy {v['numpy']}, "
        f"torch {v['torch'] or '-'}, scikit-learn {v['sklearn'] or '-'}, "
        f"matplotlib {v['matplotlib'] or '-'}",
        f"  fastloss  : {v['fastloss']}  active_isa={cfg.get('active_isa')}  "
        f"openmp={cfg.get('openmp')}  default_threads={cfg.get('default_threads')}  "
        f"libmvec={cfg.get('vector_math_libmvec')}  build={_build_kind(cfg)}",
        f"  cflags    : {cfg.get('cflags')}",
    ]
    load = c.get("loadavg_at_start")
    if load:
        lines.append(f"  load avg  : {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at start"
                     + ("   << other processes may be busy: multi-threaded timings can be "
                        "noisy" if load[0] > 0.5 else ""))
    if c.get("env"):
        lines.append("  env       : " + " ".join(f"{k}={x}" for k, x in c["env"].items()))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# Records

def records(results, memref_n: Optional[int]) -> List[dict]:
    """One flat dict per (workload, implementation)."""
    out = []
    for res in results:
        w: Workload = res["workload"]
        fast = res["timings"][0].stats()["median_s"]
        for t in res["timings"]:
            st = t.stats()
            rec = dict(w.as_dict(), title=title(w.loss), impl=t.impl, kind=t.kind,
                       calls_per_sample=t.number, repeats=len(t.samples), samples_s=t.samples,
                       **st,
                       elements_per_s=w.n / st["median_s"],
                       workload_wall_s=res.get("wall_s"))
            if t.kind not in ("fastloss", "memref"):
                rec["fastloss_speedup"] = st["median_s"] / fast
            if not is_rowwise(w.loss) and w.op == "loss_gradient" and w.n == memref_n:
                nbytes = 3 * np.dtype(w.dtype).itemsize * w.n
                rec["bytes_moved"] = nbytes
                rec["bandwidth_GBps"] = nbytes / st["median_s"] / 1e9
            out.append(rec)
    return out


# ---------------------------------------------------------------------------------------
# Text

def fmt_time(s: float, unit: Optional[str] = None) -> str:
    if unit is None:
        unit = "us" if s < 1e-3 else ("ms" if s < 1 else "s")
    scale = {"us": 1e6, "ms": 1e3, "s": 1.0}[unit]
    x = s * scale
    return f"{x:.3g} {unit}" if x < 100 else f"{x:.0f} {unit}"


def _ratio(x: float) -> str:
    return f"{x:.2f}x" if x < 100 else f"{x:,.0f}x"


def _unit(s: float) -> str:
    return "us" if s < 1e-3 else ("ms" if s < 1 else "s")


def _title(w: Workload) -> str:
    return (f"{title(w.loss)} | {w.op} | {w.shape} | {w.dtype} | "
            f"{w.threads} thread{'s' if w.threads > 1 else ''}")


def workload_table(w: Workload, recs: List[dict], headline: bool, missing=()) -> str:
    """The timings of one workload, one row per implementation; a peer that is installed but
    has no version of this loss gets a row saying so (e.g. "no NumPy peer")."""
    lines = [f"-- {_title(w)}" + ("   [headline]" if headline else "")]
    lines.append(f"   {'implementation':<40} {'median':>10}  {'IQR (25-75%)':>21}  "
                 f"{'Gelem/s':>8}  {'fastloss speed-up':>17}")
    for r in recs:
        u = _unit(r["median_s"])
        iqr = f"{fmt_time(r['q25_s'], u)[:-len(u) - 1]} - {fmt_time(r['q75_s'], u)}"
        sp = _ratio(r["fastloss_speedup"]) if "fastloss_speedup" in r else ""
        lines.append(f"   {r['impl']:<40} {fmt_time(r['median_s']):>10}  {iqr:>21}  "
                     f"{r['elements_per_s'] / 1e9:>8.3f}  {sp:>17}")
    for m in missing:
        lines.append(f"   {m['peer']:<40} {'-':>10}  {m['reason']}")
    return "\n".join(lines)


def _headline_label(w: Workload) -> str:
    exp = int(round(np.log10(w.n)))
    size = f"n=10^{exp}" if w.n == 10**exp else f"n={w.n:,}"
    if w.k:
        r = w.rows
        re_ = int(round(np.log10(r)))
        size = (f"{'10^%d' % re_ if r == 10**re_ else f'{r:,}'} rows x k={w.k}")
    return f"{short_name(w.loss).upper()} {size}"


def headline(recs: List[dict], threads: int) -> (str, List[dict]):
    rows = []
    for w in headline_workloads(threads):
        mine = [r for r in recs if _key(r) == _wkey(w)]
        if not mine:
            continue
        fast = next(r for r in mine if r["kind"] == "fastloss")
        row = {"workload": _headline_label(w), **w.as_dict(), "fastloss_median_s": fast["median_s"]}
        for kind, name in PEER_KINDS:
            peer = next((r for r in mine if r["kind"] == kind), None)
            row[f"speedup_vs_{kind}"] = peer["fastloss_speedup"] if peer else None
        rows.append(row)
    if not rows:
        return "", rows
    t = f"{threads} thread{'s' if threads > 1 else ''}"
    lines = [f"Headline: loss_gradient, float64, {t}, fastloss with preallocated gradient_out",
             "(speed-up = peer median time / fastloss median time; > 1 means fastloss is faster)",
             f"   {'workload':<26} {'fastloss':>10}  {'vs NumPy':>9}  {'vs PyTorch':>10}  "
             f"{'vs sklearn':>10}"]
    missing = {"torch": peers.TORCH.module is None, "sklearn": peers.SKLEARN.module is None}
    for row in rows:
        cells = []
        for kind, _ in PEER_KINDS:
            x = row[f"speedup_vs_{kind}"]
            cells.append(_ratio(x) if x is not None else
                         ("not inst." if missing.get(kind) else "-"))
        lines.append(f"   {row['workload']:<26} {fmt_time(row['fastloss_median_s']):>10}  "
                     f"{cells[0]:>9}  {cells[1]:>10}  {cells[2]:>10}")
    return "\n".join(lines), rows


def bandwidth(recs: List[dict]) -> (str, List[dict]):
    groups = {}
    for r in recs:
        if "bandwidth_GBps" in r:
            groups.setdefault(_key(r), {})[r["kind"]] = r
    rows = []
    for key, g in groups.items():
        if "fastloss" not in g or "memref" not in g:
            continue
        f, m = g["fastloss"], g["memref"]
        rows.append({"loss": f["loss"], "n_elements": f["n_elements"], "dtype": f["dtype"],
                     "threads": f["threads"], "fastloss_GBps": f["bandwidth_GBps"],
                     "fastloss_alloc_GBps": g.get("fastloss-alloc", {}).get("bandwidth_GBps"),
                     "memory_reference_GBps": m["bandwidth_GBps"], "memory_reference": m["impl"],
                     "fraction": f["bandwidth_GBps"] / m["bandwidth_GBps"]})
    if not rows:
        return "", rows
    n = rows[0]["n_elements"]
    width = max(7, 2 + max(len(short_name(r["loss"])) for r in rows))
    lines = [f"Memory bandwidth of elementwise loss_gradient at n={n:,} "
             f"(bytes = 3 arrays x itemsize x n: read y_true, read y_pred, write gradient)",
             f"   {'loss':<{width}}{'dtype':<9}{'threads':>7}  {'fastloss GB/s':>13}  "
             f"{'np.add ref GB/s':>15}  {'fraction':>8}"]
    for r in rows:
        lines.append(f"   {short_name(r['loss']):<{width}}{r['dtype']:<9}{r['threads']:>7}  "
                     f"{r['fastloss_GBps']:>13.1f}  {r['memory_reference_GBps']:>15.1f}  "
                     f"{r['fraction']:>8.2f}")
    lines.append("   (the reference is np.add(y_true, y_pred, out=buf), the same traffic, split "
                 "over Python threads when threads > 1;\n    fraction = fastloss / reference: "
                 "above 1, fastloss moves data faster than NumPy's own add does)")
    return "\n".join(lines), rows


def _key(r: dict):
    return (r["loss"], r["op"], r["n_elements"], r["k"], r["dtype"], r["threads"])


def _wkey(w: Workload):
    return (w.loss, w.op, w.n, w.k, w.dtype, w.threads)


def tables(results, recs: List[dict], headline_threads: int) -> str:
    heads = {_wkey(w) for w in headline_workloads(headline_threads)}
    by_key = {}
    for r in recs:
        by_key.setdefault(_key(r), []).append(r)
    out = []
    for loss in LOSSES:
        mine = [res for res in results if res["workload"].loss == loss]
        if not mine:
            continue
        out.append(f"\n== {title(loss)} " + "=" * max(0, 90 - len(title(loss))))
        for res in mine:
            w = res["workload"]
            out.append(workload_table(w, by_key[_wkey(w)], _wkey(w) in heads,
                                      res.get("missing", ())))
    return "\n".join(out)


# ---------------------------------------------------------------------------------------
# Files

def write_json(path: str, payload: dict) -> None:
    with open(path, "w") as f:
        json.dump(payload, f, indent=1)
        f.write("\n")


def plot(recs: List[dict], path: str) -> Optional[str]:
    """Throughput vs size, log-log, one subplot per loss and one line per implementation,
    for the main configuration of the run (loss_gradient, float64, most threads, if run)."""
    mpl = peers.optional_import("matplotlib", "matplotlib")
    if mpl.module is None or not recs:
        return None
    mpl.module.use("Agg")
    import matplotlib.pyplot as plt

    def score(c):
        return (c[0] == "loss_gradient", c[1] == "float64", c[2],
                sum((r["op"], r["dtype"], r["threads"]) == c for r in recs))
    op, dtype, threads = max({(r["op"], r["dtype"], r["threads"]) for r in recs}, key=score)
    mine = [r for r in recs if (r["op"], r["dtype"], r["threads"]) == (op, dtype, threads)
            and r["kind"] != "memref"]
    losses = [x for x in LOSSES if any(r["loss"] == x for r in mine)]
    cols = min(3, len(losses))
    nrows = (len(losses) + cols - 1) // cols
    height = 3.6 * nrows + 0.9
    fig, axes = plt.subplots(nrows, cols, figsize=(5 * cols, height), squeeze=False)
    impls = list(dict.fromkeys(r["impl"] for r in mine))
    colors = {name: f"C{i}" for i, name in enumerate(impls)}
    for ax, loss in zip(axes.flat, losses):
        lines = {}
        for r in mine:
            if r["loss"] == loss:
                lines.setdefault((r["impl"], r["k"]), []).append(
                    (r["n_elements"], r["elements_per_s"]))
        for (impl, k), pts in lines.items():
            pts.sort()
            x, y = zip(*pts)
            ax.plot(x, y, marker="o", color=colors[impl],
                    linestyle="--" if k and k >= 1000 else "-",
                    label=impl + (f", k={k}" if k else ""))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(title(loss), fontsize=10)
        ax.set_xlabel("elements")
        ax.set_ylabel("elements / s")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(losses):]:
        ax.set_visible(False)
    fig.suptitle(f"fastloss benchmark: {op}, {dtype}, {threads} thread"
                 f"{'s' if threads > 1 else ''} (median throughput)")
    # Fixed margins: tight_layout costs seconds per figure.
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.55 / height, top=1 - 0.75 / height,
                        wspace=0.3, hspace=0.9 / 3.6)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
