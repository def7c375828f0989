/*
 * chapter: 06
 * design: one thread, poll() over a slot table with holes and a free list; stop via eventfd in the table; chunked output queue; MSG_NOSIGNAL; EMFILE pause by deadline
 *
 * Everything runs in one thread around poll(). Slot 0 of the pollfd array is
 * an eventfd that the SIGINT/SIGTERM handler writes to (write(2) is async-
 * signal-safe), so a stop wakes poll() at once and cannot be lost between two
 * calls; slot 1 is the listening socket. A client's slot is never moved while
 * it lives: when it closes, its fd becomes -1, which poll() skips, and its
 * index goes on a stack of free slots that later connections reuse. With no
 * slot free the table grows by half; with more than half of it holes, it is
 * compacted (live entries slide down, the tail is trimmed), between two polls,
 * never while the results of one are being walked. poll() sees the table only
 * up to the highest slot taken, which keeps nfds within the descriptor limit.
 * Echoed bytes the socket will not take at once wait in a list of chunks of
 * at most 16 KiB; a client never has more than 64 KiB pending, because the
 * server reads only what fits under that bound and stops polling the client
 * for input until it drains. SIGPIPE keeps its default action: every send()
 * says MSG_NOSIGNAL. When accept() runs out of descriptors the listener stays
 * in the table with events = 0 for 100 ms (the poll timeout is computed from
 * that deadline), then accepting is tried again.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CHUNK_SIZE   (16 * 1024)  /* largest chunk of pending output */
#define PENDING_MAX  (64 * 1024)  /* contract: pending output per client */
#define TABLE_MIN    16           /* the slot table never shrinks below this */
#define ACCEPT_BURST 64           /* accepts per wake-up, for fairness */
#define EMFILE_PAUSE_NS (100L * 1000 * 1000)
#define ADDR_LEN     64
#define SLOT_STOP    0
#define SLOT_LISTEN  1

static const char usage_line[] = "usage: server [-p PORT] [-b ADDR] [-q] [-v] [-h]\n";

struct chunk {
    struct chunk *next;
    size_t start, end;          /* unsent bytes are data[start..end) */
    char data[CHUNK_SIZE];
};

struct conn {
    int fd;
    bool rd_eof;                /* the peer has shut down its writing side */
    size_t pending;             /* bytes queued in the chunk list */
    struct chunk *head, *tail;
    char peer[ADDR_LEN];
};

struct table {
    struct pollfd *pfd;         /* the first top entries are handed to poll() */
    struct conn **conn;         /* conn[i] belongs to pfd[i]; NULL for a hole */
    size_t *free;               /* stack of holes */
    size_t cap, nfree;
    size_t top;                 /* 1 + the highest slot taken since compaction */
};
/*
 * poll() fails with EINVAL when nfds exceeds RLIMIT_NOFILE, so only the first
 * top slots are polled, never the whole array. Tail holes (from growth or
 * compaction) are pushed lowest on top and taken only when no other hole is
 * free, so when slot k is first taken every slot below it is live: top is at
 * most the number of descriptors open at that moment.
 */

static volatile sig_atomic_t stop_fd = -1;
static bool quiet, verbose;
static unsigned long active;
static char iobuf[CHUNK_SIZE];

static void on_stop(int sig)
{
    int saved = errno;
    uint64_t one = 1;
    ssize_t r = write(stop_fd, &one, sizeof one);  /* EAGAIN: already pending */
    (void)r;
    (void)sig;
    errno = saved;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

static void format_addr(const struct sockaddr_storage *ss, char *out, size_t len)
{
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
    bool v6 = ss->ss_family == AF_INET6;
    char host[INET6_ADDRSTRLEN];
    if (!inet_ntop(ss->ss_family, v6 ? (const void *)&s6->sin6_addr : (const void *)&s4->sin_addr,
                   host, sizeof host))
        strcpy(host, "?");
    snprintf(out, len, v6 ? "[%s]:%u" : "%s:%u", host,
             (unsigned)ntohs(v6 ? s6->sin6_port : s4->sin_port));
}

static int64_t now_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
        return 0;               /* cannot happen with CLOCK_MONOTONIC */
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- the slot table ---------------------------------------------------- */

static void push_free(struct table *t, size_t slot)
{
    t->pfd[slot] = (struct pollfd){ .fd = -1, .events = 0, .revents = 0 };
    t->conn[slot] = NULL;
    t->free[t->nfree++] = slot;
}

/* Mark slots [from, to) as holes, pushed so that the lowest pops first. */
static void add_holes(struct table *t, size_t from, size_t to)
{
    for (size_t i = to; i-- > from; )
        push_free(t, i);
}

static int table_resize(struct table *t, size_t cap)
{
    struct pollfd *p = realloc(t->pfd, cap * sizeof *p);
    if (!p)
        return -1;
    t->pfd = p;
    struct conn **c = realloc(t->conn, cap * sizeof *c);
    if (!c)
        return -1;
    t->conn = c;
    size_t *f = realloc(t->free, cap * sizeof *f);
    if (!f)
        return -1;
    t->free = f;
    return 0;
}

/* A free slot for a new connection, growing the table by half if needed. */
static int table_take(struct table *t, size_t *slot)
{
    if (t->nfree == 0) {
        size_t old = t->cap, cap = old + old / 2;
        if (table_resize(t, cap) < 0)
            return -1;          /* arrays may be larger; cap is unchanged */
        t->cap = cap;
        add_holes(t, old, cap);
    }
    *slot = t->free[--t->nfree];
    if (*slot >= t->top)
        t->top = *slot + 1;
    return 0;
}

/* Only between polls: slide the live entries down, trim the tail. */
static void table_compact(struct table *t)
{
    if (t->cap <= TABLE_MIN || t->nfree <= t->cap / 2)
        return;
    size_t live = 0;
    for (size_t i = 0; i < t->top; i++) {
        if (t->pfd[i].fd == -1)
            continue;
        t->pfd[live] = t->pfd[i];
        t->conn[live] = t->conn[i];
        live++;
    }
    size_t cap = live + live / 2;
    if (cap < TABLE_MIN)
        cap = TABLE_MIN;
    if (cap < t->cap)
        (void)table_resize(t, cap);  /* a failed shrink keeps bigger arrays */
    else
        cap = t->cap;
    t->cap = cap;
    t->top = live;
    t->nfree = 0;
    add_holes(t, live, cap);
}

/* ---- connections ------------------------------------------------------- */

static int enqueue(struct conn *c, const char *p, size_t n)
{
    while (n > 0) {
        if (!c->tail || c->tail->end == CHUNK_SIZE) {
            struct chunk *k = malloc(sizeof *k);
            if (!k)
                return -1;
            k->next = NULL;
            k->start = k->end = 0;
            if (c->tail)
                c->tail->next = k;
            else
                c->head = k;
            c->tail = k;
        }
        size_t room = CHUNK_SIZE - c->tail->end;
        size_t take = n < room ? n : room;
        memcpy(c->tail->data + c->tail->end, p, take);
        c->tail->end += take;
        c->pending += take;
        p += take;
        n -= take;
    }
    return 0;
}

/* Send what the socket takes. 0: fine (maybe still pending); -1: close it. */
static int flush(struct conn *c)
{
    while (c->head) {
        struct chunk *k = c->head;
        ssize_t n = send(c->fd, k->data + k->start, k->end - k->start, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
        }
        k->start += (size_t)n;
        c->pending -= (size_t)n;
        if (k->start == k->end) {
            c->head = k->next;
            if (!c->head)
                c->tail = NULL;
            free(k);
        }
    }
    return 0;
}

static void log_message(const struct conn *c, const char *p, size_t n)
{
    char shown[CHUNK_SIZE];
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (isprint((unsigned char)p[i]))
            shown[m++] = p[i];
    say("< %s: %.*s\n", c->peer, (int)m, shown);
}

/* One recv(), at most what fits under PENDING_MAX, then echo. -1: close. */
static int conn_read(struct conn *c)
{
    size_t room = PENDING_MAX - c->pending;
    if (room > sizeof iobuf)
        room = sizeof iobuf;
    ssize_t n;
    do
        n = recv(c->fd, iobuf, room, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
    if (n == 0) {
        c->rd_eof = true;
        return 0;
    }
    if (verbose)
        log_message(c, iobuf, (size_t)n);
    if (enqueue(c, iobuf, (size_t)n) < 0)
        return -1;
    return flush(c);
}

static void conn_close(struct table *t, size_t slot)
{
    struct conn *c = t->conn[slot];
    if (close(c->fd) < 0 && errno != EINTR)
        perror("server: close");
    while (c->head) {
        struct chunk *k = c->head;
        c->head = k->next;
        free(k);
    }
    active--;
    if (!quiet)
        say("- %s (%lu active)\n", c->peer, active);
    free(c);
    push_free(t, slot);
}

/* Poll for input while there is room for its echo, for output while any waits. */
static void conn_arm(struct table *t, size_t slot)
{
    const struct conn *c = t->conn[slot];
    short ev = 0;
    if (!c->rd_eof && c->pending < PENDING_MAX)
        ev |= POLLIN;
    if (c->pending > 0)
        ev |= POLLOUT;
    t->pfd[slot].events = ev;
}

static void conn_event(struct table *t, size_t slot, short rev)
{
    struct conn *c = t->conn[slot];
    int rc = 0;
    if (rev & POLLNVAL)
        rc = -1;
    if (rc == 0 && (t->pfd[slot].events & POLLIN) && (rev & (POLLIN | POLLHUP | POLLERR)))
        rc = conn_read(c);
    if (rc == 0 && c->pending > 0 && (rev & (POLLOUT | POLLHUP | POLLERR)))
        rc = flush(c);
    if (rc < 0 || (c->rd_eof && c->pending == 0))
        conn_close(t, slot);
    else
        conn_arm(t, slot);
}

/* Accept a burst. false: out of descriptors or memory, pause the listener. */
static bool accept_some(struct table *t, int lfd)
{
    for (int i = 0; i < ACCEPT_BURST; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            switch (errno) {
            case EAGAIN:
                return true;    /* the backlog is empty */
            case EINTR: case ECONNABORTED: case EPROTO: case EPERM:
            case ENETDOWN: case ENETUNREACH: case EHOSTDOWN: case EHOSTUNREACH:
            case ENONET: case ENOPROTOOPT: case EOPNOTSUPP:
                continue;       /* that connection is gone; try the next */
            case EMFILE: case ENFILE: case ENOBUFS: case ENOMEM:
                return false;
            default:            /* unexpected: pause too rather than spin */
                perror("server: accept");
                return false;
            }
        }
        struct conn *c = calloc(1, sizeof *c);
        size_t slot;
        if (!c || table_take(t, &slot) < 0) {
            free(c);
            if (close(fd) < 0 && errno != EINTR)
                perror("server: close");
            return false;
        }
        c->fd = fd;
        format_addr(&ss, c->peer, sizeof c->peer);
        t->conn[slot] = c;
        t->pfd[slot] = (struct pollfd){ .fd = fd, .events = POLLIN, .revents = 0 };
        active++;
        if (!quiet)
            say("+ %s (%lu active)\n", c->peer, active);
    }
    return true;
}

/* ---- set-up ------------------------------------------------------------ */

static void bad_usage(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void bad_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("server: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n", stderr);
    fputs(usage_line, stderr);
    exit(2);
}

static int open_listener(const char *addr, unsigned port)
{
    struct sockaddr_storage ss;
    socklen_t len;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        len = sizeof *s4;
    } else if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        len = sizeof *s6;
    } else {
        bad_usage("-b: not an IPv4 or IPv6 address: %s", addr);
    }
    char shown[ADDR_LEN];
    format_addr(&ss, shown, sizeof shown);

    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        perror("server: socket");
        return -1;
    }
    int on = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0)
        perror("server: setsockopt SO_REUSEADDR");
    if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
        fprintf(stderr, "server: bind %s: %s\n", shown, strerror(errno));
        close(fd);
        return -1;
    }
    if (listen(fd, SOMAXCONN) < 0) {
        fprintf(stderr, "server: listen %s: %s\n", shown, strerror(errno));
        close(fd);
        return -1;
    }
    len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
        perror("server: getsockname");
        close(fd);
        return -1;
    }
    format_addr(&ss, shown, sizeof shown);
    if (printf("listening on %s\n", shown) < 0 || fflush(stdout) == EOF) {
        perror("server: stdout");
        close(fd);
        return -1;
    }
    return fd;
}

/* poll() has no cap of its own: let the descriptor limit be the only one. */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
        return;
    rl.rlim_cur = rl.rlim_max;
    (void)setrlimit(RLIMIT_NOFILE, &rl);  /* fails for RLIM_INFINITY: keep it */
}

int main(int argc, char **argv)
{
    const char *addr = "127.0.0.1";
    unsigned port = 8080;
    int opt;

    opterr = 0;
    while ((opt = getopt(argc, argv, ":p:b:qvh")) != -1) {
        switch (opt) {
        case 'p': {
            char *end;
            errno = 0;
            long v = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || v < 0 || v > 65535)
                bad_usage("-p: not a port number: %s", optarg);
            port = (unsigned)v;
            break;
        }
        case 'b': addr = optarg; break;
        case 'q': quiet = true; break;
        case 'v': verbose = true; break;
        case 'h': fputs(usage_line, stdout); return 0;
        case ':': bad_usage("option -%c needs a value", optopt);
        default: bad_usage("unknown option -%c", optopt);
        }
    }
    if (optind < argc)
        bad_usage("unexpected argument: %s", argv[optind]);

    raise_nofile();
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (efd < 0) {
        perror("server: eventfd");
        return 1;
    }
    stop_fd = efd;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0) {
        perror("server: sigaction");
        return 1;
    }

    int lfd = open_listener(addr, port);
    if (lfd < 0)
        return 1;

    struct table t = { 0 };
    if (table_resize(&t, TABLE_MIN) < 0) {
        perror("server: malloc");
        return 1;
    }
    t.cap = TABLE_MIN;
    t.top = 2;
    add_holes(&t, 2, TABLE_MIN);
    t.pfd[SLOT_STOP] = (struct pollfd){ .fd = efd, .events = POLLIN };
    t.pfd[SLOT_LISTEN] = (struct pollfd){ .fd = lfd, .events = POLLIN };
    t.conn[SLOT_STOP] = t.conn[SLOT_LISTEN] = NULL;

    int status = 0;
    bool paused = false;
    int64_t resume_at = 0;
    for (;;) {
        int timeout = -1;
        if (paused) {
            int64_t left = resume_at - now_ns();
            if (left <= 0) {
                paused = false;
                t.pfd[SLOT_LISTEN].events = POLLIN;
            } else {
                timeout = (int)((left + 999999) / 1000000);
            }
        }
        int ready = poll(t.pfd, (nfds_t)t.top, timeout);
        if (ready < 0) {
            if (errno == EINTR)
                continue;
            perror("server: poll");
            status = 1;
            break;
        }
        if (t.pfd[SLOT_STOP].revents)
            break;              /* a stop signal; nothing else matters now */
        short lrev = t.pfd[SLOT_LISTEN].revents;
        if (lrev)
            ready--;
        for (size_t i = 2; i < t.top && ready > 0; i++) {
            short rev = t.pfd[i].revents;
            if (rev == 0 || t.pfd[i].fd == -1)
                continue;
            ready--;
            conn_event(&t, i, rev);
        }
        if (lrev & POLLIN) {
            if (!accept_some(&t, lfd)) {
                paused = true;  /* out of descriptors: no polling, no spinning */
                resume_at = now_ns() + EMFILE_PAUSE_NS;
                t.pfd[SLOT_LISTEN].events = 0;
            }
        }
        table_compact(&t);
    }

    /* Stop: no more accepts, then every connection closed and logged. */
    if (close(lfd) < 0 && errno != EINTR)
        perror("server: close");
    for (size_t i = 2; i < t.top; i++)
        if (t.conn[i])
            conn_close(&t, i);
    fputs("shutting down\n", stderr);
    free(t.pfd);
    free(t.conn);
    free(t.free);
    if (close(efd) < 0 && errno != EINTR)
        perror("server: close");
    return status;
}
