/* Tests for vnet/nat.c: lookups both ways, port allocation until full and
 * without reuse of live ports, FIFO reuse, removal, idle expiry, IPv4/IPv6
 * separation, and a random churn checked against a naive model. */
#include <netinet/in.h>

#include "tests/unit/tap.h"
#include "vnet/vnet.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint32_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 0x2545f4914f6cdd1dULL) >> 32);
}

static struct vnet_tuple tup(unsigned family, uint8_t proto, uint32_t i)
{
	struct vnet_tuple t = {.family = (uint8_t)family, .proto = proto};

	t.src.b[0] = 10;
	t.src.b[1] = (uint8_t)(i >> 16);
	t.src.b[2] = (uint8_t)(i >> 8);
	t.src.b[3] = 2;
	t.dst.b[0] = 93;
	t.dst.b[3] = (uint8_t)i;
	if (family == 6)
		t.src.b[15] = t.dst.b[15] = 1;
	t.sport = (uint16_t)(30000 + i);
	t.dport = 443;
	return t;
}

TEST(add_and_lookup_both_ways)
{
	struct vnet_nat *n = NULL;
	struct vnet_nat_entry *e = NULL, *e2 = NULL;
	struct vnet_tuple t = tup(4, IPPROTO_TCP, 1), other = tup(4, IPPROTO_TCP, 2);
	struct vnet_nat_stats st;
	int marker;

	CHECK_INT(vnet_nat_new(10000, 10009, 100, &n), ==, 0);
	CHECK_INT(vnet_nat_add(n, &t, 5, &e), ==, 0);
	REQUIRE(e);
	CHECK_UINT(vnet_nat_entry_port(e), ==, 10000);
	CHECK(vnet_tuple_equal(vnet_nat_entry_tuple(e), &t));
	CHECK_UINT(vnet_nat_entry_last_used(e), ==, 5);
	CHECK(vnet_nat_entry_userdata(e) == NULL);
	vnet_nat_entry_set_userdata(e, &marker);
	CHECK(vnet_nat_entry_userdata(e) == &marker);

	CHECK(vnet_nat_lookup(n, &t) == e);
	CHECK(vnet_nat_lookup(n, &other) == NULL);
	CHECK(vnet_nat_lookup_port(n, IPPROTO_TCP, 10000) == e);
	CHECK(vnet_nat_lookup_port(n, IPPROTO_UDP, 10000) == NULL);
	CHECK(vnet_nat_lookup_port(n, IPPROTO_TCP, 10001) == NULL);
	CHECK(vnet_nat_lookup_port(n, IPPROTO_TCP, 9999) == NULL);
	CHECK(vnet_nat_lookup_port(n, IPPROTO_TCP, 65535) == NULL);
	CHECK(vnet_nat_lookup_port(n, IPPROTO_ICMP, 10000) == NULL);

	/* The same tuple again (a retransmitted SYN) finds its entry. */
	CHECK_INT(vnet_nat_add(n, &t, 6, &e2), ==, -EEXIST);
	CHECK(e2 == e);
	/* The reverse tuple is another flow. */
	vnet_tuple_reverse(&other);
	CHECK_INT(vnet_nat_add(n, &other, 6, &e2), ==, 0);
	CHECK_UINT(vnet_nat_entry_port(e2), ==, 10001);

	vnet_nat_stats(n, &st);
	CHECK_UINT(st.entries, ==, 2);
	CHECK_UINT(st.tcp, ==, 2);
	CHECK_UINT(st.udp, ==, 0);
	CHECK_UINT(st.added, ==, 2);
	CHECK_UINT(st.max_entries, ==, 100);
	CHECK_UINT(st.lookups, ==, 8);
	CHECK_UINT(st.misses, ==, 6);

	vnet_nat_remove(n, e);
	CHECK(vnet_nat_lookup(n, &t) == NULL);
	CHECK(vnet_nat_lookup_port(n, IPPROTO_TCP, 10000) == NULL);
	CHECK(vnet_nat_lookup(n, &other) == e2);
	vnet_nat_stats(n, &st);
	CHECK_UINT(st.entries, ==, 1);
	CHECK_UINT(st.removed, ==, 1);
	vnet_nat_free(n);
	vnet_nat_free(NULL);
}

TEST(bad_arguments)
{
	struct vnet_nat *n = NULL;
	struct vnet_tuple t = tup(4, IPPROTO_ICMP, 1);
	struct vnet_nat_entry *e = NULL;

	CHECK_INT(vnet_nat_new(0, 10, 10, &n), ==, -EINVAL);
	CHECK_INT(vnet_nat_new(11, 10, 10, &n), ==, -EINVAL);
	CHECK_INT(vnet_nat_new(10, 10, 0, &n), ==, -EINVAL);
	CHECK_INT(vnet_nat_new(10, 10, (1u << 20) + 1, &n), ==, -EINVAL);
	CHECK_INT(vnet_nat_new(65535, 65535, 1, &n), ==, 0);
	CHECK_INT(vnet_nat_add(n, &t, 0, &e), ==, -EPROTONOSUPPORT);
	t = tup(5, IPPROTO_TCP, 1);
	CHECK_INT(vnet_nat_add(n, &t, 0, &e), ==, -EINVAL);
	t = tup(6, IPPROTO_UDP, 1);
	CHECK_INT(vnet_nat_add(n, &t, 0, &e), ==, 0);
	CHECK_UINT(vnet_nat_entry_port(e), ==, 65535);
	CHECK_INT(vnet_nat_expire(n, IPPROTO_ICMP, USEC_INFINITY, NULL, NULL), ==, 0);
	CHECK_UINT(vnet_nat_oldest(n, IPPROTO_ICMP), ==, USEC_INFINITY);
	vnet_nat_free(n);
}

TEST(family_separation)
{
	struct vnet_nat *n = NULL;
	struct vnet_nat_entry *e4 = NULL, *e6 = NULL;
	struct vnet_tuple t4 = tup(4, IPPROTO_UDP, 7), t6 = t4, junk = t4;

	/* The same bytes as IPv6: a different flow. */
	t6.family = 6;
	CHECK_INT(vnet_nat_new(20000, 20100, 100, &n), ==, 0);
	CHECK_INT(vnet_nat_add(n, &t4, 0, &e4), ==, 0);
	CHECK_INT(vnet_nat_add(n, &t6, 0, &e6), ==, 0);
	CHECK(e4 != e6);
	CHECK(vnet_nat_lookup(n, &t4) == e4);
	CHECK(vnet_nat_lookup(n, &t6) == e6);
	/* Same protocol: separate NAT ports, shared by both families. */
	CHECK_UINT(vnet_nat_entry_port(e4), !=, vnet_nat_entry_port(e6));
	/* Bytes past an IPv4 address do not count. */
	memset(junk.src.b + 4, 0xaa, 12);
	memset(junk.dst.b + 4, 0x55, 12);
	CHECK(vnet_nat_lookup(n, &junk) == e4);
	CHECK_INT(vnet_nat_add(n, &junk, 0, NULL), ==, -EEXIST);
	/* The stored tuple is clean. */
	CHECK(vnet_tuple_equal(vnet_nat_entry_tuple(e4), &t4));
	/* TCP and UDP have their own port spaces. */
	t4.proto = IPPROTO_TCP;
	CHECK_INT(vnet_nat_add(n, &t4, 0, &e4), ==, 0);
	CHECK_UINT(vnet_nat_entry_port(e4), ==, 20000);
	vnet_nat_free(n);
}

TEST(allocation_until_full)
{
	struct vnet_nat *n = NULL;
	struct vnet_nat_entry *e = NULL;
	struct vnet_nat_stats st;
	struct vnet_tuple t;
	bool seen[100] = {false};

	/* 100 ports per protocol, 150 entries in all. */
	CHECK_INT(vnet_nat_new(40000, 40099, 150, &n), ==, 0);
	for (uint32_t i = 0; i < 100; i++) {
		t = tup(i % 2 ? 6 : 4, IPPROTO_TCP, i);
		REQUIRE(vnet_nat_add(n, &t, i, &e) == 0);
		CHECK(!seen[vnet_nat_entry_port(e) - 40000]);
		seen[vnet_nat_entry_port(e) - 40000] = true;
	}
	t = tup(4, IPPROTO_TCP, 1000);
	CHECK_INT(vnet_nat_add(n, &t, 0, &e), ==, -EADDRNOTAVAIL);
	/* UDP still has ports, until the table bound. */
	for (uint32_t i = 0; i < 50; i++) {
		t = tup(4, IPPROTO_UDP, i);
		REQUIRE(vnet_nat_add(n, &t, i, &e) == 0);
	}
	t = tup(4, IPPROTO_UDP, 1000);
	CHECK_INT(vnet_nat_add(n, &t, 0, &e), ==, -ENOSPC);
	vnet_nat_stats(n, &st);
	CHECK_UINT(st.entries, ==, 150);
	CHECK_UINT(st.tcp, ==, 100);
	CHECK_UINT(st.udp, ==, 50);
	CHECK_UINT(st.full, ==, 2);

	/* One removal makes room for exactly one. */
	e = vnet_nat_lookup_port(n, IPPROTO_TCP, 40042);
	REQUIRE(e);
	vnet_nat_remove(n, e);
	t = tup(4, IPPROTO_TCP, 1000);
	CHECK_INT(vnet_nat_add(n, &t, 0, &e), ==, 0);
	CHECK_UINT(vnet_nat_entry_port(e), ==, 40042);
	t = tup(4, IPPROTO_TCP, 1001);
	CHECK_INT(vnet_nat_add(n, &t, 0, &e), ==, -ENOSPC);
	vnet_nat_free(n);
}

TEST(freed_ports_reused_last)
{
	struct vnet_nat *n = NULL;
	struct vnet_nat_entry *e = NULL, *first = NULL;
	struct vnet_tuple t;

	CHECK_INT(vnet_nat_new(1000, 1009, 100, &n), ==, 0);
	t = tup(4, IPPROTO_TCP, 0);
	REQUIRE(vnet_nat_add(n, &t, 0, &first) == 0);
	CHECK_UINT(vnet_nat_entry_port(first), ==, 1000);
	vnet_nat_remove(n, first);
	/* Port 1000 is free again but waits behind 1001..1009. */
	for (uint32_t i = 1; i <= 9; i++) {
		t = tup(4, IPPROTO_TCP, i);
		REQUIRE(vnet_nat_add(n, &t, 0, &e) == 0);
		CHECK_UINT(vnet_nat_entry_port(e), ==, 1000 + i);
	}
	t = tup(4, IPPROTO_TCP, 10);
	REQUIRE(vnet_nat_add(n, &t, 0, &e) == 0);
	CHECK_UINT(vnet_nat_entry_port(e), ==, 1000);
	vnet_nat_free(n);
}

struct expired {
	int count;
	uint16_t ports[16];
	void *uds[16];
	struct vnet_nat *n;
};

static void on_expire(const struct vnet_tuple *t, uint16_t port, void *entry_ud, void *ud)
{
	struct expired *x = ud;

	CHECK(vnet_nat_lookup(x->n, t) == NULL); /* already gone */
	CHECK(vnet_nat_lookup_port(x->n, t->proto, port) == NULL);
	if (x->count < 16) {
		x->ports[x->count] = port;
		x->uds[x->count] = entry_ud;
	}
	x->count++;
}

TEST(idle_expiry)
{
	struct vnet_nat *n = NULL;
	struct vnet_nat_entry *e[6];
	struct expired x = {0};
	struct vnet_nat_stats st;
	int uds[6];

	CHECK_INT(vnet_nat_new(5000, 5099, 100, &n), ==, 0);
	x.n = n;
	CHECK_UINT(vnet_nat_oldest(n, IPPROTO_TCP), ==, USEC_INFINITY);
	for (uint32_t i = 0; i < 6; i++) {
		struct vnet_tuple t = tup(i % 2 ? 6 : 4, i < 4 ? IPPROTO_TCP : IPPROTO_UDP, i);

		REQUIRE(vnet_nat_add(n, &t, 100 * (i + 1), &e[i]) == 0);
		vnet_nat_entry_set_userdata(e[i], &uds[i]);
	}
	/* TCP at 100, 200, 300, 400; UDP at 500, 600. */
	CHECK_UINT(vnet_nat_oldest(n, IPPROTO_TCP), ==, 100);
	CHECK_UINT(vnet_nat_oldest(n, IPPROTO_UDP), ==, 500);
	/* Using the oldest makes it the youngest. */
	vnet_nat_touch(n, e[0], 1000);
	CHECK_UINT(vnet_nat_entry_last_used(e[0]), ==, 1000);
	CHECK_UINT(vnet_nat_oldest(n, IPPROTO_TCP), ==, 200);
	/* A clock that goes back never unsorts the list. */
	vnet_nat_touch(n, e[1], 50);
	CHECK_UINT(vnet_nat_entry_last_used(e[1]), ==, 1000);
	CHECK_UINT(vnet_nat_oldest(n, IPPROTO_TCP), ==, 300);

	/* Expire TCP used before 401: e[2], e[3]; UDP untouched. */
	CHECK_INT(vnet_nat_expire(n, IPPROTO_TCP, 401, on_expire, &x), ==, 2);
	CHECK_INT(x.count, ==, 2);
	CHECK_UINT(x.ports[0], ==, 5002);
	CHECK_UINT(x.ports[1], ==, 5003);
	CHECK(x.uds[0] == &uds[2]);
	CHECK(x.uds[1] == &uds[3]);
	CHECK_UINT(vnet_nat_oldest(n, IPPROTO_TCP), ==, 1000);
	CHECK_UINT(vnet_nat_oldest(n, IPPROTO_UDP), ==, 500);
	/* "before" is strict. */
	CHECK_INT(vnet_nat_expire(n, IPPROTO_UDP, 500, on_expire, &x), ==, 0);
	CHECK_INT(vnet_nat_expire(n, IPPROTO_UDP, 501, NULL, NULL), ==, 1);
	CHECK_INT(vnet_nat_expire(n, IPPROTO_TCP, USEC_INFINITY, on_expire, &x), ==, 2);
	CHECK_INT(x.count, ==, 4);
	vnet_nat_stats(n, &st);
	CHECK_UINT(st.entries, ==, 1);
	CHECK_UINT(st.expired, ==, 5);
	CHECK_UINT(st.tcp, ==, 0);
	CHECK_UINT(st.udp, ==, 1);
	vnet_nat_free(n);
}

/* The expiry callback may remove other entries (tearing a flow down can
 * close its sibling). */
static void on_expire_remove_next(const struct vnet_tuple *t, uint16_t port, void *entry_ud,
				  void *ud)
{
	struct vnet_nat *n = ud;
	struct vnet_nat_entry *sibling = entry_ud;

	(void)t;
	(void)port;
	if (sibling)
		vnet_nat_remove(n, sibling);
}

TEST(expiry_callback_may_remove)
{
	struct vnet_nat *n = NULL;
	struct vnet_nat_entry *a = NULL, *b = NULL, *c = NULL;
	struct vnet_tuple t;

	CHECK_INT(vnet_nat_new(5000, 5099, 100, &n), ==, 0);
	t = tup(4, IPPROTO_UDP, 1);
	REQUIRE(vnet_nat_add(n, &t, 1, &a) == 0);
	t = tup(4, IPPROTO_UDP, 2);
	REQUIRE(vnet_nat_add(n, &t, 2, &b) == 0);
	t = tup(4, IPPROTO_UDP, 3);
	REQUIRE(vnet_nat_add(n, &t, 3, &c) == 0);
	vnet_nat_entry_set_userdata(a, b);
	CHECK_INT(vnet_nat_expire(n, IPPROTO_UDP, 10, on_expire_remove_next, n), ==, 2);
	CHECK_UINT(vnet_nat_oldest(n, IPPROTO_UDP), ==, USEC_INFINITY);
	vnet_nat_free(n);
}

/* Random adds, removes, touches and expiries against a naive model: every
 * live port unique, both lookups agree with the model. */
TEST(random_churn_against_model)
{
	enum { N = 3000, PORTS = 500 };
	static struct vnet_tuple model_t[N];
	static struct vnet_nat_entry *model_e[N];
	struct vnet_nat *n = NULL;
	struct vnet_nat_stats st;
	usec_t now = 0;
	uint32_t live = 0;

	CHECK_INT(vnet_nat_new(30000, 30000 + PORTS - 1, 800, &n), ==, 0);
	for (int step = 0; step < 200000; step++) {
		uint32_t i = rnd() % N;
		unsigned op = rnd() % 10;

		now += rnd() % 3;
		if (!model_e[i]) {
			model_t[i] = tup(rnd() % 2 ? 4 : 6, rnd() % 2 ? IPPROTO_TCP : IPPROTO_UDP, i);
			if (op < 6) {
				struct vnet_nat_entry *e = NULL;
				int r = vnet_nat_add(n, &model_t[i], now, &e);

				if (r == 0) {
					model_e[i] = e;
					live++;
				} else if (r != -ENOSPC && r != -EADDRNOTAVAIL) {
					TAP_FAIL("add: %d", r);
					break;
				}
			} else {
				CHECK(vnet_nat_lookup(n, &model_t[i]) == NULL);
			}
		} else if (op < 3) {
			vnet_nat_remove(n, model_e[i]);
			model_e[i] = NULL;
			live--;
		} else if (op < 8) {
			struct vnet_nat_entry *e = model_e[i];

			CHECK(vnet_nat_lookup(n, &model_t[i]) == e);
			CHECK(vnet_nat_lookup_port(n, model_t[i].proto, vnet_nat_entry_port(e)) == e);
			vnet_nat_touch(n, e, now);
		} else if (step % 1000 == 0) {
			/* Expire everything idle for 200 ticks; update the model. */
			for (int pi = 0; pi < 2; pi++) {
				uint8_t proto = pi ? IPPROTO_UDP : IPPROTO_TCP;
				usec_t before = now > 200 ? now - 200 : 0;
				int expect = 0;

				for (uint32_t j = 0; j < N; j++)
					if (model_e[j] && model_t[j].proto == proto &&
					    vnet_nat_entry_last_used(model_e[j]) < before) {
						model_e[j] = NULL;
						expect++;
					}
				CHECK_INT(vnet_nat_expire(n, proto, before, NULL, NULL), ==, expect);
				live -= (uint32_t)expect;
			}
		}
		if (tap_failed_checks)
			break;
	}
	/* Final audit: ports unique, lookups consistent, counts equal. */
	{
		static bool used[2][PORTS];

		for (uint32_t j = 0; j < N; j++) {
			struct vnet_nat_entry *e = model_e[j];
			uint16_t port;
			int pi;

			if (!e)
				continue;
			port = vnet_nat_entry_port(e);
			pi = model_t[j].proto == IPPROTO_UDP;
			REQUIRE(port >= 30000 && port < 30000 + PORTS);
			CHECK(!used[pi][port - 30000]);
			used[pi][port - 30000] = true;
			CHECK(vnet_nat_lookup(n, &model_t[j]) == e);
			CHECK(vnet_nat_lookup_port(n, model_t[j].proto, port) == e);
		}
	}
	vnet_nat_stats(n, &st);
	CHECK_UINT(st.entries, ==, live);
	printf("# %u live at the end; %ju added, %ju removed, %ju expired, %ju refused\n", live,
	       (uintmax_t)st.added, (uintmax_t)st.removed, (uintmax_t)st.expired,
	       (uintmax_t)st.full);
	vnet_nat_free(n);
}

TEST(full_port_range)
{
	struct vnet_nat *n = NULL;
	struct vnet_nat_entry *e = NULL;
	struct vnet_tuple t;
	uint32_t count = 0;

	/* Every port 1..65535, 65535 TCP flows: all distinct, then refused. */
	CHECK_INT(vnet_nat_new(1, 65535, 1u << 17, &n), ==, 0);
	for (uint32_t i = 0; i < 65535; i++) {
		t = tup(6, IPPROTO_TCP, i);
		t.dport = (uint16_t)(i >> 8);
		if (vnet_nat_add(n, &t, i, &e) == 0)
			count++;
	}
	CHECK_UINT(count, ==, 65535);
	t = tup(4, IPPROTO_TCP, 1);
	CHECK_INT(vnet_nat_add(n, &t, 0, &e), ==, -EADDRNOTAVAIL);
	for (uint32_t p = 1; p <= 65535; p++) {
		e = vnet_nat_lookup_port(n, IPPROTO_TCP, (uint16_t)p);
		if (!e || vnet_nat_entry_port(e) != p) {
			TAP_FAIL("port %u", p);
			break;
		}
	}
	CHECK_INT(vnet_nat_expire(n, IPPROTO_TCP, 30000, NULL, NULL), ==, 30000);
	CHECK_UINT(vnet_nat_oldest(n, IPPROTO_TCP), ==, 30000);
	vnet_nat_free(n);
}

TAP_MAIN()
