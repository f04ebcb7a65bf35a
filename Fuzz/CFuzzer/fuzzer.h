// libFuzzer's driver, as an ordinary function: the fuzz targets keep their own `main` (SwiftPM
// renames a debug executable's entry point, which leaves no room for libFuzzer's), and hand
// control to libFuzzer from it. Defined only when linked with -sanitize=fuzzer; nothing refers
// to it in an ordinary build.
#include <stddef.h>
#include <stdint.h>

/// Parses libFuzzer's flags in argv and runs `callback` on each input: fuzzing, or once per file
/// given. Returns the exit status (it exits on its own when it finds a crash).
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
