// mremap(2) for the CPU backend's buffer reuse (Linux). Swift does not import C's variadic
// functions, so it is wrapped here; declared here too, since <sys/mman.h> shows it only under
// _GNU_SOURCE.
#include <stddef.h>

void *mremap(void *old_address, size_t old_size, size_t new_size, int flags, ...);

/// Resizes the mapping at `address` (from mmap) to `new_size` bytes, moving it if need be; its
/// pages keep their contents, so the ones already touched cost no page fault. MAP_FAILED on error.
static inline void *unet_remap(void *address, size_t old_size, size_t new_size) {
  return mremap(address, old_size, new_size, 1 /* MREMAP_MAYMOVE */);
}
