# The row math of every row-wise loss, each written once; the generic driver (_rowwise.pxi)
# does everything else.
#
# A loss is a block headed by `# @rowwise_loss` and holding:
#   cdef struct Name:          its parameters (double fields, or one `char unused`)
#   Name_row(L, J, lq, q, lse, inv, rest, jmax, t, y, cwy, sc, hs, go, ho) -> double
#       the row's loss; writes the row's gradient (times sc) into go and hessian (times hs)
#       into ho where they are not NULL. With labels, t is NULL, y the row's (valid) label and
#       cwy its class weight; with dense targets, t is the row of y_true. The row's view of
#       q (lq, q, lse, inv, rest, jmax) is described in _rowwise.pxi. The job J carries the
#       shared parameters: class weights (J.cw, J.cw_sum), label smoothing (J.smooth), k.
# The build (setup.py) collects the blocks into the dispatch, so nothing else lists them.
#
# The cross-entropy family (categorical cross-entropy, KL divergence): every row's loss is
# -sum_j a_j log q_j (+ sum_j t_j log t_j for KL), with a_j the row's effective targets, and
#   d/dz_j = q_j A - a_j,  diag hessian A q_j (1 - q_j)   (logits; A = sum_j a_j)
#   d/dq_j = -a_j / q_j,   diag hessian a_j / q_j**2      (probabilities, 0 where log clamps)


cdef inline floating smoothed_target(const RwJob* J, const floating* t, const floating* cw,
                                     Py_ssize_t j) noexcept nogil:
    """a_j of a dense target row: label smoothing, then the class weight."""
    cdef floating a = t[j] * <floating>(1 - J.smooth) + <floating>(J.smooth / J.k)
    return a * cw[j] if cw != NULL else a


cdef inline floating smoothed_label_target(const RwJob* J, const floating* cw, long long y,
                                           floating cwy, Py_ssize_t j) noexcept nogil:
    """a_j of a row with label y: e/k w_j everywhere, plus (1 - e) w_y at the label."""
    cdef floating a = <floating>(J.smooth / J.k) * (cw[j] if cw != NULL else 1)
    if j == y:
        a = a + (1 - <floating>J.smooth) * cwy
    return a


cdef inline floating xlogx(floating t) noexcept nogil:
    # scipy.special.entr's sign convention reversed: 0 log 0 = 0, +inf for t < 0 (as rel_entr).
    if t > 0:
        return t * f_log(t)
    if t == 0:
        return 0
    return INFINITY if t < 0 else t


cdef void ce_grad_hess(const RwJob* J, const floating* q, floating inv,
                       const floating* t, bint plain_targets, long long y, floating cwy,
                       floating A, floating sc, floating hs, floating* go,
                       floating* ho) noexcept nogil:
    """A cross-entropy row's gradient and hessian from its effective targets a_j."""
    cdef const floating* cw = <const floating*>J.cw
    cdef Py_ssize_t j, k = J.k
    cdef floating a, qj
    for j in range(k):
        if t == NULL:
            a = smoothed_label_target(J, cw, y, cwy, j)
        elif plain_targets:
            a = t[j]
        else:
            a = smoothed_target(J, t, cw, j)
        qj = q[j] * inv
        if J.inputs == ROWS_SOFTMAX:
            if go != NULL:
                go[j] = (qj * A - a) * sc
            if ho != NULL:
                ho[j] = A * qj * (1 - qj) * hs
        else:
            if go != NULL:
                go[j] = 0 if qj <= QMIN else -a / qj * sc  # NaN propagates
            if ho != NULL:
                ho[j] = 0 if qj <= QMIN else a / (qj * qj) * hs


# @rowwise_loss
cdef struct CategoricalCrossEntropy:
    char unused

cdef inline double CategoricalCrossEntropy_row(
        CategoricalCrossEntropy L, const RwJob* J, const floating* lq, const floating* q,
        floating lse, floating inv, double rest, Py_ssize_t jmax, const floating* t,
        long long y, floating cwy, floating sc, floating hs, floating* go,
        floating* ho) noexcept nogil:
    cdef const floating* cw = <const floating*>J.cw
    cdef Py_ssize_t j, k = J.k
    cdef floating e = <floating>J.smooth, ek = <floating>(J.smooth / J.k)
    cdef floating A, lqy, c0, c1
    cdef double loss, S
    if t != NULL:
        loss = 0
        A = 0
        for j in range(k):
            c0 = smoothed_target(J, t, cw, j)
            A = A + c0
            loss -= c0 * (lq[j] - lse)
        if go != NULL or ho != NULL:
            ce_grad_hess(J, q, inv, t, False, -1, 0, A, sc, hs, go, ho)
        return loss
    lqy = lq[y] - lse if rw_all_logs(J) else clamp_log(f_log(q[y]))
    loss = -(1 - e) * cwy * lqy
    if e != 0:
        S = 0
        for j in range(k):
            S += (cw[j] if cw != NULL else 1) * lq[j]
        loss -= ek * (S - J.cw_sum * lse)
    A = (1 - e) * cwy + <floating>(ek * J.cw_sum)
    if J.inputs == ROWS_SOFTMAX and go != NULL:
        # The common case, kept branch-free: g_j = q_j A sc - e/k w_j sc, minus
        # (1 - e) w_y sc at the label.
        c1 = inv * A * sc
        c0 = ek * sc
        if cw == NULL:
            for j in range(k):
                go[j] = q[j] * c1 - c0
        else:
            for j in range(k):
                go[j] = q[j] * c1 - c0 * cw[j]
        go[y] = go[y] - (1 - e) * cwy * sc
        if ho != NULL:
            ce_grad_hess(J, q, inv, NULL, False, y, cwy, A, sc, hs, NULL, ho)
    elif go != NULL or ho != NULL:
        ce_grad_hess(J, q, inv, NULL, False, y, cwy, A, sc, hs, go, ho)
    return loss


# @rowwise_loss
cdef struct KLDivergence:
    char unused

cdef inline double KLDivergence_row(
        KLDivergence L, const RwJob* J, const floating* lq, const floating* q,
        floating lse, floating inv, double rest, Py_ssize_t jmax, const floating* t,
        long long y, floating cwy, floating sc, floating hs, floating* go,
        floating* ho) noexcept nogil:
    # KL(t || q) = sum_j t_j log t_j - t_j log q_j: cross-entropy on plain targets plus the
    # targets' negative entropy.
    cdef Py_ssize_t j, k = J.k
    cdef floating A = 0
    cdef double loss = 0
    for j in range(k):
        A = A + t[j]
        loss -= t[j] * (lq[j] - lse)
        loss += xlogx(t[j])
    if go != NULL or ho != NULL:
        ce_grad_hess(J, q, inv, t, True, -1, 0, A, sc, hs, go, ho)
    return loss
