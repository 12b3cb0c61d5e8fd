/* FUZZ_MODULE proto */
/* Fuzz target for the proto decoder: the input is a byte stream from a
 * peer, fed to the incremental decoder in chunks whose sizes come from the
 * first input byte; each frame is decoded as a message, its lists are
 * iterated, and the handshake decision runs on it. Oracle beyond "no crash,
 * no sanitizer report": decoding is strict, so re-encoding a decoded
 * message must give back the exact frame bytes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk_lists(const struct proto_msg *m)
{
	struct proto_iter it;
	struct proto_dirent e;
	struct proto_dnsaddr a;
	const char *s;

	if (!(m->flags & PROTO_F_RESPONSE) || m->status != 0)
		return;
	proto_iter_init(&it, &m->rep.list);
	switch (m->type) {
	case PROTO_READDIR:
		while (proto_iter_dirent(&it, &e) > 0)
			(void)strlen(e.name);
		break;
	case PROTO_DNS_RESOLVE:
		while (proto_iter_dnsaddr(&it, &a) > 0)
			;
		break;
	case PROTO_GETENV:
		while (proto_iter_str(&it, &s) > 0)
			(void)strlen(s);
		break;
	default:
		return;
	}
	/* A decoded list was validated: iterating it cannot fail. */
	if (it.r.error || it.left != 0)
		abort();
}

static void check_frame(const struct proto_frame *f)
{
	static const uint8_t token[PROTO_TOKEN_SIZE] = {1};
	struct proto_server_params p = {.token = token,
					.caps = PROTO_CAP_ALL,
					.session_id = 1,
					.window = PROTO_WINDOW_DEFAULT,
					.name = "fuzz"};
	struct proto_msg m, reply;
	struct proto_welcome w;
	struct buf out = {0};
	uint8_t hdr[PROTO_HEADER_SIZE];

	if (proto_msg_decode(f, &m) < 0) {
		proto_handshake_server(NULL, &p, &reply);
		return;
	}
	walk_lists(&m);
	proto_msg_check(&m, true);
	proto_msg_check(&m, false);
	proto_handshake_server(&m, &p, &reply);
	proto_handshake_client(&m, &w, NULL);
	(void)proto_type_name(m.type);

	if (proto_msg_encode(&out, &m) != 0)
		abort();
	proto_header_format(hdr, f->type, f->flags, f->id, f->len);
	if (buf_len(&out) != PROTO_HEADER_SIZE + (size_t)f->len ||
	    memcmp(buf_data(&out), hdr, PROTO_HEADER_SIZE) != 0 ||
	    memcmp(buf_data(&out) + PROTO_HEADER_SIZE, f->payload, f->len) != 0) {
		fprintf(stderr, "re-encoding %s differs from the input\n", proto_type_name(m.type));
		abort();
	}
	buf_done(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proto_decoder *d;
	struct proto_frame f;
	size_t chunk, off;
	int r = 0;

	if (size == 0)
		return 0;
	/* Low bits: chunk size (1, 2, 3, 7, 16, 100, 4096 or all at once);
	 * high bit: the pre-authentication size limit. */
	static const size_t chunks[] = {1, 2, 3, 7, 16, 100, 4096, SIZE_MAX};
	chunk = chunks[data[0] & 7];
	proto_decoder_new((data[0] & 0x80) ? PROTO_HELLO_MAX : PROTO_PAYLOAD_MAX, &d);
	data++;
	size--;
	for (off = 0; off < size && r >= 0;) {
		size_t n = MIN(chunk, size - off);

		proto_decoder_feed(d, data + off, n);
		off += n;
		while ((r = proto_decoder_next(d, &f)) > 0)
			check_frame(&f);
	}
	proto_decoder_free(d);
	return 0;
}
