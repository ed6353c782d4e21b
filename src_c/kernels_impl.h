/*
 * Type-generic bodies of the kernels declared in kernels.h (one instance each).
 * kernels.c includes this file once per element type with T and SUF defined.
 */
#define NCNN_CAT2(a, b) a##_##b
#define NCNN_CAT(a, b) NCNN_CAT2(a, b)
#define NCNN_FN(name) NCNN_CAT(name, SUF)

/* Zero padding of C planes H x W into (H + 2 pad) x (W + 2 pad). */
void NCNN_FN(ncnn_pad)(const T *x, int64_t xs, T *xp, int64_t xps, int C, int H, int W,
                       int pad)
{
    const int64_t Wp = W + 2 * pad;
    for (int c = 0; c < C; ++c) {
        const T *src = x + c * xs;
        T *dst = xp + c * xps;
        memset(dst, 0, sizeof(T) * (size_t)(pad * Wp));
        for (int y = 0; y < H; ++y) {
            T *restrict row = dst + (y + pad) * Wp;
            const T *restrict from = src + (int64_t)y * W;
            for (int x = 0; x < pad; ++x)
                row[x] = 0;
            for (int x = 0; x < W; ++x)
                row[pad + x] = from[x];
            for (int x = pad + W; x < Wp; ++x)
                row[x] = 0;
        }
        memset(dst + (H + pad) * Wp, 0, sizeof(T) * (size_t)(pad * Wp));
    }
}

/* Adjoint of zero padding: keep the interior. */
void NCNN_FN(ncnn_crop)(const T *xp, int64_t xps, T *x, int64_t xs, int C, int H, int W,
                        int pad)
{
    const int64_t Wp = W + 2 * pad;
    for (int c = 0; c < C; ++c) {
        const T *src = xp + c * xps;
        T *dst = x + c * xs;
        for (int y = 0; y < H; ++y)
            memcpy(dst + (int64_t)y * W, src + (y + pad) * Wp + pad, sizeof(T) * (size_t)W);
    }
}

/* phi[c * taps + r][j] = xp[c][idx[r * P + j]]  (the gather P_phi) */
void NCNN_FN(ncnn_im2col)(const T *xp, int64_t xps, T *phi, int64_t phis, int C, int taps,
                          int P, const ncnn_index *idx)
{
    for (int c = 0; c < C; ++c) {
        const T *src = xp + c * xps;
        for (int r = 0; r < taps; ++r) {
            const ncnn_index *map = idx + (int64_t)r * P;
            T *dst = phi + ((int64_t)c * taps + r) * phis;
            for (int j = 0; j < P; ++j)
                dst[j] = src[map[j]];
        }
    }
}

/* im2col for stride 1, no index map: each (tap, output row) is one contiguous copy. */
void NCNN_FN(ncnn_im2col_s1)(const T *xp, int64_t xps, T *phi, int64_t phis, int C, int kh,
                             int kw, int padded_w, int out_h, int out_w)
{
    for (int c = 0; c < C; ++c) {
        const T *src = xp + c * xps;
        for (int p = 0; p < kh; ++p)
            for (int q = 0; q < kw; ++q) {
                T *dst = phi + ((int64_t)(c * kh + p) * kw + q) * phis;
                /* rows are short (out_w ~ 7..28): a plain loop beats a memcpy call */
                for (int y = 0; y < out_h; ++y) {
                    const T *restrict from = src + (int64_t)(y + p) * padded_w + q;
                    T *restrict to = dst + (int64_t)y * out_w;
                    for (int x = 0; x < out_w; ++x)
                        to[x] = from[x];
                }
            }
    }
}

/*
 * "Same" convolutions (stride 1, kernel 2 pad + 1, so the output plane is the input
 * plane): the phi row of tap (p, q) is the unpadded plane shifted by
 * off = (p - pad) W + (q - pad), so it is one contiguous copy, then zeros where a
 * row of the shift wrapped around the plane's side or left it. Same values as
 * ncnn_pad + ncnn_im2col_s1, without the padded copy or the per-row loop.
 */
static void NCNN_FN(same_tap)(int H, int W, int pad, int p, int q, int64_t *off, int *y0,
                              int *y1, int64_t *lo, int64_t *hi)
{
    const int dy = p - pad, dx = q - pad;
    const int64_t P = (int64_t)H * W;
    *off = (int64_t)dy * W + dx;
    *y0 = dy < 0 ? (-dy < H ? -dy : H) : 0;
    *y1 = dy > 0 ? H - dy : H;
    if (*y1 < *y0)
        *y1 = *y0;
    /* rows y0..y1 of the output read the plane; clamp the shifted range to the plane */
    *lo = (int64_t)*y0 * W;
    *hi = (int64_t)*y1 * W;
    if (*lo + *off < 0)
        *lo = -*off;
    if (*hi + *off > P)
        *hi = P - *off;
    if (*lo > (int64_t)*y1 * W)      /* nothing of the plane is read: lo = hi within [0, P] */
        *lo = (int64_t)*y1 * W;
    if (*hi < *lo)
        *hi = *lo;
}

/* Zero the columns of rows y0..y1 whose shifted read wrapped around the side. */
static void NCNN_FN(same_wrap_zero)(T *row, int W, int dx, int y0, int y1)
{
    const int a = dx < 0 ? 0 : (W - dx > 0 ? W - dx : 0);
    const int b = dx < 0 ? (-dx < W ? -dx : W) : W;
    if (dx == 0)
        return;
    for (int y = y0; y < y1; ++y)
        for (int x = a; x < b; ++x)
            row[(int64_t)y * W + x] = 0;
}

NCNN_NO_LIBC_LOOPS void NCNN_FN(ncnn_im2col_same)(const T *x, int64_t xs, T *phi, int64_t phis, int C, int H,
                               int W, int pad)
{
    const int k = 2 * pad + 1;
    const int64_t P = (int64_t)H * W;
    for (int c = 0; c < C; ++c)
        for (int p = 0; p < k; ++p)
            for (int q = 0; q < k; ++q) {
                T *dst = phi + ((int64_t)(c * k + p) * k + q) * phis;
                const T *src = x + c * xs;
                int64_t off, lo, hi;
                int y0, y1;
                NCNN_FN(same_tap)(H, W, pad, p, q, &off, &y0, &y1, &lo, &hi);
                /* short rows (49-784): inline loops beat libc calls here */
                for (int64_t j = 0; j < lo; ++j)
                    dst[j] = 0;
                for (int64_t j = lo; j < hi; ++j)
                    dst[j] = src[j + off];
                for (int64_t j = hi; j < P; ++j)
                    dst[j] = 0;
                NCNN_FN(same_wrap_zero)(dst, W, q - pad, y0, y1);
            }
}

/*
 * Its adjoint into the unpadded x (overwritten). Zeroes phi's wrapped entries in place
 * (phi is the caller's scratch), then each tap is one contiguous add: every element of
 * x gets the contributions of ncnn_col2im_s1 + ncnn_crop in the same order, plus exact
 * zeros.
 */
void NCNN_FN(ncnn_col2im_same)(T *phi, int64_t phis, T *x, int64_t xs, int C, int H, int W,
                               int pad)
{
    const int k = 2 * pad + 1;
    for (int c = 0; c < C; ++c) {
        T *dst = x + c * xs;
        memset(dst, 0, sizeof(T) * (size_t)H * (size_t)W);
        for (int p = 0; p < k; ++p)
            for (int q = 0; q < k; ++q) {
                T *src = phi + ((int64_t)(c * k + p) * k + q) * phis;
                int64_t off, lo, hi;
                int y0, y1;
                NCNN_FN(same_tap)(H, W, pad, p, q, &off, &y0, &y1, &lo, &hi);
                NCNN_FN(same_wrap_zero)(src, W, q - pad, y0, y1);
                for (int64_t j = lo; j < hi; ++j)
                    dst[j + off] += src[j];
            }
    }
}

/* The adjoint of ncnn_im2col_s1: xp = 0, then each row of phi added back in place. */
void NCNN_FN(ncnn_col2im_s1)(const T *phi, int64_t phis, T *xp, int64_t xps, int C, int kh,
                             int kw, int padded_h, int padded_w, int out_h, int out_w)
{
    for (int c = 0; c < C; ++c) {
        T *dst = xp + c * xps;
        memset(dst, 0, sizeof(T) * (size_t)padded_h * (size_t)padded_w);
        for (int p = 0; p < kh; ++p)
            for (int q = 0; q < kw; ++q) {
                const T *src = phi + ((int64_t)(c * kh + p) * kw + q) * phis;
                for (int y = 0; y < out_h; ++y) {
                    T *d = dst + (int64_t)(y + p) * padded_w + q;
                    const T *r = src + (int64_t)y * out_w;
                    for (int x = 0; x < out_w; ++x)
                        d[x] += r[x];
                }
            }
    }
}

/* The adjoint scatter-add P_phi^T: xp = 0, then xp[c][idx] += phi[c * taps + r]. */
void NCNN_FN(ncnn_col2im)(const T *phi, int64_t phis, T *xp, int64_t xps, int C,
                          int plane_len, int taps, int P, const ncnn_index *idx)
{
    for (int c = 0; c < C; ++c) {
        T *dst = xp + c * xps;
        memset(dst, 0, sizeof(T) * (size_t)plane_len);
        for (int r = 0; r < taps; ++r) {
            const ncnn_index *map = idx + (int64_t)r * P;
            const T *src = phi + ((int64_t)c * taps + r) * phis;
            for (int j = 0; j < P; ++j)
                dst[map[j]] += src[j];
        }
    }
}

/* The pool of size 1: a copy (with relu, the ReLU keeping NaN). */
static void NCNN_FN(maxpool1)(const T *src, T *dst, ncnn_index *a, int64_t len, int relu)
{
    for (int64_t j = 0; j < len; ++j) {
        const T v = src[j];
        dst[j] = relu ? ((v > 0 || v != v) ? v : 0) : v;
        a[j] = (ncnn_index)j;
    }
}

/*
 * Max pooling with window = stride = k over the whole windows of each H x W
 * plane; am (laid out like z) gets the in-plane offset of each window's first
 * maximum. With relu != 0, z = max(window max, 0): the pool of the ReLU.
 * A window holding a NaN gives NaN (never masked: the objective must see it).
 */
void NCNN_FN(ncnn_maxpool)(const T *s, int64_t ss, T *z, ncnn_index *am, int64_t zs,
                           int C, int H, int W, int k, int relu)
{
    const int Ho = H / k, Wo = W / k;
    for (int c = 0; c < C; ++c) {
        const T *src = s + c * ss;
        T *dst = z + c * zs;
        ncnn_index *a = am + c * zs;
        if (k == 1) {
            NCNN_FN(maxpool1)(src, dst, a, (int64_t)H * W, relu);
            continue;
        }
        if (k == 2 && NCNN_MAXPOOL2_FAST(src, dst, a, H, W, relu))
            continue;
        for (int y = 0; y < Ho; ++y) {
            for (int x = 0; x < Wo; ++x) {
                ncnn_index best = (ncnn_index)(y * k * W + x * k);
                T m = src[best];
                int nan = 0;
                for (int p = 0; p < k; ++p) {
                    const T *row = src + (y * k + p) * W + x * k;
                    for (int q = 0; q < k; ++q) {
                        nan |= row[q] != row[q];
                        if (row[q] > m) {
                            m = row[q];
                            best = (ncnn_index)((y * k + p) * W + x * k + q);
                        }
                    }
                }
                if (nan)
                    m = (T)NAN;
                else if (relu && !(m > 0))
                    m = 0;
                dst[y * Wo + x] = m;
                a[y * Wo + x] = best;
            }
        }
    }
}

/* z[c][o] = s[c][am[c][o]], times [mask[c][o] > 0] when mask is given (R-op through
 * ReLU + pool with the forward pass's indices). am and mask are laid out like z. */
void NCNN_FN(ncnn_pool_gather)(const T *s, int64_t ss, const ncnn_index *am,
                               const T *mask, T *z, int64_t zs, int C, int out_len)
{
    for (int c = 0; c < C; ++c) {
        const T *src = s + c * ss;
        const ncnn_index *a = am + c * zs;
        T *dst = z + c * zs;
        if (mask) {
            const T *mk = mask + c * zs;
            for (int o = 0; o < out_len; ++o)
                dst[o] = mk[o] > 0 ? src[a[o]] : 0;
        } else {
            for (int o = 0; o < out_len; ++o)
                dst[o] = src[a[o]];
        }
    }
}

/* P_pool^T with the ReLU mask: ds = 0, then ds[c][am] = dz where mask > 0
 * (mask == NULL: no mask). dz, mask and am are laid out alike (stride zs). */
void NCNN_FN(ncnn_pool_scatter)(const T *dz, const T *mask, const ncnn_index *am,
                                int64_t zs, T *ds, int64_t dss, int C, int in_len,
                                int out_len)
{
    for (int c = 0; c < C; ++c) {
        T *dst = ds + c * dss;
        const T *src = dz + c * zs;
        const ncnn_index *a = am + c * zs;
        memset(dst, 0, sizeof(T) * (size_t)in_len);
        if (mask) {
            const T *mk = mask + c * zs;
            for (int o = 0; o < out_len; ++o)
                dst[a[o]] = mk[o] > 0 ? src[o] : 0;
        } else {
            for (int o = 0; o < out_len; ++o)
                dst[a[o]] = src[o];
        }
    }
}

/* max(x, 0), NaN kept (a NaN must reach the outputs, not vanish into a 0). */
void NCNN_FN(ncnn_relu)(T *x, int64_t len)
{
    for (int64_t j = 0; j < len; ++j)
        x[j] = (x[j] > 0 || x[j] != x[j]) ? x[j] : 0;
}

/* d = d * [z > 0]: the ReLU derivative read off the activation z = relu(s). */
void NCNN_FN(ncnn_mask_positive)(T *d, const T *z, int64_t len)
{
    for (int64_t j = 0; j < len; ++j)
        d[j] = z[j] > 0 ? d[j] : 0;
}

/* S[r][0:cols] = b[r]: the bias, written before a GEMM that accumulates into S. */
void NCNN_FN(ncnn_fill_rows)(T *S, int64_t row_stride, const T *b, int rows, int64_t cols)
{
    for (int r = 0; r < rows; ++r) {
        T *row = S + (int64_t)r * row_stride;
        const T v = b[r];
        for (int64_t j = 0; j < cols; ++j)
            row[j] = v;
    }
}

/*
 * Stored-Jacobian product for one conv layer and one instance:
 *   out[k] += sum_{c, o} J[k, c, o] * R[c][am[c][o]]
 * J (K, C, Po) holds dz_k / dS at each pool window's argmax; R (stride rs) is the
 * layer's pre-pool direction V phi + v_b; am has channel stride ams. The gathered
 * R goes to scratch (C * Po) once, then each k is one contiguous dot product.
 */
/* out[k] += <J[k], g> over K blocks of len (g: R{S^m} at the pool argmax, pooled size). */
void NCNN_FN(ncnn_jac_contract)(const T *J, const T *g, T *out, int K, int64_t len)
{
    for (int k = 0; k < K; ++k) {
        const T *Jk = J + (int64_t)k * len;
        T acc = 0;
#pragma omp simd reduction(+:acc)
        for (int64_t j = 0; j < len; ++j)
            acc += Jk[j] * g[j];
        out[k] += acc;
    }
}

void NCNN_FN(ncnn_jac_jvp)(const T *J, const T *R, int64_t rs, const ncnn_index *am,
                           int64_t ams, T *out, T *scratch, int K, int C, int Po)
{
    for (int c = 0; c < C; ++c) {
        const T *r = R + c * rs;
        const ncnn_index *a = am + c * ams;
        T *g = scratch + (int64_t)c * Po;
        for (int o = 0; o < Po; ++o)
            g[o] = r[a[o]];
    }
    NCNN_FN(ncnn_jac_contract)(J, scratch, out, K, (int64_t)C * Po);
}

/* out = sum_k u[k] J[k] over K blocks of len (the pooled-size ∂/∂S^m of Jᵀu). */
void NCNN_FN(ncnn_jac_combine)(const T *J, const T *u, T *out, int K, int64_t len)
{
    memset(out, 0, sizeof(T) * (size_t)len);
    for (int k = 0; k < K; ++k) {
        const T uk = u[k];
        const T *Jk = J + (int64_t)k * len;
#pragma omp simd
        for (int64_t j = 0; j < len; ++j)
            out[j] += uk * Jk[j];
    }
}

/* Its adjoint: scratch = sum_k u[k] J[k] (C * Po), then dS = 0 and
 * dS[c][am[c][o]] = scratch[c, o]. */
void NCNN_FN(ncnn_jac_vjp)(const T *J, const T *u, const ncnn_index *am, int64_t ams,
                           T *dS, int64_t dss, T *scratch, int K, int C, int P, int Po)
{
    NCNN_FN(ncnn_jac_combine)(J, u, scratch, K, (int64_t)C * Po);
    for (int c = 0; c < C; ++c) {
        T *d = dS + c * dss;
        const ncnn_index *a = am + c * ams;
        const T *g = scratch + (int64_t)c * Po;
        memset(d, 0, sizeof(T) * (size_t)P);
        for (int o = 0; o < Po; ++o)
            d[a[o]] = g[o];
    }
}

#undef NCNN_FN
#undef NCNN_CAT
#undef NCNN_CAT2
