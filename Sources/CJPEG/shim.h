#ifndef CJPEG_SHIM_H
#define CJPEG_SHIM_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <jpeglib.h>
#include <jerror.h>

// libjpeg reports a fatal error by calling error_exit, whose default prints and calls exit(); the
// only way back is longjmp, which must never cross Swift frames. So the whole decode and encode
// live here in C: error_exit longjmps to the function that called setjmp, which returns a status
// and libjpeg's message to Swift.

struct cjpeg_errors {
    struct jpeg_error_mgr manager;   // first: libjpeg's cinfo->err points at it
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
};

static inline void cjpeg_error_exit(j_common_ptr cinfo) {
    struct cjpeg_errors *errors = (struct cjpeg_errors *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, errors->message);
    longjmp(errors->jump, 1);
}

// Warnings say the data is damaged (libjpeg goes on, filling the rest of the image with grey) or
// are harmless (stray bytes between markers, an unknown JFIF revision). Damage is an error: a
// half-grey picture of a digit gives a confident wrong answer. Nothing is printed.
static inline void cjpeg_emit_message(j_common_ptr cinfo, int level) {
    if (level >= 0) return;   // trace messages
    switch (cinfo->err->msg_code) {
    case JWRN_JPEG_EOF: case JWRN_HIT_MARKER: case JWRN_HUFF_BAD_CODE: case JWRN_ARITH_BAD_CODE:
    case JWRN_MUST_RESYNC: case JWRN_NOT_SEQUENTIAL: case JWRN_BOGUS_PROGRESSION:
        cjpeg_error_exit(cinfo);
        break;
    default:
        cinfo->err->num_warnings++;
    }
}

static inline void cjpeg_output_message(j_common_ptr cinfo) { (void)cinfo; }

static inline void cjpeg_install_errors(struct cjpeg_errors *errors) {
    jpeg_std_error(&errors->manager);
    errors->manager.error_exit = cjpeg_error_exit;
    errors->manager.emit_message = cjpeg_emit_message;
    errors->manager.output_message = cjpeg_output_message;
    errors->message[0] = 0;
}

static inline void cjpeg_copy_message(char *message, size_t message_size, const char *text) {
    strncpy(message, text, message_size - 1);
    message[message_size - 1] = 0;
}

// The state of one decode, owned by cjpeg_read_grey (not by the function that calls setjmp, so its
// fields keep their values after a longjmp).
struct cjpeg_decode {
    struct jpeg_decompress_struct cinfo;
    struct cjpeg_errors errors;
    int created;
    unsigned char *pixels;
};

static inline int cjpeg_decode_steps(struct cjpeg_decode *d, const unsigned char *data, size_t size, unsigned long max_pixels,
                              unsigned long max_output_pixels, unsigned int *width, unsigned int *height,
                              unsigned int *output_width, unsigned int *output_height) {
    if (setjmp(d->errors.jump)) return 1;
    jpeg_create_decompress(&d->cinfo);
    d->created = 1;
    jpeg_mem_src(&d->cinfo, data, (unsigned long)size);
    jpeg_read_header(&d->cinfo, TRUE);
    *width = d->cinfo.image_width;
    *height = d->cinfo.image_height;
    unsigned long long pixels = (unsigned long long)d->cinfo.image_width * d->cinfo.image_height;
    if (pixels > max_pixels) return 2;
    if (d->cinfo.jpeg_color_space == JCS_CMYK || d->cinfo.jpeg_color_space == JCS_YCCK) return 3;
    d->cinfo.out_color_space = JCS_GRAYSCALE;
    // A large photo is decoded at 1/2, 1/4 or 1/8 of its size (libjpeg's DCT scaling, nearly free).
    unsigned int denominator = 1;
    while (denominator < 8 && pixels / ((unsigned long long)denominator * denominator) > max_output_pixels) denominator *= 2;
    d->cinfo.scale_num = 1;
    d->cinfo.scale_denom = denominator;
    jpeg_start_decompress(&d->cinfo);
    *output_width = d->cinfo.output_width;
    *output_height = d->cinfo.output_height;
    if (d->cinfo.output_components != 1) {
        cjpeg_copy_message(d->errors.message, sizeof d->errors.message, "grey output has more than one component");
        return 1;
    }
    d->pixels = (unsigned char *)malloc((size_t)d->cinfo.output_width * d->cinfo.output_height);
    if (d->pixels == NULL) {
        cjpeg_copy_message(d->errors.message, sizeof d->errors.message, "out of memory");
        return 1;
    }
    while (d->cinfo.output_scanline < d->cinfo.output_height) {
        JSAMPROW row = d->pixels + (size_t)d->cinfo.output_scanline * d->cinfo.output_width;
        jpeg_read_scanlines(&d->cinfo, &row, 1);
    }
    // Not jpeg_finish_decompress: every pixel is read; a file cut just before its end marker is whole.
    return 0;
}

// Decodes a JPEG held in memory to 8-bit grey (libjpeg's luminance of colour files), in rows of
// output_width. Returns 0 and a malloc'ed buffer (free it); 1 with libjpeg's message when it refuses
// the data (damage included, see cjpeg_emit_message); 2 when width x height exceeds max_pixels;
// 3 for CMYK or YCCK colour, which libjpeg cannot turn into grey. Nothing is allocated unless 0.
// Images over max_output_pixels come out at 1/2, 1/4 or 1/8 of their width and height.
static inline int cjpeg_read_grey(const unsigned char *data, size_t size, unsigned long max_pixels,
                                  unsigned long max_output_pixels, unsigned int *width, unsigned int *height,
                                  unsigned int *output_width, unsigned int *output_height,
                                  unsigned char **pixels, char *message, size_t message_size) {
    struct cjpeg_decode d;
    memset(&d, 0, sizeof d);
    d.cinfo.err = &d.errors.manager;
    cjpeg_install_errors(&d.errors);
    *width = *height = *output_width = *output_height = 0;
    *pixels = NULL;
    int status = cjpeg_decode_steps(&d, data, size, max_pixels, max_output_pixels, width, height, output_width, output_height);
    if (d.created) jpeg_destroy_decompress(&d.cinfo);
    if (status == 0) {
        *pixels = d.pixels;
    } else {
        free(d.pixels);
        cjpeg_copy_message(message, message_size, d.errors.message);
    }
    return status;
}

struct cjpeg_encode {
    struct jpeg_compress_struct cinfo;
    struct cjpeg_errors errors;
    int created;
    unsigned char *buffer;
    unsigned long size;
};

static inline int cjpeg_encode_steps(struct cjpeg_encode *e, const unsigned char *pixels, unsigned int width, unsigned int height,
                              int components, int quality) {
    if (setjmp(e->errors.jump)) return 1;
    jpeg_create_compress(&e->cinfo);
    e->created = 1;
    jpeg_mem_dest(&e->cinfo, &e->buffer, &e->size);
    e->cinfo.image_width = width;
    e->cinfo.image_height = height;
    e->cinfo.input_components = components;
    e->cinfo.in_color_space = components == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&e->cinfo);
    jpeg_set_quality(&e->cinfo, quality, TRUE);
    jpeg_start_compress(&e->cinfo, TRUE);
    while (e->cinfo.next_scanline < e->cinfo.image_height) {
        JSAMPROW row = (JSAMPROW)(pixels + (size_t)e->cinfo.next_scanline * width * components);
        jpeg_write_scanlines(&e->cinfo, &row, 1);
    }
    jpeg_finish_compress(&e->cinfo);
    return 0;
}

// Encodes 8-bit grey (components 1) or RGB (3) rows as a baseline JPEG at quality 1-100. Returns 0
// and a malloc'ed buffer of *size bytes (free it), or 1 with libjpeg's message.
static inline int cjpeg_write(const unsigned char *pixels, unsigned int width, unsigned int height, int components,
                              int quality, unsigned char **jpeg, unsigned long *size, char *message, size_t message_size) {
    struct cjpeg_encode e;
    memset(&e, 0, sizeof e);
    e.cinfo.err = &e.errors.manager;
    cjpeg_install_errors(&e.errors);
    *jpeg = NULL;
    *size = 0;
    int status = cjpeg_encode_steps(&e, pixels, width, height, components, quality);
    if (e.created) jpeg_destroy_compress(&e.cinfo);
    if (status == 0) {
        *jpeg = e.buffer;
        *size = e.size;
    } else {
        free(e.buffer);
        cjpeg_copy_message(message, message_size, e.errors.message);
    }
    return status;
}
#endif
