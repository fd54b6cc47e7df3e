/*
 * Native kernels for the tfjs wasm backend (see src/kernels/native.ts): they read and write the
 * backend's tensors in place, through Float32Array views of the wasm heap, with OpenBLAS's sgemm
 * and OpenMP loops built for this machine's vector units. All arrays are row-major float32.
 *
 *   gemm(transA, transB, batch, m, n, k, a, strideA, b, strideB, c)   c[i] = op(a[i]) op(b[i])
 *   conv2d(x, w, y, dims[15])      NHWC convolution, w [kh, kw, cin, cout] (im2col + sgemm)
 *   conv2dFilterGrad(x, dy, dw, dims[15])   its filter gradient (same dims)
 *   depthwise(x, w, y, dims[14])   NHWC depthwise convolution, w [kh, kw, c, 1]
 *   unary(op, x, y)                op 0: exp, 1: erf
 *   layerNorm(x, w, b, y, mean, rstd, eps) / layerNormGrad(dy, x, mean, rstd, w, dx, dw, db)
 *   batchNorm(x, w, b, y, mean, var, rstd, eps) / batchNormGrad(dy, x, mean, rstd, w, dx, dw, db)
 *   gelu(x, y, cdf) / geluGrad(dy, x, cdf, dx)
 *   adamw(p, m, v, g, out, consts[9])    the update of src/engine/adamw.ts, every step rounded to float32
 *   channelSum(x, out) / channelDot(a, b, out)   out[c] = Σ_rows x[r, c] / Σ_rows a[r, c] b[r, c]
 *   channelOp(op, x, v, out)       out[r, c] = x[r, c] + v[c] (op 0) or x[r, c] * v[c] (op 1)
 *   labelLogSoftmax(x, labels, logp, probs, ignore) / labelLogSoftmaxGrad(dy, probs, labels, dx, ignore)
 *                                  per row: log softmax(x)[label] and the softmax; the gradient
 *                                  (0 on rows labelled `ignore`)
 *   copyRows(src, dst, rows, width, srcStride, srcOffset, dstStride, dstOffset)   strided row copies
 *   setThreads(n)                 OpenMP threads (OpenBLAS itself stays single-threaded)
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>
#include <cblas.h>
#include <node_api.h>
#include <immintrin.h>

/* ---- vectorised exp/erf: glibc's libmvec (>= 2.35) at the widest width the build targets. Every
 * element goes through the vector routine (the tail is padded), so a value's result does not depend
 * on its position, and the Erf kernel and the fused GELU agree. */
#if defined(__AVX512F__)
#define VW 16
typedef __m512 vfloat;
extern __m512 _ZGVeN16v_expf(__m512);
extern __m512 _ZGVeN16v_erff(__m512);
#define VLOAD _mm512_loadu_ps
#define VSTORE _mm512_storeu_ps
#define VEXP _ZGVeN16v_expf
#define VERF _ZGVeN16v_erff
#elif defined(__AVX2__)
#define VW 8
typedef __m256 vfloat;
extern __m256 _ZGVdN8v_expf(__m256);
extern __m256 _ZGVdN8v_erff(__m256);
#define VLOAD _mm256_loadu_ps
#define VSTORE _mm256_storeu_ps
#define VEXP _ZGVdN8v_expf
#define VERF _ZGVdN8v_erff
#endif

/* out[i] = f(in[i]) for op 0 = exp, 1 = erf; in and out may be the same array. */
static void vmath(int op, const float *in, float *out, long n) {
#ifdef VW
  long i = 0;
  for (; i + VW <= n; i += VW) VSTORE(out + i, op == 0 ? VEXP(VLOAD(in + i)) : VERF(VLOAD(in + i)));
  if (i < n) {
    float buf[VW] = {0};
    memcpy(buf, in + i, sizeof(float) * (n - i));
    VSTORE(buf, op == 0 ? VEXP(VLOAD(buf)) : VERF(VLOAD(buf)));
    memcpy(out + i, buf, sizeof(float) * (n - i));
  }
#else
  for (long i = 0; i < n; i++) out[i] = op == 0 ? expf(in[i]) : erff(in[i]);
#endif
}

/* Element blocks for the OpenMP loops of the element-wise kernels (one L1-sized stretch each). */
#define BLOCK 2048L

#define CHECK(call) do { if ((call) != napi_ok) { napi_throw_error(env, NULL, "c2f_native: bad arguments to " #call); return NULL; } } while (0)

static float *f32(napi_env env, napi_value v, size_t *len) {
  napi_typedarray_type type;
  size_t length;
  void *data;
  if (napi_get_typedarray_info(env, v, &type, &length, &data, NULL, NULL) != napi_ok || type != napi_float32_array) return NULL;
  if (len) *len = length;
  return (float *)data;
}

static int i32(napi_env env, napi_value v) {
  int32_t r = 0;
  napi_get_value_int32(env, v, &r);
  return r;
}

static napi_value get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) {
    napi_throw_error(env, NULL, "c2f_native: too few arguments");
    return NULL;
  }
  return argv[0];
}

/* Parallel regions only for work worth waking the threads for: a region costs tens of µs (idle
 * threads sleep rather than spin, see native.ts), as much as ~2M multiply-adds or ~200k element
 * updates on one thread. */
#define PARALLEL_MIN_MACS 4000000L
#define PARALLEL_MIN_ELEMS 262144L

static napi_value gemm(napi_env env, napi_callback_info info) {
  napi_value argv[11];
  if (!get_args(env, info, 11, argv)) return NULL;
  bool ta, tb;
  CHECK(napi_get_value_bool(env, argv[0], &ta));
  CHECK(napi_get_value_bool(env, argv[1], &tb));
  const int batch = i32(env, argv[2]), m = i32(env, argv[3]), n = i32(env, argv[4]), k = i32(env, argv[5]);
  const long sa = i32(env, argv[7]), sb = i32(env, argv[9]);
  float *a = f32(env, argv[6], NULL), *b = f32(env, argv[8], NULL), *c = f32(env, argv[10], NULL);
  if (!a || !b || !c) { napi_throw_error(env, NULL, "c2f_native.gemm: expected Float32Arrays"); return NULL; }
  /* OpenBLAS runs single-threaded (its own pool spins between calls and starves the wasm
   * backend's threads); the rows of each product are split over OpenMP threads instead. */
  const int threads = omp_get_max_threads();
  const long macs = (long)batch * m * n * k;
  const int parts = macs >= PARALLEL_MIN_MACS && m >= 2 * threads ? threads : 1;
  const int rows = (m + parts - 1) / parts;
#pragma omp parallel for collapse(2) schedule(static) if (parts > 1)
  for (int i = 0; i < batch; i++) {
    for (int p = 0; p < parts; p++) {
      const int r0 = p * rows, nr = m - r0 < rows ? m - r0 : rows;
      if (nr <= 0) continue;
      const float *ai = a + i * sa + (ta ? r0 : (long)r0 * k);
      cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, nr, n, k, 1.0f,
                  ai, ta ? m : k, b + i * sb, tb ? k : n, 0.0f, c + ((long)i * m + r0) * n, n);
    }
  }
  return NULL;
}

/* The (x, w, y, dims) arguments of the convolutions; false (an exception pending) if malformed. */
static bool conv_args(napi_env env, napi_callback_info info, const char *name, size_t ndims,
                      float **x, float **w, float **y, int32_t **d) {
  napi_value argv[4];
  if (!get_args(env, info, 4, argv)) return false;
  *x = f32(env, argv[0], NULL), *w = f32(env, argv[1], NULL), *y = f32(env, argv[2], NULL);
  size_t dl = 0;
  napi_typedarray_type type;
  if (!*x || !*w || !*y || napi_get_typedarray_info(env, argv[3], &type, &dl, (void **)d, NULL, NULL) != napi_ok ||
      type != napi_int32_array || dl < ndims) {
    napi_throw_error(env, NULL, name);
    return false;
  }
  return true;
}

/* The geometry of a dense convolution (conv2d's dims). */
typedef struct { int n, h, w, cin, kh, kw, cout, sh, sw, pt, pl, dh, dw, ho, wo; } ConvDims;

static ConvDims conv_dims(const int32_t *d) {
  ConvDims c = {d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8], d[9], d[10], d[11], d[12], d[13], d[14]};
  return c;
}

/* Output rows, patch width K = kh·kw·cin, threads worth waking and rows per ~4 MB chunk of patches. */
typedef struct { long rows, K, chunk; int threads; } ConvPlan;

static ConvPlan conv_plan(const ConvDims *c) {
  ConvPlan p;
  p.rows = (long)c->n * c->ho * c->wo;
  p.K = (long)c->kh * c->kw * c->cin;
  p.threads = p.rows * p.K * c->cout >= PARALLEL_MIN_MACS ? omp_get_max_threads() : 1;
  p.chunk = (4L << 20) / (4 * p.K);
  if (p.chunk < 16) p.chunk = 16;
  return p;
}

/* The patch of output row g (image, oy, ox) into dst: kh·kw·cin values, zero outside x (im2col). */
static void im2col_row(const float *x, const ConvDims *c, long g, float *dst) {
  const int ox = (int)(g % c->wo), oy = (int)((g / c->wo) % c->ho), bi = (int)(g / ((long)c->wo * c->ho));
  for (int ky = 0; ky < c->kh; ky++) {
    const int iy = oy * c->sh - c->pt + ky * c->dh;
    for (int kx = 0; kx < c->kw; kx++, dst += c->cin) {
      const int ix = ox * c->sw - c->pl + kx * c->dw;
      if (iy < 0 || iy >= c->h || ix < 0 || ix >= c->w) memset(dst, 0, sizeof(float) * c->cin);
      else memcpy(dst, x + (((long)bi * c->h + iy) * c->w + ix) * c->cin, sizeof(float) * c->cin);
    }
  }
}

/* dims: n, h, w, cin, kh, kw, cout, sh, sw, padTop, padLeft, dh, dw, ho, wo */
static napi_value conv2d(napi_env env, napi_callback_info info) {
  float *x, *w, *y;
  int32_t *d;
  if (!conv_args(env, info, "c2f_native.conv2d: bad arguments", 15, &x, &w, &y, &d)) return NULL;
  const ConvDims c = conv_dims(d);
  const ConvPlan p = conv_plan(&c);
  const int cout = c.cout, threads = p.threads;
  const long rows = p.rows, K = p.K, chunk = p.chunk;
  /* Each thread takes a contiguous share of the output rows and builds their patches in chunks
   * that stay under ~4 MB (bounded memory), then one sgemm per chunk. */
  int failed = 0;
#pragma omp parallel num_threads(threads) reduction(|:failed)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    const long lo = rows * t / nt, hi = rows * (t + 1) / nt;
    float *col = (float *)malloc(sizeof(float) * (chunk < hi - lo ? chunk : (hi - lo > 0 ? hi - lo : 1)) * K);
    if (!col) failed = 1;
    for (long r0 = lo; col && r0 < hi; r0 += chunk) {
      const long nr = hi - r0 < chunk ? hi - r0 : chunk;
      for (long r = 0; r < nr; r++) im2col_row(x, &c, r0 + r, col + r * K);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nr, cout, (int)K, 1.0f, col, (int)K, w, cout, 0.0f, y + r0 * cout, cout);
    }
    free(col);
  }
  if (failed) { napi_throw_error(env, NULL, "c2f_native.conv2d: out of memory"); return NULL; }
  return NULL;
}

/* The filter gradient of conv2d, same dims (ho, wo those of dy):
 * dw[ky, kx, ci, co] = Σ_{b, oy, ox} x[b, oy·sh − pt + ky·dh, ox·sw − pl + kx·dw, ci] · dy[b, oy, ox, co]
 * (zero outside x). Patches of a chunk of output rows as in conv2d, then dw += patchesᵀ · dy_chunk,
 * the K = kh·kw·cin rows of dw split over the threads: every element sums the chunks in the same
 * order whatever the thread count, so the result does not depend on it. */
static napi_value conv2d_filter_grad(napi_env env, napi_callback_info info) {
  float *x, *dy, *dw;
  int32_t *d;
  if (!conv_args(env, info, "c2f_native.conv2dFilterGrad: bad arguments", 15, &x, &dy, &dw, &d)) return NULL;
  const ConvDims c = conv_dims(d);
  const ConvPlan p = conv_plan(&c);
  const int cout = c.cout, threads = p.threads;
  const long rows = p.rows, K = p.K, chunk = p.chunk < rows ? p.chunk : rows;
  if (rows == 0) { memset(dw, 0, sizeof(float) * K * cout); return NULL; }
  float *col = (float *)malloc(sizeof(float) * chunk * K);
  if (!col) { napi_throw_error(env, NULL, "c2f_native.conv2dFilterGrad: out of memory"); return NULL; }
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    const long k0 = K * t / nt, k1 = K * (t + 1) / nt;
    for (long r0 = 0; r0 < rows; r0 += chunk) {
      const long nr = rows - r0 < chunk ? rows - r0 : chunk;
#pragma omp for schedule(static)
      for (long r = 0; r < nr; r++) im2col_row(x, &c, r0 + r, col + r * K);
      /* (the omp for's barrier: the chunk's patches are complete) */
      if (k1 > k0) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)(k1 - k0), cout, (int)nr, 1.0f, col + k0, (int)K,
                    dy + r0 * cout, cout, r0 == 0 ? 0.0f : 1.0f, dw + k0 * cout, cout);
      }
#pragma omp barrier
    }
  }
  free(col);
  return NULL;
}

/* dims: n, h, w, c, kh, kw, sh, sw, padTop, padLeft, dh, dw, ho, wo */
static napi_value depthwise(napi_env env, napi_callback_info info) {
  float *x, *w, *y;
  int32_t *d;
  if (!conv_args(env, info, "c2f_native.depthwise: bad arguments", 14, &x, &w, &y, &d)) return NULL;
  const int n = d[0], h = d[1], wd = d[2], c = d[3], kh = d[4], kw = d[5];
  const int sh = d[6], sw = d[7], pt = d[8], pl = d[9], dh = d[10], dw = d[11], ho = d[12], wo = d[13];
  /* Parallel over (image, output row) when there are enough of them, else over channel blocks
   * (the filter gradient: one image, kh output rows, thousands of channels). */
  const long units = (long)n * ho;
  const int cblocks = units >= 8 ? 1 : (c >= 256 ? 8 : 1);
  const int cb = (c + cblocks - 1) / cblocks;
#pragma omp parallel for collapse(2) schedule(static) if (units * wo * c * kh * kw >= PARALLEL_MIN_MACS)
  for (long u = 0; u < units; u++) {
    for (int blk = 0; blk < cblocks; blk++) {
      const int b = (int)(u / ho), oy = (int)(u % ho);
      const int c0 = blk * cb, c1 = c0 + cb < c ? c0 + cb : c;
      if (c0 >= c1) continue;
      float *row = y + ((long)b * ho + oy) * wo * c;
      for (int ox = 0; ox < wo; ox++) memset(row + (long)ox * c + c0, 0, sizeof(float) * (c1 - c0));
      /* Tap by tap over the whole output row: the tap's weights stay in registers, the row in L1. */
      for (int ky = 0; ky < kh; ky++) {
        const int iy = oy * sh - pt + ky * dh;
        if (iy < 0 || iy >= h) continue;
        const float *xrow = x + ((long)b * h + iy) * wd * c;
        for (int kx = 0; kx < kw; kx++) {
          const int off = kx * dw - pl; /* ix = ox * sw + off */
          int lo = off >= 0 ? 0 : (-off + sw - 1) / sw;
          int hi = (wd - 1 - off) >= 0 ? (wd - 1 - off) / sw + 1 : 0;
          if (hi > wo) hi = wo;
          const float *restrict wp = w + ((long)ky * kw + kx) * c;
          for (int ox = lo; ox < hi; ox++) {
            float *restrict out = row + (long)ox * c;
            const float *restrict xp = xrow + (long)(ox * sw + off) * c;
#pragma omp simd
            for (int ch = c0; ch < c1; ch++) out[ch] += xp[ch] * wp[ch];
          }
        }
      }
    }
  }
  return NULL;
}

static napi_value unary(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!get_args(env, info, 3, argv)) return NULL;
  const int op = i32(env, argv[0]);
  size_t len = 0, leny = 0;
  float *x = f32(env, argv[1], &len), *y = f32(env, argv[2], &leny);
  if (!x || !y || leny < len) { napi_throw_error(env, NULL, "c2f_native.unary: bad arguments"); return NULL; }
  const long nel = (long)len;
#pragma omp parallel for schedule(static) if (nel > PARALLEL_MIN_ELEMS)
  for (long i0 = 0; i0 < nel; i0 += BLOCK) vmath(op, x + i0, y + i0, nel - i0 < BLOCK ? nel - i0 : BLOCK);
  return NULL;
}


/* ---- fused element-wise kernels (any Float32Array: the wasm heap or the cpu backend's arrays) ---- */

#define ARGS(n) napi_value argv[n]; if (!get_args(env, info, n, argv)) return NULL
#define F32(i, name) size_t name##_len = 0; float *name = f32(env, argv[i], &name##_len); \
  if (!name) { napi_throw_error(env, NULL, "c2f_native: argument " #i " must be a Float32Array"); return NULL; }

static double num(napi_env env, napi_value v) {
  double r = 0;
  napi_get_value_double(env, v, &r);
  return r;
}

/* LayerNorm over rows of c = len(w) channels; rows = len(mean). */
static napi_value layer_norm(napi_env env, napi_callback_info info) {
  ARGS(7);
  F32(0, x) F32(1, w) F32(2, b) F32(3, y) F32(4, mean) F32(5, rstd)
  const double eps = num(env, argv[6]);
  const long c = (long)w_len, rows = (long)mean_len;
#pragma omp parallel for schedule(static) if (rows * c > PARALLEL_MIN_ELEMS)
  for (long r = 0; r < rows; r++) {
    const float *xr = x + r * c;
    double s = 0, ss = 0;
    for (long k = 0; k < c; k++) { s += xr[k]; ss += (double)xr[k] * xr[k]; }
    const double mu = s / c, var = ss / c - mu * mu;
    const double rs = 1.0 / sqrt((var > 0 ? var : 0) + eps);
    const float fmu = (float)mu, frs = (float)rs;
    float *yr = y + r * c;
    for (long k = 0; k < c; k++) yr[k] = (xr[k] - fmu) * frs * w[k] + b[k];
    mean[r] = fmu;
    rstd[r] = frs;
  }
  return NULL;
}

static napi_value layer_norm_grad(napi_env env, napi_callback_info info) {
  ARGS(8);
  F32(0, dy) F32(1, x) F32(2, mean) F32(3, rstd) F32(4, w) F32(5, dx) F32(6, dw) F32(7, db)
  const long c = (long)w_len, rows = (long)mean_len;
  const int nt = rows * c > PARALLEL_MIN_ELEMS ? omp_get_max_threads() : 1;
  double *part = (double *)calloc((size_t)nt * 2 * c, sizeof(double));
  if (!part) { napi_throw_error(env, NULL, "c2f_native: out of memory"); return NULL; }
#pragma omp parallel num_threads(nt)
  {
    double *pdw = part + (size_t)omp_get_thread_num() * 2 * c, *pdb = pdw + c;
#pragma omp for schedule(static)
    for (long r = 0; r < rows; r++) {
      const float *g = dy + r * c, *xr = x + r * c;
      const float mu = mean[r], rs = rstd[r];
      double sg = 0, sgx = 0;
      for (long k = 0; k < c; k++) {
        const float xh = (xr[k] - mu) * rs, gw = g[k] * w[k];
        sg += gw;
        sgx += (double)gw * xh;
        pdw[k] += (double)g[k] * xh;
        pdb[k] += g[k];
      }
      const float mg = (float)(sg / c), mgx = (float)(sgx / c);
      float *d = dx + r * c;
      for (long k = 0; k < c; k++) {
        const float xh = (xr[k] - mu) * rs;
        d[k] = rs * (g[k] * w[k] - mg - xh * mgx);
      }
    }
  }
  for (long k = 0; k < c; k++) {
    double a = 0, bb = 0;
    for (int t = 0; t < nt; t++) { a += part[(size_t)t * 2 * c + k]; bb += part[(size_t)t * 2 * c + c + k]; }
    dw[k] = (float)a;
    db[k] = (float)bb;
  }
  free(part);
  return NULL;
}

/* BatchNorm with batch statistics over rows (all axes but the channel one). */
static napi_value batch_norm(napi_env env, napi_callback_info info) {
  ARGS(8);
  F32(0, x) F32(1, w) F32(2, b) F32(3, y) F32(4, mean) F32(5, var) F32(6, rstd)
  const double eps = num(env, argv[7]);
  const long c = (long)w_len, rows = (long)(x_len / w_len);
  const int nt = rows * c > PARALLEL_MIN_ELEMS ? omp_get_max_threads() : 1;
  double *part = (double *)calloc((size_t)nt * 2 * c, sizeof(double));
  float *scale = (float *)malloc(sizeof(float) * 2 * c);
  if (!part || !scale) { free(part); free(scale); napi_throw_error(env, NULL, "c2f_native: out of memory"); return NULL; }
  float *shift = scale + c;
#pragma omp parallel num_threads(nt)
  {
    double *s = part + (size_t)omp_get_thread_num() * 2 * c, *ss = s + c;
#pragma omp for schedule(static)
    for (long r = 0; r < rows; r++) {
      const float *xr = x + r * c;
      for (long k = 0; k < c; k++) { s[k] += xr[k]; ss[k] += (double)xr[k] * xr[k]; }
    }
  }
  for (long k = 0; k < c; k++) {
    double s = 0, ss = 0;
    for (int t = 0; t < nt; t++) { s += part[(size_t)t * 2 * c + k]; ss += part[(size_t)t * 2 * c + c + k]; }
    const double mu = s / rows, v0 = ss / rows - mu * mu, v = v0 > 0 ? v0 : 0;
    const double rs = 1.0 / sqrt(v + eps);
    mean[k] = (float)mu;
    var[k] = (float)v;
    rstd[k] = (float)rs;
    scale[k] = (float)(rs * w[k]);
    shift[k] = (float)(b[k] - mu * rs * w[k]);
  }
#pragma omp parallel for schedule(static) num_threads(nt)
  for (long r = 0; r < rows; r++) {
    const float *xr = x + r * c;
    float *yr = y + r * c;
    for (long k = 0; k < c; k++) yr[k] = xr[k] * scale[k] + shift[k];
  }
  free(part);
  free(scale);
  return NULL;
}

static napi_value batch_norm_grad(napi_env env, napi_callback_info info) {
  ARGS(8);
  F32(0, dy) F32(1, x) F32(2, mean) F32(3, rstd) F32(4, w) F32(5, dx) F32(6, dw) F32(7, db)
  const long c = (long)w_len, rows = (long)(x_len / w_len);
  const int nt = rows * c > PARALLEL_MIN_ELEMS ? omp_get_max_threads() : 1;
  double *part = (double *)calloc((size_t)nt * 2 * c, sizeof(double));
  float *coef = (float *)malloc(sizeof(float) * 3 * c);
  if (!part || !coef) { free(part); free(coef); napi_throw_error(env, NULL, "c2f_native: out of memory"); return NULL; }
#pragma omp parallel num_threads(nt)
  {
    double *sdy = part + (size_t)omp_get_thread_num() * 2 * c, *sdyx = sdy + c;
#pragma omp for schedule(static)
    for (long r = 0; r < rows; r++) {
      const float *g = dy + r * c, *xr = x + r * c;
      for (long k = 0; k < c; k++) { sdy[k] += g[k]; sdyx[k] += (double)g[k] * ((xr[k] - mean[k]) * rstd[k]); }
    }
  }
  float *a = coef, *m1 = coef + c, *m2 = coef + 2 * c;
  for (long k = 0; k < c; k++) {
    double s1 = 0, s2 = 0;
    for (int t = 0; t < nt; t++) { s1 += part[(size_t)t * 2 * c + k]; s2 += part[(size_t)t * 2 * c + c + k]; }
    a[k] = rstd[k] * w[k];
    m1[k] = (float)(s1 / rows);
    m2[k] = (float)(s2 / rows);
    dw[k] = (float)s2;
    db[k] = (float)s1;
  }
#pragma omp parallel for schedule(static) num_threads(nt)
  for (long r = 0; r < rows; r++) {
    const float *g = dy + r * c, *xr = x + r * c;
    float *d = dx + r * c;
    for (long k = 0; k < c; k++) d[k] = a[k] * (g[k] - m1[k] - (xr[k] - mean[k]) * rstd[k] * m2[k]);
  }
  free(part);
  free(coef);
  return NULL;
}

/* Exact GELU x Φ(x), Φ(x) = 0.5 (1 + erf(x / √2)), as the kernel chain of src/nn/activation.ts
 * computes it (same float32 operations in the same order; compiled without FP contraction). */
static napi_value gelu(napi_env env, napi_callback_info info) {
  ARGS(3);
  F32(0, x) F32(1, y) F32(2, cdf)
  const long n = (long)x_len;
  const float r2 = (float)M_SQRT1_2;
#pragma omp parallel for schedule(static) if (n > PARALLEL_MIN_ELEMS)
  for (long i0 = 0; i0 < n; i0 += BLOCK) {
    const long m = n - i0 < BLOCK ? n - i0 : BLOCK;
    float t[BLOCK];
    for (long i = 0; i < m; i++) t[i] = x[i0 + i] * r2;
    vmath(1, t, t, m);
    for (long i = 0; i < m; i++) {
      const float p = 0.5f * (1.0f + t[i]);
      cdf[i0 + i] = p;
      y[i0 + i] = x[i0 + i] * p;
    }
  }
  return NULL;
}

static napi_value gelu_grad(napi_env env, napi_callback_info info) {
  ARGS(4);
  F32(0, dy) F32(1, x) F32(2, cdf) F32(3, dx)
  const long n = (long)x_len;
  const float k = (float)(1.0 / sqrt(2.0 * M_PI));
#pragma omp parallel for schedule(static) if (n > PARALLEL_MIN_ELEMS)
  for (long i0 = 0; i0 < n; i0 += BLOCK) {
    const long m = n - i0 < BLOCK ? n - i0 : BLOCK;
    float t[BLOCK];
    for (long i = 0; i < m; i++) t[i] = -0.5f * (x[i0 + i] * x[i0 + i]);
    vmath(0, t, t, m);
    for (long i = 0; i < m; i++) dx[i0 + i] = dy[i0 + i] * (cdf[i0 + i] + x[i0 + i] * (k * t[i]));
  }
  return NULL;
}

/* consts: beta1, 1-beta1, beta2, 1-beta2, c1, c2, eps, lr, decay (all already float32 values;
 * decay 1 = none). Moments updated in place, the new parameter written to `out`. */
static napi_value adamw(napi_env env, napi_callback_info info) {
  ARGS(6);
  F32(0, p) F32(1, m) F32(2, v) F32(3, g) F32(4, out) F32(5, k)
  if (k_len < 10) { napi_throw_error(env, NULL, "c2f_native.adamw: 10 constants expected"); return NULL; }
  const float b1 = k[0], ob1 = k[1], b2 = k[2], ob2 = k[3], c1 = k[4], c2 = k[5], eps = k[6], lr = k[7], decay = k[8];
  const int decays = k[9] != 0.0f;
  const long n = (long)p_len;
#pragma omp parallel for schedule(static) if (n > PARALLEL_MIN_ELEMS)
  for (long i = 0; i < n; i++) {
    const float gi = g[i];
    const float mi = m[i] * b1 + gi * ob1;
    const float vi = v[i] * b2 + (gi * gi) * ob2;
    m[i] = mi;
    v[i] = vi;
    const float update = (mi / c1) / (sqrtf(vi / c2) + eps);
    const float decayed = decays ? p[i] * decay : p[i];
    out[i] = decayed - update * lr;
  }
  return NULL;
}

/* Σ over rows of x[r, c] (b == NULL) or x[r, c] * b[r, c], c = len(out), in per-thread float64 partials. */
static int channel_reduce(const float *x, const float *b, float *out, long c, long rows) {
  const int nt = rows * c > PARALLEL_MIN_ELEMS ? omp_get_max_threads() : 1;
  double *part = (double *)calloc((size_t)nt * c, sizeof(double));
  if (!part) return 0;
#pragma omp parallel num_threads(nt)
  {
    double *acc = part + (size_t)omp_get_thread_num() * c;
#pragma omp for schedule(static)
    for (long r = 0; r < rows; r++) {
      const float *xr = x + r * c;
      if (b) { const float *br = b + r * c; for (long k = 0; k < c; k++) acc[k] += (double)xr[k] * br[k]; }
      else for (long k = 0; k < c; k++) acc[k] += xr[k];
    }
  }
  for (long k = 0; k < c; k++) {
    double s = 0;
    for (int t = 0; t < nt; t++) s += part[(size_t)t * c + k];
    out[k] = (float)s;
  }
  free(part);
  return 1;
}

static napi_value channel_sum(napi_env env, napi_callback_info info) {
  ARGS(2);
  F32(0, x) F32(1, out)
  if (!channel_reduce(x, NULL, out, (long)out_len, (long)(x_len / out_len))) napi_throw_error(env, NULL, "c2f_native: out of memory");
  return NULL;
}

static napi_value channel_dot(napi_env env, napi_callback_info info) {
  ARGS(3);
  F32(0, a) F32(1, b) F32(2, out)
  if (!channel_reduce(a, b, out, (long)out_len, (long)(a_len / out_len))) napi_throw_error(env, NULL, "c2f_native: out of memory");
  return NULL;
}

static napi_value channel_op(napi_env env, napi_callback_info info) {
  ARGS(4);
  const int op = i32(env, argv[0]);
  F32(1, x) F32(2, v) F32(3, out)
  const long c = (long)v_len, rows = (long)(x_len / v_len);
#pragma omp parallel for schedule(static) if (rows * c > PARALLEL_MIN_ELEMS)
  for (long r = 0; r < rows; r++) {
    const float *xr = x + r * c;
    float *o = out + r * c;
    if (op == 0) for (long k = 0; k < c; k++) o[k] = xr[k] + v[k];
    else for (long k = 0; k < c; k++) o[k] = xr[k] * v[k];
  }
  return NULL;
}

static int32_t *i32arr(napi_env env, napi_value v, size_t *len) {
  napi_typedarray_type type;
  size_t length;
  void *data;
  if (napi_get_typedarray_info(env, v, &type, &length, &data, NULL, NULL) != napi_ok || type != napi_int32_array) return NULL;
  *len = length;
  return (int32_t *)data;
}

/* Rows per block of the label softmax: their shifted logits go through the vector exp together
 * (one row of a few classes alone would fill a fraction of a vector register). */
#define SOFTMAX_BLOCK_ROWS 256L

/* Rows of c = len(x) / len(labels) logits: logp[r] = x[r, y] - max - log Σ exp(x - max), probs the
 * softmax; rows labelled `ignore` get logp 0 (their probs are computed all the same).
 * Returns the first row whose label is neither in [0, c) nor `ignore`, -1 if none. */
static napi_value label_log_softmax(napi_env env, napi_callback_info info) {
  ARGS(5);
  F32(0, x) F32(2, logp) F32(3, probs)
  size_t rows_len = 0;
  int32_t *y = i32arr(env, argv[1], &rows_len);
  if (!y || rows_len == 0) { napi_throw_error(env, NULL, "c2f_native.labelLogSoftmax: labels must be an Int32Array"); return NULL; }
  const int32_t ignore = i32(env, argv[4]);
  const long rows = (long)rows_len, c = (long)(x_len / rows_len);
  const long blocks = (rows + SOFTMAX_BLOCK_ROWS - 1) / SOFTMAX_BLOCK_ROWS;
  long bad = rows;
#pragma omp parallel for schedule(static) if (rows * c > PARALLEL_MIN_ELEMS) reduction(min:bad)
  for (long b = 0; b < blocks; b++) {
    const long r0 = b * SOFTMAX_BLOCK_ROWS, r1 = r0 + SOFTMAX_BLOCK_ROWS < rows ? r0 + SOFTMAX_BLOCK_ROWS : rows;
    float m[SOFTMAX_BLOCK_ROWS];
    for (long r = r0; r < r1; r++) {
      const float *xr = x + r * c;
      float *pr = probs + r * c;
      float mr = xr[0];
      for (long k = 1; k < c; k++) if (xr[k] > mr) mr = xr[k];
      for (long k = 0; k < c; k++) pr[k] = xr[k] - mr;
      m[r - r0] = mr;
    }
    vmath(0, probs + r0 * c, probs + r0 * c, (r1 - r0) * c);
    for (long r = r0; r < r1; r++) {
      const float *xr = x + r * c;
      float *pr = probs + r * c;
      double s = 0;
      for (long k = 0; k < c; k++) s += pr[k];
      const float inv = (float)(1.0 / s);
      for (long k = 0; k < c; k++) pr[k] *= inv;
      const int32_t lab = y[r];
      if (lab == ignore) { logp[r] = 0; continue; }
      if (lab < 0 || lab >= c) { if (r < bad) bad = r; logp[r] = 0; continue; }
      logp[r] = (float)((double)xr[lab] - m[r - r0] - log(s));
    }
  }
  napi_value out;
  napi_create_double(env, bad == rows ? -1.0 : (double)bad, &out);
  return out;
}

/* dx[r, k] = dy[r] ([k = y[r]] - probs[r, k]); 0 on rows labelled `ignore`. */
static napi_value label_log_softmax_grad(napi_env env, napi_callback_info info) {
  ARGS(5);
  F32(0, dy) F32(1, probs) F32(3, dx)
  size_t rows_len = 0;
  int32_t *y = i32arr(env, argv[2], &rows_len);
  if (!y || rows_len != dy_len) { napi_throw_error(env, NULL, "c2f_native.labelLogSoftmaxGrad: bad labels"); return NULL; }
  const int32_t ignore = i32(env, argv[4]);
  const long rows = (long)rows_len, c = (long)(probs_len / rows_len);
#pragma omp parallel for schedule(static) if (rows * c > PARALLEL_MIN_ELEMS)
  for (long r = 0; r < rows; r++) {
    float *d = dx + r * c;
    if (y[r] == ignore) { for (long k = 0; k < c; k++) d[k] = 0; continue; }
    const float g = dy[r];
    const float *pr = probs + r * c;
    for (long k = 0; k < c; k++) d[k] = -g * pr[k];
    d[y[r]] += g;
  }
  return NULL;
}

/* dst[r·dstStride + dstOffset + j] = src[r·srcStride + srcOffset + j] for r < rows, j < width:
 * one input of a concatenation, or one piece of a split, along an inner axis. */
static napi_value copy_rows(napi_env env, napi_callback_info info) {
  ARGS(8);
  F32(0, src) F32(1, dst)
  const long rows = i32(env, argv[2]), width = i32(env, argv[3]);
  const long ss = i32(env, argv[4]), so = i32(env, argv[5]), ds = i32(env, argv[6]), dof = i32(env, argv[7]);
  if (rows <= 0 || width <= 0) return NULL;
  if ((rows - 1) * ss + so + width > (long)src_len || (rows - 1) * ds + dof + width > (long)dst_len || so < 0 || dof < 0) {
    napi_throw_error(env, NULL, "c2f_native.copyRows: out of bounds");
    return NULL;
  }
#pragma omp parallel for schedule(static) if (rows * width > PARALLEL_MIN_ELEMS)
  for (long r = 0; r < rows; r++) memcpy(dst + r * ds + dof, src + r * ss + so, sizeof(float) * width);
  return NULL;
}

static napi_value set_threads(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  const int t = i32(env, argv[0]);
  if (t > 0) {
    omp_set_num_threads(t);
    openblas_set_num_threads(1);
  }
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"gemm", NULL, gemm, NULL, NULL, NULL, napi_default, NULL},
    {"conv2d", NULL, conv2d, NULL, NULL, NULL, napi_default, NULL},
    {"copyRows", NULL, copy_rows, NULL, NULL, NULL, napi_default, NULL},
    {"conv2dFilterGrad", NULL, conv2d_filter_grad, NULL, NULL, NULL, napi_default, NULL},
    {"depthwise", NULL, depthwise, NULL, NULL, NULL, napi_default, NULL},
    {"unary", NULL, unary, NULL, NULL, NULL, napi_default, NULL},
    {"layerNorm", NULL, layer_norm, NULL, NULL, NULL, napi_default, NULL},
    {"layerNormGrad", NULL, layer_norm_grad, NULL, NULL, NULL, napi_default, NULL},
    {"batchNorm", NULL, batch_norm, NULL, NULL, NULL, napi_default, NULL},
    {"batchNormGrad", NULL, batch_norm_grad, NULL, NULL, NULL, napi_default, NULL},
    {"gelu", NULL, gelu, NULL, NULL, NULL, napi_default, NULL},
    {"geluGrad", NULL, gelu_grad, NULL, NULL, NULL, napi_default, NULL},
    {"adamw", NULL, adamw, NULL, NULL, NULL, napi_default, NULL},
    {"channelSum", NULL, channel_sum, NULL, NULL, NULL, napi_default, NULL},
    {"channelDot", NULL, channel_dot, NULL, NULL, NULL, napi_default, NULL},
    {"channelOp", NULL, channel_op, NULL, NULL, NULL, napi_default, NULL},
    {"labelLogSoftmax", NULL, label_log_softmax, NULL, NULL, NULL, napi_default, NULL},
    {"labelLogSoftmaxGrad", NULL, label_log_softmax_grad, NULL, NULL, NULL, napi_default, NULL},
    {"setThreads", NULL, set_threads, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
