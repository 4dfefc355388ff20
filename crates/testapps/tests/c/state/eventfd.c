/* Eventfds: a semaphore-mode one whose counter grows by one each step, and a non-blocking,
 * close-on-exec one written every step and drained every third. Their counters, modes and
 * flags must be the same after a restart as before it. */
#include <fcntl.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include "state.h"

int main(int argc, char **argv) {
    state_args(argc, argv);
    int sem = eventfd(0, EFD_SEMAPHORE);
    int nb = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (sem < 0 || nb < 0)
        return 3;
    for (int i = 0; i < steps; i++) {
        uint64_t two = 2, one = 0, add = (uint64_t)i + 1, drained = 0;
        /* Two in, one out: a semaphore read takes 1, so the counter is i + 1 after the step. */
        int w = (int)write(sem, &two, sizeof two);
        int r = (int)read(sem, &one, sizeof one);
        int wn = (int)write(nb, &add, sizeof add);
        int rn = 0;
        if (i % 3 == 2) {
            rn = (int)read(nb, &drained, sizeof drained);
            errno = 0;
            uint64_t none;
            /* Empty now: a non-blocking read must fail with EAGAIN rather than wait. */
            if (read(nb, &none, sizeof none) != -1 || errno != EAGAIN)
                return 4;
        }
        printf("step %d sem wrote %d read %d got %llu nb wrote %d read %d drained %llu "
               "nonblock %s cloexec %s\n",
               i, w, r, (unsigned long long)one, wn, rn, (unsigned long long)drained,
               fcntl(nb, F_GETFL) & O_NONBLOCK ? "yes" : "no",
               fcntl(nb, F_GETFD) & FD_CLOEXEC ? "yes" : "no");
        pause_step();
    }
    /* The semaphore's counter is steps: take it whole with a non-blocking count of reads. */
    int flags = fcntl(sem, F_GETFL);
    fcntl(sem, F_SETFL, flags | O_NONBLOCK);
    int left = 0;
    uint64_t v;
    while (read(sem, &v, sizeof v) == (ssize_t)sizeof v)
        left++;
    printf("result %d steps, semaphore held %d\n", steps, left);
    return 0;
}
