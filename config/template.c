/* The Tera subset mirrord configurations use, rendered over the file text
 * before it is parsed (research §7):
 *
 *   {{ expr }}        expr: "str" 'str' `str`, numbers, true/false, the
 *                     variables `key` and `git_branch`, get_env(name=…,
 *                     default=…), filters | default(value=…) | lower |
 *                     upper | trim, parentheses
 *   {% if c %} {% elif c %} {% else %} {% endif %}
 *                     c: expr, == / !=, not, and, or
 *   {# comment #}     and the {{- -}} / {%- -%} whitespace trimming
 *
 * Anything else (for, set, macros, other functions or filters) is an error
 * naming its line and column, never silently passed through. Like Tera,
 * an undefined variable or an unset get_env() without a default is an
 * error unless `| default(…)` follows.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "config/config_int.h"

enum tv_type { TV_UNDEF, TV_STR, TV_NUM, TV_BOOL };

struct tval {
	enum tv_type type;
	char *s;    /* STR, NUM (text), UNDEF (why, for the error) */
	double num; /* NUM */
	bool b;	    /* BOOL */
};

struct tmpl {
	const char *text, *end, *p; /* p: cursor inside a tag */
	const char *name;
	const struct cfg_tmpl_vars *vars;
	struct err *err;
};

static void tval_done(struct tval *v)
{
	free(v->s);
	memset(v, 0, sizeof(*v));
}

static int tmpl_error_at(struct tmpl *t, const char *at, const char *fmt, ...) PRINTF_FMT(3, 4);

static int tmpl_error_at(struct tmpl *t, const char *at, const char *fmt, ...)
{
	char msg[512];
	unsigned line = 1, col = 1;
	va_list ap;

	for (const char *c = t->text; c < at && c < t->end; c++) {
		if (*c == '\n') {
			line++;
			col = 1;
		} else {
			col++;
		}
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return err_set(t->err, -EINVAL, "%s:%u:%u: template: %s", t->name, line, col, msg);
}

static void skip_ws(struct tmpl *t)
{
	while (t->p < t->end && isspace((unsigned char)*t->p))
		t->p++;
}

static bool is_ident_start(char c)
{
	return isalpha((unsigned char)c) || c == '_';
}

static size_t ident_len(const char *p, const char *end)
{
	size_t n = 0;
	if (p >= end || !is_ident_start(*p))
		return 0;
	while (p + n < end && (isalnum((unsigned char)p[n]) || p[n] == '_'))
		n++;
	return n;
}

static bool eat_word(struct tmpl *t, const char *w)
{
	size_t n = strlen(w);
	skip_ws(t);
	if (ident_len(t->p, t->end) == n && strncmp(t->p, w, n) == 0) {
		t->p += n;
		return true;
	}
	return false;
}

static bool eat(struct tmpl *t, const char *tok)
{
	size_t n = strlen(tok);
	skip_ws(t);
	if ((size_t)(t->end - t->p) >= n && strncmp(t->p, tok, n) == 0) {
		t->p += n;
		return true;
	}
	return false;
}

static bool truthy(const struct tval *v)
{
	switch (v->type) {
	case TV_STR:
		return v->s[0] != '\0';
	case TV_NUM:
		return v->num != 0;
	case TV_BOOL:
		return v->b;
	case TV_UNDEF:
		return false;
	}
	return false;
}

static int expr_or(struct tmpl *t, struct tval *out);

/* name=value, … ; values parsed in order into vals[], names checked. */
static int call_args(struct tmpl *t, const char *what, const char *const *names, struct tval *vals,
		     bool *given, size_t nnames)
{
	if (!eat(t, "("))
		return tmpl_error_at(t, t->p, "expected ( after %s", what);
	if (eat(t, ")"))
		return 0;
	for (;;) {
		const char *at;
		size_t n, i;

		skip_ws(t);
		at = t->p;
		n = ident_len(t->p, t->end);
		for (i = 0; i < nnames; i++)
			if (n == strlen(names[i]) && strncmp(t->p, names[i], n) == 0)
				break;
		if (n == 0 || i == nnames)
			return tmpl_error_at(t, at, "unknown argument \"%.*s\" to %s",
					     (int)(n ? n : 1), at, what);
		t->p += n;
		if (!eat(t, "="))
			return tmpl_error_at(t, t->p, "expected = after argument %s", names[i]);
		tval_done(&vals[i]);
		int r = expr_or(t, &vals[i]);
		if (r < 0)
			return r;
		given[i] = true;
		if (eat(t, ")"))
			return 0;
		if (!eat(t, ","))
			return tmpl_error_at(t, t->p, "expected , or ) in the arguments of %s",
					     what);
	}
}

static int get_env_call(struct tmpl *t, const char *at, struct tval *out)
{
	static const char *const names[] = {"name", "default"};
	struct tval vals[2] = {0};
	bool given[2] = {false, false};
	const char *v;
	int r = call_args(t, "get_env", names, vals, given, 2);

	if (r < 0)
		goto out;
	if (!given[0] || vals[0].type != TV_STR) {
		r = tmpl_error_at(t, at, "get_env needs name=\"VARIABLE\"");
		goto out;
	}
	v = t->vars->getenv ? t->vars->getenv(t->vars->data, vals[0].s) : NULL;
	if (v) {
		out->type = TV_STR;
		out->s = xstrdup(v);
	} else if (given[1]) {
		*out = vals[1];
		memset(&vals[1], 0, sizeof(vals[1]));
	} else {
		out->type = TV_UNDEF;
		out->s = xasprintf("environment variable %s is not set and get_env has no default",
				   vals[0].s);
	}
out:
	tval_done(&vals[0]);
	tval_done(&vals[1]);
	return r;
}

static int primary(struct tmpl *t, struct tval *out)
{
	const char *at;
	size_t n;

	skip_ws(t);
	at = t->p;
	memset(out, 0, sizeof(*out));
	if (t->p >= t->end)
		return tmpl_error_at(t, at, "expected an expression");
	if (*t->p == '"' || *t->p == '\'' || *t->p == '`') {
		const char *close = memchr(t->p + 1, *t->p, (size_t)(t->end - t->p - 1));
		if (!close)
			return tmpl_error_at(t, at, "unterminated string");
		out->type = TV_STR;
		out->s = xstrndup(t->p + 1, (size_t)(close - t->p - 1));
		t->p = close + 1;
		return 0;
	}
	if (isdigit((unsigned char)*t->p) ||
	    (*t->p == '-' && t->p + 1 < t->end && isdigit((unsigned char)t->p[1]))) {
		char *endp;
		n = 1;
		while (t->p + n < t->end && (isdigit((unsigned char)t->p[n]) || t->p[n] == '.'))
			n++;
		out->type = TV_NUM;
		out->s = xstrndup(t->p, n);
		out->num = strtod(out->s, &endp);
		if (*endp)
			return tmpl_error_at(t, at, "invalid number \"%s\"", out->s);
		t->p += n;
		return 0;
	}
	if (*t->p == '(') {
		t->p++;
		int r = expr_or(t, out);
		if (r < 0)
			return r;
		if (!eat(t, ")"))
			return tmpl_error_at(t, t->p, "expected )");
		return 0;
	}
	n = ident_len(t->p, t->end);
	if (n == 0)
		return tmpl_error_at(t, at, "unexpected \"%c\"", *t->p);
	t->p += n;
	if ((n == 4 && strncmp(at, "true", 4) == 0) || (n == 5 && strncmp(at, "false", 5) == 0)) {
		out->type = TV_BOOL;
		out->b = n == 4;
		return 0;
	}
	skip_ws(t);
	if (t->p < t->end && *t->p == '(') {
		if (n == 7 && strncmp(at, "get_env", 7) == 0)
			return get_env_call(t, at, out);
		return tmpl_error_at(t, at,
				     "unsupported function \"%.*s\" (only get_env is supported)",
				     (int)n, at);
	}
	if (n == 3 && strncmp(at, "key", 3) == 0 && t->vars->key) {
		out->type = TV_STR;
		out->s = xstrdup(t->vars->key);
	} else if (n == 10 && strncmp(at, "git_branch", 10) == 0 && t->vars->git_branch) {
		out->type = TV_STR;
		out->s = xstrdup(t->vars->git_branch);
	} else {
		out->type = TV_UNDEF;
		out->s = xasprintf("variable \"%.*s\" is not defined", (int)n, at);
	}
	if (t->p < t->end && *t->p == '.')
		return tmpl_error_at(t, t->p, "attribute access is not supported");
	return 0;
}

static int filtered(struct tmpl *t, struct tval *out)
{
	int r = primary(t, out);

	while (r >= 0 && eat(t, "|")) {
		const char *at;
		size_t n;

		skip_ws(t);
		at = t->p;
		n = ident_len(t->p, t->end);
		t->p += n;
		if (n == 7 && strncmp(at, "default", 7) == 0) {
			static const char *const names[] = {"value"};
			struct tval v = {0};
			bool given = false;
			r = call_args(t, "default", names, &v, &given, 1);
			if (r < 0) {
				tval_done(&v);
				break;
			}
			if (!given) {
				tval_done(&v);
				return tmpl_error_at(t, at, "default needs value=…");
			}
			if (out->type == TV_UNDEF) {
				tval_done(out);
				*out = v;
			} else {
				tval_done(&v);
			}
		} else if ((n == 5 && strncmp(at, "lower", 5) == 0) ||
			   (n == 5 && strncmp(at, "upper", 5) == 0) ||
			   (n == 4 && strncmp(at, "trim", 4) == 0)) {
			if (out->type == TV_UNDEF)
				return tmpl_error_at(t, at, "%s", out->s);
			if (out->type != TV_STR)
				return tmpl_error_at(t, at, "filter %.*s needs a string", (int)n,
						     at);
			if (*at == 'l' || *at == 'u') {
				for (char *c = out->s; *c; c++)
					*c = (char)(*at == 'l' ? tolower((unsigned char)*c)
							       : toupper((unsigned char)*c));
			} else {
				char *s = out->s, *e;
				while (isspace((unsigned char)*s))
					s++;
				e = s + strlen(s);
				while (e > s && isspace((unsigned char)e[-1]))
					e--;
				s = xstrndup(s, (size_t)(e - s));
				free(out->s);
				out->s = s;
			}
		} else {
			return tmpl_error_at(t, at,
					     "unsupported filter \"%.*s\" (supported: default, "
					     "lower, upper, trim)",
					     (int)(n ? n : 1), at);
		}
	}
	return r;
}

static bool tval_equal(const struct tval *a, const struct tval *b)
{
	if (a->type != b->type)
		return false;
	switch (a->type) {
	case TV_STR:
		return strcmp(a->s, b->s) == 0;
	case TV_NUM:
		return a->num == b->num;
	case TV_BOOL:
		return a->b == b->b;
	default:
		return false;
	}
}

static int comparison(struct tmpl *t, struct tval *out)
{
	struct tval rhs = {0};
	const char *at;
	bool ne;
	int r = filtered(t, out);

	if (r < 0)
		return r;
	skip_ws(t);
	at = t->p;
	if (eat(t, "=="))
		ne = false;
	else if (eat(t, "!="))
		ne = true;
	else if (eat(t, "<") || eat(t, ">") || eat(t, "in") || eat(t, "is"))
		return tmpl_error_at(t, at, "unsupported operator (only == and != are supported)");
	else
		return 0;
	r = filtered(t, &rhs);
	if (r >= 0 && (out->type == TV_UNDEF || rhs.type == TV_UNDEF))
		r = tmpl_error_at(t, at, "%s", out->type == TV_UNDEF ? out->s : rhs.s);
	if (r >= 0) {
		bool eq = tval_equal(out, &rhs);
		tval_done(out);
		out->type = TV_BOOL;
		out->b = ne ? !eq : eq;
	}
	tval_done(&rhs);
	return r;
}

static int expr_not(struct tmpl *t, struct tval *out)
{
	const char *at;

	skip_ws(t);
	at = t->p;
	if (eat_word(t, "not")) {
		int r = expr_not(t, out);
		if (r < 0)
			return r;
		if (out->type == TV_UNDEF)
			return tmpl_error_at(t, at, "%s", out->s);
		bool b = !truthy(out);
		tval_done(out);
		out->type = TV_BOOL;
		out->b = b;
		return 0;
	}
	return comparison(t, out);
}

static int expr_bin(struct tmpl *t, struct tval *out, bool is_or)
{
	int r = is_or ? expr_bin(t, out, false) : expr_not(t, out);

	while (r >= 0) {
		struct tval rhs = {0};
		const char *at;
		bool b;

		skip_ws(t);
		at = t->p;
		if (!eat_word(t, is_or ? "or" : "and"))
			break;
		r = is_or ? expr_bin(t, &rhs, false) : expr_not(t, &rhs);
		if (r >= 0 && (out->type == TV_UNDEF || rhs.type == TV_UNDEF))
			r = tmpl_error_at(t, at, "%s", out->type == TV_UNDEF ? out->s : rhs.s);
		if (r >= 0) {
			b = is_or ? truthy(out) || truthy(&rhs) : truthy(out) && truthy(&rhs);
			tval_done(out);
			out->type = TV_BOOL;
			out->b = b;
		}
		tval_done(&rhs);
	}
	return r;
}

static int expr_or(struct tmpl *t, struct tval *out)
{
	return expr_bin(t, out, true);
}

/* Evaluates [p, end) as a whole expression. */
static int eval(struct tmpl *t, const char *p, const char *end, struct tval *out)
{
	const char *saved_end = t->end;
	int r;

	t->p = p;
	t->end = end;
	r = expr_or(t, out);
	skip_ws(t);
	if (r >= 0 && t->p < t->end)
		r = tmpl_error_at(t, t->p, "unexpected \"%.*s\"", (int)MIN(t->end - t->p, 20),
				  t->p);
	t->end = saved_end;
	return r;
}

struct frame {
	bool parent_on; /* output was on when the if started */
	bool taken;	/* a branch was already chosen */
	bool on;	/* the current branch outputs */
	bool seen_else;
	const char *at;
};

#define MAX_DEPTH 32

int cfg_template_render(const char *text, size_t len, const char *name,
			const struct cfg_tmpl_vars *vars, char **ret, struct err *reterr)
{
	struct tmpl t = {
		.text = text, .end = text + len, .name = name, .vars = vars, .err = reterr};
	struct frame stack[MAX_DEPTH];
	size_t depth = 0;
	struct buf out = {0};
	const char *p = text, *end = text + len;
	bool on = true, trim_next = false;
	int r = 0;

	while (p < end) {
		const char *open = p, *close, *inner, *inner_end;
		char kind;

		/* Literal text up to the next tag. */
		while (open + 1 < end &&
		       !(open[0] == '{' && (open[1] == '{' || open[1] == '%' || open[1] == '#')))
			open++;
		if (open + 1 >= end)
			open = end;
		{
			const char *lit = p, *lit_end = open;
			if (trim_next)
				while (lit < lit_end && isspace((unsigned char)*lit))
					lit++;
			if (open < end && open + 2 < end && open[2] == '-')
				while (lit_end > lit && isspace((unsigned char)lit_end[-1]))
					lit_end--;
			if (on)
				buf_append(&out, lit, (size_t)(lit_end - lit));
			trim_next = false;
		}
		if (open >= end)
			break;
		kind = open[1];
		inner = open + 2;
		if (inner < end && *inner == '-')
			inner++;
		{
			const char *closer = kind == '{' ? "}}" : kind == '%' ? "%}" : "#}";
			close = NULL;
			for (const char *c = inner; c + 1 < end; c++) {
				if (kind != '#' && (*c == '"' || *c == '\'' || *c == '`')) {
					const char *q = memchr(c + 1, *c, (size_t)(end - c - 1));
					if (!q)
						break;
					c = q;
					continue;
				}
				if (c[0] == closer[0] && c[1] == closer[1]) {
					close = c;
					break;
				}
			}
			if (!close) {
				r = tmpl_error_at(&t, open, "unclosed \"{%c\"", kind);
				goto fail;
			}
		}
		inner_end = close;
		if (inner_end > inner && inner_end[-1] == '-') {
			inner_end--;
			trim_next = true;
		}
		p = close + 2;
		if (kind == '#')
			continue;
		if (kind == '{') {
			struct tval v = {0};
			if (!on)
				continue;
			r = eval(&t, inner, inner_end, &v);
			if (r >= 0 && v.type == TV_UNDEF)
				r = tmpl_error_at(&t, inner, "%s", v.s);
			if (r >= 0) {
				if (v.type == TV_BOOL)
					buf_printf(&out, "%s", v.b ? "true" : "false");
				else
					buf_printf(&out, "%s", v.s);
			}
			tval_done(&v);
			if (r < 0)
				goto fail;
			continue;
		}
		/* {% tag %} */
		{
			const char *w;
			size_t n;
			struct tval v = {0};

			t.p = inner;
			skip_ws(&t);
			w = t.p;
			n = ident_len(w, inner_end);
			if (n == 2 && strncmp(w, "if", 2) == 0) {
				if (depth == MAX_DEPTH) {
					r = tmpl_error_at(&t, w, "{%% if %%} nested too deeply");
					goto fail;
				}
				stack[depth] = (struct frame){.parent_on = on, .at = open};
				if (on) {
					r = eval(&t, w + n, inner_end, &v);
					if (r >= 0 && v.type == TV_UNDEF)
						r = tmpl_error_at(&t, w + n, "%s", v.s);
					if (r < 0) {
						tval_done(&v);
						goto fail;
					}
					stack[depth].on = stack[depth].taken = truthy(&v);
					tval_done(&v);
				}
				on = stack[depth].on;
				depth++;
			} else if (n == 4 && strncmp(w, "elif", 4) == 0) {
				struct frame *f = depth ? &stack[depth - 1] : NULL;
				if (!f || f->seen_else) {
					r = tmpl_error_at(&t, w, "{%% elif %%} without {%% if %%}");
					goto fail;
				}
				f->on = false;
				if (f->parent_on && !f->taken) {
					r = eval(&t, w + n, inner_end, &v);
					if (r >= 0 && v.type == TV_UNDEF)
						r = tmpl_error_at(&t, w + n, "%s", v.s);
					if (r < 0) {
						tval_done(&v);
						goto fail;
					}
					f->on = f->taken = truthy(&v);
					tval_done(&v);
				}
				on = f->on;
			} else if (n == 4 && strncmp(w, "else", 4) == 0) {
				struct frame *f = depth ? &stack[depth - 1] : NULL;
				t.p = w + n;
				skip_ws(&t);
				if (!f || f->seen_else || t.p < inner_end) {
					r = tmpl_error_at(&t, w, "{%% else %%} without {%% if %%}");
					goto fail;
				}
				f->seen_else = true;
				f->on = f->parent_on && !f->taken;
				f->taken = true;
				on = f->on;
			} else if (n == 5 && strncmp(w, "endif", 5) == 0) {
				if (!depth) {
					r = tmpl_error_at(&t, w,
							  "{%% endif %%} without {%% if %%}");
					goto fail;
				}
				depth--;
				on = stack[depth].parent_on;
			} else {
				r = tmpl_error_at(&t, w,
						  "unsupported tag \"%.*s\" (supported: if, elif, "
						  "else, endif)",
						  (int)(n ? n : 1), w);
				goto fail;
			}
		}
	}
	if (depth) {
		r = tmpl_error_at(&t, stack[depth - 1].at,
				  "{%% if %%} is never closed by {%% endif %%}");
		goto fail;
	}
	*ret = buf_steal(&out, NULL);
	buf_done(&out);
	return 0;
fail:
	buf_done(&out);
	return r;
}
