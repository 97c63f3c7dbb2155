# Row-wise losses over the last axis (categorical cross-entropy, KL divergence).
#
# Every row's loss is -sum_j a_j log q_j (+ sum_j t_j log t_j for KL), where q is softmax(z)
# (from_logits) or the given probabilities, and a_j the row's effective targets: class
# weights times (label-smoothed) one-hot or soft targets. Then
#   d/dz_j = q_j A - a_j,  diag hessian A q_j (1 - q_j)   (logits; A = sum_j a_j)
#   d/dq_j = -a_j / q_j,   diag hessian a_j / q_j**2      (probabilities, 0 where log clamps)
# Rows are processed in blocks so that exp/log run as one flat vector loop over the block.

cdef enum:
    RW_ELEMS = 2048     # elements per row block: the block's scratch stays in L1/L2
    T_LABELS = 0
    T_SOFT = 1
    T_KL = 2

# exp(-100): below it, the clamped log is constant and its derivative 0.
cdef double QMIN = 3.720075976020836e-44


cdef struct RwJob:
    const void* z           # y_pred (n, k)
    const void* t           # float targets (n, k), or NULL for labels
    const long long* lab    # int64 labels (n,), or NULL
    const void* w           # per-row sample weights, or NULL
    const void* cw          # class weights (k,), or NULL
    void* lo                # per-row loss out (reduction "none"), or NULL
    void* go
    void* ho
    Py_ssize_t n
    Py_ssize_t k
    Py_ssize_t rows         # rows per block
    int target
    bint logits
    int what
    double gscale
    double smooth           # label smoothing e
    double cw_sum           # sum of class weights (k without them)
    long long ignore
    bint has_ignore


cdef inline floating xlogx(floating t) noexcept nogil:
    # scipy.special.entr's sign convention reversed: 0 log 0 = 0, +inf for t < 0 (as rel_entr).
    if t > 0:
        return t * f_log(t)
    if t == 0:
        return 0
    return INFINITY if t < 0 else t


cdef inline floating row_target(const RwJob* J, const floating* t, const floating* cw,
                                Py_ssize_t j) noexcept nogil:
    """a_j for float targets (CCE soft targets with smoothing and class weights, or KL)."""
    cdef floating a
    if J.target == T_KL:
        return t[j]
    a = t[j] * <floating>(1 - J.smooth) + <floating>(J.smooth / J.k)
    return a * cw[j] if cw != NULL else a


cdef inline Py_ssize_t row_argmax(const floating* x, Py_ssize_t k) noexcept nogil:
    cdef floating mx = x[0]
    cdef Py_ssize_t j, a = 0
    for j in range(1, k):
        if x[j] > mx:
            mx = x[j]
            a = j
    return a


cdef inline double row_sum(const floating* x, Py_ssize_t k) noexcept nogil:
    # Short rows: four chains are plenty, and cheaper to set up than the 32-lane block sum.
    cdef double s0 = 0, s1 = 0, s2 = 0, s3 = 0
    cdef Py_ssize_t j, m = k - k % 4
    for j in range(0, m, 4):
        s0 += x[j]
        s1 += x[j + 1]
        s2 += x[j + 2]
        s3 += x[j + 3]
    for j in range(m, k):
        s0 += x[j]
    return (s0 + s1) + (s2 + s3)


cdef void rw_grad_hess(const RwJob* J, const floating* q, floating inv, const floating* lq,
                       const floating* t, const floating* cw, long long y, floating cwy,
                       floating A, floating sc, floating hs, floating* go,
                       floating* ho) noexcept nogil:
    """A row's gradient and hessian for the general cases (probabilities, soft targets, KL)."""
    cdef Py_ssize_t j, k = J.k
    cdef floating a, qj, e = <floating>J.smooth, ek = <floating>(J.smooth / J.k)
    for j in range(k):
        if J.target == T_LABELS:
            a = ek * (cw[j] if cw != NULL else 1)
            if j == y:
                a = a + (1 - e) * cwy
        else:
            a = row_target(J, t, cw, j)
        qj = q[j] * inv
        if J.logits:
            if go != NULL:
                go[j] = (qj * A - a) * sc
            if ho != NULL:
                ho[j] = A * qj * (1 - qj) * hs
        else:
            if go != NULL:
                go[j] = 0 if qj <= QMIN else -a / qj * sc  # NaN propagates
            if ho != NULL:
                ho[j] = 0 if qj <= QMIN else a / (qj * qj) * hs


cdef Py_ssize_t rw_block(floating tag, const RwJob* J, Py_ssize_t r0, Py_ssize_t r1,
                         double* num, double* den) noexcept nogil:
    cdef Py_ssize_t k = J.k, m = r1 - r0, E = (r1 - r0) * J.k, i, j, r, R
    cdef const floating* z = <const floating*>J.z + r0 * k
    cdef const floating* cw = <const floating*>J.cw
    cdef const floating* t = NULL
    cdef floating* go = NULL
    cdef floating* ho = NULL
    cdef floating sa[RW_ELEMS]
    cdef floating sb[RW_ELEMS]
    cdef floating lse_buf[RW_ELEMS]
    cdef floating inv_buf[RW_ELEMS]
    cdef Py_ssize_t amax[RW_ELEMS]
    cdef double rest[RW_ELEMS]
    # Per row r: log q_j = lq[j] - lse[r] and q_j = q[j] * inv[r] (logits: lq = z - max,
    # q = exp(lq); probabilities: lq = clamped log p, q = p, lse = 0, inv = 1). q is a
    # private copy, so gradient_out may be y_pred itself.
    cdef floating* lq = sa
    cdef floating* q = sb
    cdef floating mx, A, lqy, e = <floating>J.smooth, ek = <floating>(J.smooth / J.k)
    cdef floating cwy, sc, hs, c0, c1, inv, lse
    cdef double S, loss, dn, wr, num_b = 0, den_b = 0
    cdef long long y
    cdef Py_ssize_t first_bad = OK
    cdef bint need_lq = J.logits or J.target != T_LABELS or J.smooth != 0
    cdef bint grad = (J.what & WANT_GRAD) != 0, hess = (J.what & WANT_HESS) != 0
    if E > RW_ELEMS:
        lq = <floating*>malloc(E * sizeof(floating))
        q = <floating*>malloc(E * sizeof(floating))
        if lq == NULL or q == NULL:
            free(lq)
            free(q)
            return NOMEM

    if J.logits:
        for r in range(m):
            amax[r] = row_argmax(z + r * k, k)
            mx = z[r * k + amax[r]]
            for j in range(k):
                lq[r * k + j] = z[r * k + j] - mx
        for i in range(E):
            q[i] = f_exp(lq[i])
        for r in range(m):
            # log-sum-exp as log1p of the sum without the max's own exp(0) = 1, so that a
            # tiny loss (label far ahead of the rest) is not rounded away.
            # (The max's own term is exp(0) = 1 exactly, unless z_max is inf: then it is NaN,
            # and adding its "- 1" makes the whole row NaN, as NumPy and PyTorch do.)
            c0 = q[r * k + amax[r]]
            q[r * k + amax[r]] = 0
            rest[r] = row_sum(q + r * k, k) + (c0 - 1)
            q[r * k + amax[r]] = c0
        for r in range(m):  # a vector loop: one log1p and one division per row
            lse_buf[r] = <floating>log1p(rest[r])
            inv_buf[r] = <floating>(1 / (1 + rest[r]))
    else:
        for i in range(E):
            q[i] = z[i]
        if need_lq:
            for i in range(E):
                lq[i] = clamp_log(f_log(q[i]))
        for r in range(m):
            lse_buf[r] = 0
            inv_buf[r] = 1

    for r in range(m):
        R = r0 + r
        wr = (<const floating*>J.w)[R] if J.w != NULL else 1
        go = <floating*>J.go + R * k if grad else NULL
        ho = <floating*>J.ho + R * k if hess else NULL
        sc = <floating>(wr * J.gscale)
        hs = <floating>wr
        lse = lse_buf[r]
        inv = inv_buf[r]
        if J.target == T_LABELS:
            y = J.lab[R]
            if (J.has_ignore and y == J.ignore) or y < 0 or y >= k:
                if not (J.has_ignore and y == J.ignore) and first_bad == OK:
                    first_bad = R
                for j in range(k):
                    if grad:
                        go[j] = 0
                    if hess:
                        ho[j] = 0
                if J.lo != NULL:
                    (<floating*>J.lo)[R] = 0
                continue
            cwy = cw[y] if cw != NULL else 1
            lqy = lq[r * k + y] - lse if need_lq else clamp_log(f_log(q[r * k + y]))
            loss = -(1 - e) * cwy * lqy
            if e != 0:
                S = 0
                for j in range(k):
                    S += (cw[j] if cw != NULL else 1) * lq[r * k + j]
                loss -= ek * (S - J.cw_sum * lse)
            A = (1 - e) * cwy + <floating>(ek * J.cw_sum)
            dn = cwy
            if J.logits and grad:
                # The common case, kept branch-free: g_j = q_j A sc - e/k w_j sc, minus
                # (1 - e) w_y sc at the label.
                c1 = inv * A * sc
                c0 = ek * sc
                if cw == NULL:
                    for j in range(k):
                        go[j] = q[r * k + j] * c1 - c0
                else:
                    for j in range(k):
                        go[j] = q[r * k + j] * c1 - c0 * cw[j]
                go[y] = go[y] - (1 - e) * cwy * sc
                if hess:
                    rw_grad_hess(J, q + r * k, inv, lq + r * k, NULL, cw, y, cwy, A, sc, hs,
                                 NULL, ho)
            elif grad or hess:
                rw_grad_hess(J, q + r * k, inv, lq + r * k, NULL, cw, y, cwy, A, sc, hs, go, ho)
        else:
            t = <const floating*>J.t + R * k
            loss = 0
            A = 0
            for j in range(k):
                c0 = row_target(J, t, cw, j)
                A = A + c0
                loss -= c0 * (lq[r * k + j] - lse)
                if J.target == T_KL:
                    loss += xlogx(t[j])
            dn = 1
            if grad or hess:
                rw_grad_hess(J, q + r * k, inv, lq + r * k, t, cw, -1, 0, A, sc, hs, go, ho)
        if J.lo != NULL:
            (<floating*>J.lo)[R] = <floating>(wr * loss)
        num_b += wr * loss
        den_b += wr * dn

    if E > RW_ELEMS:
        free(lq)
        free(q)
    num[0] = num_b
    den[0] = den_b
    return first_bad


cdef Py_ssize_t rw_run(floating tag, const RwJob* J, int n_threads, double* num,
                       double* den) noexcept nogil:
    cdef Partials P
    cdef Py_ssize_t b, rows = J.rows, nb = (J.n + J.rows - 1) // J.rows
    cdef int nt = n_threads_for(n_threads, J.n * J.k, MIN_WORK_TRANSCENDENTAL)
    if partials_init(&P, nb):
        return NOMEM
    if nt == 1:
        for b in range(nb):
            P.bad[b] = rw_block(tag, J, b * rows, min(J.n, (b + 1) * rows), &P.num[b], &P.den[b])
    else:
        for b in prange(nb, schedule='static', num_threads=nt):
            P.bad[b] = rw_block(tag, J, b * rows, min(J.n, (b + 1) * rows), &P.num[b], &P.den[b])
    for b in range(nb):
        if P.bad[b] == NOMEM:
            partials_free(&P)
            return NOMEM
    return partials_finish(&P, num, den)


cdef Py_ssize_t _label_den_block(floating tag, const RwJob* J, Py_ssize_t r0, Py_ssize_t r1,
                                 double* out) noexcept nogil:
    cdef Py_ssize_t r
    cdef long long y
    cdef double s = 0
    cdef const floating* w = <const floating*>J.w
    cdef const floating* cw = <const floating*>J.cw
    for r in range(r0, r1):
        y = J.lab[r]
        if J.has_ignore and y == J.ignore:
            continue
        if y < 0 or y >= J.k:
            return r
        s += (w[r] if w != NULL else 1) * (cw[y] if cw != NULL else 1)
    out[0] = s
    return OK


cdef Py_ssize_t label_den(floating tag, const RwJob* J, int n_threads, double* den) noexcept nogil:
    """The normalizer of a mean over integer labels (PyTorch's), before the main pass."""
    cdef Partials P
    cdef Py_ssize_t b, nb = (J.n + EW_BLOCK - 1) // EW_BLOCK
    cdef double unused
    cdef int nt = n_threads_for(n_threads, J.n, MIN_WORK_CHEAP)
    if partials_init(&P, nb):
        return NOMEM
    if nt == 1:
        for b in range(nb):
            P.bad[b] = _label_den_block(tag, J, b * EW_BLOCK, min(J.n, (b + 1) * EW_BLOCK), &P.num[b])
    else:
        for b in prange(nb, schedule='static', num_threads=nt):
            P.bad[b] = _label_den_block(tag, J, b * EW_BLOCK, min(J.n, (b + 1) * EW_BLOCK), &P.num[b])
    return partials_finish(&P, den, &unused)
