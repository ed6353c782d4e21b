/*
 * Type-generic bodies of the kernels declared in kernels.h.
 * kernels.c includes this file once per element type with T and SUF defined.
 */
#define NCNN_CAT2(a, b) a##_##b
#define NCNN_CAT(a, b) NCNN_CAT2(a, b)
#define NCNN_FN(name) NCNN_CAT(name, SUF)

/* Zero padding: x (C, n, H, W) -> xp (C, n, H + 2 pad, W + 2 pad). */
void NCNN_FN(ncnn_pad)(const T *x, T *xp, int C, int n, int i0, int i1, int H,
                       int W, int pad)
{
    const int64_t Hp = H + 2 * pad, Wp = W + 2 * pad;
    for (int c = 0; c < C; ++c) {
        for (int i = i0; i < i1; ++i) {
            const int64_t plane = (int64_t)c * n + i;
            const T *src = x + plane * H * W;
            T *dst = xp + plane * Hp * Wp;
            memset(dst, 0, sizeof(T) * (size_t)(pad * Wp));
            for (int y = 0; y < H; ++y) {
                T *row = dst + (y + pad) * Wp;
                memset(row, 0, sizeof(T) * (size_t)pad);
                memcpy(row + pad, src + (int64_t)y * W, sizeof(T) * (size_t)W);
                memset(row + pad + W, 0, sizeof(T) * (size_t)pad);
            }
            memset(dst + (H + pad) * Wp, 0, sizeof(T) * (size_t)(pad * Wp));
        }
    }
}

/* Adjoint of zero padding: keep the interior. */
void NCNN_FN(ncnn_crop)(const T *xp, T *x, int C, int n, int i0, int i1, int H,
                        int W, int pad)
{
    const int64_t Hp = H + 2 * pad, Wp = W + 2 * pad;
    for (int c = 0; c < C; ++c) {
        for (int i = i0; i < i1; ++i) {
            const int64_t plane = (int64_t)c * n + i;
            const T *src = xp + plane * Hp * Wp;
            T *dst = x + plane * H * W;
            for (int y = 0; y < H; ++y)
                memcpy(dst + (int64_t)y * W, src + (y + pad) * Wp + pad,
                       sizeof(T) * (size_t)W);
        }
    }
}

/* phi[c * taps + r, i * P + j] = xp[plane (c, i)][idx[r * P + j]]  (the gather P_phi) */
void NCNN_FN(ncnn_im2col)(const T *xp, T *phi, int C, int n, int i0, int i1,
                          int plane_len, int taps, int P, const ncnn_index *idx)
{
    const int64_t row_len = (int64_t)n * P;
    for (int c = 0; c < C; ++c) {
        for (int r = 0; r < taps; ++r) {
            const ncnn_index *map = idx + (int64_t)r * P;
            T *dst_row = phi + ((int64_t)c * taps + r) * row_len;
            for (int i = i0; i < i1; ++i) {
                const T *src = xp + ((int64_t)c * n + i) * plane_len;
                T *dst = dst_row + (int64_t)i * P;
                for (int j = 0; j < P; ++j)
                    dst[j] = src[map[j]];
            }
        }
    }
}

/* The adjoint scatter-add P_phi^T: xp = 0, then xp[plane][idx] += phi. */
void NCNN_FN(ncnn_col2im)(const T *phi, T *xp, int C, int n, int i0, int i1,
                          int plane_len, int taps, int P, const ncnn_index *idx)
{
    const int64_t row_len = (int64_t)n * P;
    for (int c = 0; c < C; ++c)
        for (int i = i0; i < i1; ++i)
            memset(xp + ((int64_t)c * n + i) * plane_len, 0,
                   sizeof(T) * (size_t)plane_len);
    for (int c = 0; c < C; ++c) {
        for (int r = 0; r < taps; ++r) {
            const ncnn_index *map = idx + (int64_t)r * P;
            const T *src_row = phi + ((int64_t)c * taps + r) * row_len;
            for (int i = i0; i < i1; ++i) {
                T *dst = xp + ((int64_t)c * n + i) * plane_len;
                const T *src = src_row + (int64_t)i * P;
                for (int j = 0; j < P; ++j)
                    dst[map[j]] += src[j];
            }
        }
    }
}

/*
 * Max pooling with window = stride = k over the whole windows of each H x W
 * plane; argmax holds the in-plane offset of each window's first maximum.
 * With relu != 0 the output is max(window max, 0): the pool of the ReLU.
 */
void NCNN_FN(ncnn_maxpool)(const T *s, T *z, ncnn_index *argmax, int C, int n,
                           int i0, int i1, int H, int W, int k, int relu)
{
    const int Ho = H / k, Wo = W / k;
    const int64_t in_len = (int64_t)H * W, out_len = (int64_t)Ho * Wo;
    for (int c = 0; c < C; ++c) {
        for (int i = i0; i < i1; ++i) {
            const int64_t plane = (int64_t)c * n + i;
            const T *src = s + plane * in_len;
            T *dst = z + plane * out_len;
            ncnn_index *am = argmax + plane * out_len;
            for (int y = 0; y < Ho; ++y) {
                for (int x = 0; x < Wo; ++x) {
                    ncnn_index best = (ncnn_index)(y * k * W + x * k);
                    T m = src[best];
                    for (int p = 0; p < k; ++p) {
                        for (int q = 0; q < k; ++q) {
                            const ncnn_index off = (ncnn_index)((y * k + p) * W + x * k + q);
                            if (src[off] > m) {
                                m = src[off];
                                best = off;
                            }
                        }
                    }
                    if (relu && !(m > 0))
                        m = 0;
                    dst[y * Wo + x] = m;
                    am[y * Wo + x] = best;
                }
            }
        }
    }
}

/* z[plane][o] = s[plane][argmax[plane][o]]  (P_pool applied with fixed indices) */
void NCNN_FN(ncnn_pool_gather)(const T *s, T *z, const ncnn_index *argmax, int C,
                               int n, int i0, int i1, int in_len, int out_len)
{
    for (int c = 0; c < C; ++c) {
        for (int i = i0; i < i1; ++i) {
            const int64_t plane = (int64_t)c * n + i;
            const T *src = s + plane * in_len;
            const ncnn_index *am = argmax + plane * out_len;
            T *dst = z + plane * out_len;
            for (int o = 0; o < out_len; ++o)
                dst[o] = src[am[o]];
        }
    }
}

/*
 * P_pool^T with the ReLU mask: ds = 0, then ds[argmax] = dz where z > 0.
 * z == NULL means no mask.
 */
void NCNN_FN(ncnn_pool_scatter)(const T *dz, const T *z, T *ds,
                                const ncnn_index *argmax, int C, int n, int i0,
                                int i1, int in_len, int out_len)
{
    for (int c = 0; c < C; ++c) {
        for (int i = i0; i < i1; ++i) {
            const int64_t plane = (int64_t)c * n + i;
            T *dst = ds + plane * in_len;
            const T *src = dz + plane * out_len;
            const ncnn_index *am = argmax + plane * out_len;
            memset(dst, 0, sizeof(T) * (size_t)in_len);
            if (z) {
                const T *zp = z + plane * out_len;
                for (int o = 0; o < out_len; ++o)
                    dst[am[o]] = zp[o] > 0 ? src[o] : 0;
            } else {
                for (int o = 0; o < out_len; ++o)
                    dst[am[o]] = src[o];
            }
        }
    }
}

void NCNN_FN(ncnn_relu)(T *x, int64_t len)
{
    for (int64_t j = 0; j < len; ++j)
        x[j] = x[j] > 0 ? x[j] : 0;
}

/* d = d * [z > 0]: the ReLU derivative read off the activation z = relu(s). */
void NCNN_FN(ncnn_mask_positive)(T *d, const T *z, int64_t len)
{
    for (int64_t j = 0; j < len; ++j)
        d[j] = z[j] > 0 ? d[j] : 0;
}

/* S[r, :] = b[r]: the bias, written before a GEMM that accumulates into S. */
void NCNN_FN(ncnn_fill_rows)(T *S, const T *b, int rows, int64_t cols)
{
    for (int r = 0; r < rows; ++r) {
        T *row = S + (int64_t)r * cols;
        const T v = b[r];
        for (int64_t j = 0; j < cols; ++j)
            row[j] = v;
    }
}

/*
 * Stored-Jacobian product for one conv layer:
 *   out[i, k] += sum_{c, o} J[i, k, c, o] * R[plane (c, i)][argmax[plane (c, i)][o]]
 * J holds dz_k / dS at each pool window's argmax (compact, pooled size Po);
 * R is the layer's (C, n, P) pre-pool direction V phi + v_b.
 */
void NCNN_FN(ncnn_jac_jvp)(const T *J, const T *R, const ncnn_index *argmax,
                           T *out, int K, int C, int n, int i0, int i1, int P,
                           int Po)
{
    const int64_t block = (int64_t)C * Po;
    for (int i = i0; i < i1; ++i) {
        for (int k = 0; k < K; ++k) {
            const T *Jik = J + ((int64_t)i * K + k) * block;
            double acc = 0;
            for (int c = 0; c < C; ++c) {
                const int64_t plane = (int64_t)c * n + i;
                const T *r = R + plane * P;
                const ncnn_index *am = argmax + plane * Po;
                const T *j = Jik + (int64_t)c * Po;
                T part = 0;
                for (int o = 0; o < Po; ++o)
                    part += j[o] * r[am[o]];
                acc += part;
            }
            out[(int64_t)i * K + k] += (T)acc;
        }
    }
}

/*
 * Its adjoint: dS = 0, then dS[plane (c, i)][argmax[..][o]] = sum_k U[i, k] J[i, k, c, o].
 */
void NCNN_FN(ncnn_jac_vjp)(const T *J, const T *U, const ncnn_index *argmax,
                           T *dS, int K, int C, int n, int i0, int i1, int P,
                           int Po)
{
    const int64_t block = (int64_t)C * Po;
    for (int i = i0; i < i1; ++i) {
        for (int c = 0; c < C; ++c)
            memset(dS + ((int64_t)c * n + i) * P, 0, sizeof(T) * (size_t)P);
        for (int k = 0; k < K; ++k) {
            const T u = U[(int64_t)i * K + k];
            const T *Jik = J + ((int64_t)i * K + k) * block;
            for (int c = 0; c < C; ++c) {
                const int64_t plane = (int64_t)c * n + i;
                T *d = dS + plane * P;
                const ncnn_index *am = argmax + plane * Po;
                const T *j = Jik + (int64_t)c * Po;
                for (int o = 0; o < Po; ++o)
                    d[am[o]] += u * j[o];
            }
        }
    }
}

#undef NCNN_FN
#undef NCNN_CAT
#undef NCNN_CAT2
