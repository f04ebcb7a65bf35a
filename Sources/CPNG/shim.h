// libpng's C API, from Debian's libpng-dev (libpng 1.6); only its simplified API is used, which
// reports errors in png_image.message instead of longjmp.
#include <png.h>
