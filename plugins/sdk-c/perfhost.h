/* perfhost's C SDK: write a virtual user as plain C functions.
 *
 * A task is a function `void task(ph_user *u)` that calls `ph_send()` and gets the response
 * back, as in any blocking HTTP client. The SDK targets the contract's sync world
 * `plugin-sync`: `send` blocks only its own user, because the host gives each user its own
 * instance (a C instance costs ~25 KiB). That is also why globals are per user here. The async
 * world's callback ABI (subtasks, waitable sets) never shows: a C function cannot suspend in
 * the middle of its stack, so a blocking `ph_send()` is only possible on the sync world.
 *
 *     #include "perfhost.h"
 *
 *     static void health(ph_user *u) {
 *         ph_response *r = ph_send(u, ph_get("/health", .catch_response = true));
 *         ph_check(r, r->status == 200 && strstr(ph_text(r), "\"healthy\""), "not healthy");
 *     }
 *
 *     PH_USER(Visitor, ph_between(1000, 3000), PH_TASK(health, 1));
 *
 * Everything the SDK hands out (responses, their text, config values, data rows) lives until
 * the task (or on_start/on_stop) returns and is freed then: nothing to free by hand.
 *
 * Build (what `perfhost plugin new NAME --lang c` writes into build.sh): `wit-bindgen c wit
 * --world plugin-sync`, then `clang --target=wasm32-wasi -mexec-model=reactor` over your file,
 * perfhost.c and the generated plugin_sync.c / plugin_sync_component_type.o, then
 * `wasm-tools component new`.
 */
#ifndef PERFHOST_H
#define PERFHOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* One virtual user (opaque). */
typedef struct ph_user ph_user;

/* A request: build one with ph_get/ph_post/… and designated initialisers, e.g.
 * `ph_post("/verify", .json = body, .name = "/verify (standard)")`. */
typedef struct ph_request {
    const char *method;
    const char *path;
    /* The statistics row (Locust's `name=`); default: the path. */
    const char *name;
    /* The body: `body_len` bytes, or up to the NUL when `body_len` is 0. */
    const char *body;
    size_t body_len;
    /* A JSON body: sets the body and `Content-Type: application/json`. */
    const char *json;
    /* Extra headers: "Name", "value", "Name", "value", …, NULL. */
    const char *const *headers;
    /* Per-request timeout in ms (0: the run's --timeout). */
    uint32_t timeout_ms;
    /* Decide success or failure yourself: ph_success / ph_failure / ph_check (Locust's
     * catch_response). Without it the default rule (status < 400) applies. */
    bool catch_response;
    /* Do not follow redirects. */
    bool no_redirects;
    /* The body will never be read: the host counts it and keeps none of it (ph_text is ""). */
    bool discard_body;
} ph_request;

#define ph_get(...) ((ph_request){.method = "GET", .path = __VA_ARGS__})
#define ph_post(...) ((ph_request){.method = "POST", .path = __VA_ARGS__})
#define ph_put(...) ((ph_request){.method = "PUT", .path = __VA_ARGS__})
#define ph_patch(...) ((ph_request){.method = "PATCH", .path = __VA_ARGS__})
#define ph_delete(...) ((ph_request){.method = "DELETE", .path = __VA_ARGS__})
#define ph_head(...) ((ph_request){.method = "HEAD", .path = __VA_ARGS__})

/* What ph_send returns (never NULL). */
typedef struct ph_response {
    /* The HTTP status; 0 when the request failed (as in Locust): the host has recorded the
     * failure already and `error` says why. */
    uint16_t status;
    const char *error;
    /* The measured latency in microseconds. */
    uint64_t elapsed_us;
    struct ph_response_private *private_;
} ph_response;

/* Sends the request and waits for the response; the other users run meanwhile. */
ph_response *ph_send(ph_user *u, ph_request req);
/* Sends the `n` requests at once (k6's http.batch) and waits for all of them: `out[i]` is the
 * response to `reqs[i]`. They go out as streams of the user's HTTP/2 connection, or over up to
 * six HTTP/1.1 connections. Since contract 0.2.4. */
void ph_send_batch(ph_user *u, const ph_request *reqs, size_t n, ph_response **out);
/* The body as NUL-terminated text ("" when the request failed); ph_body_len gives its size. */
const char *ph_text(ph_response *r);
size_t ph_body_len(ph_response *r);
/* A response header, or NULL. */
const char *ph_header(ph_response *r, const char *name);
/* With catch_response: record the response as a success / as a failure with a reason (keep
 * ids out of it: it groups failures in reports) / as one or the other. */
void ph_success(ph_response *r);
void ph_failure(ph_response *r, const char *reason);
void ph_check(ph_response *r, bool ok, const char *reason_if_not);

/* Waits `ms` milliseconds where it is called (k6's sleep): blocks this user only (it has its
 * own instance); returns early when the run stops. Since contract 0.2.3. */
void ph_sleep(ph_user *u, uint32_t ms);

/* The user's seeded random numbers (--seed): 64 bits, [0, 1), a uniform integer in
 * [low, high). */
uint64_t ph_random_u64(ph_user *u);
double ph_random(ph_user *u);
uint64_t ph_random_range(ph_user *u, uint64_t low, uint64_t high);

/* `--config KEY=VALUE` (NULL when unset); the next row of `--data NAME=FILE` (NULL when the
 * data set is unknown or exhausted: the task then ends with a task error saying which). */
const char *ph_config(ph_user *u, const char *key);
const char *ph_data_next(ph_user *u, const char *name);
/* printf-style formatting into a string that lives until the task returns: %s %c %d %i %u,
 * with l, ll or z (e.g. %llu, %zu), and %%. Use it instead of snprintf: wasi-libc's stdio
 * links WASI file calls, which the build then refuses. */
const char *ph_format(ph_user *u, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* This user's id (0, 1, …) and a line in the run's log. */
uint64_t ph_user_id(ph_user *u);
void ph_log(ph_user *u, const char *message);

/* How the current task ends, other than normally: a task error (Locust's exception), stop
 * this user, or skip the wait. The last call wins. */
void ph_error(ph_user *u, const char *message);
void ph_stop_user(ph_user *u);
void ph_reschedule(ph_user *u);

/* Declaring users. */
typedef void (*ph_task_fn)(ph_user *u);

typedef struct ph_task {
    const char *name;
    uint32_t weight;
    ph_task_fn run;
} ph_task;

typedef struct ph_wait {
    enum { PH_WAIT_BETWEEN, PH_WAIT_CONSTANT, PH_WAIT_PACING, PH_WAIT_THROUGHPUT } kind;
    uint32_t min_ms, max_ms;
    double per_second;
} ph_wait;

/* Locust's wait times, in milliseconds: between, constant, constant_pacing,
 * constant_throughput (tasks per second). */
#define ph_between(min_ms, max_ms) {PH_WAIT_BETWEEN, (min_ms), (max_ms), 0}
#define ph_constant(ms) {PH_WAIT_CONSTANT, (ms), (ms), 0}
#define ph_constant_pacing(ms) {PH_WAIT_PACING, (ms), (ms), 0}
#define ph_constant_throughput(per_second) {PH_WAIT_THROUGHPUT, 0, 0, (per_second)}

typedef struct ph_class {
    const char *name;
    uint32_t weight;
    ph_wait wait;
    const ph_task *tasks;
    size_t task_count;
    /* Tasks in order, one after the other (Locust's SequentialTaskSet). */
    bool sequential;
    /* Optional: once before the first task / when the user stops. */
    ph_task_fn on_start;
    ph_task_fn on_stop;
} ph_class;

/* The plugin's classes: define both, or let PH_USER do it for one class. */
extern const ph_class ph_classes[];
extern const size_t ph_class_count;

/* A task named after its function: PH_TASK(checkout, 3) is Locust's `@task(3) def checkout`. */
#define PH_TASK(fn, weight) {#fn, (weight), (fn)}
#define PH_TASKS(...) \
    (const ph_task[]){__VA_ARGS__}, sizeof((const ph_task[]){__VA_ARGS__}) / sizeof(ph_task)

/* The one class of this plugin, named after its first argument, weight 1, tasks by weight. */
#define PH_USER(class_name, wait_time, ...)                                          \
    const ph_class ph_classes[] = {                                                  \
        {.name = #class_name, .weight = 1, .wait = wait_time, .tasks = PH_TASKS(__VA_ARGS__)}}; \
    const size_t ph_class_count = 1

#endif
