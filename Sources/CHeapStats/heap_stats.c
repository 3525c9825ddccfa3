#include "heap_stats.h"
// mallinfo2 is glibc's own (2.33 and later; Debian 12 and Raspberry Pi OS bookworm have 2.36, on
// x86-64 and aarch64 alike). <malloc.h> is glibc's header too, and it defines __GLIBC__ through
// <features.h>: on any other C library (musl, macOS) neither is used and the answer is 0.
#if defined(__linux__) && __has_include(<malloc.h>)
#include <malloc.h>
#endif
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
size_t cheap_bytes_in_use(void) {
    struct mallinfo2 info = mallinfo2();
    return info.uordblks + info.hblkhd;
}
#else
size_t cheap_bytes_in_use(void) { return 0; }
#endif
