# The C API of src_c/kernels.h (one instance per call; see that header for layouts).
from libc.stdint cimport int32_t, int64_t

cdef extern from "kernels.h" nogil:
    ctypedef int32_t ncnn_index

    void ncnn_im2col_index(ncnn_index *idx, int kh, int kw, int stride, int padded_w,
                           int out_h, int out_w)

    # the switch of the SIMD (AVX-512 or AVX2) float32 2x2 pool; returns whether it was on
    int ncnn_set_simd(int on)

    void ncnn_pad_f32(const float *x, int64_t xs, float *xp, int64_t xps, int C, int H, int W, int pad)
    void ncnn_pad_f64(const double *x, int64_t xs, double *xp, int64_t xps, int C, int H, int W, int pad)
    void ncnn_crop_f32(const float *xp, int64_t xps, float *x, int64_t xs, int C, int H, int W, int pad)
    void ncnn_crop_f64(const double *xp, int64_t xps, double *x, int64_t xs, int C, int H, int W, int pad)
    void ncnn_im2col_f32(const float *xp, int64_t xps, float *phi, int64_t phis, int C, int taps, int P,
                         const ncnn_index *idx)
    void ncnn_im2col_f64(const double *xp, int64_t xps, double *phi, int64_t phis, int C, int taps, int P,
                         const ncnn_index *idx)
    void ncnn_im2col_s1_f32(const float *xp, int64_t xps, float *phi, int64_t phis, int C, int kh, int kw,
                            int padded_w, int out_h, int out_w)
    void ncnn_im2col_s1_f64(const double *xp, int64_t xps, double *phi, int64_t phis, int C, int kh, int kw,
                            int padded_w, int out_h, int out_w)
    void ncnn_col2im_s1_f32(const float *phi, int64_t phis, float *xp, int64_t xps, int C, int kh, int kw,
                            int padded_h, int padded_w, int out_h, int out_w)
    void ncnn_col2im_s1_f64(const double *phi, int64_t phis, double *xp, int64_t xps, int C, int kh, int kw,
                            int padded_h, int padded_w, int out_h, int out_w)
    void ncnn_im2col_same_f32(const float *x, int64_t xs, float *phi, int64_t phis, int C, int H, int W, int pad)
    void ncnn_im2col_same_f64(const double *x, int64_t xs, double *phi, int64_t phis, int C, int H, int W, int pad)
    void ncnn_col2im_same_f32(float *phi, int64_t phis, float *x, int64_t xs, int C, int H, int W, int pad)
    void ncnn_col2im_same_f64(double *phi, int64_t phis, double *x, int64_t xs, int C, int H, int W, int pad)
    void ncnn_col2im_f32(const float *phi, int64_t phis, float *xp, int64_t xps, int C, int plane_len,
                         int taps, int P, const ncnn_index *idx)
    void ncnn_col2im_f64(const double *phi, int64_t phis, double *xp, int64_t xps, int C, int plane_len,
                         int taps, int P, const ncnn_index *idx)
    void ncnn_maxpool_f32(const float *s, int64_t ss, float *z, ncnn_index *am, int64_t zs, int C,
                          int H, int W, int k, int relu)
    void ncnn_maxpool_f64(const double *s, int64_t ss, double *z, ncnn_index *am, int64_t zs, int C,
                          int H, int W, int k, int relu)
    void ncnn_pool_gather_f32(const float *s, int64_t ss, const ncnn_index *am, const float *mask,
                              float *z, int64_t zs, int C, int out_len)
    void ncnn_pool_gather_f64(const double *s, int64_t ss, const ncnn_index *am, const double *mask,
                              double *z, int64_t zs, int C, int out_len)
    void ncnn_pool_scatter_f32(const float *dz, const float *mask, const ncnn_index *am, int64_t zs,
                               float *ds, int64_t dss, int C, int in_len, int out_len)
    void ncnn_pool_scatter_f64(const double *dz, const double *mask, const ncnn_index *am, int64_t zs,
                               double *ds, int64_t dss, int C, int in_len, int out_len)
    void ncnn_relu_f32(float *x, int64_t len)
    void ncnn_relu_f64(double *x, int64_t len)
    void ncnn_mask_positive_f32(float *d, const float *z, int64_t len)
    void ncnn_mask_positive_f64(double *d, const double *z, int64_t len)
    void ncnn_fill_rows_f32(float *S, int64_t row_stride, const float *b, int rows, int64_t cols)
    void ncnn_fill_rows_f64(double *S, int64_t row_stride, const double *b, int rows, int64_t cols)
    void ncnn_jac_jvp_f32(const float *J, const float *R, int64_t rs, const ncnn_index *am, int64_t ams,
                          float *out, float *scratch, int K, int C, int Po)
    void ncnn_jac_jvp_f64(const double *J, const double *R, int64_t rs, const ncnn_index *am, int64_t ams,
                          double *out, double *scratch, int K, int C, int Po)
    void ncnn_jac_contract_f32(const float *J, const float *g, float *out, int K, int64_t len)
    void ncnn_jac_combine_f32(const float *J, const float *u, float *out, int K, int64_t len)
    void ncnn_jac_vjp_f32(const float *J, const float *u, const ncnn_index *am, int64_t ams,
                          float *dS, int64_t dss, float *scratch, int K, int C, int P, int Po)
    void ncnn_jac_vjp_f64(const double *J, const double *u, const ncnn_index *am, int64_t ams,
                          double *dS, int64_t dss, double *scratch, int K, int C, int P, int Po)
    int ncnn_conv_pool2_avx2_on()
    void ncnn_conv_pool2_avx2_f32(const float *xp, int64_t xcs, int C, int Wp, int k,
                                  const float *wt, int out_c, float *z, ncnn_index *am,
                                  int64_t zs, int out_h, int out_w, int relu)
    int64_t ncnn_wino_scratch(int C2, int out_c, int Hp, int Wp)
    void ncnn_wino_weights_f32(const float *wt, const float *wt2, int C, int out_c, float *U)
    void ncnn_conv_pool2_wino_f32(const float *x, const float *x2, int64_t xs, int C, int H,
                                  int W_in, int pad, int Wp, const float *U, const float *bias,
                                  int out_c, float *z, ncnn_index *am, const float *mask, int64_t zs,
                                  int out_h, int out_w, int relu, int gather, float *scratch)
    int ncnn_conv_window_lanes(int on)
    int ncnn_conv_window_lanes_apply(int C, int k, int out_h, int out_w, int two_inputs)
    void ncnn_conv_gather2_avx2_f32(const float *xp, const float *xp2, int64_t xcs, int C,
                                    int Wp, int k, const float *wt, const float *wt2, int out_c,
                                    const ncnn_index *am, const float *mask, float *z,
                                    int64_t zs, int out_h, int out_w)
    int64_t ncnn_conv_sparse_scratch(int P, int out_c, int Po, int Hp, int Wp, int C)
    int ncnn_pool2_argmax_in_windows(const ncnn_index *am, int64_t planes, int out_h, int out_w)
    void ncnn_conv_delta_avx2_f32(const float *dz, const float *mask, const ncnn_index *am,
                                  int64_t zs, int out_c, int Po, int conv_h, int conv_w,
                                  const float *wk, int C, int k, float *scratch, float *dx,
                                  int64_t xs, int H, int W, int pad)
    void ncnn_conv_wgrad_avx2_f32(const float *dz, const float *mask, const ncnn_index *am,
                                  int64_t zs, int out_c, int Po, int conv_w, const float *x,
                                  int64_t xs, int C, int H, int W, int pad, int k, int Hp, int Wp,
                                  float *scratch, float *gk, float *gb)
    int64_t ncnn_conv_seeds_scratch(int P, int out_c, int Po, int K)
    void ncnn_conv_delta_seeds_avx2_f32(const float *dz, int64_t dks, int K, const ncnn_index *am,
                                        int64_t zs, int out_c, int Po, int conv_h, int conv_w,
                                        const float *wk, int C, int k, float *scratch, float *dx,
                                        int64_t xks, int64_t xs, int H, int W, int pad,
                                        const float *xmask)


# float32 GEMM for conv shapes (src_c/sgemm.h); AVX-512 or AVX2, used only when available.
cdef extern from "sgemm.h" nogil:
    int ncnn_sgemm_available()
    int ncnn_sgemm_avx512()
    int64_t ncnn_sgemm_scratch_size(int N)
    void ncnn_sgemm_nn(int M, int N, int K, const float *A, int64_t lda, int trans_a,
                       const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
    void ncnn_sgemm_nt(int M, int N, int K, const float *A, int64_t lda, const float *Bt,
                       int64_t ldbt, float beta, float *C, int64_t ldc, float *scratch)
