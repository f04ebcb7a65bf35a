/* Our own declarations of the CUDA entry points UNetSeg calls, as function-pointer types that the
 * SegCUDA loader fills with dlsym. No CUDA header or library is needed to build: handles are
 * void *, enums are int (every CUDA enum used here is int-sized), and each library's part is
 * checked against the real header by the compile-only test in Tests/SegCUDATests. */
#ifndef CCUDA_H
#define CCUDA_H

#include "ccuda_driver.h"
#include "ccuda_nvrtc.h"
#include "ccuda_cublas.h"
#include "ccuda_cudnn.h"
#include "ccuda_nccl.h"
#include "ccuda_cupti.h"

#endif
