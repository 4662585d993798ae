/* Built against the installed library with pkg-config only: a co counts to three. */
#include <aco/aco.h>
#include <stdio.h>

static void count_to_three(void)
{
    int *counter = aco_get_arg();
    for (int i = 0; i < 3; i++) {
        (*counter)++;
        aco_yield();
    }
    aco_exit();
}

int main(void)
{
    int counter = 0;
    aco_thread_init(NULL);
    aco_t *main_co = aco_create(NULL, NULL, 0, NULL, NULL);
    aco_share_stack_t *stack = aco_share_stack_new(0);
    aco_t *co = aco_create(main_co, stack, 0, count_to_three, &counter);
    int resumes = 0;
    while (!co->is_end) {
        aco_resume(co);
        resumes++;
    }
    aco_destroy(co);
    aco_share_stack_destroy(stack);
    aco_destroy(main_co);
    if (counter != 3 || resumes != 4) {
        fprintf(stderr, "aco_hello: counter %d after %d resumes, expected 3 after 4\n", counter,
                resumes);
        return 1;
    }
    printf("aco_hello: counted to %d in %d resumes\n", counter, resumes);
    return 0;
}
