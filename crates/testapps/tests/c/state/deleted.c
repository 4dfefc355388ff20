/* Files deleted while open: a scratch file read and written at an offset, and an O_APPEND log
 * opened write-only, both unlinked at once. Their contents exist only in the process, so the
 * image must hold them whole; every step checks all that was written before. */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include "state.h"

int main(int argc, char **argv) {
    state_args(argc, argv);
    int scratch = open(in_dir("scratch.bin"), O_RDWR | O_CREAT | O_TRUNC, 0600);
    int log = open(in_dir("log.txt"), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
    if (scratch < 0 || log < 0 || unlink(in_dir("scratch.bin")) || unlink(in_dir("log.txt")))
        return 3;
    for (int i = 0; i < steps; i++) {
        /* The scratch file: one record per step, then everything read back and hashed. */
        unsigned long long rec = fnv(&i, sizeof i, FNV0);
        if (pwrite(scratch, &rec, sizeof rec, (off_t)i * 4096) != sizeof rec)
            return 4;
        unsigned long long h = FNV0, got;
        for (int k = 0; k <= i; k++) {
            if (pread(scratch, &got, sizeof got, (off_t)k * 4096) != sizeof got)
                return 5;
            h = fnv(&got, sizeof got, h);
        }
        char line[64];
        int len = snprintf(line, sizeof line, "entry %d\n", i);
        if (write(log, line, (size_t)len) != len)
            return 6;
        struct stat st;
        fstat(log, &st);
        printf("step %d scratch %016llx log %lld bytes, append %s, links %d\n", i, h,
               (long long)st.st_size, fcntl(log, F_GETFL) & O_APPEND ? "yes" : "no",
               (int)st.st_nlink);
        pause_step();
    }
    printf("result %d records\n", steps);
    return 0;
}
