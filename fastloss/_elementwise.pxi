# Elementwise losses: the math of each loss, written once, and one driver for all of them.
#
# A loss is a struct type (its parameters) plus a branch in `ew_math`. The driver is
# specialized at compile time for every (loss, dtype) pair through fused types, so the inner
# loops are branch-free and vectorize; exp/log1p go to libmvec where available.

cdef struct MSE:
    char unused
cdef struct MAE:
    char unused
cdef struct Huber:
    double delta
cdef struct BCELogits:
    double smooth_a    # y <- y * smooth_a + smooth_b  (label smoothing)
    double smooth_b
cdef struct BCEProbs:
    double smooth_a
    double smooth_b

ctypedef fused ew_loss:
    MSE
    MAE
    Huber
    BCELogits
    BCEProbs

cdef enum:
    WANT_LOSS = 1
    WANT_GRAD = 2
    WANT_HESS = 4


cdef inline bint ew_invalid(ew_loss L, floating p) noexcept nogil:
    """Whether a prediction is outside the loss's domain (NaN is not: it propagates)."""
    if ew_loss is BCEProbs:
        return (p < 0) | (p > 1)
    return False


cdef inline void ew_math(ew_loss L, floating t, floating p, floating c,
                         floating* l, floating* g, floating* h) noexcept nogil:
    """Loss, d loss / d p and d2 loss / d p2 of one element.

    `c` is the element's column parameter (BCE's pos_weight). Unused outputs are dead code
    after inlining, so the loss-only loop never computes a gradient.
    """
    cdef floating d, ad, y, e, sp, lw, s_pos, s_neg, lp, l1p, den, q
    # PyTorch keeps this epsilon as a float32 constant, even in float64 computations.
    cdef floating eps = <floating>(<float>1e-12)
    if ew_loss is MSE:
        d = p - t
        l[0] = d * d
        g[0] = 2 * d
        h[0] = 2 + nan_or_zero(d)
    elif ew_loss is MAE:
        d = p - t
        l[0] = fabs(d)
        g[0] = sign(d)
        h[0] = nan_or_zero(d)
    elif ew_loss is Huber:
        d = p - t
        ad = fabs(d)
        if ad < <floating>L.delta:
            l[0] = <floating>0.5 * d * d
            g[0] = d
            h[0] = 1
        else:
            l[0] = <floating>L.delta * (ad - <floating>(0.5 * L.delta))
            g[0] = <floating>L.delta * sign(d)
            h[0] = nan_or_zero(d)
    elif ew_loss is BCELogits:
        # l = (1 + (c-1) y) softplus(-z) + (1-y) z, rewritten so that no large terms cancel:
        # softplus(-z) = log1p(exp(-|z|)) + max(-z, 0).
        y = t * <floating>L.smooth_a + <floating>L.smooth_b
        e = f_exp(-fabs(p))
        sp = f_log1p(e)
        lw = 1 + (c - 1) * y
        l[0] = lw * sp + ((1 - y) * p if p >= 0 else -c * y * p)
        s_pos = 1 / (1 + e)          # sigmoid(|z|)
        s_neg = e * s_pos            # sigmoid(-|z|) = 1 - sigmoid(|z|), without cancellation
        if p >= 0:
            g[0] = (1 - y) * s_pos - c * y * s_neg
        else:
            g[0] = (1 - y) * s_neg - c * y * s_pos
        h[0] = lw * s_pos * s_neg
    elif ew_loss is BCEProbs:
        # PyTorch: each log clamped at -100; gradient (and hessian) denominators at 1e-12.
        y = t * <floating>L.smooth_a + <floating>L.smooth_b
        lp = clamp_log(f_log(p))
        l1p = clamp_log(f_log1p(-p))
        l[0] = -(c * y * lp + (1 - y) * l1p)
        lw = 1 + (c - 1) * y
        den = p * (1 - p)
        g[0] = (lw * p - c * y) / (eps if den < eps else den)
        q = 1 - p
        den = p * p
        h[0] = c * y / (eps if den < eps else den)
        den = q * q
        h[0] = h[0] + (1 - y) / (eps if den < eps else den)


cdef inline bint has_domain_check(ew_loss L) noexcept nogil:
    if ew_loss is BCEProbs:
        return True
    return False


cdef inline bint has_column_param(ew_loss L) noexcept nogil:
    if ew_loss is BCELogits or ew_loss is BCEProbs:
        return True
    return False


cdef void ew_loop(ew_loss L, const floating* t, const floating* p, const floating* c,
                 floating* lo, floating* go, floating* ho, Py_ssize_t n, floating gs,
                 int what) noexcept nogil:
    """One contiguous run of elements; `c` has one column parameter per element."""
    cdef Py_ssize_t i
    cdef floating l, g, h
    if what == WANT_LOSS:
        for i in range(n):
            ew_math(L, t[i], p[i], c[i], &l, &g, &h)
            lo[i] = l
    elif what == WANT_GRAD:
        for i in range(n):
            ew_math(L, t[i], p[i], c[i], &l, &g, &h)
            go[i] = g * gs
    elif what == WANT_LOSS | WANT_GRAD:
        for i in range(n):
            ew_math(L, t[i], p[i], c[i], &l, &g, &h)
            lo[i] = l
            go[i] = g * gs
    else:
        for i in range(n):
            ew_math(L, t[i], p[i], c[i], &l, &g, &h)
            go[i] = g * gs
            ho[i] = h


cdef struct EwJob:
    # Dtype-free description of one call; pointers are cast back in the typed block worker.
    const void* t
    const void* p
    const void* w          # sample weights or NULL
    const void* col        # per-column parameter (length ncol) or NULL
    void* lo               # per-element loss out (reduction "none") or NULL
    void* go
    void* ho
    Py_ssize_t n
    Py_ssize_t row_len     # elements per first-axis row: per-row weights cover one row each
    Py_ssize_t ncol        # length of the last axis
    bint w_per_row
    int what
    double gscale
    double col_scalar      # the column parameter when `col` is NULL


cdef void ew_weigh(const floating* w, bint per_row, Py_ssize_t row_len, Py_ssize_t start,
                   Py_ssize_t n, floating* lo, floating* go, floating* ho,
                   double gs) noexcept nogil:
    """Multiply a block's outputs by its sample weights (in cache: no extra memory pass)."""
    cdef Py_ssize_t i, j, seg, r
    cdef floating wi
    if not per_row:
        w = w + start
        for i in range(n):
            if lo != NULL:
                lo[i] = lo[i] * w[i]
            if go != NULL:
                go[i] = go[i] * <floating>(w[i] * gs)  # in float64: 1/sum(w) may overflow float32
            if ho != NULL:
                ho[i] = ho[i] * w[i]
        return
    i = 0
    while i < n:
        r = (start + i) // row_len
        seg = min(n - i, (r + 1) * row_len - (start + i))
        wi = w[r]
        for j in range(i, i + seg):
            if lo != NULL:
                lo[j] = lo[j] * wi
            if go != NULL:
                go[j] = go[j] * <floating>(wi * gs)
            if ho != NULL:
                ho[j] = ho[j] * wi
        i += seg


cdef Py_ssize_t ew_block(ew_loss L, floating dtype_tag, const EwJob* J, Py_ssize_t start,
                         Py_ssize_t stop, double* out) noexcept nogil:
    """Process elements [start, stop): outputs, weights, the block's loss sum, first bad index."""
    cdef const floating* t = <const floating*>J.t
    cdef const floating* p = <const floating*>J.p
    cdef const floating* col = <const floating*>J.col
    cdef floating* go = NULL
    cdef floating* ho = NULL
    cdef floating* lo
    cdef floating lbuf[EW_SUB]
    cdef floating cbuf[EW_SUB]
    cdef double acc[SUM_LANES]
    cdef Py_ssize_t s0 = start, n, i, j, k0, seg
    cdef int bad
    cdef floating gs = <floating>J.gscale
    cdef bint want_loss = (J.what & WANT_LOSS) != 0
    cdef bint reduce = J.lo == NULL and want_loss
    for j in range(SUM_LANES):
        acc[j] = 0
    while s0 < stop:
        n = min(EW_SUB, stop - s0)
        lo = <floating*>J.lo + s0 if J.lo != NULL else lbuf
        go = <floating*>J.go + s0 if J.go != NULL else NULL
        ho = <floating*>J.ho + s0 if J.ho != NULL else NULL
        if has_column_param(L):
            if col == NULL:
                for i in range(n):
                    cbuf[i] = <floating>J.col_scalar
            else:
                # The column parameter cycles with the last axis: copy it in by runs.
                i = 0
                k0 = s0 % J.ncol
                while i < n:
                    seg = min(n - i, J.ncol - k0)
                    for j in range(seg):
                        cbuf[i + j] = col[k0 + j]
                    i += seg
                    k0 = 0
        if has_domain_check(L):
            # Checked before anything is written, so the reported element is the caller's
            # even when gradient_out is y_pred; the sub-chunk stays in L1 for the pass below.
            bad = 0
            for i in range(n):
                bad |= ew_invalid(L, p[s0 + i])
            if bad:
                for i in range(n):
                    if ew_invalid(L, p[s0 + i]):
                        out[0] = 0
                        return s0 + i
        # With weights, 1/sum(w) is applied as w_i * (1/sum(w)) in ew_weigh: that product is
        # at most 1, so a finite weighted-mean gradient never overflows on the way.
        ew_loop(L, t + s0, p + s0, cbuf, lo if want_loss else NULL, go, ho, n,
                1 if J.w != NULL else gs, J.what)
        if J.w != NULL:
            ew_weigh(<const floating*>J.w, J.w_per_row, J.row_len, s0, n,
                     lo if want_loss else NULL, go, ho, J.gscale)
        if reduce:
            lanes_add(acc, lo, n)
        s0 += EW_SUB
    if reduce:
        out[0] = lanes_total(acc)
    return OK


cdef Py_ssize_t ew_run(ew_loss L, floating dtype_tag, const EwJob* J, int n_threads,
                       Py_ssize_t min_work, double* loss_sum) noexcept nogil:
    """Run the blocked pass; return the first invalid index, OK, or NOMEM."""
    cdef Partials P
    cdef Py_ssize_t b, n = J.n, nb = (J.n + EW_BLOCK - 1) // EW_BLOCK
    cdef double unused
    cdef int nt = n_threads_for(n_threads, n, min_work)
    if partials_init(&P, nb):
        return NOMEM
    if nt == 1:
        for b in range(nb):
            P.bad[b] = ew_block(L, dtype_tag, J, b * EW_BLOCK, min(n, (b + 1) * EW_BLOCK),
                                &P.num[b])
    else:
        for b in prange(nb, schedule='static', num_threads=nt):
            P.bad[b] = ew_block(L, dtype_tag, J, b * EW_BLOCK, min(n, (b + 1) * EW_BLOCK),
                                &P.num[b])
    return partials_finish(&P, loss_sum, &unused)
