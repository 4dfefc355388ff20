/* A second thread, which only sleeps: an image cannot hold it, so every checkpoint is refused
 * and the program runs on. Unlike the other kinds it flushes each step, so that the test sees
 * the thread exist before it asks for a checkpoint. */
#include <pthread.h>
#include <unistd.h>
#include "state.h"

static void *idle(void *arg) {
    (void)arg;
    for (;;) {
        sleep(1000);
    }
    return NULL;
}

int main(int argc, char **argv) {
    state_args(argc, argv);
    pthread_t thread;
    if (pthread_create(&thread, NULL, idle, NULL) != 0) {
        fprintf(stderr, "threads: pthread_create failed\n");
        return 1;
    }
    unsigned long long h = FNV0;
    for (int i = 0; i < steps; i++) {
        h = fnv(&i, sizeof i, h);
        printf("step %d hash %016llx\n", i, h);
        fflush(stdout);
        pause_step();
    }
    printf("result %016llx\n", h);
    return 0;
}
