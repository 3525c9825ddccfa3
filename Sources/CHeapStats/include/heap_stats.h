#ifndef CHEAP_STATS_H
#define CHEAP_STATS_H
#include <stddef.h>
// Swift's Glibc module does not import <malloc.h>; this exposes the one number benchmarks
// need: heap bytes in use (mallinfo2's uordblks + hblkhd on glibc, 0 elsewhere).
size_t cheap_bytes_in_use(void);
#endif
