#ifndef CPNG_SHIM_H
#define CPNG_SHIM_H
#include <png.h>
#include <stdlib.h>
#include <string.h>

// libpng's simplified API reports errors through png_image.message instead of longjmp (which
// must never cross Swift frames), but its set-up uses macros Swift cannot call
// (PNG_IMAGE_VERSION, PNG_FORMAT_RGBA, PNG_IMAGE_SIZE); this one function wraps them.
//
// Reads any PNG held in memory (grey, grey+alpha, RGB, RGBA, palette; 1-16 bits) as 8-bit RGBA, non-premultiplied.
// Returns 0 and a malloc'ed buffer (free it) on success; 1 with a message when libpng refuses
// the file; 2 when width x height exceeds max_pixels (nothing allocated).
static inline int cpng_read_rgba(const void *data, size_t size, unsigned long max_pixels, unsigned int *width, unsigned int *height,
                                 unsigned char **pixels, char *message, size_t message_size) {
    png_image image;
    memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    *pixels = NULL;
    if (!png_image_begin_read_from_memory(&image, data, size)) {
        strncpy(message, image.message, message_size - 1);
        message[message_size - 1] = 0;
        png_image_free(&image);
        return 1;
    }
    *width = image.width;
    *height = image.height;
    if ((unsigned long long)image.width * image.height > max_pixels) {
        png_image_free(&image);
        return 2;
    }
    image.format = PNG_FORMAT_RGBA;
    unsigned char *buffer = (unsigned char *)malloc(PNG_IMAGE_SIZE(image));
    if (buffer == NULL) {
        strncpy(message, "out of memory", message_size - 1);
        png_image_free(&image);
        return 1;
    }
    if (!png_image_finish_read(&image, NULL, buffer, 0, NULL)) {
        strncpy(message, image.message, message_size - 1);
        message[message_size - 1] = 0;
        free(buffer);
        png_image_free(&image);
        return 1;
    }
    *pixels = buffer;
    return 0;
}
#endif
