/* Internals of the config module: the field descriptors that drive
 * parsing, defaults, freeing, canonical output and the JSON Schema from
 * one table (schema.c), and the helpers the sources share.
 *
 * One descriptor per JSON key; `off` is the offset of the C field inside
 * the struct the table describes. Adding a field = one struct member in
 * config.h + one line in schema.c (+ an env line in env.c if mirrord has
 * an env var for it).
 */
#ifndef PODENV_CONFIG_CONFIG_INT_H
#define PODENV_CONFIG_CONFIG_INT_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <json-c/json.h>
#include <pcre2.h>

#include "common/buf.h"
#include "config/config.h"

struct cfg_regex {
	pcre2_code *code;
};

enum cfg_kind {
	CK_BOOL,     /* bool */
	CK_OPTBOOL,  /* int, enum cfg_tristate */
	CK_INT,	     /* int64_t, [min, max] */
	CK_OPTINT,   /* struct cfg_optint */
	CK_STR,	     /* char *, def_str */
	CK_STRLIST,  /* struct cfg_strv; string or list (FL_SEMI: split a string on ';') */
	CK_PATTERNS, /* struct cfg_patterns; string or list (FL_CASELESS) */
	CK_STRMAP,   /* struct cfg_strmap; object of strings */
	CK_MAPPING,  /* struct cfg_mapping; object regex → string */
	CK_ENUM,     /* int; names[] */
	CK_PORTS,    /* struct cfg_ports */
	CK_PAIRS,    /* struct cfg_port_pairs: [[a, b], …] */
	CK_JSON,     /* char *: any JSON kept as text (FL_ARRAY / FL_OBJECT to restrict) */
	CK_OBJECT,   /* nested struct at off, described by sub */
	CK_CUSTOM,   /* custom ops */
};

#define FL_SEMI (1u << 0)     /* a string value is a ';'-separated list */
#define FL_CASELESS (1u << 1) /* patterns compiled caseless */
#define FL_ARRAY (1u << 2)    /* CK_JSON must be an array */
#define FL_OBJECT (1u << 3)   /* CK_JSON must be an object */
#define FL_NULLOK (1u << 4)   /* null means "default" even for a non-optional kind */

struct cfg_ctx;
struct cfg_table;

struct cfg_custom {
	int (*parse)(struct cfg_ctx *ctx, json_object *v, void *field, const char *path);
	json_object *(*format)(const void *field);
	void (*free)(void *field);
	void (*init)(void *field); /* the default; NULL: zeroed */
	const char *schema;	   /* JSON text of the schema for this field */
};

struct cfg_field {
	const char *name;
	enum cfg_kind kind;
	size_t off;
	unsigned flags;
	int64_t def;		  /* BOOL, INT, ENUM */
	const char *def_str;	  /* STR, STRLIST (';'-separated), JSON */
	int64_t min, max;	  /* INT, OPTINT (both 0: no bound) */
	const char *const *names; /* ENUM, NULL-terminated */
	const struct cfg_table *sub;
	const struct cfg_custom *custom;
	const char *ignored; /* when given: "is ignored: <this>" warning */
	const char *desc;
};

struct cfg_table {
	const struct cfg_field *fields;
	size_t n;
	/* A non-object value (bool, mode string…): fills base or fails. NULL:
	 * only objects accepted. */
	int (*shortform)(struct cfg_ctx *ctx, json_object *v, void *base, const char *path);
	const char *short_schema; /* JSON array text of the extra anyOf branches */
	/* An object value sets the bool field "enabled" before its keys are
	 * read ({"scale_down": true} means copy_target is on). */
	bool object_enables;
	/* Cross-field validation after the object was read. */
	int (*check)(struct cfg_ctx *ctx, void *base, const char *path);
};

struct cfg_ctx {
	struct cfg *cfg;
	struct err *err;
	const struct cfg_source *src;
	struct buf warn; /* unused */
};

/* The root table and the tables of toggleable sections (schema.c). */
extern const struct cfg_table cfg_root_table;

/* parse.c */
void cfg_table_init(const struct cfg_table *t, void *base);
void cfg_table_free(const struct cfg_table *t, void *base);
int cfg_table_parse(struct cfg_ctx *ctx, const struct cfg_table *t, json_object *v, void *base,
		    const char *path);
int cfg_value_parse(struct cfg_ctx *ctx, const struct cfg_field *f, json_object *v, void *base,
		    const char *path);
void cfg_warn(struct cfg_ctx *ctx, const char *fmt, ...) PRINTF_FMT(2, 3);
char *cfg_path_join(const char *path, const char *key);
const char *cfg_json_type_name(json_object *v);
int cfg_strv_parse(struct cfg_ctx *ctx, json_object *v, bool semi, struct cfg_strv *out,
		   const char *path);
void cfg_strv_split(struct cfg_strv *out, const char *s, bool semi);
void cfg_strv_done(struct cfg_strv *v);
void cfg_strv_push(struct cfg_strv *v, const char *s);
void cfg_strmap_done(struct cfg_strmap *m);
void cfg_strmap_push(struct cfg_strmap *m, const char *k, const char *v);
void cfg_ports_done(struct cfg_ports *p);
int cfg_ports_parse(struct cfg_ctx *ctx, json_object *v, struct cfg_ports *out, const char *path);
int cfg_bool_parse_str(const char *s);
const char *cfg_suggest(const char *key, const char *const *known, size_t n);

/* pattern.c */
int cfg_patterns_set(struct cfg_patterns *p, const struct cfg_strv *src, bool caseless,
		     const char *path, struct err *reterr);
void cfg_mapping_done(struct cfg_mapping *m);
int cfg_mapping_add(struct cfg_mapping *m, const char *pattern, const char *replace, bool caseless,
		    const char *path, struct err *reterr);

/* filter.c */
extern const struct cfg_custom cfg_outgoing_filter_custom;
extern const struct cfg_custom cfg_dns_filter_custom;
extern const struct cfg_custom cfg_http_filter_custom;
void cfg_net_filter_done(struct cfg_net_filter *f);
json_object *cfg_net_filter_format(const struct cfg_net_filter *f);
void cfg_http_filter_done(struct cfg_http_filter *f);
int cfg_http_filter_set_env(struct cfg_http_filter *f, enum cfg_http_kind kind, const char *value,
			    const char *path, struct err *reterr);
void cfg_dns_reflect_outgoing(struct cfg_ctx *ctx);

/* target.c */
extern const struct cfg_custom cfg_target_custom;
extern const struct cfg_custom cfg_image_custom;
int cfg_target_parse_str(const char *s, struct cfg_target *t, const char *path, struct err *reterr);
void cfg_target_done(struct cfg_target *t);

/* template.c: renders the Tera subset. vars/get_env read through lookup.
 * Returns 0 with *ret (caller frees) or -EINVAL with reterr =
 * "<name>:<line>:<col>: …". */
struct cfg_tmpl_vars {
	const char *key;
	const char *git_branch; /* NULL: undefined */
	const char *(*getenv)(void *data, const char *name);
	void *data;
};
int cfg_template_render(const char *text, size_t len, const char *name,
			const struct cfg_tmpl_vars *vars, char **ret, struct err *reterr);

/* yaml.c */
int cfg_yaml_parse(const char *text, size_t len, const char *name, json_object **ret,
		   struct err *reterr);

/* env.c */
const char *cfg_source_getenv(const struct cfg_source *src, const char *name);
int cfg_env_apply(struct cfg_ctx *ctx);

/* format.c */
json_object *cfg_table_format(const struct cfg_table *t, const void *base);

#endif
