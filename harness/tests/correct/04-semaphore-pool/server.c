/*
chapter: 04
design: fixed pool of -w N threads; bounded ring queue guarded by sem_t slots/items + a mutex; dedicated sigwait() thread; MSG_NOSIGNAL sends
A thread-pool echo server written independently of the lab's reference,
for the grader's self-test. The acceptor (main thread) accepts, counts the
connection and pushes it into a ring of N entries; when the ring is full it
blocks on the `slots` semaphore and stops calling accept(), so further
clients wait in the kernel backlog. N workers take connections from the
ring and echo until EOF. SIGINT/SIGTERM are blocked everywhere and
consumed by one thread in sigwait(), so no handler ever runs and stopping
is ordinary thread code. Threads: N workers + acceptor + signal thread.*/
#define _GNU_SOURCE /* accept4 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF_SIZE (16 * 1024)
#define NAME_LEN (INET6_ADDRSTRLEN + 10)
#define MAX_WORKERS 4096

struct conn {
    int fd;
    char name[NAME_LEN];
};

/* Everything below `lock` is only touched with `lock` held. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct conn *ring;       /* capacity nworkers */
static size_t ring_head, ring_count;
static int *serving_fd;         /* per worker: fd being served, or -1 */
static int active;              /* connections held: queued + served */
static int stopping;

/* Written once before any thread starts, read-only afterwards. */
static sem_t slots, items;
static int listen_fd = -1;
static int nworkers = 8;
static int quiet, verbose;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: server [-p PORT] [-b ADDR] [-q] [-v] [-w N] [-h]\n"
            "  -p PORT  port to listen on (default 8080, 0: any free port)\n"
            "  -b ADDR  IPv4 or IPv6 address to bind (default 127.0.0.1)\n"
            "  -q       quiet: no per-connection log lines\n"
            "  -v       verbose: also log each message received\n"
            "  -w N     threads in the pool (default 8)\n"
            "  -h       show this help\n");
}

__attribute__((noreturn, format(printf, 1, 0)))
static void bad_usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "server: ");
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    usage(stderr);
    exit(2);
}

/* Strict decimal parse: "12x", "", "-1" and overflow are all rejected. */
static long parse_num(const char *s, long min, long max)
{
    char *end;
    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    return v;
}

static void fmt_addr(const struct sockaddr_storage *ss, char *out, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "?";
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof host);
        snprintf(out, len, "[%s]:%u", host, (unsigned)ntohs(s6->sin6_port));
    } else {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &s4->sin_addr, host, sizeof host);
        snprintf(out, len, "%s:%u", host, (unsigned)ntohs(s4->sin_port));
    }
}

static int open_listener(const char *addr, int port)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    char name[NAME_LEN];

    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((unsigned short)port);
        sslen = sizeof *s4;
    } else if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((unsigned short)port);
        sslen = sizeof *s6;
    } else {
        bad_usage("bad address '%s' (expected an IPv4 or IPv6 literal)", addr);
    }

    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        perror("server: socket");
        exit(1);
    }
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        perror("server: setsockopt SO_REUSEADDR");
    fmt_addr(&ss, name, sizeof name);
    if (bind(fd, (struct sockaddr *)&ss, sslen) < 0) {
        fprintf(stderr, "server: bind %s: %s\n", name, strerror(errno));
        exit(1);
    }
    /* SOMAXCONN, not 10: the backlog is where waiting clients queue up
       once the pool and the ring are full. */
    if (listen(fd, SOMAXCONN) < 0) {
        fprintf(stderr, "server: listen %s: %s\n", name, strerror(errno));
        exit(1);
    }
    return fd;
}

static void log_conn(char sign, const char *name, int count)
{
    if (!quiet)
        fprintf(stderr, "%c %s (%d active)\n", sign, name, count);
}

static void log_message(const char *name, const char *buf, size_t n)
{
    char text[256];
    size_t k = 0;
    for (size_t i = 0; i < n && k < sizeof text - 1; i++)
        if (buf[i] >= 0x20 && buf[i] < 0x7f)
            text[k++] = buf[i];
    text[k] = '\0';
    fprintf(stderr, "< %s (%zu bytes): %s\n", name, n, text);
}

/* MSG_NOSIGNAL instead of ignoring SIGPIPE: a peer that vanished gives
   EPIPE to this connection only. Loops because send() may be short. */
static int send_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static void echo(const struct conn *c)
{
    char buf[BUF_SIZE];
    for (;;) {
        ssize_t n = recv(c->fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)     /* EOF (also after a half-close), reset, or shutdown */
            return;
        if (verbose && !quiet)
            log_message(c->name, buf, (size_t)n);
        if (send_all(c->fd, buf, (size_t)n) < 0)
            return;
    }
}

static void sem_wait_retry(sem_t *s)
{
    while (sem_wait(s) != 0 && errno == EINTR)
        ;
}

static void *worker(void *arg)
{
    int id = (int)(long)arg;
    for (;;) {
        struct conn c;
        sem_wait_retry(&items);
        pthread_mutex_lock(&lock);
        if (ring_count == 0) {
            /* Only the acceptor's N wake-up posts, made after it stopped
               pushing, can find the ring empty: the pool is closing. */
            pthread_mutex_unlock(&lock);
            break;
        }
        c = ring[ring_head];
        ring_head = (ring_head + 1) % (size_t)nworkers;
        ring_count--;
        int drop = stopping;
        if (!drop)
            serving_fd[id] = c.fd;  /* now the signal thread can shut it down */
        int count = drop ? --active : active;
        pthread_mutex_unlock(&lock);
        sem_post(&slots);

        if (!drop) {
            echo(&c);
            pthread_mutex_lock(&lock);
            /* Cleared before close(), under the lock, so the signal
               thread never shuts down a reused descriptor number. */
            serving_fd[id] = -1;
            count = --active;
            pthread_mutex_unlock(&lock);
        }
        close(c.fd);
        log_conn('-', c.name, count);
    }
    return NULL;
}

static void *signal_thread(void *arg)
{
    sigset_t *set = arg;
    int sig;
    while (sigwait(set, &sig) != 0)
        ;
    pthread_mutex_lock(&lock);
    stopping = 1;
    /* recv() returns 0 and a blocked send() fails: workers end at once. */
    for (int i = 0; i < nworkers; i++)
        if (serving_fd[i] >= 0)
            shutdown(serving_fd[i], SHUT_RDWR);
    pthread_mutex_unlock(&lock);
    /* On Linux this makes a blocked (or the next) accept() fail. */
    shutdown(listen_fd, SHUT_RDWR);
    /* The acceptor may be waiting for a slot instead. */
    sem_post(&slots);
    return NULL;
}

static int is_stopping(void)
{
    pthread_mutex_lock(&lock);
    int s = stopping;
    pthread_mutex_unlock(&lock);
    return s;
}

static void pause_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void accept_loop(void)
{
    int out_of_fds = 0;
    while (!is_stopping()) {
        struct conn c;
        struct sockaddr_storage ss;
        socklen_t sslen = sizeof ss;
        c.fd = accept4(listen_fd, (struct sockaddr *)&ss, &sslen, SOCK_CLOEXEC);
        if (c.fd < 0) {
            int e = errno;
            if (e == EINTR || e == ECONNABORTED || e == EPROTO)
                continue;
            if (is_stopping())
                break;
            /* EMFILE/ENFILE/ENOBUFS...: the pending client stays in the
               backlog and accept() would fail again at once, so wait a
               little instead of spinning; say it once per episode. */
            if (!out_of_fds)
                fprintf(stderr, "server: accept: %s\n", strerror(e));
            out_of_fds = 1;
            pause_ms(100);
            continue;
        }
        out_of_fds = 0;
        fmt_addr(&ss, c.name, sizeof c.name);

        pthread_mutex_lock(&lock);
        int stop = stopping;
        int count = stop ? active : ++active;
        pthread_mutex_unlock(&lock);
        if (stop) {
            close(c.fd);
            break;
        }
        log_conn('+', c.name, count);

        /* Full ring: block here and stop accepting (backpressure). */
        sem_wait_retry(&slots);
        pthread_mutex_lock(&lock);
        stop = stopping;
        if (stop) {
            count = --active;
        } else {
            ring[(ring_head + ring_count) % (size_t)nworkers] = c;
            ring_count++;
        }
        pthread_mutex_unlock(&lock);
        if (stop) {
            close(c.fd);
            log_conn('-', c.name, count);
            break;
        }
        sem_post(&items);
    }
}

int main(int argc, char **argv)
{
    const char *addr = "127.0.0.1";
    long port = 8080;
    int opt;

    opterr = 0;     /* our own one-line messages, then the usage */
    while ((opt = getopt(argc, argv, ":p:b:qvw:h")) != -1) {
        switch (opt) {
        case 'p':
            if ((port = parse_num(optarg, 0, 65535)) < 0)
                bad_usage("bad port '%s' (expected 0 to 65535)", optarg);
            break;
        case 'b':
            addr = optarg;
            break;
        case 'q':
            quiet = 1;
            break;
        case 'v':
            verbose = 1;
            break;
        case 'w': {
            long w = parse_num(optarg, 1, MAX_WORKERS);
            if (w < 0)
                bad_usage("bad thread count '%s' (expected 1 to 4096)", optarg);
            nworkers = (int)w;
            break;
        }
        case 'h':
            usage(stdout);
            return 0;
        case ':': {
            char o[2] = { (char)optopt, '\0' };
            bad_usage("option -%s needs a value", o);
            break;
        }
        default: {
            char o[2] = { (char)optopt, '\0' };
            bad_usage("unknown option -%s", o);
        }
        }
    }
    if (optind < argc)
        bad_usage("unexpected argument '%s'", argv[optind]);

    listen_fd = open_listener(addr, (int)port);

    ring = calloc((size_t)nworkers, sizeof *ring);
    serving_fd = malloc((size_t)nworkers * sizeof *serving_fd);
    pthread_t *workers = calloc((size_t)nworkers, sizeof *workers);
    if (!ring || !serving_fd || !workers) {
        fprintf(stderr, "server: out of memory\n");
        return 1;
    }
    for (int i = 0; i < nworkers; i++)
        serving_fd[i] = -1;
    if (sem_init(&slots, 0, (unsigned)nworkers) != 0 || sem_init(&items, 0, 0) != 0) {
        perror("server: sem_init");
        return 1;
    }

    /* Blocked before the first pthread_create so every thread inherits
       the mask: the signals can only be taken by sigwait(). */
    sigset_t stopset;
    sigemptyset(&stopset);
    sigaddset(&stopset, SIGINT);
    sigaddset(&stopset, SIGTERM);
    int err = pthread_sigmask(SIG_BLOCK, &stopset, NULL);
    if (err != 0) {
        fprintf(stderr, "server: pthread_sigmask: %s\n", strerror(err));
        return 1;
    }

    int started = 0;
    for (; started < nworkers; started++) {
        err = pthread_create(&workers[started], NULL, worker, (void *)(long)started);
        if (err != 0)
            break;
    }
    pthread_t sigtid;
    if (err == 0)
        err = pthread_create(&sigtid, NULL, signal_thread, &stopset);
    if (err != 0) {
        fprintf(stderr, "server: pthread_create: %s\n", strerror(err));
        pthread_mutex_lock(&lock);
        stopping = 1;
        pthread_mutex_unlock(&lock);
        for (int i = 0; i < started; i++)
            sem_post(&items);
        for (int i = 0; i < started; i++)
            pthread_join(workers[i], NULL);
        return 1;
    }

    struct sockaddr_storage ss;
    socklen_t sslen = sizeof ss;
    char name[NAME_LEN];
    if (getsockname(listen_fd, (struct sockaddr *)&ss, &sslen) == 0)
        fmt_addr(&ss, name, sizeof name);
    else
        snprintf(name, sizeof name, "%s:%ld", addr, port);
    printf("listening on %s\n", name);
    fflush(stdout);

    accept_loop();

    /* The acceptor pushes nothing more: one extra post per worker lets
       each drain (closing) what is still queued, then find the ring empty. */
    for (int i = 0; i < nworkers; i++)
        sem_post(&items);
    for (int i = 0; i < nworkers; i++)
        pthread_join(workers[i], NULL);
    pthread_join(sigtid, NULL);

    close(listen_fd);
    sem_destroy(&slots);
    sem_destroy(&items);
    pthread_mutex_destroy(&lock);
    free(workers);
    free(serving_fd);
    free(ring);
    fprintf(stderr, "shutting down\n");
    return 0;
}
