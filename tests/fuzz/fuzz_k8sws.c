/* FUZZ_MODULE launcher */
/* Fuzz target for the port-forward's WebSocket decoder (launcher/k8s_ws.c):
 * whatever the API server sends after the 101 — frames of any opcode,
 * length form and fragmentation, masked or not, the channel byte and the
 * 2-byte port prefixes of channels 0 and 1, pings, closes, error text —
 * is decoded with k8s_ws_read in reads of varying sizes. The first input
 * byte picks the read size, so splits across reads are explored too. */
#include <stdint.h>
#include <string.h>

#include "launcher/k8s_ws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t out[1 << 16];
	size_t got = 0;

	if (size < 1 || size > (1 << 20))
		return 0;
	size_t chunk = (size_t)data[0] * 64 + 1;
	struct k8s_ws *w = k8s_ws_from_bytes(data + 1, size - 1, 8080);
	for (;;) {
		ssize_t n = k8s_ws_read(w, out, chunk < sizeof(out) ? chunk : sizeof(out));
		if (n <= 0)
			break;
		got += (size_t)n;
		/* Data comes out of frames: never more than went in. */
		if (got > size)
			__builtin_trap();
	}
	k8s_ws_free(w);
	return 0;
}
