/* Outgoing and DNS filters, and the incoming HTTP filter.
 *
 * Filter entries follow mirrord's grammar
 * `[protocol://][name|address|subnet/mask][:port]` (research §4.3): the
 * address part is a run of [A-Za-z0-9-_.] (a host name or dotted IPv4) or
 * a bracketed IPv6 literal, then an optional /prefix (IP only), then an
 * optional :port; anything left over is an error. Port 0 or none means any
 * port, 0.0.0.0 / :: mean any address. DNS entries take no protocol.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "config/config_int.h"

void cfg_net_entry_done(struct cfg_net_entry *e)
{
	free(e->text);
	free(e->name);
	memset(e, 0, sizeof(*e));
}

static bool is_host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_' || c == '.';
}

static int digits(const char **p, unsigned long max, unsigned long *out)
{
	const char *s = *p;
	unsigned long v = 0;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	while (*s >= '0' && *s <= '9') {
		v = v * 10 + (unsigned long)(*s - '0');
		if (v > max)
			return -ERANGE;
		s++;
	}
	*p = s;
	*out = v;
	return 0;
}

int cfg_net_entry_parse(const char *text, bool allow_proto, struct cfg_net_entry *ret,
			struct err *reterr)
{
	struct cfg_net_entry e = {0};
	const char *s = text, *sep = strstr(text, "://");
	char host[256];
	size_t hlen = 0;
	bool bracket = false;
	unsigned long v;
	int r;

	if (sep) {
		size_t n = (size_t)(sep - s);
		if (!allow_proto)
			return err_set(reterr, -EINVAL,
				       "\"%s\": expected [name|address|subnet/mask][:port] (no "
				       "protocol in a DNS filter)",
				       text);
		if (n == 3 && strncasecmp(s, "tcp", 3) == 0)
			e.proto = CFG_PROTO_TCP;
		else if (n == 3 && strncasecmp(s, "udp", 3) == 0)
			e.proto = CFG_PROTO_UDP;
		else if (n == 3 && strncasecmp(s, "any", 3) == 0)
			e.proto = CFG_PROTO_ANY;
		else
			return err_set(
				reterr, -EINVAL,
				"\"%s\": unknown protocol \"%.*s\", expected tcp, udp or any", text,
				(int)MIN(n, 32), s);
		s = sep + 3;
	}
	if (*s == '[') {
		const char *end = strchr(s, ']');
		if (!end || (size_t)(end - s - 1) >= sizeof(host))
			return err_set(reterr, -EINVAL, "\"%s\": unterminated IPv6 address", text);
		hlen = (size_t)(end - s - 1);
		memcpy(host, s + 1, hlen);
		s = end + 1;
		bracket = true;
	} else {
		while (is_host_char(s[hlen]) && hlen < sizeof(host) - 1)
			hlen++;
		memcpy(host, s, hlen);
		s += hlen;
	}
	host[hlen] = '\0';

	if (bracket) {
		if (inet_pton(AF_INET6, host, e.addr) != 1)
			return err_set(reterr, -EINVAL, "\"%s\": invalid IPv6 address \"%s\"", text,
				       host);
		e.family = AF_INET6;
		e.kind = CFG_ADDR_IP;
		e.prefix = 128;
	} else if (hlen && strspn(host, "0123456789.") == hlen) {
		if (inet_pton(AF_INET, host, e.addr) != 1)
			return err_set(reterr, -EINVAL, "\"%s\": invalid IPv4 address \"%s\"", text,
				       host);
		e.family = AF_INET;
		e.kind = CFG_ADDR_IP;
		e.prefix = 32;
	} else if (hlen) {
		if (host[0] == '.' || host[0] == '-' || strstr(host, ".."))
			return err_set(reterr, -EINVAL, "\"%s\": invalid host name \"%s\"", text,
				       host);
		e.kind = CFG_ADDR_NAME;
	}

	if (*s == '/') {
		unsigned max = e.family == AF_INET6 ? 128 : 32;
		s++;
		if (e.kind != CFG_ADDR_IP)
			return err_set(reterr, -EINVAL,
				       "\"%s\": a subnet needs an IP address before the /mask",
				       text);
		r = digits(&s, max, &v);
		if (r < 0)
			return err_set(reterr, -EINVAL,
				       "\"%s\": expected a subnet mask length 0-%u after /", text,
				       max);
		e.kind = CFG_ADDR_SUBNET;
		e.prefix = (unsigned)v;
	}
	if (*s == ':') {
		s++;
		r = digits(&s, 65535, &v);
		if (r < 0)
			return err_set(reterr, -EINVAL,
				       "\"%s\": expected a port number 0-65535 after :", text);
		e.port = (uint16_t)v;
	}
	if (*s)
		return err_set(
			reterr, -EINVAL,
			"\"%s\": unexpected \"%s\"; expected %s[name|address|subnet/mask][:port]",
			text, s, allow_proto ? "[protocol://]" : "");
	if (e.kind == CFG_ADDR_IP || e.kind == CFG_ADDR_SUBNET) {
		static const uint8_t zero[16];
		size_t alen = e.family == AF_INET6 ? 16 : 4;
		if (memcmp(e.addr, zero, alen) == 0 && (e.kind == CFG_ADDR_IP || e.prefix == 0))
			e.kind = CFG_ADDR_ANY; /* 0.0.0.0, :: = any address */
	}
	if (e.kind == CFG_ADDR_NAME)
		e.name = xstrdup(host);
	e.text = xstrdup(text);
	*ret = e;
	return 0;
}

bool cfg_net_entry_match(const struct cfg_net_entry *e, enum cfg_proto proto, int family,
			 const void *addr, uint16_t port)
{
	const uint8_t *a = addr;

	if (e->proto != CFG_PROTO_ANY && e->proto != proto)
		return false;
	if (e->port && e->port != port)
		return false;
	switch (e->kind) {
	case CFG_ADDR_ANY:
		return true;
	case CFG_ADDR_NAME:
		return false;
	case CFG_ADDR_IP:
	case CFG_ADDR_SUBNET: {
		unsigned full, rem;
		if (family != e->family)
			return false;
		full = e->prefix / 8;
		rem = e->prefix % 8;
		if (memcmp(a, e->addr, full) != 0)
			return false;
		if (rem) {
			uint8_t mask = (uint8_t)(0xff << (8 - rem));
			if ((a[full] & mask) != (e->addr[full] & mask))
				return false;
		}
		return true;
	}
	}
	return false;
}

/* --- filter objects ----------------------------------------------------------- */

void cfg_net_filter_done(struct cfg_net_filter *f)
{
	for (size_t i = 0; i < f->n; i++)
		cfg_net_entry_done(&f->v[i]);
	free(f->v);
	memset(f, 0, sizeof(*f));
}

static void net_filter_push(struct cfg_net_filter *f, struct cfg_net_entry *e)
{
	f->v = xrealloc(f->v, (f->n + 1) * sizeof(*f->v));
	f->v[f->n++] = *e;
}

static int net_filter_parse(struct cfg_ctx *ctx, json_object *v, struct cfg_net_filter *f,
			    const char *path, bool outgoing)
{
	static const char *const known[] = {"local", "remote"};
	json_object *list = NULL;
	const char *side = NULL;
	struct cfg_strv sv = {0};
	_cleanup_free_ char *p = NULL;
	int r;

	cfg_net_filter_done(f);
	if (json_object_is_type(v, json_type_null))
		return 0;
	if (!json_object_is_type(v, json_type_object))
		return err_set(
			ctx->err, -EINVAL,
			"%s: expected an object {\"local\": [...]} or {\"remote\": [...]}, got %s",
			path, cfg_json_type_name(v));
	json_object_object_foreach(v, key, val)
	{
		if (strcmp(key, "local") != 0 && strcmp(key, "remote") != 0) {
			const char *s = cfg_suggest(key, known, ARRAY_SIZE(known));
			_cleanup_free_ char *kp = cfg_path_join(path, key);
			return err_set(ctx->err, -EINVAL,
				       s ? "%s: unknown field, did you mean \"%s\"?"
					 : "%s: unknown field, expected \"local\" or \"remote\"%s",
				       kp, s ? s : "");
		}
		if (side)
			return err_set(
				ctx->err, -EINVAL,
				"%s: \"local\" and \"remote\" are mutually exclusive, give one",
				path);
		side = key;
		list = val;
	}
	if (!side)
		return err_set(ctx->err, -EINVAL,
			       "%s: expected either \"local\" or \"remote\", got an empty object",
			       path);
	p = cfg_path_join(path, side);
	r = cfg_strv_parse(ctx, list, false, &sv, p);
	if (r < 0) {
		cfg_strv_done(&sv);
		return r;
	}
	if (sv.n == 0) {
		if (outgoing) {
			cfg_strv_done(&sv);
			return err_set(ctx->err, -EINVAL,
				       "%s: expected a non-empty list of filter entries", p);
		}
		cfg_warn(ctx, "%s: empty DNS filter list: every query is resolved %s", p,
			 strcmp(side, "local") == 0 ? "remotely" : "locally");
	}
	f->side = strcmp(side, "local") == 0 ? CFG_FILTER_LOCAL : CFG_FILTER_REMOTE;
	for (size_t i = 0; i < sv.n; i++) {
		struct cfg_net_entry e;
		r = cfg_net_entry_parse(sv.v[i], outgoing, &e, ctx->err);
		if (r < 0) {
			cfg_strv_done(&sv);
			return err_prefix(ctx->err, "%s[%zu]", p, i);
		}
		net_filter_push(f, &e);
	}
	cfg_strv_done(&sv);
	return 0;
}

static int outgoing_filter_parse(struct cfg_ctx *ctx, json_object *v, void *field, const char *path)
{
	return net_filter_parse(ctx, v, field, path, true);
}

static int dns_filter_parse(struct cfg_ctx *ctx, json_object *v, void *field, const char *path)
{
	return net_filter_parse(ctx, v, field, path, false);
}

json_object *cfg_net_filter_format(const struct cfg_net_filter *f)
{
	json_object *o, *a;

	if (f->side == CFG_FILTER_NONE)
		return NULL;
	o = json_object_new_object();
	a = json_object_new_array();
	for (size_t i = 0; i < f->n; i++)
		json_object_array_add(a, json_object_new_string(f->v[i].text));
	json_object_object_add(o, f->side == CFG_FILTER_LOCAL ? "local" : "remote", a);
	return o;
}

static json_object *net_filter_format(const void *field)
{
	return cfg_net_filter_format(field);
}

static void net_filter_free(void *field)
{
	cfg_net_filter_done(field);
}

#define NET_FILTER_SCHEMA(desc)                                                                    \
	"{\"description\": \"" desc "\", \"anyOf\": [{\"type\": \"null\"}, "                       \
	"{\"type\": \"object\", \"additionalProperties\": false, \"required\": [\"local\"], "      \
	"\"properties\": {\"local\": {\"type\": [\"string\", \"array\"], \"items\": {\"type\": "   \
	"\"string\"}}}}, "                                                                         \
	"{\"type\": \"object\", \"additionalProperties\": false, \"required\": [\"remote\"], "     \
	"\"properties\": {\"remote\": {\"type\": [\"string\", \"array\"], \"items\": {\"type\": "  \
	"\"string\"}}}}]}"

const struct cfg_custom cfg_outgoing_filter_custom = {
	.parse = outgoing_filter_parse,
	.format = net_filter_format,
	.free = net_filter_free,
	.schema = NET_FILTER_SCHEMA("Traffic sent from the local app (local) or the pod (remote): "
				    "entries [protocol://][name|address|subnet/mask][:port]."),
};

const struct cfg_custom cfg_dns_filter_custom = {
	.parse = dns_filter_parse,
	.format = net_filter_format,
	.free = net_filter_free,
	.schema = NET_FILTER_SCHEMA("Queries resolved locally (local) or in the pod (remote): "
				    "entries [name|address|subnet/mask][:port]."),
};

/* Names in the outgoing filter are copied into the DNS filter on the same
 * side (mirrord's reflect_outgoing_filter_in_dns): a name routed local must
 * also be resolved locally, or its pod address would be dialled locally. */
void cfg_dns_reflect_outgoing(struct cfg_ctx *ctx)
{
	struct cfg_network *n = &ctx->cfg->feature.network;
	struct cfg_net_filter *of = &n->outgoing.filter, *df = &n->dns.filter;

	if (!n->dns.enabled || of->side == CFG_FILTER_NONE)
		return;
	for (size_t i = 0; i < of->n; i++) {
		const struct cfg_net_entry *oe = &of->v[i];
		struct cfg_net_entry e = {0};
		bool dup = false;
		char *text;

		if (oe->kind != CFG_ADDR_NAME)
			continue;
		if (df->side != CFG_FILTER_NONE && df->side != of->side) {
			cfg_warn(ctx,
				 "feature.network.outgoing.filter: \"%s\" is routed %s but "
				 "feature.network.dns.filter lists the other side",
				 oe->text, of->side == CFG_FILTER_LOCAL ? "local" : "remote");
			continue;
		}
		if (df->side == CFG_FILTER_NONE && of->side == CFG_FILTER_REMOTE)
			continue; /* everything is already resolved remotely */
		text = oe->port ? xasprintf("%s:%u", oe->name, oe->port) : xstrdup(oe->name);
		for (size_t j = 0; j < df->n; j++)
			if (strcmp(df->v[j].text, text) == 0)
				dup = true;
		if (!dup && cfg_net_entry_parse(text, false, &e, NULL) == 0) {
			df->side = of->side;
			net_filter_push(df, &e);
		}
		free(text);
	}
}

/* --- HTTP filter -------------------------------------------------------------- */

static const struct {
	const char *key;   /* top-level key */
	const char *inner; /* key inside all_of/any_of entries */
	enum cfg_http_kind kind;
} http_keys[] = {
	{"header_filter", "header", CFG_HTTP_HEADER},
	{"path_filter", "path", CFG_HTTP_PATH},
	{"method_filter", "method", CFG_HTTP_METHOD},
	{"header_filter_jq", "query", CFG_HTTP_HEADER_JQ},
	{"body_filter", NULL, CFG_HTTP_BODY},
	{"all_of", NULL, CFG_HTTP_ALL_OF},
	{"any_of", NULL, CFG_HTTP_ANY_OF},
};

void cfg_http_filter_done(struct cfg_http_filter *f)
{
	free(f->value);
	free(f->matches);
	cfg_regex_free(f->re);
	for (size_t i = 0; i < f->nsub; i++)
		cfg_http_filter_done(&f->sub[i]);
	free(f->sub);
	cfg_ports_done(&f->ports);
	memset(f, 0, sizeof(*f));
}

static const char *const methods[] = {"GET",	 "HEAD",    "POST",  "PUT",  "DELETE",
				      "CONNECT", "OPTIONS", "TRACE", "PATCH"};

static int http_leaf_set(struct cfg_http_filter *f, enum cfg_http_kind kind, const char *value,
			 const char *path, struct err *reterr)
{
	int r;

	if (!*value)
		return err_set(reterr, -EINVAL, "%s: expected a non-empty string", path);
	if (kind == CFG_HTTP_HEADER || kind == CFG_HTTP_PATH) {
		r = cfg_regex_new(value, true, &f->re, path, reterr);
		if (r < 0)
			return r;
	}
	if (kind == CFG_HTTP_METHOD) {
		/* Any token is a valid (custom) method; reject what is not a token. */
		for (const char *c = value; *c; c++)
			if (!(is_host_char(*c) && *c != '.'))
				return err_set(reterr, -EINVAL,
					       "%s: expected an HTTP method name (GET, POST, …), "
					       "got \"%s\"",
					       path, value);
		(void)methods;
	}
	f->kind = kind;
	f->value = xstrdup(value);
	return 0;
}

static int body_parse(struct cfg_ctx *ctx, json_object *v, struct cfg_http_filter *f,
		      const char *path)
{
	json_object *body = NULL, *query = NULL, *matches = NULL;
	_cleanup_free_ char *mp = cfg_path_join(path, "matches");
	int r;

	if (!json_object_is_type(v, json_type_object))
		return err_set(
			ctx->err, -EINVAL,
			"%s: expected {\"body\": \"json\", \"query\": …, \"matches\": …}, got %s",
			path, cfg_json_type_name(v));
	json_object_object_foreach(v, key, val)
	{
		if (strcmp(key, "body") == 0)
			body = val;
		else if (strcmp(key, "query") == 0)
			query = val;
		else if (strcmp(key, "matches") == 0)
			matches = val;
		else
			return err_set(
				ctx->err, -EINVAL,
				"%s.%s: unknown field, expected one of: body, query, matches", path,
				key);
	}
	if (!body || !json_object_is_type(body, json_type_string) ||
	    strcmp(json_object_get_string(body), "json") != 0)
		return err_set(ctx->err, -EINVAL, "%s.body: expected \"json\"", path);
	if (!query || !json_object_is_type(query, json_type_string) ||
	    !*json_object_get_string(query))
		return err_set(ctx->err, -EINVAL, "%s.query: expected a JSONPath string", path);
	if (!matches || !json_object_is_type(matches, json_type_string) ||
	    !*json_object_get_string(matches))
		return err_set(ctx->err, -EINVAL, "%s: expected a regular expression", mp);
	r = cfg_regex_new(json_object_get_string(matches), false, &f->re, mp, ctx->err);
	if (r < 0)
		return r;
	f->kind = CFG_HTTP_BODY;
	f->value = xstrdup(json_object_get_string(query));
	f->matches = xstrdup(json_object_get_string(matches));
	return 0;
}

static int http_inner_parse(struct cfg_ctx *ctx, json_object *v, struct cfg_http_filter *f,
			    const char *path)
{
	const char *key = NULL;
	json_object *val = NULL;

	if (!json_object_is_type(v, json_type_object))
		return err_set(ctx->err, -EINVAL,
			       "%s: expected a filter object ({\"header\": …}, {\"path\": …}, "
			       "{\"method\": …}, {\"query\": …} or a body filter), got %s",
			       path, cfg_json_type_name(v));
	if (json_object_object_get_ex(v, "body", NULL))
		return body_parse(ctx, v, f, path);
	if (json_object_object_length(v) != 1)
		return err_set(
			ctx->err, -EINVAL,
			"%s: expected exactly one of \"header\", \"path\", \"method\", \"query\"",
			path);
	json_object_object_foreach(v, k, vv)
	{
		key = k;
		val = vv;
	}
	for (size_t i = 0; i < ARRAY_SIZE(http_keys); i++)
		if (http_keys[i].inner && strcmp(http_keys[i].inner, key) == 0) {
			_cleanup_free_ char *p = cfg_path_join(path, key);
			if (!json_object_is_type(val, json_type_string))
				return err_set(ctx->err, -EINVAL, "%s: expected a string, got %s",
					       p, cfg_json_type_name(val));
			return http_leaf_set(f, http_keys[i].kind, json_object_get_string(val), p,
					     ctx->err);
		}
	return err_set(ctx->err, -EINVAL,
		       "%s.%s: unknown field, expected one of: header, path, method, query, body",
		       path, key);
}

static int http_filter_parse(struct cfg_ctx *ctx, json_object *v, void *field, const char *path)
{
	struct cfg_http_filter *f = field;
	const char *known[ARRAY_SIZE(http_keys) + 1];
	const char *kind_key = NULL;
	int r;

	cfg_http_filter_done(f);
	if (json_object_is_type(v, json_type_null) || json_object_is_type(v, json_type_boolean))
		return 0; /* true: defaults (no filter); false: disabled */
	if (!json_object_is_type(v, json_type_object))
		return err_set(ctx->err, -EINVAL, "%s: expected an object, got %s", path,
			       cfg_json_type_name(v));
	for (size_t i = 0; i < ARRAY_SIZE(http_keys); i++)
		known[i] = http_keys[i].key;
	known[ARRAY_SIZE(http_keys)] = "ports";
	json_object_object_foreach(v, key, val)
	{
		_cleanup_free_ char *p = cfg_path_join(path, key);
		size_t i;

		if (strcmp(key, "ports") == 0) {
			r = cfg_ports_parse(ctx, val, &f->ports, p);
			if (r < 0)
				return r;
			continue;
		}
		for (i = 0; i < ARRAY_SIZE(http_keys); i++)
			if (strcmp(http_keys[i].key, key) == 0)
				break;
		if (i == ARRAY_SIZE(http_keys)) {
			const char *s = cfg_suggest(key, known, ARRAY_SIZE(known));
			return err_set(ctx->err, -EINVAL,
				       s ? "%s: unknown field, did you mean \"%s\"?"
					 : "%s: unknown field, expected one of: header_filter, "
					   "path_filter, "
					   "method_filter, header_filter_jq, body_filter, all_of, "
					   "any_of, ports%s",
				       p, s ? s : "");
		}
		if (json_object_is_type(val, json_type_null))
			continue;
		if (kind_key)
			return err_set(ctx->err, -EINVAL,
				       "%s: only one of \"%s\" and \"%s\" may be set (combine "
				       "filters with all_of/any_of)",
				       p, kind_key, key);
		kind_key = key;
		switch (http_keys[i].kind) {
		case CFG_HTTP_BODY:
			r = body_parse(ctx, val, f, p);
			break;
		case CFG_HTTP_ALL_OF:
		case CFG_HTTP_ANY_OF: {
			size_t n;
			if (!json_object_is_type(val, json_type_array))
				return err_set(ctx->err, -EINVAL,
					       "%s: expected a list of filters, got %s", p,
					       cfg_json_type_name(val));
			n = json_object_array_length(val);
			if (n == 0)
				return err_set(ctx->err, -EINVAL,
					       "%s: expected a non-empty list of filters", p);
			f->kind = http_keys[i].kind;
			f->sub = xcalloc(n, sizeof(*f->sub));
			r = 0;
			for (size_t j = 0; j < n && r >= 0; j++) {
				char sp[512];
				snprintf(sp, sizeof(sp), "%s[%zu]", p, j);
				r = http_inner_parse(ctx, json_object_array_get_idx(val, j),
						     &f->sub[j], sp);
				f->nsub++;
			}
			break;
		}
		default:
			if (!json_object_is_type(val, json_type_string))
				return err_set(ctx->err, -EINVAL, "%s: expected a string, got %s",
					       p, cfg_json_type_name(val));
			r = http_leaf_set(f, http_keys[i].kind, json_object_get_string(val), p,
					  ctx->err);
			break;
		}
		if (r < 0)
			return r;
	}
	return 0;
}

int cfg_http_filter_set_env(struct cfg_http_filter *f, enum cfg_http_kind kind, const char *value,
			    const char *path, struct err *reterr)
{
	struct cfg_http_filter nf = {0};
	int r = http_leaf_set(&nf, kind, value, path, reterr);

	if (r < 0) {
		cfg_http_filter_done(&nf);
		return r;
	}
	nf.ports = f->ports;
	memset(&f->ports, 0, sizeof(f->ports));
	cfg_http_filter_done(f);
	*f = nf;
	return 0;
}

static json_object *ports_format(const struct cfg_ports *p)
{
	json_object *a;

	if (!p->set)
		return NULL;
	a = json_object_new_array();
	for (size_t i = 0; i < p->n; i++)
		json_object_array_add(a, json_object_new_int(p->v[i]));
	return a;
}

static json_object *http_inner_format(const struct cfg_http_filter *f)
{
	json_object *o = json_object_new_object();

	for (size_t i = 0; i < ARRAY_SIZE(http_keys); i++)
		if (http_keys[i].kind == f->kind && http_keys[i].inner)
			json_object_object_add(o, http_keys[i].inner,
					       json_object_new_string(f->value));
	if (f->kind == CFG_HTTP_BODY) {
		json_object_object_add(o, "body", json_object_new_string("json"));
		json_object_object_add(o, "query", json_object_new_string(f->value));
		json_object_object_add(o, "matches", json_object_new_string(f->matches));
	}
	return o;
}

static json_object *http_filter_format(const void *field)
{
	const struct cfg_http_filter *f = field;
	json_object *o;

	if (f->kind == CFG_HTTP_NONE && !f->ports.set)
		return NULL;
	o = json_object_new_object();
	for (size_t i = 0; i < ARRAY_SIZE(http_keys); i++) {
		if (http_keys[i].kind != f->kind)
			continue;
		if (f->kind == CFG_HTTP_ALL_OF || f->kind == CFG_HTTP_ANY_OF) {
			json_object *a = json_object_new_array();
			for (size_t j = 0; j < f->nsub; j++)
				json_object_array_add(a, http_inner_format(&f->sub[j]));
			json_object_object_add(o, http_keys[i].key, a);
		} else if (f->kind == CFG_HTTP_BODY) {
			json_object *b = http_inner_format(f);
			json_object_object_add(o, http_keys[i].key, b);
		} else {
			json_object_object_add(o, http_keys[i].key,
					       json_object_new_string(f->value));
		}
	}
	json_object_object_add(o, "ports", ports_format(&f->ports));
	return o;
}

static void http_filter_free(void *field)
{
	cfg_http_filter_done(field);
}

const struct cfg_custom cfg_http_filter_custom = {
	.parse = http_filter_parse,
	.format = http_filter_format,
	.free = http_filter_free,
	.schema =
		"{\"description\": \"Steal or mirror only HTTP requests that match: one of "
		"header_filter, path_filter, method_filter, header_filter_jq, body_filter, all_of, "
		"any_of (case-insensitive regexes, look-around allowed).\", \"anyOf\": ["
		"{\"type\": [\"null\", \"boolean\"]}, {\"type\": \"object\", "
		"\"additionalProperties\": false, "
		"\"properties\": {\"header_filter\": {\"type\": \"string\"}, \"path_filter\": "
		"{\"type\": \"string\"}, "
		"\"method_filter\": {\"type\": \"string\"}, \"header_filter_jq\": {\"type\": "
		"\"string\"}, "
		"\"body_filter\": {\"type\": \"object\"}, "
		"\"all_of\": {\"type\": \"array\", \"minItems\": 1, \"items\": {\"type\": "
		"\"object\"}}, "
		"\"any_of\": {\"type\": \"array\", \"minItems\": 1, \"items\": {\"type\": "
		"\"object\"}}, "
		"\"ports\": {\"type\": [\"array\", \"null\"], \"items\": {\"type\": \"integer\", "
		"\"minimum\": 0, \"maximum\": 65535}}}}]}",
};
