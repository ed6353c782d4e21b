/*
 * newtoncnn C kernels: index arithmetic and memory moves only.
 *
 * Layout conventions (see newtoncnn/_kernels.pyx):
 *   - feature maps are stored channel-major over the batch, "CNHW":
 *     plane (c, i) of an array with n instances starts at ((c * n) + i) * plane_len;
 *   - an im2col matrix phi has one row per (channel, kernel row, kernel column)
 *     and one column per (instance, output pixel): phi[r, i * P + j];
 *   - every kernel works on the instance range [i0, i1) so that callers can
 *     split a batch over threads; ranges of different calls never overlap.
 * No kernel allocates or checks shapes: the caller owns every buffer and the
 * Cython layer validates every size before calling.
 */
#ifndef NEWTONCNN_KERNELS_H
#define NEWTONCNN_KERNELS_H

#include <stdint.h>

typedef int32_t ncnn_index;

/* idx[r * P + j] = offset in the padded plane read by kernel tap r for output pixel j */
void ncnn_im2col_index(ncnn_index *idx, int kh, int kw, int stride, int padded_w,
                       int out_h, int out_w);

#define NCNN_DECLARE(T, SUF)                                                        \
    void ncnn_pad_##SUF(const T *x, T *xp, int C, int n, int i0, int i1, int H,     \
                        int W, int pad);                                            \
    void ncnn_crop_##SUF(const T *xp, T *x, int C, int n, int i0, int i1, int H,    \
                         int W, int pad);                                           \
    void ncnn_im2col_##SUF(const T *xp, T *phi, int C, int n, int i0, int i1,       \
                           int plane_len, int taps, int P, const ncnn_index *idx);  \
    void ncnn_col2im_##SUF(const T *phi, T *xp, int C, int n, int i0, int i1,       \
                           int plane_len, int taps, int P, const ncnn_index *idx);  \
    void ncnn_maxpool_##SUF(const T *s, T *z, ncnn_index *argmax, int C, int n,     \
                            int i0, int i1, int H, int W, int k, int relu);         \
    void ncnn_pool_gather_##SUF(const T *s, T *z, const ncnn_index *argmax, int C,  \
                                int n, int i0, int i1, int in_len, int out_len);    \
    void ncnn_pool_scatter_##SUF(const T *dz, const T *z, T *ds,                    \
                                 const ncnn_index *argmax, int C, int n, int i0,    \
                                 int i1, int in_len, int out_len);                  \
    void ncnn_relu_##SUF(T *x, int64_t len);                                        \
    void ncnn_mask_positive_##SUF(T *d, const T *z, int64_t len);                   \
    void ncnn_fill_rows_##SUF(T *S, const T *b, int rows, int64_t cols);            \
    void ncnn_jac_jvp_##SUF(const T *J, const T *R, const ncnn_index *argmax,       \
                            T *out, int K, int C, int n, int i0, int i1, int P,     \
                            int Po);                                                \
    void ncnn_jac_vjp_##SUF(const T *J, const T *U, const ncnn_index *argmax,       \
                            T *dS, int K, int C, int n, int i0, int i1, int P,      \
                            int Po);

NCNN_DECLARE(float, f32)
NCNN_DECLARE(double, f64)

#undef NCNN_DECLARE

#endif
