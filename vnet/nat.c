/* The NAT/flow table behind the system stack (research/vnet.md §1.3, §1.7).
 *
 * Three structures, all sized once at creation so the table never rehashes
 * or grows under load:
 *  - an open-addressing hash table (linear probing, backward-shift deletion,
 *    load at most 1/2) from the original 5-tuple to its entry; slots keep the
 *    64-bit hash so that probes rarely compare tuples;
 *  - per protocol, an array indexed by NAT port (the reverse lookup) and a
 *    ring of free ports: allocation pops the oldest freed port, removal
 *    pushes to the back. A live port is never in the ring, so it can never be
 *    handed out twice (sing-tun's sequential counter can, on wrap), and a
 *    freed port waits for every other free port first, which gives the
 *    listener's TIME_WAIT for that port time to end;
 *  - per protocol, a list in order of last use, so expiry stops at the first
 *    entry that is still fresh.
 *
 * The hash is keyed with a per-table random seed: tuples come from the app,
 * and a seed keeps crafted tuples from piling up in one probe run.
 */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/random.h>

#include "common/macro.h"
#include "vnet/vnet_int.h"

#define NAT_MAX_ENTRIES (1u << 20)

enum { PI_TCP, PI_UDP, PI_COUNT };

struct vnet_nat_entry {
	struct vnet_tuple t;
	uint64_t hash;
	usec_t last_used;
	void *userdata;
	struct vnet_nat_entry *older, *newer; /* the protocol's use list */
	uint16_t port;
	uint8_t pi;
};

struct nat_slot {
	uint64_t hash;
	struct vnet_nat_entry *e; /* NULL: empty */
};

struct nat_proto {
	struct vnet_nat_entry **by_port; /* [port - port_min] */
	uint16_t *ring;			 /* free ports, FIFO */
	uint32_t ring_head, ring_count;
	struct vnet_nat_entry *oldest, *newest;
	uint32_t live;
};

struct vnet_nat {
	uint64_t seed;
	struct nat_slot *slots;
	uint32_t mask;
	uint16_t port_min;
	uint32_t range;
	uint32_t max_entries, entries;
	struct nat_proto proto[PI_COUNT];
	struct vnet_nat_stats st;
};

static int proto_index(uint8_t proto)
{
	if (proto == IPPROTO_TCP)
		return PI_TCP;
	if (proto == IPPROTO_UDP)
		return PI_UDP;
	return -1;
}

/* A copy of t with the bytes an IPv4 address leaves unused cleared, so that
 * tuples compare and hash byte for byte. */
static void tuple_normalize(struct vnet_tuple *dst, const struct vnet_tuple *t)
{
	*dst = *t;
	if (dst->family == 4) {
		memset(dst->src.b + 4, 0, 12);
		memset(dst->dst.b + 4, 0, 12);
	}
}

static inline uint64_t mix64(uint64_t h)
{
	/* MurmurHash3's finalizer: every input bit flips about half the output. */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

static inline uint64_t load64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

static uint64_t tuple_hash(const struct vnet_nat *n, const struct vnet_tuple *t)
{
	const uint64_t k = 0x9e3779b97f4a7c15ULL;
	uint64_t h = n->seed;

	h = (h ^ ((uint64_t)t->family << 40 | (uint64_t)t->proto << 32 | (uint64_t)t->sport << 16 |
		  t->dport)) * k;
	h = (h ^ load64(t->src.b)) * k;
	h = (h ^ load64(t->dst.b)) * k;
	if (t->family == 6) {
		h = (h ^ load64(t->src.b + 8)) * k;
		h = (h ^ load64(t->dst.b + 8)) * k;
	}
	return mix64(h);
}

int vnet_nat_new(uint16_t port_min, uint16_t port_max, uint32_t max_entries,
		 struct vnet_nat **ret)
{
	struct vnet_nat *n;
	uint32_t cap = 16;

	if (port_min == 0 || port_min > port_max || max_entries == 0 ||
	    max_entries > NAT_MAX_ENTRIES)
		return -EINVAL;
	n = xcalloc(1, sizeof(*n));
	if (getrandom(&n->seed, sizeof(n->seed), GRND_NONBLOCK) != sizeof(n->seed))
		n->seed = now_usec() * 0x9e3779b97f4a7c15ULL;
	while (cap < 2 * (uint64_t)max_entries)
		cap *= 2;
	n->slots = xcalloc(cap, sizeof(*n->slots));
	n->mask = cap - 1;
	n->port_min = port_min;
	n->range = (uint32_t)port_max - port_min + 1;
	n->max_entries = max_entries;
	n->st.max_entries = max_entries;
	for (int i = 0; i < PI_COUNT; i++) {
		struct nat_proto *np = &n->proto[i];

		np->by_port = xcalloc(n->range, sizeof(*np->by_port));
		np->ring = xcalloc(n->range, sizeof(*np->ring));
		for (uint32_t j = 0; j < n->range; j++)
			np->ring[j] = (uint16_t)(port_min + j);
		np->ring_count = n->range;
	}
	*ret = n;
	return 0;
}

void vnet_nat_free(struct vnet_nat *n)
{
	if (!n)
		return;
	for (int i = 0; i < PI_COUNT; i++) {
		struct vnet_nat_entry *e = n->proto[i].oldest;

		while (e) {
			struct vnet_nat_entry *next = e->newer;

			free(e);
			e = next;
		}
		free(n->proto[i].by_port);
		free(n->proto[i].ring);
	}
	free(n->slots);
	free(n);
}

/* The slot holding tuple t (normalized) with hash h, or the empty slot
 * where it would go. */
static uint32_t slot_find(const struct vnet_nat *n, const struct vnet_tuple *t, uint64_t h)
{
	uint32_t i = (uint32_t)h & n->mask;

	while (n->slots[i].e) {
		if (n->slots[i].hash == h && vnet_tuple_equal(&n->slots[i].e->t, t))
			return i;
		i = (i + 1) & n->mask;
	}
	return i;
}

/* Backward-shift deletion (Knuth 6.4, algorithm R): entries after the hole
 * that may live there move back, so no tombstones are left. */
static void slot_delete(struct vnet_nat *n, uint32_t i)
{
	uint32_t j = i;

	for (;;) {
		uint32_t k;

		j = (j + 1) & n->mask;
		if (!n->slots[j].e)
			break;
		k = (uint32_t)n->slots[j].hash & n->mask;
		/* Move j to i unless its home k lies cyclically in (i, j]. */
		if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
			continue;
		n->slots[i] = n->slots[j];
		i = j;
	}
	n->slots[i].e = NULL;
	n->slots[i].hash = 0;
}

static void list_unlink(struct nat_proto *np, struct vnet_nat_entry *e)
{
	if (e->older)
		e->older->newer = e->newer;
	else
		np->oldest = e->newer;
	if (e->newer)
		e->newer->older = e->older;
	else
		np->newest = e->older;
	e->older = e->newer = NULL;
}

/* Appends e as the newest entry; its time never goes below the previous
 * newest one, so the list stays sorted even if the caller's clock does not. */
static void list_append(struct nat_proto *np, struct vnet_nat_entry *e, usec_t now)
{
	if (np->newest && now < np->newest->last_used)
		now = np->newest->last_used;
	e->last_used = now;
	e->older = np->newest;
	e->newer = NULL;
	if (np->newest)
		np->newest->newer = e;
	else
		np->oldest = e;
	np->newest = e;
}

int vnet_nat_add(struct vnet_nat *n, const struct vnet_tuple *t, usec_t now,
		 struct vnet_nat_entry **ret)
{
	struct vnet_nat_entry *e;
	struct vnet_tuple key;
	struct nat_proto *np;
	uint64_t h;
	uint32_t slot;
	int pi;

	if (t->family != 4 && t->family != 6)
		return -EINVAL;
	pi = proto_index(t->proto);
	if (pi < 0)
		return -EPROTONOSUPPORT;
	tuple_normalize(&key, t);
	h = tuple_hash(n, &key);
	slot = slot_find(n, &key, h);
	if (n->slots[slot].e) {
		if (ret)
			*ret = n->slots[slot].e;
		return -EEXIST;
	}
	np = &n->proto[pi];
	if (n->entries >= n->max_entries) {
		n->st.full++;
		return -ENOSPC;
	}
	if (np->ring_count == 0) {
		n->st.full++;
		return -EADDRNOTAVAIL;
	}

	e = xcalloc(1, sizeof(*e));
	e->t = key;
	e->hash = h;
	e->pi = (uint8_t)pi;
	e->port = np->ring[np->ring_head];
	np->ring_head = (np->ring_head + 1) % n->range;
	np->ring_count--;
	np->by_port[e->port - n->port_min] = e;
	list_append(np, e, now);
	np->live++;
	n->slots[slot].hash = h;
	n->slots[slot].e = e;
	n->entries++;
	n->st.added++;
	if (ret)
		*ret = e;
	return 0;
}

struct vnet_nat_entry *vnet_nat_lookup(struct vnet_nat *n, const struct vnet_tuple *t)
{
	struct vnet_nat_entry *e;
	struct vnet_tuple key;
	uint64_t h;

	n->st.lookups++;
	tuple_normalize(&key, t);
	h = tuple_hash(n, &key);
	e = n->slots[slot_find(n, &key, h)].e;
	if (!e)
		n->st.misses++;
	return e;
}

struct vnet_nat_entry *vnet_nat_lookup_port(struct vnet_nat *n, uint8_t proto, uint16_t port)
{
	struct vnet_nat_entry *e = NULL;
	int pi = proto_index(proto);

	n->st.lookups++;
	if (pi >= 0 && port >= n->port_min && (uint32_t)(port - n->port_min) < n->range)
		e = n->proto[pi].by_port[port - n->port_min];
	if (!e)
		n->st.misses++;
	return e;
}

void vnet_nat_touch(struct vnet_nat *n, struct vnet_nat_entry *e, usec_t now)
{
	struct nat_proto *np = &n->proto[e->pi];

	if (np->newest == e) {
		if (now > e->last_used)
			e->last_used = now;
		return;
	}
	list_unlink(np, e);
	list_append(np, e, now);
}

static void entry_remove(struct vnet_nat *n, struct vnet_nat_entry *e)
{
	struct nat_proto *np = &n->proto[e->pi];
	uint32_t slot = slot_find(n, &e->t, e->hash);

	/* The entry is in the table: slot_find stops at it. */
	slot_delete(n, slot);
	list_unlink(np, e);
	np->by_port[e->port - n->port_min] = NULL;
	np->ring[(np->ring_head + np->ring_count) % n->range] = e->port;
	np->ring_count++;
	np->live--;
	n->entries--;
	free(e);
}

void vnet_nat_remove(struct vnet_nat *n, struct vnet_nat_entry *e)
{
	entry_remove(n, e);
	n->st.removed++;
}

int vnet_nat_expire(struct vnet_nat *n, uint8_t proto, usec_t before, vnet_nat_expire_fn fn,
		    void *userdata)
{
	int pi = proto_index(proto), count = 0;
	struct vnet_nat_entry *e;

	if (pi < 0)
		return 0;
	while ((e = n->proto[pi].oldest) && e->last_used < before) {
		struct vnet_tuple t = e->t;
		uint16_t port = e->port;
		void *ud = e->userdata;

		entry_remove(n, e);
		n->st.expired++;
		count++;
		if (fn)
			fn(&t, port, ud, userdata);
	}
	return count;
}

usec_t vnet_nat_oldest(const struct vnet_nat *n, uint8_t proto)
{
	int pi = proto_index(proto);

	if (pi < 0 || !n->proto[pi].oldest)
		return USEC_INFINITY;
	return n->proto[pi].oldest->last_used;
}

const struct vnet_tuple *vnet_nat_entry_tuple(const struct vnet_nat_entry *e)
{
	return &e->t;
}

uint16_t vnet_nat_entry_port(const struct vnet_nat_entry *e)
{
	return e->port;
}

usec_t vnet_nat_entry_last_used(const struct vnet_nat_entry *e)
{
	return e->last_used;
}

void *vnet_nat_entry_userdata(const struct vnet_nat_entry *e)
{
	return e->userdata;
}

void vnet_nat_entry_set_userdata(struct vnet_nat_entry *e, void *userdata)
{
	e->userdata = userdata;
}

void vnet_nat_stats(const struct vnet_nat *n, struct vnet_nat_stats *st)
{
	*st = n->st;
	st->entries = n->entries;
	st->tcp = n->proto[PI_TCP].live;
	st->udp = n->proto[PI_UDP].live;
}
