// oneDNN's C API, from Debian's libdnnl-dev (oneDNN 2.6).
#include <oneapi/dnnl/dnnl.h>
