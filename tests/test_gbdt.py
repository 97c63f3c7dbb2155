"""fastloss.gbdt against the real XGBoost and LightGBM: the adapters grow the built-ins' trees.

Each pair trains ~20 rounds on ~20k rows with the built-in objective and with the adapter
(same parameters, same start) and compares held-out raw predictions. Skipped cleanly where a
library is not installed (``pip install "fastloss[gbdt]"``).
"""
import pickle

import numpy as np
import pytest

import fastloss as fl
from fastloss import gbdt

N, D, K, ROUNDS = 20_000, 8, 4, 20
RTOL = 1e-5


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(12)
    X = rng.normal(size=(N, D))
    Xt = rng.normal(size=(2_000, D))
    s = X[:, 0] + 0.5 * np.sin(X[:, 1]) + 0.3 * X[:, 2]
    mu = np.exp(0.5 * s)
    y = {
        "binary": (s + rng.normal(size=N) > 0).astype(np.float64),
        "class": np.digitize(s + 0.3 * rng.normal(size=N), [-1.0, 0.0, 1.0]).astype(np.float64),
        "real": s + 0.3 * rng.normal(size=N),
        "count": rng.poisson(mu).astype(np.float64),
        "positive": rng.gamma(2.0, mu / 2.0),
        "tweedie": rng.poisson(mu) * rng.gamma(2.0, 0.5, size=N),
    }
    w = rng.uniform(0.2, 2.0, size=N)
    return X, Xt, y, w


def _close(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    np.testing.assert_allclose(a, b, rtol=RTOL, atol=RTOL * np.abs(b).max())


# (built-in, its parameters, loss, label kind)
XGB_PAIRS = [
    ("binary:logistic", {}, fl.BinaryCrossEntropy(from_logits=True), "binary"),
    ("multi:softprob", {"num_class": K}, fl.CategoricalCrossEntropy(from_logits=True), "class"),
    ("reg:squarederror", {}, fl.MeanSquaredError(), "real"),
    ("reg:pseudohubererror", {"huber_slope": 1.5}, fl.PseudoHuber(delta=1.5), "real"),
    # count:poisson also sets the trees' max_delta_step to 0.7: the custom side needs it given.
    ("count:poisson", {"max_delta_step": 0.7}, fl.Poisson(), "count"),
    ("reg:gamma", {}, fl.Gamma(), "positive"),
    ("reg:tweedie", {"tweedie_variance_power": 1.3}, fl.Tweedie(power=1.3), "tweedie"),
]
LGB_PAIRS = [
    ("binary", {}, fl.BinaryCrossEntropy(from_logits=True), "binary"),
    ("multiclass", {"num_class": K}, fl.CategoricalCrossEntropy(from_logits=True), "class"),
    ("regression", {}, fl.MeanSquaredError(), "real"),
    ("huber", {"alpha": 0.7}, fl.Huber(delta=0.7), "real"),
    ("poisson", {}, fl.Poisson(), "count"),
    ("gamma", {}, fl.Gamma(), "positive"),
    ("tweedie", {"tweedie_variance_power": 1.3}, fl.Tweedie(power=1.3), "tweedie"),
]


def _ids(pairs):
    return [p[0] for p in pairs]


# ---------------------------------------------------------------- XGBoost

def _xgb_margin(n, params):
    k = params.get("num_class", 1)
    return np.zeros((n, k)) if k > 1 else np.zeros(n)


XGB_BASE = dict(tree_method="hist", max_depth=4, eta=0.3, nthread=2)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("builtin, params, loss, kind", XGB_PAIRS, ids=_ids(XGB_PAIRS))
def test_xgboost_native_reproduces_builtin(data, builtin, params, loss, kind, weighted):
    xgb = pytest.importorskip("xgboost")
    X, Xt, y, w = data
    dtrain = xgb.DMatrix(X, label=y[kind], weight=w if weighted else None,
                         base_margin=_xgb_margin(N, params))
    dtest = xgb.DMatrix(Xt, base_margin=_xgb_margin(len(Xt), params))
    p = dict(XGB_BASE, **params)
    ref = xgb.train(dict(p, objective=builtin), dtrain, ROUNDS)
    obj = gbdt.xgboost_objective(loss)
    got = xgb.train(p, dtrain, ROUNDS, obj=obj)
    _close(got.predict(dtest, output_margin=True), ref.predict(dtest, output_margin=True))


@pytest.mark.parametrize("builtin, params, loss, kind",
                         [XGB_PAIRS[0], XGB_PAIRS[1], XGB_PAIRS[2]], ids=_ids(XGB_PAIRS[:3]))
def test_xgboost_sklearn_api(data, builtin, params, loss, kind):
    xgb = pytest.importorskip("xgboost")
    X, Xt, y, w = data
    est = xgb.XGBClassifier if kind in ("binary", "class") else xgb.XGBRegressor
    kw = dict(n_estimators=ROUNDS, max_depth=4, learning_rate=0.3, n_jobs=2, tree_method="hist",
              base_score=0.5 if kind == "binary" else (0.0 if kind == "real" else None))
    ref = est(objective=builtin, **kw).fit(X, y[kind], sample_weight=w,
                                           base_margin=_xgb_margin(N, params))
    got = est(objective=gbdt.xgboost_objective(loss, sklearn_api=True), **kw).fit(
        X, y[kind], sample_weight=w, base_margin=_xgb_margin(N, params))
    bm = _xgb_margin(len(Xt), params)
    _close(got.predict(Xt, output_margin=True, base_margin=bm),
           ref.predict(Xt, output_margin=True, base_margin=bm))


def test_xgboost_outputs_no_copies(data):
    xgb = pytest.importorskip("xgboost")
    X, Xt, y, w = data
    dtrain = xgb.DMatrix(X, label=y["class"].astype(np.float32), weight=w)
    obj = gbdt.xgboost_objective(fl.CategoricalCrossEntropy(from_logits=True))
    seen = []

    def spy(preds, d):
        g, h = obj(preds, d)
        assert g.dtype == h.dtype == np.float32 and g.shape == preds.shape == (N, K)
        assert g.flags.c_contiguous and h.flags.c_contiguous
        seen.append((g.ctypes.data, h.ctypes.data))
        return g, h

    xgb.train(dict(XGB_BASE, num_class=K), dtrain, 3, obj=spy)
    assert len(set(seen)) == 1, "the same two buffers every round"


def test_xgboost_metric(data):
    xgb = pytest.importorskip("xgboost")
    X, Xt, y, w = data
    dtrain = xgb.DMatrix(X, label=y["class"], weight=w, base_margin=_xgb_margin(N, {"num_class": K}))
    loss = fl.CategoricalCrossEntropy(from_logits=True)
    log = {}
    bst = xgb.train(dict(XGB_BASE, num_class=K, disable_default_eval_metric=1), dtrain, 3,
                    obj=gbdt.xgboost_objective(loss), custom_metric=gbdt.xgboost_metric(loss),
                    evals=[(dtrain, "train")], evals_result=log)
    last = log["train"]["categorical_cross_entropy"][-1]
    margin = bst.predict(dtrain, output_margin=True)
    assert last == pytest.approx(loss(y["class"].astype(np.int64), margin, sample_weight=w),
                                 rel=1e-5)


# ---------------------------------------------------------------- LightGBM

LGB_BASE = dict(max_depth=4, learning_rate=0.3, num_threads=2, verbose=-1,
                boost_from_average=False, deterministic=True, force_row_wise=True)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("builtin, params, loss, kind", LGB_PAIRS, ids=_ids(LGB_PAIRS))
def test_lightgbm_native_reproduces_builtin(data, builtin, params, loss, kind, weighted):
    lgb = pytest.importorskip("lightgbm")
    X, Xt, y, w = data
    wt = w if weighted else None
    p = dict(LGB_BASE, **params)
    ref = lgb.train(dict(p, objective=builtin), lgb.Dataset(X, y[kind], weight=wt), ROUNDS)
    got = lgb.train(dict(p, objective=gbdt.lightgbm_objective(loss)),
                    lgb.Dataset(X, y[kind], weight=wt), ROUNDS)
    _close(got.predict(Xt, raw_score=True), ref.predict(Xt, raw_score=True))


@pytest.mark.parametrize("builtin, params, loss, kind",
                         [LGB_PAIRS[0], LGB_PAIRS[2], LGB_PAIRS[4]], ids=_ids([LGB_PAIRS[i] for i in (0, 2, 4)]))
def test_lightgbm_initial_margin_matches_boost_from_average(data, builtin, params, loss, kind):
    lgb = pytest.importorskip("lightgbm")
    X, Xt, y, w = data
    p = dict(LGB_BASE, boost_from_average=True, **params)
    ref = lgb.train(dict(p, objective=builtin), lgb.Dataset(X, y[kind], weight=w), ROUNDS)
    m = gbdt.initial_margin(loss, y[kind], sample_weight=w)
    got = lgb.train(dict(p, objective=gbdt.lightgbm_objective(loss)),
                    lgb.Dataset(X, y[kind], weight=w, init_score=np.full(N, m)), ROUNDS)
    _close(got.predict(Xt, raw_score=True) + m, ref.predict(Xt, raw_score=True))


@pytest.mark.parametrize("builtin, params, loss, kind",
                         [LGB_PAIRS[0], LGB_PAIRS[1], LGB_PAIRS[2]], ids=_ids(LGB_PAIRS[:3]))
def test_lightgbm_sklearn_api(data, builtin, params, loss, kind):
    lgb = pytest.importorskip("lightgbm")
    X, Xt, y, w = data
    est = lgb.LGBMClassifier if kind in ("binary", "class") else lgb.LGBMRegressor
    kw = dict(n_estimators=ROUNDS, max_depth=4, learning_rate=0.3, n_jobs=2, verbose=-1,
              boost_from_average=False, deterministic=True, force_row_wise=True)
    ref = est(objective=builtin, **kw).fit(X, y[kind], sample_weight=w)
    got = est(objective=gbdt.lightgbm_objective(loss, sklearn_api=True), **kw).fit(
        X, y[kind], sample_weight=w)
    _close(got.predict(Xt, raw_score=True), ref.predict(Xt, raw_score=True))


def test_lightgbm_multiclass_no_copies(data):
    lgb = pytest.importorskip("lightgbm")
    X, Xt, y, w = data
    obj = gbdt.lightgbm_objective(fl.CategoricalCrossEntropy(from_logits=True))
    seen = []

    def spy(preds, ds):
        assert preds.dtype == np.float64 and preds.flags.f_contiguous and preds.shape == (N, K)
        g, h = obj(preds, ds)
        assert g.dtype == h.dtype == np.float32 and g.shape == (N, K)
        # LightGBM ravels them in Fortran order: a view, then its float32 cast: no copy.
        assert np.shares_memory(g.ravel(order="F"), g) and g.T.flags.c_contiguous
        seen.append((g.ctypes.data, h.ctypes.data))
        return g, h

    lgb.train(dict(LGB_BASE, num_class=K, objective=spy), lgb.Dataset(X, y["class"], weight=w), 3)
    assert len(set(seen)) == 1, "the same two buffers every round"


def test_lightgbm_metric(data):
    lgb = pytest.importorskip("lightgbm")
    X, Xt, y, w = data
    loss = fl.CategoricalCrossEntropy(from_logits=True)
    ds = lgb.Dataset(X, y["class"], weight=w)
    log = {}
    bst = lgb.train(dict(LGB_BASE, num_class=K, metric="None",
                         objective=gbdt.lightgbm_objective(loss)), ds, 3, valid_sets=[ds],
                    valid_names=["train"], feval=gbdt.lightgbm_metric(loss),
                    callbacks=[lgb.record_evaluation(log)])
    last = log["train"]["categorical_cross_entropy"][-1]
    assert last == pytest.approx(
        loss(y["class"].astype(np.int64), bst.predict(X, raw_score=True), sample_weight=w),
        rel=1e-6)


# ---------------------------------------------------------------- conventions, without libraries

class _Data:
    """A stand-in data object (get_label/get_weight) for library-free checks."""

    def __init__(self, y, w=None):
        self.y, self.w = y, w

    def get_label(self):
        return self.y

    def get_weight(self):
        return np.empty(0, np.float32) if self.w is None else self.w


def test_native_conventions_against_exact():
    rng = np.random.default_rng(0)
    n = 1000
    y = rng.integers(0, K, n).astype(np.float32)      # float labels, as DMatrix.get_label()
    z = rng.normal(size=(n, K)).astype(np.float32)
    cce = fl.CategoricalCrossEntropy(from_logits=True)
    g0, h0 = cce.gradient_hessian(y.astype(np.int64), z)
    g, h = gbdt.xgboost_objective(cce)(z, _Data(y))
    _close(g, g0)
    _close(h, np.maximum(2 * h0, 1e-16))
    zF = np.asfortranarray(z.astype(np.float64))
    g, h = gbdt.lightgbm_objective(cce)(zF, _Data(y))
    assert g.shape == (n, K) and g.T.flags.c_contiguous and g.dtype == np.float32
    _close(g, g0)
    _close(h, K / (K - 1) * h0)
    d = rng.normal(size=n)
    t = rng.normal(size=n)
    g, h = gbdt.lightgbm_objective(fl.MeanSquaredError())(t + d, _Data(t))
    _close(g, d)
    _close(h, np.ones(n))


@pytest.mark.parametrize("n, k", [(1, 2), (257, 3), (1000, 8), (5, 3000)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_class_major_layout_is_the_row_major_result(n, k, dtype):
    """LightGBM's layout (Fortran-ordered scores, class-major outputs) through the kernels'
    staged path, rows longer than a block included, equals the plain call transposed."""
    rng = np.random.default_rng(n * k)
    z = np.asfortranarray(rng.normal(size=(n, k)) * 4).astype(dtype, order="F")
    y = rng.integers(0, k, n).astype(np.float32)
    w = rng.uniform(0, 2, n)
    cce = fl.CategoricalCrossEntropy(from_logits=True)
    g0, h0 = cce.gradient_hessian(y.astype(np.int64), np.ascontiguousarray(z),
                                  sample_weight=w.astype(dtype))
    obj = gbdt.lightgbm_objective(cce, hessian="exact")
    for _ in range(2):   # the second round reuses the buffers
        g, h = obj(z, _Data(y, w))
        assert g.dtype == np.float32 and g.T.flags.c_contiguous and g.shape == (n, k)
        np.testing.assert_array_equal(g, g0.astype(np.float32))
        np.testing.assert_array_equal(h, h0.astype(np.float32))
    metric = gbdt.lightgbm_metric(cce)(z, _Data(y, w))
    assert metric[0] == "categorical_cross_entropy" and metric[2] is False
    assert metric[1] == pytest.approx(cce(y.astype(np.int64), np.ascontiguousarray(z),
                                          sample_weight=w.astype(dtype)), rel=1e-12)


@pytest.mark.parametrize("loss", [fl.MeanAbsoluteError(), fl.Quantile(quantile=0.3),
                                  fl.Huber(), fl.SmoothL1()], ids=lambda l: l.function)
def test_piecewise_linear_hessians_let_trees_grow(loss):
    rng = np.random.default_rng(1)
    t = rng.normal(size=500)
    p = t + rng.normal(size=500) * 3
    w = rng.uniform(0.5, 2, size=500)
    g_exact, h_exact = loss.gradient_hessian(t, p, sample_weight=w)
    g, h = gbdt.xgboost_objective(loss, hessian="exact")(p, _Data(t, w))
    _close(g, g_exact)
    assert np.all(h > 0)
    _close(h, np.maximum(h_exact / w, 1e-6) * w)
    g, h = gbdt.xgboost_objective(loss, hessian=2.5)(p, _Data(t, w))
    _close(h, 2.5 * w)
    h_first = h.copy()
    g, h = gbdt.xgboost_objective(loss, hessian=2.5)(p, _Data(t))     # new data: no weights
    _close(h, np.full(500, 2.5))
    assert not np.array_equal(h, h_first)


def test_errors_and_pickling():
    with pytest.raises(ValueError, match="from_logits=True"):
        gbdt.xgboost_objective(fl.BinaryCrossEntropy())
    with pytest.raises(ValueError, match="hessian"):
        gbdt.lightgbm_objective(fl.MeanSquaredError(), hessian="diagonal")
    with pytest.raises(ValueError, match="whole numbers"):
        gbdt.xgboost_objective(fl.CategoricalCrossEntropy(from_logits=True))(
            np.zeros((2, 3), np.float32), _Data(np.array([0.5, 1], np.float32)))
    obj = gbdt.lightgbm_objective(fl.Huber(delta=0.5), sklearn_api=True)
    obj(np.zeros(10), np.ones(10), None)
    back = pickle.loads(pickle.dumps(obj))
    assert repr(back) == repr(obj)
    g, h = back(np.zeros(10), np.ones(10), None)
    _close(g, np.full(10, 0.5))


# ---------------------------------------------------------------- scikit-learn

def test_functionals_and_objects_have_names_and_pickle():
    for cls in fl.LOSSES.values():
        obj = cls()
        assert obj.__name__ == cls.function and cls.__name__ != cls.function
        assert pickle.loads(pickle.dumps(cls.functional)) is getattr(fl, cls.function)
        assert repr(pickle.loads(pickle.dumps(obj))) == repr(obj)


def test_sklearn_make_scorer_accepts_loss_objects():
    metrics = pytest.importorskip("sklearn.metrics")
    scorer = metrics.make_scorer(fl.MeanSquaredError(), greater_is_better=False)
    assert "mean_squared_error" in repr(scorer)


@pytest.mark.parametrize("labels", [["cat", "dog", "emu"], [1, 2, 3]], ids=["strings", "one-based"])
def test_make_scorer_maps_classes_and_search_pickles(labels):
    pytest.importorskip("sklearn")
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 4))
    y = np.array(labels, dtype=object if isinstance(labels[0], str) else None)[
        np.digitize(X[:, 0], [-0.5, 0.5])]
    cce = fl.CategoricalCrossEntropy()
    scorer = fl.make_scorer(cce, response_method="predict_proba")
    search = GridSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, scoring=scorer, cv=3).fit(X, y)
    assert np.isfinite(search.best_score_)
    est = search.best_estimator_
    idx = np.searchsorted(est.classes_, y)
    assert scorer(est, X, y) == pytest.approx(-cce(idx, est.predict_proba(X)))
    back = pickle.loads(pickle.dumps(search))
    assert back.score(X, y) == pytest.approx(search.score(X, y))
    with pytest.raises(ValueError, match="not among"):
        scorer(est, X, np.array([labels[0], "zebra" if isinstance(labels[0], str) else 9]))


def test_make_scorer_binary_and_regression():
    pytest.importorskip("sklearn")
    from sklearn.linear_model import LinearRegression, LogisticRegression
    rng = np.random.default_rng(4)
    X = rng.normal(size=(200, 3))
    yb = np.where(X[:, 0] > 0, "yes", "no")
    est = LogisticRegression().fit(X, yb)
    bce = fl.make_scorer(fl.BinaryCrossEntropy(), response_method="predict_proba")
    assert bce(est, X, yb) == pytest.approx(
        -fl.binary_cross_entropy((yb == "yes").astype(float), est.predict_proba(X)[:, 1]))
    logit = fl.make_scorer(fl.BinaryCrossEntropy(from_logits=True),
                           response_method="decision_function")
    assert logit(est, X, yb) == pytest.approx(bce(est, X, yb))
    yr = X @ [1.0, 2.0, 3.0]
    reg = LinearRegression().fit(X, yr)
    mse = fl.make_scorer(fl.MeanSquaredError())
    assert mse(reg, X, yr) == pytest.approx(-fl.mean_squared_error(yr, reg.predict(X)))


def test_bench_gbdt_rows_run(capsys):
    pytest.importorskip("xgboost")
    pytest.importorskip("lightgbm")
    import pathlib
    import sys
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
    try:
        from bench import gbdt as bench_gbdt
    finally:
        sys.path.pop(0)
    rows = bench_gbdt.run(rounds=1, threads=1, n=2_000, repeat=1)
    assert {(r["library"], r["task"]) for r in rows} == {
        (lib, task) for lib in ("xgboost", "lightgbm") for task in ("binary", "multiclass")}
    assert "fastloss.gbdt" in capsys.readouterr().out
