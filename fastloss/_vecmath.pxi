# Scalar math for kernels, in both dtypes: exp/log/log1p resolve to glibc's vector math
# library inside vectorized loops (see _simd_math.h). Kernel modules only.
from cython cimport floating
from libc.math cimport fabs, fabsf, sqrt, sqrtf, INFINITY, NAN

cdef extern from "_simd_math.h" nogil:
    double exp(double)
    float expf(float)
    double log(double)
    float logf(float)
    double log1p(double)
    float log1pf(float)
    double expm1(double)
    float expm1f(float)
    double fl_fma(double, double, double)
    float fl_fmaf(float, float, float)
    bint FL_EXP_INLINE
    double fl_exp_inline(double)
    float fl_expf_inline(float)
    double fl_log1p_inline(double)
    double fl_expm1_inline(double)
    float fl_expm1f_inline(float)
    double fl_exp_expm1_inline(double, double*)
    float fl_expf_expm1f_inline(float, float*)
    float fl_log1pf_inline(float)
    void fl_prefetch(const void*)
    void fl_prefetch_write(const void*)
    int fl_vm_kind(int which)
    int fl_omp_runtime()


cdef inline floating f_exp(floating x) noexcept nogil:
    if floating is float:
        return expf(x)
    else:
        return exp(x)

cdef inline floating f_exp_inline(floating x) noexcept nogil:
    # exp as inline arithmetic (about 1 ulp; see _simd_math.h), for loops whose only
    # transcendental is exp. Faster there than a libmvec call on the AVX2/AVX-512 builds.
    if floating is float:
        return fl_expf_inline(x)
    else:
        return fl_exp_inline(x)

cdef inline floating f_log1p_inline(floating x) noexcept nogil:
    # log1p as inline arithmetic (fdlibm's method; see _simd_math.h), for loops whose
    # transcendentals are all inline. libmvec's log1p where f_exp_inline is libmvec's exp.
    if floating is float:
        return fl_log1pf_inline(x)
    else:
        return fl_log1p_inline(x)

cdef inline floating f_expm1_inline(floating x) noexcept nogil:
    # expm1 from f_exp_inline's reduction (see _simd_math.h); f_exp_expm1_inline where both
    # are needed. libmvec's expm1 where f_exp_inline is libmvec's exp.
    if floating is float:
        return fl_expm1f_inline(x)
    else:
        return fl_expm1_inline(x)

cdef inline floating f_exp_expm1_inline(floating x, floating* em1) noexcept nogil:
    # exp(x), and expm1(x) in em1, from one reduction (the pair as f_exp_inline and
    # f_expm1_inline give them).
    if floating is float:
        return fl_expf_expm1f_inline(x, em1)
    else:
        return fl_exp_expm1_inline(x, em1)

cdef inline floating f_log(floating x) noexcept nogil:
    if floating is float:
        return logf(x)
    else:
        return log(x)

cdef inline floating f_log1p(floating x) noexcept nogil:
    if floating is float:
        return log1pf(x)
    else:
        return log1p(x)

cdef inline floating f_expm1(floating x) noexcept nogil:
    if floating is float:
        return expm1f(x)
    else:
        return expm1(x)

cdef inline floating f_abs(floating x) noexcept nogil:
    # libc's fabs takes and returns double: a float kernel's f_exp(-fabs(p)) took f_exp's
    # double version (exp in double, converted both ways: float32 BCE from logits ran at
    # float64's speed). In the dtype, as the other f_ functions.
    if floating is float:
        return fabsf(x)
    else:
        return fabs(x)

cdef inline floating f_sqrt(floating x) noexcept nogil:
    # One vector instruction (sqrtpd/sqrtps) inside vectorized loops (-fno-math-errno).
    if floating is float:
        return sqrtf(x)
    else:
        return sqrt(x)

cdef inline floating f_fma(floating x, floating y, floating z) noexcept nogil:
    # x * y + z, computed alike in every loop (see fl_fma in _simd_math.h): a kernel writes it
    # where gcc's contraction would otherwise depend on which outputs a loop keeps.
    if floating is float:
        return fl_fmaf(x, y, z)
    else:
        return fl_fma(x, y, z)

cdef inline floating clamp_log(floating lx) noexcept nogil:
    # PyTorch's convention for log-probabilities: clamp at -100. NaN stays NaN.
    return -100 if lx < -100 else lx

cdef inline floating sign(floating d) noexcept nogil:
    # numpy.sign: +-1, 0 at 0, NaN for NaN.
    return 1 if d > 0 else (-1 if d < 0 else d)

cdef inline floating nan_or_zero(floating d) noexcept nogil:
    # 0, except NaN where d is NaN: keeps NaN propagating through a constant derivative.
    return 0 if d == d else d



cdef inline floating focal_pow(floating u, double gamma, double gamma_int,
                               bint general) noexcept nogil:
    # u**gamma for the focal losses: by multiplication where gamma is an integer 0..4
    # (general=False; the usual choices: exact to a rounding or two, 0**0 = 1), else
    # exp(gamma log u), whose relative error grows like |gamma log u| ulp (0 at u = 0 for
    # gamma > 0; NaN for u < 0). `general` is a constant in each kernel, so that a vector loop
    # holds either the multiplications or the exp/log, never a call under a condition.
    cdef floating u2
    if general:
        return f_exp(<floating>gamma * f_log(u))
    u2 = u * u
    return 1 if gamma_int == 0 else (u if gamma_int == 1 else (
        u2 if gamma_int == 2 else (u2 * u if gamma_int == 3 else u2 * u2)))


cdef inline floating focal_power(floating u, double gamma, double p0, double p1, double p2,
                                 double p3, double p4, bint general) noexcept nogil:
    # u**gamma in the elementwise focal kernels: exp(gamma log u) (general), else the
    # polynomial whose one nonzero coefficient p_gamma is 1 (gamma an integer 0..4): exact
    # to the roundings of the products, and no branch in the vector loop.
    if general:
        return f_exp(<floating>gamma * f_log(u))
    return <floating>p0 + u * (<floating>p1 + u * (<floating>p2 + u * (
        <floating>p3 + u * <floating>p4)))


cdef inline floating focal_power_1(floating u, double gamma, double p1, double p2, double p3,
                                   double p4, bint general) noexcept nogil:
    # u**(gamma - 1), as focal_power; 0 for gamma = 0 (it only ever multiplies gamma).
    if general:
        return f_exp(<floating>(gamma - 1) * f_log(u))
    return <floating>p1 + u * (<floating>p2 + u * (<floating>p3 + u * <floating>p4))
