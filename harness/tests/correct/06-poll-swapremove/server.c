/*
 * chapter: 06
 * design: one thread, ppoll() on a doubling pollfd array, swap-remove, a 64 KiB ring per connection
 *
 * An echo server multiplexed with poll().  pfd[0] is the listener; pfd[i] and
 * conns[i] (i >= 1) describe one client.  Both arrays double when full, so the
 * only limit is the descriptor limit.  A closed client is replaced by the last
 * entry, so the arrays stay dense and poll() never scans holes.  Output that
 * the client cannot take yet waits in a 64 KiB ring; while it is full we stop
 * reading that client, so the kernel pushes back on it and memory stays flat.
 * SIGINT/SIGTERM are blocked except inside ppoll(), so a stop request can
 * only arrive while we sleep and always wakes us (no lost wake-up, no pipe).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define RING_SIZE 65536u        /* the contract's bound on pending output */
#define EMFILE_PAUSE_MS 100     /* long enough not to spin, short enough to recover */
#define ACCEPT_BURST 256        /* so a connection storm cannot starve the clients */

struct conn {
    unsigned char *ring;        /* allocated only while output is pending */
    size_t head, len;
    bool eof;                   /* the client shut down its side */
    char name[INET6_ADDRSTRLEN + 8];
};

static volatile sig_atomic_t g_stop;
static bool g_quiet, g_verbose;
static struct pollfd *pfd;
static struct conn *conns;
static size_t nfds, cap;
static unsigned long active;
static unsigned char scratch[RING_SIZE];

static const char usage_text[] =
    "usage: server [-p PORT] [-b ADDR] [-q] [-v] [-h]\n"
    "  -p PORT  port to listen on (default 8080, 0: any free port)\n"
    "  -b ADDR  IPv4 or IPv6 address to bind (default 127.0.0.1)\n"
    "  -q       no per-connection log lines\n"
    "  -v       also log what each client sends (printable characters)\n"
    "  -h       this help\n";

static void on_stop(int sig) { (void)sig; g_stop = 1; }

static __attribute__((noreturn)) void bad_usage(const char *what, const char *arg)
{
    fprintf(stderr, "server: %s%s%s\n%s", what, arg ? " " : "", arg ? arg : "", usage_text);
    exit(2);
}

static void format_addr(const struct sockaddr_storage *ss, char *out, size_t n)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
        snprintf(out, n, "[%s]:%u", ip, (unsigned)ntohs(a->sin6_port));
    } else {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
        snprintf(out, n, "%s:%u", ip, (unsigned)ntohs(a->sin_port));
    }
}

static void log_data(const struct conn *c, const unsigned char *p, size_t n)
{
    char text[201];
    size_t k = 0;
    for (size_t i = 0; i < n && k < sizeof text - 1; i++)
        if (isprint(p[i]))
            text[k++] = (char)p[i];
    text[k] = '\0';
    fprintf(stderr, "%s says: %s\n", c->name, text);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Send what the ring holds. Returns -1 only if the connection is dead. */
static int ring_flush(struct conn *c, int fd)
{
    while (c->len > 0) {
        size_t first = RING_SIZE - c->head;
        if (first > c->len)
            first = c->len;
        struct iovec iov[2] = {{c->ring + c->head, first}, {c->ring, c->len - first}};
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = first < c->len ? 2 : 1};
        ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
        }
        c->head = (c->head + (size_t)w) % RING_SIZE;
        c->len -= (size_t)w;
    }
    /* Give the 64 KiB back: thousands of idle clients must not each hold one. */
    free(c->ring);
    c->ring = NULL;
    c->head = 0;
    return 0;
}

/* One read, echoed at once; what the socket will not take goes to the ring.
 * Returns -1 if the connection is dead. */
static int conn_read(struct conn *c, int fd)
{
    ssize_t n;
    do
        n = recv(fd, scratch, RING_SIZE - c->len, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
    if (n == 0) {
        c->eof = true;
        return 0;
    }
    if (g_verbose && !g_quiet)
        log_data(c, scratch, (size_t)n);
    size_t off = 0;
    while (c->len == 0 && off < (size_t)n) {  /* ring empty: order allows a direct send */
        ssize_t w = send(fd, scratch + off, (size_t)n - off, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            return -1;
        }
        off += (size_t)w;
    }
    if (off == (size_t)n)
        return 0;
    if (!c->ring && !(c->ring = malloc(RING_SIZE)))
        return -1;
    for (size_t left = (size_t)n - off; left > 0;) {   /* at most two pieces */
        size_t tail = (c->head + c->len) % RING_SIZE;
        size_t k = RING_SIZE - tail < left ? RING_SIZE - tail : left;
        memcpy(c->ring + tail, scratch + off, k);
        c->len += k;
        off += k;
        left -= k;
    }
    return 0;
}

static short wanted_events(const struct conn *c)
{
    short ev = 0;
    if (!c->eof && c->len < RING_SIZE)
        ev |= POLLIN;
    if (c->len > 0)
        ev |= POLLOUT;   /* only now: an empty socket buffer is always writable */
    return ev;
}

/* Returns false when the connection must be closed. */
static bool conn_service(size_t i)
{
    struct conn *c = &conns[i];
    int fd = pfd[i].fd;
    short re = pfd[i].revents;
    /* POLLHUP on TCP means both directions are gone (we never shut ours):
     * nobody is left to echo to. */
    if (re & (POLLERR | POLLHUP | POLLNVAL))
        return false;
    if ((re & POLLOUT) && ring_flush(c, fd) < 0)
        return false;
    if ((re & POLLIN) && !c->eof && c->len < RING_SIZE && conn_read(c, fd) < 0)
        return false;
    if (c->eof && c->len == 0)
        return false;       /* half-close: everything went back, now we close */
    pfd[i].events = wanted_events(c);
    return true;
}

static void conn_close(size_t i)
{
    close(pfd[i].fd);
    active--;
    if (!g_quiet)
        fprintf(stderr, "- %s (%lu active)\n", conns[i].name, active);
    free(conns[i].ring);
    nfds--;
    pfd[i] = pfd[nfds];         /* swap-remove: the array stays dense */
    conns[i] = conns[nfds];
}

static bool grow(void)
{
    size_t ncap = cap * 2;
    struct pollfd *np = realloc(pfd, ncap * sizeof *np);
    if (!np)
        return false;
    pfd = np;
    struct conn *nc = realloc(conns, ncap * sizeof *nc);
    if (!nc)
        return false;       /* pfd is bigger than needed: harmless */
    conns = nc;
    cap = ncap;
    return true;
}

/* Returns the time to pause the listener (ms), 0 to keep accepting. */
static int accept_clients(int lfd)
{
    for (int burst = 0; burst < ACCEPT_BURST; burst++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            switch (errno) {
            case EAGAIN:
#if EWOULDBLOCK != EAGAIN
            case EWOULDBLOCK:
#endif
                return 0;
            case EINTR: case ECONNABORTED: case EPROTO: case EPERM:
            case ENETDOWN: case ENOPROTOOPT: case EHOSTDOWN: case ENONET:
            case EHOSTUNREACH: case EOPNOTSUPP: case ENETUNREACH:
                continue;   /* that client is gone; the next one may be fine */
            default:
                /* EMFILE, ENFILE, ENOBUFS, ENOMEM: the pending connection stays
                 * in the backlog and poll() would report it again at once. */
                if (!g_quiet)
                    fprintf(stderr, "server: accept: %s (pausing %d ms)\n",
                            strerror(errno), EMFILE_PAUSE_MS);
                return EMFILE_PAUSE_MS;
            }
        }
        if (nfds == cap && !grow()) {
            close(fd);
            return EMFILE_PAUSE_MS;
        }
        struct conn *c = &conns[nfds];
        memset(c, 0, sizeof *c);
        format_addr(&ss, c->name, sizeof c->name);
        pfd[nfds] = (struct pollfd){.fd = fd, .events = POLLIN};
        nfds++;
        active++;
        if (!g_quiet)
            fprintf(stderr, "+ %s (%lu active)\n", c->name, active);
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    const char *addr = "127.0.0.1";
    long port = 8080;
    int opt;
    opterr = 0;
    while ((opt = getopt(argc, argv, ":p:b:qvh")) != -1) {
        char optstr[3] = {'-', (char)optopt, '\0'};
        char *end;
        switch (opt) {
        case 'p':
            errno = 0;
            port = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || port < 0 || port > 65535)
                bad_usage("invalid port:", optarg);
            break;
        case 'b': addr = optarg; break;
        case 'q': g_quiet = true; break;
        case 'v': g_verbose = true; break;
        case 'h': fputs(usage_text, stdout); return 0;
        case ':': bad_usage("missing value for option", optstr);
        default: bad_usage("unknown option", optstr);
        }
    }
    if (optind < argc)
        bad_usage("unexpected argument:", argv[optind]);

    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    socklen_t alen;
    if (inet_pton(AF_INET, addr, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((unsigned short)port);
        alen = sizeof *a4;
    } else if (inet_pton(AF_INET6, addr, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((unsigned short)port);
        alen = sizeof *a6;
    } else {
        bad_usage("invalid address (IPv4 or IPv6 literal expected):", addr);
    }

    /* Block the stop signals first: from here on they can only be taken
     * inside ppoll(), which then returns EINTR and we see the flag. */
    sigset_t stopset, waitmask;
    sigemptyset(&stopset);
    sigaddset(&stopset, SIGINT);
    sigaddset(&stopset, SIGTERM);
    sigprocmask(SIG_BLOCK, &stopset, &waitmask);
    sigdelset(&waitmask, SIGINT);
    sigdelset(&waitmask, SIGTERM);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_stop;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = SIG_IGN;    /* a client that vanished must not kill us */
    sigaction(SIGPIPE, &sa, NULL);

    char where[INET6_ADDRSTRLEN + 8];
    format_addr(&ss, where, sizeof where);
    int lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0) {
        perror("server: socket");
        return 1;
    }
    int one = 1;    /* restart at once even with connections in TIME_WAIT */
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(lfd, (struct sockaddr *)&ss, alen) < 0) {
        fprintf(stderr, "server: bind %s: %s\n", where, strerror(errno));
        close(lfd);
        return 1;
    }
    if (listen(lfd, SOMAXCONN) < 0) {
        fprintf(stderr, "server: listen %s: %s\n", where, strerror(errno));
        close(lfd);
        return 1;
    }
    socklen_t sl = sizeof ss;
    getsockname(lfd, (struct sockaddr *)&ss, &sl);   /* the real port for -p 0 */
    format_addr(&ss, where, sizeof where);

    cap = 64;
    pfd = malloc(cap * sizeof *pfd);
    conns = malloc(cap * sizeof *conns);
    if (!pfd || !conns) {
        fputs("server: out of memory\n", stderr);
        return 1;
    }
    pfd[0] = (struct pollfd){.fd = lfd, .events = POLLIN};
    nfds = 1;
    printf("listening on %s\n", where);
    fflush(stdout);

    int status = 0;
    double resume_at = 0;       /* nonzero while the listener is paused */
    while (!g_stop) {
        struct timespec ts, *tsp = NULL;
        if (resume_at > 0) {
            double left = resume_at - now_ms();
            if (left <= 0) {
                resume_at = 0;
                pfd[0].events = POLLIN;
            } else {
                ts.tv_sec = (time_t)(left / 1e3);
                ts.tv_nsec = (long)((left - ts.tv_sec * 1e3) * 1e6);
                tsp = &ts;
            }
        }
        int r = ppoll(pfd, nfds, tsp, &waitmask);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            perror("server: ppoll");
            status = 1;
            break;
        }
        /* Backwards, so the entry swapped into a hole was already served. */
        for (size_t i = nfds - 1; i >= 1; i--)
            if (pfd[i].revents && !conn_service(i))
                conn_close(i);
        if (pfd[0].revents & POLLIN) {
            int pause = accept_clients(lfd);
            if (pause) {
                pfd[0].events = 0;      /* still in the array, just not asked */
                resume_at = now_ms() + pause;
            }
        }
    }

    close(lfd);                 /* stop accepting first */
    while (nfds > 1)
        conn_close(nfds - 1);
    free(pfd);
    free(conns);
    fputs("shutting down\n", stderr);
    return status;
}
