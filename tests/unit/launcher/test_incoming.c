/* incoming_decide and incoming_filter_format: which listener subscribes
 * which pod port with which filter (mirrord's rules for port_mapping,
 * ports, ignore_ports, ignore_localhost, http_filter.ports), and the
 * SUBSCRIBE filter string of docs/PROTOCOL.md §4.4. */
#include <arpa/inet.h>

#include "launcher/incoming.h"
#include "tests/unit/tap.h"

static const char *const no_env[] = {NULL};

static struct cfg *load(const char *text)
{
	struct cfg_source src = {.text = text,
				 .text_len = strlen(text),
				 .env = no_env,
				 .no_discover = true,
				 .path = "test.json"};
	struct err e = {0};
	struct cfg *c = NULL;
	int r = cfg_load(&src, &c, &e);

	if (r < 0)
		TAP_FAIL("cfg_load failed: %d %s", r, e.msg);
	REQUIRE(r == 0 && c);
	return c;
}

static struct listen_sock sock4(const char *addr, uint16_t port)
{
	struct listen_sock s = {.cookie = 1, .family = AF_INET, .port = port};

	inet_pton(AF_INET, addr, s.addr);
	return s;
}

/* The filter the listener subscribes with, or "-" for none; *remote too. */
static char got[512];
static const char *decide(const char *json, struct listen_sock s, uint16_t *remote)
{
	struct cfg *c = load(json);
	char *filter = NULL;
	const char *why = NULL;

	incoming_decide(&c->feature.network.incoming, &s, remote, &filter, &why);
	if (filter) {
		snprintf(got, sizeof(got), "%s", filter);
		CHECK(why == NULL);
	} else {
		snprintf(got, sizeof(got), "-");
		CHECK(why != NULL);
	}
	free(filter);
	cfg_free(c);
	return got;
}

#define IN(x) "{\"target\": \"pid/1\", \"feature\": {\"network\": {\"incoming\": " x "}}}"

TEST(mirror_by_default_every_port)
{
	uint16_t r = 0;

	CHECK_STR(decide("{}", sock4("0.0.0.0", 8000), &r), "");
	CHECK_INT(r, ==, 8000);
	CHECK_STR(decide(IN("\"off\""), sock4("0.0.0.0", 8000), &r), "-");
}

TEST(port_mapping_local_to_remote)
{
	uint16_t r = 0;

	CHECK_STR(decide(IN("{\"port_mapping\": [[9333, 80]]}"), sock4("0.0.0.0", 9333), &r), "");
	CHECK_INT(r, ==, 80);
	CHECK_STR(decide(IN("{\"port_mapping\": [[9333, 80]]}"), sock4("0.0.0.0", 9334), &r), "");
	CHECK_INT(r, ==, 9334);
}

TEST(ports_and_ignore_ports_on_the_local_port)
{
	uint16_t r = 0;

	CHECK_STR(decide(IN("{\"ignore_ports\": [9333]}"), sock4("0.0.0.0", 9333), &r), "-");
	CHECK_STR(decide(IN("{\"ignore_ports\": [9333]}"), sock4("0.0.0.0", 80), &r), "");
	CHECK_STR(decide(IN("{\"ports\": [80]}"), sock4("0.0.0.0", 80), &r), "");
	CHECK_STR(decide(IN("{\"ports\": [80]}"), sock4("0.0.0.0", 81), &r), "-");
	/* the mapping does not change which port the lists name */
	CHECK_STR(decide(IN("{\"ports\": [9333], \"port_mapping\": [[9333, 80]]}"),
			 sock4("0.0.0.0", 9333), &r),
		  "");
}

TEST(ignore_localhost_skips_loopback_binds)
{
	uint16_t r = 0;
	struct listen_sock v6 = {.family = AF_INET6, .port = 80};

	v6.addr[15] = 1; /* ::1 */
	CHECK_STR(decide(IN("{\"ignore_localhost\": true}"), sock4("127.0.0.1", 80), &r), "-");
	CHECK_STR(decide(IN("{\"ignore_localhost\": true}"), v6, &r), "-");
	CHECK_STR(decide(IN("{\"ignore_localhost\": true}"), sock4("0.0.0.0", 80), &r), "");
	CHECK_STR(decide(IN("{\"ignore_localhost\": false}"), sock4("127.0.0.1", 80), &r), "");
}

TEST(http_filter_ports_default_80_8080)
{
	uint16_t r = 0;
	const char *f =
		IN("{\"mode\": \"steal\", \"http_filter\": {\"header_filter\": \"x-user: a\"}}");

	CHECK_STR(decide(f, sock4("0.0.0.0", 80), &r), "header x-user: a\n");
	CHECK_STR(decide(f, sock4("0.0.0.0", 8080), &r), "header x-user: a\n");
	/* other ports: not stolen at all, unless incoming.ports lists them */
	CHECK_STR(decide(f, sock4("0.0.0.0", 9000), &r), "-");
	CHECK_STR(decide(IN("{\"mode\": \"steal\", \"ports\": [9000], "
			    "\"http_filter\": {\"path_filter\": \"^/api\"}}"),
			 sock4("0.0.0.0", 9000), &r),
		  "");
	/* http_filter.ports replaces the default, on the pod's port */
	CHECK_STR(decide(IN("{\"mode\": \"steal\", \"port_mapping\": [[7000, 9000]], "
			    "\"http_filter\": {\"path_filter\": \"^/api\", \"ports\": [9000]}}"),
			 sock4("0.0.0.0", 7000), &r),
		  "path ^/api\n");
	CHECK_INT(r, ==, 9000);
}

TEST(filter_strings)
{
	uint16_t r = 0;

	CHECK_STR(decide(IN("{\"http_filter\": {\"all_of\": [{\"header\": \"^x-user: alice$\"}, "
			    "{\"path\": \"^(?!/health)\"}]}}"),
			 sock4("0.0.0.0", 80), &r),
		  "all_of 2\nheader ^x-user: alice$\npath ^(?!/health)\n");
	CHECK_STR(decide(IN("{\"http_filter\": {\"any_of\": [{\"method\": \"post\"}, "
			    "{\"path\": \"/a\"}, {\"header\": \"h: 1\"}]}}"),
			 sock4("0.0.0.0", 80), &r),
		  "any_of 3\nmethod post\npath /a\nheader h: 1\n");
	/* what the agent cannot run is not sent: the port stays the pod's */
	CHECK_STR(decide(IN("{\"http_filter\": {\"header_filter_jq\": \".\"}}"),
			 sock4("0.0.0.0", 80), &r),
		  "-");
}

TEST(filter_format_errors)
{
	struct cfg_http_filter none = {.kind = CFG_HTTP_NONE};
	struct cfg_http_filter lf = {.kind = CFG_HTTP_PATH, .value = "a\nb"};
	struct cfg_http_filter empty = {.kind = CFG_HTTP_ALL_OF};
	char *s = NULL;

	CHECK_OK(incoming_filter_format(&none, &s));
	CHECK_STR(s, "");
	free(s);
	CHECK_INT(incoming_filter_format(&lf, &s), ==, -EINVAL);
	CHECK_INT(incoming_filter_format(&empty, &s), ==, -EINVAL);
}

TAP_MAIN()
