/* struct map: open addressing with linear probing over a power-of-two
 * table, kept at most 3/4 full; deletion shifts later members of the probe
 * run back, as in Knuth's Algorithm R. */
#include <stdbool.h>
#include <string.h>

#include "common/macro.h"
#include "common/map.h"

void map_init(struct map *m)
{
	*m = (struct map){ 0 };
}

void map_done(struct map *m)
{
	free(m->slots);
	map_init(m);
}

/* splitmix64 finaliser: ids are often sequential, so mix well. */
static size_t slot_of(const struct map *m, uint64_t key)
{
	key ^= key >> 30;
	key *= UINT64_C(0xbf58476d1ce4e5b9);
	key ^= key >> 27;
	key *= UINT64_C(0x94d049bb133111eb);
	key ^= key >> 31;
	return (size_t)key & (m->cap - 1);
}

void *map_get(const struct map *m, uint64_t key)
{
	if (m->len == 0)
		return NULL;
	for (size_t i = slot_of(m, key);; i = (i + 1) & (m->cap - 1)) {
		if (!m->slots[i].value)
			return NULL;
		if (m->slots[i].key == key)
			return m->slots[i].value;
	}
}

static void grow(struct map *m)
{
	struct map_slot *old = m->slots;
	size_t oldcap = m->cap;

	m->cap = oldcap ? oldcap * 2 : 16;
	m->slots = xcalloc(m->cap, sizeof(*m->slots));
	m->len = 0;
	for (size_t i = 0; i < oldcap; i++)
		if (old[i].value)
			map_put(m, old[i].key, old[i].value);
	free(old);
}

void *map_put(struct map *m, uint64_t key, void *value)
{
	if (!value)
		abort(); /* NULL marks empty slots: a caller bug */
	if ((m->len + 1) * 4 > m->cap * 3)
		grow(m);
	for (size_t i = slot_of(m, key);; i = (i + 1) & (m->cap - 1)) {
		if (!m->slots[i].value) {
			m->slots[i] = (struct map_slot){ key, value };
			m->len++;
			return NULL;
		}
		if (m->slots[i].key == key) {
			void *prev = m->slots[i].value;
			m->slots[i].value = value;
			return prev;
		}
	}
}

void *map_remove(struct map *m, uint64_t key)
{
	size_t i, j, mask = m->cap - 1;
	void *value;

	if (m->len == 0)
		return NULL;
	for (i = slot_of(m, key);; i = (i + 1) & mask) {
		if (!m->slots[i].value)
			return NULL;
		if (m->slots[i].key == key)
			break;
	}
	value = m->slots[i].value;
	m->slots[i].value = NULL;
	m->len--;
	/* Shift back any later member of this run whose home slot is not
	 * cyclically within (i, j]: it would be unreachable past the hole. */
	for (j = (i + 1) & mask; m->slots[j].value; j = (j + 1) & mask) {
		size_t home = slot_of(m, m->slots[j].key);
		bool movable = i <= j ? (home <= i || home > j) : (home <= i && home > j);
		if (movable) {
			m->slots[i] = m->slots[j];
			m->slots[j].value = NULL;
			i = j;
		}
	}
	return value;
}

int map_next(const struct map *m, size_t *pos, uint64_t *key, void **value)
{
	while (*pos < m->cap) {
		struct map_slot *s = &m->slots[(*pos)++];
		if (s->value) {
			if (key)
				*key = s->key;
			if (value)
				*value = s->value;
			return 1;
		}
	}
	return 0;
}
