/* cuDNN 9 (libcudnn.so.9): the legacy convolution API (forward, backward data, backward filter,
 * algorithm search), which cuDNN 9 still ships, and the backend (graph) API's six entry points,
 * with the exact C signatures of cudnn.h. Defining
 * CCUDA_CHECK_CUDNN after including the real cudnn.h turns the aliases into the real types and
 * checks the constants and the layout of the algorithm-performance record (see ccuda_driver.h). */
#ifndef CCUDA_CUDNN_H
#define CCUDA_CUDNN_H

#include <stddef.h>
#include <stdint.h>

/* MARK: - Types */

/* One result of an algorithm search: the same layout for forward, backward-data and
 * backward-filter searches (cudnnConvolution{Fwd,BwdData,BwdFilter}AlgoPerf_t). */
typedef struct ccuda_cudnnAlgoPerf {
  int algo;         /* cudnnConvolution{Fwd,BwdData,BwdFilter}Algo_t */
  int status;       /* cudnnStatus_t */
  float time;       /* milliseconds */
  size_t memory;    /* workspace bytes */
  int determinism;  /* cudnnDeterminism_t */
  int mathType;     /* cudnnMathType_t */
  int reserved[3];
} ccuda_cudnnAlgoPerf;

#ifdef CCUDA_CHECK_CUDNN
typedef cudnnStatus_t ccuda_cudnnStatus;
typedef cudnnHandle_t ccuda_cudnnHandle;
typedef cudnnTensorDescriptor_t ccuda_cudnnTensorDescriptor;
typedef cudnnFilterDescriptor_t ccuda_cudnnFilterDescriptor;
typedef cudnnConvolutionDescriptor_t ccuda_cudnnConvolutionDescriptor;
typedef cudnnDataType_t ccuda_cudnnDataType;
typedef cudnnTensorFormat_t ccuda_cudnnTensorFormat;
typedef cudnnConvolutionMode_t ccuda_cudnnConvolutionMode;
typedef cudnnMathType_t ccuda_cudnnMathType;
typedef cudnnConvolutionFwdAlgo_t ccuda_cudnnConvolutionFwdAlgo;
typedef cudnnConvolutionBwdDataAlgo_t ccuda_cudnnConvolutionBwdDataAlgo;
typedef cudnnConvolutionBwdFilterAlgo_t ccuda_cudnnConvolutionBwdFilterAlgo;
typedef cudnnConvolutionFwdAlgoPerf_t ccuda_cudnnConvolutionFwdAlgoPerf;
typedef cudnnConvolutionBwdDataAlgoPerf_t ccuda_cudnnConvolutionBwdDataAlgoPerf;
typedef cudnnConvolutionBwdFilterAlgoPerf_t ccuda_cudnnConvolutionBwdFilterAlgoPerf;
typedef cudaStream_t ccuda_cudnnStream;
_Static_assert(sizeof(cudnnStatus_t) == sizeof(int) && sizeof(cudnnDataType_t) == sizeof(int)
    && sizeof(cudnnTensorFormat_t) == sizeof(int) && sizeof(cudnnConvolutionMode_t) == sizeof(int)
    && sizeof(cudnnMathType_t) == sizeof(int) && sizeof(cudnnConvolutionFwdAlgo_t) == sizeof(int)
    && sizeof(cudnnConvolutionBwdDataAlgo_t) == sizeof(int) && sizeof(cudnnConvolutionBwdFilterAlgo_t) == sizeof(int)
    && sizeof(cudnnDeterminism_t) == sizeof(int), "cuDNN enums are int-sized");
#define CCUDA_CHECK_PERF_LAYOUT(T)                                                             \
  _Static_assert(sizeof(T) == sizeof(ccuda_cudnnAlgoPerf)                                      \
      && offsetof(T, algo) == offsetof(ccuda_cudnnAlgoPerf, algo)                              \
      && offsetof(T, status) == offsetof(ccuda_cudnnAlgoPerf, status)                          \
      && offsetof(T, time) == offsetof(ccuda_cudnnAlgoPerf, time)                              \
      && offsetof(T, memory) == offsetof(ccuda_cudnnAlgoPerf, memory)                          \
      && offsetof(T, determinism) == offsetof(ccuda_cudnnAlgoPerf, determinism)                \
      && offsetof(T, mathType) == offsetof(ccuda_cudnnAlgoPerf, mathType)                      \
      && offsetof(T, reserved) == offsetof(ccuda_cudnnAlgoPerf, reserved), #T " layout")
CCUDA_CHECK_PERF_LAYOUT(cudnnConvolutionFwdAlgoPerf_t);
CCUDA_CHECK_PERF_LAYOUT(cudnnConvolutionBwdDataAlgoPerf_t);
CCUDA_CHECK_PERF_LAYOUT(cudnnConvolutionBwdFilterAlgoPerf_t);
#else
typedef int ccuda_cudnnStatus;                    /* cudnnStatus_t */
typedef void *ccuda_cudnnHandle;                  /* struct cudnnContext * */
typedef void *ccuda_cudnnTensorDescriptor;        /* struct cudnnTensorStruct * */
typedef void *ccuda_cudnnFilterDescriptor;        /* struct cudnnFilterStruct * */
typedef void *ccuda_cudnnConvolutionDescriptor;   /* struct cudnnConvolutionStruct * */
typedef int ccuda_cudnnDataType;                  /* cudnnDataType_t */
typedef int ccuda_cudnnTensorFormat;              /* cudnnTensorFormat_t */
typedef int ccuda_cudnnConvolutionMode;           /* cudnnConvolutionMode_t */
typedef int ccuda_cudnnMathType;                  /* cudnnMathType_t */
typedef int ccuda_cudnnConvolutionFwdAlgo;        /* cudnnConvolutionFwdAlgo_t */
typedef int ccuda_cudnnConvolutionBwdDataAlgo;    /* cudnnConvolutionBwdDataAlgo_t */
typedef int ccuda_cudnnConvolutionBwdFilterAlgo;  /* cudnnConvolutionBwdFilterAlgo_t */
typedef ccuda_cudnnAlgoPerf ccuda_cudnnConvolutionFwdAlgoPerf;
typedef ccuda_cudnnAlgoPerf ccuda_cudnnConvolutionBwdDataAlgoPerf;
typedef ccuda_cudnnAlgoPerf ccuda_cudnnConvolutionBwdFilterAlgoPerf;
typedef void *ccuda_cudnnStream;                  /* cudaStream_t, the same object as a driver CUstream */
#endif

/* MARK: - Constants */

#define CCUDA_CUDNN_STATUS_SUCCESS 0
#define CCUDA_CUDNN_DATA_FLOAT 0
#define CCUDA_CUDNN_DATA_DOUBLE 1
#define CCUDA_CUDNN_DATA_HALF 2
#define CCUDA_CUDNN_DATA_BFLOAT16 9
#define CCUDA_CUDNN_TENSOR_NCHW 0
#define CCUDA_CUDNN_TENSOR_NHWC 1
#define CCUDA_CUDNN_CONVOLUTION 0
#define CCUDA_CUDNN_CROSS_CORRELATION 1
#define CCUDA_CUDNN_DEFAULT_MATH 0
#define CCUDA_CUDNN_TENSOR_OP_MATH 1
#define CCUDA_CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION 2
#define CCUDA_CUDNN_FMA_MATH 3
#define CCUDA_CUDNN_DETERMINISTIC 1

#ifdef CCUDA_CHECK_CUDNN
_Static_assert(CCUDA_CUDNN_STATUS_SUCCESS == CUDNN_STATUS_SUCCESS, "status");
_Static_assert(CCUDA_CUDNN_DATA_FLOAT == CUDNN_DATA_FLOAT && CCUDA_CUDNN_DATA_DOUBLE == CUDNN_DATA_DOUBLE
    && CCUDA_CUDNN_DATA_HALF == CUDNN_DATA_HALF && CCUDA_CUDNN_DATA_BFLOAT16 == CUDNN_DATA_BFLOAT16, "data types");
_Static_assert(CCUDA_CUDNN_TENSOR_NCHW == CUDNN_TENSOR_NCHW && CCUDA_CUDNN_TENSOR_NHWC == CUDNN_TENSOR_NHWC, "formats");
_Static_assert(CCUDA_CUDNN_CONVOLUTION == CUDNN_CONVOLUTION
    && CCUDA_CUDNN_CROSS_CORRELATION == CUDNN_CROSS_CORRELATION, "modes");
_Static_assert(CCUDA_CUDNN_DEFAULT_MATH == CUDNN_DEFAULT_MATH && CCUDA_CUDNN_TENSOR_OP_MATH == CUDNN_TENSOR_OP_MATH
    && CCUDA_CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION
    && CCUDA_CUDNN_FMA_MATH == CUDNN_FMA_MATH, "math types");
_Static_assert(CCUDA_CUDNN_DETERMINISTIC == CUDNN_DETERMINISTIC, "determinism");
#endif

/* MARK: - Library and handle */

typedef size_t (*ccuda_cudnnGetVersion_fn)(void);
typedef size_t (*ccuda_cudnnGetCudartVersion_fn)(void);
typedef const char *(*ccuda_cudnnGetErrorString_fn)(ccuda_cudnnStatus status);
typedef void (*ccuda_cudnnGetLastErrorString_fn)(char *message, size_t max_size);
typedef ccuda_cudnnStatus (*ccuda_cudnnCreate_fn)(ccuda_cudnnHandle *handle);
typedef ccuda_cudnnStatus (*ccuda_cudnnDestroy_fn)(ccuda_cudnnHandle handle);
typedef ccuda_cudnnStatus (*ccuda_cudnnSetStream_fn)(ccuda_cudnnHandle handle, ccuda_cudnnStream streamId);

/* MARK: - Descriptors */

typedef ccuda_cudnnStatus (*ccuda_cudnnCreateTensorDescriptor_fn)(ccuda_cudnnTensorDescriptor *tensorDesc);
typedef ccuda_cudnnStatus (*ccuda_cudnnSetTensor4dDescriptor_fn)(
    ccuda_cudnnTensorDescriptor tensorDesc, ccuda_cudnnTensorFormat format, ccuda_cudnnDataType dataType,
    int n, int c, int h, int w);
typedef ccuda_cudnnStatus (*ccuda_cudnnSetTensor4dDescriptorEx_fn)(
    ccuda_cudnnTensorDescriptor tensorDesc, ccuda_cudnnDataType dataType, int n, int c, int h, int w,
    int nStride, int cStride, int hStride, int wStride);
typedef ccuda_cudnnStatus (*ccuda_cudnnSetTensorNdDescriptor_fn)(
    ccuda_cudnnTensorDescriptor tensorDesc, ccuda_cudnnDataType dataType, int nbDims, const int dimA[],
    const int strideA[]);
typedef ccuda_cudnnStatus (*ccuda_cudnnDestroyTensorDescriptor_fn)(ccuda_cudnnTensorDescriptor tensorDesc);
typedef ccuda_cudnnStatus (*ccuda_cudnnCreateFilterDescriptor_fn)(ccuda_cudnnFilterDescriptor *filterDesc);
typedef ccuda_cudnnStatus (*ccuda_cudnnSetFilter4dDescriptor_fn)(
    ccuda_cudnnFilterDescriptor filterDesc, ccuda_cudnnDataType dataType, ccuda_cudnnTensorFormat format,
    int k, int c, int h, int w);
typedef ccuda_cudnnStatus (*ccuda_cudnnDestroyFilterDescriptor_fn)(ccuda_cudnnFilterDescriptor filterDesc);
typedef ccuda_cudnnStatus (*ccuda_cudnnCreateConvolutionDescriptor_fn)(ccuda_cudnnConvolutionDescriptor *convDesc);
typedef ccuda_cudnnStatus (*ccuda_cudnnSetConvolution2dDescriptor_fn)(
    ccuda_cudnnConvolutionDescriptor convDesc, int pad_h, int pad_w, int u, int v, int dilation_h, int dilation_w,
    ccuda_cudnnConvolutionMode mode, ccuda_cudnnDataType computeType);
typedef ccuda_cudnnStatus (*ccuda_cudnnSetConvolutionMathType_fn)(
    ccuda_cudnnConvolutionDescriptor convDesc, ccuda_cudnnMathType mathType);
typedef ccuda_cudnnStatus (*ccuda_cudnnDestroyConvolutionDescriptor_fn)(ccuda_cudnnConvolutionDescriptor convDesc);
typedef ccuda_cudnnStatus (*ccuda_cudnnGetConvolution2dForwardOutputDim_fn)(
    ccuda_cudnnConvolutionDescriptor convDesc, ccuda_cudnnTensorDescriptor inputTensorDesc,
    ccuda_cudnnFilterDescriptor filterDesc, int *n, int *c, int *h, int *w);

/* MARK: - Algorithm search and workspace sizes */

typedef ccuda_cudnnStatus (*ccuda_cudnnFindConvolutionForwardAlgorithm_fn)(
    ccuda_cudnnHandle handle, ccuda_cudnnTensorDescriptor xDesc, ccuda_cudnnFilterDescriptor wDesc,
    ccuda_cudnnConvolutionDescriptor convDesc, ccuda_cudnnTensorDescriptor yDesc, int requestedAlgoCount,
    int *returnedAlgoCount, ccuda_cudnnConvolutionFwdAlgoPerf *perfResults);
typedef ccuda_cudnnStatus (*ccuda_cudnnFindConvolutionBackwardDataAlgorithm_fn)(
    ccuda_cudnnHandle handle, ccuda_cudnnFilterDescriptor wDesc, ccuda_cudnnTensorDescriptor dyDesc,
    ccuda_cudnnConvolutionDescriptor convDesc, ccuda_cudnnTensorDescriptor dxDesc, int requestedAlgoCount,
    int *returnedAlgoCount, ccuda_cudnnConvolutionBwdDataAlgoPerf *perfResults);
typedef ccuda_cudnnStatus (*ccuda_cudnnFindConvolutionBackwardFilterAlgorithm_fn)(
    ccuda_cudnnHandle handle, ccuda_cudnnTensorDescriptor xDesc, ccuda_cudnnTensorDescriptor dyDesc,
    ccuda_cudnnConvolutionDescriptor convDesc, ccuda_cudnnFilterDescriptor dwDesc, int requestedAlgoCount,
    int *returnedAlgoCount, ccuda_cudnnConvolutionBwdFilterAlgoPerf *perfResults);
typedef ccuda_cudnnStatus (*ccuda_cudnnGetConvolutionForwardWorkspaceSize_fn)(
    ccuda_cudnnHandle handle, ccuda_cudnnTensorDescriptor xDesc, ccuda_cudnnFilterDescriptor wDesc,
    ccuda_cudnnConvolutionDescriptor convDesc, ccuda_cudnnTensorDescriptor yDesc, ccuda_cudnnConvolutionFwdAlgo algo,
    size_t *sizeInBytes);
typedef ccuda_cudnnStatus (*ccuda_cudnnGetConvolutionBackwardDataWorkspaceSize_fn)(
    ccuda_cudnnHandle handle, ccuda_cudnnFilterDescriptor wDesc, ccuda_cudnnTensorDescriptor dyDesc,
    ccuda_cudnnConvolutionDescriptor convDesc, ccuda_cudnnTensorDescriptor dxDesc,
    ccuda_cudnnConvolutionBwdDataAlgo algo, size_t *sizeInBytes);
typedef ccuda_cudnnStatus (*ccuda_cudnnGetConvolutionBackwardFilterWorkspaceSize_fn)(
    ccuda_cudnnHandle handle, ccuda_cudnnTensorDescriptor xDesc, ccuda_cudnnTensorDescriptor dyDesc,
    ccuda_cudnnConvolutionDescriptor convDesc, ccuda_cudnnFilterDescriptor gradDesc,
    ccuda_cudnnConvolutionBwdFilterAlgo algo, size_t *sizeInBytes);

/* MARK: - Convolutions (all of the form y = alpha * op(inputs) + beta * y) */

typedef ccuda_cudnnStatus (*ccuda_cudnnConvolutionForward_fn)(
    ccuda_cudnnHandle handle, const void *alpha, ccuda_cudnnTensorDescriptor xDesc, const void *x,
    ccuda_cudnnFilterDescriptor wDesc, const void *w, ccuda_cudnnConvolutionDescriptor convDesc,
    ccuda_cudnnConvolutionFwdAlgo algo, void *workSpace, size_t workSpaceSizeInBytes, const void *beta,
    ccuda_cudnnTensorDescriptor yDesc, void *y);
typedef ccuda_cudnnStatus (*ccuda_cudnnConvolutionBackwardData_fn)(
    ccuda_cudnnHandle handle, const void *alpha, ccuda_cudnnFilterDescriptor wDesc, const void *w,
    ccuda_cudnnTensorDescriptor dyDesc, const void *dy, ccuda_cudnnConvolutionDescriptor convDesc,
    ccuda_cudnnConvolutionBwdDataAlgo algo, void *workSpace, size_t workSpaceSizeInBytes, const void *beta,
    ccuda_cudnnTensorDescriptor dxDesc, void *dx);
typedef ccuda_cudnnStatus (*ccuda_cudnnConvolutionBackwardFilter_fn)(
    ccuda_cudnnHandle handle, const void *alpha, ccuda_cudnnTensorDescriptor xDesc, const void *x,
    ccuda_cudnnTensorDescriptor dyDesc, const void *dy, ccuda_cudnnConvolutionDescriptor convDesc,
    ccuda_cudnnConvolutionBwdFilterAlgo algo, void *workSpace, size_t workSpaceSizeInBytes, const void *beta,
    ccuda_cudnnFilterDescriptor dwDesc, void *dw);

/* MARK: - Backend (graph) API
 * Every object is an opaque descriptor whose attributes are set by name and type, then finalized.
 * The enum values the graph code uses (descriptor types, attribute names and types, heuristic and
 * pointwise modes, numerical notes) are in ccuda_cudnn_graph.h, checked the same way. */

#ifdef CCUDA_CHECK_CUDNN
typedef cudnnBackendDescriptor_t ccuda_cudnnBackendDescriptor;
typedef cudnnBackendDescriptorType_t ccuda_cudnnBackendDescriptorType;
typedef cudnnBackendAttributeName_t ccuda_cudnnBackendAttributeName;
typedef cudnnBackendAttributeType_t ccuda_cudnnBackendAttributeType;
_Static_assert(sizeof(cudnnBackendDescriptorType_t) == sizeof(int) && sizeof(cudnnBackendAttributeName_t) == sizeof(int)
    && sizeof(cudnnBackendAttributeType_t) == sizeof(int), "backend enums are int-sized");
#else
typedef void *ccuda_cudnnBackendDescriptor;       /* cudnnBackendDescriptor_t */
typedef int ccuda_cudnnBackendDescriptorType;     /* cudnnBackendDescriptorType_t */
typedef int ccuda_cudnnBackendAttributeName;      /* cudnnBackendAttributeName_t */
typedef int ccuda_cudnnBackendAttributeType;      /* cudnnBackendAttributeType_t */
#endif

typedef ccuda_cudnnStatus (*ccuda_cudnnBackendCreateDescriptor_fn)(
    ccuda_cudnnBackendDescriptorType descriptorType, ccuda_cudnnBackendDescriptor *descriptor);
typedef ccuda_cudnnStatus (*ccuda_cudnnBackendDestroyDescriptor_fn)(ccuda_cudnnBackendDescriptor descriptor);
typedef ccuda_cudnnStatus (*ccuda_cudnnBackendFinalize_fn)(ccuda_cudnnBackendDescriptor descriptor);
typedef ccuda_cudnnStatus (*ccuda_cudnnBackendSetAttribute_fn)(
    ccuda_cudnnBackendDescriptor descriptor, ccuda_cudnnBackendAttributeName attributeName,
    ccuda_cudnnBackendAttributeType attributeType, int64_t elementCount, const void *arrayOfElements);
typedef ccuda_cudnnStatus (*ccuda_cudnnBackendGetAttribute_fn)(
    ccuda_cudnnBackendDescriptor const descriptor, ccuda_cudnnBackendAttributeName attributeName,
    ccuda_cudnnBackendAttributeType attributeType, int64_t requestedElementCount, int64_t *elementCount,
    void *arrayOfElements);
typedef ccuda_cudnnStatus (*ccuda_cudnnBackendExecute_fn)(
    ccuda_cudnnHandle handle, ccuda_cudnnBackendDescriptor executionPlan, ccuda_cudnnBackendDescriptor variantPack);

#include "ccuda_cudnn_graph.h"

#endif
