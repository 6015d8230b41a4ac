/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Bounded reading and writing of wire bytes, in the manner of OpenSSH's sshbuf: every getter
 * checks the bytes left and returns MEI_E_PROTOCOL instead of reading past the end. PTHI is
 * little-endian and APF big-endian, so both getters stand side by side. Internal to mei/ (the
 * emulator under tests/ uses it too, to build the bytes it sends).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cursor {
	const uint8_t *p;
	size_t left;
};

static inline struct cursor cursor_init(const void *buf, size_t len)
{
	return (struct cursor){.p = buf, .left = len};
}

int cur_u8(struct cursor *c, uint8_t *v);
int cur_u16le(struct cursor *c, uint16_t *v);
int cur_u32le(struct cursor *c, uint32_t *v);
int cur_u32be(struct cursor *c, uint32_t *v);
int cur_bytes(struct cursor *c, void *out, size_t n);
/* Borrow N bytes in place. */
int cur_ref(struct cursor *c, const uint8_t **p, size_t n);
int cur_skip(struct cursor *c, size_t n);
/* APF string: u32 big-endian length, then the bytes (borrowed). */
int cur_string_be(struct cursor *c, const uint8_t **p, uint32_t *len);
/* MEI_E_PROTOCOL unless every byte was consumed. */
int cur_end(const struct cursor *c);

/* A writer over a fixed buffer. Overflow is sticky: check wbuf_ok() once at the end. */
struct wbuf {
	uint8_t *p;
	size_t cap;
	size_t len;
	bool overflow;
};

static inline struct wbuf wbuf_init(void *buf, size_t cap)
{
	return (struct wbuf){.p = buf, .cap = cap};
}

static inline bool wbuf_ok(const struct wbuf *w)
{
	return !w->overflow;
}

void put_u8(struct wbuf *w, uint8_t v);
void put_u16le(struct wbuf *w, uint16_t v);
void put_u32le(struct wbuf *w, uint32_t v);
void put_u32be(struct wbuf *w, uint32_t v);
void put_bytes(struct wbuf *w, const void *b, size_t n);
void put_zeros(struct wbuf *w, size_t n);
/* APF string: u32 big-endian length, then the bytes. */
void put_string_be(struct wbuf *w, const void *b, uint32_t n);
