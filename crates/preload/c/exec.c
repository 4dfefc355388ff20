/* The exec family of libmpicr_preload.so: the rank's control connection handed over to the
 * program this process executes (src/exec.rs; ARCHITECTURE.md, "Programs without MPI").
 *
 * glibc's execv, execvp, execl and the others reach execve inside libc, not through the PLT,
 * so wrapping execve alone would miss them: every member that replaces this process is
 * wrapped here. Each asks mpicr_preload_exec_begin for the environment the new program gets,
 * calls the real function, and if that returns (the exec failed) calls
 * mpicr_preload_exec_failed, keeping errno. They are in C because stable Rust cannot define
 * the variadic execl, execlp and execle.
 *
 * system, popen and posix_spawn start another process, which is not the rank: not wrapped
 * (glibc's posix_spawn calls the internal execve in its child, not these). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <unistd.h>

extern char **environ;

char *const *mpicr_preload_exec_begin(char *const *envp);
void mpicr_preload_exec_failed(void);

typedef int (*execve_fn)(const char *, char *const[], char *const[]);
typedef int (*execvpe_fn)(const char *, char *const[], char *const[]);
typedef int (*fexecve_fn)(int, char *const[], char *const[]);
typedef int (*execveat_fn)(int, const char *, char *const[], char *const[], int);

/* The next definitions (libc's), looked up in the constructor so that an exec in a vfork
 * child or after fork in a threaded program does not run the dynamic linker's lookup;
 * looked up on first use if an exec comes before the constructor ran. */
static execve_fn real_execve;
static execvpe_fn real_execvpe;
static fexecve_fn real_fexecve;
static execveat_fn real_execveat;

static void resolve(void) {
    if (!real_execve)
        real_execve = (execve_fn)dlsym(RTLD_NEXT, "execve");
    if (!real_execvpe)
        real_execvpe = (execvpe_fn)dlsym(RTLD_NEXT, "execvpe");
    if (!real_fexecve)
        real_fexecve = (fexecve_fn)dlsym(RTLD_NEXT, "fexecve");
    if (!real_execveat)
        real_execveat = (execveat_fn)dlsym(RTLD_NEXT, "execveat");
}

__attribute__((constructor)) static void resolve_at_load(void) { resolve(); }

/* Returns what the real exec returned (it only returns on failure), undoing the hand-over. */
static int failed(int r) {
    int saved = errno;
    mpicr_preload_exec_failed();
    errno = saved;
    return r;
}

static int missing(void) {
    errno = ENOSYS;
    return -1;
}

int execve(const char *path, char *const argv[], char *const envp[]) {
    resolve();
    if (!real_execve)
        return missing();
    char *const *env = mpicr_preload_exec_begin(envp);
    return failed(real_execve(path, argv, env));
}

int execv(const char *path, char *const argv[]) { return execve(path, argv, environ); }

int execvpe(const char *file, char *const argv[], char *const envp[]) {
    resolve();
    if (!real_execvpe)
        return missing();
    char *const *env = mpicr_preload_exec_begin(envp);
    return failed(real_execvpe(file, argv, env));
}

int execvp(const char *file, char *const argv[]) { return execvpe(file, argv, environ); }

int fexecve(int fd, char *const argv[], char *const envp[]) {
    resolve();
    if (!real_fexecve)
        return missing();
    char *const *env = mpicr_preload_exec_begin(envp);
    return failed(real_fexecve(fd, argv, env));
}

int execveat(int dirfd, const char *path, char *const argv[], char *const envp[], int flags) {
    resolve();
    if (!real_execveat)
        return missing();
    char *const *env = mpicr_preload_exec_begin(envp);
    return failed(real_execveat(dirfd, path, argv, env, flags));
}

/* The body of execl, execlp and execle: argv from `first` and the variadic arguments up to
 * the terminating NULL, then envp (after that NULL with `with_envp`, else environ), passed to
 * `call`. */
#define FROM_LIST(first, with_envp, call)                                                      \
    do {                                                                                       \
        va_list ap;                                                                            \
        size_t count = 1;                                                                      \
        va_start(ap, first);                                                                   \
        while (va_arg(ap, char *) != NULL)                                                     \
            count++;                                                                           \
        va_end(ap);                                                                            \
        char *argv[count + 1];                                                                 \
        va_start(ap, first);                                                                   \
        argv[0] = (char *)first;                                                               \
        for (size_t i = 1; i <= count; i++)                                                    \
            argv[i] = va_arg(ap, char *);                                                      \
        char *const *envp = with_envp ? va_arg(ap, char *const *) : environ;                   \
        va_end(ap);                                                                            \
        return call;                                                                           \
    } while (0)

int execl(const char *path, const char *arg, ...) { FROM_LIST(arg, 0, execve(path, argv, envp)); }

int execlp(const char *file, const char *arg, ...) {
    FROM_LIST(arg, 0, execvpe(file, argv, envp));
}

int execle(const char *path, const char *arg, ...) { FROM_LIST(arg, 1, execve(path, argv, envp)); }
