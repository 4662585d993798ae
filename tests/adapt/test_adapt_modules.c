/*
 * Modules and services: loading with dlopen through the versioned entry point, errors that
 * name the module, services found by URI, configuration (options, bad values, from the
 * host's configuration file), the life cycle.
 */
#include "adapt_test_util.h"

#include <mtev_conf.h>

#include <string.h>

#define PASSTHRU_URI  "ecap://arkenstone/adapters/passthru"
#define ASYNC_URI     "ecap://arkenstone/adapters/async"
#define MODIFYING_URI "ecap://arkenstone/adapters/modifying"

static void assert_error_mentions(const char *needle)
{
    ARK_ASSERT_MSG(strstr(ecap_host_last_error(), needle) != NULL,
                   "error \"%s\" does not mention \"%s\"", ecap_host_last_error(), needle);
}

ARK_TEST(module_load_registers_its_services)
{
    adapt_test_start(2);
    ARK_ASSERT(ecap_service_find(PASSTHRU_URI) == NULL);
    ARK_ASSERT_EQ(ecap_module_load(adapt_test_module("passthru")), ECAP_OK);
    ecap_service_t *service = ecap_service_find(PASSTHRU_URI);
    ARK_ASSERT(service != NULL);
    ARK_ASSERT_STR_EQ(ecap_service_uri(service), PASSTHRU_URI);
    /* The same file twice is refused; the service stays. */
    ARK_ASSERT_EQ(ecap_module_load(adapt_test_module("passthru")), ECAP_E_EXISTS);
    ARK_ASSERT(ecap_service_find(PASSTHRU_URI) == service);
    ARK_ASSERT_EQ(ecap_service_start(service), ECAP_OK);
    ARK_ASSERT(!ecap_service_is_async(service));
    ARK_ASSERT(ecap_service_wants_url(service, "/anything"));
    adapt_test_stop();
}

ARK_TEST(module_load_missing_file_is_error_naming_module)
{
    adapt_test_start(2);
    ARK_ASSERT_EQ(ecap_module_load("/nonexistent/dir/ghost.so"), ECAP_E_MODULE);
    assert_error_mentions("/nonexistent/dir/ghost.so");
    ARK_ASSERT_EQ(ecap_module_load(NULL), ECAP_E_INVALID);
    adapt_test_stop();
}

ARK_TEST(module_load_missing_symbol_is_error_naming_module)
{
    adapt_test_start(2);
    ARK_ASSERT_EQ(ecap_module_load(ARK_TEST_MODULES_DIR "/no_symbol.so"), ECAP_E_NOT_FOUND);
    assert_error_mentions("no_symbol.so");
    assert_error_mentions("missing symbol ecap_module");
    adapt_test_stop();
}

ARK_TEST(module_version_mismatch_is_error_naming_module)
{
    adapt_test_start(2);
    ARK_ASSERT_EQ(ecap_module_load(ARK_TEST_MODULES_DIR "/wrong_version.so"), ECAP_E_VERSION);
    assert_error_mentions("wrong_version.so");
    assert_error_mentions("built for ecap API 2.0, host provides 1.0");
    adapt_test_stop();
}

ARK_TEST(module_registration_failure_reports_module_and_reason)
{
    adapt_test_start(2);
    ARK_ASSERT_EQ(ecap_module_load(ARK_TEST_MODULES_DIR "/failing.so"), ECAP_E_MODULE);
    assert_error_mentions("failing.so");
    assert_error_mentions("licence file missing");
    adapt_test_stop();
}

ARK_TEST(service_configure_bad_value_is_clear_error)
{
    adapt_test_start(2);
    ARK_ASSERT_EQ(ecap_module_load(adapt_test_module("async")), ECAP_OK);
    ecap_service_t *service = ecap_service_find(ASYNC_URI);
    ARK_ASSERT(service != NULL);
    struct ecap_option bad[] = {{"delay_ms", "soon"}};
    ARK_ASSERT_EQ(ecap_service_configure(service, bad, 1), ECAP_E_BAD_OPTION);
    assert_error_mentions(ASYNC_URI);
    assert_error_mentions("delay_ms=\"soon\"");
    struct ecap_option unknown[] = {{"dealy_ms", "5"}};
    ARK_ASSERT_EQ(ecap_service_configure(service, unknown, 1), ECAP_E_BAD_OPTION);
    assert_error_mentions("unknown option dealy_ms");
    struct ecap_option workers[] = {{"workers", "0"}};
    ARK_ASSERT_EQ(ecap_service_configure(service, workers, 1), ECAP_E_BAD_OPTION);
    assert_error_mentions("workers=\"0\"");
    struct ecap_option good[] = {{"delay_ms", "5"}, {"workers", "3"}};
    ARK_ASSERT_EQ(ecap_service_configure(service, good, 2), ECAP_OK);
    ARK_ASSERT_EQ(ecap_service_start(service), ECAP_OK);
    ARK_ASSERT(ecap_service_is_async(service));
    ARK_ASSERT_EQ(ecap_service_stop(service), ECAP_OK);
    ARK_ASSERT(!ecap_service_is_async(service));
    ARK_ASSERT_EQ(ecap_service_stop(service), ECAP_E_SERVICE_STATE);
    adapt_test_stop();
}

ARK_TEST(service_without_required_option_does_not_start)
{
    adapt_test_start(2);
    ARK_ASSERT_EQ(ecap_module_load(adapt_test_module("modifying")), ECAP_OK);
    ecap_service_t *service = ecap_service_find(MODIFYING_URI);
    ARK_ASSERT(service != NULL);
    ARK_ASSERT(ecap_service_start(service) != ECAP_OK);
    assert_error_mentions("victim");
    /* Chains refuse a service that is not started. */
    adapt_test_stop();
}

ARK_TEST(host_configure_loads_configures_and_starts_services)
{
    char xml[2048];
    snprintf(xml, sizeof(xml),
             "<app><adaptation>"
             "<module path=\"%s\"/><module path=\"%s\"/>"
             "<service uri=\"" MODIFYING_URI "\">"
             "<option name=\"victim\" value=\"cat\"/><option name=\"replacement\" value=\"dog\"/>"
             "</service>"
             "<service uri=\"" ASYNC_URI "\"><option name=\"delay_ms\" value=\"1\"/></service>"
             "</adaptation></app>",
             adapt_test_module("modifying"), adapt_test_module("async"));
    ARK_ASSERT_EQ(mtev_conf_load_string("test", xml), 0);
    adapt_test_start(2);
    mtev_conf_section_t section = mtev_conf_get_section_read(MTEV_CONF_ROOT, "/app/adaptation");
    ARK_ASSERT_EQ(ecap_host_configure(section), ECAP_OK);
    mtev_conf_release_section_read(section);
    ARK_ASSERT(ecap_service_is_async(ecap_service_find(ASYNC_URI)));
    ecap_service_t *modifying = ecap_service_find(MODIFYING_URI);
    ARK_ASSERT(modifying != NULL);
    struct adapt_run run = {.services = {modifying},
                            .service_count = 1,
                            .head = "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n",
                            .body = "a cat, cats",
                            .body_size = 11};
    adapt_run(&run);
    ARK_ASSERT_EQ(run.outcome, ECAP_OUTCOME_ADAPTED);
    ARK_ASSERT_STR_EQ(run.output, "a dog, dogs");
    adapt_run_release(&run);
    adapt_test_stop();
    mtev_conf_unload();

    /* A bad value in the configuration is reported with the service and the option. */
    snprintf(xml, sizeof(xml),
             "<app><adaptation><module path=\"%s\"/>"
             "<service uri=\"" ASYNC_URI "\"><option name=\"poll_ms\" value=\"-3\"/></service>"
             "</adaptation></app>",
             adapt_test_module("async"));
    ARK_ASSERT_EQ(mtev_conf_load_string("test", xml), 0);
    adapt_test_start(2);
    section = mtev_conf_get_section_read(MTEV_CONF_ROOT, "/app/adaptation");
    ARK_ASSERT_EQ(ecap_host_configure(section), ECAP_E_BAD_OPTION);
    mtev_conf_release_section_read(section);
    assert_error_mentions("poll_ms=\"-3\"");
    adapt_test_stop();
    mtev_conf_unload();
}

static void create_with_unstarted(void *argument)
{
    ecap_service_t *service = argument;
    ecap_message_t *message = ecap_message_new_request();
    ARK_ASSERT(ecap_chain_create(&service, 1, message, NULL, NULL, NULL) == NULL);
    assert_error_mentions("is not started");
    ecap_message_free(message);
}

ARK_TEST(chain_refuses_unstarted_service_and_non_loop_thread)
{
    adapt_test_start(2);
    ARK_ASSERT_EQ(ecap_module_load(adapt_test_module("passthru")), ECAP_OK);
    ecap_service_t *service = ecap_service_find(PASSTHRU_URI);
    ecap_message_t *message = ecap_message_new_request();
    /* Off the loops. */
    ARK_ASSERT(ecap_chain_create(&service, 1, message, NULL, NULL, NULL) == NULL);
    assert_error_mentions("not on a loop thread");
    ecap_message_free(message);
    /* On a loop thread, but the service was never started. */
    adapt_test_on_loop(0, create_with_unstarted, service);
    struct ecap_service_stats stats;
    ecap_service_get_stats(service, &stats);
    ARK_ASSERT_EQ(stats.xactions, 0);
    adapt_test_stop();
}
