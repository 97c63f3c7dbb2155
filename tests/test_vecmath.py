"""The inline transcendentals of fastloss/_simd_math.h (exp, expm1, log1p and the exp/expm1
pair) against NumPy's long double functions: x87 extended precision, 11 more bits than
float64 and computed by other code (the C library's long double routines).

The header is compiled here, by itself, with the flags of the AVX2 kernels (the functions
are arithmetic only where FMA and AVX2 exist; elsewhere they are the C library's own), and
run over random and special inputs. Skipped without a C compiler, on other machines than
x86-64, or where the sources are not at hand (tests run against an installed wheel)."""
import subprocess

import numpy as np
import pytest

import c_harness

HARNESS = r"""
#include <stdio.h>
#include "_simd_math.h"
/* argv[1]: e (exp), m (expm1), p (the exp/expm1 pair: writes both), l (log1p);
   argv[2]: d (double) or f (float). Values on stdin, results on stdout, in binary. */
int main(int argc, char** argv) {
    if (argc != 3) return 2;
    char fn = argv[1][0];
    if (argv[2][0] == 'd') {
        double x, y, w;
        while (fread(&x, sizeof x, 1, stdin) == 1) {
            if (fn == 'p') { y = fl_exp_expm1_inline(x, &w); fwrite(&w, sizeof w, 1, stdout); }
            else y = fn == 'e' ? fl_exp_inline(x) : fn == 'm' ? fl_expm1_inline(x)
                   : fl_log1p_inline(x);
            fwrite(&y, sizeof y, 1, stdout);
        }
    } else {
        float x, y, w;
        while (fread(&x, sizeof x, 1, stdin) == 1) {
            if (fn == 'p') { y = fl_expf_expm1f_inline(x, &w); fwrite(&w, sizeof w, 1, stdout); }
            else y = fn == 'e' ? fl_expf_inline(x) : fn == 'm' ? fl_expm1f_inline(x)
                   : fl_log1pf_inline(x);
            fwrite(&y, sizeof y, 1, stdout);
        }
    }
    return 0;
}
"""


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    if np.finfo(np.longdouble).nmant < 63:
        pytest.skip("long double is not x87 extended precision here")
    # The kernels' flags: no errno, no traps, FMA + AVX2 (x86-64-v3), so FL_EXP_INLINE is 1.
    flags = ["-O2", "-march=x86-64-v3", "-fno-math-errno", "-fno-trapping-math"]
    exe = c_harness.build("_simd_math.h", HARNESS, flags, tmp_path_factory.mktemp("vecmath"),
                          ["e", "d"], np.zeros(1).tobytes(), "the inline functions")

    def call(fn, x):
        out = subprocess.run([str(exe), fn, "d" if x.dtype == np.float64 else "f"],
                             input=x.tobytes(), capture_output=True, check=True).stdout
        y = np.frombuffer(out, x.dtype)
        return (y[1::2], y[0::2]) if fn == "p" else y   # the pair: (exp, expm1)
    return call


def _ulps(got, exact, dtype):
    """|got - exact| in units of the last place of exact rounded to dtype (normal results)."""
    ref = exact.astype(dtype)
    return (np.abs(got.astype(np.longdouble) - exact)
            / np.spacing(np.abs(ref)).astype(np.longdouble)).astype(np.float64)


def _normal(exact, dtype):
    fi = np.finfo(dtype)
    a = np.abs(exact)
    return np.isfinite(exact) & (a >= fi.tiny) & (a <= fi.max)


RANGE = {np.float64: (-745.0, 709.7), np.float32: (-103.0, 88.7)}


def _exp_inputs(dtype, rng):
    lo, hi = RANGE[dtype]
    tiny = np.sign(rng.uniform(-1, 1, 20000)) * 10.0 ** rng.uniform(-30, 0.5, 20000)
    return np.concatenate([rng.uniform(lo, hi, 40000), rng.uniform(-2, 2, 40000), tiny,
                           [0.3465, -0.3466, 0.3467, 20.0, 20.001, 40.0, 40.001]]).astype(dtype)


# The measured worst cases (ulp) stated in _simd_math.h, with a little room.
EXP_ULP = {np.float64: 1.05, np.float32: 1.05}
EXPM1_ULP = {np.float64: 1.9, np.float32: 1.7}      # x > 0; x <= 0: below 1.2
LOG1P_ULP = {np.float64: 0.8, np.float32: 0.8}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_exp_and_expm1_against_long_double(harness, dtype):
    x = _exp_inputs(dtype, np.random.default_rng(11))
    xl = x.astype(np.longdouble)
    for fn, exact, limit in (("e", np.exp(xl), EXP_ULP[dtype]),
                             ("m", np.expm1(xl), EXPM1_ULP[dtype])):
        got = harness(fn, x)
        ok = _normal(exact, dtype)
        err = _ulps(got[ok], exact[ok], dtype)
        i = int(np.argmax(err))
        assert err[i] <= limit, f"{fn}: {err[i]:.3f} ulp at x={x[ok][i]!r}"
    # expm1 of x <= 0 (LogCosh's use) is within 1.2 ulp.
    neg = (x <= 0) & _normal(np.expm1(xl), dtype)
    assert _ulps(harness("m", x)[neg], np.expm1(xl)[neg], dtype).max() <= 1.2


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_exp_expm1_pair_equals_the_single_functions(harness, dtype):
    """The pair LogCosh calls gives exactly what the two functions give one at a time."""
    x = _exp_inputs(dtype, np.random.default_rng(12))
    e, w = harness("p", x)
    np.testing.assert_array_equal(e, harness("e", x))
    np.testing.assert_array_equal(w, harness("m", x))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_log1p_against_long_double(harness, dtype):
    rng = np.random.default_rng(13)
    big = 3e38 if dtype == np.float32 else 1e300
    x = np.concatenate([rng.uniform(-1, 1, 40000), rng.uniform(1, 100, 20000),
                        10.0 ** rng.uniform(2, np.log10(big), 20000),
                        np.sign(rng.uniform(-1, 1, 20000)) * 10.0 ** rng.uniform(-30, -1, 20000),
                        [np.sqrt(2) / 2 - 1, np.sqrt(2) - 1, -0.5, 1.0]]).astype(dtype)
    x = x[x > -1]
    exact = np.log1p(x.astype(np.longdouble))
    ok = _normal(exact, dtype)
    err = _ulps(harness("l", x)[ok], exact[ok], dtype)
    i = int(np.argmax(err))
    assert err[i] <= LOG1P_ULP[dtype], f"{err[i]:.3f} ulp at x={x[ok][i]!r}"


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_special_values_as_numpy(harness, dtype):
    """Zeros (with their sign), infinities, NaN, the domain's edge and the limits of the
    range give what NumPy's own functions give."""
    fi = np.finfo(dtype)
    lo, hi = RANGE[dtype]
    # The edges where exp's result is selected (inf above 710, 0 below -746; float: 89, -104)
    # rather than computed, with their neighbours on both sides.
    top, bottom = (89.0, -104.0) if dtype == np.float32 else (710.0, -746.0)
    edges = [v for e in (top, bottom) for v in (np.nextafter(dtype(e), dtype(-np.inf)),
                                                dtype(e), np.nextafter(dtype(e), dtype(np.inf)))]
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -1.0, -2.0, fi.max, fi.smallest_subnormal,
                  -fi.smallest_subnormal, 1000.0, -1000.0, hi + 0.1, lo - 30, -fi.max,
                  top - 0.5, bottom + 0.5] + edges, dtype)
    with np.errstate(all="ignore"):
        for fn, ref in (("e", np.exp), ("m", np.expm1), ("l", np.log1p)):
            got, want = harness(fn, x), ref(x)
            normal = np.isfinite(want) & (np.abs(want) >= fi.tiny) & (want != -1)
            # 0 (with its sign), +-inf, NaN and expm1's -1 exactly; subnormal results to
            # within their last unit; normal results within the functions' ulp bounds.
            exact = ~normal & np.isfinite(want) & (np.abs(want) >= fi.tiny)
            special = ~normal & ~exact
            same = (got == want) | (np.isnan(got) & np.isnan(want))
            sub = special & (want != 0) & np.isfinite(want)
            same[sub] = np.abs(got[sub] - want[sub]) <= fi.smallest_subnormal
            bad = (special | exact) & ~same
            assert not bad.any(), f"{fn}: {x[bad]} -> {got[bad]}, numpy {want[bad]}"
            zero = want == 0
            np.testing.assert_array_equal(np.signbit(got[zero]), np.signbit(want[zero]))
            assert np.all(_ulps(got[normal], ref(x[normal].astype(np.longdouble)), dtype) <= 2)
