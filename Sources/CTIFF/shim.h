// libtiff's C API, from Debian's libtiff-dev (libtiff 4.5; per-file error handlers need 4.5 or later).
#include <tiffio.h>
