// mremap(2) for the CPU backend's buffer reuse (Linux). Swift does not import C's variadic
// functions, so it is wrapped here; declared here too, since <sys/mman.h> shows it only under
// _GNU_SOURCE.
#include <stddef.h>

int madvise(void *address, size_t length, int advice);

void *mremap(void *old_address, size_t old_size, size_t new_size, int flags, ...);

/// Resizes the mapping at `address` (from mmap) to `new_size` bytes, moving it if need be; its
/// pages keep their contents, so the ones already touched cost no page fault. MAP_FAILED on error.
static inline void *unet_remap(void *address, size_t old_size, size_t new_size) {
  return mremap(address, old_size, new_size, 1 /* MREMAP_MAYMOVE */);
}

/// Asks the kernel to back `length` bytes at `address` with transparent huge pages where it allows
/// them (MADV_HUGEPAGE; a no-op where THP is off): a first touch then faults in 2 MiB at a time
/// instead of 4 KiB. Its result is ignored: the pages are the same either way.
static inline void unet_prefer_huge_pages(void *address, size_t length) {
  (void)madvise(address, length, 14 /* MADV_HUGEPAGE */);
}
