/* A shared object that is not an adapter module: it lacks the ecap_module entry point. */
int adapt_test_not_a_module(void);
int adapt_test_not_a_module(void)
{
    return 42;
}
