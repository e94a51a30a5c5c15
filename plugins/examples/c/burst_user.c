/* `BurstUser` in C: the same requests as the Rust plugin `plugins/burst_user`.
 *
 * Short `/verify` calls in quick succession; with rate limiting on, 429 is the expected answer
 * and counts as a success, a 200 is a success without reading its body. Built against the sync
 * world `plugin-sync` with `wit-bindgen c` (its bindings are generated into the build folder,
 * not committed), clang's wasm32-wasi target and `wasm-tools component new`: see
 * `plugins/examples/build.sh`. `send` blocks only this user: the host gives each user its own
 * instance. Only malloc/free and memcpy come from libc, so the component imports no WASI.
 *
 * The sample answers and sources are copied from `plugins/auditor_data` and the body is built by
 * the same algorithm from the same random numbers, so for a given `--seed` every user sends the
 * same bodies as the Rust `BurstUser`.
 */
#include <stdlib.h>
#include <string.h>

#include "plugin_sync.h"

typedef perfhost_plugin_types_task_outcome_t outcome_t;

/* The sample answers, as in auditor_data::ANSWERS: text, and the indices into SOURCES that
 * back it (-1 ends the list). */
struct answer {
    const char *text;
    int backing[4];
};

static const struct answer ANSWERS[] = {
    {"Nach § 823 Abs. 1 BGB ist zum Schadensersatz verpflichtet, wer vorsätzlich oder fahrlässig das Leben, den Körper, die Gesundheit, die Freiheit, das Eigentum oder ein sonstiges Recht eines anderen widerrechtlich verletzt. Der Geschädigte kann den Ersatz des daraus entstehenden Schadens verlangen.",
     {0, -1}},
    {"Wer gegen ein Schutzgesetz verstößt, haftet gemäß § 823 Abs. 2 BGB ebenfalls auf Schadensersatz. Ist ein Verstoß auch ohne Verschulden möglich, tritt die Ersatzpflicht nur bei Verschulden ein.",
     {1, 0, -1}},
    {"Die regelmäßige Verjährungsfrist beträgt gemäß § 195 BGB drei Jahre. Sie beginnt nach § 199 Abs. 1 BGB mit dem Schluss des Jahres, in dem der Anspruch entstanden ist und der Gläubiger davon Kenntnis erlangt hat.",
     {2, 3, -1}},
    {"Durch den Kaufvertrag wird der Verkäufer nach § 433 Abs. 1 BGB verpflichtet, dem Käufer die Sache zu übergeben und ihm das Eigentum daran zu verschaffen. Der Käufer muss gemäß § 433 Abs. 2 BGB den vereinbarten Kaufpreis zahlen und die Sache abnehmen.",
     {4, 5, -1}},
    {"Bei Fernabsatzverträgen steht dem Verbraucher nach § 312g Abs. 1 BGB ein Widerrufsrecht zu. Die Widerrufsfrist beträgt gemäß § 355 Abs. 2 BGB 14 Tage. Die Vorschriften gelten nach § 312 Abs. 1 BGB für Verbraucherverträge, bei denen der Verbraucher einen Preis zahlt.",
     {7, 8, 6, -1}},
    {"Die Würde des Menschen ist unantastbar (Art. 1 Abs. 1 GG). Sie zu achten und zu schützen ist Verpflichtung aller staatlichen Gewalt.",
     {9, -1}},
    {"Die Verjährungsfrist für Schadensersatzansprüche aus § 823 Abs. 1 BGB beträgt nach § 195 BGB drei Jahre.",
     {0, 2, -1}},
};

/* The sources, as in auditor_data::SOURCES: id, score as written in the JSON, text. */
struct source {
    const char *id;
    const char *score;
    const char *text;
};

static const struct source SOURCES[] = {
    {"bgb_823", "0.92",
     "§ 823 Abs. 1 BGB: Wer vorsätzlich oder fahrlässig das Leben, den Körper, die Gesundheit, die Freiheit, das Eigentum oder ein sonstiges Recht eines anderen widerrechtlich verletzt, ist dem anderen zum Ersatz des daraus entstehenden Schadens verpflichtet."},
    {"bgb_823_2", "0.81",
     "§ 823 Abs. 2 BGB: Die gleiche Verpflichtung trifft denjenigen, welcher gegen ein den Schutz eines anderen bezweckendes Gesetz verstößt. Ist nach dem Inhalt des Gesetzes ein Verstoß gegen dieses auch ohne Verschulden möglich, so tritt die Ersatzpflicht nur im Falle des Verschuldens ein."},
    {"bgb_195", "0.9",
     "§ 195 BGB: Die regelmäßige Verjährungsfrist beträgt drei Jahre."},
    {"bgb_199", "0.78",
     "§ 199 Abs. 1 BGB: Die regelmäßige Verjährungsfrist beginnt mit dem Schluss des Jahres, in dem der Anspruch entstanden ist und der Gläubiger von den den Anspruch begründenden Umständen und der Person des Schuldners Kenntnis erlangt oder ohne grobe Fahrlässigkeit erlangen müsste."},
    {"bgb_433", "0.88",
     "§ 433 Abs. 1 BGB: Durch den Kaufvertrag wird der Verkäufer einer Sache verpflichtet, dem Käufer die Sache zu übergeben und das Eigentum an der Sache zu verschaffen. Der Verkäufer hat dem Käufer die Sache frei von Sach- und Rechtsmängeln zu verschaffen."},
    {"bgb_433_2", "0.85",
     "§ 433 Abs. 2 BGB: Der Käufer ist verpflichtet, dem Verkäufer den vereinbarten Kaufpreis zu zahlen und die gekaufte Sache abzunehmen."},
    {"bgb_312", "0.74",
     "§ 312 Abs. 1 BGB: Die Vorschriften der Kapitel 1 und 2 dieses Untertitels sind auf Verbraucherverträge anzuwenden, bei denen sich der Verbraucher zu der Zahlung eines Preises verpflichtet."},
    {"bgb_312g", "0.8",
     "§ 312g Abs. 1 BGB: Dem Verbraucher steht bei außerhalb von Geschäftsräumen geschlossenen Verträgen und bei Fernabsatzverträgen ein Widerrufsrecht gemäß § 355 zu."},
    {"bgb_355", "0.76",
     "§ 355 Abs. 2 BGB: Die Widerrufsfrist beträgt 14 Tage. Sie beginnt mit Vertragsschluss, soweit nichts anderes bestimmt ist."},
    {"gg_1", "0.95",
     "Art. 1 Abs. 1 GG: Die Würde des Menschen ist unantastbar. Sie zu achten und zu schützen ist Verpflichtung aller staatlichen Gewalt."},
};

#define N_ANSWERS (sizeof ANSWERS / sizeof ANSWERS[0])
#define N_SOURCES (sizeof SOURCES / sizeof SOURCES[0])

static const char STANDARD[] = "\"threshold\":0.75,\"strict_mode\":false";
static const char CLASS_NAME[] = "BurstUser";

/* One virtual user: the only one in its instance, but kept in a struct all the same. */
struct exports_perfhost_plugin_behaviour_sync_user_t {
    perfhost_plugin_host_sync_own_user_context_t ctx;
};

typedef perfhost_plugin_host_sync_borrow_user_context_t ctx_t;

/* A uniform index in [low, high) from 64 random bits (the Rust SDK's `random_range`). */
static size_t pick(ctx_t ctx, size_t low, size_t high) {
    uint64_t bits = perfhost_plugin_host_sync_method_user_context_random_u64(ctx);
    return low + (size_t)(((unsigned __int128)bits * (high - low)) >> 64);
}

/* A growable byte buffer for the request body. */
struct buf {
    uint8_t *ptr;
    size_t len;
    size_t cap;
};

static void put(struct buf *b, const char *s) {
    size_t n = strlen(s);
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2;
        b->ptr = realloc(b->ptr, b->cap);
        if (!b->ptr) abort();
    }
    memcpy(b->ptr + b->len, s, n);
    b->len += n;
}

/* `{"answer":…,"sources":[…],…}`: a random answer, `sources` sources (its backing sources first,
 * then distinct random others) and `options` — auditor_data::verify_body. */
static void verify_body(ctx_t ctx, size_t sources, const char *options, struct buf *body) {
    const struct answer *answer = &ANSWERS[pick(ctx, 0, N_ANSWERS)];
    size_t count = sources < 1 ? 1 : sources > N_SOURCES ? N_SOURCES : sources;
    size_t order[N_SOURCES];
    for (size_t i = 0; i < N_SOURCES; i++) order[i] = i;
    size_t filled = 0;
    for (const int *b = answer->backing; *b >= 0; b++) {
        for (size_t pos = filled; pos < N_SOURCES; pos++) {
            if (order[pos] == (size_t)*b) {
                size_t t = order[filled];
                order[filled] = order[pos];
                order[pos] = t;
                filled++;
                break;
            }
        }
    }
    for (size_t i = filled; i < count; i++) {
        size_t j = pick(ctx, i, N_SOURCES);
        size_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    put(body, "{\"answer\":\"");
    put(body, answer->text);
    put(body, "\",\"sources\":[");
    for (size_t n = 0; n < count; n++) {
        const struct source *s = &SOURCES[order[n]];
        if (n > 0) put(body, ",");
        put(body, "{\"text\":\"");
        put(body, s->text);
        put(body, "\",\"source_id\":\"");
        put(body, s->id);
        put(body, "\",\"score\":");
        put(body, s->score);
        put(body, "}");
    }
    put(body, "],");
    put(body, options);
    put(body, "}");
}

static void set_error(outcome_t *ret, const char *message) {
    ret->tag = PERFHOST_PLUGIN_TYPES_TASK_OUTCOME_ERROR;
    plugin_sync_string_dup(&ret->val.error, message);
}

void exports_perfhost_plugin_behaviour_sync_describe(
    exports_perfhost_plugin_behaviour_sync_list_user_class_t *ret) {
    /* The host frees what is returned, so everything is allocated. */
    perfhost_plugin_types_user_class_t *class = calloc(1, sizeof *class);
    perfhost_plugin_types_task_info_t *task = calloc(1, sizeof *task);
    if (!class || !task) abort();
    plugin_sync_string_dup(&task->name, "verify");
    task->weight = 1;
    plugin_sync_string_dup(&class->name, CLASS_NAME);
    class->weight = 2;
    class->wait.tag = PERFHOST_PLUGIN_TYPES_WAIT_TIME_BETWEEN;
    class->wait.val.between.min_ms = 100;
    class->wait.val.between.max_ms = 500;
    class->tasks.ptr = task;
    class->tasks.len = 1;
    class->sequential = false;
    ret->ptr = class;
    ret->len = 1;
}

exports_perfhost_plugin_behaviour_sync_own_user_t exports_perfhost_plugin_behaviour_sync_constructor_user(
    uint32_t class_, uint64_t id, exports_perfhost_plugin_behaviour_sync_own_user_context_t ctx) {
    (void)id;
    /* The host only passes indices from describe(); anything else is a host bug. */
    if (class_ != 0) abort();
    exports_perfhost_plugin_behaviour_sync_user_t *user = malloc(sizeof *user);
    if (!user) abort();
    user->ctx = ctx;
    return exports_perfhost_plugin_behaviour_sync_user_new(user);
}

void exports_perfhost_plugin_behaviour_sync_user_destructor(
    exports_perfhost_plugin_behaviour_sync_user_t *user) {
    perfhost_plugin_host_sync_user_context_drop_own(user->ctx);
    free(user);
}

void exports_perfhost_plugin_behaviour_sync_method_user_on_start(
    exports_perfhost_plugin_behaviour_sync_borrow_user_t self, outcome_t *ret) {
    (void)self;
    ret->tag = PERFHOST_PLUGIN_TYPES_TASK_OUTCOME_OK;
}

static void verify(exports_perfhost_plugin_behaviour_sync_user_t *user, outcome_t *ret) {
    ctx_t ctx = perfhost_plugin_host_sync_borrow_user_context(user->ctx);
    struct buf body = {0};
    verify_body(ctx, 2, STANDARD, &body);

    plugin_sync_string_t method, path, name;
    plugin_sync_string_set(&method, "POST");
    plugin_sync_string_set(&path, "/verify");
    plugin_sync_string_set(&name, "/verify (burst)");
    plugin_sync_list_u8_t bytes = {body.ptr, body.len};
    perfhost_plugin_host_sync_own_request_t req =
        perfhost_plugin_host_sync_constructor_request(&method, &path, &name, &bytes);
    free(body.ptr);
    perfhost_plugin_host_sync_borrow_request_t r = perfhost_plugin_host_sync_borrow_request(req);
    plugin_sync_string_t header, value;
    plugin_sync_string_set(&header, "Content-Type");
    plugin_sync_string_set(&value, "application/json");
    perfhost_plugin_host_sync_method_request_header(r, &header, &value);
    perfhost_plugin_host_sync_method_request_catch_response(r);

    perfhost_plugin_host_sync_own_response_t resp;
    perfhost_plugin_host_sync_http_error_t err;
    ret->tag = PERFHOST_PLUGIN_TYPES_TASK_OUTCOME_OK;
    if (!perfhost_plugin_host_sync_method_user_context_send(ctx, req, &resp, &err)) {
        /* The host already recorded the failed request; the task just ends (as in Locust). */
        perfhost_plugin_host_sync_http_error_free(&err);
        return;
    }
    perfhost_plugin_host_sync_borrow_response_t b = perfhost_plugin_host_sync_borrow_response(resp);
    uint16_t status = perfhost_plugin_host_sync_method_response_status(b);
    if (status == 200 || status == 429) {
        perfhost_plugin_host_sync_method_response_success(b);
    } else {
        char reason[] = "HTTP 000";
        reason[5] = (char)('0' + status / 100 % 10);
        reason[6] = (char)('0' + status / 10 % 10);
        reason[7] = (char)('0' + status % 10);
        plugin_sync_string_t why;
        plugin_sync_string_set(&why, reason);
        perfhost_plugin_host_sync_method_response_failure(b, &why);
    }
    perfhost_plugin_host_sync_response_drop_own(resp);
}

void exports_perfhost_plugin_behaviour_sync_method_user_run_task(
    exports_perfhost_plugin_behaviour_sync_borrow_user_t self, uint32_t task, outcome_t *ret) {
    if (task != 0) {
        set_error(ret, "class BurstUser has no such task (it has 1)");
        return;
    }
    verify(self, ret);
}

bool exports_perfhost_plugin_behaviour_sync_method_user_next_task(
    exports_perfhost_plugin_behaviour_sync_borrow_user_t self, uint32_t *ret) {
    (void)self;
    (void)ret;
    return false;
}

uint32_t exports_perfhost_plugin_behaviour_sync_method_user_next_wait_ms(
    exports_perfhost_plugin_behaviour_sync_borrow_user_t self) {
    (void)self;
    return 0;
}

void exports_perfhost_plugin_behaviour_sync_method_user_on_stop(
    exports_perfhost_plugin_behaviour_sync_borrow_user_t self) {
    (void)self;
}
