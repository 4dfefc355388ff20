/* The umask: files created later get the permissions it leaves. */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include "state.h"

int main(int argc, char **argv) {
    state_args(argc, argv);
    umask(0027);
    for (int i = 0; i < steps; i++) {
        char name[32];
        snprintf(name, sizeof name, "u-%d", i);
        int fd = open(in_dir(name), O_WRONLY | O_CREAT | O_TRUNC, 0666);
        struct stat st;
        fstat(fd, &st);
        close(fd);
        mode_t now = umask(0);
        umask(now);
        printf("step %d umask %03o made %03o\n", i, (unsigned)now, (unsigned)(st.st_mode & 0777));
        pause_step();
    }
    printf("result %d files\n", steps);
    return 0;
}
