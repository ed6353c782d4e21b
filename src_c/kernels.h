/*
 * newtoncnn C kernels: index arithmetic and memory moves only.
 *
 * Every kernel works on ONE instance. A feature map of an instance is given
 * by a pointer to its channel-0 plane and the channel stride (in elements);
 * pixels of a plane are contiguous. So the same kernel reads NCHW arrays
 * (channel stride = plane size), CNHW arrays (channel stride = n * plane size)
 * and tile buffers alike. An im2col matrix phi has one row per
 * (channel, kernel row, kernel column), P = out_h * out_w contiguous columns
 * for this instance, and rows phi_stride apart.
 *
 * No kernel allocates or checks sizes: the caller owns every buffer and the
 * Cython layer validates every size before calling.
 */
#ifndef NEWTONCNN_KERNELS_H
#define NEWTONCNN_KERNELS_H

#include <stdint.h>

typedef int32_t ncnn_index;

/* idx[r * P + j] = offset in the padded plane read by kernel tap r for output pixel j */
void ncnn_im2col_index(ncnn_index *idx, int kh, int kw, int stride, int padded_w,
                       int out_h, int out_w);

#define NCNN_DECLARE(T, SUF)                                                          \
    void ncnn_pad_##SUF(const T *x, int64_t xs, T *xp, int64_t xps, int C, int H,     \
                        int W, int pad);                                              \
    void ncnn_crop_##SUF(const T *xp, int64_t xps, T *x, int64_t xs, int C, int H,    \
                         int W, int pad);                                             \
    void ncnn_im2col_##SUF(const T *xp, int64_t xps, T *phi, int64_t phis, int C,     \
                           int taps, int P, const ncnn_index *idx);                   \
    void ncnn_im2col_s1_##SUF(const T *xp, int64_t xps, T *phi, int64_t phis, int C,  \
                              int kh, int kw, int padded_w, int out_h, int out_w);    \
    void ncnn_col2im_s1_##SUF(const T *phi, int64_t phis, T *xp, int64_t xps, int C,  \
                              int kh, int kw, int padded_h, int padded_w, int out_h,  \
                              int out_w);                                             \
    void ncnn_im2col_same_##SUF(const T *x, int64_t xs, T *phi, int64_t phis, int C,  \
                                int H, int W, int pad);                               \
    void ncnn_col2im_same_##SUF(T *phi, int64_t phis, T *x, int64_t xs, int C, int H, \
                                int W, int pad);                                      \
    void ncnn_col2im_##SUF(const T *phi, int64_t phis, T *xp, int64_t xps, int C,     \
                           int plane_len, int taps, int P, const ncnn_index *idx);    \
    void ncnn_maxpool_##SUF(const T *s, int64_t ss, T *z, ncnn_index *am, int64_t zs, \
                            int C, int H, int W, int k, int relu);                    \
    void ncnn_pool_gather_##SUF(const T *s, int64_t ss, const ncnn_index *am,         \
                                const T *mask, T *z, int64_t zs, int C, int out_len); \
    void ncnn_pool_scatter_##SUF(const T *dz, const T *mask, const ncnn_index *am,    \
                                 int64_t zs, T *ds, int64_t dss, int C, int in_len,   \
                                 int out_len);                                        \
    void ncnn_relu_##SUF(T *x, int64_t len);                                          \
    void ncnn_mask_positive_##SUF(T *d, const T *z, int64_t len);                     \
    void ncnn_fill_rows_##SUF(T *S, int64_t row_stride, const T *b, int rows,         \
                              int64_t cols);                                          \
    void ncnn_jac_jvp_##SUF(const T *J, const T *R, int64_t rs, const ncnn_index *am, \
                            int64_t ams, T *out, T *scratch, int K, int C, int Po);   \
    void ncnn_jac_contract_##SUF(const T *J, const T *g, T *out, int K, int64_t len);  \
    void ncnn_jac_combine_##SUF(const T *J, const T *u, T *out, int K, int64_t len);   \
    void ncnn_jac_vjp_##SUF(const T *J, const T *u, const ncnn_index *am, int64_t ams,\
                            T *dS, int64_t dss, T *scratch, int K, int C, int P,      \
                            int Po);

/* Switch the SIMD float32 pool below (AVX-512 or AVX2, whichever the CPU has) on or off;
 * returns whether one was on. It gives the scalar path's results bit for bit. */
int ncnn_set_simd(int on);

/* 2x2 max pool of one float32 H x W plane as ncnn_maxpool does it, with AVX-512
 * (src_c/pool_avx512.c) or AVX2 (src_c/pool_avx2.c); each returns 0 without doing
 * anything when the CPU lacks its instructions or ncnn_set_simd(0) switched it off. */
int ncnn_maxpool2_avx512_f32(const float *src, float *dst, ncnn_index *a, int H, int W, int relu);
int ncnn_maxpool2_avx2_f32(const float *src, float *dst, ncnn_index *a, int H, int W, int relu);

/* Stride-1 conv + ReLU + 2x2 max pool of one float32 instance with AVX2 + FMA, S never
 * stored (src_c/conv_avx2.c). xp: C padded planes xcs apart, Wp wide; wt: [W | b]
 * transposed, (C k k + 1) rows of out_c (a multiple of 8); the conv plane is
 * 2 out_h x 2 out_w; z, am: out_c planes of out_h x out_w, zs apart. Call them only when
 * ncnn_conv_pool2_avx2_on() says the CPU has AVX2 + FMA.
 * ncnn_conv_pool2: z and am as ncnn_maxpool(k = 2, relu) computes them from S.
 * ncnn_conv_gather2: z = S[am] (times [mask > 0] when mask is given) as ncnn_pool_gather
 * does it, for S = [W | b][φ(xp); 1ᵀ] + [W2 | 0][φ(xp2); 0] (xp2 may be NULL); every am
 * must be one of its window's 4 offsets. */
int ncnn_conv_pool2_avx2_on(void);
void ncnn_conv_pool2_avx2_f32(const float *xp, int64_t xcs, int C, int Wp, int k,
                              const float *wt, int out_c, float *z, ncnn_index *am,
                              int64_t zs, int out_h, int out_w, int relu);
/* Winograd F(2x2, 3x3) for 3x3 stride-1 layers (one tile per pool window), out_c a multiple
 * of 8 and C too: ncnn_wino_weights turns the tap rows wt (and wt2: the R-operator's W over R{X}) into
 * U (16 x C2 x out_c floats, C2 = C or 2 C); ncnn_conv_pool2_wino then does from the unpadded
 * planes x (and x2; C of them, xs apart, H x W_in) what ncnn_conv_pool2 (gather = 0, with ReLU when relu) or ncnn_conv_gather2 (gather = 1) does,
 * bias added after the transforms; scratch holds ncnn_wino_scratch(C2, out_c) floats. */
int64_t ncnn_wino_scratch(int C2, int out_c, int Hp, int Wp);
void ncnn_wino_weights_f32(const float *wt, const float *wt2, int C, int out_c, float *U);
void ncnn_conv_pool2_wino_f32(const float *x, const float *x2, int64_t xs, int C, int H,
                              int W_in, int pad, int Wp, const float *U, const float *bias,
                              int out_c, float *z, ncnn_index *am, const float *mask, int64_t zs,
                              int out_h, int out_w, int relu, int gather, float *scratch);
/* Whether layers with few taps and rows of 8 or more pool windows take the kernels whose
 * lanes are 8 windows of one channel (the same results bit for bit; on by default); on < 0
 * only asks. Returns the previous setting. For tests and A/B timing. */
int ncnn_conv_window_lanes(int on);
/* Whether a layer of these sizes (one input, or two for the R-operator) takes them now. */
int ncnn_conv_window_lanes_apply(int C, int k, int out_h, int out_w, int two_inputs);
void ncnn_conv_gather2_avx2_f32(const float *xp, const float *xp2, int64_t xcs, int C,
                                int Wp, int k, const float *wt, const float *wt2, int out_c,
                                const ncnn_index *am, const float *mask, float *z,
                                int64_t zs, int out_h, int out_w);
/* The backward pass of such a layer from its pooled deltas dz, visiting only the entries
 * of the sparse ∂S^m (dS zero but dS[c][am[c][o]] = dz[c][o] where mask[c][o] > 0, all when
 * mask is NULL, and dz != 0): C a multiple of 8, stride 1, a conv plane conv_h x conv_w;
 * scratch holds ncnn_conv_sparse_scratch(...) floats.
 * ncnn_conv_delta: dx (C planes H x W, xs apart) = crop(P_φᵀ(Wᵀ dS)), wk is W laid out
 * (out_c, k, k, C).
 * ncnn_conv_wgrad: gk (out_c rows laid out (k, k, C)) += dS φᵀ and gb[c] += Σ_o dS[c][o],
 * x the instance's input (C planes H x W, xs apart). */
int64_t ncnn_conv_sparse_scratch(int P, int out_c, int Po, int Hp, int Wp, int C);
/* Whether every argmax offset of `planes` planes of out_h x out_w is one of its 2x2
 * window's four in the conv plane 2 out_w wide (as a pool makes them): the fused and sparse
 * kernels' precondition. */
int ncnn_pool2_argmax_in_windows(const ncnn_index *am, int64_t planes, int out_h, int out_w);
void ncnn_conv_delta_avx2_f32(const float *dz, const float *mask, const ncnn_index *am,
                              int64_t zs, int out_c, int Po, int conv_h, int conv_w,
                              const float *wk, int C, int k, float *scratch, float *dx,
                              int64_t xs, int H, int W, int pad);
void ncnn_conv_wgrad_avx2_f32(const float *dz, const float *mask, const ncnn_index *am,
                              int64_t zs, int out_c, int Po, int conv_w, const float *x,
                              int64_t xs, int C, int H, int W, int pad, int k, int Hp, int Wp,
                              float *scratch, float *gk, float *gb);
/* The input deltas of K output seeds at once (the Jacobian build): dz[s] (seed s at
 * dz + s dks, laid out as above, no mask: the entries are where some seed's dz != 0) to
 * dx[s] (at dx + s xks) as ncnn_conv_delta computes each, then zeroed where xmask (C planes
 * xs apart, when given) is not > 0. scratch holds ncnn_conv_seeds_scratch(...) floats. */
int64_t ncnn_conv_seeds_scratch(int P, int out_c, int Po, int K);
void ncnn_conv_delta_seeds_avx2_f32(const float *dz, int64_t dks, int K, const ncnn_index *am,
                                    int64_t zs, int out_c, int Po, int conv_h, int conv_w,
                                    const float *wk, int C, int k, float *scratch, float *dx,
                                    int64_t xks, int64_t xs, int H, int W, int pad,
                                    const float *xmask);

NCNN_DECLARE(float, f32)
NCNN_DECLARE(double, f64)

#undef NCNN_DECLARE

#endif
