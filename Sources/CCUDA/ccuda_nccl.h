/* NCCL (libnccl.so.2, pip's nvidia-nccl-cu13): the communicator and the all-reduce that sums the
 * gradients of CUDA tensors across the ranks of a data-parallel run, with the exact C signatures of
 * nccl.h. It sits with the other CUDA libraries rather than with MPI's declarations: it takes CUDA
 * streams and device addresses, is found by the same search (UNET_CUDA_PATH, pip's nvidia folders)
 * and is loaded by the same loader; MPI only carries its unique id from rank 0 to the others.
 * Defining CCUDA_CHECK_NCCL after including the real nccl.h turns the aliases into the real types
 * (see ccuda_driver.h). */
#ifndef CCUDA_NCCL_H
#define CCUDA_NCCL_H

#include <stddef.h>

/* MARK: - Types */

#define CCUDA_NCCL_UNIQUE_ID_BYTES 128

#ifdef CCUDA_CHECK_NCCL
typedef ncclResult_t ccuda_ncclResult;
typedef ncclComm_t ccuda_ncclComm;
typedef ncclUniqueId ccuda_ncclUniqueId;
typedef ncclDataType_t ccuda_ncclDataType;
typedef ncclRedOp_t ccuda_ncclRedOp;
typedef cudaStream_t ccuda_ncclStream;
_Static_assert(sizeof(ncclResult_t) == sizeof(int) && sizeof(ncclDataType_t) == sizeof(int)
    && sizeof(ncclRedOp_t) == sizeof(int), "NCCL enums are int-sized");
_Static_assert(sizeof(ncclUniqueId) == CCUDA_NCCL_UNIQUE_ID_BYTES && NCCL_UNIQUE_ID_BYTES == CCUDA_NCCL_UNIQUE_ID_BYTES,
    "the unique id is 128 bytes");
#else
typedef int ccuda_ncclResult;   /* ncclResult_t */
typedef void *ccuda_ncclComm;   /* struct ncclComm * */
typedef struct { char internal[CCUDA_NCCL_UNIQUE_ID_BYTES]; } ccuda_ncclUniqueId; /* ncclUniqueId, passed by value */
typedef int ccuda_ncclDataType; /* ncclDataType_t */
typedef int ccuda_ncclRedOp;    /* ncclRedOp_t */
typedef void *ccuda_ncclStream; /* cudaStream_t, the same object as a driver CUstream */
#endif

/* MARK: - Constants */

#define CCUDA_NCCL_SUCCESS 0
#define CCUDA_NCCL_IN_PROGRESS 7
#define CCUDA_NCCL_FLOAT32 7
#define CCUDA_NCCL_SUM 0

#ifdef CCUDA_CHECK_NCCL
_Static_assert(CCUDA_NCCL_SUCCESS == ncclSuccess && CCUDA_NCCL_IN_PROGRESS == ncclInProgress, "results");
_Static_assert(CCUDA_NCCL_FLOAT32 == ncclFloat32 && CCUDA_NCCL_SUM == ncclSum, "type and operation");
#endif

/* MARK: - Entry points */

typedef ccuda_ncclResult (*ccuda_ncclGetVersion_fn)(int *version);
typedef ccuda_ncclResult (*ccuda_ncclGetUniqueId_fn)(ccuda_ncclUniqueId *uniqueId);
typedef ccuda_ncclResult (*ccuda_ncclCommInitRank_fn)(ccuda_ncclComm *comm, int nranks, ccuda_ncclUniqueId commId, int rank);
typedef ccuda_ncclResult (*ccuda_ncclCommDestroy_fn)(ccuda_ncclComm comm);
typedef ccuda_ncclResult (*ccuda_ncclCommAbort_fn)(ccuda_ncclComm comm);
typedef ccuda_ncclResult (*ccuda_ncclCommGetAsyncError_fn)(ccuda_ncclComm comm, ccuda_ncclResult *asyncError);
typedef const char *(*ccuda_ncclGetErrorString_fn)(ccuda_ncclResult result);
typedef ccuda_ncclResult (*ccuda_ncclAllReduce_fn)(const void *sendbuff, void *recvbuff, size_t count,
                                                   ccuda_ncclDataType datatype, ccuda_ncclRedOp op, ccuda_ncclComm comm,
                                                   ccuda_ncclStream stream);

#endif
