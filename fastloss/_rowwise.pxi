# The generic row-wise driver: one blocked, parallel pass for every loss over the last axis.
#
# Shared by every row-wise loss (`rw_loss`, a fused type over _rowwise_losses.pxi made by the
# build): per block of rows, the row maximum, one flat vector exp over the block, the
# log-sum-exp as log1p of the non-max terms (tiny losses keep their relative precision) and
# its reciprocal; labels against dense targets, ignore_index and label range checks (never an
# out-of-bounds read), sample weights, the "mean" normalizer and the reduction. A loss supplies
# only its row math (`Name_row`), which sees the row through these arrays:
#   lq[j] - lse = log q_j      q[j] * inv = q_j      rest = sum of q_j / q_max without q_max
# (softmax inputs; for probabilities lq is the clamped log p, q = p, lse = 0 and inv = 1; for
# raw scores q = y_pred, lse = 0, inv = 1 and lq is not formed).

# exp(-100): below it, the clamped log is constant and its derivative 0.
cdef double QMIN = 3.720075976020836e-44


cdef inline bint rw_all_logs(const RwJob* job) noexcept nogil:
    """Whether the block's prologue forms log q of every class.

    Labels without smoothing on probabilities need only the label's own log, which the
    row math takes itself; raw scores need none; everything else needs them all.
    """
    if job.inputs == ROWS_RAW:
        return False
    return job.inputs == ROWS_SOFTMAX or job.lab == NULL or job.smooth != 0


cdef inline floating rw_one_minus_q(const floating* q, floating inv, double rest,
                                    Py_ssize_t j, Py_ssize_t jmax) noexcept nogil:
    """1 - q_j without cancellation: only the row's largest q can be near 1."""
    if j == jmax:
        return <floating>(rest / (1 + rest))
    return 1 - q[j] * inv


cdef extern from "_rows.h" nogil:
    # The first largest element's index, NaNs passed over (a NaN x[0] is the row's), in
    # vector registers where the target has them: the same index as the scalar loop.
    Py_ssize_t fl_row_argmax(const double* x, Py_ssize_t k)
    Py_ssize_t fl_row_argmaxf(const float* x, Py_ssize_t k)


cdef inline Py_ssize_t row_argmax(const floating* x, Py_ssize_t k) noexcept nogil:
    if floating is float:
        return fl_row_argmaxf(x, k)
    else:
        return fl_row_argmax(x, k)


# Rows at least this long are summed in SUM_LANES lanes (the sum's order, so its bits, depend
# on it).
cdef enum:
    ROW_SUM_LANES_FROM = 64


cdef inline double row_sum(const floating* x, Py_ssize_t k) noexcept nogil:
    # Short rows: four chains are plenty, and cheaper to set up than the 32-lane block sum.
    # Long ones take the block sum: one 4-wide chain of k / 4 dependent additions took about
    # as long as the row's exps (k = 1000).
    if k >= ROW_SUM_LANES_FROM:
        return block_sum(x, k)
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


cdef inline bint rw_label_skipped(const RwJob* job, long long y) noexcept nogil:
    """An ignored row, or a label outside [0, k) (reported by the caller)."""
    return (job.has_ignore and y == job.ignore) or y < 0 or y >= job.k


cdef struct RwScratch:
    # One thread's scratch for blocks of up to `rows` rows, on the heap: kernels keep nothing
    # large on the stack (small thread stacks work), and it is allocated once per call.
    void* lq            # log q, E_pad
    void* q             # q (a private copy: gradient_out may be y_pred itself), E_pad
    void* lse           # per row, m_pad
    void* inv           # per row, m_pad
    Py_ssize_t* amax    # per row, m_pad
    double* rest        # per row, m_pad
    void* work          # the row math's own scratch, k
    void* tl            # xlogx of the dense targets, E_pad (target_logs losses), or NULL
    void* stage         # 3 E: GBDT layouts' staging, or NULL
    void* base


cdef inline Py_ssize_t rw_pad(Py_ssize_t n) noexcept nogil:
    return (n + EW_PAD - 1) // EW_PAD * EW_PAD


cdef inline bint rw_staged(floating tag, const RwJob* job) noexcept nogil:
    return job.class_major or (job.out32 and floating is double)


cdef int rw_scratch_alloc(floating tag, const RwJob* job, RwScratch* S) noexcept nogil:
    cdef Py_ssize_t rows = min(job.rows, job.n), E = rows * job.k
    cdef Py_ssize_t E_pad = rw_pad(E), m_pad = rw_pad(rows)
    cdef Py_ssize_t n_stage = 3 * E if rw_staged(tag, job) else 0
    cdef Py_ssize_t k_pad = rw_pad(job.k)
    cdef Py_ssize_t n_tl = E_pad if job.lab == NULL else 0   # dense targets only
    cdef char* p = <char*>malloc((2 * E_pad + 2 * m_pad + k_pad + n_stage + n_tl)
                                 * sizeof(floating)
                                 + m_pad * (sizeof(Py_ssize_t) + sizeof(double)))
    S.base = p
    if p == NULL:
        return -1
    S.rest = <double*>p                  # (the 8-byte members first: all stay aligned)
    p += m_pad * sizeof(double)
    S.amax = <Py_ssize_t*>p
    p += m_pad * sizeof(Py_ssize_t)
    S.lq = p
    p += E_pad * sizeof(floating)
    S.q = p
    p += E_pad * sizeof(floating)
    S.lse = p
    p += m_pad * sizeof(floating)
    S.inv = p
    p += m_pad * sizeof(floating)
    S.work = p
    p += k_pad * sizeof(floating)
    S.tl = p if n_tl else NULL
    p += n_tl * sizeof(floating)
    S.stage = p if n_stage else NULL
    return 0


cdef Py_ssize_t rw_block(rw_loss L, floating tag, const RwJob* job, Py_ssize_t r0, Py_ssize_t r1,
                         double* num, double* den, const RwScratch* S) noexcept nogil:
    cdef Py_ssize_t k = job.k, m = r1 - r0, E = (r1 - r0) * job.k, i, j, r, R
    # The flat vector loops run to a multiple of EW_PAD (padded with harmless values), so
    # every element takes their vector body: the same bits wherever it lies (see ew_padded).
    cdef Py_ssize_t E_pad = (E + EW_PAD - 1) // EW_PAD * EW_PAD
    cdef Py_ssize_t m_pad = (m + EW_PAD - 1) // EW_PAD * EW_PAD
    cdef const floating* z = <const floating*>job.z + r0 * k
    cdef const floating* cw = <const floating*>job.cw
    cdef const floating* t = NULL
    cdef floating* go = NULL
    cdef floating* ho = NULL
    cdef floating* lq = <floating*>S.lq
    cdef floating* tl = <floating*>S.tl
    cdef floating* work = <floating*>S.work
    cdef bint target_logs = rw_target_logs(L) and tl != NULL
    cdef floating* q = <floating*>S.q
    cdef floating* lse_buf = <floating*>S.lse
    cdef floating* inv_buf = <floating*>S.inv
    cdef Py_ssize_t* amax = S.amax
    cdef double* rest = S.rest
    cdef floating mx, label_weight, grad_scale, hess_scale
    cdef double loss, share, wr, num_b = 0, den_b = 0
    cdef long long y = -1
    cdef Py_ssize_t first_bad = OK
    cdef bint grad = (job.wanted & WANT_GRAD) != 0, hess = (job.wanted & WANT_HESS) != 0
    # GBDT layouts (fastloss.gbdt): a class-major (k, n) y_pred is gathered into row order,
    # and class-major or float32 outputs go through a block buffer, so the row math is the same.
    cdef bint staged = rw_staged(tag, job)
    cdef floating* stage = <floating*>S.stage
    cdef floating* gb = NULL
    cdef floating* hb = NULL
    cdef floating hfloor_r
    cdef bint floored = job.hfloor > -INFINITY
    if staged:
        gb = stage + E
        hb = stage + 2 * E
        if job.class_major:
            for j in range(k):
                for r in range(m):
                    stage[r * k + j] = (<const floating*>job.z)[j * job.n + r0 + r]
            z = stage

    if job.inputs == ROWS_SOFTMAX:
        # (every row's argmax first: rows' compare chains then overlap out of order)
        for r in range(m):
            amax[r] = row_argmax(z + r * k, k)
        for r in range(m):
            mx = z[r * k + amax[r]]
            for j in range(k):
                lq[r * k + j] = z[r * k + j] - mx
        for i in range(E, E_pad):
            lq[i] = 0
        for i in range(E_pad):
            q[i] = f_exp(lq[i])
        # The max's own term is exp(0) = 1 exactly, unless z_max is inf: then it is NaN, and
        # adding its "- 1" makes the whole row NaN, as NumPy and PyTorch do. It is left out
        # of the row's sum by a 0 in its place, all rows' first (inv holds the terms till the
        # log1p loop below): a sum's vector loads right after the store of that 0 would wait
        # for it (a failed store-to-load forwarding; it took a third of the time at k = 10).
        for r in range(m):
            inv_buf[r] = q[r * k + amax[r]]
            q[r * k + amax[r]] = 0
        for r in range(m):
            rest[r] = row_sum(q + r * k, k) + (inv_buf[r] - 1)
        for r in range(m):
            q[r * k + amax[r]] = inv_buf[r]
        for r in range(m, m_pad):
            rest[r] = 0
        for r in range(m_pad):  # a vector loop: one log1p and one division per row
            lse_buf[r] = <floating>log1p(rest[r])
            inv_buf[r] = <floating>(1 / (1 + rest[r]))
    else:
        for i in range(E):
            q[i] = z[i]
        for i in range(E, E_pad):
            q[i] = 1
        if rw_all_logs(job):
            for i in range(E_pad):
                lq[i] = clamp_log(f_log(q[i]))
        for r in range(m):
            amax[r] = -1
            rest[r] = 0
            lse_buf[r] = 0
            inv_buf[r] = 1

    if target_logs:
        # Every target's t log t in one flat vector loop (padded, as the loops above), not
        # in each row's loop, whose tail took scalar libm's log.
        t = <const floating*>job.t + r0 * k
        for i in range(E):
            tl[i] = t[i]
        for i in range(E, E_pad):
            tl[i] = 1
        for i in range(E_pad):
            tl[i] = xlogx(tl[i])

    for r in range(m):
        R = r0 + r
        wr = (<const floating*>job.w)[R] if job.w != NULL else 1
        if staged:
            go = gb + r * k if grad else NULL
            ho = hb + r * k if hess else NULL
        else:
            go = <floating*>job.go + R * k if grad else NULL
            ho = <floating*>job.ho + R * k if hess else NULL
        grad_scale = <floating>((wr * job.wpre) * job.gscale)
        hess_scale = <floating>(wr * job.hscale)   # hscale is 1 outside fastloss.gbdt
        if job.lab != NULL:
            y = job.lab[R]
            if rw_label_skipped(job, y):
                if not (job.has_ignore and y == job.ignore) and first_bad == OK:
                    first_bad = bad_element(job.offset + R, BAD_Y_TRUE)
                for j in range(k):
                    if grad:
                        go[j] = 0
                    if hess:
                        ho[j] = 0
                if job.lo != NULL:
                    (<floating*>job.lo)[R] = 0
                continue
            label_weight = cw[y] if cw != NULL else 1
            # the row's share of the "mean" normalizer (PyTorch's, which is the label's class
            # weight for cross-entropy and 1 for multi_margin_loss)
            share = 1 if job.rows_mean else label_weight
        else:
            t = <const floating*>job.t + R * k
            label_weight = 0
            share = 1
        loss = rw_row(L, job, lq + r * k, q + r * k, lse_buf[r], inv_buf[r], rest[r], amax[r],
                      t, y, label_weight, grad_scale, hess_scale, go, ho,
                      tl + r * k if target_logs else work)
        if floored and hess:   # XGBoost's max(h, floor) * w; NaN is kept
            hfloor_r = <floating>(job.hfloor * wr)
            for j in range(k):
                if ho[j] < hfloor_r:
                    ho[j] = hfloor_r
        if job.lo != NULL:
            (<floating*>job.lo)[R] = <floating>(wr * loss)
        num_b += wr * loss
        den_b += wr * share

    if staged:
        rw_store(job, gb if grad else NULL, hb if hess else NULL, r0, m)
    num[0] = num_b
    den[0] = den_b
    return first_bad


cdef void rw_store(const RwJob* job, const floating* gb, const floating* hb, Py_ssize_t r0,
                   Py_ssize_t m) noexcept nogil:
    """A staged block's outputs into their place: class-major or row-major, float32 or not."""
    cdef Py_ssize_t j, r, k = job.k, n = job.n
    cdef const floating* src
    cdef void* dst
    cdef int a
    for a in range(2):
        src = gb if a == 0 else hb
        dst = job.go if a == 0 else job.ho
        if src == NULL:
            continue
        if job.out32:
            if job.class_major:
                for j in range(k):
                    for r in range(m):
                        (<float*>dst)[j * n + r0 + r] = <float>src[r * k + j]
            else:
                for r in range(m * k):
                    (<float*>dst)[r0 * k + r] = <float>src[r]
        else:
            for j in range(k):
                for r in range(m):
                    (<floating*>dst)[j * n + r0 + r] = src[r * k + j]


cdef struct RwTeam:
    # One parallel call, as EwTeam.
    const RwJob* job
    Partials* P
    int kernel
    bint is_double
    int nt
    long long nb
    fl_counter next


cdef void rw_team_work(rw_loss L, floating tag, RwTeam* team) noexcept nogil:
    """Claim blocks of rows until none are left, with this thread's scratch."""
    cdef long long b, b0, count
    cdef const RwJob* job = team.job
    cdef RwScratch S
    cdef Py_ssize_t start, first = job.offset - job.offset % job.rows   # global blocks
    S.base = NULL
    while True:
        b0 = fl_claim(&team.next, team.nb, GRAIN_TRANSCENDENTAL, team.nt, &count)
        if count == 0:
            break
        if S.base == NULL and rw_scratch_alloc(tag, job, &S):
            for b in range(b0, b0 + count):
                team.P.bad[b] = NOMEM
            continue
        for b in range(b0, b0 + count):
            start = first + b * job.rows - job.offset
            team.P.bad[b] = rw_block(L, tag, job, max(0, start), min(job.n, start + job.rows),
                                     &team.P.num[b], &team.P.den[b], &S)
    free(S.base)


cdef Py_ssize_t rw_run(rw_loss L, floating tag, const RwJob* job, int n_threads, double* num,
                       double* den, int kernel) noexcept nogil:
    cdef Partials P
    cdef RwTeam team
    cdef Py_ssize_t b
    cdef int nt = n_threads_for(n_threads, job.n * job.k, MIN_WORK_TRANSCENDENTAL)
    team.nb = (job.offset % job.rows + job.n + job.rows - 1) // job.rows if job.n > 0 else 0
    if partials_init(&P, team.nb):
        return NOMEM
    team.job = job
    team.P = &P
    team.kernel = kernel
    team.is_double = floating is double
    team.nt = nt
    fl_counter_init(&team.next, 0)
    if nt == 1:
        rw_team_work(L, tag, &team)
    else:
        fl_team_run(nt, rw_team_entry, &team)
    for b in range(team.nb):
        if P.bad[b] == NOMEM:
            partials_free(&P)
            return NOMEM
    if job.parts_num != NULL:
        for b in range(team.nb):
            job.parts_num[b] = P.num[b]
            job.parts_den[b] = P.den[b]
    return partials_finish(&P, num, den)


cdef Py_ssize_t _label_normalizer_block(floating tag, const RwJob* job, Py_ssize_t r0,
                                        Py_ssize_t r1, double* out) noexcept nogil:
    cdef Py_ssize_t r
    cdef long long y
    cdef double s = 0
    cdef const floating* w = <const floating*>job.w
    cdef const floating* cw = <const floating*>job.cw
    for r in range(r0, r1):
        y = job.lab[r]
        if job.has_ignore and y == job.ignore:
            continue
        if rw_label_skipped(job, y):
            return bad_element(job.offset + r, BAD_Y_TRUE)
        s += (w[r] if w != NULL else 1) * (cw[y] if cw != NULL else 1)
    out[0] = s
    return OK


cdef struct NormTeam:
    const RwJob* job
    Partials* P
    bint is_double
    int nt
    long long nb
    fl_counter next


cdef void _label_normalizer_work(floating tag, NormTeam* team) noexcept nogil:
    cdef long long b, b0, count
    cdef Py_ssize_t n = team.job.n, start
    cdef Py_ssize_t first = team.job.offset - team.job.offset % EW_BLOCK   # global blocks
    while True:
        b0 = fl_claim(&team.next, team.nb, GRAIN_CHEAP, team.nt, &count)
        if count == 0:
            return
        for b in range(b0, b0 + count):
            start = first + b * EW_BLOCK - team.job.offset
            team.P.bad[b] = _label_normalizer_block(tag, team.job, max(0, start),
                                                    min(n, start + EW_BLOCK), &team.P.num[b])


cdef void _label_normalizer_entry(void* ctx, int worker) noexcept nogil:
    cdef NormTeam* team = <NormTeam*>ctx
    if team.is_double:
        _label_normalizer_work(<double>0, team)
    else:
        _label_normalizer_work(<float>0, team)


cdef Py_ssize_t label_normalizer(floating tag, const RwJob* job, int n_threads,
                                 double* den) noexcept nogil:
    """The normalizer of a mean over integer labels (PyTorch's), before the main pass."""
    cdef Partials P
    cdef NormTeam team
    cdef double unused
    cdef long long b
    cdef int nt = n_threads_for(n_threads, job.n, MIN_WORK_CHEAP)
    team.nb = (job.offset % EW_BLOCK + job.n + EW_BLOCK - 1) // EW_BLOCK if job.n > 0 else 0
    if partials_init(&P, team.nb):
        return NOMEM
    team.job = job
    team.P = &P
    team.is_double = floating is double
    team.nt = nt
    fl_counter_init(&team.next, 0)
    if nt == 1:
        _label_normalizer_work(tag, &team)
    else:
        fl_team_run(nt, _label_normalizer_entry, &team)
    if job.parts_num != NULL:
        for b in range(team.nb):
            job.parts_num[b] = P.num[b]
    return partials_finish(&P, den, &unused)
