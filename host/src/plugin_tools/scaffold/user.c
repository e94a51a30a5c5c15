/* {Class}: the virtual users of the perfhost plugin {name} (the SDK is perfhost.h). */
#include "perfhost.h"

/* One task: a function that sends requests and judges the responses. The host gives each
 * user its own instance, so globals here are per user. */
static void health(ph_user *u) {
    ph_response *r = ph_send(u, ph_get("/health", .catch_response = true));
    ph_check(r, r->status == 200, ph_format(u, "HTTP %u", r->status));
}

PH_USER({Class}, ph_between(1000, 3000), PH_TASK(health, 1));
