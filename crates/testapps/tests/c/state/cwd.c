/* The working directory: files are made by relative paths from a directory entered at start. */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include "state.h"

int main(int argc, char **argv) {
    state_args(argc, argv);
    if (chdir(dir) != 0 || mkdir("work", 0700) != 0 || chdir("work") != 0)
        return 3;
    for (int i = 0; i < steps; i++) {
        char name[32];
        snprintf(name, sizeof name, "file-%d", i);
        int fd = open(name, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        close(fd);
        char cwd[4096];
        const char *base = getcwd(cwd, sizeof cwd) ? strrchr(cwd, '/') + 1 : "?";
        printf("step %d in %s made %s: %s, previous there: %s\n", i, base, name,
               fd >= 0 ? "yes" : "no", i == 0 || access("file-0", F_OK) == 0 ? "yes" : "no");
        pause_step();
    }
    printf("result %d files\n", steps);
    return 0;
}
