/* SPDX-License-Identifier: Apache-2.0 */
#include "wire.h"

#include <string.h>

#include "mei.h"

int cur_ref(struct cursor *c, const uint8_t **p, size_t n)
{
	if (c->left < n)
		return MEI_E_PROTOCOL;
	*p = c->p;
	c->p += n;
	c->left -= n;
	return 0;
}

int cur_bytes(struct cursor *c, void *out, size_t n)
{
	const uint8_t *p;
	int r = cur_ref(c, &p, n);

	if (r == 0 && n > 0)
		memcpy(out, p, n);
	return r;
}

int cur_skip(struct cursor *c, size_t n)
{
	const uint8_t *p;

	return cur_ref(c, &p, n);
}

int cur_u8(struct cursor *c, uint8_t *v)
{
	return cur_bytes(c, v, 1);
}

int cur_u16le(struct cursor *c, uint16_t *v)
{
	const uint8_t *p;
	int r = cur_ref(c, &p, 2);

	if (r == 0)
		*v = (uint16_t)(p[0] | (p[1] << 8));
	return r;
}

int cur_u32le(struct cursor *c, uint32_t *v)
{
	const uint8_t *p;
	int r = cur_ref(c, &p, 4);

	if (r == 0)
		*v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
		     (uint32_t)p[3] << 24;
	return r;
}

int cur_u32be(struct cursor *c, uint32_t *v)
{
	const uint8_t *p;
	int r = cur_ref(c, &p, 4);

	if (r == 0)
		*v = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
		     (uint32_t)p[3];
	return r;
}

int cur_string_be(struct cursor *c, const uint8_t **p, uint32_t *len)
{
	uint32_t n;
	int r = cur_u32be(c, &n);

	if (r == 0)
		r = cur_ref(c, p, n);
	if (r == 0)
		*len = n;
	return r;
}

int cur_end(const struct cursor *c)
{
	return c->left == 0 ? 0 : MEI_E_PROTOCOL;
}

void put_bytes(struct wbuf *w, const void *b, size_t n)
{
	if (w->overflow || w->cap - w->len < n) {
		w->overflow = true;
		return;
	}
	if (n > 0)
		memcpy(w->p + w->len, b, n);
	w->len += n;
}

void put_zeros(struct wbuf *w, size_t n)
{
	if (w->overflow || w->cap - w->len < n) {
		w->overflow = true;
		return;
	}
	memset(w->p + w->len, 0, n);
	w->len += n;
}

void put_u8(struct wbuf *w, uint8_t v)
{
	put_bytes(w, &v, 1);
}

void put_u16le(struct wbuf *w, uint16_t v)
{
	uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};

	put_bytes(w, b, sizeof(b));
}

void put_u32le(struct wbuf *w, uint32_t v)
{
	uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};

	put_bytes(w, b, sizeof(b));
}

void put_u32be(struct wbuf *w, uint32_t v)
{
	uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};

	put_bytes(w, b, sizeof(b));
}

void put_string_be(struct wbuf *w, const void *b, uint32_t n)
{
	put_u32be(w, n);
	put_bytes(w, b, n);
}
