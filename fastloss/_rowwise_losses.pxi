# The row math of every row-wise loss, each written once; the generic driver (_rowwise.pxi)
# does everything else.
#
# A loss is a block headed by `# @rowwise_loss` and holding:
#   cdef struct Name:          its parameters (double fields, or one `char unused`)
#   Name_row(L, job, lq, q, lse, inv, rest, jmax, t, y, label_weight, grad_scale,
#            hess_scale, go, ho) -> double
#       the row's loss; writes the row's gradient (times grad_scale) into go and its hessian
#       (times hess_scale) into ho where they are not NULL. With labels, t is NULL, y the
#       row's (valid) label and label_weight its class weight; with dense targets, t is the
#       row of y_true. The row's view of q (lq, q, lse, inv, rest, jmax) is described in
#       _rowwise.pxi. The job carries the shared parameters: class weights (job.cw,
#       job.cw_sum), label smoothing (job.smooth), k.
# The build (setup.py) collects the blocks into the dispatch, so nothing else lists them.
#
# The cross-entropy family (categorical cross-entropy, KL divergence): every row's loss is
# -sum_j a_j log q_j (+ sum_j t_j log t_j for KL), with a_j the row's effective targets, and
#   d/dz_j = q_j A - a_j,  diag hessian A q_j (1 - q_j)   (logits; A = sum_j a_j, target_sum)
#   d/dq_j = -a_j / q_j,   diag hessian a_j / q_j**2      (probabilities, 0 where log clamps)


cdef inline floating smoothed_target(const RwJob* job, const floating* t, const floating* cw,
                                     Py_ssize_t j) noexcept nogil:
    """a_j of a dense target row: label smoothing, then the class weight."""
    cdef floating a = t[j] * <floating>(1 - job.smooth) + <floating>(job.smooth / job.k)
    return a * cw[j] if cw != NULL else a


cdef inline floating smoothed_label_target(const RwJob* job, const floating* cw, long long y,
                                           floating label_weight, Py_ssize_t j) noexcept nogil:
    """a_j of a row with label y: smooth/k w_j everywhere, plus (1 - smooth) w_y at the label."""
    cdef floating a = <floating>(job.smooth / job.k) * (cw[j] if cw != NULL else 1)
    if j == y:
        a = a + (1 - <floating>job.smooth) * label_weight
    return a


cdef inline floating xlogx(floating t) noexcept nogil:
    # scipy.special.entr's sign convention reversed: 0 log 0 = 0, +inf for t < 0 (as rel_entr).
    if t > 0:
        return t * f_log(t)
    if t == 0:
        return 0
    return INFINITY if t < 0 else t


cdef void ce_grad_hess(const RwJob* job, const floating* q, floating inv,
                       const floating* t, bint plain_targets, long long y, floating label_weight,
                       floating target_sum, floating grad_scale, floating hess_scale, floating* go,
                       floating* ho) noexcept nogil:
    """A cross-entropy row's gradient and hessian from its effective targets a_j."""
    cdef const floating* cw = <const floating*>job.cw
    cdef Py_ssize_t j, k = job.k
    cdef floating a, qj
    for j in range(k):
        if t == NULL:
            a = smoothed_label_target(job, cw, y, label_weight, j)
        elif plain_targets:
            a = t[j]
        else:
            a = smoothed_target(job, t, cw, j)
        qj = q[j] * inv
        if job.inputs == ROWS_SOFTMAX:
            if go != NULL:
                go[j] = (qj * target_sum - a) * grad_scale
            if ho != NULL:
                ho[j] = target_sum * qj * (1 - qj) * hess_scale
        else:
            if go != NULL:
                go[j] = 0 if qj <= QMIN else -a / qj * grad_scale  # NaN propagates
            if ho != NULL:
                ho[j] = 0 if qj <= QMIN else a / (qj * qj) * hess_scale


# @rowwise_loss
cdef struct CategoricalCrossEntropy:
    char unused

cdef inline double CategoricalCrossEntropy_row(
        CategoricalCrossEntropy L, const RwJob* job, const floating* lq, const floating* q,
        floating lse, floating inv, double rest, Py_ssize_t jmax, const floating* t,
        long long y, floating label_weight, floating grad_scale, floating hess_scale,
        floating* go, floating* ho) noexcept nogil:
    cdef const floating* cw = <const floating*>job.cw
    cdef Py_ssize_t j, k = job.k
    cdef floating smooth = <floating>job.smooth, smooth_k = <floating>(job.smooth / job.k)
    cdef floating target_sum, lqy, a, q_scale, shift
    cdef double loss, S
    if t != NULL:
        loss = 0
        target_sum = 0
        for j in range(k):
            a = smoothed_target(job, t, cw, j)
            target_sum = target_sum + a
            loss -= a * (lq[j] - lse)
        if go != NULL or ho != NULL:
            ce_grad_hess(job, q, inv, t, False, -1, 0, target_sum, grad_scale, hess_scale,
                         go, ho)
        return loss
    lqy = lq[y] - lse if rw_all_logs(job) else clamp_log(f_log(q[y]))
    loss = -(1 - smooth) * label_weight * lqy
    if smooth != 0:
        S = 0
        for j in range(k):
            S += (cw[j] if cw != NULL else 1) * lq[j]
        loss -= smooth_k * (S - job.cw_sum * lse)
    target_sum = (1 - smooth) * label_weight + <floating>(smooth_k * job.cw_sum)
    if job.inputs == ROWS_SOFTMAX and go != NULL:
        # The common case, kept branch-free: g_j = (q_j A - e/k w_j) grad_scale, minus
        # (1 - e) w_y grad_scale at the label (A = target_sum, e = smooth).
        q_scale = inv * target_sum * grad_scale
        shift = smooth_k * grad_scale
        if cw == NULL:
            for j in range(k):
                go[j] = q[j] * q_scale - shift
        else:
            for j in range(k):
                go[j] = q[j] * q_scale - shift * cw[j]
        go[y] = go[y] - (1 - smooth) * label_weight * grad_scale
        if ho != NULL:
            ce_grad_hess(job, q, inv, NULL, False, y, label_weight, target_sum, grad_scale,
                         hess_scale, NULL, ho)
    elif go != NULL or ho != NULL:
        ce_grad_hess(job, q, inv, NULL, False, y, label_weight, target_sum, grad_scale,
                     hess_scale, go, ho)
    return loss


# @rowwise_loss
cdef struct KLDivergence:
    char unused

cdef inline double KLDivergence_row(
        KLDivergence L, const RwJob* job, const floating* lq, const floating* q,
        floating lse, floating inv, double rest, Py_ssize_t jmax, const floating* t,
        long long y, floating label_weight, floating grad_scale, floating hess_scale,
        floating* go, floating* ho) noexcept nogil:
    # KL(t || q) = sum_j t_j log t_j - t_j log q_j: cross-entropy on plain targets plus the
    # targets' negative entropy.
    cdef Py_ssize_t j, k = job.k
    cdef floating target_sum = 0
    cdef double loss = 0
    for j in range(k):
        target_sum = target_sum + t[j]
        loss -= t[j] * (lq[j] - lse)
        loss += xlogx(t[j])
    if go != NULL or ho != NULL:
        ce_grad_hess(job, q, inv, t, True, -1, 0, target_sum, grad_scale, hess_scale, go, ho)
    return loss
