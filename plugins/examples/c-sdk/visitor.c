/* The two-task example of docs/plugins.md with the C SDK (plugins/sdk-c). */
#include "perfhost.h"

static void health(ph_user *u) {
    ph_response *r = ph_send(u, ph_get("/health", .catch_response = true));
    bool healthy = r->status == 200 && strstr(ph_text(r), "\"status\":\"healthy\"");
    ph_check(r, healthy, "status is not healthy");
}

static void item(ph_user *u) {
    const char *path = ph_format(u, "/items/%llu", (unsigned long long)ph_random_range(u, 1, 1000));
    ph_send(u, ph_get(path, .name = "/items/[id]"));
}

PH_USER(Visitor, ph_between(1000, 3000), PH_TASK(health, 3), PH_TASK(item, 1));
