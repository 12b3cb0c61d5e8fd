/* A hash map from 64-bit keys to pointers (open addressing, linear probing,
 * backward-shift deletion, so there are no tombstones to clean).
 *
 * Used for the ids of the wire protocol (file handles, stream ids,
 * requests in flight) on both sides. Values are borrowed: the map never
 * frees them. Not thread-safe. A zeroed struct is an empty map.
 */
#ifndef PODENV_COMMON_MAP_H
#define PODENV_COMMON_MAP_H

#include <stddef.h>
#include <stdint.h>

struct map_slot {
	uint64_t key;
	void *value; /* NULL marks an empty slot: NULL values are not stored */
};

struct map {
	struct map_slot *slots;
	size_t cap; /* power of two, or 0 */
	size_t len;
};

void map_init(struct map *m);
/* Frees the table (not the values). */
void map_done(struct map *m);

/* The value for key, or NULL. */
void *map_get(const struct map *m, uint64_t key);
/* Sets key to value (non-NULL); returns the previous value or NULL. */
void *map_put(struct map *m, uint64_t key, void *value);
/* Removes key; returns its value or NULL. */
void *map_remove(struct map *m, uint64_t key);

static inline size_t map_len(const struct map *m)
{
	return m->len;
}

/* Iteration: for (size_t i = 0; map_next(m, &i, &key, &value); ) — the map
 * must not change during the walk, except by map_remove of the current key
 * followed by not advancing (see map_next's comment). */
int map_next(const struct map *m, size_t *pos, uint64_t *key, void **value);

#endif
