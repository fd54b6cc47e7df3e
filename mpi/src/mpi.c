/*
 * MPI collectives for Node (see src/dist/mpi.ts), over the system's MPI (Debian's OpenMPI).
 *
 *   init()                    MPI_Init_thread(MPI_THREAD_SERIALIZED); errors return on COMM_WORLD;
 *                             returns { rank, size, localRank, localSize, threadLevel }
 *   finalize()                MPI_Finalize (on the thread that called init: the main thread)
 *   rank() / size() / localRank() / localSize()   cached at init
 *   barrier()                 -> Promise<void>
 *   broadcast(view, root)     -> Promise<void>  root's bytes into every rank's view, in place
 *   allReduceSum(f32 | f64)   -> Promise<void>  element-wise sum over ranks, in place
 *   allReduceSumSync(f64)     -> void           the same, blocking the calling thread (small buffers)
 *   allGather(u8)             -> Promise<Uint8Array[]>  every rank's bytes (lengths may differ), by rank
 *   abort(code)               MPI_Abort(COMM_WORLD, code): ends every rank of the job
 *
 * The collectives block until every rank joins, so they run on a libuv worker thread (napi async
 * work) and resolve a promise. MPI_THREAD_SERIALIZED allows calls from several threads one at a
 * time: `busy` refuses a second collective while one is in flight (the TypeScript wrapper queues
 * them), and rank/size are cached so that nothing else calls into MPI meanwhile.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <mpi.h>
#include <node_api.h>

static int g_rank = -1, g_size = 0, g_local_rank = -1, g_local_size = 0, g_level = -1;
static int g_initialized = 0, g_finalized = 0;
static atomic_int busy = 0;

/* Elements per MPI call: counts are C ints, so larger buffers go in chunks. */
#define CHUNK (1L << 30)

#define NAPI_CALL(env, call)                                                        \
  do {                                                                              \
    if ((call) != napi_ok) {                                                        \
      const napi_extended_error_info *info_;                                        \
      napi_get_last_error_info((env), &info_);                                      \
      bool pending_;                                                                \
      napi_is_exception_pending((env), &pending_);                                  \
      if (!pending_) napi_throw_error((env), NULL, info_ && info_->error_message ? info_->error_message : #call); \
      return NULL;                                                                  \
    }                                                                               \
  } while (0)

/* "MPI_Allreduce: <MPI's error string>" into out. */
static void mpi_message(char *out, size_t n, const char *what, int err) {
  char s[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(err, s, &len) != MPI_SUCCESS) snprintf(s, sizeof s, "error code %d", err);
  snprintf(out, n, "%s: %s", what, s);
}

static napi_value throw_mpi(napi_env env, const char *what, int err) {
  char msg[MPI_MAX_ERROR_STRING + 64];
  mpi_message(msg, sizeof msg, what, err);
  napi_throw_error(env, "ERR_MPI", msg);
  return NULL;
}

static napi_value number(napi_env env, double v) {
  napi_value r;
  NAPI_CALL(env, napi_create_double(env, v, &r));
  return r;
}

static napi_value undefined(napi_env env) {
  napi_value r;
  napi_get_undefined(env, &r);
  return r;
}

static int require_ready(napi_env env) {
  if (!g_initialized || g_finalized) {
    napi_throw_error(env, "ERR_MPI", g_finalized ? "MPI: already finalized" : "MPI: init() was not called");
    return 0;
  }
  return 1;
}

/* ---- init / finalize / abort / queries (synchronous, main thread) ---- */

static napi_value js_init(napi_env env, napi_callback_info info) {
  (void)info;
  if (g_finalized) { napi_throw_error(env, "ERR_MPI", "MPI: init() after finalize()"); return NULL; }
  if (!g_initialized) {
    /* OpenMPI opens its components (plugins) with dlopen, and builds whose plugins are not linked
     * against libmpi need its symbols global; Node loads addons RTLD_LOCAL, so promote libmpi first
     * (as mpi4py does). Debian's 4.1 works either way. */
    Dl_info dl;
    if (dladdr((void *)&MPI_Init_thread, &dl) && dl.dli_fname) dlopen(dl.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
    int already = 0;
    MPI_Initialized(&already);
    if (!already) {
      int err = MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &g_level);
      if (err != MPI_SUCCESS) return throw_mpi(env, "MPI_Init_thread", err);
    } else {
      MPI_Query_thread(&g_level);
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    if (g_level < MPI_THREAD_SERIALIZED) {
      char msg[160];
      snprintf(msg, sizeof msg, "MPI_Init_thread: the MPI library provides thread level %d, below MPI_THREAD_SERIALIZED (%d)",
               g_level, MPI_THREAD_SERIALIZED);
      MPI_Finalize();
      g_finalized = 1;
      napi_throw_error(env, "ERR_MPI", msg);
      return NULL;
    }
    int err = MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    if (err == MPI_SUCCESS) err = MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    if (err != MPI_SUCCESS) return throw_mpi(env, "MPI_Comm_rank", err);
    /* The ranks sharing this node's memory: collective over COMM_WORLD, which every rank is in
     * while it calls init. Works under any launcher (mpirun, srun --mpi=pmix). */
    MPI_Comm local;
    err = MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_rank, MPI_INFO_NULL, &local);
    if (err != MPI_SUCCESS) return throw_mpi(env, "MPI_Comm_split_type", err);
    MPI_Comm_rank(local, &g_local_rank);
    MPI_Comm_size(local, &g_local_size);
    MPI_Comm_free(&local);
    g_initialized = 1;
  }
  napi_value r;
  NAPI_CALL(env, napi_create_object(env, &r));
  NAPI_CALL(env, napi_set_named_property(env, r, "rank", number(env, g_rank)));
  NAPI_CALL(env, napi_set_named_property(env, r, "size", number(env, g_size)));
  NAPI_CALL(env, napi_set_named_property(env, r, "localRank", number(env, g_local_rank)));
  NAPI_CALL(env, napi_set_named_property(env, r, "localSize", number(env, g_local_size)));
  NAPI_CALL(env, napi_set_named_property(env, r, "threadLevel", number(env, g_level)));
  return r;
}

static napi_value js_finalize(napi_env env, napi_callback_info info) {
  (void)info;
  if (!g_initialized || g_finalized) return undefined(env);
  if (atomic_load(&busy)) { napi_throw_error(env, "ERR_MPI", "MPI_Finalize: a collective is still in flight"); return NULL; }
  g_finalized = 1;
  int err = MPI_Finalize();
  if (err != MPI_SUCCESS) return throw_mpi(env, "MPI_Finalize", err);
  return undefined(env);
}

static napi_value js_abort(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t code = 1;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc >= 1) napi_get_value_int32(env, argv[0], &code);
  if (!g_initialized || g_finalized) exit(code ? code : 1);
  /* Outside the one-call-at-a-time rule when a collective is blocked on a worker thread: this is
   * the way out of exactly that situation, and OpenMPI's abort does not wait for it. */
  MPI_Abort(MPI_COMM_WORLD, code);
  exit(code ? code : 1); /* not reached */
}

static napi_value js_rank(napi_env env, napi_callback_info info) { (void)info; return require_ready(env) ? number(env, g_rank) : NULL; }
static napi_value js_size(napi_env env, napi_callback_info info) { (void)info; return require_ready(env) ? number(env, g_size) : NULL; }
static napi_value js_local_rank(napi_env env, napi_callback_info info) { (void)info; return require_ready(env) ? number(env, g_local_rank) : NULL; }
static napi_value js_local_size(napi_env env, napi_callback_info info) { (void)info; return require_ready(env) ? number(env, g_local_size) : NULL; }

/* ---- collectives: async work on a libuv worker, settling a promise ---- */

typedef enum { OP_BARRIER, OP_BCAST, OP_ALLREDUCE, OP_ALLGATHER } op_t;

typedef struct {
  op_t op;
  napi_async_work work;
  napi_deferred deferred;
  napi_ref keep;          /* the caller's array, alive while the worker uses its memory */
  void *data;
  size_t count;           /* bytes (bcast, allgather) or elements (allreduce) */
  MPI_Datatype type;
  int root;
  int err;                /* MPI error code, MPI_SUCCESS when none */
  const char *what;       /* the failed MPI call */
  char message[128];      /* a non-MPI failure (allocation, size) */
  uint8_t *gathered;      /* allgather: every rank's bytes, concatenated by rank */
  long *lengths;          /* allgather: bytes per rank */
} job_t;

static void job_execute(napi_env env, void *p) {
  (void)env;
  job_t *j = p;
  int err = MPI_SUCCESS;
  switch (j->op) {
  case OP_BARRIER:
    j->what = "MPI_Barrier";
    err = MPI_Barrier(MPI_COMM_WORLD);
    break;
  case OP_BCAST:
    j->what = "MPI_Bcast";
    for (size_t off = 0; err == MPI_SUCCESS && off < j->count; off += CHUNK) {
      size_t n = j->count - off < (size_t)CHUNK ? j->count - off : (size_t)CHUNK;
      err = MPI_Bcast((uint8_t *)j->data + off, (int)n, MPI_BYTE, j->root, MPI_COMM_WORLD);
    }
    break;
  case OP_ALLREDUCE: {
    j->what = "MPI_Allreduce";
    int esize = 0;
    MPI_Type_size(j->type, &esize);
    for (size_t off = 0; err == MPI_SUCCESS && off < j->count; off += CHUNK) {
      size_t n = j->count - off < (size_t)CHUNK ? j->count - off : (size_t)CHUNK;
      err = MPI_Allreduce(MPI_IN_PLACE, (uint8_t *)j->data + off * esize, (int)n, j->type, MPI_SUM, MPI_COMM_WORLD);
    }
    break;
  }
  case OP_ALLGATHER: {
    j->what = "MPI_Allgather";
    long mine = (long)j->count;
    j->lengths = malloc(sizeof(long) * g_size);
    int *counts = malloc(sizeof(int) * g_size), *displs = malloc(sizeof(int) * g_size);
    if (!j->lengths || !counts || !displs) { snprintf(j->message, sizeof j->message, "allGather: out of memory"); free(counts); free(displs); break; }
    err = MPI_Allgather(&mine, 1, MPI_LONG, j->lengths, 1, MPI_LONG, MPI_COMM_WORLD);
    if (err == MPI_SUCCESS) {
      long total = 0;
      for (int r = 0; r < g_size; r++) { counts[r] = (int)j->lengths[r]; displs[r] = (int)total; total += j->lengths[r]; }
      if (total > INT_MAX) {
        /* Every rank sees the same lengths, so every rank fails here alike (no rank is left waiting). */
        snprintf(j->message, sizeof j->message, "allGather: %ld bytes in all, over MPI_Allgatherv's limit of %d", total, INT_MAX);
      } else if (!(j->gathered = malloc(total > 0 ? (size_t)total : 1))) {
        snprintf(j->message, sizeof j->message, "allGather: out of memory for %ld bytes", total);
      } else {
        j->what = "MPI_Allgatherv";
        err = MPI_Allgatherv(j->data, (int)mine, MPI_BYTE, j->gathered, counts, displs, MPI_BYTE, MPI_COMM_WORLD);
      }
    }
    free(counts);
    free(displs);
    break;
  }
  }
  j->err = err;
}

static void job_complete(napi_env env, napi_status status, void *p) {
  job_t *j = p;
  atomic_store(&busy, 0);
  napi_value result = NULL, error = NULL;
  char msg[MPI_MAX_ERROR_STRING + 64];
  if (status != napi_ok) {
    snprintf(msg, sizeof msg, "MPI collective: async work failed (napi status %d)", (int)status);
  } else if (j->err != MPI_SUCCESS) {
    mpi_message(msg, sizeof msg, j->what, j->err);
  } else if (j->message[0]) {
    snprintf(msg, sizeof msg, "%s", j->message);
  } else {
    msg[0] = 0;
    if (j->op == OP_ALLGATHER) {
      long total = 0;
      for (int r = 0; r < g_size; r++) total += j->lengths[r];
      napi_value ab;
      void *dst;
      if (napi_create_arraybuffer(env, (size_t)total, &dst, &ab) != napi_ok || napi_create_array_with_length(env, g_size, &result) != napi_ok) {
        snprintf(msg, sizeof msg, "allGather: cannot allocate %ld bytes", total);
      } else {
        if (total) memcpy(dst, j->gathered, (size_t)total);
        long off = 0;
        for (int r = 0; r < g_size; r++) {
          napi_value view;
          napi_create_typedarray(env, napi_uint8_array, (size_t)j->lengths[r], ab, (size_t)off, &view);
          napi_set_element(env, result, (uint32_t)r, view);
          off += j->lengths[r];
        }
      }
    } else {
      napi_get_undefined(env, &result);
    }
  }
  if (msg[0]) {
    napi_value code, text;
    napi_create_string_utf8(env, "ERR_MPI", NAPI_AUTO_LENGTH, &code);
    napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &text);
    napi_create_error(env, code, text, &error);
    if (j->err != MPI_SUCCESS) {
      int cls = 0;
      MPI_Error_class(j->err, &cls);
      napi_value c;
      napi_create_int32(env, cls, &c);
      napi_set_named_property(env, error, "mpiErrorClass", c);
    }
    napi_reject_deferred(env, j->deferred, error);
  } else {
    napi_resolve_deferred(env, j->deferred, result);
  }
  if (j->keep) napi_delete_reference(env, j->keep);
  napi_delete_async_work(env, j->work);
  free(j->gathered);
  free(j->lengths);
  free(j);
}

/* Queues j (whose array, if any, is `array`) and returns its promise. */
static napi_value start(napi_env env, job_t *j, napi_value array, const char *name) {
  if (!require_ready(env)) { free(j); return NULL; }
  int expected = 0;
  if (!atomic_compare_exchange_strong(&busy, &expected, 1)) {
    free(j);
    napi_throw_error(env, "ERR_MPI", "MPI: another collective is in flight (one at a time: await it first)");
    return NULL;
  }
  napi_value promise, resource_name;
  if (array) napi_create_reference(env, array, 1, &j->keep);
  napi_create_promise(env, &j->deferred, &promise);
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &resource_name);
  if (napi_create_async_work(env, NULL, resource_name, job_execute, job_complete, j, &j->work) != napi_ok ||
      napi_queue_async_work(env, j->work) != napi_ok) {
    atomic_store(&busy, 0);
    napi_throw_error(env, "ERR_MPI", "MPI: cannot queue the collective");
    return NULL;
  }
  return promise;
}

/* The bytes of a TypedArray/Buffer/DataView argument. */
static int view_bytes(napi_env env, napi_value v, void **data, size_t *bytes, napi_typedarray_type *type, const char *who) {
  bool is;
  if (napi_is_typedarray(env, v, &is) == napi_ok && is) {
    size_t length, offset;
    napi_value ab;
    if (napi_get_typedarray_info(env, v, type, &length, data, &ab, &offset) != napi_ok) return 0;
    static const size_t esize[] = {1, 1, 1, 2, 2, 4, 4, 4, 8, 8, 8};
    *bytes = length * ((size_t)*type < sizeof esize / sizeof esize[0] ? esize[*type] : 1);
    return 1;
  }
  if (napi_is_dataview(env, v, &is) == napi_ok && is) {
    napi_value ab;
    size_t offset;
    if (napi_get_dataview_info(env, v, bytes, data, &ab, &offset) != napi_ok) return 0;
    *type = napi_uint8_array;
    return 1;
  }
  char msg[96];
  snprintf(msg, sizeof msg, "%s: expected a TypedArray, Buffer or DataView", who);
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
  return 0;
}

static job_t *new_job(napi_env env, op_t op) {
  job_t *j = calloc(1, sizeof(job_t));
  if (!j) napi_throw_error(env, NULL, "MPI: out of memory");
  else j->op = op;
  return j;
}

static napi_value js_barrier(napi_env env, napi_callback_info info) {
  (void)info;
  job_t *j = new_job(env, OP_BARRIER);
  return j ? start(env, j, NULL, "mpi.barrier") : NULL;
}

static napi_value js_broadcast(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) { napi_throw_type_error(env, NULL, "broadcast(view, root)"); return NULL; }
  void *data;
  size_t bytes;
  napi_typedarray_type type;
  int32_t root;
  if (!view_bytes(env, argv[0], &data, &bytes, &type, "broadcast")) return NULL;
  NAPI_CALL(env, napi_get_value_int32(env, argv[1], &root));
  if (g_initialized && (root < 0 || root >= g_size)) { napi_throw_range_error(env, NULL, "broadcast: root is not a rank"); return NULL; }
  job_t *j = new_job(env, OP_BCAST);
  if (!j) return NULL;
  j->data = data, j->count = bytes, j->root = root;
  return start(env, j, argv[0], "mpi.broadcast");
}

static napi_value js_all_reduce_sum(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  bool is = false;
  if (argc >= 1) napi_is_typedarray(env, argv[0], &is);
  napi_typedarray_type type = napi_uint8_array;
  size_t length = 0, offset;
  void *data = NULL;
  napi_value ab;
  if (is) NAPI_CALL(env, napi_get_typedarray_info(env, argv[0], &type, &length, &data, &ab, &offset));
  if (!is || (type != napi_float32_array && type != napi_float64_array)) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "allReduceSum: expected a Float32Array or Float64Array");
    return NULL;
  }
  job_t *j = new_job(env, OP_ALLREDUCE);
  if (!j) return NULL;
  j->data = data, j->count = length, j->type = type == napi_float32_array ? MPI_FLOAT : MPI_DOUBLE;
  return start(env, j, argv[0], "mpi.allReduceSum");
}

/* allReduceSumSync(Float64Array): MPI_Allreduce on the calling (main) thread, blocking. For small
 * buffers inside a synchronous computation (SyncBN statistics in a forward pass); refused while an
 * asynchronous collective is in flight (MPI_THREAD_SERIALIZED: one thread in MPI at a time). */
static napi_value js_all_reduce_sum_sync(napi_env env, napi_callback_info info) {
  if (!require_ready(env)) return NULL;
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  bool is_ta = false;
  if (argc >= 1) NAPI_CALL(env, napi_is_typedarray(env, argv[0], &is_ta));
  napi_typedarray_type tt;
  size_t length = 0;
  void *data = NULL;
  if (is_ta) NAPI_CALL(env, napi_get_typedarray_info(env, argv[0], &tt, &length, &data, NULL, NULL));
  if (!is_ta || tt != napi_float64_array || length > INT32_MAX) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "allReduceSumSync: expected a Float64Array (< 2^31 elements)");
    return NULL;
  }
  int expected = 0;
  if (!atomic_compare_exchange_strong(&busy, &expected, 1)) {
    napi_throw_error(env, "ERR_MPI", "mpi.allReduceSumSync: an asynchronous collective is in flight");
    return NULL;
  }
  int err = length ? MPI_Allreduce(MPI_IN_PLACE, data, (int)length, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD) : MPI_SUCCESS;
  atomic_store(&busy, 0);
  if (err != MPI_SUCCESS) return throw_mpi(env, "MPI_Allreduce", err);
  return undefined(env);
}

static napi_value js_all_gather(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) { napi_throw_type_error(env, NULL, "allGather(bytes)"); return NULL; }
  void *data;
  size_t bytes;
  napi_typedarray_type type;
  if (!view_bytes(env, argv[0], &data, &bytes, &type, "allGather")) return NULL;
  if (bytes > INT_MAX) { napi_throw_range_error(env, NULL, "allGather: over 2 GiB from one rank"); return NULL; }
  job_t *j = new_job(env, OP_ALLGATHER);
  if (!j) return NULL;
  j->data = data, j->count = bytes;
  return start(env, j, argv[0], "mpi.allGather");
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"init", NULL, js_init, NULL, NULL, NULL, napi_default, NULL},
    {"finalize", NULL, js_finalize, NULL, NULL, NULL, napi_default, NULL},
    {"abort", NULL, js_abort, NULL, NULL, NULL, napi_default, NULL},
    {"rank", NULL, js_rank, NULL, NULL, NULL, napi_default, NULL},
    {"size", NULL, js_size, NULL, NULL, NULL, napi_default, NULL},
    {"localRank", NULL, js_local_rank, NULL, NULL, NULL, napi_default, NULL},
    {"localSize", NULL, js_local_size, NULL, NULL, NULL, napi_default, NULL},
    {"barrier", NULL, js_barrier, NULL, NULL, NULL, napi_default, NULL},
    {"broadcast", NULL, js_broadcast, NULL, NULL, NULL, napi_default, NULL},
    {"allReduceSum", NULL, js_all_reduce_sum, NULL, NULL, NULL, napi_default, NULL},
    {"allReduceSumSync", NULL, js_all_reduce_sum_sync, NULL, NULL, NULL, napi_default, NULL},
    {"allGather", NULL, js_all_gather, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
