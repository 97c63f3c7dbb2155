# The elementwise driver: one blocked, parallel pass for every elementwise loss.
#
# `ew_loss` (a fused type over every loss of _elementwise_losses.pxi, made by the build) and
# `floating` specialize the driver per (loss, dtype) at compile time, so the inner loops are
# branch-free and vectorize; exp/log1p go to libmvec where available.


cdef void ew_loop(ew_loss L, const floating* t, const floating* p, const floating* column,
                 floating* lo, floating* go, floating* ho, Py_ssize_t n, floating grad_scale,
                 int wanted, floating hscale, floating hfloor) noexcept nogil:
    """One contiguous run of elements; `column` has one column parameter per element."""
    cdef Py_ssize_t i
    cdef floating l, g, h
    if wanted == WANT_LOSS:
        for i in range(n):
            ew_math(L, t[i], p[i], column[i], &l, &g, &h)
            lo[i] = l
    elif wanted == WANT_GRAD:
        for i in range(n):
            ew_math(L, t[i], p[i], column[i], &l, &g, &h)
            go[i] = g * grad_scale
    elif wanted == WANT_LOSS | WANT_GRAD:
        for i in range(n):
            ew_math(L, t[i], p[i], column[i], &l, &g, &h)
            lo[i] = l
            go[i] = g * grad_scale
    elif wanted == WANT_GRAD | WANT_HESS:
        for i in range(n):
            ew_math(L, t[i], p[i], column[i], &l, &g, &h)
            go[i] = g * grad_scale
            h = h * hscale         # GBDT conventions; 1 and -inf otherwise: h, bit for bit
            ho[i] = hfloor if h < hfloor else h
    else:                          # everything: ew_padded's one loop for every method
        for i in range(n):
            ew_math(L, t[i], p[i], column[i], &l, &g, &h)
            lo[i] = l
            go[i] = g * grad_scale
            h = h * hscale
            ho[i] = hfloor if h < hfloor else h


cdef void ew_padded(ew_loss L, const floating* t, const floating* p, floating* column,
                    floating* lo, floating* go, floating* ho, Py_ssize_t n, floating grad_scale,
                    int wanted, floating hscale, floating hfloor) noexcept nogil:
    """ew_loop for exp/log-bound losses, with the same arithmetic for every element.

    The sub-chunk is copied into local scratch, padded to a multiple of EW_PAD with copies of
    its first element, and the loop runs over the scratch: every element then takes the vector
    body (libmvec's vector exp/log), never a scalar head or tail (scalar libm: other last
    bits), whatever its position, the buffers' addresses or their overlap (gradient_out is
    y_pred). Cheap losses need none of this: their arithmetic is exact IEEE operations, the
    same in vector and scalar code. The copies stay in L1.
    """
    cdef floating t_buf[EW_SUB]
    cdef floating p_buf[EW_SUB]
    cdef floating l_buf[EW_SUB]
    cdef floating g_buf[EW_SUB]
    cdef floating h_buf[EW_SUB]
    cdef Py_ssize_t i, m = (n + EW_PAD - 1) // EW_PAD * EW_PAD
    # (Reading the inputs in place, with only the outputs local, still let a few elements'
    # bits depend on the buffers' offsets on the FMA builds: the inputs are copied too.)
    for i in range(n):
        t_buf[i] = t[i]
        p_buf[i] = p[i]
    for i in range(n, m):
        t_buf[i] = t_buf[0]
        p_buf[i] = p_buf[0]
        column[i] = column[0]
    # One loop computes every output, whatever the method keeps: gcc's choices for a loop
    # (its vector width: libmvec's 4- and 8-lane log differ in the last bit) depend on the
    # loop's whole body, so a loop per method let loss() and loss_gradient() disagree.
    ew_loop(L, t_buf, p_buf, column, l_buf, g_buf, h_buf, m, grad_scale,
            WANT_LOSS | WANT_GRAD | WANT_HESS, hscale, hfloor)
    if lo != NULL:
        for i in range(n):
            lo[i] = l_buf[i]
    if go != NULL:
        for i in range(n):
            go[i] = g_buf[i]
    if ho != NULL:
        for i in range(n):
            ho[i] = h_buf[i]


cdef void ew_weigh(const floating* w, bint per_row, Py_ssize_t row_len, Py_ssize_t start,
                   Py_ssize_t n, floating* lo, floating* go, floating* ho,
                   double wpre, double grad_scale) noexcept nogil:
    """Multiply a block's outputs by its sample weights (in cache: no extra memory pass).

    The gradient of a weighted mean is g w_i / sum(w), formed in float64 as
    g * ((w_i * wpre) * grad_scale) and rounded once to the dtype: a share w_i / sum(w) below
    float32's subnormals still scales a large g to a normal number.
    """
    cdef Py_ssize_t i, j, seg, r
    cdef floating wi
    if not per_row:
        w = w + start
        for i in range(n):
            if lo != NULL:
                lo[i] = lo[i] * w[i]
            if go != NULL:
                go[i] = <floating>(go[i] * ((w[i] * wpre) * grad_scale))
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
                go[j] = <floating>(go[j] * ((wi * wpre) * grad_scale))
            if ho != NULL:
                ho[j] = ho[j] * wi
        i += seg


cdef inline void ew_prefetch(const floating* t, const floating* p, floating* go, Py_ssize_t start,
                             Py_ssize_t stop) noexcept nogil:
    # One hint per 64-byte line of each input and output, a few sub-chunks ahead.
    cdef Py_ssize_t i = start, step = 64 // sizeof(floating)
    while i < stop:
        fl_prefetch(t + i)
        fl_prefetch(p + i)
        if go != NULL:
            fl_prefetch_write(go + i)
        i += step


cdef Py_ssize_t ew_block(ew_loss L, floating dtype_tag, const EwJob* job, Py_ssize_t start,
                         Py_ssize_t stop, double* out) noexcept nogil:
    """Process elements [start, stop): outputs, weights, the block's loss sum, first bad index."""
    cdef const floating* t = <const floating*>job.t
    cdef const floating* p = <const floating*>job.p
    cdef const floating* columns = <const floating*>job.columns
    cdef floating* go = NULL
    cdef floating* ho = NULL
    cdef floating* lo
    cdef floating loss_buf[EW_SUB]
    cdef floating g_buf[EW_SUB]
    cdef floating h_buf[EW_SUB]
    cdef bint to32 = job.out32 and floating is double
    cdef floating column_buf[EW_SUB]
    cdef double acc[SUM_LANES]
    cdef Py_ssize_t s0 = start, n, i, j, k0, seg
    cdef int bad
    # A loss's constant gradient factor (a power of two, e.g. MSE's 2) goes with the scale: the
    # same bits as applying it in the math (except that a weighted share w_i / sum(w) that is
    # float64-subnormal keeps a bit more), and 2 d never overflows where (2/n) d is finite.
    cdef double gscale = job.gscale * ew_gradient_factor(L)
    cdef floating grad_scale = <floating>gscale
    cdef bint want_loss = (job.wanted & WANT_LOSS) != 0
    cdef bint reduce = job.lo == NULL and want_loss
    for j in range(SUM_LANES):
        acc[j] = 0
    while s0 < stop:
        n = min(EW_SUB, stop - s0)
        if ew_min_work(L) == MIN_WORK_TRANSCENDENTAL:
            # (float32 outputs of float64 math, fastloss.gbdt's: not the output's lines)
            ew_prefetch(t, p, NULL if to32 else <floating*>job.go, s0 + EW_PREFETCH_AHEAD,
                        min(s0 + EW_PREFETCH_AHEAD + n, job.n))
        lo = <floating*>job.lo + s0 if job.lo != NULL else loss_buf
        if to32:   # float64 math, float32 outputs (LightGBM's): through an L1 buffer
            go = g_buf if job.go != NULL else NULL
            ho = h_buf if job.ho != NULL else NULL
        else:
            go = <floating*>job.go + s0 if job.go != NULL else NULL
            ho = <floating*>job.ho + s0 if job.ho != NULL else NULL
        if ew_has_column(L):
            if columns == NULL:
                for i in range(n):
                    column_buf[i] = <floating>job.col_scalar
            else:
                # The column parameter cycles with the last axis: copy it in by runs.
                i = 0
                k0 = (job.offset + s0) % job.ncol
                while i < n:
                    seg = min(n - i, job.ncol - k0)
                    for j in range(seg):
                        column_buf[i + j] = columns[k0 + j]
                    i += seg
                    k0 = 0
        if ew_has_check(L):
            # Checked before anything is written, so the reported element is the caller's
            # even when gradient_out is y_pred; the sub-chunk stays in L1 for the pass below.
            bad = 0
            for i in range(n):
                bad |= ew_invalid(L, t[s0 + i], p[s0 + i])
            if bad:
                for i in range(n):
                    bad = ew_invalid(L, t[s0 + i], p[s0 + i])
                    if bad:
                        out[0] = 0
                        return bad_element(job.offset + s0 + i, bad)
        # With weights, 1/sum(w) is applied as w_i * (1/sum(w)) in ew_weigh: that product is
        # at most 1, so a finite weighted-mean gradient never overflows on the way.
        if ew_padded_loop(L):
            ew_padded(L, t + s0, p + s0, column_buf, lo if want_loss else NULL, go, ho, n,
                      1 if job.w != NULL else grad_scale, job.wanted, <floating>job.hscale,
                      <floating>job.hfloor)
        else:
            ew_loop(L, t + s0, p + s0, column_buf, lo if want_loss else NULL, go, ho, n,
                    1 if job.w != NULL else grad_scale, job.wanted, <floating>job.hscale,
                    <floating>job.hfloor)
        if job.w != NULL:
            ew_weigh(<const floating*>job.w, job.w_per_row, job.row_len, s0, n,
                     lo if want_loss else NULL, go, ho, job.wpre, gscale)
        if to32:
            for i in range(n):
                if go != NULL:
                    (<float*>job.go)[s0 + i] = <float>go[i]
                if ho != NULL:
                    (<float*>job.ho)[s0 + i] = <float>ho[i]
        if reduce:
            lanes_add(acc, lo, n)
        s0 += EW_SUB
    if reduce:
        out[0] = lanes_total(acc)
    return OK


cdef struct EwTeam:
    # One parallel call: the job, its block partials and the blocks still to claim.
    const EwJob* job
    Partials* P
    int kernel                 # for ew_team_entry's dispatch back to the typed worker
    bint is_double
    int nt
    long long nb
    long long grain
    fl_counter next


cdef void ew_team_work(ew_loss L, floating dtype_tag, EwTeam* team) noexcept nogil:
    """Claim blocks until none are left; each block's partial and first bad index go to its slot."""
    cdef long long b, b0, count
    cdef Py_ssize_t n = team.job.n, start
    # Blocks are fixed on the global index (job.offset: a dask chunk's place in the array).
    cdef Py_ssize_t first = team.job.offset - team.job.offset % EW_BLOCK
    while True:
        b0 = fl_claim(&team.next, team.nb, team.grain, team.nt, &count)
        if count == 0:
            return
        for b in range(b0, b0 + count):
            start = first + b * EW_BLOCK - team.job.offset
            team.P.bad[b] = ew_block(L, dtype_tag, team.job, max(0, start),
                                     min(n, start + EW_BLOCK), &team.P.num[b])


cdef Py_ssize_t ew_run(ew_loss L, floating dtype_tag, const EwJob* job, int n_threads,
                       double* loss_sum, int kernel) noexcept nogil:
    """Run the blocked pass; return the first bad element (encoded), OK, or NOMEM."""
    cdef Partials P
    cdef EwTeam team
    cdef double unused
    cdef long long b
    cdef int nt = n_threads_for(n_threads, job.n, ew_min_work(L))
    team.nb = (job.offset % EW_BLOCK + job.n + EW_BLOCK - 1) // EW_BLOCK if job.n > 0 else 0
    if partials_init(&P, team.nb):
        return NOMEM
    team.job = job
    team.P = &P
    team.kernel = kernel
    team.is_double = floating is double
    team.nt = nt
    team.grain = GRAIN_TRANSCENDENTAL if ew_min_work(L) == MIN_WORK_TRANSCENDENTAL \
        else GRAIN_CHEAP
    fl_counter_init(&team.next, 0)
    if nt == 1:
        ew_team_work(L, dtype_tag, &team)
    else:
        fl_team_run(nt, ew_team_entry, &team)
    if job.parts != NULL:
        for b in range(team.nb):
            job.parts[b] = P.num[b]
    return partials_finish(&P, loss_sum, &unused)
