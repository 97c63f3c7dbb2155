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
# (the loss reads a per-column parameter such as pos_weight), math="arithmetic" (the default:
# IEEE operations only) | "inline" (also f_exp_inline, f_log1p_inline: arithmetic too) |
# "libm" (libmvec/libm functions: f_exp, f_log, f_log1p, f_expm1, whose vector and scalar
# versions round differently, so the driver runs every element through the vector body; see
# ew_padded; "inline" too where the inline functions are libmvec's, on the baseline build),
# gradient_factor=N (a power of two the driver folds into the gradient's scale: the math
# returns g / N, so the factor cannot overflow where the scaled gradient is finite).
# The build (setup.py) collects the blocks into the dispatch, so nothing else lists them.
# Unused outputs are dead code after inlining: the loss-only loop never computes a gradient.
# Constants in the math are typed (`cdef floating one = 1`, `<floating>0.5`) and |x| is
# f_abs: Cython writes a bare literal as a C double and libc's fabs is double, either of which
# turns a float32 kernel's arithmetic around it into double (and f_exp(-fabs(p)) into the
# double exp); tests/test_float32_codegen.py reads the machine code for it.


# @elementwise_loss(cost="cheap", gradient_factor=2)
cdef struct MeanSquaredError:
    char unused

cdef inline void MeanSquaredError_math(MeanSquaredError L, floating t, floating p, floating column,
                                       floating* l, floating* g, floating* h) noexcept nogil:
    # The gradient 2 d, its 2 applied with the scale (gradient_factor): the mean's gradient is
    # d (2/n), as torch's, finite for float32 |d| > 1.7e38 where 2 d is not.
    cdef floating d = p - t
    l[0] = d * d
    g[0] = d
    h[0] = 2 + nan_or_zero(d)


# @elementwise_loss(cost="cheap")
cdef struct MeanAbsoluteError:
    char unused

cdef inline void MeanAbsoluteError_math(MeanAbsoluteError L, floating t, floating p, floating column,
                                        floating* l, floating* g, floating* h) noexcept nogil:
    cdef floating d = p - t
    l[0] = f_abs(d)
    g[0] = sign(d)
    h[0] = nan_or_zero(d)


# @elementwise_loss(cost="cheap")
cdef struct Huber:
    double delta

cdef inline void Huber_math(Huber L, floating t, floating p, floating column,
                            floating* l, floating* g, floating* h) noexcept nogil:
    cdef floating d = p - t
    cdef floating ad = f_abs(d)
    if ad < <floating>L.delta:
        l[0] = <floating>0.5 * d * d
        g[0] = d
        h[0] = 1
    else:
        l[0] = <floating>L.delta * (ad - <floating>(0.5 * L.delta))
        g[0] = <floating>L.delta * sign(d)
        h[0] = nan_or_zero(d)


# @elementwise_loss(cost="transcendental", column=True, math="libm")
cdef struct BinaryCrossEntropyLogits:
    double smooth_scale    # y <- y * smooth_scale + smooth_shift  (label smoothing)
    double smooth_shift

cdef inline void BinaryCrossEntropyLogits_math(BinaryCrossEntropyLogits L, floating t,
                                               floating p, floating column, floating* l,
                                               floating* g, floating* h) noexcept nogil:
    # l = (1 + (column-1) y) softplus(-z) + (1-y) z, rewritten so that no large terms cancel:
    # softplus(-z) = log1p(exp(-|z|)) + max(-z, 0). `column` is pos_weight.
    cdef floating one = 1
    cdef floating y = t * <floating>L.smooth_scale + <floating>L.smooth_shift
    cdef floating e = f_exp(-f_abs(p))
    cdef floating sp = f_log1p(e)
    cdef floating lw = one + (column - one) * y
    cdef floating s_pos, s_neg
    l[0] = lw * sp + ((one - y) * p if p >= 0 else -column * y * p)
    s_pos = one / (one + e)      # sigmoid(|z|)
    s_neg = e * s_pos            # sigmoid(-|z|) = 1 - sigmoid(|z|), without cancellation
    if p >= 0:
        g[0] = (one - y) * s_pos - column * y * s_neg
    else:
        g[0] = (one - y) * s_neg - column * y * s_pos
    h[0] = lw * s_pos * s_neg


# @elementwise_loss(cost="transcendental", column=True, math="libm")
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
    # column * y feeds the loss and the gradient: every x * y + z written as f_fma, so that
    # each loop rounds alike whichever outputs it keeps (gcc contracted them differently).
    cdef floating cy = column * y
    cdef floating one = 1
    l[0] = -f_fma(cy, lp, (one - y) * l1p)
    lw = f_fma(column - one, y, one)
    den = p * (one - p)
    g[0] = f_fma(lw, p, -cy) / (eps if den < eps else den)
    q = one - p
    den = p * p
    h[0] = column * y / (eps if den < eps else den)
    den = q * q
    h[0] = h[0] + (one - y) / (eps if den < eps else den)


# @elementwise_loss(cost="transcendental", math="inline")
cdef struct LogCosh:
    char unused

cdef inline void LogCosh_math(LogCosh L, floating t, floating p, floating column,
                              floating* l, floating* g, floating* h) noexcept nogil:
    # With a = |d|, e = exp(-a) and w = expm1(-a) = e - 1 (both accurate to their last bits):
    #   log cosh(a) = log1p(w**2 / (2 e))          no cancellation at tiny a (a < 2)
    #               = a - log 2 + log1p(e**2)      no overflow at any a (a >= 2)
    #   tanh(a) = -w (2 + w) / (1 + e**2),   sech(a)**2 = 4 e**2 / (1 + e**2)**2
    cdef floating one = 1, two = 2, four = 4
    cdef floating d = p - t
    cdef floating a = f_abs(d)
    cdef floating w
    cdef floating e = f_exp_expm1_inline(-a, &w)
    cdef floating e2 = e * e
    # 1 + e**2 rounded once whichever outputs the loop keeps (the method called): see f_fma.
    cdef floating den = f_fma(e, e, one)
    cdef bint small = a < 2
    # One log1p for both forms, so that the vector loop calls it once per element.
    l[0] = (<floating>0 if small else a - <floating>0.6931471805599453) + f_log1p_inline(
        w * w / (two * e) if small else e2)
    g[0] = sign(d) * (-w * (two + w) / den)
    h[0] = four * e2 / (den * den)


cdef inline floating poisson_stirling(floating t) noexcept nogil:
    # full=True adds Stirling's y log y - y + log(2 pi y) / 2 where y > 1 (torch's convention).
    cdef floating ly = f_log(t)
    return (f_fma(t, ly, -t) + <floating>0.5 * (ly + <floating>1.8378770664093453)) if t > 1 else 0

cdef inline int poisson_invalid(floating t) noexcept nogil:
    return BAD_Y_TRUE if t < 0 else 0

cdef inline void poisson_log_math(floating t, floating p, bint full, floating* l, floating* g,
                                  floating* h) noexcept nogil:
    # l = exp(z) - y z. Where exp(z) overflows (z > 709.78 in float64, 88.72 in float32) the
    # loss is +inf as the math says, also where y z overflows too (no inf - inf), unless y is
    # itself infinite. `full` is a constant of each kernel, so each loop has only its own work.
    cdef floating e = f_exp_inline(p)
    cdef floating yz = t * p
    l[0] = e - yz
    if (e == INFINITY) & (yz == INFINITY) & (t < INFINITY):
        l[0] = e
    if full:
        l[0] = l[0] + poisson_stirling(t)
    g[0] = e - t
    h[0] = e

cdef inline void poisson_rate_math(floating t, floating p, floating eps, bint full, floating* l,
                                   floating* g, floating* h) noexcept nogil:
    # torch.nn.functional.poisson_nll_loss(log_input=False): l = mu - y log(mu + eps).
    cdef floating m = p + eps
    cdef floating r = t / m
    l[0] = f_fma(-t, f_log(m), p)
    if full:
        l[0] = l[0] + poisson_stirling(t)
    g[0] = 1 - r
    h[0] = r / m


# @elementwise_loss(cost="transcendental", math="inline")
cdef struct PoissonLog:
    char unused

cdef inline int PoissonLog_invalid(PoissonLog L, floating t, floating p) noexcept nogil:
    return poisson_invalid(t)

cdef inline void PoissonLog_math(PoissonLog L, floating t, floating p, floating column,
                                 floating* l, floating* g, floating* h) noexcept nogil:
    poisson_log_math(t, p, False, l, g, h)


# @elementwise_loss(cost="transcendental", math="libm")
cdef struct PoissonLogFull:
    char unused

cdef inline int PoissonLogFull_invalid(PoissonLogFull L, floating t, floating p) noexcept nogil:
    return poisson_invalid(t)

cdef inline void PoissonLogFull_math(PoissonLogFull L, floating t, floating p, floating column,
                                     floating* l, floating* g, floating* h) noexcept nogil:
    poisson_log_math(t, p, True, l, g, h)


# @elementwise_loss(cost="transcendental", math="libm")
cdef struct PoissonRate:
    double eps

cdef inline int PoissonRate_invalid(PoissonRate L, floating t, floating p) noexcept nogil:
    return poisson_invalid(t) or (BAD_Y_PRED if p < 0 else 0)

cdef inline void PoissonRate_math(PoissonRate L, floating t, floating p, floating column,
                                  floating* l, floating* g, floating* h) noexcept nogil:
    poisson_rate_math(t, p, <floating>L.eps, False, l, g, h)


# @elementwise_loss(cost="transcendental", math="libm")
cdef struct PoissonRateFull:
    double eps

cdef inline int PoissonRateFull_invalid(PoissonRateFull L, floating t, floating p) noexcept nogil:
    return poisson_invalid(t) or (BAD_Y_PRED if p < 0 else 0)

cdef inline void PoissonRateFull_math(PoissonRateFull L, floating t, floating p, floating column,
                                      floating* l, floating* g, floating* h) noexcept nogil:
    poisson_rate_math(t, p, <floating>L.eps, True, l, g, h)


# @elementwise_loss(cost="transcendental", math="inline")
cdef struct Gamma:
    char unused

cdef inline int Gamma_invalid(Gamma L, floating t, floating p) noexcept nogil:
    return BAD_Y_TRUE if not (t > 0) and t == t else 0

cdef inline void Gamma_math(Gamma L, floating t, floating p, floating column,
                            floating* l, floating* g, floating* h) noexcept nogil:
    # l = z + y exp(-z): +inf at z = -inf (not -inf + inf).
    # Each y*exp(-z) + c rounded alike in every loop, whichever outputs it keeps: see f_fma.
    cdef floating e = f_exp_inline(-p)
    cdef floating ye = t * e
    l[0] = f_fma(t, e, p) if p > -INFINITY else ye
    g[0] = f_fma(-t, e, 1)
    h[0] = ye


# @elementwise_loss(cost="transcendental", math="inline")
cdef struct Tweedie:
    double a               # 2 - power
    double b               # 1 - power
    double inv_a           # 1 / (2 - power)
    double inv_b           # 1 / (1 - power)
    double check           # 0: no domain check (power <= 0); 1: y >= 0; 2: y > 0

cdef inline int Tweedie_invalid(Tweedie L, floating t, floating p) noexcept nogil:
    if L.check == 0:
        return 0
    if L.check == 1:
        return BAD_Y_TRUE if t < 0 else 0
    return BAD_Y_TRUE if not (t > 0) and t == t else 0

cdef inline void Tweedie_math(Tweedie L, floating t, floating p, floating column,
                              floating* l, floating* g, floating* h) noexcept nogil:
    # sklearn's HalfTweedieLoss: l = exp(a z)/a - y exp(b z)/b, a = 2 - power, b = 1 - power;
    # gradient exp(a z) - y exp(b z), hessian a exp(a z) - b y exp(b z). For 1 < power < 2
    # both terms of l are >= 0 (no cancellation). Where both terms overflow (only for power < 0
    # or > 3 at |z| <= 709), the larger one -- the first where exp(z) > y, judged as z > 0 --
    # gives the signed infinity, not inf - inf.
    cdef floating ea = f_exp_inline(<floating>L.a * p)
    cdef floating eb = f_exp_inline(<floating>L.b * p)
    cdef floating yb = t * eb
    cdef floating la = ea * <floating>L.inv_a
    cdef floating lb = yb * <floating>L.inv_b
    cdef bint both = (f_abs(ea) == INFINITY) & (f_abs(yb) == INFINITY)
    cdef bint first = p > 0
    l[0] = la - lb
    g[0] = ea - yb
    h[0] = f_fma(<floating>L.a, ea, -(<floating>L.b * yb))
    if both:
        l[0] = la if first else -lb
        g[0] = ea if first else -yb
        h[0] = <floating>L.a * ea if first else -(<floating>L.b * yb)


# @elementwise_loss(cost="transcendental", math="inline")
cdef struct TweedieNormal:
    char unused

cdef inline void TweedieNormal_math(TweedieNormal L, floating t, floating p, floating column,
                                    floating* l, floating* g, floating* h) noexcept nogil:
    # Tweedie power 0, log link: l = (exp(z) - y)**2 / 2, gradient exp(z) (exp(z) - y),
    # hessian exp(z) (2 exp(z) - y).
    cdef floating e = f_exp_inline(p)
    cdef floating r = e - t
    l[0] = <floating>0.5 * r * r
    g[0] = e * r
    h[0] = e * (e + r)


# @elementwise_loss(cost="cheap")
cdef struct Quantile:
    double quantile

cdef inline void Quantile_math(Quantile L, floating t, floating p, floating column,
                               floating* l, floating* g, floating* h) noexcept nogil:
    # Pinball loss: q (t - p) where t >= p, (1 - q) (p - t) below; the gradient is 1 - q at the
    # kink (t == p), as scikit-learn's PinballLoss. NaN propagates through g and h.
    cdef floating d = p - t
    cdef floating q = <floating>L.quantile
    cdef floating r = <floating>(1 - L.quantile)
    cdef floating z = nan_or_zero(d)
    l[0] = -q * d if d < 0 else r * d           # +0 at d == 0
    g[0] = (-q if d < 0 else r) + z
    h[0] = z


# @elementwise_loss(cost="cheap")
cdef struct SmoothL1:
    double beta
    double inv_beta        # 1 / beta, 0 when beta = 0 (then the quadratic branch never runs)

cdef inline void SmoothL1_math(SmoothL1 L, floating t, floating p, floating column,
                               floating* l, floating* g, floating* h) noexcept nogil:
    cdef floating d = p - t
    cdef floating ad = f_abs(d)
    cdef floating ib = <floating>L.inv_beta
    if ad < <floating>L.beta:
        l[0] = <floating>0.5 * d * d * ib
        g[0] = d * ib
        h[0] = ib
    else:
        l[0] = ad - <floating>(0.5 * L.beta)
        g[0] = sign(d)
        h[0] = nan_or_zero(d)


# @elementwise_loss(cost="cheap")
cdef struct PseudoHuber:
    double delta
    double inv_delta

cdef inline void PseudoHuber_math(PseudoHuber L, floating t, floating p, floating column,
                                  floating* l, floating* g, floating* h) noexcept nogil:
    # With a = |d|, r = a / delta and s = sqrt(1 + r**2):
    #   l = delta**2 (s - 1) = delta * a * (r / (s + 1))   no cancellation at tiny d, no
    #                                                       overflow of d**2 at huge d
    #   g = d / s,   h = (1 / s)**3
    # Beyond r = 2**27 (2**13 in float32) 1 + r**2 rounds to r**2, so s = r (and g = +-delta
    # to the last bit), and r**2 is never formed (it would overflow at |d| = 1e155).
    cdef floating one = 1, zero = 0
    cdef floating big = <floating>(8192.0 if floating is float else 134217728.0)
    cdef floating d = p - t
    cdef floating a = f_abs(d)
    cdef floating r = a * <floating>L.inv_delta
    cdef bint huge = r >= big
    cdef floating rc = zero if huge else r            # NaN stays NaN
    cdef floating s = f_sqrt(f_fma(rc, rc, one))
    # One division per element (division and sqrt bound this loop): v = 1 / (s (s + 1)), so
    # 1/s = (s + 1) v and 1/(s + 1) = s v; where s = r (huge), v = 1/r instead.
    cdef floating v = one / (r if huge else s * (s + one))
    cdef floating u = v if huge else (s + one) * v
    # r / (s + 1) = 1 - 1/r + O(r**-2) where s = r: finite at d = +-inf (no inf / inf)
    l[0] = a * ((one - v) if huge else r * (s * v)) * <floating>L.delta
    g[0] = sign(d) * <floating>L.delta if huge else d * u
    h[0] = u * u * u


# @elementwise_loss(cost="transcendental", math="inline")
cdef struct MeanSquaredLogError:
    char unused

cdef inline int MeanSquaredLogError_invalid(MeanSquaredLogError L, floating t,
                                            floating p) noexcept nogil:
    # y_true first where both are out of the domain; NaN is not checked (it propagates).
    return BAD_Y_TRUE if t <= -1 else (BAD_Y_PRED if p <= -1 else 0)

cdef inline void MeanSquaredLogError_math(MeanSquaredLogError L, floating t, floating p,
                                          floating column, floating* l, floating* g,
                                          floating* h) noexcept nogil:
    # e = log1p(p) - log1p(t) = +-log1p(|p - t| / (1 + min(p, t))): one log1p, of an argument
    # >= 0 carrying the difference itself, so e keeps its relative precision where p ~ t (the
    # difference of two log1p's cancels there) and never subtracts. The quotient overflows
    # only where |p - t| is near the dtype's limit and 1 + min(p, t) < 1: there the true
    # argument exceeds 2**800 (float32: 2**60), log1p(x) is log(x), and x is formed scaled.
    cdef floating d = p - t
    cdef floating ad = f_abs(d)
    cdef floating big_d = <floating>(1.2676506002282294e30 if floating is float
                                     else 8.452712498170644e270)     # 2**100, 2**900
    cdef floating down = <floating>(9.094947017729282e-13 if floating is float
                                    else 7.888609052210118e-31)      # 2**-40, 2**-100
    cdef floating up = <floating>(27.725887222397812 if floating is float
                                  else 69.31471805599453)            # 40 ln 2, 100 ln 2
    cdef floating one = 1, two = 2, zero = 0
    cdef bint big = (ad > big_d) & ((p if p < t else t) < 0)
    cdef floating x = (ad * down if big else ad) / (one + (p if p < t else t))
    cdef floating lx = f_log1p_inline(x) + (up if big else zero)
    cdef floating e = lx if d >= 0 else -lx      # NaN stays NaN
    cdef floating u = one / (one + p)
    l[0] = e * e
    g[0] = two * e * u
    h[0] = two * (one - e) * u * u


# The binary focal loss l = a_t (1 - p_t)**gamma bce(y, p) (torchvision's sigmoid_focal_loss),
# with u = 1 - p_t = (1-y) p + y (1-p): a sum of terms >= 0 for y in [0, 1], so u keeps full
# relative precision where it is tiny (a confident, correct prediction). Its derivatives are
# written with r = u'/u (logits) or r*bce (probabilities), which stay bounded where u -> 0, so
# no 0 * inf arises there. gamma = 0 without alpha runs BinaryCrossEntropy's kernel itself.

cdef inline void binary_focal_logits(floating t, floating p, double smooth_scale,
                                     double smooth_shift, double gamma, double p0, double p1,
        double p2, double p3, double p4,
                                     double has_alpha, double alpha, double one_minus_alpha,
                                     bint general, floating* l, floating* g,
                                     floating* h) noexcept nogil:
    # With e = exp(-|z|), s = sigmoid(z), sn = sigmoid(-z) = 1 - s, B = bce (BCE's stable form):
    #   u = (1-y) s + y sn = a s_pos,  a = (1-y) + y e (z >= 0) or (1-y) e + y (z < 0)
    #   u' = (1-2y) s sn,  r = u'/u = (1-2y) sigmoid(-|z|) / a,  u''/u = r (sn - s)
    #   B' = s - y,  B'' = s sn
    #   l = a_t u^gamma B
    #   g = a_t u^gamma (gamma r B + B')
    #   h = a_t u^gamma (gamma (gamma-1) r^2 B + 2 gamma r B' + gamma r (sn - s) B + B'')
    # Where a = 0 (hard y, e underflowed) r takes its limit (1-2y) sigmoid(|z|); r B is 0
    # where r is (|z| -> inf), and so are the hard labels' (1-y) z, y z at infinite z.
    cdef floating one = 1, zero = 0, two = 2
    cdef floating y = t * <floating>smooth_scale + <floating>smooth_shift
    cdef floating gm = <floating>gamma
    cdef floating e = f_exp(-f_abs(p))
    cdef floating sp = f_log1p(e)
    cdef floating s_pos = one / (one + e)
    cdef floating s_neg = e * s_pos
    cdef bint pos = p >= 0
    cdef floating s = s_pos if pos else s_neg
    cdef floating sn = s_neg if pos else s_pos
    cdef floating B = sp + (((one - y) * p if y != 1 else zero) if pos else
                            (-y * p if y != 0 else zero))
    cdef floating Bp = (one - y) * s - y * sn
    cdef floating a = ((one - y) + y * e) if pos else ((one - y) * e + y)
    cdef floating c = one - two * y
    cdef floating r = c * (s_neg if a != 0 else s_pos) / (a if a != 0 else one)
    cdef floating at = f_fma(<floating>alpha, y, <floating>one_minus_alpha * (one - y)) \
        if has_alpha != 0 else one
    cdef floating wt = at * focal_power(a * s_pos, gamma, p0, p1, p2, p3, p4, general)
    # r B -> 0 where r underflows to 0 (|z| -> inf; B grows like |z| only)
    cdef floating rB = r * B if r != 0 else zero
    l[0] = wt * B
    g[0] = wt * (gm * rB + Bp)
    h[0] = wt * (gm * ((gm - one) * r * rB + two * r * Bp + (sn - s) * rB) + s_pos * s_neg)


# @elementwise_loss(cost="transcendental", math="libm")
cdef struct BinaryFocalLogits:
    double smooth_scale    # y <- y * smooth_scale + smooth_shift  (label smoothing)
    double smooth_shift
    double gamma
    double p0              # u**gamma = p0 + u (p1 + u (p2 + u (p3 + u p4))): the one p_i
    double p1              # of i = gamma is 1, the others 0 (gamma an integer 0..4), so
    double p2              # that the power is exact and the vector loop branch-free
    double p3
    double p4
    double has_alpha       # 1: a_t = alpha y + (1 - alpha)(1 - y); 0: a_t = 1
    double alpha
    double one_minus_alpha

cdef inline void BinaryFocalLogits_math(BinaryFocalLogits L, floating t, floating p,
                                        floating column, floating* l, floating* g,
                                        floating* h) noexcept nogil:
    binary_focal_logits(t, p, L.smooth_scale, L.smooth_shift, L.gamma, L.p0, L.p1, L.p2, L.p3, L.p4,
                        L.has_alpha, L.alpha, L.one_minus_alpha, False, l, g, h)


# @elementwise_loss(cost="transcendental", math="libm")
cdef struct BinaryFocalLogitsPow:
    double smooth_scale    # as BinaryFocalLogits, for a gamma that is not an integer 0..4
    double smooth_shift
    double gamma
    double p0              # (unused: the power is exp(gamma log u))
    double p1
    double p2
    double p3
    double p4
    double has_alpha
    double alpha
    double one_minus_alpha

cdef inline void BinaryFocalLogitsPow_math(BinaryFocalLogitsPow L, floating t, floating p,
                                           floating column, floating* l, floating* g,
                                           floating* h) noexcept nogil:
    binary_focal_logits(t, p, L.smooth_scale, L.smooth_shift, L.gamma, L.p0, L.p1, L.p2, L.p3, L.p4,
                        L.has_alpha, L.alpha, L.one_minus_alpha, True, l, g, h)


cdef inline void binary_focal_probabilities(floating t, floating p, double smooth_scale,
                                            double smooth_shift, double gamma, double p0,
                                            double p1, double p2, double p3, double p4,
                                            double has_alpha, double alpha,
                                            double one_minus_alpha, bint general,
                                            floating* l, floating* g,
                                            floating* h) noexcept nogil:
    # B = BCE on probabilities (torch's clamps: logs at -100, denominators at float32 1e-12),
    # u = (1-y) p + y (1-p), u' = 1 - 2y = c, u'' = 0, and rB = c B / u (its limit c where
    # u = 0, i.e. y hard and p at the same end, where B = 0 too):
    #   l = a_t u^gamma B
    #   g = a_t u^gamma (gamma rB + B')
    #   h = a_t (gamma c u^(gamma-1) ((gamma-1) rB + 2 B') + u^gamma B'')
    cdef floating eps = <floating>(<float>1e-12)
    cdef floating y = t * <floating>smooth_scale + <floating>smooth_shift
    cdef floating gm = <floating>gamma
    cdef floating one = 1, two = 2
    cdef floating q = one - p
    # Each x * y + z rounded alike in every loop, whichever outputs it keeps: see f_fma.
    cdef floating B = -f_fma(y, clamp_log(f_log(p)), (one - y) * clamp_log(f_log1p(-p)))
    cdef floating den = p * q
    cdef floating Bp = (p - y) / (eps if den < eps else den)
    cdef floating d1 = p * p
    cdef floating d2 = q * q
    cdef floating Bpp = y / (eps if d1 < eps else d1) + (one - y) / (eps if d2 < eps else d2)
    cdef floating u = f_fma(y, q, (one - y) * p)
    cdef floating c = one - two * y
    cdef floating rB = c * (B if u != 0 else one) / (u if u != 0 else one)
    cdef floating at = f_fma(<floating>alpha, y, <floating>one_minus_alpha * (one - y)) \
        if has_alpha != 0 else one
    cdef floating pw = focal_power(u, gamma, p0, p1, p2, p3, p4, general)
    # u^(gamma-1) only ever multiplies gamma: 0 for gamma = 0 (no 0 * inf at u = 0)
    cdef floating pw1 = focal_power_1(u, gamma, p1, p2, p3, p4, general)
    l[0] = at * pw * B
    g[0] = at * pw * (gm * rB + Bp)
    h[0] = at * (gm * c * pw1 * ((gm - one) * rB + two * Bp) + pw * Bpp)


# @elementwise_loss(cost="transcendental", math="libm")
cdef struct BinaryFocalProbabilities:
    double smooth_scale
    double smooth_shift
    double gamma
    double p0              # u**gamma = p0 + u (p1 + u (p2 + u (p3 + u p4))): the one p_i
    double p1              # of i = gamma is 1, the others 0 (gamma an integer 0..4), so
    double p2              # that the power is exact and the vector loop branch-free
    double p3
    double p4
    double has_alpha
    double alpha
    double one_minus_alpha

cdef inline int BinaryFocalProbabilities_invalid(BinaryFocalProbabilities L, floating t,
                                                 floating p) noexcept nogil:
    return BAD_Y_PRED if (p < 0) | (p > 1) else 0

cdef inline void BinaryFocalProbabilities_math(BinaryFocalProbabilities L, floating t,
                                               floating p, floating column, floating* l,
                                               floating* g, floating* h) noexcept nogil:
    binary_focal_probabilities(t, p, L.smooth_scale, L.smooth_shift, L.gamma, L.p0, L.p1, L.p2, L.p3, L.p4,
                               L.has_alpha, L.alpha, L.one_minus_alpha, False, l, g, h)


# @elementwise_loss(cost="transcendental", math="libm")
cdef struct BinaryFocalProbabilitiesPow:
    double smooth_scale    # as BinaryFocalProbabilities, for a gamma not an integer 0..4
    double smooth_shift
    double gamma
    double p0              # (unused: the power is exp(gamma log u))
    double p1
    double p2
    double p3
    double p4
    double has_alpha
    double alpha
    double one_minus_alpha

cdef inline int BinaryFocalProbabilitiesPow_invalid(BinaryFocalProbabilitiesPow L, floating t,
                                                    floating p) noexcept nogil:
    return BAD_Y_PRED if (p < 0) | (p > 1) else 0

cdef inline void BinaryFocalProbabilitiesPow_math(BinaryFocalProbabilitiesPow L, floating t,
                                                  floating p, floating column, floating* l,
                                                  floating* g, floating* h) noexcept nogil:
    binary_focal_probabilities(t, p, L.smooth_scale, L.smooth_shift, L.gamma, L.p0, L.p1, L.p2, L.p3, L.p4,
                               L.has_alpha, L.alpha, L.one_minus_alpha, True, l, g, h)


# @elementwise_loss(cost="cheap")
cdef struct Hinge:
    double margin
    double squared         # 1: the squared hinge

cdef inline int Hinge_invalid(Hinge L, floating t, floating p) noexcept nogil:
    # y_true in {-1, 0, 1}; NaN is not checked (it propagates).
    return BAD_Y_TRUE if (t != 1) & (t != 0) & (t != -1) & (t == t) else 0

cdef inline void Hinge_math(Hinge L, floating t, floating p, floating column,
                            floating* l, floating* g, floating* h) noexcept nogil:
    # m = margin - s y_pred, s = 1 where y_true == 1, else -1 (0 and -1 both the negative
    # class). l = max(0, m) (squared: its square); at the kink m = 0 the gradient is 0. NaN in
    # either argument propagates (max(0, NaN) is NaN, as numpy.maximum).
    cdef floating two = 2
    cdef floating s = 1 if t == 1 else -1
    cdef floating m = (<floating>L.margin - s * p) + nan_or_zero(t)
    cdef floating z = nan_or_zero(m)
    cdef bint act = m > 0
    if L.squared != 0:
        l[0] = m * m if act else z
        g[0] = -two * s * m if act else z
        h[0] = 2 if act else z
    else:
        l[0] = m if act else z
        g[0] = -s if act else z
        h[0] = z
