/* CUPTI's activity API (libcupti.so.13 or .12, pip's nvidia-cuda-cupti): the few calls that let
 * `--profile` read each kernel's, copy's and fill's device time after the fact instead of waiting
 * for the GPU after every op, with the exact C signatures of cupti_activity.h and cupti_result.h.
 *
 * Activity records are read at the byte offsets below rather than through C structs: a record's
 * struct grows a version with each CUDA release (CUDA 13's kernel record is CUpti_ActivityKernel13),
 * while the fields we read have kept their place since CUDA 12's versions (Kernel9, Memcpy5,
 * Memset4). Defining CCUDA_CHECK_CUPTI after including the real cupti.h turns the aliases into
 * the real types and checks every offset and constant (Tests/SegCUDATests/CUPTIHeaderTests.swift). */
#ifndef CCUDA_CUPTI_H
#define CCUDA_CUPTI_H

#include <stddef.h>
#include <stdint.h>

/* MARK: - Types */

#ifdef CCUDA_CHECK_CUPTI
typedef CUptiResult ccuda_CUptiResult;
typedef CUpti_ActivityKind ccuda_CUpti_ActivityKind;
typedef CUpti_ExternalCorrelationKind ccuda_CUpti_ExternalCorrelationKind;
typedef CUpti_Activity ccuda_CUpti_Activity;
typedef CUcontext ccuda_CUpti_Context;
_Static_assert(sizeof(CUptiResult) == sizeof(int) && sizeof(CUpti_ActivityKind) == sizeof(int)
    && sizeof(CUpti_ExternalCorrelationKind) == sizeof(int), "CUPTI enums are int-sized");
#else
typedef int ccuda_CUptiResult;                   /* enum CUptiResult */
typedef int ccuda_CUpti_ActivityKind;            /* enum CUpti_ActivityKind */
typedef int ccuda_CUpti_ExternalCorrelationKind; /* enum CUpti_ExternalCorrelationKind */
typedef struct { int kind; } ccuda_CUpti_Activity; /* the record header: its kind, then the kind's fields */
typedef void *ccuda_CUpti_Context;               /* CUcontext, always NULL since CUDA 6 */
#endif

/* CUPTI asks for an empty buffer (set *buffer, *size; *maxNumRecords 0 = as many as fit) ... */
typedef void (*ccuda_CUpti_BufferRequested)(uint8_t **buffer, size_t *size, size_t *maxNumRecords);
/* ... and hands it back with validSize bytes of records, read with cuptiActivityGetNextRecord. */
typedef void (*ccuda_CUpti_BufferCompleted)(ccuda_CUpti_Context context, uint32_t streamId, uint8_t *buffer, size_t size,
                                            size_t validSize);

/* MARK: - Constants */

#define CCUDA_CUPTI_SUCCESS 0
#define CCUDA_CUPTI_ERROR_MAX_LIMIT_REACHED 12
#define CCUDA_CUPTI_ERROR_INVALID_KIND 21

#define CCUDA_CUPTI_ACTIVITY_KIND_MEMCPY 1
#define CCUDA_CUPTI_ACTIVITY_KIND_MEMSET 2
#define CCUDA_CUPTI_ACTIVITY_KIND_KERNEL 3
#define CCUDA_CUPTI_ACTIVITY_KIND_DRIVER 4
#define CCUDA_CUPTI_ACTIVITY_KIND_RUNTIME 5
#define CCUDA_CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL 10
#define CCUDA_CUPTI_ACTIVITY_KIND_EXTERNAL_CORRELATION 39

/* Our ops' ids are pushed under this kind; no library we load uses it. */
#define CCUDA_CUPTI_EXTERNAL_CORRELATION_KIND_CUSTOM0 3
#define CCUDA_CUPTI_ACTIVITY_FLAG_FLUSH_FORCED 1

/* MARK: - Record layouts (byte offsets) */

/* CUpti_ActivityKernel13 (CONCURRENT_KERNEL): times in ns, a NUL-terminated name owned by CUPTI. */
#define CCUDA_CUPTI_KERNEL_START 16
#define CCUDA_CUPTI_KERNEL_END 24
#define CCUDA_CUPTI_KERNEL_DEVICE_ID 40
#define CCUDA_CUPTI_KERNEL_STREAM_ID 48
#define CCUDA_CUPTI_KERNEL_GRID_X 52
#define CCUDA_CUPTI_KERNEL_GRID_Y 56
#define CCUDA_CUPTI_KERNEL_GRID_Z 60
#define CCUDA_CUPTI_KERNEL_BLOCK_X 64
#define CCUDA_CUPTI_KERNEL_BLOCK_Y 68
#define CCUDA_CUPTI_KERNEL_BLOCK_Z 72
#define CCUDA_CUPTI_KERNEL_CORRELATION_ID 92
#define CCUDA_CUPTI_KERNEL_NAME 104
#define CCUDA_CUPTI_KERNEL_SIZE 248

/* CUpti_ActivityMemcpy7 (MEMCPY). */
#define CCUDA_CUPTI_MEMCPY_COPY_KIND 4
#define CCUDA_CUPTI_MEMCPY_BYTES 8
#define CCUDA_CUPTI_MEMCPY_START 16
#define CCUDA_CUPTI_MEMCPY_END 24
#define CCUDA_CUPTI_MEMCPY_STREAM_ID 40
#define CCUDA_CUPTI_MEMCPY_CORRELATION_ID 44
#define CCUDA_CUPTI_MEMCPY_SIZE 112

/* CUpti_ActivityMemset5 (MEMSET). */
#define CCUDA_CUPTI_MEMSET_BYTES 8
#define CCUDA_CUPTI_MEMSET_START 16
#define CCUDA_CUPTI_MEMSET_END 24
#define CCUDA_CUPTI_MEMSET_STREAM_ID 40
#define CCUDA_CUPTI_MEMSET_CORRELATION_ID 44
#define CCUDA_CUPTI_MEMSET_SIZE 104

/* CUpti_ActivityExternalCorrelation (EXTERNAL_CORRELATION): our op id beside CUPTI's id of one API call. */
#define CCUDA_CUPTI_EXTERNAL_KIND 4
#define CCUDA_CUPTI_EXTERNAL_ID 8
#define CCUDA_CUPTI_EXTERNAL_CORRELATION_ID 16
#define CCUDA_CUPTI_EXTERNAL_SIZE 24

/* CUpti_ActivityAPI (DRIVER, RUNTIME): one API call on the host. */
#define CCUDA_CUPTI_API_START 8
#define CCUDA_CUPTI_API_END 16
#define CCUDA_CUPTI_API_CORRELATION_ID 32
#define CCUDA_CUPTI_API_SIZE 40

#ifdef CCUDA_CHECK_CUPTI
_Static_assert(CCUDA_CUPTI_SUCCESS == CUPTI_SUCCESS && CCUDA_CUPTI_ERROR_MAX_LIMIT_REACHED == CUPTI_ERROR_MAX_LIMIT_REACHED
    && CCUDA_CUPTI_ERROR_INVALID_KIND == CUPTI_ERROR_INVALID_KIND, "results");
_Static_assert(CCUDA_CUPTI_ACTIVITY_KIND_MEMCPY == CUPTI_ACTIVITY_KIND_MEMCPY && CCUDA_CUPTI_ACTIVITY_KIND_MEMSET == CUPTI_ACTIVITY_KIND_MEMSET
    && CCUDA_CUPTI_ACTIVITY_KIND_KERNEL == CUPTI_ACTIVITY_KIND_KERNEL && CCUDA_CUPTI_ACTIVITY_KIND_DRIVER == CUPTI_ACTIVITY_KIND_DRIVER
    && CCUDA_CUPTI_ACTIVITY_KIND_RUNTIME == CUPTI_ACTIVITY_KIND_RUNTIME
    && CCUDA_CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL == CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL
    && CCUDA_CUPTI_ACTIVITY_KIND_EXTERNAL_CORRELATION == CUPTI_ACTIVITY_KIND_EXTERNAL_CORRELATION, "activity kinds");
_Static_assert(CCUDA_CUPTI_EXTERNAL_CORRELATION_KIND_CUSTOM0 == CUPTI_EXTERNAL_CORRELATION_KIND_CUSTOM0
    && CCUDA_CUPTI_ACTIVITY_FLAG_FLUSH_FORCED == CUPTI_ACTIVITY_FLAG_FLUSH_FORCED, "correlation kind and flush flag");
#define CCUDA_CUPTI_AT(T, field, at, type) \
  _Static_assert(offsetof(T, field) == (at) && sizeof(((T *)0)->field) == sizeof(type), #T "." #field " at " #at);
CCUDA_CUPTI_AT(CUpti_Activity, kind, 0, int32_t)
CCUDA_CUPTI_AT(CUpti_ActivityKernel13, start, CCUDA_CUPTI_KERNEL_START, uint64_t)
CCUDA_CUPTI_AT(CUpti_ActivityKernel13, end, CCUDA_CUPTI_KERNEL_END, uint64_t)
CCUDA_CUPTI_AT(CUpti_ActivityKernel13, deviceId, CCUDA_CUPTI_KERNEL_DEVICE_ID, uint32_t)
CCUDA_CUPTI_AT(CUpti_ActivityKernel13, streamId, CCUDA_CUPTI_KERNEL_STREAM_ID, uint32_t)
CCUDA_CUPTI_AT(CUpti_ActivityKernel13, gridX, CCUDA_CUPTI_KERNEL_GRID_X, int32_t)
CCUDA_CUPTI_AT(CUpti_ActivityKernel13, gridY, CCUDA_CUPTI_KERNEL_GRID_Y, int32_t)
CCUDA_CUPTI_AT(CUpti_ActivityKernel13, gridZ, CCUDA_CUPTI_KERNEL_GRID_Z, int32_t)
CCUDA_CUPTI_AT(CUpti_ActivityKernel13, blockX, CCUDA_CUPTI_KERNEL_BLOCK_X, int32_t)
CCUDA_CUPTI_AT(CUpti_ActivityKernel13, blockY, CCUDA_CUPTI_KERNEL_BLOCK_Y, int32_t)
CCUDA_CUPTI_AT(CUpti_ActivityKernel13, blockZ, CCUDA_CUPTI_KERNEL_BLOCK_Z, int32_t)
CCUDA_CUPTI_AT(CUpti_ActivityKernel13, correlationId, CCUDA_CUPTI_KERNEL_CORRELATION_ID, uint32_t)
CCUDA_CUPTI_AT(CUpti_ActivityKernel13, name, CCUDA_CUPTI_KERNEL_NAME, const char *)
_Static_assert(sizeof(CUpti_ActivityKernel13) == CCUDA_CUPTI_KERNEL_SIZE, "CUpti_ActivityKernel13's size");
CCUDA_CUPTI_AT(CUpti_ActivityMemcpy7, copyKind, CCUDA_CUPTI_MEMCPY_COPY_KIND, uint8_t)
CCUDA_CUPTI_AT(CUpti_ActivityMemcpy7, bytes, CCUDA_CUPTI_MEMCPY_BYTES, uint64_t)
CCUDA_CUPTI_AT(CUpti_ActivityMemcpy7, start, CCUDA_CUPTI_MEMCPY_START, uint64_t)
CCUDA_CUPTI_AT(CUpti_ActivityMemcpy7, end, CCUDA_CUPTI_MEMCPY_END, uint64_t)
CCUDA_CUPTI_AT(CUpti_ActivityMemcpy7, streamId, CCUDA_CUPTI_MEMCPY_STREAM_ID, uint32_t)
CCUDA_CUPTI_AT(CUpti_ActivityMemcpy7, correlationId, CCUDA_CUPTI_MEMCPY_CORRELATION_ID, uint32_t)
_Static_assert(sizeof(CUpti_ActivityMemcpy7) == CCUDA_CUPTI_MEMCPY_SIZE, "CUpti_ActivityMemcpy7's size");
CCUDA_CUPTI_AT(CUpti_ActivityMemset5, bytes, CCUDA_CUPTI_MEMSET_BYTES, uint64_t)
CCUDA_CUPTI_AT(CUpti_ActivityMemset5, start, CCUDA_CUPTI_MEMSET_START, uint64_t)
CCUDA_CUPTI_AT(CUpti_ActivityMemset5, end, CCUDA_CUPTI_MEMSET_END, uint64_t)
CCUDA_CUPTI_AT(CUpti_ActivityMemset5, streamId, CCUDA_CUPTI_MEMSET_STREAM_ID, uint32_t)
CCUDA_CUPTI_AT(CUpti_ActivityMemset5, correlationId, CCUDA_CUPTI_MEMSET_CORRELATION_ID, uint32_t)
_Static_assert(sizeof(CUpti_ActivityMemset5) == CCUDA_CUPTI_MEMSET_SIZE, "CUpti_ActivityMemset5's size");
CCUDA_CUPTI_AT(CUpti_ActivityExternalCorrelation, externalKind, CCUDA_CUPTI_EXTERNAL_KIND, int32_t)
CCUDA_CUPTI_AT(CUpti_ActivityExternalCorrelation, externalId, CCUDA_CUPTI_EXTERNAL_ID, uint64_t)
CCUDA_CUPTI_AT(CUpti_ActivityExternalCorrelation, correlationId, CCUDA_CUPTI_EXTERNAL_CORRELATION_ID, uint32_t)
_Static_assert(sizeof(CUpti_ActivityExternalCorrelation) == CCUDA_CUPTI_EXTERNAL_SIZE, "the external correlation record's size");
CCUDA_CUPTI_AT(CUpti_ActivityAPI, start, CCUDA_CUPTI_API_START, uint64_t)
CCUDA_CUPTI_AT(CUpti_ActivityAPI, end, CCUDA_CUPTI_API_END, uint64_t)
CCUDA_CUPTI_AT(CUpti_ActivityAPI, correlationId, CCUDA_CUPTI_API_CORRELATION_ID, uint32_t)
_Static_assert(sizeof(CUpti_ActivityAPI) == CCUDA_CUPTI_API_SIZE, "the API record's size");
#endif

/* MARK: - Entry points */

typedef ccuda_CUptiResult (*ccuda_cuptiGetVersion_fn)(uint32_t *version);
typedef ccuda_CUptiResult (*ccuda_cuptiGetResultString_fn)(ccuda_CUptiResult result, const char **str);
typedef ccuda_CUptiResult (*ccuda_cuptiGetTimestamp_fn)(uint64_t *timestamp);
typedef ccuda_CUptiResult (*ccuda_cuptiActivityEnable_fn)(ccuda_CUpti_ActivityKind kind);
typedef ccuda_CUptiResult (*ccuda_cuptiActivityDisable_fn)(ccuda_CUpti_ActivityKind kind);
typedef ccuda_CUptiResult (*ccuda_cuptiActivityRegisterCallbacks_fn)(ccuda_CUpti_BufferRequested funcBufferRequested,
                                                                     ccuda_CUpti_BufferCompleted funcBufferCompleted);
typedef ccuda_CUptiResult (*ccuda_cuptiActivityGetNextRecord_fn)(uint8_t *buffer, size_t validBufferSizeBytes,
                                                                 ccuda_CUpti_Activity **record);
typedef ccuda_CUptiResult (*ccuda_cuptiActivityFlushAll_fn)(uint32_t flag);
typedef ccuda_CUptiResult (*ccuda_cuptiActivityPushExternalCorrelationId_fn)(ccuda_CUpti_ExternalCorrelationKind kind, uint64_t id);
typedef ccuda_CUptiResult (*ccuda_cuptiActivityPopExternalCorrelationId_fn)(ccuda_CUpti_ExternalCorrelationKind kind, uint64_t *lastId);

#endif
