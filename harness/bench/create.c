/*
 * create — what it costs, on this machine, to create and reap a process or a
 * thread, to check the course's orders of magnitude ("~1-2 ms" for a process,
 * "~10-100 us" for a thread).
 *
 * Three measurements, each N times (-n, default 2000) after a short untimed
 * warm-up, every iteration timed on its own with clock_gettime(CLOCK_MONOTONIC):
 *   fork_exit_wait      fork(); the child _exit(0)s at once; the parent waitpid()s it
 *   fork_64mib          the same, after the parent has written 64 MiB of anonymous
 *                       memory: fork copies the page tables of every page the parent
 *                       has touched, and the child's exit tears its copy down again,
 *                       so the cost of a process grows with the parent's size
 *   thread_create_join  pthread_create() of a function that returns NULL at once,
 *                       then pthread_join()
 * Each gives the median, p90 (nearest rank) and mean of one iteration in
 * microseconds, and the total time of its N timed iterations in milliseconds.
 * fork_64mib runs at most FORK_BIG_MAX (500) iterations, its own "n" says how
 * many: at 4-8 ms each on a 2-core VM, 2000 of them alone would take 8-16 s.
 *
 * Output: a short table, or one JSON object on stdout with --json; either ends
 * with the whole run's time (elapsed_s).  Ctrl-C ends the run between two
 * iterations, with nothing left to reap.
 * Exit status: 0 done; 1 a fork, thread, allocation or wait failed; 2 bad usage.
 *
 * Build: cc -O2 -pthread -o create create.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_N    2000
#define MAX_N        1000000
#define WARMUP       20                 /* untimed iterations before each measurement */
#define BIG_BYTES    ((size_t)64 << 20) /* the parent's touched memory for fork_64mib */
#define FORK_BIG_MAX 500                /* fork_64mib iterations, at most */

/* The signal that asked us to stop, or 0: acted on between two iterations. */
static volatile sig_atomic_t stop_signal;

struct stats {
    int n;
    double median_us, p90_us, mean_us, total_ms;
};

static void die(const char *what, int err)
{
    fprintf(stderr, "create: %s: %s\n", what, strerror(err));
    exit(1);
}

static void on_stop(int sig)
{
    stop_signal = sig;
}

/*
 * A child whose parent dies is left for init to reap, and some PID 1s (a
 * container's own program) never do: it would stay a zombie.  So SIGINT,
 * SIGTERM and SIGHUP end the run only between iterations, once the current
 * child is reaped and the current thread joined: then die of the same signal.
 * Signals ignored by whoever started us (nohup, a background job) stay ignored.
 * Only SIGKILL can still cut an iteration short.
 */
static void catch_stop_signals(void)
{
    static const int sigs[] = { SIGINT, SIGTERM, SIGHUP };
    struct sigaction sa, old;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop; /* no SA_RESTART: waitpid returns EINTR, and is called again */
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler != SIG_IGN)
            sigaction(sigs[i], &sa, NULL);
    }
}

static void stop_if_asked(void)
{
    if (stop_signal != 0) {
        signal(stop_signal, SIG_DFL);
        raise(stop_signal);
    }
}

static double now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* One process created and reaped: the child does nothing but end. */
static void fork_exit_wait(void)
{
    int status;
    pid_t pid = fork();

    if (pid < 0)
        die("fork", errno);
    if (pid == 0)
        _exit(0); /* _exit, not exit: no atexit handlers, no stdio flush of the parent's buffers */
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            die("waitpid", errno);
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "create: child %d did not _exit(0) (wait status 0x%x)\n", (int)pid, (unsigned)status);
        exit(1);
    }
}

static void *nothing(void *arg)
{
    return arg;
}

/* One thread created and reaped: the thread does nothing but return. */
static void thread_create_join(void)
{
    pthread_t t;
    int rc = pthread_create(&t, NULL, nothing, NULL);

    if (rc != 0)
        die("pthread_create", rc); /* pthread functions return the error, they do not set errno */
    rc = pthread_join(t, NULL);
    if (rc != 0)
        die("pthread_join", rc);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* Nearest rank: the smallest sample with at least pct % of all samples at or below it. */
static double percentile(const double *sorted, int n, int pct)
{
    long rank = ((long)n * pct + 99) / 100; /* integer ceiling: no libm to link */

    return sorted[rank < 1 ? 0 : rank - 1];
}

/* Time every one of n iterations of op on its own; samples has room for n. */
static struct stats measure(void (*op)(void), int n, double *samples)
{
    struct stats s = { .n = n };
    double sum = 0;

    for (int i = 0; i < WARMUP; i++) {
        op(); /* first forks and threads fault in code, page tables, glibc's stack cache */
        stop_if_asked();
    }
    for (int i = 0; i < n; i++) {
        double t0 = now_us();

        op();
        samples[i] = now_us() - t0;
        sum += samples[i];
        stop_if_asked();
    }
    qsort(samples, (size_t)n, sizeof *samples, cmp_double);
    s.median_us = percentile(samples, n, 50);
    s.p90_us = percentile(samples, n, 90);
    s.mean_us = sum / n;
    s.total_ms = sum / 1e3;
    return s;
}

/*
 * Map and write BIG_BYTES, so that fork has that many more pages to copy the
 * page tables of.  malloc would hand out the same kind of mapping for a block
 * this size (it is above glibc's mmap threshold); mmap lets us madvise it.
 */
static void *grow(void)
{
    void *p = mmap(NULL, BIG_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    if (p == MAP_FAILED)
        die("mmap 64 MiB", errno);
    /*
     * Where transparent huge pages are "always", the kernel could back this with
     * 2 MiB pages: 32 page-table entries to copy instead of 16,384, and a fork
     * that hardly grows.  Ask for 4 KiB pages, what a heap of small objects
     * mostly has; the measurement then means the same on every machine.
     */
    madvise(p, BIG_BYTES, MADV_NOHUGEPAGE); /* may fail without THP support: 4 KiB pages anyway */
    /* Written, not just mapped: fork copies no page-table entry for a page never touched. */
    memset(p, 0x5a, BIG_BYTES);
    return p;
}

static void print_json_one(const char *name, const struct stats *s, const char *sep)
{
    printf("\"%s\": {\"n\": %d, \"median_us\": %.1f, \"p90_us\": %.1f, \"mean_us\": %.1f, \"total_ms\": %.1f}%s",
           name, s->n, s->median_us, s->p90_us, s->mean_us, s->total_ms, sep);
}

static void print_row(const char *name, const struct stats *s)
{
    printf("%-38s %7d %9.1f %9.1f %9.1f %10.1f\n", name, s->n, s->median_us, s->p90_us, s->mean_us, s->total_ms);
}

/* Bad usage: one line on stderr, exit status 2. */
__attribute__((format(printf, 1, 2))) static void usage_error(const char *fmt, ...)
{
    va_list ap;

    fputs("create: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (usage: create [-n N] [--json])\n", stderr);
    exit(2);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "json", no_argument, 0, 'j' }, { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 } };
    int opt, n = DEFAULT_N, json = 0, n_big;
    double *samples, t_start;
    struct stats fork_small, fork_big, thread;
    void *big;

    opterr = 0; /* getopt's own message would be a second line: say it once, below */
    while ((opt = getopt_long(argc, argv, ":n:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'n': {
            char *end;
            long v;

            errno = 0;
            v = strtol(optarg, &end, 10);
            if (errno != 0 || end == optarg || *end != '\0' || v < 1 || v > MAX_N)
                usage_error("-n wants an integer from 1 to %d, not '%s'", MAX_N, optarg);
            n = (int)v;
            break;
        }
        case 'j': json = 1; break;
        case 'h':
            printf("Usage: create [-n N] [--json]\n"
                   "  -n N    timed iterations of each measurement (default %d; fork_64mib: at most %d)\n"
                   "  --json  one JSON object on stdout instead of a table\n",
                   DEFAULT_N, FORK_BIG_MAX);
            return 0;
        case ':': usage_error("%s needs a value", argv[optind - 1]); break;
        default: usage_error("unknown option '%s'", argv[optind - 1]); break;
        }
    }
    if (optind < argc)
        usage_error("unexpected argument '%s'", argv[optind]);

    /*
     * A SIGCHLD ignored by whoever started us stays ignored across exec, and then
     * the kernel reaps children by itself: waitpid would wait for the child's end
     * and fail with ECHILD.  The default disposition keeps fork+exit+wait as written.
     */
    struct sigaction dfl = { .sa_handler = SIG_DFL };
    sigaction(SIGCHLD, &dfl, NULL);
    catch_stop_signals();

    samples = malloc((size_t)n * sizeof *samples);
    if (samples == NULL)
        die("malloc", errno);
    t_start = now_us();

    fork_small = measure(fork_exit_wait, n, samples);

    big = grow();
    n_big = n < FORK_BIG_MAX ? n : FORK_BIG_MAX;
    fork_big = measure(fork_exit_wait, n_big, samples);
    munmap(big, BIG_BYTES); /* the thread measurement runs in the small process again */

    thread = measure(thread_create_join, n, samples);
    free(samples);

    if (json) {
        printf("{");
        print_json_one("fork_exit_wait", &fork_small, ", ");
        print_json_one("fork_64mib", &fork_big, ", ");
        print_json_one("thread_create_join", &thread, ", ");
        printf("\"elapsed_s\": %.2f}\n", (now_us() - t_start) / 1e6);
    } else {
        printf("%-38s %7s %9s %9s %9s %10s\n", "create + reap (us per iteration)", "n", "median", "p90", "mean",
               "total ms");
        print_row("fork + _exit + waitpid", &fork_small);
        print_row("same, parent with 64 MiB written", &fork_big);
        print_row("pthread_create + pthread_join", &thread);
        printf("whole run: %.2f s\n", (now_us() - t_start) / 1e6);
    }
    return 0;
}
