/* Open files at offsets: one read sequentially, one written sequentially. Both are checked
 * against what the program knows they hold. */
#include <fcntl.h>
#include <unistd.h>
#include "state.h"

#define CHUNK 100

int main(int argc, char **argv) {
    state_args(argc, argv);
    int in = open(in_dir("input.dat"), O_RDWR | O_CREAT | O_TRUNC, 0600);
    for (int i = 0; i < steps; i++) {
        char chunk[CHUNK];
        memset(chunk, 'a' + i % 26, CHUNK);
        if (write(in, chunk, CHUNK) != CHUNK)
            return 3;
    }
    lseek(in, 0, SEEK_SET);
    int out = open(in_dir("output.dat"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    unsigned long long h = FNV0;
    for (int i = 0; i < steps; i++) {
        char chunk[CHUNK];
        ssize_t n = read(in, chunk, CHUNK);
        h = fnv(chunk, (size_t)(n > 0 ? n : 0), h);
        char line[64];
        int len = snprintf(line, sizeof line, "line %d\n", i);
        if (write(out, line, (size_t)len) != len)
            return 3;
        printf("step %d read %zd '%c' at %ld wrote up to %ld\n", i, n, n > 0 ? chunk[0] : '-',
               (long)lseek(in, 0, SEEK_CUR), (long)lseek(out, 0, SEEK_CUR));
        pause_step();
    }
    close(out);
    int back = open(in_dir("output.dat"), O_RDONLY);
    char all[1 << 16];
    ssize_t n = read(back, all, sizeof all);
    printf("result %016llx output %016llx\n", h, fnv(all, (size_t)(n > 0 ? n : 0), FNV0));
    return 0;
}
