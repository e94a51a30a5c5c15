/* perfhost's C SDK (see perfhost.h): the contract's `behaviour-sync` exports, written once
 * over the bindings that `wit-bindgen c --world plugin-sync` generates. */
#include "perfhost.h"

#include <stdarg.h>
#include <stdlib.h>

#include "plugin_sync.h"

typedef perfhost_plugin_types_task_outcome_t outcome_t;
typedef perfhost_plugin_host_sync_borrow_user_context_t ctx_t;

/* Everything handed out during one task, freed when it returns. */
struct allocation {
    struct allocation *next;
    void (*release)(void *);
    void *ptr;
};

struct ph_response_private {
    perfhost_plugin_host_sync_own_response_t handle;
    bool has_handle;
    ph_user *user;
    char *text;
    size_t len;
};

struct exports_perfhost_plugin_behaviour_sync_user_t {
    perfhost_plugin_host_sync_own_user_context_t owned;
    const ph_class *class_;
    size_t next_in_order;
    struct allocation *allocations;
    uint8_t outcome;
    char *error;
};

struct ph_user {
    struct exports_perfhost_plugin_behaviour_sync_user_t inner;
};

static void *checked(void *ptr) {
    if (!ptr) abort(); /* out of memory: the host reports the trap */
    return ptr;
}

static ctx_t ctx(ph_user *u) {
    return perfhost_plugin_host_sync_borrow_user_context(u->inner.owned);
}

static void keep(ph_user *u, void *ptr, void (*release)(void *)) {
    struct allocation *a = checked(malloc(sizeof *a));
    *a = (struct allocation){u->inner.allocations, release, ptr};
    u->inner.allocations = a;
}

static char *keep_string(ph_user *u, const uint8_t *bytes, size_t len) {
    char *s = checked(malloc(len + 1));
    memcpy(s, bytes, len);
    s[len] = '\0';
    keep(u, s, free);
    return s;
}

static void release_response(void *ptr) {
    ph_response *r = ptr;
    if (r->private_->has_handle) perfhost_plugin_host_sync_response_drop_own(r->private_->handle);
    free(r->private_->text);
    free(r->private_);
    free(r);
}

static void release_all(ph_user *u) {
    while (u->inner.allocations) {
        struct allocation *a = u->inner.allocations;
        u->inner.allocations = a->next;
        a->release(a->ptr);
        free(a);
    }
}

static plugin_sync_string_t str(const char *s) {
    plugin_sync_string_t out;
    plugin_sync_string_set(&out, s);
    return out;
}

static const char *http_error_text(perfhost_plugin_host_sync_http_error_t *err) {
    switch (err->tag) {
    case PERFHOST_PLUGIN_TYPES_HTTP_ERROR_TIMEOUT: return "timeout";
    case PERFHOST_PLUGIN_TYPES_HTTP_ERROR_CANCELLED: return "cancelled";
    default: return NULL; /* the variants with a message: read below */
    }
}

/* The host's request for `req`, with its options set. */
static perfhost_plugin_host_sync_own_request_t own_request(ph_request req) {
    plugin_sync_string_t method = str(req.method), path = str(req.path);
    plugin_sync_string_t name = str(req.name ? req.name : req.path);
    const char *body = req.json ? req.json : req.body;
    size_t body_len = req.body_len ? req.body_len : body ? strlen(body) : 0;
    plugin_sync_list_u8_t bytes = {(uint8_t *)body, body_len};
    perfhost_plugin_host_sync_own_request_t own =
        perfhost_plugin_host_sync_constructor_request(&method, &path, &name, &bytes);
    perfhost_plugin_host_sync_borrow_request_t b = perfhost_plugin_host_sync_borrow_request(own);
    if (req.json) {
        plugin_sync_string_t header = str("Content-Type"), value = str("application/json");
        perfhost_plugin_host_sync_method_request_header(b, &header, &value);
    }
    for (const char *const *h = req.headers; h && h[0] && h[1]; h += 2) {
        plugin_sync_string_t header = str(h[0]), value = str(h[1]);
        perfhost_plugin_host_sync_method_request_header(b, &header, &value);
    }
    if (req.timeout_ms) perfhost_plugin_host_sync_method_request_timeout_ms(b, req.timeout_ms);
    if (req.no_redirects) perfhost_plugin_host_sync_method_request_follow_redirects(b, false);
    if (req.catch_response) perfhost_plugin_host_sync_method_request_catch_response(b);
    if (req.discard_body) perfhost_plugin_host_sync_method_request_discard_body(b);
    return own;
}

static ph_response *new_response(ph_user *u) {
    ph_response *r = checked(calloc(1, sizeof *r));
    r->private_ = checked(calloc(1, sizeof *r->private_));
    r->private_->user = u;
    keep(u, r, release_response);
    return r;
}

/* Fills `r` from a response handle. */
static void answered(ph_response *r, perfhost_plugin_host_sync_own_response_t handle) {
    r->private_->handle = handle;
    r->private_->has_handle = true;
    perfhost_plugin_host_sync_borrow_response_t resp = perfhost_plugin_host_sync_borrow_response(handle);
    r->status = perfhost_plugin_host_sync_method_response_status(resp);
    r->elapsed_us = perfhost_plugin_host_sync_method_response_elapsed_us(resp);
}

/* Fills `r` from an error (the host has recorded the failure) and frees the error. */
static void failed(ph_user *u, ph_response *r, perfhost_plugin_host_sync_http_error_t *err) {
    const char *fixed = http_error_text(err);
    /* Every other variant carries a string, at the same place in the union. */
    r->error = fixed ? fixed : keep_string(u, err->val.other.ptr, err->val.other.len);
    perfhost_plugin_host_sync_http_error_free(err);
}

ph_response *ph_send(ph_user *u, ph_request req) {
    perfhost_plugin_host_sync_own_request_t own = own_request(req);
    ph_response *r = new_response(u);
    perfhost_plugin_host_sync_own_response_t handle;
    perfhost_plugin_host_sync_http_error_t err;
    if (perfhost_plugin_host_sync_method_user_context_send(ctx(u), own, &handle, &err)) {
        answered(r, handle);
    } else {
        failed(u, r, &err);
    }
    return r;
}

void ph_send_batch(ph_user *u, const ph_request *reqs, size_t n, ph_response **out) {
    if (n == 0) return;
    perfhost_plugin_host_sync_list_own_request_t list = {
        checked(malloc(n * sizeof(perfhost_plugin_host_sync_own_request_t))), n};
    for (size_t i = 0; i < n; i++) list.ptr[i] = own_request(reqs[i]);
    perfhost_plugin_host_sync_list_result_own_response_http_error_t results;
    perfhost_plugin_host_sync_method_user_context_send_batch(ctx(u), &list, &results);
    free(list.ptr);
    for (size_t i = 0; i < n; i++) {
        out[i] = new_response(u);
        if (i >= results.len) {
            out[i]->error = "no answer from the host";
        } else if (results.ptr[i].is_err) {
            failed(u, out[i], &results.ptr[i].val.err);
        } else {
            answered(out[i], results.ptr[i].val.ok);
        }
    }
    free(results.ptr);
}

static perfhost_plugin_host_sync_borrow_response_t borrowed(ph_response *r) {
    return perfhost_plugin_host_sync_borrow_response(r->private_->handle);
}

const char *ph_text(ph_response *r) {
    struct ph_response_private *p = r->private_;
    if (!p->text) {
        plugin_sync_list_u8_t body = {0};
        if (p->has_handle) perfhost_plugin_host_sync_method_response_body(borrowed(r), &body);
        p->text = checked(malloc(body.len + 1));
        if (body.len) memcpy(p->text, body.ptr, body.len);
        p->text[body.len] = '\0';
        p->len = body.len;
        plugin_sync_list_u8_free(&body);
    }
    return p->text;
}

size_t ph_body_len(ph_response *r) {
    ph_text(r);
    return r->private_->len;
}

const char *ph_header(ph_response *r, const char *name) {
    if (!r->private_->has_handle) return NULL;
    plugin_sync_string_t key = str(name), value;
    if (!perfhost_plugin_host_sync_method_response_header(borrowed(r), &key, &value)) return NULL;
    const char *out = keep_string(r->private_->user, value.ptr, value.len);
    plugin_sync_string_free(&value);
    return out;
}

void ph_success(ph_response *r) {
    if (r->private_->has_handle) perfhost_plugin_host_sync_method_response_success(borrowed(r));
}

void ph_failure(ph_response *r, const char *reason) {
    if (!r->private_->has_handle) return;
    plugin_sync_string_t why = str(reason);
    perfhost_plugin_host_sync_method_response_failure(borrowed(r), &why);
}

void ph_check(ph_response *r, bool ok, const char *reason_if_not) {
    if (ok) {
        ph_success(r);
    } else {
        ph_failure(r, reason_if_not);
    }
}

uint64_t ph_random_u64(ph_user *u) {
    return perfhost_plugin_host_sync_method_user_context_random_u64(ctx(u));
}

double ph_random(ph_user *u) {
    return perfhost_plugin_host_sync_method_user_context_random_f64(ctx(u));
}

void ph_sleep(ph_user *u, uint32_t ms) {
    perfhost_plugin_host_sync_method_user_context_sleep(ctx(u), ms);
}

uint64_t ph_random_range(ph_user *u, uint64_t low, uint64_t high) {
    if (high <= low) return low;
    /* Lemire's multiply-shift: uniform enough, no division (the Rust SDK's random_range). */
    return low + (uint64_t)(((unsigned __int128)ph_random_u64(u) * (high - low)) >> 64);
}

const char *ph_config(ph_user *u, const char *key) {
    plugin_sync_string_t k = str(key), value;
    if (!perfhost_plugin_host_sync_method_user_context_config(ctx(u), &k, &value)) return NULL;
    const char *out = keep_string(u, value.ptr, value.len);
    plugin_sync_string_free(&value);
    return out;
}

const char *ph_data_next(ph_user *u, const char *name) {
    plugin_sync_string_t n = str(name), row;
    perfhost_plugin_host_sync_data_error_t err;
    if (perfhost_plugin_host_sync_method_user_context_data_next(ctx(u), &n, &row, &err)) {
        const char *out = keep_string(u, row.ptr, row.len);
        plugin_sync_string_free(&row);
        return out;
    }
    ph_error(u, ph_format(u, err.tag == PERFHOST_PLUGIN_TYPES_DATA_ERROR_UNKNOWN
                                 ? "data set `%s` is unknown"
                                 : "data set `%s` is exhausted",
                             name));
    perfhost_plugin_host_sync_data_error_free(&err);
    return NULL;
}

/* A growable string for ph_format. */
struct text {
    char *ptr;
    size_t len, cap;
};

static void append(struct text *t, const char *s, size_t n) {
    if (t->len + n + 1 > t->cap) {
        t->cap = (t->len + n + 1) * 2;
        t->ptr = checked(realloc(t->ptr, t->cap));
    }
    memcpy(t->ptr + t->len, s, n);
    t->len += n;
    t->ptr[t->len] = '\0';
}

static void append_unsigned(struct text *t, unsigned long long v, bool negative) {
    char digits[24];
    size_t i = sizeof digits;
    do {
        digits[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    if (negative) digits[--i] = '-';
    append(t, digits + i, sizeof digits - i);
}

/* printf's conversions without stdio: wasi-libc's stdio (snprintf included) links WASI file
 * calls, which a plugin has no use for. */
const char *ph_format(ph_user *u, const char *fmt, ...) {
    struct text t = {0};
    append(&t, "", 0);
    va_list args;
    va_start(args, fmt);
    for (const char *p = fmt; *p; p++) {
        if (*p != '%') {
            append(&t, p, 1);
            continue;
        }
        int longs = 0;
        bool size = false;
        for (p++; *p == 'l' || *p == 'z'; p++) {
            if (*p == 'l') longs++;
            else size = true;
        }
        switch (*p) {
        case 'd':
        case 'i': {
            long long v = size       ? (long long)va_arg(args, size_t)
                          : longs == 0 ? va_arg(args, int)
                          : longs == 1 ? va_arg(args, long)
                                       : va_arg(args, long long);
            append_unsigned(&t, v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v,
                            v < 0);
            break;
        }
        case 'u': {
            unsigned long long v = size       ? va_arg(args, size_t)
                                   : longs == 0 ? va_arg(args, unsigned)
                                   : longs == 1 ? va_arg(args, unsigned long)
                                                : va_arg(args, unsigned long long);
            append_unsigned(&t, v, false);
            break;
        }
        case 's': {
            const char *s = va_arg(args, const char *);
            if (!s) s = "(null)";
            append(&t, s, strlen(s));
            break;
        }
        case 'c': {
            char c = (char)va_arg(args, int);
            append(&t, &c, 1);
            break;
        }
        case '%':
            append(&t, "%", 1);
            break;
        default: /* an unsupported conversion: written as is, so the mistake shows */
            append(&t, "%", 1);
            if (!*p) goto done;
            append(&t, p, 1);
        }
    }
done:
    va_end(args);
    keep(u, t.ptr, free);
    return t.ptr;
}

uint64_t ph_user_id(ph_user *u) {
    return perfhost_plugin_host_sync_method_user_context_user_id(ctx(u));
}

void ph_log(ph_user *u, const char *message) {
    plugin_sync_string_t m = str(message);
    perfhost_plugin_host_sync_method_user_context_log(ctx(u), PERFHOST_PLUGIN_TYPES_LOG_LEVEL_INFO,
                                                      &m);
}

void ph_error(ph_user *u, const char *message) {
    free(u->inner.error);
    size_t n = strlen(message);
    u->inner.error = memcpy(checked(malloc(n + 1)), message, n + 1);
    u->inner.outcome = PERFHOST_PLUGIN_TYPES_TASK_OUTCOME_ERROR;
}

void ph_stop_user(ph_user *u) {
    u->inner.outcome = PERFHOST_PLUGIN_TYPES_TASK_OUTCOME_STOP_USER;
}

void ph_reschedule(ph_user *u) {
    u->inner.outcome = PERFHOST_PLUGIN_TYPES_TASK_OUTCOME_RESCHEDULE;
}

/* Runs one user function and turns what it said into the contract's outcome. */
static void run(ph_user *u, ph_task_fn fn, outcome_t *ret) {
    u->inner.outcome = PERFHOST_PLUGIN_TYPES_TASK_OUTCOME_OK;
    if (fn) fn(u);
    release_all(u);
    ret->tag = u->inner.outcome;
    if (ret->tag == PERFHOST_PLUGIN_TYPES_TASK_OUTCOME_ERROR) {
        /* The generated post-return code frees it. */
        ret->val.error.ptr = (uint8_t *)u->inner.error;
        ret->val.error.len = strlen(u->inner.error);
        u->inner.error = NULL;
    }
}

static void set_wait(perfhost_plugin_types_wait_time_t *out, ph_wait wait) {
    switch (wait.kind) {
    case PH_WAIT_BETWEEN:
        out->tag = PERFHOST_PLUGIN_TYPES_WAIT_TIME_BETWEEN;
        out->val.between.min_ms = wait.min_ms;
        out->val.between.max_ms = wait.max_ms;
        break;
    case PH_WAIT_CONSTANT:
        out->tag = PERFHOST_PLUGIN_TYPES_WAIT_TIME_CONSTANT;
        out->val.constant = wait.min_ms;
        break;
    case PH_WAIT_PACING:
        out->tag = PERFHOST_PLUGIN_TYPES_WAIT_TIME_CONSTANT_PACING;
        out->val.constant_pacing = wait.min_ms;
        break;
    case PH_WAIT_THROUGHPUT:
        out->tag = PERFHOST_PLUGIN_TYPES_WAIT_TIME_CONSTANT_THROUGHPUT;
        out->val.constant_throughput = wait.per_second;
        break;
    }
}

void exports_perfhost_plugin_behaviour_sync_describe(
    exports_perfhost_plugin_behaviour_sync_list_user_class_t *ret) {
    /* The host frees what is returned, so everything is allocated. */
    perfhost_plugin_types_user_class_t *classes =
        checked(calloc(ph_class_count, sizeof *classes));
    for (size_t c = 0; c < ph_class_count; c++) {
        const ph_class *from = &ph_classes[c];
        perfhost_plugin_types_user_class_t *to = &classes[c];
        plugin_sync_string_dup(&to->name, from->name);
        to->weight = from->weight ? from->weight : 1;
        set_wait(&to->wait, from->wait);
        to->tasks.ptr = checked(calloc(from->task_count ? from->task_count : 1,
                                       sizeof *to->tasks.ptr));
        to->tasks.len = from->task_count;
        for (size_t t = 0; t < from->task_count; t++) {
            plugin_sync_string_dup(&to->tasks.ptr[t].name, from->tasks[t].name);
            to->tasks.ptr[t].weight = from->tasks[t].weight;
        }
        to->sequential = from->sequential;
    }
    ret->ptr = classes;
    ret->len = ph_class_count;
}

exports_perfhost_plugin_behaviour_sync_own_user_t exports_perfhost_plugin_behaviour_sync_constructor_user(
    uint32_t class_, uint64_t id, exports_perfhost_plugin_behaviour_sync_own_user_context_t owned) {
    (void)id;
    /* The host only passes indices from describe(); anything else is a host bug. */
    if (class_ >= ph_class_count) abort();
    ph_user *u = checked(calloc(1, sizeof *u));
    u->inner.owned = owned;
    u->inner.class_ = &ph_classes[class_];
    return exports_perfhost_plugin_behaviour_sync_user_new(&u->inner);
}

static ph_user *user_of(exports_perfhost_plugin_behaviour_sync_borrow_user_t self) {
    return (ph_user *)self; /* `inner` is ph_user's only member */
}

void exports_perfhost_plugin_behaviour_sync_user_destructor(
    exports_perfhost_plugin_behaviour_sync_user_t *self) {
    ph_user *u = user_of(self);
    release_all(u);
    free(u->inner.error);
    perfhost_plugin_host_sync_user_context_drop_own(u->inner.owned);
    free(u);
}

void exports_perfhost_plugin_behaviour_sync_method_user_on_start(
    exports_perfhost_plugin_behaviour_sync_borrow_user_t self, outcome_t *ret) {
    ph_user *u = user_of(self);
    run(u, u->inner.class_->on_start, ret);
}

void exports_perfhost_plugin_behaviour_sync_method_user_run_task(
    exports_perfhost_plugin_behaviour_sync_borrow_user_t self, uint32_t task, outcome_t *ret) {
    ph_user *u = user_of(self);
    if (task >= u->inner.class_->task_count) {
        ret->tag = PERFHOST_PLUGIN_TYPES_TASK_OUTCOME_ERROR;
        plugin_sync_string_dup(&ret->val.error, "the host asked for a task this class lacks");
        return;
    }
    run(u, u->inner.class_->tasks[task].run, ret);
}

bool exports_perfhost_plugin_behaviour_sync_method_user_next_task(
    exports_perfhost_plugin_behaviour_sync_borrow_user_t self, uint32_t *ret) {
    ph_user *u = user_of(self);
    const ph_class *class_ = u->inner.class_;
    if (!class_->sequential || class_->task_count == 0) return false;
    *ret = (uint32_t)(u->inner.next_in_order++ % class_->task_count);
    return true;
}

uint32_t exports_perfhost_plugin_behaviour_sync_method_user_next_wait_ms(
    exports_perfhost_plugin_behaviour_sync_borrow_user_t self) {
    (void)self;
    return 0; /* no custom waits in this SDK */
}

void exports_perfhost_plugin_behaviour_sync_method_user_on_stop(
    exports_perfhost_plugin_behaviour_sync_borrow_user_t self) {
    ph_user *u = user_of(self);
    outcome_t ignored;
    run(u, u->inner.class_->on_stop, &ignored);
    perfhost_plugin_types_task_outcome_free(&ignored);
}
