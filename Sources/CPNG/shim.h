#ifndef CPNG_SHIM_H
#define CPNG_SHIM_H
// libpng's header, through a shim so the module map does not hard-code /usr/include/libpng16.
#include <png.h>
#endif
