/* NVRTC (libnvrtc.so.13 or .12): compiles CUDA C++ source to CUBIN at run time, with the exact
 * C signatures of nvrtc.h. Defining CCUDA_CHECK_NVRTC after including the real nvrtc.h turns the
 * aliases into the real types (see ccuda_driver.h). */
#ifndef CCUDA_NVRTC_H
#define CCUDA_NVRTC_H

#include <stddef.h>

/* MARK: - Types */

#ifdef CCUDA_CHECK_NVRTC
typedef nvrtcResult ccuda_nvrtcResult;
typedef nvrtcProgram ccuda_nvrtcProgram;
_Static_assert(sizeof(nvrtcResult) == sizeof(int), "nvrtcResult is int-sized");
_Static_assert(NVRTC_SUCCESS == 0 && NVRTC_ERROR_COMPILATION == 6, "nvrtcResult values");
#else
typedef int ccuda_nvrtcResult;     /* enum nvrtcResult */
typedef void *ccuda_nvrtcProgram;  /* struct _nvrtcProgram * */
#endif

#define CCUDA_NVRTC_SUCCESS 0
#define CCUDA_NVRTC_ERROR_COMPILATION 6

/* MARK: - Entry points */

typedef const char *(*ccuda_nvrtcGetErrorString_fn)(ccuda_nvrtcResult result);
typedef ccuda_nvrtcResult (*ccuda_nvrtcVersion_fn)(int *major, int *minor);
typedef ccuda_nvrtcResult (*ccuda_nvrtcGetNumSupportedArchs_fn)(int *numArchs);
typedef ccuda_nvrtcResult (*ccuda_nvrtcGetSupportedArchs_fn)(int *supportedArchs);
typedef ccuda_nvrtcResult (*ccuda_nvrtcCreateProgram_fn)(
    ccuda_nvrtcProgram *prog, const char *src, const char *name, int numHeaders,
    const char *const *headers, const char *const *includeNames);
typedef ccuda_nvrtcResult (*ccuda_nvrtcDestroyProgram_fn)(ccuda_nvrtcProgram *prog);
typedef ccuda_nvrtcResult (*ccuda_nvrtcCompileProgram_fn)(
    ccuda_nvrtcProgram prog, int numOptions, const char *const *options);
typedef ccuda_nvrtcResult (*ccuda_nvrtcGetProgramLogSize_fn)(ccuda_nvrtcProgram prog, size_t *logSizeRet);
typedef ccuda_nvrtcResult (*ccuda_nvrtcGetProgramLog_fn)(ccuda_nvrtcProgram prog, char *log);
typedef ccuda_nvrtcResult (*ccuda_nvrtcGetCUBINSize_fn)(ccuda_nvrtcProgram prog, size_t *cubinSizeRet);
typedef ccuda_nvrtcResult (*ccuda_nvrtcGetCUBIN_fn)(ccuda_nvrtcProgram prog, char *cubin);
typedef ccuda_nvrtcResult (*ccuda_nvrtcGetPTXSize_fn)(ccuda_nvrtcProgram prog, size_t *ptxSizeRet);
typedef ccuda_nvrtcResult (*ccuda_nvrtcGetPTX_fn)(ccuda_nvrtcProgram prog, char *ptx);

#endif
