"""Bit-for-bit fingerprints of fastloss results, to prove that builds agree.

    python .ci/fingerprint.py save FILE      hashes of every result under this build
    python .ci/fingerprint.py check FILE     ... must equal those saved (e.g. by the OpenMP build)
    python .ci/fingerprint.py baseline       the frozen cases of main e8fd0a6 must give the bits
                                             stored in .ci/main_e8fd0a6.json (for the active ISA),
                                             except the deliberate changes listed, with their
                                             reasons, in .ci/baseline_changes.json
    python .ci/fingerprint.py record-change "WHY"   add the active ISA's differing results to
                                             .ci/baseline_changes.json under WHY
    python .ci/fingerprint.py record-change "WHY" --unmeasured ISA[,ISA]
                                             ... and mark the same results as changed, but not
                                             yet recorded, on kernels this CPU cannot run: the
                                             baseline check skips them there (and says so) until
                                             a session on such a CPU records them

The saved cases enumerate `fastloss.LOSSES`: every declared loss, with its default parameters
and each example value of each parameter (`Param.examples`), both dtypes, data made from the
loss's declared input kinds, n_threads 1, 2 and 3 (which must already agree within the build).
The baseline cases are the six losses' fingerprint as it stood on main e8fd0a6, frozen: they
show that the registry redesign (and anything after it) left those losses' bits unchanged.
"""
import hashlib
import json
import os
import sys

import numpy as np

import fastloss as fl
from fastloss._config import ext

HERE = os.path.dirname(os.path.abspath(__file__))
BASELINE = os.path.join(HERE, "main_e8fd0a6.json")
BASELINE_CHANGES = os.path.join(HERE, "baseline_changes.json")
N_ELEMENTS = 300_007
N_ROWS, N_CLASSES = 30_011, 10


def _digest(a) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def _data(kind, shape, dtype, rng):
    """Typical values of a declared input kind, with a few extreme ones mixed in."""
    n = int(np.prod(shape))
    if kind == "real":
        a = rng.normal(size=n) * 3
    elif kind == "logit":
        a = rng.normal(size=n) * 3
        a[rng.integers(0, n, 8)] = [40, -40, 100, -100, 700, -700, 0, -0.0]
    elif kind == "probability":
        a = rng.random(n)
        a[rng.integers(0, n, 4)] = [0.0, 1.0, 1e-300, 1 - 1e-12]
    elif kind == "binary":
        a = (rng.random(n) < 0.4).astype(np.float64)
    elif kind == "count":
        a = rng.poisson(2.0, size=n).astype(np.float64)
        a[rng.integers(0, n, 4)] = [0.0, 0.5, 1e6, 1e-300]
    elif kind == "positive":
        a = rng.gamma(2.0, 1.0, size=n) + 1e-3
        a[rng.integers(0, n, 3)] = [1e-30, 1e6, 0.5]      # 1e-30: > 0 in float32 too
    elif kind == "nonnegative":
        a = rng.gamma(2.0, 1.0, size=n)
        a[rng.integers(0, n, 3)] = [0.0, 1e-300, 1e6]
    elif kind == "above_minus_one":
        a = np.expm1(rng.normal(size=n))
        a[rng.integers(0, n, 4)] = [0.0, -0.999999, 1e30, 1e-300]
    elif kind == "distribution":
        return rng.dirichlet(np.ones(shape[-1]), size=shape[0]).astype(dtype)
    elif kind == "signs":
        a = rng.choice([-1.0, 1.0], size=n)
        a[rng.integers(0, n, 3)] = 0.0                    # 0 is the negative class too
    else:
        raise SystemExit(f"fingerprint: no data for the input kind {kind!r}; add it to _data")
    return a.reshape(shape).astype(dtype)


def settings(cls):
    """The defaults, then each example value of each parameter on its own."""
    defaults = {p.name: p.default for p in cls.params}
    out = [defaults]
    for p in cls.params:
        out += [dict(defaults, **{p.name: v}) for v in p.examples]
    return out


def registry_cases():
    rng = np.random.default_rng(20261201)
    for name, cls in fl.LOSSES.items():
        rowwise = cls.family == "rowwise"
        shape = (N_ROWS, N_CLASSES) if rowwise else (N_ELEMENTS,)
        for i, params in enumerate(settings(cls)):
            kinds = cls.inputs(params)
            for dtype in (np.float32, np.float64):
                p = _data(kinds["y_pred"], shape, dtype, rng)
                w = rng.random(shape[0]).astype(dtype)
                targets = {}
                if kinds["y_true"] == "class_labels":
                    targets["labels"] = rng.integers(0, N_CLASSES, size=N_ROWS)
                elif kinds["y_true"] == "labels":
                    targets["labels"] = rng.integers(0, N_CLASSES, size=N_ROWS)
                    targets["dense"] = _data("distribution", shape, dtype, rng)
                else:
                    targets[kinds["y_true"]] = _data(kinds["y_true"], shape, dtype, rng)
                for tname, t in targets.items():
                    yield f"{name}_{i}_{tname}_{np.dtype(dtype).name}", cls, params, t, p, w


def results(cases):
    out = {}
    for key, cls, params, t, p, w in cases:
        for nt in (1, 2, 3):
            obj = cls(**params, n_threads=nt)
            value, grad = obj.loss_gradient(t, p, sample_weight=w)
            g, h = obj.gradient_hessian(t, p)
            out[f"{key}_nt{nt}_value"] = _digest(np.array(value))
            out[f"{key}_nt{nt}_grad"] = _digest(grad)
            out[f"{key}_nt{nt}_hess"] = _digest(h)
            out[f"{key}_nt{nt}_none"] = _digest(obj.loss(t, p, reduction="none"))
    return out


def baseline_cases():
    """The frozen fingerprint cases of main e8fd0a6 (same seed, sizes and order)."""
    rng = np.random.default_rng(12345)
    n = 300_007
    out = {}
    for dtype in (np.float32, np.float64):
        t = rng.normal(size=n).astype(dtype)
        p = rng.normal(size=n).astype(dtype)
        y = (rng.random(n) < 0.4).astype(dtype)
        pr = rng.random(n).astype(dtype)
        w = rng.random(n).astype(dtype)
        z = rng.normal(size=(30_011, 10)).astype(dtype) * 3
        lab = rng.integers(0, 10, size=30_011)
        soft = rng.dirichlet(np.ones(10), size=30_011).astype(dtype)
        cases = {
            "mse": (fl.MeanSquaredError(), t, p),
            "mae": (fl.MeanAbsoluteError(), t, p),
            "huber": (fl.Huber(delta=0.7), t, p),
            "bce_logits": (fl.BinaryCrossEntropy(from_logits=True, pos_weight=2.0), y, p),
            "bce_probs": (fl.BinaryCrossEntropy(label_smoothing=0.1), y, pr),
            "cce_labels": (fl.CategoricalCrossEntropy(from_logits=True, label_smoothing=0.1), lab, z),
            "cce_soft": (fl.CategoricalCrossEntropy(from_logits=True), soft, z),
            "kl": (fl.KLDivergence(from_logits=True), soft, z),
        }
        for name, (loss, a, b) in cases.items():
            key = f"{name}_{np.dtype(dtype).name}"
            sw = w[: b.shape[0]]
            for nt in (1, 2, 3):
                obj = type(loss)(**{**loss.get_params(), "n_threads": nt})
                value, grad = obj.loss_gradient(a, b, sample_weight=sw)
                out[f"{key}_nt{nt}_value"] = _digest(np.array(value))
                out[f"{key}_nt{nt}_grad"] = _digest(grad)
                g, h = obj.gradient_hessian(a, b)
                out[f"{key}_nt{nt}_hess"] = _digest(h)
    return out


def _same_for_every_thread_count(res):
    for key, val in res.items():
        if "_nt1_" in key:
            for nt in (2, 3):
                if res[key.replace("_nt1_", f"_nt{nt}_")] != val:
                    sys.exit(f"fingerprint: {key} differs between n_threads=1 and {nt}")


def _changes():
    if not os.path.exists(BASELINE_CHANGES):
        return []
    with open(BASELINE_CHANGES) as f:
        return json.load(f)["changes"]


def _expected(isa):
    """The frozen baseline with the deliberate changes applied in order; keys changed; keys
    changed on purpose whose new bits were not recorded for this ISA (not checked)."""
    with open(BASELINE) as f:
        ref = json.load(f)
    if isa not in ref:
        return None, set(), {}
    want, changed, unmeasured = dict(ref[isa]), set(), {}
    for change in _changes():
        for key, val in change["results"].get(isa, {}).items():
            want[key] = val
            changed.add(key)
            unmeasured.pop(key, None)
        for key in change.get("unmeasured", {}).get(isa, []):
            if key not in change["results"].get(isa, {}):
                want.pop(key, None)
                unmeasured[key] = change["why"]
    return want, changed, unmeasured


def main():
    mode = sys.argv[1]
    if mode in ("baseline", "record-change"):
        isa = ext.build_info()["isa"]
        want, changed, unmeasured = _expected(isa)
        if want is None:
            print(f"fingerprint: no stored baseline for the {isa} kernels; skipped")
            return
        res = baseline_cases()
        bad = [k for k in want if res.get(k) != want[k]]
        if mode == "record-change":
            bad += sorted(unmeasured)     # recorded now, on a CPU that runs these kernels
            changes = _changes()
            entry = next((c for c in changes if c["why"] == sys.argv[2]), None)
            if entry is None:
                entry = {"why": sys.argv[2], "results": {}}
                changes.append(entry)
            entry["results"].setdefault(isa, {}).update({k: res[k] for k in bad})
            if "--unmeasured" in sys.argv:
                others = sys.argv[sys.argv.index("--unmeasured") + 1].split(",")
                for other in others:
                    keys = set(entry.setdefault("unmeasured", {}).get(other, []))
                    keys |= set(entry["results"][isa])
                    entry["unmeasured"][other] = sorted(keys)
            with open(BASELINE_CHANGES, "w") as f:
                json.dump({"changes": changes}, f, indent=1, sort_keys=True)
                f.write("\n")
            print(f"fingerprint: recorded {len(bad)} changed results ({isa} kernels)")
            return
        if bad:
            sys.exit(f"fingerprint: {len(bad)} of {len(want)} results differ from main "
                     f"e8fd0a6 and its recorded changes ({isa} kernels), e.g. {bad[:5]}")
        print(f"fingerprint: all {len(want)} checked results of the six losses as expected "
              f"({isa} kernels): {len(want) - len(changed)} identical to main e8fd0a6, "
              f"{len(changed)} changed on purpose (.ci/baseline_changes.json)")
        if unmeasured:
            whys = sorted(set(unmeasured.values()))
            print(f"fingerprint: {len(unmeasured)} results not checked on the {isa} kernels: "
                  f"changed on purpose and not yet recorded there (record-change on a CPU "
                  f"that runs them): {'; '.join(w[:80] for w in whys)}")
        return
    path = sys.argv[2]
    res = results(registry_cases())
    _same_for_every_thread_count(res)
    if mode == "save":
        with open(path, "w") as f:
            json.dump(res, f, indent=0, sort_keys=True)
        print(f"fingerprint: saved {len(res)} results of {len(fl.LOSSES)} losses to {path}")
        return
    ref = json.load(open(path))
    bad = sorted(set(res) ^ set(ref)) + [k for k in res if k in ref and ref[k] != res[k]]
    if bad:
        sys.exit(f"fingerprint: {len(bad)} results differ from {path}, e.g. {bad[:5]}")
    print(f"fingerprint: all {len(res)} results of {len(fl.LOSSES)} losses identical to {path}")


if __name__ == "__main__":
    main()
