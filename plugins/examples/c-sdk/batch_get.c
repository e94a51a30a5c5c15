/* Eight requests at once from a synchronous C user (ph_send_batch, k6's http.batch): over
 * HTTP/2 eight streams of the user's connection; over HTTP/1.1 six connections, the last two
 * requests taking the first two to come back. Each response is recorded by the default rule. */
#include "perfhost.h"

static void batch(ph_user *u) {
    static const char *const paths[8] = {"/health?part=1", "/health?part=2", "/health?part=3",
                                         "/health?part=4", "/health?part=5", "/health?part=6",
                                         "/health?part=7", "/health?part=8"};
    ph_request reqs[8];
    for (int i = 0; i < 8; i++) reqs[i] = ph_get(paths[i]);
    ph_response *out[8];
    ph_send_batch(u, reqs, 8, out);
}

PH_USER(BatchGet, ph_constant(0), PH_TASK(batch, 1));
