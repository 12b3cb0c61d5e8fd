/* The table-driven walk from a json-c tree onto the typed structs: each
 * descriptor of schema.c says what C type sits at which offset, so one
 * function per kind parses, defaults and frees every field of the format.
 * Errors name the JSON path ("feature.network.incoming.mode") and what
 * was expected; unknown keys are rejected with the closest known key.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config/config_int.h"

#define FIELD(base, f) ((void *)((char *)(base) + (f)->off))

char *cfg_path_join(const char *path, const char *key)
{
	if (!path || !*path)
		return xstrdup(key);
	return xasprintf("%s.%s", path, key);
}

const char *cfg_json_type_name(json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_null:
		return "null";
	case json_type_boolean:
		return "a boolean";
	case json_type_double:
		return "a number";
	case json_type_int:
		return "an integer";
	case json_type_object:
		return "an object";
	case json_type_array:
		return "an array";
	case json_type_string:
		return "a string";
	}
	return "?";
}

void cfg_warn(struct cfg_ctx *ctx, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		abort();
	va_end(ap);
	/* One warning per field, even when a section is parsed twice. */
	for (size_t i = 0; i < ctx->cfg->warnings.n; i++)
		if (strcmp(ctx->cfg->warnings.v[i], s) == 0) {
			free(s);
			return;
		}
	cfg_strv_push(&ctx->cfg->warnings, s);
	free(s);
}

/* mirrord parses booleans from the environment with Rust's FromStr:
 * "true"/"false"; we also take 1/0 as a convenience. */
int cfg_bool_parse_str(const char *s)
{
	if (strcasecmp(s, "true") == 0 || strcmp(s, "1") == 0)
		return 1;
	if (strcasecmp(s, "false") == 0 || strcmp(s, "0") == 0)
		return 0;
	return -EINVAL;
}

/* --- small containers ------------------------------------------------------ */

void cfg_strv_push(struct cfg_strv *v, const char *s)
{
	v->v = xrealloc(v->v, (v->n + 2) * sizeof(*v->v));
	v->v[v->n++] = xstrdup(s);
	v->v[v->n] = NULL;
}

void cfg_strv_done(struct cfg_strv *v)
{
	for (size_t i = 0; i < v->n; i++)
		free(v->v[i]);
	free(v->v);
	v->v = NULL;
	v->n = 0;
}

/* mirrord joins list values with ';' and splits them back, so "A;B" works
 * wherever a list does; empty items are dropped. */
void cfg_strv_split(struct cfg_strv *out, const char *s, bool semi)
{
	if (!semi) {
		cfg_strv_push(out, s);
		return;
	}
	while (*s) {
		size_t n = strcspn(s, ";");
		if (n) {
			char *item = xstrndup(s, n);
			cfg_strv_push(out, item);
			free(item);
		}
		s += n;
		if (*s == ';')
			s++;
	}
}

int cfg_strv_parse(struct cfg_ctx *ctx, json_object *v, bool semi, struct cfg_strv *out,
		   const char *path)
{
	cfg_strv_done(out);
	if (json_object_is_type(v, json_type_null))
		return 0;
	if (json_object_is_type(v, json_type_string)) {
		cfg_strv_split(out, json_object_get_string(v), semi);
		return 0;
	}
	if (!json_object_is_type(v, json_type_array))
		return err_set(ctx->err, -EINVAL,
			       "%s: expected a string or a list of strings, got %s", path,
			       cfg_json_type_name(v));
	for (size_t i = 0; i < json_object_array_length(v); i++) {
		json_object *e = json_object_array_get_idx(v, i);
		if (!json_object_is_type(e, json_type_string))
			return err_set(ctx->err, -EINVAL, "%s[%zu]: expected a string, got %s",
				       path, i, cfg_json_type_name(e));
		if (semi)
			cfg_strv_split(out, json_object_get_string(e), true);
		else
			cfg_strv_push(out, json_object_get_string(e));
	}
	return 0;
}

void cfg_strmap_push(struct cfg_strmap *m, const char *k, const char *v)
{
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->keys[i], k) == 0) {
			free(m->values[i]);
			m->values[i] = xstrdup(v);
			return;
		}
	m->keys = xrealloc(m->keys, (m->n + 1) * sizeof(*m->keys));
	m->values = xrealloc(m->values, (m->n + 1) * sizeof(*m->values));
	m->keys[m->n] = xstrdup(k);
	m->values[m->n] = xstrdup(v);
	m->n++;
}

void cfg_strmap_done(struct cfg_strmap *m)
{
	for (size_t i = 0; i < m->n; i++) {
		free(m->keys[i]);
		free(m->values[i]);
	}
	free(m->keys);
	free(m->values);
	memset(m, 0, sizeof(*m));
}

void cfg_ports_done(struct cfg_ports *p)
{
	free(p->v);
	memset(p, 0, sizeof(*p));
}

static int port_parse(struct cfg_ctx *ctx, json_object *e, uint16_t *out, const char *path,
		      size_t i)
{
	int64_t n;

	if (!json_object_is_type(e, json_type_int))
		return err_set(ctx->err, -EINVAL, "%s[%zu]: expected a port number, got %s", path,
			       i, cfg_json_type_name(e));
	n = json_object_get_int64(e);
	if (n < 0 || n > 65535)
		return err_set(ctx->err, -EINVAL,
			       "%s[%zu]: expected a port number (0-65535), got %lld", path, i,
			       (long long)n);
	*out = (uint16_t)n;
	return 0;
}

int cfg_ports_parse(struct cfg_ctx *ctx, json_object *v, struct cfg_ports *out, const char *path)
{
	cfg_ports_done(out);
	if (json_object_is_type(v, json_type_null))
		return 0;
	if (!json_object_is_type(v, json_type_array))
		return err_set(ctx->err, -EINVAL, "%s: expected a list of port numbers, got %s",
			       path, cfg_json_type_name(v));
	out->set = true;
	out->v = xcalloc(json_object_array_length(v) + 1, sizeof(*out->v));
	for (size_t i = 0; i < json_object_array_length(v); i++) {
		int r = port_parse(ctx, json_object_array_get_idx(v, i), &out->v[out->n], path, i);
		if (r < 0)
			return r;
		out->n++;
	}
	return 0;
}

static int pairs_parse(struct cfg_ctx *ctx, json_object *v, struct cfg_port_pairs *out,
		       const char *path)
{
	free(out->v);
	memset(out, 0, sizeof(*out));
	if (json_object_is_type(v, json_type_null))
		return 0;
	if (!json_object_is_type(v, json_type_array))
		return err_set(ctx->err, -EINVAL,
			       "%s: expected a list of [local, remote] port pairs, got %s", path,
			       cfg_json_type_name(v));
	out->v = xcalloc(json_object_array_length(v) + 1, sizeof(*out->v));
	for (size_t i = 0; i < json_object_array_length(v); i++) {
		json_object *e = json_object_array_get_idx(v, i);
		char sub[256];
		uint16_t a, b;
		int r;

		if (!json_object_is_type(e, json_type_array) || json_object_array_length(e) != 2)
			return err_set(
				ctx->err, -EINVAL,
				"%s[%zu]: expected a pair [local, remote] of port numbers, got %s",
				path, i, cfg_json_type_name(e));
		snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
		r = port_parse(ctx, json_object_array_get_idx(e, 0), &a, sub, 0);
		if (r >= 0)
			r = port_parse(ctx, json_object_array_get_idx(e, 1), &b, sub, 1);
		if (r < 0)
			return r;
		for (size_t j = 0; j < out->n; j++)
			if (out->v[j].local == a)
				return err_set(ctx->err, -EINVAL,
					       "%s[%zu]: port %u is mapped twice", path, i, a);
		out->v[out->n].local = a;
		out->v[out->n].remote = b;
		out->n++;
	}
	return 0;
}

/* --- suggestions ----------------------------------------------------------- */

static size_t levenshtein(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	size_t row[64], prev, tmp;

	if (lb >= ARRAY_SIZE(row))
		return SIZE_MAX;
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		prev = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
			tmp = row[j];
			row[j] = MIN(MIN(row[j] + 1, row[j - 1] + 1), prev + cost);
			prev = tmp;
		}
	}
	return row[lb];
}

const char *cfg_suggest(const char *key, const char *const *known, size_t n)
{
	size_t best = SIZE_MAX, limit = MAX((size_t)2, strlen(key) / 3);
	const char *found = NULL;

	for (size_t i = 0; i < n; i++) {
		size_t d = levenshtein(key, known[i]);
		if (d < best) {
			best = d;
			found = known[i];
		}
	}
	return best <= limit ? found : NULL;
}

static int unknown_key(struct cfg_ctx *ctx, const struct cfg_table *t, const char *key,
		       const char *path)
{
	const char *names[128] = {0};
	const char *s;
	struct buf b = {0};
	size_t n = MIN(t->n, ARRAY_SIZE(names));
	_cleanup_free_ char *p = cfg_path_join(path, key);
	int r;

	for (size_t i = 0; i < n; i++)
		names[i] = t->fields[i].name;
	s = cfg_suggest(key, names, n);
	if (s)
		return err_set(ctx->err, -EINVAL, "%s: unknown field, did you mean \"%s\"?", p, s);
	for (size_t i = 0; i < n; i++)
		buf_printf(&b, "%s%s", i ? ", " : "", names[i]);
	buf_append(&b, "", 1);
	r = err_set(ctx->err, -EINVAL, "%s: unknown field, expected one of: %s", p,
		    (char *)buf_data(&b));
	buf_done(&b);
	return r;
}

/* --- defaults and freeing -------------------------------------------------- */

void cfg_table_init(const struct cfg_table *t, void *base)
{
	for (size_t i = 0; i < t->n; i++) {
		const struct cfg_field *f = &t->fields[i];
		void *p = FIELD(base, f);

		switch (f->kind) {
		case CK_BOOL:
			*(bool *)p = f->def != 0;
			break;
		case CK_OPTBOOL:
			*(int *)p = CFG_UNSET;
			break;
		case CK_INT:
			*(int64_t *)p = f->def;
			break;
		case CK_ENUM:
			*(int *)p = (int)f->def;
			break;
		case CK_STR:
		case CK_JSON:
			*(char **)p = f->def_str ? xstrdup(f->def_str) : NULL;
			break;
		case CK_STRLIST:
			if (f->def_str)
				cfg_strv_split(p, f->def_str, true);
			break;
		case CK_OBJECT:
			cfg_table_init(f->sub, p);
			break;
		case CK_CUSTOM:
			if (f->custom->init)
				f->custom->init(p);
			break;
		default:
			break; /* zeroed by the caller */
		}
	}
}

void cfg_table_free(const struct cfg_table *t, void *base)
{
	for (size_t i = 0; i < t->n; i++) {
		const struct cfg_field *f = &t->fields[i];
		void *p = FIELD(base, f);

		switch (f->kind) {
		case CK_STR:
		case CK_JSON:
			free(*(char **)p);
			*(char **)p = NULL;
			break;
		case CK_STRLIST:
			cfg_strv_done(p);
			break;
		case CK_PATTERNS:
			cfg_patterns_done(p);
			break;
		case CK_STRMAP:
			cfg_strmap_done(p);
			break;
		case CK_MAPPING:
			cfg_mapping_done(p);
			break;
		case CK_PORTS:
			cfg_ports_done(p);
			break;
		case CK_PAIRS:
			free(((struct cfg_port_pairs *)p)->v);
			memset(p, 0, sizeof(struct cfg_port_pairs));
			break;
		case CK_OBJECT:
			cfg_table_free(f->sub, p);
			break;
		case CK_CUSTOM:
			f->custom->free(p);
			break;
		default:
			break;
		}
	}
}

/* --- values ---------------------------------------------------------------- */

static int expect(struct cfg_ctx *ctx, const char *path, const char *what, json_object *v)
{
	return err_set(ctx->err, -EINVAL, "%s: expected %s, got %s", path, what,
		       cfg_json_type_name(v));
}

static int int_check(struct cfg_ctx *ctx, const struct cfg_field *f, json_object *v, int64_t *out,
		     const char *path)
{
	int64_t n;

	if (!json_object_is_type(v, json_type_int))
		return expect(ctx, path, "an integer", v);
	n = json_object_get_int64(v);
	if ((f->min || f->max) && (n < f->min || n > f->max))
		return err_set(ctx->err, -EINVAL, "%s: expected an integer in %lld..%lld, got %lld",
			       path, (long long)f->min, (long long)f->max, (long long)n);
	*out = n;
	return 0;
}

static int enum_parse(struct cfg_ctx *ctx, const struct cfg_field *f, json_object *v, int *out,
		      const char *path)
{
	struct buf b = {0};
	const char *s;
	int r;

	if (json_object_is_type(v, json_type_string)) {
		s = json_object_get_string(v);
		for (int i = 0; f->names[i]; i++)
			if (strcmp(s, f->names[i]) == 0) {
				*out = i;
				return 0;
			}
	}
	for (int i = 0; f->names[i]; i++)
		buf_printf(&b, "%s\"%s\"", i ? ", " : "", f->names[i]);
	buf_append(&b, "", 1);
	if (json_object_is_type(v, json_type_string))
		r = err_set(ctx->err, -EINVAL, "%s: expected one of %s, got \"%s\"", path,
			    (char *)buf_data(&b), json_object_get_string(v));
	else
		r = err_set(ctx->err, -EINVAL, "%s: expected one of %s, got %s", path,
			    (char *)buf_data(&b), cfg_json_type_name(v));
	buf_done(&b);
	return r;
}

static int mapping_parse(struct cfg_ctx *ctx, const struct cfg_field *f, json_object *v,
			 struct cfg_mapping *m, const char *path)
{
	cfg_mapping_done(m);
	if (json_object_is_type(v, json_type_null))
		return 0;
	if (!json_object_is_type(v, json_type_object))
		return expect(ctx, path, "an object of pattern → replacement strings", v);
	json_object_object_foreach(v, key, val)
	{
		_cleanup_free_ char *p = cfg_path_join(path, key);
		if (!json_object_is_type(val, json_type_string))
			return expect(ctx, p, "a string", val);
		int r = cfg_mapping_add(m, key, json_object_get_string(val), f->flags & FL_CASELESS,
					p, ctx->err);
		if (r < 0)
			return r;
	}
	return 0;
}

int cfg_value_parse(struct cfg_ctx *ctx, const struct cfg_field *f, json_object *v, void *base,
		    const char *path)
{
	void *p = FIELD(base, f);
	bool isnull = json_object_is_type(v, json_type_null);
	int r;

	if (isnull && (f->flags & FL_NULLOK))
		return 0;
	switch (f->kind) {
	case CK_BOOL:
		if (!json_object_is_type(v, json_type_boolean))
			return expect(ctx, path, "a boolean", v);
		*(bool *)p = json_object_get_boolean(v);
		return 0;
	case CK_OPTBOOL:
		if (isnull) {
			*(int *)p = CFG_UNSET;
			return 0;
		}
		if (!json_object_is_type(v, json_type_boolean))
			return expect(ctx, path, "a boolean or null", v);
		*(int *)p = json_object_get_boolean(v) ? CFG_TRUE : CFG_FALSE;
		return 0;
	case CK_INT:
		return int_check(ctx, f, v, p, path);
	case CK_OPTINT: {
		struct cfg_optint *o = p;
		if (isnull) {
			o->set = false;
			return 0;
		}
		r = int_check(ctx, f, v, &o->value, path);
		if (r < 0)
			return r;
		o->set = true;
		return 0;
	}
	case CK_STR:
		if (isnull) {
			free(*(char **)p);
			*(char **)p = f->def_str ? xstrdup(f->def_str) : NULL;
			return 0;
		}
		if (!json_object_is_type(v, json_type_string))
			return expect(ctx, path, "a string", v);
		free(*(char **)p);
		*(char **)p = xstrdup(json_object_get_string(v));
		return 0;
	case CK_STRLIST:
		return cfg_strv_parse(ctx, v, f->flags & FL_SEMI, p, path);
	case CK_PATTERNS: {
		struct cfg_strv sv = {0};
		r = cfg_strv_parse(ctx, v, f->flags & FL_SEMI, &sv, path);
		if (r >= 0)
			r = cfg_patterns_set(p, &sv, f->flags & FL_CASELESS, path, ctx->err);
		cfg_strv_done(&sv);
		return r;
	}
	case CK_STRMAP: {
		struct cfg_strmap *m = p;
		cfg_strmap_done(m);
		if (isnull)
			return 0;
		if (!json_object_is_type(v, json_type_object))
			return expect(ctx, path, "an object of strings", v);
		json_object_object_foreach(v, key, val)
		{
			if (!json_object_is_type(val, json_type_string)) {
				_cleanup_free_ char *kp = cfg_path_join(path, key);
				return expect(ctx, kp, "a string", val);
			}
			cfg_strmap_push(m, key, json_object_get_string(val));
		}
		return 0;
	}
	case CK_MAPPING:
		return mapping_parse(ctx, f, v, p, path);
	case CK_ENUM:
		return enum_parse(ctx, f, v, p, path);
	case CK_PORTS:
		return cfg_ports_parse(ctx, v, p, path);
	case CK_PAIRS:
		return pairs_parse(ctx, v, p, path);
	case CK_JSON:
		if (isnull) {
			free(*(char **)p);
			*(char **)p = f->def_str ? xstrdup(f->def_str) : NULL;
			return 0;
		}
		if ((f->flags & FL_ARRAY) && !json_object_is_type(v, json_type_array))
			return expect(ctx, path, "an array", v);
		if ((f->flags & FL_OBJECT) && !json_object_is_type(v, json_type_object))
			return expect(ctx, path, "an object", v);
		if (f->flags & FL_ARRAY) {
			/* Lists of objects (image_pull_secrets, tolerations). */
			for (size_t i = 0; i < json_object_array_length(v); i++) {
				json_object *e = json_object_array_get_idx(v, i);
				if (!json_object_is_type(e, json_type_object))
					return err_set(ctx->err, -EINVAL,
						       "%s[%zu]: expected an object, got %s", path,
						       i, cfg_json_type_name(e));
			}
		}
		free(*(char **)p);
		*(char **)p = xstrdup(json_object_to_json_string_ext(
			v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
		return 0;
	case CK_OBJECT:
		return cfg_table_parse(ctx, f->sub, v, p, path);
	case CK_CUSTOM:
		return f->custom->parse(ctx, v, p, path);
	}
	return -EINVAL;
}

int cfg_table_parse(struct cfg_ctx *ctx, const struct cfg_table *t, json_object *v, void *base,
		    const char *path)
{
	int r;

	if (json_object_is_type(v, json_type_null)) {
		/* null = the section's defaults */
	} else if (!json_object_is_type(v, json_type_object)) {
		if (!t->shortform)
			return expect(ctx, path && *path ? path : "(top level)", "an object", v);
		r = t->shortform(ctx, v, base, path);
		if (r < 0)
			return r;
	} else {
		for (size_t i = 0; t->object_enables && i < t->n; i++)
			if (strcmp(t->fields[i].name, "enabled") == 0)
				*(bool *)FIELD(base, &t->fields[i]) = true;
		json_object_object_foreach(v, key, val)
		{
			const struct cfg_field *f = NULL;
			_cleanup_free_ char *p = NULL;

			for (size_t i = 0; i < t->n; i++)
				if (strcmp(t->fields[i].name, key) == 0) {
					f = &t->fields[i];
					break;
				}
			if (!f)
				return unknown_key(ctx, t, key, path);
			p = cfg_path_join(path, key);
			r = cfg_value_parse(ctx, f, val, base, p);
			if (r < 0)
				return r;
			if (f->ignored)
				cfg_warn(ctx, "%s: field is ignored: %s", p, f->ignored);
		}
	}
	if (t->check)
		return t->check(ctx, base, path);
	return 0;
}
