# The C API of src_c/kernels.h, for the Cython modules that wrap it.
from libc.stdint cimport int32_t, int64_t

cdef extern from "kernels.h" nogil:
    ctypedef int32_t ncnn_index

    void ncnn_im2col_index(ncnn_index *idx, int kh, int kw, int stride, int padded_w,
                           int out_h, int out_w)

    void ncnn_pad_f32(const float *x, float *xp, int C, int n, int i0, int i1, int H, int W, int pad)
    void ncnn_pad_f64(const double *x, double *xp, int C, int n, int i0, int i1, int H, int W, int pad)
    void ncnn_crop_f32(const float *xp, float *x, int C, int n, int i0, int i1, int H, int W, int pad)
    void ncnn_crop_f64(const double *xp, double *x, int C, int n, int i0, int i1, int H, int W, int pad)
    void ncnn_im2col_f32(const float *xp, float *phi, int C, int n, int i0, int i1,
                         int plane_len, int taps, int P, const ncnn_index *idx)
    void ncnn_im2col_f64(const double *xp, double *phi, int C, int n, int i0, int i1,
                         int plane_len, int taps, int P, const ncnn_index *idx)
    void ncnn_col2im_f32(const float *phi, float *xp, int C, int n, int i0, int i1,
                         int plane_len, int taps, int P, const ncnn_index *idx)
    void ncnn_col2im_f64(const double *phi, double *xp, int C, int n, int i0, int i1,
                         int plane_len, int taps, int P, const ncnn_index *idx)
    void ncnn_maxpool_f32(const float *s, float *z, ncnn_index *argmax, int C, int n,
                          int i0, int i1, int H, int W, int k, int relu)
    void ncnn_maxpool_f64(const double *s, double *z, ncnn_index *argmax, int C, int n,
                          int i0, int i1, int H, int W, int k, int relu)
    void ncnn_pool_gather_f32(const float *s, float *z, const ncnn_index *argmax, int C,
                              int n, int i0, int i1, int in_len, int out_len)
    void ncnn_pool_gather_f64(const double *s, double *z, const ncnn_index *argmax, int C,
                              int n, int i0, int i1, int in_len, int out_len)
    void ncnn_pool_scatter_f32(const float *dz, const float *z, float *ds,
                               const ncnn_index *argmax, int C, int n, int i0, int i1,
                               int in_len, int out_len)
    void ncnn_pool_scatter_f64(const double *dz, const double *z, double *ds,
                               const ncnn_index *argmax, int C, int n, int i0, int i1,
                               int in_len, int out_len)
    void ncnn_relu_f32(float *x, int64_t len)
    void ncnn_relu_f64(double *x, int64_t len)
    void ncnn_mask_positive_f32(float *d, const float *z, int64_t len)
    void ncnn_mask_positive_f64(double *d, const double *z, int64_t len)
    void ncnn_fill_rows_f32(float *S, const float *b, int rows, int64_t cols)
    void ncnn_fill_rows_f64(double *S, const double *b, int rows, int64_t cols)
    void ncnn_jac_jvp_f32(const float *J, const float *R, const ncnn_index *argmax,
                          float *out, int K, int C, int n, int i0, int i1, int P, int Po)
    void ncnn_jac_jvp_f64(const double *J, const double *R, const ncnn_index *argmax,
                          double *out, int K, int C, int n, int i0, int i1, int P, int Po)
    void ncnn_jac_vjp_f32(const float *J, const float *U, const ncnn_index *argmax,
                          float *dS, int K, int C, int n, int i0, int i1, int P, int Po)
    void ncnn_jac_vjp_f64(const double *J, const double *U, const ncnn_index *argmax,
                          double *dS, int K, int C, int n, int i0, int i1, int P, int Po)
