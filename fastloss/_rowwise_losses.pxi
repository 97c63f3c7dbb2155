# The row math of every row-wise loss, each written once; the generic driver (_rowwise.pxi)
# does everything else.
#
# A loss is a block headed by `# @rowwise_loss` and holding:
#   cdef struct Name:          its parameters (double fields, or one `char unused`)
#   Name_row(L, job, lq, q, lse, inv, rest, jmax, t, y, label_weight, grad_scale,
#            hess_scale, go, ho, work) -> double
#       the row's loss; writes the row's gradient (times grad_scale) into go and its hessian
#       (times hess_scale) into ho where they are not NULL. With labels, t is NULL, y the
#       row's (valid) label and label_weight its class weight; with dense targets, t is the
#       row of y_true; work is scratch for k values (a loop that fills it vectorizes where
#       one summing into a scalar cannot: an ordered sum). A loss declared
#       `# @rowwise_loss(target_logs=True)` finds xlogx(t_j) of its dense target row there
#       instead (formed by one flat vector loop over the block), and may overwrite it.
#       The row's view of q (lq, q, lse, inv, rest, jmax) is described in _rowwise.pxi.
#       The job carries the shared parameters: class weights (job.cw, job.cw_sum), label
#       smoothing (job.smooth), k.
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
        a = a + (<floating>1 - <floating>job.smooth) * label_weight
    return a


cdef inline floating xlogx(floating t) noexcept nogil:
    # scipy.special.entr's sign convention reversed: 0 log 0 = 0, +inf for t < 0 (as rel_entr).
    # Branch-free, so that a row's loop of them vectorizes (the log of t <= 0 is discarded).
    cdef floating v = t * f_log(t)
    return v if t > 0 else (0 if t == 0 else (INFINITY if t < 0 else t))


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
                ho[j] = target_sum * qj * (<floating>1 - qj) * hess_scale
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
        floating* go, floating* ho, floating* work) noexcept nogil:
    cdef const floating* cw = <const floating*>job.cw
    cdef Py_ssize_t j, k = job.k
    cdef floating smooth = <floating>job.smooth
    # (a division per row, for nothing, where there is no smoothing)
    cdef floating smooth_k = <floating>(job.smooth / job.k) if job.smooth != 0 else 0
    cdef floating target_sum, lqy, a, q_scale, shift, label_term
    cdef double loss, S
    cdef int ji, yi
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
        # The label's term inside the loop, not as go[y] -= ... after it: reading back an
        # element just written by a vector store stalls until the store completes.
        label_term = (1 - smooth) * label_weight * grad_scale
        if floating is float and cw == NULL and k <= 2147483647:
            # 32-bit indices for 8 float lanes: with 64-bit ones, each vector's j == y took
            # two 64-bit compares and a repack of the mask (a tenth of the float32 kernel).
            yi = <int>y
            for ji in range(<int>k):
                go[ji] = (q[ji] * q_scale - shift) - (label_term if ji == yi else 0)
        elif cw == NULL:
            for j in range(k):
                go[j] = (q[j] * q_scale - shift) - (label_term if j == y else 0)
        else:
            for j in range(k):
                go[j] = (q[j] * q_scale - shift * cw[j]) - (label_term if j == y else 0)
        if ho != NULL:
            ce_grad_hess(job, q, inv, NULL, False, y, label_weight, target_sum, grad_scale,
                         hess_scale, NULL, ho)
    elif go != NULL or ho != NULL:
        ce_grad_hess(job, q, inv, NULL, False, y, label_weight, target_sum, grad_scale,
                     hess_scale, go, ho)
    return loss


# @rowwise_loss(target_logs=True)
cdef struct KLDivergence:
    char unused

cdef inline double KLDivergence_row(
        KLDivergence L, const RwJob* job, const floating* lq, const floating* q,
        floating lse, floating inv, double rest, Py_ssize_t jmax, const floating* t,
        long long y, floating label_weight, floating grad_scale, floating hess_scale,
        floating* go, floating* ho, floating* work) noexcept nogil:
    # KL(t || q) = sum_j t_j log t_j - t_j log q_j: cross-entropy on plain targets plus the
    # targets' negative entropy. work holds the t_j log t_j (target_logs: the block's logs in
    # one flat vector loop, no scalar log in a row's tail); each term goes there, then
    # row_sum adds them.
    cdef Py_ssize_t j, k = job.k
    cdef floating target_sum = <floating>row_sum(t, k), q_scale
    for j in range(k):
        work[j] = work[j] - t[j] * (lq[j] - lse)
    if job.inputs == ROWS_SOFTMAX and go != NULL:
        # the common case, branch-free: g_j = (q_j A - t_j) grad_scale
        q_scale = inv * target_sum
        for j in range(k):
            go[j] = (q[j] * q_scale - t[j]) * grad_scale
        if ho != NULL:
            ce_grad_hess(job, q, inv, t, True, -1, 0, target_sum, grad_scale, hess_scale,
                         NULL, ho)
    elif go != NULL or ho != NULL:
        ce_grad_hess(job, q, inv, t, True, -1, 0, target_sum, grad_scale, hess_scale, go, ho)
    return row_sum(work, k)


# The categorical focal loss: every row's loss is -sum_c a_c m_c**gamma log q_c, m_c = 1 - q_c
# (formed without cancellation by rw_one_minus_q), a_c the row's effective targets as in
# cross-entropy. With rho_c = log q_c / m_c (bounded: -> -1 as q_c -> 1, the limit taken at
# m_c = 0), and per class
#   v_c   = a_c m_c**gamma (1 - gamma q_c rho_c)                (= a_c q_c df_c/dq_c)
#   psi_c = -gamma a_c q_c m_c**(gamma-1) beta_c,   beta_c = 2 + log q_c - (gamma-1) q_c rho_c
# (psi_c = a_c q_c dv_c/dq_c / a_c), with V and Psi their sums over the row:
#   logits:        g_j = q_j V - v_j
#                  h_j = q_j m_j V - q_j**2 (Psi - psi_j) + gamma a_j q_j m_j**(gamma+1) beta_j
#   probabilities: g_j = -a_j m_j**gamma (1/q_j - gamma rho_j)
#                  h_j = a_j gamma m_j**(gamma-1) (2/q_j - (gamma-1) rho_j) + a_j m_j**gamma / q_j**2
# (the 1/q_j terms 0 where the log is clamped, as cross-entropy's). At gamma = 0 these are
# cross-entropy's formulas, and CategoricalCrossEntropy's kernel runs instead (bit for bit).
# Psi - psi_j is formed as the sum without the row's largest class plus that class, so that
# a dominant psi of the largest q (gamma < 1) does not cancel.


cdef inline floating focal_rho(floating lq, floating m) noexcept nogil:
    """log q / (1 - q), and its limit -1 where 1 - q is 0 (then log q is 0 too)."""
    return lq / m if m != 0 else -1


# @rowwise_loss
cdef struct CategoricalFocal:
    double gamma
    double gamma_int       # gamma where it is an integer 1..4, else -1 (see focal_pow)

cdef inline floating focal_pw1(CategoricalFocal L, floating m) noexcept nogil:
    """m**(gamma - 1), 0 where m = 0 (the terms it multiplies vanish there for gamma >= 1,
    and for gamma < 1 they are taken as their limit in the row sums)."""
    if m == 0:
        return 0
    return focal_pow(m, L.gamma - 1, L.gamma_int - 1, L.gamma_int < 0)

cdef inline double CategoricalFocal_row(
        CategoricalFocal L, const RwJob* job, const floating* lq, const floating* q,
        floating lse, floating inv, double rest, Py_ssize_t jmax, const floating* t,
        long long y, floating label_weight, floating grad_scale, floating hess_scale,
        floating* go, floating* ho, floating* work) noexcept nogil:
    cdef const floating* cw = <const floating*>job.cw
    cdef Py_ssize_t j, k = job.k
    cdef bint softmax = job.inputs == ROWS_SOFTMAX
    cdef floating gm = <floating>L.gamma
    cdef floating a, qj, mj, lqj, pw, rho, v, beta, psi, V, Psi_rest, psi_max, live
    # typed constants for the per-class loops (see _elementwise_losses.pxi's header); the
    # per-row scalars keep their double literals, and their bits
    cdef floating one = 1, two = 2, zero = 0
    cdef double loss = 0
    if t == NULL and job.smooth == 0:
        # One target class: a_y = label_weight, the others 0.
        a = label_weight
        qj = q[y] * inv
        mj = rw_one_minus_q(q, inv, rest, y, jmax)
        lqj = lq[y] - lse if rw_all_logs(job) else clamp_log(f_log(q[y]))
        pw = focal_pow(mj, L.gamma, L.gamma_int, L.gamma_int < 0)
        rho = focal_rho(lqj, mj)
        loss = -(a * pw * lqj)
        if softmax:
            v = a * pw * (1 - gm * qj * rho)
            if go != NULL:
                for j in range(k):
                    go[j] = q[j] * inv * v * grad_scale
                go[y] = -mj * v * grad_scale         # q_y V - v_y, without cancellation
            if ho != NULL:
                beta = 2 + lqj - (gm - 1) * qj * rho
                psi = -gm * a * qj * focal_pw1(L, mj) * beta
                for j in range(k):
                    qj = q[j] * inv
                    ho[j] = (qj * rw_one_minus_q(q, inv, rest, j, jmax) * v - qj * qj * psi) \
                        * hess_scale
                qj = q[y] * inv
                ho[y] = (qj * mj * v + gm * a * qj * mj * pw * beta) * hess_scale
        else:
            live = 0 if qj <= QMIN else 1 / qj       # NaN propagates
            # the other classes: 0, NaN where their q is NaN (as cross-entropy's)
            if go != NULL:
                for j in range(k):
                    go[j] = nan_or_zero(q[j])
                go[y] = -a * pw * (live - gm * rho) * grad_scale
            if ho != NULL:
                for j in range(k):
                    ho[j] = nan_or_zero(q[j])
                ho[y] = (a * gm * focal_pw1(L, mj) * (2 * live - (gm - 1) * rho)
                         + a * pw * live * live) * hess_scale
        return loss
    # Dense targets, or labels with smoothing: every class has a target.
    V = 0
    Psi_rest = 0
    psi_max = 0
    for j in range(k):
        a = smoothed_target(job, t, cw, j) if t != NULL else \
            smoothed_label_target(job, cw, y, label_weight, j)
        qj = q[j] * inv
        mj = rw_one_minus_q(q, inv, rest, j, jmax)
        lqj = lq[j] - lse
        pw = focal_pow(mj, L.gamma, L.gamma_int, L.gamma_int < 0)
        rho = focal_rho(lqj, mj)
        loss -= a * pw * lqj
        if softmax:
            V = V + a * pw * (one - gm * qj * rho)
            psi = -gm * a * qj * focal_pw1(L, mj) * (two + lqj - (gm - one) * qj * rho)
            if j == jmax:
                psi_max = psi
            else:
                Psi_rest = Psi_rest + psi
    if go == NULL and ho == NULL:
        return loss
    for j in range(k):
        a = smoothed_target(job, t, cw, j) if t != NULL else \
            smoothed_label_target(job, cw, y, label_weight, j)
        qj = q[j] * inv
        mj = rw_one_minus_q(q, inv, rest, j, jmax)
        lqj = lq[j] - lse
        pw = focal_pow(mj, L.gamma, L.gamma_int, L.gamma_int < 0)
        rho = focal_rho(lqj, mj)
        if softmax:
            v = a * pw * (one - gm * qj * rho)
            beta = two + lqj - (gm - one) * qj * rho
            if go != NULL:
                go[j] = (qj * V - v) * grad_scale
            if ho != NULL:
                psi = -gm * a * qj * focal_pw1(L, mj) * beta
                ho[j] = (qj * mj * V
                         - qj * qj * (Psi_rest if j == jmax else (Psi_rest - psi) + psi_max)
                         + gm * a * qj * mj * pw * beta) * hess_scale
        else:
            live = zero if qj <= QMIN else one / qj
            if go != NULL:
                go[j] = -a * pw * (live - gm * rho) * grad_scale
            if ho != NULL:
                ho[j] = (a * gm * focal_pw1(L, mj) * (two * live - (gm - one) * rho)
                         + a * pw * live * live) * hess_scale
    return loss


cdef inline void margin_pass(const floating* x, floating base, Py_ssize_t j0, Py_ssize_t j1,
                             bint sq, floating sc, floating* go, floating* lsum, floating* gsum,
                             int* nan) noexcept nogil:
    """MultiMargin over classes [j0, j1) (none of them the label): the sums of max(0, m)**p
    and of its derivative, the gradient (times sc) into go where not NULL, NaN margins."""
    cdef Py_ssize_t j
    cdef floating m, v, ls = 0, gs = 0
    cdef int bad = 0
    for j in range(j0, j1):
        m = base + x[j]
        v = m if m > 0 else 0
        ls = ls + (v * v if sq else v)
        v = <floating>2 * v if sq else (1 if m > 0 else 0)
        gs = gs + v
        if go != NULL:
            go[j] = v * sc
        bad = bad + (m != m)
    lsum[0] = lsum[0] + ls
    gsum[0] = gsum[0] + gs
    nan[0] = nan[0] + bad


# @rowwise_loss
cdef struct MultiMargin:
    double margin
    double squared         # p = 2 (else p = 1)

cdef inline double MultiMargin_row(
        MultiMargin L, const RwJob* job, const floating* lq, const floating* q,
        floating lse, floating inv, double rest, Py_ssize_t jmax, const floating* t,
        long long y, floating label_weight, floating grad_scale, floating hess_scale,
        floating* go, floating* ho, floating* work) noexcept nogil:
    # torch.nn.functional.multi_margin_loss on raw scores x = q (inputs "raw"): with
    # m_j = margin - x_y + x_j, l = w_y / k * sum_{j != y} max(0, m_j)**p; g_j = w_y/k p m_j**(p-1)
    # where m_j > 0 (j != y) and g_y = -sum of those; the hessian is 0 (p = 1) or 2 w_y/k
    # per active j and their count at y (p = 2). At m_j = 0 the gradient is 0 (torch's). NaN
    # propagates (torch's kernel drops it: its z > 0 is false); x_y = +inf gives 0, the limit.
    # Branch-free passes over the classes before and after y (the class weight and the
    # mean's scale applied once per element); a NaN margin is counted and makes the row NaN.
    cdef Py_ssize_t j, k = job.k
    cdef floating base = <floating>L.margin - q[y]
    cdef floating scale = label_weight / <floating>k
    cdef floating sc = scale * grad_scale
    cdef floating m, lsum = 0, gsum = 0
    cdef int nan = 0
    cdef bint sq = L.squared != 0
    if go != NULL:
        margin_pass(q, base, 0, y, sq, sc, go, &lsum, &gsum, &nan)
        margin_pass(q, base, y + 1, k, sq, sc, go, &lsum, &gsum, &nan)
        go[y] = -gsum * sc
    else:
        margin_pass(q, base, 0, y, sq, sc, NULL, &lsum, &gsum, &nan)
        margin_pass(q, base, y + 1, k, sq, sc, NULL, &lsum, &gsum, &nan)
    if nan:
        lsum = NAN
        if go != NULL:
            for j in range(k):
                go[j] = go[j] + (nan_or_zero(base + q[j]) if j != y else NAN)
    if ho != NULL:
        gsum = 0
        for j in range(k):
            m = base + q[j]
            m = 2 if sq and (m > 0) & (j != y) else 0
            gsum = gsum + m
            ho[j] = m * scale * hess_scale
        ho[y] = gsum * scale * hess_scale
        if nan:
            for j in range(k):
                ho[j] = ho[j] + (nan_or_zero(base + q[j]) if j != y else NAN)
    return lsum * scale
