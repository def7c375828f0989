/*
 * chapter: 04
 * design: fixed pool of -w N blocking workers reading descriptors from a one-page pipe; poll() acceptor with signalfd; C11 atomic count; SHUT_RD stop
 *
 * The queue between the acceptor and the pool is a pipe shrunk to one page with F_SETPIPE_SZ:
 * each accepted descriptor travels as a 4-byte int, a write the kernel keeps whole, so the pipe
 * holds at most 1,024 waiting clients and needs no lock. The main thread is the acceptor: it
 * sleeps in poll() on the listener and on a signalfd (SIGINT and SIGTERM are blocked before any
 * thread exists). The write end of the pipe is non-blocking, so when the queue is full the
 * acceptor keeps the descriptor in hand and polls the pipe for room instead of the listener:
 * newcomers wait in the listen backlog and a stop signal is still seen at once. Each worker
 * blocks in read() on the pipe, echoes its client with one 4 KiB buffer (send completes before
 * the next recv, so at most 4 KiB of output is ever pending), then reads the pipe again; the pool
 * never grows. The active count is a C11 atomic: a connection is counted, and logged "+", when
 * it is accepted, so the count includes the clients still waiting in the queue; each log line
 * carries the value atomic_fetch_add/sub returned and goes out in one write(2). Peer addresses
 * live in a table indexed by descriptor, written before the descriptor enters the pipe and read
 * by the worker before it gives the count back. To stop, the acceptor closes the listener,
 * raises an atomic flag, shuts down the reading side of every client being served (each worker
 * publishes its client in an atomic slot of its own), then writes one -1 per worker into the
 * pipe; workers close and log the descriptors still queued ahead of the -1s without serving
 * them. A worker stuck sending to a client that never reads gets a full shutdown after a grace
 * period, so every thread is joined, and every connection logged "-", before "shutting down".
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_PORT 8080
#define DEFAULT_ADDR "127.0.0.1"
#define DEFAULT_WORKERS 8
#define MAX_WORKERS 1024
#define QUEUE_BYTES 4096        /* pipe capacity: 1,024 queued descriptors */
#define BUF_SIZE 4096           /* one echo buffer per worker */
#define PEER_LEN 56             /* "[" + INET6_ADDRSTRLEN + "]:65535" */
#define PEER_CHUNK 256          /* peer table entries allocated at a time */
#define GRACE_MS 750            /* SHUT_RD first, SHUT_RDWR after this */
#define BACKOFF_MS 100          /* accept pause when no spare descriptor */
#define STOP_FD (-1)

typedef struct { char text[PEER_LEN]; } peer_t;

static bool quiet, verbose;
static int nworkers = DEFAULT_WORKERS;
static int queue_rd = -1, queue_wr = -1;   /* the pipe: workers read, acceptor writes */
static atomic_int active;                  /* connections held, queued ones included */
static atomic_bool stopping;
static atomic_int *serving;                /* serving[i]: client of worker i, or -1 */
static peer_t **peer_dir;                  /* peer text by descriptor, in chunks */
static size_t peer_dir_len;
static int spare_fd = -1;                  /* /dev/null, given up to refuse on EMFILE */

static const char usage_text[] =
    "usage: server [-p PORT] [-b ADDR] [-q] [-v] [-w N] [-h]\n"
    "  -p port (default 8080; 0: any)   -b IPv4 or IPv6 address (default 127.0.0.1)\n"
    "  -q no connection log   -v log messages   -w pool threads (default 8)   -h help\n";

/* write(2) until done; EINTR retried, short writes completed. */
static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* One log line, formatted first and written with a single write(2). */
__attribute__((format(printf, 1, 2)))
static void say(const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof line) {
        n = sizeof line - 1;
        line[n - 1] = '\n';
    }
    (void)write_all(STDERR_FILENO, line, (size_t)n);   /* nowhere to report a lost log line */
}

static void warn_errno(const char *what, int err)
{
    char msg[128];
    say("server: %s: %s\n", what, strerror_r(err, msg, sizeof msg));
}

/* A bad command line: what is wrong on one line, then the usage; exit 2. */
__attribute__((noreturn))
static void bad_usage(const char *what, const char *arg)
{
    fprintf(stderr, "server: %s%s\n%s", what, arg, usage_text);
    exit(2);
}

/* Milliseconds from now to a CLOCK_MONOTONIC deadline, 0 if past. */
static int ms_left(const struct timespec *deadline)
{
    struct timespec now;
    if (clock_gettime(CLOCK_MONOTONIC, &now) != 0)
        return 0;
    long ms = (deadline->tv_sec - now.tv_sec) * 1000L
            + (deadline->tv_nsec - now.tv_nsec) / 1000000L;
    return ms > 0 ? (int)ms : 0;
}

/* The CLOCK_REALTIME time ms milliseconds from now, for pthread_timedjoin_np(). */
static struct timespec realtime_in(int ms)
{
    struct timespec ts = { 0 };
    if (clock_gettime(CLOCK_REALTIME, &ts) == 0) {
        ts.tv_sec += ms / 1000 + (ts.tv_nsec + (ms % 1000) * 1000000L) / 1000000000L;
        ts.tv_nsec = (ts.tv_nsec + (ms % 1000) * 1000000L) % 1000000000L;
    }
    return ts;
}

/* "1.2.3.4:80" or "[::1]:80" for an AF_INET or AF_INET6 address. */
static void format_addr(const struct sockaddr *sa, char *out, size_t len)
{
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
    bool v6 = sa->sa_family == AF_INET6;
    char host[INET6_ADDRSTRLEN];
    if (!inet_ntop(sa->sa_family, v6 ? (const void *)&s6->sin6_addr : (const void *)&s4->sin_addr,
                   host, sizeof host))
        strcpy(host, "?");
    snprintf(out, len, "%s%s%s:%u", v6 ? "[" : "", host, v6 ? "]" : "",
             (unsigned)ntohs(v6 ? s6->sin6_port : s4->sin_port));
}

/*
 * The peer text of a descriptor. Only the acceptor creates chunks and writes entries, before the
 * descriptor goes into the pipe; a worker reads its entry after taking the descriptor out, and
 * copies it before giving the count back (the acceptor takes the count before it writes an entry
 * again for a reused descriptor number).
 */
static char *peer_of(int fd, bool create)
{
    size_t k = (size_t)fd / PEER_CHUNK;
    if (fd < 0 || k >= peer_dir_len)
        return NULL;
    if (!peer_dir[k]) {
        if (!create || !(peer_dir[k] = calloc(PEER_CHUNK, sizeof(peer_t))))
            return NULL;
    }
    return peer_dir[k][(size_t)fd % PEER_CHUNK].text;
}

/* Closes a counted connection and logs it. */
static void drop(int fd, const char *peer)
{
    if (!peer)
        peer = "?";
    int n = atomic_fetch_sub(&active, 1) - 1;
    if (close(fd) != 0 && errno != EINTR)
        warn_errno("close", errno);
    if (!quiet)
        say("- %s (%d active)\n", peer, n);
}

/* Waits until fd is ready: only reached if a blocking socket reports EAGAIN anyway. */
static void await(int fd, short events)
{
    struct pollfd p = { .fd = fd, .events = events };
    while (poll(&p, 1, -1) < 0 && errno == EINTR)
        ;
}

static int send_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t w = send(fd, buf, len, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                await(fd, POLLOUT);
                continue;
            }
            return -1;              /* EPIPE, ECONNRESET...: this client only */
        }
        buf += w;
        len -= (size_t)w;
    }
    return 0;
}

static void show_message(const char *peer, const char *buf, size_t len)
{
    char line[PEER_LEN + BUF_SIZE + 8];
    int n = snprintf(line, sizeof line, "> %s: ", peer);
    size_t at = n > 0 ? (size_t)n : 0;
    for (size_t i = 0; i < len && at < sizeof line - 1; i++)
        if (buf[i] >= 0x20 && buf[i] < 0x7f)
            line[at++] = buf[i];
    line[at++] = '\n';
    (void)write_all(STDERR_FILENO, line, at);
}

/* Echo until the client's end of stream (or SHUT_RD at stop), then return. */
static void serve(int fd, const char *peer, char *buf)
{
    for (;;) {
        ssize_t n = recv(fd, buf, BUF_SIZE, 0);
        if (n > 0) {
            if (verbose)
                show_message(peer, buf, (size_t)n);
            if (send_all(fd, buf, (size_t)n) < 0)
                return;
        } else if (n == 0) {
            return;                 /* everything received has been echoed */
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            await(fd, POLLIN);
        } else if (errno != EINTR) {
            return;                 /* reset: ends this connection only */
        }
    }
}

/* Takes one int out of the pipe; false at end of file or on error. */
static bool dequeue(int *fd)
{
    char *p = (char *)fd;
    size_t got = 0;
    while (got < sizeof *fd) {
        ssize_t r = read(queue_rd, p + got, sizeof *fd - got);
        if (r > 0) {
            got += (size_t)r;
        } else if (r == 0) {
            return false;
        } else if (errno != EINTR) {
            warn_errno("queue read", errno);
            return false;
        }
    }
    return true;
}

static void *worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    char buf[BUF_SIZE];
    char peer[PEER_LEN];
    int fd;

    while (dequeue(&fd) && fd != STOP_FD) {
        const char *p = peer_of(fd, false);
        snprintf(peer, sizeof peer, "%s", p ? p : "?");
        /* Publish, then look at the flag; the acceptor raises the flag, then looks at the
         * slots: one of the two sees the other, so no client escapes the stop. */
        atomic_store(&serving[id], fd);
        if (!atomic_load(&stopping))
            serve(fd, peer, buf);
        atomic_store(&serving[id], -1);
        drop(fd, peer);             /* a client still queued at stop is closed unserved */
    }
    return NULL;
}

/* Puts a descriptor in the queue; false if the queue is full. */
static bool enqueue(int fd)
{
    for (;;) {
        ssize_t w = write(queue_wr, &fd, sizeof fd);
        if (w == (ssize_t)sizeof fd)
            return true;
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN)
            return false;
        warn_errno("queue write", w < 0 ? errno : EIO);   /* cannot happen: 4 < PIPE_BUF */
        exit(1);
    }
}

/*
 * Out of descriptors: free the spare, accept and close one client, take the spare back.
 * accept() reports EMFILE even when nothing is pending, so this returns false once the
 * backlog is empty, and the caller goes back to poll().
 */
static bool refuse_one(int listener)
{
    close(spare_fd);
    int c = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
    int err = errno;
    if (c >= 0) {
        close(c);
        say("server: out of descriptors: connection refused\n");
    }
    spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    return c >= 0 || err == EINTR || err == ECONNABORTED;
}

/*
 * Accepts while connections are pending and the queue has room. Returns a descriptor that
 * is counted but did not fit in the queue, or -1. Sets *backoff if accepting must pause.
 */
static int accept_some(int listener, bool *backoff)
{
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int fd = accept4(listener, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC);
        if (fd < 0) {
            switch (errno) {
            case EINTR: case ECONNABORTED: case EPROTO: case EPERM:
            case ENETDOWN: case ENOPROTOOPT: case EHOSTDOWN: case ENONET:
            case EHOSTUNREACH: case EOPNOTSUPP: case ENETUNREACH:
                continue;
            case EAGAIN:
                return -1;
            case EMFILE: case ENFILE:
                if (spare_fd >= 0) {
                    if (refuse_one(listener))
                        continue;
                    return -1;
                }
                *backoff = true;    /* no spare: wait for descriptors to come back */
                return -1;
            default:
                warn_errno("accept", errno);
                *backoff = true;
                return -1;
            }
        }
        char *peer = peer_of(fd, true);
        if (!peer) {
            say("server: no room for a peer address: connection refused\n");
            close(fd);
            continue;
        }
        int n = atomic_fetch_add(&active, 1) + 1;    /* before the entry is rewritten */
        format_addr((struct sockaddr *)&ss, peer, PEER_LEN);
        if (!quiet)
            say("+ %s (%d active)\n", peer, n);
        if (!enqueue(fd))
            return fd;
    }
}

/* The acceptor's loop; returns once SIGINT or SIGTERM arrives, with the descriptor in hand. */
static int accept_until_signal(int listener, int sigfd)
{
    int held = -1;
    bool backoff = false;

    for (;;) {
        struct pollfd pf[2] = { { .fd = sigfd, .events = POLLIN }, { .fd = -1 } };
        int timeout = -1;
        if (held >= 0)
            pf[1] = (struct pollfd){ .fd = queue_wr, .events = POLLOUT };
        else if (backoff)
            timeout = BACKOFF_MS;
        else
            pf[1] = (struct pollfd){ .fd = listener, .events = POLLIN };

        int r = poll(pf, 2, timeout);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            warn_errno("poll", errno);
            break;
        }
        if (pf[0].revents) {
            struct signalfd_siginfo si;
            if (read(sigfd, &si, sizeof si) < 0 && errno != EAGAIN && errno != EINTR)
                warn_errno("signalfd", errno);
            break;
        }
        if (r == 0) {               /* end of a pause */
            backoff = false;
            if (spare_fd < 0)
                spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
            continue;
        }
        if (held >= 0) {
            if (!enqueue(held))
                continue;
            held = -1;
        }
        held = accept_some(listener, &backoff);
    }
    return held;
}

/* Full shutdown of every client still being served: a blocked send() then fails. */
static void escalate(void)
{
    for (int i = 0; i < nworkers; i++) {
        int fd = atomic_load(&serving[i]);
        if (fd >= 0)
            (void)shutdown(fd, SHUT_RDWR);   /* ENOTCONN/EBADF: it has just finished */
    }
}

static void stop(int listener, int held, pthread_t *tids)
{
    if (close(listener) != 0)
        warn_errno("close", errno);
    if (held >= 0)
        drop(held, peer_of(held, false));

    atomic_store(&stopping, true);
    for (int i = 0; i < nworkers; i++) {
        int fd = atomic_load(&serving[i]);
        if (fd >= 0)
            (void)shutdown(fd, SHUT_RD);     /* the worker's recv() returns 0 */
    }

    struct timespec deadline = { 0 };
    if (clock_gettime(CLOCK_MONOTONIC, &deadline) == 0) {
        deadline.tv_nsec += GRACE_MS * 1000000L;
        deadline.tv_sec += deadline.tv_nsec / 1000000000L;
        deadline.tv_nsec %= 1000000000L;
    }
    bool escalated = false;
    /* One -1 per worker, behind the descriptors still queued: FIFO order lets the workers
     * close those first. The pipe may be full: wait for room, escalating at the deadline. */
    for (int sent = 0; sent < nworkers;) {
        if (enqueue(STOP_FD)) {
            sent++;
            continue;
        }
        struct pollfd p = { .fd = queue_wr, .events = POLLOUT };
        int r = poll(&p, 1, escalated ? -1 : ms_left(&deadline));
        if (!escalated && (r == 0 || (r < 0 && errno != EINTR))) {
            escalate();
            escalated = true;
        }
    }
    for (int i = 0; i < nworkers; i++) {
        /* pthread_timedjoin_np rather than pthread_clockjoin_np: ThreadSanitizer knows it. */
        struct timespec until = realtime_in(ms_left(&deadline));
        int e = escalated ? ETIMEDOUT : pthread_timedjoin_np(tids[i], NULL, &until);
        if (e == 0)
            continue;
        if (!escalated) {
            escalate();
            escalated = true;
        }
        if ((e = pthread_join(tids[i], NULL)) != 0)
            warn_errno("pthread_join", e);
    }

    /* Normally empty: the workers took every descriptor before their -1. */
    int avail = 0;
    if (ioctl(queue_rd, FIONREAD, &avail) == 0) {
        int fd;
        for (; avail >= (int)sizeof fd && dequeue(&fd); avail -= (int)sizeof fd)
            if (fd >= 0)
                drop(fd, peer_of(fd, false));
    }
}

static int open_listener(const struct addrinfo *ai)
{
    char where[PEER_LEN];
    format_addr(ai->ai_addr, where, sizeof where);
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        warn_errno("socket", errno);
        exit(1);
    }
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0)
        warn_errno("setsockopt SO_REUSEADDR", errno);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        char msg[128];
        fprintf(stderr, "server: bind %s: %s\n", where, strerror_r(errno, msg, sizeof msg));
        exit(1);
    }
    if (listen(fd, SOMAXCONN) != 0) {
        warn_errno("listen", errno);
        exit(1);
    }
    return fd;
}

static long parse_number(const char *s, long lo, long hi, const char *what)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        bad_usage(what, s);
    return v;
}

int main(int argc, char **argv)
{
    const char *addr = DEFAULT_ADDR;
    long port = DEFAULT_PORT;
    int opt;

    opterr = 0;
    while ((opt = getopt(argc, argv, ":p:b:qvw:h")) != -1) {
        switch (opt) {
        case 'p': port = parse_number(optarg, 0, 65535, "invalid port: "); break;
        case 'b': addr = optarg; break;
        case 'q': quiet = true; break;
        case 'v': verbose = true; break;
        case 'w': nworkers = (int)parse_number(optarg, 1, MAX_WORKERS, "invalid -w (1-1024): "); break;
        case 'h': fputs(usage_text, stdout); return 0;
        default: {              /* ':' for a missing value, '?' for an unknown option */
            char o[2] = { (char)optopt, 0 };
            bad_usage(opt == ':' ? "missing value for option -" : "unknown option -", o);
        }
        }
    }
    if (optind < argc)
        bad_usage("unexpected argument: ", argv[optind]);

    struct addrinfo hints = { .ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV,
                              .ai_socktype = SOCK_STREAM }, *ai;
    char service[8];
    snprintf(service, sizeof service, "%ld", port);
    if (getaddrinfo(addr, service, &hints, &ai) != 0)
        bad_usage("invalid address (an IPv4 or IPv6 literal): ", addr);

    /* Signals: SIGPIPE ignored; SIGINT and SIGTERM blocked in every thread, read by signalfd. */
    struct sigaction ign = { .sa_handler = SIG_IGN };
    sigset_t stops;
    sigemptyset(&stops);
    sigaddset(&stops, SIGINT);
    sigaddset(&stops, SIGTERM);
    int e = pthread_sigmask(SIG_BLOCK, &stops, NULL);
    if (sigaction(SIGPIPE, &ign, NULL) != 0 || e != 0) {
        warn_errno("signals", e ? e : errno);
        return 1;
    }
    int sigfd = signalfd(-1, &stops, SFD_CLOEXEC);
    if (sigfd < 0) {
        warn_errno("signalfd", errno);
        return 1;
    }

    int listener = open_listener(ai);
    freeaddrinfo(ai);

    int q[2];
    if (pipe2(q, O_CLOEXEC) != 0) {
        warn_errno("pipe", errno);
        return 1;
    }
    queue_rd = q[0];
    queue_wr = q[1];
    if (fcntl(queue_wr, F_SETPIPE_SZ, QUEUE_BYTES) < 0)
        warn_errno("F_SETPIPE_SZ (queue keeps the default size)", errno);
    if (fcntl(queue_wr, F_SETFL, O_NONBLOCK) != 0) {    /* the write end alone */
        warn_errno("fcntl O_NONBLOCK", errno);
        return 1;
    }

    struct rlimit rl;
    rlim_t maxfd = 1024;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        maxfd = rl.rlim_cur < ((rlim_t)1 << 24) ? rl.rlim_cur : ((rlim_t)1 << 24);
    peer_dir_len = ((size_t)maxfd + PEER_CHUNK - 1) / PEER_CHUNK;
    peer_dir = calloc(peer_dir_len, sizeof *peer_dir);
    serving = calloc((size_t)nworkers, sizeof *serving);
    pthread_t *tids = calloc((size_t)nworkers, sizeof *tids);
    if (!peer_dir || !serving || !tids) {
        say("server: out of memory\n");
        return 1;
    }
    for (int i = 0; i < nworkers; i++)
        atomic_init(&serving[i], -1);
    for (int i = 0; i < nworkers; i++) {
        if ((e = pthread_create(&tids[i], NULL, worker, (void *)(intptr_t)i)) != 0) {
            warn_errno("pthread_create", e);
            return 1;
        }
    }

    spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);   /* -1: pause instead on EMFILE */

    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char where[PEER_LEN];
    if (getsockname(listener, (struct sockaddr *)&ss, &len) != 0) {
        warn_errno("getsockname", errno);
        return 1;
    }
    format_addr((struct sockaddr *)&ss, where, sizeof where);
    if (printf("listening on %s\n", where) < 0 || fflush(stdout) != 0)
        warn_errno("stdout", errno);

    int held = accept_until_signal(listener, sigfd);
    stop(listener, held, tids);
    say("shutting down\n");

    close(queue_rd);
    close(queue_wr);
    close(sigfd);
    if (spare_fd >= 0)
        close(spare_fd);
    for (size_t k = 0; k < peer_dir_len; k++)
        free(peer_dir[k]);
    free(peer_dir);
    free(serving);
    free(tids);
    return 0;
}
