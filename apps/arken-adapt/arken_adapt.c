/*
 * arken-adapt: runs one HTTP message (request or response, from a file or stdin) through a
 * chain of adapter services and prints the adapted message, so adapter authors can try
 * their modules without a proxy.
 *
 *   arken-adapt -m passthru.so -m modifying.so \
 *       -s ecap://arkenstone/adapters/modifying -o victim=cat -o replacement=dog \
 *       [-s URI ...] [message-file | -]
 *
 * -m loads a module; -s appends a service to the chain; each -o name=value configures the
 * service named by the last -s. The message's body is the Content-Length bytes after the head
 * (or everything after the head when there is no Content-Length; a chunked body is passed
 * as it is, framing included). The output is the adapted head and body; when the adapted
 * message has a body but no Content-Length nor Transfer-Encoding, one Content-Length with
 * the real length is added (the host frames the body). Exit status: 0 (forwarded, adapted
 * or not), 2 (blocked), 3 (adaptation aborted), 1 (usage or setup error).
 */
#include <ecap/host.h>
#include <eventer/eventer.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_STAGES  16
#define MAX_OPTIONS 64

struct stage_option {
    int stage;
    struct ecap_option option;
};

struct job {
    ecap_service_t *services[MAX_STAGES];
    int count;
    char *input;
    size_t input_size;
    ecap_message_t *virgin;
    const char *body;
    size_t body_size, written;
    int ended;
    char *output;
    size_t output_size, output_capacity;
    enum ecap_outcome outcome;
    char *head;
    char reason[200];
    int failed;
};

static void usage(void)
{
    fprintf(stderr, "usage: arken-adapt [-m module.so]... -s service-uri [-o name=value]... "
                    "[-s service-uri [-o ...]]... [message-file | -]\n");
}

static char *read_all(FILE *file, size_t *size)
{
    size_t capacity = 65536, length = 0;
    char *data = malloc(capacity);
    while (data) {
        if (length == capacity) {
            char *grown = realloc(data, capacity * 2);
            if (!grown) {
                free(data);
                return NULL;
            }
            data = grown;
            capacity *= 2;
        }
        size_t n = fread(data + length, 1, capacity - length, file);
        length += n;
        if (n == 0)
            break;
    }
    if (data && ferror(file)) {
        free(data);
        return NULL;
    }
    *size = length;
    return data;
}

static void write_body(struct job *job, ecap_chain_t *chain)
{
    while (!job->ended && job->written < job->body_size) {
        ssize_t n =
            ecap_chain_vb_write(chain, job->body + job->written, job->body_size - job->written);
        if (n <= 0) {
            if (n < 0)
                job->ended = 1;
            return;
        }
        job->written += (size_t)n;
    }
    if (!job->ended) {
        job->ended = 1;
        ecap_chain_vb_end(chain, 1);
    }
}

static void read_body(struct job *job, ecap_chain_t *chain)
{
    ecap_area_t area;
    while (ecap_chain_body_peek(chain, &area) == ECAP_OK && area.size) {
        if (job->output_size + area.size > job->output_capacity) {
            size_t capacity = job->output_capacity ? job->output_capacity * 2 : 65536;
            while (capacity < job->output_size + area.size)
                capacity *= 2;
            char *grown = realloc(job->output, capacity);
            if (!grown) {
                job->failed = 1;
                ecap_chain_cancel(chain);
                return;
            }
            job->output = grown;
            job->output_capacity = capacity;
        }
        memcpy(job->output + job->output_size, area.data, area.size);
        job->output_size += area.size;
        ecap_chain_body_shift(chain, area.size);
    }
}

static void on_decision(ecap_chain_t *chain, void *closure, enum ecap_outcome outcome)
{
    struct job *job = closure;
    job->outcome = outcome;
    snprintf(job->reason, sizeof(job->reason), "%s", ecap_chain_reason(chain));
    ecap_message_t *message = ecap_chain_message(chain);
    if (message) {
        ecap_area_t value;
        if (ecap_message_has_body(message) &&
            ecap_header_find(message, "Content-Length", &value) != ECAP_OK &&
            ecap_header_find(message, "Transfer-Encoding", &value) != ECAP_OK)
            ecap_header_add(message, "X-Arken-Adapt-Length", "pending");
        size_t length;
        if (ecap_message_serialize(message, &job->head, &length) != ECAP_OK)
            job->failed = 1;
    }
    read_body(job, chain);
}

static void on_body(ecap_chain_t *chain, void *closure)
{
    read_body(closure, chain);
}

static void on_vb_room(ecap_chain_t *chain, void *closure)
{
    write_body(closure, chain);
}

static void on_done(ecap_chain_t *chain, void *closure)
{
    struct job *job = closure;
    if (job->outcome == ECAP_OUTCOME_PENDING)
        job->outcome = ecap_chain_outcome(chain);
    ecap_chain_free(chain);
    eventer_shutdown();
}

static const struct ecap_chain_callbacks callbacks = {
    .on_decision = on_decision,
    .on_body = on_body,
    .on_vb_room = on_vb_room,
    .on_done = on_done,
};

static int begin(eventer_t e, int mask, void *closure, struct timeval *now)
{
    struct job *job = closure;
    ecap_chain_t *chain =
        ecap_chain_create(job->services, (size_t)job->count, job->virgin, NULL, &callbacks, job);
    if (!chain || ecap_chain_start(chain) != ECAP_OK) {
        fprintf(stderr, "arken-adapt: %s\n", ecap_host_last_error());
        if (chain)
            ecap_chain_free(chain);
        else
            ecap_message_free(job->virgin);
        job->failed = 1;
        eventer_shutdown();
        return 0;
    }
    if (ecap_message_has_body(job->virgin))
        write_body(job, chain);
    return 0;
}

/* Replaces the placeholder field with the real body length. */
static void print_result(struct job *job)
{
    const char *placeholder = "X-Arken-Adapt-Length: pending\r\n";
    char *at = strstr(job->head, placeholder);
    if (at) {
        fwrite(job->head, 1, (size_t)(at - job->head), stdout);
        printf("Content-Length: %zu\r\n", job->output_size);
        fputs(at + strlen(placeholder), stdout);
    } else {
        fputs(job->head, stdout);
    }
    fwrite(job->output, 1, job->output_size, stdout);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    const char *modules[MAX_STAGES * 2];
    int module_count = 0;
    const char *uris[MAX_STAGES];
    struct stage_option options[MAX_OPTIONS];
    int option_count = 0;
    struct job job = {0};
    int option;
    while ((option = getopt(argc, argv, "m:s:o:h")) != -1) {
        switch (option) {
        case 'm':
            if (module_count == MAX_STAGES * 2) {
                fprintf(stderr, "arken-adapt: too many modules\n");
                return 1;
            }
            modules[module_count++] = optarg;
            break;
        case 's':
            if (job.count == MAX_STAGES) {
                fprintf(stderr, "arken-adapt: at most %d services\n", MAX_STAGES);
                return 1;
            }
            uris[job.count++] = optarg;
            break;
        case 'o': {
            char *equals = strchr(optarg, '=');
            if (!equals || job.count == 0 || option_count == MAX_OPTIONS) {
                fprintf(stderr, "arken-adapt: -o needs name=value after a -s\n");
                return 1;
            }
            *equals = '\0';
            options[option_count].stage = job.count - 1;
            options[option_count].option.name = optarg;
            options[option_count].option.value = equals + 1;
            option_count++;
            break;
        }
        default:
            usage();
            return option == 'h' ? 0 : 1;
        }
    }
    if (job.count == 0 || argc - optind > 1) {
        usage();
        return 1;
    }
    FILE *input = stdin;
    if (optind < argc && strcmp(argv[optind], "-") != 0) {
        input = fopen(argv[optind], "rb");
        if (!input) {
            fprintf(stderr, "arken-adapt: %s: %s\n", argv[optind], strerror(errno));
            return 1;
        }
    }
    job.input = read_all(input, &job.input_size);
    if (input != stdin)
        fclose(input);
    if (!job.input) {
        fprintf(stderr, "arken-adapt: cannot read the message\n");
        return 1;
    }
    size_t head_length = 0;
    job.virgin = ecap_message_parse(job.input, job.input_size, &head_length);
    if (!job.virgin) {
        fprintf(stderr, "arken-adapt: bad message: %s\n", ecap_host_last_error());
        free(job.input);
        return 1;
    }
    job.body = job.input + head_length;
    job.body_size = job.input_size - head_length;
    ecap_area_t length;
    if (ecap_header_find(job.virgin, "Content-Length", &length) == ECAP_OK) {
        char text[32] = "";
        memcpy(text, length.data, length.size < 31 ? length.size : 31);
        size_t declared = strtoull(text, NULL, 10);
        if (declared < job.body_size)
            job.body_size = declared;
    }
    int status = 1;
    if (eventer_init() != 0 || ecap_host_init() != ECAP_OK) {
        fprintf(stderr, "arken-adapt: cannot start the eventer\n");
        ecap_message_free(job.virgin);
        free(job.input);
        return 1;
    }
    int setup_failed = 0;
    for (int i = 0; i < module_count && !setup_failed; i++)
        if (ecap_module_load(modules[i]) != ECAP_OK)
            setup_failed = 1;
    for (int i = 0; i < job.count && !setup_failed; i++) {
        job.services[i] = ecap_service_find(uris[i]);
        if (!job.services[i]) {
            fprintf(stderr, "arken-adapt: no loaded module provides %s\n", uris[i]);
            setup_failed = 1;
            break;
        }
        struct ecap_option mine[MAX_OPTIONS];
        size_t mine_count = 0;
        for (int j = 0; j < option_count; j++)
            if (options[j].stage == i)
                mine[mine_count++] = options[j].option;
        if (ecap_service_configure(job.services[i], mine, mine_count) != ECAP_OK ||
            ecap_service_start(job.services[i]) != ECAP_OK)
            setup_failed = 1;
    }
    if (setup_failed) {
        fprintf(stderr, "arken-adapt: %s\n", ecap_host_last_error());
        ecap_message_free(job.virgin);
        eventer_shutdown();
        eventer_loop();
    } else {
        eventer_add_timer_next_opportunity(begin, &job, eventer_choose_owner(0));
        eventer_loop();
        if (job.failed)
            status = 1;
        else if (job.outcome == ECAP_OUTCOME_BLOCKED)
            status = 2;
        else if (job.outcome != ECAP_OUTCOME_VIRGIN && job.outcome != ECAP_OUTCOME_ADAPTED)
            status = 3;
        else
            status = 0;
        if (status == 0 && job.head)
            print_result(&job);
        else if (status == 2)
            fprintf(stderr, "arken-adapt: blocked%s%s\n", job.reason[0] ? ": " : "", job.reason);
        else if (status == 3)
            fprintf(stderr, "arken-adapt: adaptation aborted%s%s\n", job.reason[0] ? ": " : "",
                    job.reason);
    }
    ecap_host_cleanup();
    free(job.head);
    free(job.output);
    free(job.input);
    return status;
}
