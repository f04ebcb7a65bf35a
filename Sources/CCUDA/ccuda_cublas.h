/* cuBLAS and cuBLASLt (libcublas.so.13/.12, libcublasLt.so.13/.12): handles and the matrix
 * products that measure the chip's ceiling, with the exact C signatures of cublas_v2.h and
 * cublasLt.h (cublasCreate is the symbol cublasCreate_v2, and so on). Defining CCUDA_CHECK_CUBLAS
 * after including the real headers turns the aliases into the real types (see ccuda_driver.h). */
#ifndef CCUDA_CUBLAS_H
#define CCUDA_CUBLAS_H

#include <stddef.h>

/* MARK: - Types */

#ifdef CCUDA_CHECK_CUBLAS
typedef cublasStatus_t ccuda_cublasStatus;
typedef cublasHandle_t ccuda_cublasHandle;
typedef cublasLtHandle_t ccuda_cublasLtHandle;
typedef cublasOperation_t ccuda_cublasOperation;
typedef cublasMath_t ccuda_cublasMath;
typedef cublasComputeType_t ccuda_cublasComputeType;
typedef cublasGemmAlgo_t ccuda_cublasGemmAlgo;
typedef cudaDataType ccuda_cudaDataType;
typedef cudaStream_t ccuda_cublasStream;
_Static_assert(sizeof(cublasStatus_t) == sizeof(int) && sizeof(cublasOperation_t) == sizeof(int)
    && sizeof(cublasMath_t) == sizeof(int) && sizeof(cublasComputeType_t) == sizeof(int)
    && sizeof(cublasGemmAlgo_t) == sizeof(int) && sizeof(cudaDataType) == sizeof(int), "cuBLAS enums are int-sized");
#else
typedef int ccuda_cublasStatus;       /* cublasStatus_t */
typedef void *ccuda_cublasHandle;     /* struct cublasContext * */
typedef void *ccuda_cublasLtHandle;   /* struct cublasLtContext * */
typedef int ccuda_cublasOperation;    /* cublasOperation_t */
typedef int ccuda_cublasMath;         /* cublasMath_t */
typedef int ccuda_cublasComputeType;  /* cublasComputeType_t */
typedef int ccuda_cublasGemmAlgo;     /* cublasGemmAlgo_t */
typedef int ccuda_cudaDataType;       /* cudaDataType_t */
typedef void *ccuda_cublasStream;     /* cudaStream_t, the same object as a driver CUstream */
#endif

/* MARK: - Constants */

#define CCUDA_CUBLAS_STATUS_SUCCESS 0
#define CCUDA_CUBLAS_OP_N 0
#define CCUDA_CUBLAS_OP_T 1
#define CCUDA_CUBLAS_DEFAULT_MATH 0
#define CCUDA_CUBLAS_TF32_TENSOR_OP_MATH 3
#define CCUDA_CUBLAS_COMPUTE_32F 68
#define CCUDA_CUBLAS_COMPUTE_32F_FAST_TF32 77
#define CCUDA_CUBLAS_GEMM_DEFAULT (-1)
#define CCUDA_CUDA_R_32F 0
#define CCUDA_CUDA_R_16F 2
#define CCUDA_CUDA_R_16BF 14

#ifdef CCUDA_CHECK_CUBLAS
_Static_assert(CCUDA_CUBLAS_STATUS_SUCCESS == CUBLAS_STATUS_SUCCESS, "status");
_Static_assert(CCUDA_CUBLAS_OP_N == CUBLAS_OP_N && CCUDA_CUBLAS_OP_T == CUBLAS_OP_T, "operation");
_Static_assert(CCUDA_CUBLAS_DEFAULT_MATH == CUBLAS_DEFAULT_MATH, "math");
_Static_assert(CCUDA_CUBLAS_TF32_TENSOR_OP_MATH == CUBLAS_TF32_TENSOR_OP_MATH, "math");
_Static_assert(CCUDA_CUBLAS_COMPUTE_32F == CUBLAS_COMPUTE_32F, "compute type");
_Static_assert(CCUDA_CUBLAS_COMPUTE_32F_FAST_TF32 == CUBLAS_COMPUTE_32F_FAST_TF32, "compute type");
_Static_assert(CCUDA_CUBLAS_GEMM_DEFAULT == CUBLAS_GEMM_DEFAULT, "algorithm");
_Static_assert(CCUDA_CUDA_R_32F == CUDA_R_32F && CCUDA_CUDA_R_16F == CUDA_R_16F && CCUDA_CUDA_R_16BF == CUDA_R_16BF,
    "data types");
#endif

/* MARK: - cuBLAS */

typedef ccuda_cublasStatus (*ccuda_cublasCreate_fn)(ccuda_cublasHandle *handle);
typedef ccuda_cublasStatus (*ccuda_cublasDestroy_fn)(ccuda_cublasHandle handle);
typedef ccuda_cublasStatus (*ccuda_cublasGetVersion_fn)(ccuda_cublasHandle handle, int *version);
typedef const char *(*ccuda_cublasGetStatusString_fn)(ccuda_cublasStatus status);
typedef ccuda_cublasStatus (*ccuda_cublasSetStream_fn)(ccuda_cublasHandle handle, ccuda_cublasStream streamId);
typedef ccuda_cublasStatus (*ccuda_cublasSetMathMode_fn)(ccuda_cublasHandle handle, ccuda_cublasMath mode);
typedef ccuda_cublasStatus (*ccuda_cublasSgemm_fn)(
    ccuda_cublasHandle handle, ccuda_cublasOperation transa, ccuda_cublasOperation transb, int m, int n, int k,
    const float *alpha, const float *A, int lda, const float *B, int ldb, const float *beta, float *C, int ldc);
typedef ccuda_cublasStatus (*ccuda_cublasGemmEx_fn)(
    ccuda_cublasHandle handle, ccuda_cublasOperation transa, ccuda_cublasOperation transb, int m, int n, int k,
    const void *alpha, const void *A, ccuda_cudaDataType Atype, int lda, const void *B, ccuda_cudaDataType Btype,
    int ldb, const void *beta, void *C, ccuda_cudaDataType Ctype, int ldc, ccuda_cublasComputeType computeType,
    ccuda_cublasGemmAlgo algo);

/* MARK: - cuBLASLt */

typedef ccuda_cublasStatus (*ccuda_cublasLtCreate_fn)(ccuda_cublasLtHandle *lightHandle);
typedef ccuda_cublasStatus (*ccuda_cublasLtDestroy_fn)(ccuda_cublasLtHandle lightHandle);
typedef size_t (*ccuda_cublasLtGetVersion_fn)(void);

#endif
