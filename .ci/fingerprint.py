"""Compute (or compare against) a fingerprint of fastloss results, to prove two builds agree
bit for bit: `python .ci/fingerprint.py save FILE` then, under another build,
`python .ci/fingerprint.py check FILE`."""
import sys

import numpy as np

import fastloss as fl


def results():
    rng = np.random.default_rng(12345)
    out = {}
    n = 300_007
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
                out[f"{key}_nt{nt}_value"] = np.array(value)
                out[f"{key}_nt{nt}_grad"] = grad
                g, h = obj.gradient_hessian(a, b)
                out[f"{key}_nt{nt}_hess"] = h
    return out


def main():
    mode, path = sys.argv[1], sys.argv[2]
    res = results()
    # Within one build, every thread count must already agree bit for bit.
    for key, val in res.items():
        if "_nt1_" in key:
            for nt in (2, 3):
                other = res[key.replace("_nt1_", f"_nt{nt}_")]
                if val.tobytes() != other.tobytes():
                    sys.exit(f"fingerprint: {key} differs between n_threads=1 and {nt}")
    if mode == "save":
        np.savez(path, **res)
        print(f"fingerprint: saved {len(res)} arrays to {path}")
        return
    ref = np.load(path)
    bad = [k for k in res if k not in ref or ref[k].tobytes() != res[k].tobytes()]
    if bad:
        sys.exit(f"fingerprint: {len(bad)} results differ from {path}, e.g. {bad[:5]}")
    print(f"fingerprint: all {len(res)} results identical to {path}")


if __name__ == "__main__":
    main()
