/* xdv.h: write xdv VHM guests in C, with no libc.
 *
 * Build a guest with one line:
 *
 *   clang --target=wasm32 -O2 -mbulk-memory -nostdlib -Wl,--no-entry -Wl,-z,stack-size=16384 \
 *     -I sdk/c guest.c -o guest.wasm
 *
 * In exactly one file of the guest, define XDV_IMPLEMENTATION before including this header.
 * That file then carries the xdv.abi section (the ABI version the guest was built for, which
 * xdv checks) and memset, memcpy, memmove and memcmp, which clang emits calls to; with
 * -mbulk-memory they are single memory.fill / memory.copy instructions.
 *
 * Export the entry with XDV_EXPORT("main") on a function of any other name (clang renames
 * `main` on wasm), and the interrupt handler as
 *   XDV_EXPORT("xdv_irq") void on_irq(int32_t vector, int64_t arg) { ... }
 *
 * xdv_abi.h, generated from the ABI table (`xdv abi --c-header`), declares every hypercall,
 * constant and structure. docs/abi.md describes each call; docs/guests.md the build.
 */
#ifndef XDV_H
#define XDV_H

#include "xdv_abi.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Exports the function that follows under `name` ("main", "xdv_irq", ...). */
#define XDV_EXPORT(name) __attribute__((export_name(name)))

/* The length of the NUL-terminated string `s`. */
static inline int32_t xdv_strlen(const char *s) {
    int32_t n = 0;
    while (s[n]) n++;
    return n;
}

/* Logs the NUL-terminated string `s`; 0 or an error code. */
static inline int32_t xdv_log_str(const char *s) {
    return xdv_log(s, xdv_strlen(s));
}

/* Logs the text from `start` up to `end`; 0 or an error code. */
static inline int32_t xdv_log_span(const char *start, const char *end) {
    return xdv_log(start, (int32_t)(end - start));
}

/* Copies the NUL-terminated string `s` to `at` (without the NUL); returns the end. */
static inline char *xdv_put(char *at, const char *s) {
    while (*s) *at++ = *s++;
    return at;
}

/* Copies `len` bytes from `src` to `at`; returns the end. */
static inline char *xdv_put_bytes(char *at, const void *src, int32_t len) {
    const char *p = (const char *)src;
    for (int32_t i = 0; i < len; i++) at[i] = p[i];
    return at + len;
}

/* Writes the decimal form of `v` at `at`; returns the end (no NUL). */
static inline char *xdv_utoa(uint64_t v, char *at) {
    char digits[20];
    int n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n) *at++ = digits[--n];
    return at;
}

/* Writes the decimal form of the signed `v` at `at`; returns the end (no NUL). */
static inline char *xdv_itoa(int64_t v, char *at) {
    if (v < 0) {
        *at++ = '-';
        return xdv_utoa((uint64_t)0 - (uint64_t)v, at);
    }
    return xdv_utoa((uint64_t)v, at);
}

/* The handle of the `index`-th capability of object type `type` (XDV_TYPE_...), or
 * XDV_E_NOENT. */
static inline int64_t xdv_find(uint32_t type, uint32_t index) {
    return xdv_cap_find((int32_t)type, (int32_t)index);
}

/* The kind of a vhm_wait value (XDV_WAIT_EXIT, XDV_WAIT_FAULT, ...). */
static inline int64_t xdv_wait_kind(int64_t wait_value) {
    return wait_value >> 32;
}

#ifdef XDV_IMPLEMENTATION
/* The ABI version this guest was built for: a custom section xdv.abi of one little-endian
 * u32, which xdv checks at `check` and at spawn. (Module-level assembly: clang 14 turns a
 * `section(".custom_section.…")` variable into a data segment, not a custom section.) */
__asm__(XDV_ABI_SECTION_ASM);

/* What clang calls for struct copies and zeroing. With -mbulk-memory the builtins below are
 * single memory.fill / memory.copy instructions, not calls back into these functions. */
void *memset(void *dst, int c, size_t n) {
    __builtin_memset(dst, c, n);
    return dst;
}
void *memcpy(void *restrict dst, const void *restrict src, size_t n) {
    __builtin_memmove(dst, src, n);
    return dst;
}
void *memmove(void *dst, const void *src, size_t n) {
    __builtin_memmove(dst, src, n);
    return dst;
}
int memcmp(const void *a, const void *b, size_t n) {
    const unsigned char *x = (const unsigned char *)a, *y = (const unsigned char *)b;
    for (size_t i = 0; i < n; i++) {
        if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
    }
    return 0;
}
#endif /* XDV_IMPLEMENTATION */

#ifdef __cplusplus
}
#endif

#endif /* XDV_H */
