# The math of every elementwise loss, each written once.
#
# A loss is a block headed by `# @elementwise_loss(...)` and holding:
#   cdef struct Name:                 its parameters (double fields; a loss without parameters
#                                     has one `char unused`), filled from the Python declaration
#   Name_math(L, t, p, column, &l, &g, &h) loss, d/dp and d2/dp2 of one element; `column` is the
#                                     element's column parameter (used with column=True)
#   Name_invalid(L, t, p)             optional: BAD_Y_TRUE / BAD_Y_PRED where an element lies
#                                     outside the loss's domain, else 0 (NaN is not: it propagates)
# Options of the header: cost="cheap" | "transcendental" (when threads pay off), column=True
# (the loss reads a per-column parameter such as pos_weight).
# The build (setup.py) collects the blocks into the dispatch, so nothing else lists them.
# Unused outputs are dead code after inlining: the loss-only loop never computes a gradient.


# @elementwise_loss(cost="cheap")
cdef struct MeanSquaredError:
    char unused

cdef inline void MeanSquaredError_math(MeanSquaredError L, floating t, floating p, floating column,
                                       floating* l, floating* g, floating* h) noexcept nogil:
    cdef floating d = p - t
    l[0] = d * d
    g[0] = 2 * d
    h[0] = 2 + nan_or_zero(d)


# @elementwise_loss(cost="cheap")
cdef struct MeanAbsoluteError:
    char unused

cdef inline void MeanAbsoluteError_math(MeanAbsoluteError L, floating t, floating p, floating column,
                                        floating* l, floating* g, floating* h) noexcept nogil:
    cdef floating d = p - t
    l[0] = fabs(d)
    g[0] = sign(d)
    h[0] = nan_or_zero(d)


# @elementwise_loss(cost="cheap")
cdef struct Huber:
    double delta

cdef inline void Huber_math(Huber L, floating t, floating p, floating column,
                            floating* l, floating* g, floating* h) noexcept nogil:
    cdef floating d = p - t
    cdef floating ad = fabs(d)
    if ad < <floating>L.delta:
        l[0] = <floating>0.5 * d * d
        g[0] = d
        h[0] = 1
    else:
        l[0] = <floating>L.delta * (ad - <floating>(0.5 * L.delta))
        g[0] = <floating>L.delta * sign(d)
        h[0] = nan_or_zero(d)


# @elementwise_loss(cost="transcendental", column=True)
cdef struct BinaryCrossEntropyLogits:
    double smooth_scale    # y <- y * smooth_scale + smooth_shift  (label smoothing)
    double smooth_shift

cdef inline void BinaryCrossEntropyLogits_math(BinaryCrossEntropyLogits L, floating t,
                                               floating p, floating column, floating* l,
                                               floating* g, floating* h) noexcept nogil:
    # l = (1 + (column-1) y) softplus(-z) + (1-y) z, rewritten so that no large terms cancel:
    # softplus(-z) = log1p(exp(-|z|)) + max(-z, 0). `column` is pos_weight.
    cdef floating y = t * <floating>L.smooth_scale + <floating>L.smooth_shift
    cdef floating e = f_exp(-fabs(p))
    cdef floating sp = f_log1p(e)
    cdef floating lw = 1 + (column - 1) * y
    cdef floating s_pos, s_neg
    l[0] = lw * sp + ((1 - y) * p if p >= 0 else -column * y * p)
    s_pos = 1 / (1 + e)          # sigmoid(|z|)
    s_neg = e * s_pos            # sigmoid(-|z|) = 1 - sigmoid(|z|), without cancellation
    if p >= 0:
        g[0] = (1 - y) * s_pos - column * y * s_neg
    else:
        g[0] = (1 - y) * s_neg - column * y * s_pos
    h[0] = lw * s_pos * s_neg


# @elementwise_loss(cost="transcendental", column=True)
cdef struct BinaryCrossEntropyProbabilities:
    double smooth_scale
    double smooth_shift

cdef inline int BinaryCrossEntropyProbabilities_invalid(BinaryCrossEntropyProbabilities L,
                                                        floating t, floating p) noexcept nogil:
    return BAD_Y_PRED if (p < 0) | (p > 1) else 0

cdef inline void BinaryCrossEntropyProbabilities_math(BinaryCrossEntropyProbabilities L,
                                                      floating t, floating p, floating column,
                                                      floating* l, floating* g,
                                                      floating* h) noexcept nogil:
    # PyTorch: each log clamped at -100; gradient (and hessian) denominators at 1e-12, which
    # PyTorch keeps as a float32 constant even in float64 computations.
    cdef floating eps = <floating>(<float>1e-12)
    cdef floating y = t * <floating>L.smooth_scale + <floating>L.smooth_shift
    cdef floating lp = clamp_log(f_log(p))
    cdef floating l1p = clamp_log(f_log1p(-p))
    cdef floating lw, den, q
    l[0] = -(column * y * lp + (1 - y) * l1p)
    lw = 1 + (column - 1) * y
    den = p * (1 - p)
    g[0] = (lw * p - column * y) / (eps if den < eps else den)
    q = 1 - p
    den = p * p
    h[0] = column * y / (eps if den < eps else den)
    den = q * q
    h[0] = h[0] + (1 - y) / (eps if den < eps else den)


# @elementwise_loss(cost="transcendental")
cdef struct LogCosh:
    char unused

cdef inline void LogCosh_math(LogCosh L, floating t, floating p, floating column,
                              floating* l, floating* g, floating* h) noexcept nogil:
    # With a = |d|, e = exp(-a) and w = expm1(-a) = e - 1 (both accurate to their last bits):
    #   log cosh(a) = log1p(w**2 / (2 e))          no cancellation at tiny a (a < 2)
    #               = a - log 2 + log1p(e**2)      no overflow at any a (a >= 2)
    #   tanh(a) = -w (2 + w) / (1 + e**2),   sech(a)**2 = 4 e**2 / (1 + e**2)**2
    cdef floating d = p - t
    cdef floating a = fabs(d)
    cdef floating e = f_exp(-a)
    cdef floating w = f_expm1(-a)
    cdef floating e2 = e * e
    # 1 + e**2 rounded once whichever outputs the loop keeps (the method called): see f_fma.
    cdef floating den = f_fma(e, e, 1)
    cdef bint small = a < 2
    # One log1p for both forms, so that the vector loop calls it once per element.
    l[0] = (0 if small else a - <floating>0.6931471805599453) + f_log1p(
        w * w / (2 * e) if small else e2)
    g[0] = sign(d) * (-w * (2 + w) / den)
    h[0] = 4 * e2 / (den * den)
