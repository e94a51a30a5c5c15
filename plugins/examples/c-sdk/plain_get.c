/* The plain GET of the benchmarks with the C SDK (plugins/sdk-c): every task fetches `/` with
 * no wait and never reads the body (bench/home_peers.sh). */
#include "perfhost.h"

static void get(ph_user *u) { ph_send(u, ph_get("/", .discard_body = true)); }

PH_USER(PlainGet, ph_constant(0), PH_TASK(get, 1));
