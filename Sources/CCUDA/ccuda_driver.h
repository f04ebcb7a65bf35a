/* The CUDA driver API (libcuda.so.1): the calls UNetSeg makes, with the exact C signatures of
 * cuda.h. Where cuda.h maps a name to a versioned symbol (cuMemAlloc -> cuMemAlloc_v2), the
 * loader asks dlsym for that versioned symbol; the typedef is named after the API name.
 *
 * Defining CCUDA_CHECK_DRIVER after including the real cuda.h turns every alias below into the
 * real type and checks the constants, so that a compile with -Werror=incompatible-pointer-types
 * proves each typedef matches the real declaration (Tests/SegCUDATests/HeaderCheckTests.swift). */
#ifndef CCUDA_DRIVER_H
#define CCUDA_DRIVER_H

#include <stddef.h>

/* MARK: - Types */

#ifdef CCUDA_CHECK_DRIVER
typedef CUresult ccuda_CUresult;
typedef CUdevice ccuda_CUdevice;
typedef CUdeviceptr ccuda_CUdeviceptr;
typedef CUdevice_attribute ccuda_CUdevice_attribute;
typedef CUcontext ccuda_CUcontext;
typedef CUmodule ccuda_CUmodule;
typedef CUfunction ccuda_CUfunction;
typedef CUstream ccuda_CUstream;
typedef CUevent ccuda_CUevent;
#else
typedef int ccuda_CUresult;                /* enum cudaError_enum */
typedef int ccuda_CUdevice;                /* a device ordinal */
typedef unsigned long long ccuda_CUdeviceptr; /* a device address */
typedef int ccuda_CUdevice_attribute;      /* enum CUdevice_attribute_enum */
typedef void *ccuda_CUcontext;             /* struct CUctx_st * */
typedef void *ccuda_CUmodule;              /* struct CUmod_st * */
typedef void *ccuda_CUfunction;            /* struct CUfunc_st * */
typedef void *ccuda_CUstream;              /* struct CUstream_st * */
typedef void *ccuda_CUevent;               /* struct CUevent_st * */
#endif

/* MARK: - Constants */

#define CCUDA_SUCCESS 0
#define CCUDA_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK 1
#define CCUDA_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X 5
#define CCUDA_DEVICE_ATTRIBUTE_CLOCK_RATE 13
#define CCUDA_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT 16
#define CCUDA_DEVICE_ATTRIBUTE_PCI_BUS_ID 33
#define CCUDA_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE 36
#define CCUDA_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH 37
#define CCUDA_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR 75
#define CCUDA_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR 76
#define CCUDA_STREAM_NON_BLOCKING 1
#define CCUDA_EVENT_DEFAULT 0

#ifdef CCUDA_CHECK_DRIVER
_Static_assert(sizeof(CUresult) == sizeof(int), "CUresult is int-sized");
_Static_assert(sizeof(CUdevice_attribute) == sizeof(int), "CUdevice_attribute is int-sized");
_Static_assert(CCUDA_SUCCESS == CUDA_SUCCESS, "CUDA_SUCCESS");
_Static_assert(CCUDA_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK == CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK, "attr");
_Static_assert(CCUDA_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X == CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X, "attr");
_Static_assert(CCUDA_DEVICE_ATTRIBUTE_CLOCK_RATE == CU_DEVICE_ATTRIBUTE_CLOCK_RATE, "attr");
_Static_assert(CCUDA_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT == CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, "attr");
_Static_assert(CCUDA_DEVICE_ATTRIBUTE_PCI_BUS_ID == CU_DEVICE_ATTRIBUTE_PCI_BUS_ID, "attr");
_Static_assert(CCUDA_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE == CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE, "attr");
_Static_assert(CCUDA_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH == CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH, "attr");
_Static_assert(CCUDA_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR == CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, "attr");
_Static_assert(CCUDA_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR == CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, "attr");
_Static_assert(CCUDA_STREAM_NON_BLOCKING == CU_STREAM_NON_BLOCKING, "stream flag");
_Static_assert(CCUDA_EVENT_DEFAULT == CU_EVENT_DEFAULT, "event flag");
#endif

/* MARK: - Initialisation, version, errors */

typedef ccuda_CUresult (*ccuda_cuInit_fn)(unsigned int flags);
typedef ccuda_CUresult (*ccuda_cuDriverGetVersion_fn)(int *driverVersion);
typedef ccuda_CUresult (*ccuda_cuGetErrorString_fn)(ccuda_CUresult error, const char **pStr);
typedef ccuda_CUresult (*ccuda_cuGetErrorName_fn)(ccuda_CUresult error, const char **pStr);

/* MARK: - Devices */

typedef ccuda_CUresult (*ccuda_cuDeviceGetCount_fn)(int *count);
typedef ccuda_CUresult (*ccuda_cuDeviceGet_fn)(ccuda_CUdevice *device, int ordinal);
typedef ccuda_CUresult (*ccuda_cuDeviceGetName_fn)(char *name, int len, ccuda_CUdevice dev);
typedef ccuda_CUresult (*ccuda_cuDeviceGetAttribute_fn)(int *pi, ccuda_CUdevice_attribute attrib, ccuda_CUdevice dev);
typedef ccuda_CUresult (*ccuda_cuDeviceTotalMem_fn)(size_t *bytes, ccuda_CUdevice dev);

/* MARK: - Contexts */

typedef ccuda_CUresult (*ccuda_cuDevicePrimaryCtxRetain_fn)(ccuda_CUcontext *pctx, ccuda_CUdevice dev);
typedef ccuda_CUresult (*ccuda_cuDevicePrimaryCtxRelease_fn)(ccuda_CUdevice dev);
typedef ccuda_CUresult (*ccuda_cuCtxSetCurrent_fn)(ccuda_CUcontext ctx);
typedef ccuda_CUresult (*ccuda_cuCtxGetCurrent_fn)(ccuda_CUcontext *pctx);
typedef ccuda_CUresult (*ccuda_cuCtxPushCurrent_fn)(ccuda_CUcontext ctx);
typedef ccuda_CUresult (*ccuda_cuCtxPopCurrent_fn)(ccuda_CUcontext *pctx);
typedef ccuda_CUresult (*ccuda_cuCtxSynchronize_fn)(void);

/* MARK: - Memory */

typedef ccuda_CUresult (*ccuda_cuMemAlloc_fn)(ccuda_CUdeviceptr *dptr, size_t bytesize);
typedef ccuda_CUresult (*ccuda_cuMemFree_fn)(ccuda_CUdeviceptr dptr);
typedef ccuda_CUresult (*ccuda_cuMemGetInfo_fn)(size_t *free, size_t *total);
typedef ccuda_CUresult (*ccuda_cuMemcpyHtoD_fn)(ccuda_CUdeviceptr dstDevice, const void *srcHost, size_t byteCount);
typedef ccuda_CUresult (*ccuda_cuMemcpyDtoH_fn)(void *dstHost, ccuda_CUdeviceptr srcDevice, size_t byteCount);
typedef ccuda_CUresult (*ccuda_cuMemcpyHtoDAsync_fn)(
    ccuda_CUdeviceptr dstDevice, const void *srcHost, size_t byteCount, ccuda_CUstream hStream);
typedef ccuda_CUresult (*ccuda_cuMemcpyDtoHAsync_fn)(
    void *dstHost, ccuda_CUdeviceptr srcDevice, size_t byteCount, ccuda_CUstream hStream);
typedef ccuda_CUresult (*ccuda_cuMemcpyDtoDAsync_fn)(
    ccuda_CUdeviceptr dstDevice, ccuda_CUdeviceptr srcDevice, size_t byteCount, ccuda_CUstream hStream);
typedef ccuda_CUresult (*ccuda_cuMemsetD8Async_fn)(
    ccuda_CUdeviceptr dstDevice, unsigned char uc, size_t n, ccuda_CUstream hStream);

/* MARK: - Streams and events */

typedef ccuda_CUresult (*ccuda_cuStreamCreate_fn)(ccuda_CUstream *phStream, unsigned int flags);
typedef ccuda_CUresult (*ccuda_cuStreamDestroy_fn)(ccuda_CUstream hStream);
typedef ccuda_CUresult (*ccuda_cuStreamSynchronize_fn)(ccuda_CUstream hStream);
typedef ccuda_CUresult (*ccuda_cuEventCreate_fn)(ccuda_CUevent *phEvent, unsigned int flags);
typedef ccuda_CUresult (*ccuda_cuEventDestroy_fn)(ccuda_CUevent hEvent);
typedef ccuda_CUresult (*ccuda_cuEventRecord_fn)(ccuda_CUevent hEvent, ccuda_CUstream hStream);
typedef ccuda_CUresult (*ccuda_cuEventSynchronize_fn)(ccuda_CUevent hEvent);
typedef ccuda_CUresult (*ccuda_cuEventElapsedTime_fn)(float *pMilliseconds, ccuda_CUevent hStart, ccuda_CUevent hEnd);

/* MARK: - Modules and launches */

typedef ccuda_CUresult (*ccuda_cuModuleLoadData_fn)(ccuda_CUmodule *module, const void *image);
typedef ccuda_CUresult (*ccuda_cuModuleUnload_fn)(ccuda_CUmodule hmod);
typedef ccuda_CUresult (*ccuda_cuModuleGetFunction_fn)(ccuda_CUfunction *hfunc, ccuda_CUmodule hmod, const char *name);
typedef ccuda_CUresult (*ccuda_cuLaunchKernel_fn)(
    ccuda_CUfunction f, unsigned int gridDimX, unsigned int gridDimY, unsigned int gridDimZ,
    unsigned int blockDimX, unsigned int blockDimY, unsigned int blockDimZ, unsigned int sharedMemBytes,
    ccuda_CUstream hStream, void **kernelParams, void **extra);

/* MARK: - Caching allocator: pinned host memory, event queries (device memory) */

#define CCUDA_ERROR_OUT_OF_MEMORY 2
#define CCUDA_ERROR_NOT_READY 600
#define CCUDA_EVENT_DISABLE_TIMING 2

#ifdef CCUDA_CHECK_DRIVER
_Static_assert(CCUDA_ERROR_OUT_OF_MEMORY == CUDA_ERROR_OUT_OF_MEMORY, "CUDA_ERROR_OUT_OF_MEMORY");
_Static_assert(CCUDA_ERROR_NOT_READY == CUDA_ERROR_NOT_READY, "CUDA_ERROR_NOT_READY");
_Static_assert(CCUDA_EVENT_DISABLE_TIMING == CU_EVENT_DISABLE_TIMING, "event flag");
#endif

typedef ccuda_CUresult (*ccuda_cuMemHostAlloc_fn)(void **pp, size_t bytesize, unsigned int Flags);
typedef ccuda_CUresult (*ccuda_cuMemFreeHost_fn)(void *p);
typedef ccuda_CUresult (*ccuda_cuEventQuery_fn)(ccuda_CUevent hEvent);
typedef ccuda_CUresult (*ccuda_cuStreamWaitEvent_fn)(ccuda_CUstream hStream, ccuda_CUevent hEvent, unsigned int Flags);

/* MARK: - Graphs: a step captured from the stream once, launched whole afterwards */

#ifdef CCUDA_CHECK_DRIVER
typedef CUgraph ccuda_CUgraph;
typedef CUgraphExec ccuda_CUgraphExec;
typedef CUstreamCaptureMode ccuda_CUstreamCaptureMode;
typedef CUstreamCaptureStatus ccuda_CUstreamCaptureStatus;
#else
typedef void *ccuda_CUgraph;               /* struct CUgraph_st * */
typedef void *ccuda_CUgraphExec;           /* struct CUgraphExec_st * */
typedef int ccuda_CUstreamCaptureMode;     /* enum CUstreamCaptureMode_enum */
typedef int ccuda_CUstreamCaptureStatus;   /* enum CUstreamCaptureStatus_enum */
#endif

#define CCUDA_STREAM_CAPTURE_MODE_RELAXED 2
#define CCUDA_STREAM_CAPTURE_STATUS_NONE 0
#define CCUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED 900
#define CCUDA_ERROR_STREAM_CAPTURE_INVALIDATED 901

#ifdef CCUDA_CHECK_DRIVER
_Static_assert(sizeof(CUstreamCaptureMode) == sizeof(int), "CUstreamCaptureMode is int-sized");
_Static_assert(CCUDA_STREAM_CAPTURE_MODE_RELAXED == CU_STREAM_CAPTURE_MODE_RELAXED, "capture mode");
_Static_assert(CCUDA_STREAM_CAPTURE_STATUS_NONE == CU_STREAM_CAPTURE_STATUS_NONE, "capture status");
_Static_assert(CCUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED == CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED, "capture error");
_Static_assert(CCUDA_ERROR_STREAM_CAPTURE_INVALIDATED == CUDA_ERROR_STREAM_CAPTURE_INVALIDATED, "capture error");
#endif

typedef ccuda_CUresult (*ccuda_cuStreamBeginCapture_fn)(ccuda_CUstream hStream, ccuda_CUstreamCaptureMode mode);
typedef ccuda_CUresult (*ccuda_cuStreamEndCapture_fn)(ccuda_CUstream hStream, ccuda_CUgraph *phGraph);
typedef ccuda_CUresult (*ccuda_cuStreamIsCapturing_fn)(ccuda_CUstream hStream, ccuda_CUstreamCaptureStatus *captureStatus);
typedef ccuda_CUresult (*ccuda_cuGraphInstantiateWithFlags_fn)(
    ccuda_CUgraphExec *phGraphExec, ccuda_CUgraph hGraph, unsigned long long flags);
typedef ccuda_CUresult (*ccuda_cuGraphLaunch_fn)(ccuda_CUgraphExec hGraphExec, ccuda_CUstream hStream);
typedef ccuda_CUresult (*ccuda_cuGraphExecDestroy_fn)(ccuda_CUgraphExec hGraphExec);
typedef ccuda_CUresult (*ccuda_cuGraphDestroy_fn)(ccuda_CUgraph hGraph);

#endif
