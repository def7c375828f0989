/*
 * chapter: 04
 * design: -w N workers, each with a single-slot mailbox (own mutex + condvar) as the bounded queue; acceptor accepts only while a worker is idle (idle count under its own mutex + condvar, round robin); sigwait() thread stops by shutdown()
 *
 * The bounded queue is N one-slot mailboxes, one per worker, each with its own
 * mutex and condition variable, so a hand-over locks only the receiving
 * worker. The acceptor (main) keeps the idle workers under a pool mutex and
 * sleeps on the pool's condition variable while none is idle: it accept()s
 * only when a worker is free, hands the descriptor to the next idle worker
 * after the last one served (round robin), and clients beyond N wait in the
 * kernel's backlog, never refused. '+' counts the connections accepted and not
 * yet closed: those being served, plus one in a mailbox for the instant of a
 * hand-over; the backlog is not counted. SIGINT and SIGTERM are blocked in all
 * threads and taken by a thread in sigwait(), which marks the pool stopping,
 * shutdown()s the listener (waking accept()) and every socket in the table of
 * served descriptors (waking recv() or send()), then wakes every mailbox; main
 * joins all N + 2 threads before "shutting down". A worker reads at most
 * 64 KiB and sends it all back before reading again: that bounds the output
 * pending for a client that does not read.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF_SIZE     (64 * 1024)   /* bound on one client's pending output */
#define MAX_WORKERS  1024
#define THREAD_STACK (256 * 1024)
#define PEER_LEN     (INET6_ADDRSTRLEN + 16)

struct worker {
    pthread_t tid;
    unsigned id;
    /* The mailbox: one slot, guarded by lock. */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int slot_fd;                   /* -1 when empty */
    char slot_peer[PEER_LEN];
    bool stop;
    bool idle;                     /* guarded by pool.lock */
    int serving_fd;                /* guarded by table_lock; -1 when none */
    char buf[BUF_SIZE];            /* touched by this worker only */
};

static struct {
    unsigned nworkers;
    bool quiet, verbose;
    int listen_fd;
    int spare_fd;                  /* reserve descriptor for EMFILE; main only */
} cfg = { .nworkers = 8, .listen_fd = -1, .spare_fd = -1 };

static struct worker *workers;

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;           /* the acceptor sleeps here; CLOCK_MONOTONIC */
    unsigned idle_count;
    uint64_t released;             /* bumped each time a worker frees a client */
    bool stopping;
} pool = { .lock = PTHREAD_MUTEX_INITIALIZER };

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static bool table_stopping;        /* guarded by table_lock */

static pthread_mutex_t count_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned active;            /* guarded by count_lock */

static void warn_err(const char *what, int err)
{
    char b[128];
    fprintf(stderr, "server: %s: %s\n", what, strerror_r(err, b, sizeof b));
}

static void close_fd(int fd)
{
    /* On Linux the descriptor is released even when close() reports EINTR. */
    if (close(fd) < 0 && errno != EINTR)
        warn_err("close", errno);
}

static void format_addr(const struct sockaddr_storage *ss, char *out, size_t len)
{
    char host[INET6_ADDRSTRLEN], serv[8];
    bool v6 = ss->ss_family == AF_INET6;
    if (getnameinfo((const struct sockaddr *)ss, sizeof *ss, host, sizeof host,
                    serv, sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        snprintf(out, len, "?");
    else
        snprintf(out, len, "%s%s%s:%s", v6 ? "[" : "", host, v6 ? "]" : "", serv);
}

/* One counter for every '+' and '-': the line carries the count right after. */
static void log_conn(char sign, const char *peer)
{
    pthread_mutex_lock(&count_lock);
    active = sign == '+' ? active + 1 : active - 1;
    if (!cfg.quiet)
        fprintf(stderr, "%c %s (%u active)\n", sign, peer, active);
    pthread_mutex_unlock(&count_lock);
}

/* Blocks until fd is ready for events (or has an error or hang-up to report). */
static int wait_ready(int fd, short events)
{
    struct pollfd p = { .fd = fd, .events = events };
    while (poll(&p, 1, -1) < 0)
        if (errno != EINTR) {
            warn_err("poll", errno);
            return -1;
        }
    return 0;
}

static int send_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n >= 0) {
            p += n;
            len -= (size_t)n;
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (wait_ready(fd, POLLOUT) < 0)
                return -1;
        } else {
            if (errno != EPIPE && errno != ECONNRESET)
                warn_err("send", errno);
            return -1;
        }
    }
    return 0;
}

/* -v: the message's printable characters, squeezed in place (already sent). */
static void show_message(char *buf, size_t n, const char *peer)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (isprint((unsigned char)buf[i]))
            buf[k++] = buf[i];
    fprintf(stderr, "%s says: %.*s\n", peer, (int)k, buf);
}

static void echo(struct worker *w, int fd, const char *peer)
{
    for (;;) {
        ssize_t n = recv(fd, w->buf, sizeof w->buf, 0);
        if (n > 0) {
            if (send_all(fd, w->buf, (size_t)n) < 0)
                return;
            if (cfg.verbose)
                show_message(w->buf, (size_t)n, peer);
        } else if (n == 0) {
            return;                     /* EOF: everything was sent back */
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (wait_ready(fd, POLLIN) < 0)
                return;
        } else {
            if (errno != ECONNRESET && errno != ETIMEDOUT)
                warn_err("recv", errno);
            return;
        }
    }
}

static void serve(struct worker *w, int fd, const char *peer)
{
    pthread_mutex_lock(&table_lock);
    bool go = !table_stopping;      /* otherwise the stop thread missed it */
    if (go)
        w->serving_fd = fd;
    pthread_mutex_unlock(&table_lock);

    if (go)
        echo(w, fd, peer);

    /* Leave the table before close(), so the stop thread never touches a
     * descriptor number that may already be reused. */
    pthread_mutex_lock(&table_lock);
    w->serving_fd = -1;
    pthread_mutex_unlock(&table_lock);
    close_fd(fd);
    log_conn('-', peer);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    for (;;) {
        char peer[PEER_LEN];
        pthread_mutex_lock(&w->lock);
        while (w->slot_fd < 0 && !w->stop)
            pthread_cond_wait(&w->cond, &w->lock);
        int fd = w->slot_fd;       /* a posted client is taken even when stopping */
        w->slot_fd = -1;
        if (fd >= 0)
            memcpy(peer, w->slot_peer, sizeof peer);
        pthread_mutex_unlock(&w->lock);
        if (fd < 0)
            return NULL;

        serve(w, fd, peer);

        pthread_mutex_lock(&pool.lock);
        w->idle = true;
        pool.idle_count++;
        pool.released++;
        pthread_cond_signal(&pool.cond);
        pthread_mutex_unlock(&pool.lock);
    }
}

/* Hands fd to w's mailbox; false if the worker is stopping (fd not taken). */
static bool post(struct worker *w, int fd, const char *peer)
{
    pthread_mutex_lock(&w->lock);
    bool ok = !w->stop;
    if (ok) {
        w->slot_fd = fd;
        snprintf(w->slot_peer, sizeof w->slot_peer, "%s", peer);
        pthread_cond_signal(&w->cond);
    }
    pthread_mutex_unlock(&w->lock);
    return ok;
}

static void *signal_main(void *arg)
{
    const sigset_t *set = arg;
    int sig, rc;
    while ((rc = sigwait(set, &sig)) != 0)
        warn_err("sigwait", rc);

    pthread_mutex_lock(&pool.lock);
    pool.stopping = true;
    pthread_cond_broadcast(&pool.cond);
    pthread_mutex_unlock(&pool.lock);

    /* Linux: shutdown() of a listening socket wakes accept() with EINVAL. */
    if (shutdown(cfg.listen_fd, SHUT_RDWR) < 0)
        warn_err("shutdown listener", errno);

    pthread_mutex_lock(&table_lock);
    table_stopping = true;
    for (unsigned i = 0; i < cfg.nworkers; i++)
        if (workers[i].serving_fd >= 0 &&
            shutdown(workers[i].serving_fd, SHUT_RDWR) < 0 && errno != ENOTCONN)
            warn_err("shutdown client", errno);
    pthread_mutex_unlock(&table_lock);

    for (unsigned i = 0; i < cfg.nworkers; i++) {
        pthread_mutex_lock(&workers[i].lock);
        workers[i].stop = true;
        pthread_cond_signal(&workers[i].cond);
        pthread_mutex_unlock(&workers[i].lock);
    }
    return NULL;
}

/* Out of descriptors. Linux fails accept() with EMFILE before it looks at
 * the queue, so first wait until a client is really pending (by then a worker
 * may have freed a descriptor: the caller retries accept()). If accept() fails
 * again with one pending, refuse it through the spare descriptor; without a
 * spare, sleep until a worker frees a descriptor (1 s at most). No spinning. */
static void out_of_descriptors(int err)
{
    struct pollfd p = { .fd = cfg.listen_fd, .events = POLLIN };
    int r = poll(&p, 1, 0);
    if (r == 0) {
        while (poll(&p, 1, -1) < 0 && errno == EINTR)
            ;
        return;
    }
    if (r > 0 && cfg.spare_fd >= 0) {
        close_fd(cfg.spare_fd);
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(cfg.listen_fd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
        if (fd >= 0) {
            char peer[PEER_LEN], b[128];
            format_addr(&ss, peer, sizeof peer);
            close_fd(fd);
            fprintf(stderr, "server: out of descriptors (%s): refused %s\n",
                    strerror_r(err, b, sizeof b), peer);
        }
        cfg.spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (cfg.spare_fd >= 0)
            return;
    }
    pthread_mutex_lock(&pool.lock);
    uint64_t seen = pool.released;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += 1;
    while (pool.released == seen && !pool.stopping)
        if (pthread_cond_timedwait(&pool.cond, &pool.lock, &until) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&pool.lock);
    if (cfg.spare_fd < 0)
        cfg.spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

/* Returns 0 once stopping, -1 on a fatal error. */
static int accept_loop(void)
{
    unsigned next = 0;
    for (;;) {
        pthread_mutex_lock(&pool.lock);
        while (pool.idle_count == 0 && !pool.stopping)
            pthread_cond_wait(&pool.cond, &pool.lock);
        bool stop = pool.stopping;
        pthread_mutex_unlock(&pool.lock);
        if (stop)
            return 0;

        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(cfg.listen_fd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
        if (fd < 0) {
            int err = errno;
            pthread_mutex_lock(&pool.lock);
            stop = pool.stopping;       /* EINVAL: the stop thread shut it down */
            pthread_mutex_unlock(&pool.lock);
            if (stop)
                return 0;
            switch (err) {
            case EINTR: case EAGAIN: case ECONNABORTED: case EPROTO: case EPERM:
            case ENETDOWN: case ENOPROTOOPT: case EHOSTDOWN: case ENONET:
            case EHOSTUNREACH: case EOPNOTSUPP: case ENETUNREACH:
                continue;                       /* that client only */
            case EMFILE: case ENFILE:
                out_of_descriptors(err);
                continue;
            case ENOBUFS: case ENOMEM:
                warn_err("accept", err);
                nanosleep(&(struct timespec){ .tv_nsec = 100000000 }, NULL);
                continue;
            default:
                warn_err("accept", err);
                return -1;
            }
        }

        pthread_mutex_lock(&pool.lock);
        unsigned i = next;
        while (!workers[i].idle)        /* idle_count > 0: one is idle */
            i = (i + 1) % cfg.nworkers;
        workers[i].idle = false;
        pool.idle_count--;
        pthread_mutex_unlock(&pool.lock);
        next = (i + 1) % cfg.nworkers;

        char peer[PEER_LEN];
        format_addr(&ss, peer, sizeof peer);
        log_conn('+', peer);
        if (!post(&workers[i], fd, peer)) {     /* stopping meanwhile */
            close_fd(fd);
            log_conn('-', peer);
        }
    }
}

static void usage(FILE *out)
{
    fputs("usage: server [-p PORT] [-b ADDR] [-q] [-v] [-w N] [-h]\n"
          "  -p PORT port (default 8080, 0: any)  -b ADDR IPv4/IPv6 literal (default 127.0.0.1)\n"
          "  -q quiet  -v log messages  -w N pool threads (default 8, 1..1024)  -h help\n", out);
}

__attribute__((format(printf, 1, 2), noreturn))
static void bad_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("server: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    usage(stderr);
    exit(2);
}

static bool parse_num(const char *s, unsigned long lo, unsigned long hi, unsigned long *out)
{
    char *end;
    if (*s < '0' || *s > '9')
        return false;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static int open_listener(const char *addr, unsigned port, char *shown, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port) };
    if (inet_pton(AF_INET, addr, &a4.sin_addr) == 1) {
        memcpy(&ss, &a4, sizeof a4);
        sl = sizeof a4;
    } else if (inet_pton(AF_INET6, addr, &a6.sin6_addr) == 1) {
        memcpy(&ss, &a6, sizeof a6);
        sl = sizeof a6;
    } else {
        bad_usage("-b: not an IPv4 or IPv6 address: %s", addr);
    }
    format_addr(&ss, shown, len);

    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        warn_err("socket", errno);
        return -1;
    }
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        warn_err("setsockopt SO_REUSEADDR", errno);
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0) {
        char what[PEER_LEN + 8];
        snprintf(what, sizeof what, "bind %s", shown);
        warn_err(what, errno);
        close_fd(fd);
        return -1;
    }
    sl = sizeof ss;
    if (listen(fd, SOMAXCONN) < 0 || getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
        warn_err("listen", errno);
        close_fd(fd);
        return -1;
    }
    format_addr(&ss, shown, len);
    return fd;
}

static int init_sync(void)
{
    pthread_condattr_t ca;
    int rc = pthread_condattr_init(&ca);
    if (rc != 0)
        return rc;
    if ((rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC)) == 0)
        rc = pthread_cond_init(&pool.cond, &ca);
    pthread_condattr_destroy(&ca);
    for (unsigned i = 0; rc == 0 && i < cfg.nworkers; i++) {
        struct worker *w = &workers[i];           /* zeroed by calloc() */
        w->id = i;
        w->slot_fd = w->serving_fd = -1;
        w->idle = true;
        if ((rc = pthread_mutex_init(&w->lock, NULL)) == 0)
            rc = pthread_cond_init(&w->cond, NULL);
    }
    pool.idle_count = cfg.nworkers;
    return rc;                          /* on failure main exits at once */
}

int main(int argc, char **argv)
{
    sigset_t stopset;
    sigemptyset(&stopset);
    sigaddset(&stopset, SIGINT);
    sigaddset(&stopset, SIGTERM);
    int rc = pthread_sigmask(SIG_BLOCK, &stopset, NULL);   /* inherited by all threads */
    struct sigaction ign = { .sa_handler = SIG_IGN };
    if (rc != 0 || sigaction(SIGPIPE, &ign, NULL) < 0) {
        warn_err("signals", rc ? rc : errno);
        return 1;
    }

    const char *addr = "127.0.0.1";
    unsigned long port = 8080, n = 8;
    int opt;
    opterr = 0;
    while ((opt = getopt(argc, argv, ":p:b:qvw:h")) != -1) {
        switch (opt) {
        case 'p':
            if (!parse_num(optarg, 0, 65535, &port))
                bad_usage("-%c: bad port: %s", opt, optarg);
            break;
        case 'b': addr = optarg; break;
        case 'q': cfg.quiet = true; break;
        case 'v': cfg.verbose = true; break;
        case 'w':
            if (!parse_num(optarg, 1, MAX_WORKERS, &n))
                bad_usage("-%c: bad number of threads: %s", opt, optarg);
            break;
        case 'h': usage(stdout); return 0;
        case ':': bad_usage("-%c needs a value", optopt);
        default:  bad_usage("unknown option -%c", optopt);
        }
    }
    if (optind < argc)
        bad_usage("unexpected argument: %s", argv[optind]);
    cfg.nworkers = (unsigned)n;

    char shown[PEER_LEN];
    cfg.listen_fd = open_listener(addr, (unsigned)port, shown, sizeof shown);
    if (cfg.listen_fd < 0)
        return 1;
    cfg.spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

    workers = calloc(cfg.nworkers, sizeof *workers);
    if (workers == NULL || (rc = init_sync()) != 0) {
        warn_err("initialising the pool", workers ? rc : ENOMEM);
        free(workers);
        return 1;
    }

    pthread_attr_t attr;
    pthread_t sig_tid;
    unsigned started = 0;
    int status = 0;
    if ((rc = pthread_attr_init(&attr)) != 0 ||
        (rc = pthread_attr_setstacksize(&attr, THREAD_STACK)) != 0 ||
        (rc = pthread_create(&sig_tid, &attr, signal_main, &stopset)) != 0) {
        warn_err("starting the signal thread", rc);
        return 1;
    }
    for (; started < cfg.nworkers; started++) {
        rc = pthread_create(&workers[started].tid, &attr, worker_main, &workers[started]);
        if (rc != 0) {
            warn_err("pthread_create", rc);
            status = 1;
            break;
        }
    }
    pthread_attr_destroy(&attr);

    if (status == 0) {
        if (printf("listening on %s\n", shown) < 0 || fflush(stdout) == EOF)
            warn_err("stdout", errno);
        if (accept_loop() < 0)
            status = 1;
    }
    if (status != 0 && (rc = pthread_kill(sig_tid, SIGTERM)) != 0)
        warn_err("pthread_kill", rc);     /* stop the pool as a signal would */

    if ((rc = pthread_join(sig_tid, NULL)) != 0)
        warn_err("pthread_join", rc);
    for (unsigned i = 0; i < started; i++)
        if ((rc = pthread_join(workers[i].tid, NULL)) != 0)
            warn_err("pthread_join", rc);

    fputs("shutting down\n", stderr);
    close_fd(cfg.listen_fd);
    if (cfg.spare_fd >= 0)
        close_fd(cfg.spare_fd);
    for (unsigned i = 0; i < cfg.nworkers; i++) {
        pthread_mutex_destroy(&workers[i].lock);
        pthread_cond_destroy(&workers[i].cond);
    }
    pthread_cond_destroy(&pool.cond);
    free(workers);
    return status;
}
