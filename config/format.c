/* Canonical JSON output of a resolved configuration: every field of the
 * tables in schema.c, in table order, defaults filled in, shortened forms
 * written out in full. Loading the output again gives the same cfg. */
#include <string.h>

#include "config/config_int.h"

#define FIELD(base, f) ((const void *)((const char *)(base) + (f)->off))

static json_object *opt_string(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

static json_object *strv_format(const struct cfg_strv *v)
{
	json_object *a = json_object_new_array();
	for (size_t i = 0; i < v->n; i++)
		json_object_array_add(a, json_object_new_string(v->v[i]));
	return a;
}

static json_object *field_format(const struct cfg_field *f, const void *base)
{
	const void *p = FIELD(base, f);

	switch (f->kind) {
	case CK_BOOL:
		return json_object_new_boolean(*(const bool *)p);
	case CK_OPTBOOL:
		return *(const int *)p == CFG_UNSET ? NULL
						    : json_object_new_boolean(*(const int *)p);
	case CK_INT:
		return json_object_new_int64(*(const int64_t *)p);
	case CK_OPTINT: {
		const struct cfg_optint *o = p;
		return o->set ? json_object_new_int64(o->value) : NULL;
	}
	case CK_STR:
		return opt_string(*(char *const *)p);
	case CK_STRLIST:
		return strv_format(p);
	case CK_PATTERNS: {
		const struct cfg_patterns *pt = p;
		json_object *a = json_object_new_array();
		for (size_t i = 0; i < pt->n; i++)
			json_object_array_add(a, json_object_new_string(pt->src[i]));
		return a;
	}
	case CK_STRMAP: {
		const struct cfg_strmap *m = p;
		json_object *o = json_object_new_object();
		for (size_t i = 0; i < m->n; i++)
			json_object_object_add(o, m->keys[i], json_object_new_string(m->values[i]));
		return o;
	}
	case CK_MAPPING: {
		const struct cfg_mapping *m = p;
		json_object *o = json_object_new_object();
		for (size_t i = 0; i < m->n; i++)
			json_object_object_add(o, m->pattern[i],
					       json_object_new_string(m->replace[i]));
		return o;
	}
	case CK_ENUM:
		return json_object_new_string(f->names[*(const int *)p]);
	case CK_PORTS: {
		const struct cfg_ports *ps = p;
		json_object *a;
		if (!ps->set)
			return NULL;
		a = json_object_new_array();
		for (size_t i = 0; i < ps->n; i++)
			json_object_array_add(a, json_object_new_int(ps->v[i]));
		return a;
	}
	case CK_PAIRS: {
		const struct cfg_port_pairs *pp = p;
		json_object *a = json_object_new_array();
		for (size_t i = 0; i < pp->n; i++) {
			json_object *e = json_object_new_array();
			json_object_array_add(e, json_object_new_int(pp->v[i].local));
			json_object_array_add(e, json_object_new_int(pp->v[i].remote));
			json_object_array_add(a, e);
		}
		return a;
	}
	case CK_JSON: {
		const char *s = *(char *const *)p;
		return s ? json_tokener_parse(s) : NULL;
	}
	case CK_OBJECT:
		return cfg_table_format(f->sub, p);
	case CK_CUSTOM:
		return f->custom->format(p);
	}
	return NULL;
}

json_object *cfg_table_format(const struct cfg_table *t, const void *base)
{
	json_object *o = json_object_new_object();

	for (size_t i = 0; i < t->n; i++)
		json_object_object_add(o, t->fields[i].name, field_format(&t->fields[i], base));
	return o;
}

/* json-c's pretty printer writes an empty array or object over two lines;
 * fold them to [] and {}. A raw newline never occurs inside a JSON string
 * (it is escaped), so "[\n   ]" can only be structure. */
static void fold_empty(char *s)
{
	char *w = s;

	for (const char *r = s; *r;) {
		if ((*r == '[' || *r == '{') && r[1] == '\n') {
			const char *q = r + 2;
			while (*q == ' ')
				q++;
			if (*q == (*r == '[' ? ']' : '}')) {
				*w++ = *r;
				*w++ = *q;
				r = q + 1;
				continue;
			}
		}
		*w++ = *r++;
	}
	*w = '\0';
}

char *cfg_format_json(const struct cfg *cfg)
{
	json_object *o = cfg_table_format(&cfg_root_table, cfg);
	char *s = xasprintf("%s\n", json_object_to_json_string_ext(
					    o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
						       JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	fold_empty(s);
	return s;
}
