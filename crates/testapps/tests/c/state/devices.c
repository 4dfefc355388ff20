/* Descriptors of devices without state: /dev/urandom and /dev/zero read, /dev/null and
 * /dev/full written. They must work after a restart as before it. */
#include <fcntl.h>
#include <unistd.h>
#include "state.h"

int main(int argc, char **argv) {
    state_args(argc, argv);
    int urandom = open("/dev/urandom", O_RDONLY);
    int zero = open("/dev/zero", O_RDONLY);
    int null = open("/dev/null", O_WRONLY | O_APPEND);
    int full = open("/dev/full", O_WRONLY);
    if (urandom < 0 || zero < 0 || null < 0 || full < 0)
        return 3;
    for (int i = 0; i < steps; i++) {
        unsigned char r[16], z[16] = {1};
        int got = (int)read(urandom, r, sizeof r);
        int zeros = (int)read(zero, z, sizeof z);
        int sum = 0;
        for (int k = 0; k < (int)sizeof z; k++)
            sum += z[k];
        int wrote = (int)write(null, "x", 1);
        errno = 0;
        int filled = (int)write(full, "x", 1);
        printf("step %d urandom %d zero %d sum %d null %d append %s full %d errno %s\n", i, got,
               zeros, sum, wrote, fcntl(null, F_GETFL) & O_APPEND ? "yes" : "no", filled,
               errno == ENOSPC ? "ENOSPC" : "other");
        pause_step();
    }
    printf("result %d steps\n", steps);
    return 0;
}
