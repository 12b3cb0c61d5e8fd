/* Benchmark: the relay's per-packet CPU work in vnet/ — parse + rewrite of
 * source and destination (address and port, incremental checksums) + tuple,
 * as done twice per TCP packet (research/vnet.md §1.3) — for small and large
 * packets, IPv4 and IPv6; a full checksum pass over the same packet for
 * comparison; and NAT table lookups (by tuple, by NAT port) and add+remove.
 *
 *	bench/vnet_packet.sh [BUILD_DIR] [N]
 */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vnet/vnet.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint8_t pkt[VNET_PACKET_MAX];
static volatile uint32_t sink;

/* A UDP datagram with valid checksums, from vnet's own builder. The rewrite
 * of a TCP segment costs the same (two addresses, two ports, two checksum
 * fields), whatever the payload size. */
static uint32_t make_udp(unsigned family, uint32_t payload)
{
	static uint8_t data[VNET_PACKET_MAX];
	struct vnet_tuple t = {.family = (uint8_t)family, .proto = IPPROTO_UDP, .sport = 40000,
			       .dport = 443};
	int len;

	t.src.b[0] = family == 4 ? 10 : 0xfd;
	t.src.b[3] = 2;
	t.dst.b[0] = family == 4 ? 93 : 0x20;
	t.dst.b[3] = 34;
	memset(data, 0xab, sizeof(data));
	len = vnet_packet_build_udp(pkt, sizeof(pkt), &t, data, payload);
	if (len < 0)
		exit(1);
	return (uint32_t)len;
}

static void bench_rewrite(const char *name, unsigned family, uint32_t payload, long n)
{
	uint32_t len = make_udp(family, payload);
	struct vnet_addr fake = {{0}}, listener = {{0}};
	struct vnet_packet p;
	struct vnet_tuple t;
	double t0, dt, full;

	fake.b[0] = family == 4 ? 198 : 0xfd;
	fake.b[1] = 18, fake.b[3] = 2;
	listener.b[0] = family == 4 ? 198 : 0xfd;
	listener.b[1] = 18, listener.b[3] = 1;
	t0 = now_s();
	for (long i = 0; i < n; i++) {
		if (vnet_packet_parse(&p, pkt, len) < 0)
			exit(1);
		vnet_packet_tuple(&p, &t);
		vnet_packet_set_src(&p, &fake, (uint16_t)(10000 + (i & 1023)));
		vnet_packet_set_dst(&p, &listener, 40001);
		sink += t.sport;
	}
	dt = now_s() - t0;
	if (vnet_packet_parse(&p, pkt, len) < 0 || !vnet_packet_csum_ok(&p))
		exit(2);
	t0 = now_s();
	for (long i = 0; i < n / 10; i++)
		sink += vnet_packet_csum_ok(&p);
	full = (now_s() - t0) / (n / 10);
	printf("%-22s %6u B  parse+tuple+rewrite: %6.2f M pkt/s (%5.0f ns)   full csum pass: %7.0f ns\n",
	       name, len, n / dt / 1e6, dt / n * 1e9, full * 1e9);
}

static void bench_nat(uint32_t entries, long n)
{
	struct vnet_nat *nat = NULL;
	struct vnet_tuple *ts = calloc(entries, sizeof(*ts));
	struct vnet_nat_entry *e;
	double t0, dt_l, dt_t, dt_p, dt_c;

	if (!ts || vnet_nat_new(1024, 65535, entries * 2, &nat) < 0)
		exit(1);
	for (uint32_t i = 0; i < entries; i++) {
		ts[i].family = i % 4 ? 4 : 6;
		ts[i].proto = i % 2 ? IPPROTO_TCP : IPPROTO_UDP;
		ts[i].src.b[0] = 10, ts[i].src.b[3] = 2;
		ts[i].dst.b[0] = (uint8_t)(i >> 16), ts[i].dst.b[1] = (uint8_t)(i >> 8);
		ts[i].dst.b[2] = (uint8_t)i;
		ts[i].sport = (uint16_t)(32768 + i);
		ts[i].dport = 443;
		if (vnet_nat_add(nat, &ts[i], 0, NULL) < 0)
			exit(1);
	}
	t0 = now_s();
	for (long i = 0; i < n; i++)
		sink += !!vnet_nat_lookup(nat, &ts[(uint32_t)i * 2654435761u % entries]);
	dt_l = now_s() - t0;
	t0 = now_s();
	for (long i = 0; i < n; i++) {
		e = vnet_nat_lookup(nat, &ts[(uint32_t)i * 2654435761u % entries]);
		vnet_nat_touch(nat, e, (usec_t)i);
	}
	dt_t = now_s() - t0;
	t0 = now_s();
	for (long i = 0; i < n; i++)
		sink += !!vnet_nat_lookup_port(nat, i & 1 ? IPPROTO_TCP : IPPROTO_UDP,
					       (uint16_t)(1024 + (i % (entries / 2))));
	dt_p = now_s() - t0;
	t0 = now_s();
	for (long i = 0; i < n / 4; i++) {
		struct vnet_tuple t = ts[0];

		t.dport = (uint16_t)(1 + (i & 0x7fff));
		t.family = 4;
		if (vnet_nat_add(nat, &t, (usec_t)i, &e) < 0)
			exit(3);
		vnet_nat_remove(nat, e);
	}
	dt_c = now_s() - t0;
	printf("NAT %6u entries (random order): lookup by tuple %5.1f M/s (%3.0f ns), +touch %5.1f "
	       "M/s (%3.0f ns), by port %5.1f M/s (%3.0f ns), add+remove %4.1f M/s (%3.0f ns)\n",
	       entries, n / dt_l / 1e6, dt_l / n * 1e9, n / dt_t / 1e6, dt_t / n * 1e9, n / dt_p / 1e6, dt_p / n * 1e9,
	       n / 4 / dt_c / 1e6, dt_c / (n / 4) * 1e9);
	vnet_nat_free(nat);
	free(ts);
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 5000000;

	bench_rewrite("IPv4 UDP, empty", 4, 0, n);
	bench_rewrite("IPv4 UDP, 1472 B", 4, 1472, n);
	bench_rewrite("IPv4 UDP, 64 KiB", 4, 65507, n);
	bench_rewrite("IPv6 UDP, empty", 6, 0, n);
	bench_rewrite("IPv6 UDP, 1452 B", 6, 1452, n);
	bench_rewrite("IPv6 UDP, 64 KiB", 6, 65527, n);
	bench_nat(1000, n);
	bench_nat(50000, n);
	return sink == 42;
}
