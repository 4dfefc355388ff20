/* An O_APPEND log: every write lands at the end, wherever the descriptor's offset was. */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include "state.h"

int main(int argc, char **argv) {
    state_args(argc, argv);
    int log = open(in_dir("log.txt"), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
    for (int i = 0; i < steps; i++) {
        char line[64];
        int len = snprintf(line, sizeof line, "entry %d\n", i);
        if (write(log, line, (size_t)len) != len)
            return 3;
        struct stat st;
        fstat(log, &st);
        printf("step %d append %s at end %s\n", i,
               fcntl(log, F_GETFL) & O_APPEND ? "yes" : "no",
               lseek(log, 0, SEEK_CUR) == st.st_size ? "yes" : "no");
        pause_step();
    }
    printf("result %d entries appended\n", steps);
    return 0;
}
