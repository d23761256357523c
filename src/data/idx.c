/* idx.c — the IDX file format (LeCun's MNIST format), read through zlib so that gzip-compressed
 * and raw files both work. Every header field is checked before anything is allocated, and the
 * payload buffer grows with the data actually present, so a header that lies costs nothing. */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#define IDX_MAGIC_LABELS 0x00000801u
#define IDX_MAGIC_IMAGES 0x00000803u

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void put_be32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* zlib's message for f without the "PATH: " it puts in front, since our errors name the file. */
static const char *gz_why(gzFile f, const char *path, int *code) {
    const char *msg = gzerror(f, code);
    size_t n = strlen(path);
    if (msg && strncmp(msg, path, n) == 0 && msg[n] == ':' && msg[n + 1] == ' ') msg += n + 2;
    return msg;
}

/* Reads exactly len bytes or explains why not. Returns the count read, or -1 on a zlib error. */
static long long read_full(gzFile f, const char *path, unsigned char *buf, size_t len,
                           const char **why) {
    size_t got = 0;
    while (got < len) {
        size_t want = len - got;
        if (want > (1u << 30)) want = 1u << 30;
        int r = gzread(f, buf + got, (unsigned)want);
        if (r < 0) {
            int code;
            *why = gz_why(f, path, &code);
            return -1;
        }
        if (r == 0) {
            int code;
            const char *msg = gz_why(f, path, &code);
            /* zlib reports a cut-off gzip stream as Z_BUF_ERROR; a raw file simply ends. */
            *why = (code == Z_BUF_ERROR) ? msg : NULL;
            break;
        }
        got += (size_t)r;
    }
    return (long long)got;
}

static fm_status idx_open(const char *path, gzFile *out, fm_error *err) {
    struct stat st;
    if (stat(path, &st) != 0) return fm_fail(err, FM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return fm_fail(err, FM_ERR_IO, "%s: not a regular file", path);
    errno = 0;
    gzFile f = gzopen(path, "rb");
    if (!f) {
        return fm_fail(err, FM_ERR_IO, "%s: cannot open: %s", path,
                       errno ? strerror(errno) : "out of memory");
    }
    gzbuffer(f, 1 << 17);
    *out = f;
    return FM_OK;
}

/* Reads the header: magic, then ndims big-endian uint32 sizes. */
static fm_status idx_header(gzFile f, const char *path, uint32_t want_magic, int ndims,
                            uint32_t *dims, fm_error *err) {
    unsigned char hdr[16];
    const char *why = NULL;
    size_t len = 4 + 4 * (size_t)ndims;
    long long got = read_full(f, path, hdr, len, &why);
    if (got < 0) return fm_fail(err, FM_ERR_FORMAT, "%s: corrupt data: %s", path, why);
    if (got < 4) {
        return fm_fail(err, FM_ERR_FORMAT, "%s: file too short for an IDX header (%lld bytes)%s%s",
                       path, got, why ? ": " : "", why ? why : "");
    }
    uint32_t magic = be32(hdr);
    if (magic != want_magic) {
        const char *what = want_magic == IDX_MAGIC_IMAGES ? "images" : "labels";
        if ((magic >> 16) == 0 && (magic & 0xff00u) == 0x0800u) {
            return fm_fail(err, FM_ERR_FORMAT,
                           "%s: IDX file has %u dimension%s and element type 0x%02x; %s need "
                           "magic 0x%08x (%d dimension%s of unsigned bytes)",
                           path, magic & 0xffu, (magic & 0xffu) == 1 ? "" : "s", (magic >> 8) & 0xffu,
                           what, want_magic, ndims, ndims == 1 ? "" : "s");
        }
        return fm_fail(err, FM_ERR_FORMAT,
                       "%s: wrong magic number 0x%08x, expected 0x%08x for IDX %s (is it an "
                       "IDX file?)",
                       path, magic, want_magic, what);
    }
    if (got < (long long)len) {
        return fm_fail(err, FM_ERR_FORMAT, "%s: truncated IDX header (%lld of %zu bytes)", path,
                       got, len);
    }
    for (int i = 0; i < ndims; i++) dims[i] = be32(hdr + 4 + 4 * i);
    return FM_OK;
}

/* Reads a payload of exactly want bytes, growing the buffer with what is present, then insists
 * on end of file. */
static fm_status idx_payload(gzFile f, const char *path, size_t want, const char *what,
                             size_t item_bytes, uint8_t **out, fm_error *err) {
    size_t cap = want < (1u << 20) ? want : (1u << 20);
    if (cap == 0) cap = 1;
    uint8_t *buf = malloc(cap);
    if (!buf) return fm_fail(err, FM_ERR_NOMEM, "%s: out of memory", path);
    size_t got = 0;
    while (got < want) {
        if (got == cap) {
            size_t ncap = cap * 2 < want ? cap * 2 : want;
            uint8_t *nb = realloc(buf, ncap);
            if (!nb) {
                free(buf);
                return fm_fail(err, FM_ERR_NOMEM, "%s: out of memory reading %zu bytes", path,
                               want);
            }
            buf = nb;
            cap = ncap;
        }
        const char *why = NULL;
        long long r = read_full(f, path, buf + got, cap - got, &why);
        if (r < 0) {
            free(buf);
            return fm_fail(err, FM_ERR_FORMAT, "%s: corrupt data: %s", path, why);
        }
        got += (size_t)r;
        if (got < cap) {
            free(buf);
            return fm_fail(err, FM_ERR_FORMAT,
                           "%s: truncated: header declares %zu %s but the file holds %zu%s%s",
                           path, want / item_bytes, what, got / item_bytes, why ? "; " : "",
                           why ? why : "");
        }
    }
    unsigned char extra;
    const char *why = NULL;
    long long r = read_full(f, path, &extra, 1, &why);
    if (r < 0) {
        free(buf);
        return fm_fail(err, FM_ERR_FORMAT, "%s: corrupt data: %s", path, why);
    }
    if (r > 0) {
        free(buf);
        return fm_fail(err, FM_ERR_FORMAT,
                       "%s: trailing bytes after the %zu %s the header declares", path,
                       want / item_bytes, what);
    }
    if (why) {
        /* Every declared byte decoded, but the gzip stream stops inside its CRC and length
         * trailer, so nothing vouches for those bytes. */
        free(buf);
        return fm_fail(err, FM_ERR_FORMAT,
                       "%s: truncated: the gzip stream is cut off before its checksum (%s)", path,
                       why);
    }
    *out = buf;
    return FM_OK;
}

fm_status fm_idx_read_images(const char *path, uint8_t **pixels, uint32_t *n, uint32_t *h,
                             uint32_t *w, fm_error *err) {
    gzFile f;
    fm_status s = idx_open(path, &f, err);
    if (s) return s;
    uint32_t dims[3] = {0, 0, 0};
    s = idx_header(f, path, IDX_MAGIC_IMAGES, 3, dims, err);
    if (!s) {
        if (dims[0] == 0 || dims[0] > FM_IDX_MAX_ITEMS) {
            s = fm_fail(err, FM_ERR_FORMAT, "%s: image count %u is outside 1..%u", path, dims[0],
                        FM_IDX_MAX_ITEMS);
        } else if (dims[1] == 0 || dims[2] == 0 || dims[1] > FM_IDX_MAX_SIDE ||
                   dims[2] > FM_IDX_MAX_SIDE) {
            s = fm_fail(err, FM_ERR_FORMAT, "%s: image size %ux%u is outside 1..%u per side",
                        path, dims[1], dims[2], FM_IDX_MAX_SIDE);
        }
    }
    size_t image_bytes = 0, total = 0;
    if (!s) {
        image_bytes = (size_t)dims[1] * dims[2];
        /* 64-bit products of values bounded above cannot overflow; the limit is what matters. */
        uint64_t total64 = (uint64_t)dims[0] * image_bytes;
        if (total64 > FM_IDX_MAX_BYTES) {
            s = fm_fail(err, FM_ERR_NOMEM,
                        "%s: header declares %u images of %ux%u (%llu bytes), over the %u-byte "
                        "limit",
                        path, dims[0], dims[1], dims[2], (unsigned long long)total64,
                        FM_IDX_MAX_BYTES);
        }
        total = (size_t)total64;
    }
    uint8_t *buf = NULL;
    if (!s) s = idx_payload(f, path, total, "images", image_bytes, &buf, err);
    gzclose(f);
    if (s) return s;
    *pixels = buf;
    *n = dims[0];
    *h = dims[1];
    *w = dims[2];
    return FM_OK;
}

fm_status fm_idx_read_labels(const char *path, uint8_t **labels, uint32_t *n, fm_error *err) {
    gzFile f;
    fm_status s = idx_open(path, &f, err);
    if (s) return s;
    uint32_t dims[1] = {0};
    s = idx_header(f, path, IDX_MAGIC_LABELS, 1, dims, err);
    if (!s && (dims[0] == 0 || dims[0] > FM_IDX_MAX_ITEMS)) {
        s = fm_fail(err, FM_ERR_FORMAT, "%s: label count %u is outside 1..%u", path, dims[0],
                    FM_IDX_MAX_ITEMS);
    }
    uint8_t *buf = NULL;
    if (!s) s = idx_payload(f, path, dims[0], "labels", 1, &buf, err);
    gzclose(f);
    if (s) return s;
    *labels = buf;
    *n = dims[0];
    return FM_OK;
}

/* Writes header and payload, compressing when the name ends in ".gz". */
static fm_status idx_write(const char *path, const unsigned char *hdr, size_t hlen,
                           const uint8_t *data, size_t len, fm_error *err) {
    size_t plen = strlen(path);
    int gz = plen > 3 && strcmp(path + plen - 3, ".gz") == 0;
    errno = 0;
    gzFile f = gzopen(path, gz ? "wb6" : "wbT");
    if (!f) return fm_fail(err, FM_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    int ok = gzwrite(f, hdr, (unsigned)hlen) == (int)hlen;
    for (size_t off = 0; ok && off < len;) {
        size_t chunk = len - off > (1u << 30) ? (1u << 30) : len - off;
        ok = gzwrite(f, data + off, (unsigned)chunk) == (int)chunk;
        off += chunk;
    }
    if (gzclose(f) != Z_OK) ok = 0;
    if (!ok) return fm_fail(err, FM_ERR_IO, "%s: write failed", path);
    return FM_OK;
}

fm_status fm_idx_write_images(const char *path, const uint8_t *pixels, uint32_t n, uint32_t h,
                              uint32_t w, fm_error *err) {
    unsigned char hdr[16];
    put_be32(hdr, IDX_MAGIC_IMAGES);
    put_be32(hdr + 4, n);
    put_be32(hdr + 8, h);
    put_be32(hdr + 12, w);
    return idx_write(path, hdr, sizeof hdr, pixels, (size_t)n * h * w, err);
}

fm_status fm_idx_write_labels(const char *path, const uint8_t *labels, uint32_t n, fm_error *err) {
    unsigned char hdr[8];
    put_be32(hdr, IDX_MAGIC_LABELS);
    put_be32(hdr + 4, n);
    return idx_write(path, hdr, sizeof hdr, labels, n, err);
}
