/* A shared mapping of a file: the file holds the contents. Each step writes the same bytes
 * in every run, so what a killed run wrote after the checkpoint is what the restart writes. */
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>
#include "state.h"

#define LEN (32 << 10)

int main(int argc, char **argv) {
    state_args(argc, argv);
    int fd = open(in_dir("shared.dat"), O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || ftruncate(fd, LEN) != 0)
        return 3;
    unsigned char *map = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED)
        return 3;
    size_t slice = LEN / (size_t)steps;
    for (int i = 0; i < steps; i++) {
        memset(map + (size_t)i * slice, i + 1, slice);
        unsigned char back[64];
        pread(fd, back, sizeof back, (off_t)((size_t)i * slice));
        printf("step %d written %016llx file agrees %s\n", i,
               fnv(map, (size_t)(i + 1) * slice, FNV0),
               memcmp(back, map + (size_t)i * slice, sizeof back) == 0 ? "yes" : "no");
        pause_step();
    }
    printf("result %016llx\n", fnv(map, LEN, FNV0));
    return 0;
}
