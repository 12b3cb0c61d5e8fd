/* YAML configurations (.yaml/.yml) read with libyaml onto the same json-c
 * tree as JSON, so everything after parsing is shared. Plain scalars are
 * typed as YAML 1.2's core schema does (null, true/false, integers,
 * floats, else strings; or all strings with CFG_YAML_STRINGS, as
 * kubeconfig readers want); quoted scalars are always strings. Anchors and
 * aliases are not supported (mirrord configs do not use them); errors
 * carry line:column.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <yaml.h>

#include "config/config_int.h"

#define YAML_MAX_DEPTH 64

struct ystate {
	yaml_parser_t parser;
	const char *name;
	unsigned flags;
	struct err *err;
};

static int yerr(struct ystate *y, const yaml_mark_t *m, const char *msg)
{
	return err_set(y->err, -EINVAL, "%s:%zu:%zu: invalid YAML: %s", y->name, m->line + 1,
		       m->column + 1, msg);
}

static json_object *scalar(const yaml_event_t *ev, unsigned flags)
{
	const char *s = (const char *)ev->data.scalar.value;
	size_t n = ev->data.scalar.length;
	char *end;

	if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || ev->data.scalar.tag)
		return json_object_new_string_len(s, (int)MIN(n, (size_t)INT32_MAX));
	if (n == 0 || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
	    strcmp(s, "NULL") == 0)
		return NULL;
	if (flags & CFG_YAML_STRINGS)
		return json_object_new_string_len(s, (int)MIN(n, (size_t)INT32_MAX));
	if (strcmp(s, "true") == 0 || strcmp(s, "True") == 0 || strcmp(s, "TRUE") == 0)
		return json_object_new_boolean(1);
	if (strcmp(s, "false") == 0 || strcmp(s, "False") == 0 || strcmp(s, "FALSE") == 0)
		return json_object_new_boolean(0);
	if ((s[0] >= '0' && s[0] <= '9') || ((s[0] == '-' || s[0] == '+') && n > 1)) {
		long long v;
		double d;
		errno = 0;
		v = strtoll(s, &end, 10);
		if (!*end && !errno)
			return json_object_new_int64(v);
		d = strtod(s, &end);
		if (!*end)
			return json_object_new_double(d);
	}
	return json_object_new_string_len(s, (int)n);
}

static int node(struct ystate *y, yaml_event_t *ev, json_object **out, int depth);

static int next(struct ystate *y, yaml_event_t *ev)
{
	if (!yaml_parser_parse(&y->parser, ev))
		return yerr(y, &y->parser.problem_mark,
			    y->parser.problem ? y->parser.problem : "parse error");
	return 0;
}

static int node(struct ystate *y, yaml_event_t *ev, json_object **out, int depth)
{
	int r = 0;

	*out = NULL;
	if (depth > YAML_MAX_DEPTH)
		return yerr(y, &ev->start_mark, "nested too deeply");
	switch (ev->type) {
	case YAML_SCALAR_EVENT:
		if (ev->data.scalar.anchor)
			return yerr(y, &ev->start_mark, "anchors are not supported");
		*out = scalar(ev, y->flags);
		return 0;
	case YAML_ALIAS_EVENT:
		return yerr(y, &ev->start_mark, "aliases are not supported");
	case YAML_SEQUENCE_START_EVENT: {
		json_object *a = json_object_new_array();
		for (;;) {
			yaml_event_t e;
			json_object *v;
			if ((r = next(y, &e)) < 0)
				break;
			if (e.type == YAML_SEQUENCE_END_EVENT) {
				yaml_event_delete(&e);
				break;
			}
			r = node(y, &e, &v, depth + 1);
			yaml_event_delete(&e);
			if (r < 0)
				break;
			json_object_array_add(a, v);
		}
		if (r < 0) {
			json_object_put(a);
			return r;
		}
		*out = a;
		return 0;
	}
	case YAML_MAPPING_START_EVENT: {
		json_object *o = json_object_new_object();
		for (;;) {
			yaml_event_t k, e;
			json_object *v;
			if ((r = next(y, &k)) < 0)
				break;
			if (k.type == YAML_MAPPING_END_EVENT) {
				yaml_event_delete(&k);
				break;
			}
			if (k.type != YAML_SCALAR_EVENT) {
				r = yerr(y, &k.start_mark, "mapping keys must be plain strings");
				yaml_event_delete(&k);
				break;
			}
			if ((r = next(y, &e)) < 0) {
				yaml_event_delete(&k);
				break;
			}
			r = node(y, &e, &v, depth + 1);
			yaml_event_delete(&e);
			if (r >= 0)
				json_object_object_add(o, (const char *)k.data.scalar.value, v);
			yaml_event_delete(&k);
			if (r < 0)
				break;
		}
		if (r < 0) {
			json_object_put(o);
			return r;
		}
		*out = o;
		return 0;
	}
	default:
		return yerr(y, &ev->start_mark, "unexpected event");
	}
}

int cfg_yaml_parse(const char *text, size_t len, const char *name, json_object **ret,
		   struct err *reterr)
{
	return cfg_yaml_to_json(text, len, name, 0, ret, reterr);
}

int cfg_yaml_to_json(const char *text, size_t len, const char *name, unsigned flags,
		     struct json_object **ret, struct err *reterr)
{
	struct ystate y = {.name = name, .flags = flags, .err = reterr};
	json_object *root = NULL;
	bool have_doc = false;
	int r = 0;

	if (!yaml_parser_initialize(&y.parser))
		abort();
	yaml_parser_set_input_string(&y.parser, (const unsigned char *)text, len);
	for (;;) {
		yaml_event_t ev;
		if ((r = next(&y, &ev)) < 0)
			break;
		if (ev.type == YAML_STREAM_END_EVENT) {
			yaml_event_delete(&ev);
			break;
		}
		if (ev.type == YAML_STREAM_START_EVENT || ev.type == YAML_DOCUMENT_END_EVENT) {
			yaml_event_delete(&ev);
			continue;
		}
		if (ev.type == YAML_DOCUMENT_START_EVENT) {
			if (have_doc) {
				r = yerr(&y, &ev.start_mark, "only one document is allowed");
				yaml_event_delete(&ev);
				break;
			}
			have_doc = true;
			yaml_event_delete(&ev);
			continue;
		}
		r = node(&y, &ev, &root, 0);
		yaml_event_delete(&ev);
		if (r < 0)
			break;
	}
	yaml_parser_delete(&y.parser);
	if (r < 0) {
		json_object_put(root);
		return r;
	}
	*ret = root; /* NULL for an empty document: all defaults */
	return 0;
}
