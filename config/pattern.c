/* Pattern lists and path mapping on PCRE2.
 *
 * mirrord compiles its fs lists with Rust's `regex` (case-insensitive,
 * unanchored) and its HTTP filters with fancy-regex (look-around). PCRE2
 * accepts both syntaxes for what configs use, including `(?<name>…)`,
 * `(?P<name>…)` and `(?!…)`. Patterns are compiled once at load and
 * JIT-compiled when the platform has it; match data is per call, so the
 * compiled lists are read-only and shareable between threads.
 */
#include <stdio.h>
#include <string.h>

#include "config/config_int.h"

int cfg_regex_new(const char *src, bool caseless, struct cfg_regex **ret, const char *path,
		  struct err *reterr)
{
	uint32_t opts = caseless ? PCRE2_CASELESS : 0;
	PCRE2_SIZE off;
	int code;
	pcre2_code *re;

	re = pcre2_compile((PCRE2_SPTR)src, PCRE2_ZERO_TERMINATED, opts, &code, &off, NULL);
	if (!re) {
		PCRE2_UCHAR msg[256];
		pcre2_get_error_message(code, msg, sizeof(msg));
		return err_set(reterr, -EINVAL,
			       "%s: invalid regular expression \"%s\": %s at offset %zu", path, src,
			       (char *)msg, (size_t)off);
	}
	/* JIT is an optimisation: without it (no JIT support, or W^X memory
	 * denied) the interpreter gives the same answers. */
	(void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
	*ret = xcalloc(1, sizeof(**ret));
	(*ret)->code = re;
	return 0;
}

void cfg_regex_free(struct cfg_regex *re)
{
	if (!re)
		return;
	pcre2_code_free(re->code);
	free(re);
}

static int regex_exec(const struct cfg_regex *re, const char *s, size_t len, uint32_t opts,
		      pcre2_match_data *md)
{
	return pcre2_match(re->code, (PCRE2_SPTR)s, len, 0, opts, md, NULL);
}

bool cfg_regex_match(const struct cfg_regex *re, const char *s, size_t len)
{
	pcre2_match_data *md = pcre2_match_data_create(1, NULL);
	int r;

	if (!md)
		abort();
	r = regex_exec(re, s, len, 0, md);
	pcre2_match_data_free(md);
	return r >= 0;
}

void cfg_patterns_done(struct cfg_patterns *p)
{
	for (size_t i = 0; i < p->n; i++) {
		free(p->src[i]);
		cfg_regex_free(p->re[i]);
	}
	free(p->src);
	free(p->re);
	memset(p, 0, sizeof(*p));
}

int cfg_patterns_init(struct cfg_patterns *p, const char *const *src, size_t n, bool caseless,
		      const char *what, struct err *reterr)
{
	memset(p, 0, sizeof(*p));
	p->src = xcalloc(n + 1, sizeof(*p->src));
	p->re = xcalloc(n + 1, sizeof(*p->re));
	for (size_t i = 0; i < n; i++) {
		char path[256];
		int r;

		snprintf(path, sizeof(path), "%s[%zu]", what, i);
		r = cfg_regex_new(src[i], caseless, &p->re[i], path, reterr);
		if (r < 0) {
			cfg_patterns_done(p);
			return r;
		}
		p->src[i] = xstrdup(src[i]);
		p->n++;
	}
	return 0;
}

int cfg_patterns_set(struct cfg_patterns *p, const struct cfg_strv *src, bool caseless,
		     const char *path, struct err *reterr)
{
	cfg_patterns_done(p);
	return cfg_patterns_init(p, (const char *const *)src->v, src->n, caseless, path, reterr);
}

int cfg_patterns_match(const struct cfg_patterns *p, const char *s, size_t len)
{
	pcre2_match_data *md;
	int found = -ENOENT;

	if (!p->n)
		return -ENOENT;
	md = pcre2_match_data_create(1, NULL);
	if (!md)
		abort();
	for (size_t i = 0; i < p->n; i++)
		if (regex_exec(p->re[i], s, len, 0, md) >= 0) {
			found = (int)i;
			break;
		}
	pcre2_match_data_free(md);
	return found;
}

bool cfg_patterns_may_match_prefix(const struct cfg_patterns *p, const char *prefix, size_t len)
{
	pcre2_match_data *md;
	bool may = false;

	if (!p->n)
		return false;
	md = pcre2_match_data_create(1, NULL);
	if (!md)
		abort();
	/* PARTIAL_HARD: "the subject ended before the pattern could decide" is
	 * reported as PCRE2_ERROR_PARTIAL, i.e. a longer string may match.
	 * PCRE2 reports no partial match that would start at the very end
	 * of the subject, so an unanchored pattern ("secret") could still
	 * match text appended after the prefix: count it as a maybe. */
	for (size_t i = 0; i < p->n && !may; i++) {
		uint32_t opts = 0;
		int r;

		pcre2_pattern_info(p->re[i]->code, PCRE2_INFO_ALLOPTIONS, &opts);
		if (!(opts & PCRE2_ANCHORED)) {
			may = true;
			break;
		}
		r = regex_exec(p->re[i], prefix, len, PCRE2_PARTIAL_HARD, md);
		may = r >= 0 || r == PCRE2_ERROR_PARTIAL;
	}
	pcre2_match_data_free(md);
	return may;
}

int cfg_patterns_must_match_prefix(const struct cfg_patterns *p, const char *prefix, size_t len)
{
	pcre2_match_data *md;
	int found = -ENOENT;

	if (!p->n)
		return -ENOENT;
	md = pcre2_match_data_create(1, NULL);
	if (!md)
		abort();
	/* With PARTIAL_HARD a partial match wins over a complete one as soon
	 * as the end of the subject is reached on any path tried, so a
	 * complete match here was decided by the prefix alone. */
	for (size_t i = 0; i < p->n; i++)
		if (regex_exec(p->re[i], prefix, len, PCRE2_PARTIAL_HARD, md) >= 0) {
			found = (int)i;
			break;
		}
	pcre2_match_data_free(md);
	return found;
}

/* --- mapping ---------------------------------------------------------------- */

void cfg_mapping_done(struct cfg_mapping *m)
{
	for (size_t i = 0; i < m->n; i++) {
		free(m->pattern[i]);
		free(m->replace[i]);
		cfg_regex_free(m->re[i]);
	}
	free(m->pattern);
	free(m->replace);
	free(m->re);
	memset(m, 0, sizeof(*m));
}

int cfg_mapping_add(struct cfg_mapping *m, const char *pattern, const char *replace, bool caseless,
		    const char *path, struct err *reterr)
{
	struct cfg_regex *re;
	int r = cfg_regex_new(pattern, caseless, &re, path, reterr);

	if (r < 0)
		return r;
	m->pattern = xrealloc(m->pattern, (m->n + 1) * sizeof(*m->pattern));
	m->replace = xrealloc(m->replace, (m->n + 1) * sizeof(*m->replace));
	m->re = xrealloc(m->re, (m->n + 1) * sizeof(*m->re));
	m->pattern[m->n] = xstrdup(pattern);
	m->replace[m->n] = xstrdup(replace);
	m->re[m->n] = re;
	m->n++;
	return 0;
}

static bool is_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_';
}

/* Appends group `name` (a number or a group name) of the match, or nothing
 * when there is no such group or it did not participate — Rust's
 * Captures::expand. */
static void append_group(struct buf *b, const struct cfg_regex *re, pcre2_match_data *md,
			 const char *subject, const char *name, size_t nlen)
{
	PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
	uint32_t count = pcre2_get_ovector_count(md);
	char tmp[128];
	long num = -1;
	bool digits = nlen > 0;

	for (size_t i = 0; i < nlen; i++)
		if (name[i] < '0' || name[i] > '9')
			digits = false;
	if (nlen == 0 || nlen >= sizeof(tmp))
		return;
	memcpy(tmp, name, nlen);
	tmp[nlen] = '\0';
	if (digits)
		num = strtol(tmp, NULL, 10);
	else
		num = pcre2_substring_number_from_name(re->code, (PCRE2_SPTR)tmp);
	if (num < 0 || (uint32_t)num >= count || ov[2 * num] == PCRE2_UNSET)
		return;
	buf_append(b, subject + ov[2 * num], ov[2 * num + 1] - ov[2 * num]);
}

int cfg_mapping_apply(const struct cfg_mapping *m, const char *path, char **ret)
{
	size_t len = strlen(path);

	for (size_t i = 0; i < m->n; i++) {
		pcre2_match_data *md = pcre2_match_data_create_from_pattern(m->re[i]->code, NULL);
		PCRE2_SIZE *ov;
		struct buf b = {0};
		const char *r;

		if (!md)
			abort();
		if (regex_exec(m->re[i], path, len, 0, md) < 0) {
			pcre2_match_data_free(md);
			continue;
		}
		ov = pcre2_get_ovector_pointer(md);
		buf_append(&b, path, ov[0]);
		for (r = m->replace[i]; *r;) {
			if (*r != '$') {
				size_t n = strcspn(r, "$");
				buf_append(&b, r, n);
				r += n;
				continue;
			}
			if (r[1] == '$') {
				buf_append(&b, "$", 1);
				r += 2;
			} else if (r[1] == '{') {
				const char *end = strchr(r + 2, '}');
				if (!end) {
					buf_append(&b, r, strlen(r));
					break;
				}
				append_group(&b, m->re[i], md, path, r + 2, (size_t)(end - r - 2));
				r = end + 1;
			} else {
				size_t n = 0;
				while (is_name_char(r[1 + n]))
					n++;
				if (n == 0) {
					buf_append(&b, "$", 1);
					r++;
					continue;
				}
				append_group(&b, m->re[i], md, path, r + 1, n);
				r += 1 + n;
			}
		}
		buf_append(&b, path + ov[1], len - ov[1]);
		pcre2_match_data_free(md);
		*ret = buf_steal(&b, NULL);
		buf_done(&b);
		return 1;
	}
	return 0;
}
