/* A private, writable mapping of a file: the pages the program changed are its own. */
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>
#include "state.h"

#define LEN (64 << 10)

int main(int argc, char **argv) {
    state_args(argc, argv);
    int fd = open(in_dir("private.dat"), O_RDWR | O_CREAT | O_TRUNC, 0600);
    unsigned char pattern[LEN];
    for (int b = 0; b < LEN; b++)
        pattern[b] = (unsigned char)(b * 7 + 3);
    if (fd < 0 || write(fd, pattern, LEN) != LEN)
        return 3;
    unsigned char *map = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    const unsigned char *ro = mmap(NULL, LEN, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED || ro == MAP_FAILED)
        return 3;
    for (int i = 0; i < steps; i++) {
        map[(size_t)(i * 4099) % LEN] ^= (unsigned char)(i + 1);
        printf("step %d mapping %016llx file %016llx\n", i, fnv(map, LEN, FNV0),
               fnv(ro, LEN, FNV0));
        pause_step();
    }
    printf("result %016llx\n", fnv(map, LEN, FNV0));
    return 0;
}
