/* Messages (first lines, header fields, body-less clone, parse/serialise) and areas. */
#include "adapt_test_util.h"

#include <string.h>

static int count_fields(void *closure, ecap_area_t name, ecap_area_t value)
{
    int *count = closure;
    (*count)++;
    return 0;
}

static int stop_at_second(void *closure, ecap_area_t name, ecap_area_t value)
{
    int *count = closure;
    return ++(*count) == 2 ? 77 : 0;
}

ARK_TEST(message_request_line_and_header_fields)
{
    const char *head = "GET /index.html HTTP/1.1\r\nHost: example.test\r\nAccept: */*\r\n"
                       "X-Twice: one\r\nx-twice: two\r\n\r\nBODY";
    size_t head_length = 0;
    ecap_message_t *m = ecap_message_parse(head, strlen(head), &head_length);
    ARK_ASSERT(m != NULL);
    ARK_ASSERT_EQ(head_length, strlen(head) - 4);
    ARK_ASSERT_EQ(ecap_message_kind(m), ECAP_MESSAGE_REQUEST);
    ARK_ASSERT(ecap_area_equals(ecap_message_method(m), "GET"));
    ARK_ASSERT(ecap_area_equals(ecap_message_uri(m), "/index.html"));
    int major = 0, minor = 0;
    ecap_message_http_version(m, &major, &minor);
    ARK_ASSERT_EQ(major, 1);
    ARK_ASSERT_EQ(minor, 1);
    ARK_ASSERT(!ecap_message_has_body(m)); /* no Content-Length, no Transfer-Encoding */
    ecap_area_t value;
    ARK_ASSERT_EQ(ecap_header_find(m, "host", &value), ECAP_OK);
    ARK_ASSERT(ecap_area_equals(value, "example.test"));
    ARK_ASSERT_EQ(m->methods->header_find(m, "X-TWICE", 1, &value), ECAP_OK);
    ARK_ASSERT(ecap_area_equals(value, "two"));
    ARK_ASSERT_EQ(m->methods->header_find(m, "X-TWICE", 2, &value), ECAP_E_NOT_FOUND);
    int count = 0;
    ARK_ASSERT_EQ(ecap_header_visit(m, count_fields, &count), 0);
    ARK_ASSERT_EQ(count, 4);
    count = 0;
    ARK_ASSERT_EQ(ecap_header_visit(m, stop_at_second, &count), 77);
    ARK_ASSERT_EQ(ecap_header_remove(m, "x-twice"), 2);
    ARK_ASSERT_EQ(ecap_header_find(m, "X-Twice", &value), ECAP_E_NOT_FOUND);
    ARK_ASSERT_EQ(ecap_header_add(m, "Via", "1.1 arkenstone"), ECAP_OK);
    ARK_ASSERT_EQ(ecap_message_set_method(m, "POST"), ECAP_OK);
    ARK_ASSERT_EQ(ecap_message_set_uri(m, "/other"), ECAP_OK);
    char *text = NULL;
    size_t length = 0;
    ARK_ASSERT_EQ(ecap_message_serialize(m, &text, &length), ECAP_OK);
    ARK_ASSERT_STR_EQ(text, "POST /other HTTP/1.1\r\nHost: example.test\r\nAccept: */*\r\n"
                            "Via: 1.1 arkenstone\r\n\r\n");
    ARK_ASSERT_EQ(length, strlen(text));
    free(text);
    ecap_message_free(m);
}

ARK_TEST(message_status_line_and_body_less_clone)
{
    const char *head = "HTTP/1.0 404 Not Found\nContent-Length: 12\n\n";
    size_t head_length = 0;
    ecap_message_t *m = ecap_message_parse(head, strlen(head), &head_length);
    ARK_ASSERT(m != NULL);
    ARK_ASSERT_EQ(ecap_message_kind(m), ECAP_MESSAGE_RESPONSE);
    ARK_ASSERT_EQ(ecap_message_status_code(m), 404);
    ARK_ASSERT(ecap_area_equals(ecap_message_reason(m), "Not Found"));
    ARK_ASSERT(ecap_message_has_body(m));
    ecap_message_t *clone = ecap_message_clone(m);
    ARK_ASSERT(clone != NULL);
    ARK_ASSERT(clone != m);
    ARK_ASSERT(ecap_message_has_body(clone)); /* presence copied, never bytes */
    ARK_ASSERT_EQ(ecap_message_set_status(clone, 200, "OK"), ECAP_OK);
    ARK_ASSERT_EQ(ecap_message_status_code(m), 404); /* independent copies */
    ecap_area_t value;
    ARK_ASSERT_EQ(ecap_header_find(clone, "Content-Length", &value), ECAP_OK);
    ARK_ASSERT(ecap_area_equals(value, "12"));
    /* Wrong-kind setters are refused. */
    ARK_ASSERT_EQ(ecap_message_set_method(clone, "GET"), ECAP_E_INVALID);
    ARK_ASSERT_EQ(ecap_message_set_status(clone, 42, "x"), ECAP_E_INVALID);
    char *text;
    size_t length;
    ARK_ASSERT_EQ(ecap_message_serialize(clone, &text, &length), ECAP_OK);
    ARK_ASSERT_STR_EQ(text, "HTTP/1.0 200 OK\r\nContent-Length: 12\r\n\r\n");
    free(text);
    ecap_message_free(clone);
    ecap_message_free(m);
}

ARK_TEST(message_rejects_bad_fields_and_heads)
{
    ecap_message_t *m = ecap_message_new_response();
    ARK_ASSERT(m != NULL);
    ARK_ASSERT_EQ(ecap_header_add(m, "Bad Name", "x"), ECAP_E_INVALID);
    ARK_ASSERT_EQ(ecap_header_add(m, "", "x"), ECAP_E_INVALID);
    ARK_ASSERT_EQ(ecap_header_add(m, "X-Split", "a\r\nInjected: yes"), ECAP_E_INVALID);
    ARK_ASSERT_EQ(ecap_message_set_status(m, 200, "O\nK"), ECAP_E_INVALID);
    ecap_area_t value;
    ARK_ASSERT_EQ(ecap_header_find(m, "Injected", &value), ECAP_E_NOT_FOUND);
    ecap_message_free(m);
    size_t head_length;
    const char *bad[] = {"GET /\r\n\r\n", "HTTP/1.1 20 OK\r\n\r\n",
                         "GET / HTTP/1.1\r\nNoColon\r\n\r\n", "GET / HTTP/1.1\r\nHost: x\r\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ARK_ASSERT_MSG(ecap_message_parse(bad[i], strlen(bad[i]), &head_length) == NULL,
                       "accepted bad head %zu", i);
        ARK_ASSERT(strlen(ecap_host_last_error()) > 0);
    }
}

static int released;
static void count_release(void *release_data, const char *data, size_t size)
{
    ARK_ASSERT(release_data == &released);
    ARK_ASSERT_EQ(size, 5);
    released++;
}

ARK_TEST(area_ownership_borrowed_copied_released)
{
    char bytes[] = "hello";
    ecap_area_t borrowed = ecap_area_borrow(bytes, 5);
    ARK_ASSERT(borrowed.release == NULL);
    ARK_ASSERT(borrowed.data == bytes);
    ecap_area_release(&borrowed); /* no-op for a borrowed area */
    ARK_ASSERT_EQ(bytes[0], 'h');
    ecap_area_t copy = ecap_area_copy(bytes, 5);
    ARK_ASSERT(copy.data != bytes);
    bytes[0] = 'j';
    ARK_ASSERT(ecap_area_equals(copy, "hello"));
    ecap_area_release(&copy); /* frees (ASan would report a leak otherwise) */
    ARK_ASSERT(copy.data == NULL && copy.size == 0);
    ecap_area_t given = ecap_area_give(bytes, 5, count_release, &released);
    ecap_area_release(&given);
    ecap_area_release(&given);
    ARK_ASSERT_EQ(released, 1);
    ARK_ASSERT_STR_EQ(ecap_strerror(ECAP_E_IN_SERVICE_RESUME),
                      "only the host transaction's resume may be called inside a service resume");
}
