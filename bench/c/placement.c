/* bench/run's placement probe (not an MPI program): the one-way time of a cache line between
 * two threads pinned to the first two CPUs this process may use, the CPUs a 2-rank benchmark
 * runs on. On a virtual machine it shows where the host has put those two vCPUs at this moment
 * (on a 2-vCPU VM it was seen to move between about 70, 265 and 445 ns within minutes), which
 * bounds the small-message latency of every MPI implementation alike. Prints the 10th
 * percentile in ns over many round trips, so time slices lost to other load do not count. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define ROUND_TRIPS 100000

static _Alignas(128) _Atomic long ping;
static _Alignas(128) _Atomic long pong;
static double elapsed[ROUND_TRIPS];
static int cpus[2];

static void pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) {
        perror("placement: sched_setaffinity");
        exit(1);
    }
}

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void *echo(void *unused) {
    (void)unused;
    pin(cpus[1]);
    for (long i = 1; i <= ROUND_TRIPS; i++) {
        while (atomic_load_explicit(&ping, memory_order_acquire) != i)
            ;
        atomic_store_explicit(&pong, i, memory_order_release);
    }
    return NULL;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(void) {
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) {
        perror("placement: sched_getaffinity");
        return 1;
    }
    int found = 0;
    for (int c = 0; c < CPU_SETSIZE && found < 2; c++)
        if (CPU_ISSET(c, &allowed))
            cpus[found++] = c;
    if (found < 2) {
        fprintf(stderr, "placement: needs two CPUs\n");
        return 1;
    }
    pthread_t thread;
    if (pthread_create(&thread, NULL, echo, NULL) != 0) {
        fprintf(stderr, "placement: cannot start a thread\n");
        return 1;
    }
    pin(cpus[0]);
    for (long i = 1; i <= ROUND_TRIPS; i++) {
        double start = now_ns();
        atomic_store_explicit(&ping, i, memory_order_release);
        while (atomic_load_explicit(&pong, memory_order_acquire) != i)
            ;
        elapsed[i - 1] = now_ns() - start;
    }
    pthread_join(thread, NULL);
    qsort(elapsed, ROUND_TRIPS, sizeof elapsed[0], by_value);
    printf("%.0f\n", elapsed[ROUND_TRIPS / 10] / 2);
    return 0;
}
