/* The version handshake and authentication (docs/PROTOCOL.md,
 * "Handshake"): the client's HELLO, the agent's decision (WELCOME or
 * REFUSE), the client's check of the answer, and token helpers.
 *
 * Order of checks on the agent: magic, then version, then token. The
 * token is compared in constant time, and the refusal for a wrong token
 * says only "authentication failed", so a client learns nothing about
 * how close it came. */
#include <ctype.h>
#include <errno.h>

#include "proto/proto_int.h"

bool proto_token_equal(const uint8_t a[PROTO_TOKEN_SIZE], const uint8_t b[PROTO_TOKEN_SIZE])
{
	/* volatile keeps the compiler from turning the loop into an early
	 * exit on the first difference. */
	const volatile uint8_t *va = a, *vb = b;
	uint8_t diff = 0;

	for (size_t i = 0; i < PROTO_TOKEN_SIZE; i++)
		diff |= va[i] ^ vb[i];
	return diff == 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int proto_token_parse(const char *hex, uint8_t token[PROTO_TOKEN_SIZE])
{
	uint8_t out[PROTO_TOKEN_SIZE];
	const char *p = hex;

	while (isspace((unsigned char)*p))
		p++;
	for (size_t i = 0; i < PROTO_TOKEN_SIZE; i++) {
		int hi = hexval(p[0]), lo = hi < 0 ? -1 : hexval(p[1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[i] = (uint8_t)(hi << 4 | lo);
		p += 2;
	}
	while (isspace((unsigned char)*p))
		p++;
	if (*p)
		return -EINVAL;
	memcpy(token, out, PROTO_TOKEN_SIZE);
	return 0;
}

void proto_token_format(const uint8_t token[PROTO_TOKEN_SIZE], char hex[2 * PROTO_TOKEN_SIZE + 1])
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < PROTO_TOKEN_SIZE; i++) {
		hex[2 * i] = digits[token[i] >> 4];
		hex[2 * i + 1] = digits[token[i] & 0xf];
	}
	hex[2 * PROTO_TOKEN_SIZE] = '\0';
}

void proto_hello_init(struct proto_msg *m, const uint8_t token[PROTO_TOKEN_SIZE], uint64_t caps,
		      uint32_t window, const char *name)
{
	*m = (struct proto_msg){.type = PROTO_HELLO};
	m->hello.version_min = PROTO_VERSION_MIN;
	m->hello.version_max = PROTO_VERSION;
	m->hello.caps = caps;
	m->hello.window = window;
	memcpy(m->hello.token, token, PROTO_TOKEN_SIZE);
	m->hello.name = name;
}

static int refuse(struct proto_msg *reply, uint16_t reason, const char *message, int code)
{
	*reply = (struct proto_msg){.type = PROTO_REFUSE};
	reply->refuse.reason = reason;
	reply->refuse.version_min = PROTO_VERSION_MIN;
	reply->refuse.version_max = PROTO_VERSION;
	reply->refuse.message = message;
	return code;
}

int proto_handshake_server(const struct proto_msg *first, const struct proto_server_params *p,
			   struct proto_msg *reply)
{
	const struct proto_hello *h;
	uint16_t version;

	if (!first || first->type != PROTO_HELLO)
		return refuse(reply, PROTO_REFUSE_MAGIC, "expected a podenv HELLO", -EPROTO);
	h = &first->hello;
	if (h->version_min > h->version_max || h->version_max < PROTO_VERSION_MIN ||
	    h->version_min > PROTO_VERSION)
		return refuse(reply, PROTO_REFUSE_VERSION, "no common protocol version",
			      -EPROTONOSUPPORT);
	version = MIN(h->version_max, (uint16_t)PROTO_VERSION);
	if (!proto_token_equal(h->token, p->token))
		return refuse(reply, PROTO_REFUSE_AUTH, "authentication failed", -EACCES);
	if (h->window == 0 || h->window > PROTO_WINDOW_MAX)
		return refuse(reply, PROTO_REFUSE_INTERNAL, "invalid stream window", -EPROTO);

	*reply = (struct proto_msg){.type = PROTO_WELCOME};
	reply->welcome.version = version;
	reply->welcome.caps = h->caps & p->caps;
	reply->welcome.session_id = p->session_id;
	reply->welcome.window = p->window;
	reply->welcome.name = p->name;
	return 0;
}

int proto_handshake_client(const struct proto_msg *first, struct proto_welcome *welcome,
			   struct err *reterr)
{
	const struct proto_refuse *rf;

	if (first->type == PROTO_WELCOME) {
		const struct proto_welcome *w = &first->welcome;

		if (w->version < PROTO_VERSION_MIN || w->version > PROTO_VERSION)
			return err_set(reterr, -EPROTONOSUPPORT,
				       "agent chose protocol version %u, we speak %u..%u",
				       w->version, PROTO_VERSION_MIN, PROTO_VERSION);
		if (w->window == 0 || w->window > PROTO_WINDOW_MAX)
			return err_set(reterr, -EPROTO, "agent sent an invalid stream window %u",
				       w->window);
		*welcome = *w;
		return 0;
	}
	if (first->type != PROTO_REFUSE)
		return err_set(reterr, -EPROTO, "agent answered the handshake with %s (0x%04x)",
			       proto_type_name(first->type) ?: "an unknown message", first->type);
	rf = &first->refuse;
	switch (rf->reason) {
	case PROTO_REFUSE_AUTH:
		return err_set(reterr, -EACCES, "agent refused the connection: wrong token (%s)",
			       rf->message);
	case PROTO_REFUSE_VERSION:
		return err_set(reterr, -EPROTONOSUPPORT,
			       "agent speaks protocol versions %u..%u, we speak %u..%u (%s)",
			       rf->version_min, rf->version_max, PROTO_VERSION_MIN, PROTO_VERSION,
			       rf->message);
	default:
		return err_set(reterr, -ECONNREFUSED,
			       "agent refused the connection (reason %u): %s", rf->reason,
			       rf->message);
	}
}
