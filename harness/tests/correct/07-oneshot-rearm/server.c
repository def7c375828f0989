/*
 * chapter: 07
 * design: epoll LT (ET with -e), clients in EPOLLONESHOT re-armed by EPOLL_CTL_MOD, fd-indexed growing table, self-pipe for signals, lazy 64 KiB output ring, EMFILE pause via timerfd
 *
 * A single thread runs one epoll loop. Each client is registered with
 * EPOLLONESHOT: a report disables it until its handler, done, re-arms it with
 * EPOLL_CTL_MOD for what it needs next: EPOLLIN while its peer may still send
 * and its ring has room, EPOLLOUT while output is pending, plus EPOLLET under
 * -e, where reads go on until EAGAIN, EOF or a full ring, and writes until
 * EAGAIN or nothing is left. EPOLL_CTL_MOD re-examines the socket, so readiness
 * that arrived while it was disarmed is reported even edge-triggered, and a
 * client whose 64 KiB ring is full, armed for EPOLLOUT only, is read again once
 * it has drained some. Rings exist only while output is pending, so 10,000
 * idle clients cost a small record each, in a table indexed by descriptor that
 * doubles as needed. SIGINT and SIGTERM write a byte into a self-pipe in the
 * set; the loop then closes the listener and every connection (logged) before
 * "shutting down". SIGPIPE is ignored. When accept() runs out of descriptors,
 * the listener leaves the set and a timerfd puts it back 100 ms later: no
 * spinning. stderr is buffered and flushed before each epoll_wait().
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#define RING_SIZE (64 * 1024)   /* bound on pending output per client */
#define MAX_EVENTS 256
#define ACCEPT_PAUSE_NS (100 * 1000 * 1000L)
#define LT_ACCEPT_BATCH 64      /* level-triggered: the listener will fire again */
#define VERBOSE_SHOW 64         /* bytes of each message shown by -v */
#define ADDR_LEN (INET6_ADDRSTRLEN + 8)

union addr {                    /* one socket address, seen through each type */
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
    struct sockaddr_storage ss;
};

struct conn {
    int fd;
    bool eof;                   /* the peer has shut down its writing side */
    char *ring;                 /* RING_SIZE bytes while output is pending, else NULL */
    size_t head;                /* offset of the oldest pending byte */
    size_t len;                 /* pending bytes */
    char peer[ADDR_LEN];
};

static struct {
    int ep, lfd, tfd, sig_r;
    bool edge, quiet, verbose;
    bool paused;                /* listener out of the set until the timer fires */
    bool starved;               /* said so already; quiet until an accept succeeds */
    bool running, failed;
    struct conn **tab;          /* indexed by descriptor */
    size_t cap;
    unsigned long active;
} srv = { .ep = -1, .lfd = -1, .tfd = -1, .sig_r = -1 };

static volatile sig_atomic_t sig_w = -1;
static char errbuf[1 << 16];

static void on_stop_signal(int signo)
{
    (void)signo;
    int saved = errno;
    char b = 1;
    ssize_t r = write(sig_w, &b, 1);    /* a full pipe already says "stop" */
    (void)r;
    errno = saved;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: server [-p PORT] [-b ADDR] [-q] [-v] [-e] [-h]\n"
            "  -p PORT  port to listen on (default 8080, 0: chosen by the kernel)\n"
            "  -b ADDR  IPv4 or IPv6 literal to bind (default 127.0.0.1)\n"
            "  -q       quiet: no per-connection log lines\n"
            "  -v       verbose: log every message received\n"
            "  -e       edge-triggered epoll (default: level-triggered)\n"
            "  -h       this help\n");
}

__attribute__((noreturn, format(printf, 1, 2)))
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

__attribute__((noreturn))
static void start_failure(const char *what)
{
    fprintf(stderr, "server: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void format_addr(const union addr *a, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "?";
    if (a->sa.sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &a->in6.sin6_addr, host, sizeof host);
        snprintf(buf, len, "[%s]:%u", host, (unsigned)ntohs(a->in6.sin6_port));
    } else {
        inet_ntop(AF_INET, &a->in.sin_addr, host, sizeof host);
        snprintf(buf, len, "%s:%u", host, (unsigned)ntohs(a->in.sin_port));
    }
}

/* An epoll or timer call on our own descriptors failed: stop, exit 1. */
static void loop_failure(const char *what)
{
    fprintf(stderr, "server: %s: %s\n", what, strerror(errno));
    srv.failed = true;
    srv.running = false;
}

static int epoll_set(int op, int fd, uint32_t events)
{
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = events;
    ev.data.fd = fd;
    return epoll_ctl(srv.ep, op, fd, &ev);
}

static uint32_t listener_events(void)
{
    return EPOLLIN | (srv.edge ? EPOLLET : 0);
}

/* ---- the table of connections ---------------------------------------- */

static int table_reserve(int fd)
{
    if ((size_t)fd < srv.cap)
        return 0;
    size_t ncap = srv.cap ? srv.cap : 64;
    while (ncap <= (size_t)fd)
        ncap *= 2;
    struct conn **t = realloc(srv.tab, ncap * sizeof *t);
    if (!t)
        return -1;
    memset(t + srv.cap, 0, (ncap - srv.cap) * sizeof *t);
    srv.tab = t;
    srv.cap = ncap;
    return 0;
}

static void conn_close(struct conn *c)
{
    if (close(c->fd) < 0 && errno != EINTR)
        fprintf(stderr, "close %s: %s\n", c->peer, strerror(errno));
    srv.tab[c->fd] = NULL;
    srv.active--;
    if (!srv.quiet)
        fprintf(stderr, "- %s (%lu active)\n", c->peer, srv.active);
    free(c->ring);
    free(c);
}

/* ---- reading and writing ---------------------------------------------- */

static void show_message(const struct conn *c, const char *p, size_t n)
{
    fprintf(stderr, "recv %s: %zu bytes \"", c->peer, n);
    for (size_t i = 0; i < n && i < VERBOSE_SHOW; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch == '\n')
            fputs("\\n", stderr);
        else if (ch == '\\' || ch == '"')
            fprintf(stderr, "\\%c", ch);
        else if (isprint(ch))
            fputc(ch, stderr);
        else
            fprintf(stderr, "\\x%02x", ch);
    }
    fputs(n > VERBOSE_SHOW ? "\"...\n" : "\"\n", stderr);
}

/* Fill the ring from the socket. Returns -1 if the connection must end. */
static int conn_read(struct conn *c)
{
    while (!c->eof && c->len < RING_SIZE) {
        if (!c->ring) {
            c->ring = malloc(RING_SIZE);
            if (!c->ring) {
                fprintf(stderr, "%s: out of memory\n", c->peer);
                return -1;
            }
            c->head = 0;
        }
        size_t tail = (c->head + c->len) % RING_SIZE;
        size_t room = RING_SIZE - tail;             /* contiguous free bytes */
        if (room > RING_SIZE - c->len)
            room = RING_SIZE - c->len;
        ssize_t n = recv(c->fd, c->ring + tail, room, 0);
        if (n > 0) {
            if (srv.verbose)
                show_message(c, c->ring + tail, (size_t)n);
            c->len += (size_t)n;
            if (!srv.edge)
                break;                  /* level-triggered: one read per event */
        } else if (n == 0) {
            c->eof = true;
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            break;
        } else {
            if (errno != ECONNRESET)
                fprintf(stderr, "recv %s: %s\n", c->peer, strerror(errno));
            return -1;
        }
    }
    return 0;
}

/* Send what the ring holds until it is empty or the socket is full. */
static int conn_write(struct conn *c)
{
    while (c->len > 0) {
        size_t chunk = RING_SIZE - c->head;
        if (chunk > c->len)
            chunk = c->len;
        ssize_t n = send(c->fd, c->ring + c->head, chunk, MSG_NOSIGNAL);
        if (n > 0) {
            c->head = (c->head + (size_t)n) % RING_SIZE;
            c->len -= (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n == 0 || errno == EAGAIN || errno == EWOULDBLOCK) {
            break;
        } else {
            if (errno != EPIPE && errno != ECONNRESET)
                fprintf(stderr, "send %s: %s\n", c->peer, strerror(errno));
            return -1;
        }
    }
    return 0;
}

/* Arm the descriptor again for what the connection needs now, or end it. */
static void conn_rearm(struct conn *c)
{
    if (c->len == 0) {                  /* nothing pending: give the ring back */
        free(c->ring);
        c->ring = NULL;
        c->head = 0;
    }
    uint32_t want = 0;
    if (!c->eof && c->len < RING_SIZE)
        want |= EPOLLIN;
    if (c->len > 0)
        want |= EPOLLOUT;
    if (want == 0) {                    /* half-closed and fully echoed */
        conn_close(c);
        return;
    }
    want |= EPOLLONESHOT | (srv.edge ? EPOLLET : 0);
    if (epoll_set(EPOLL_CTL_MOD, c->fd, want) < 0) {
        fprintf(stderr, "epoll_ctl MOD %s: %s\n", c->peer, strerror(errno));
        conn_close(c);
    }
}

static void handle_client(int fd, uint32_t events)
{
    struct conn *c = (size_t)fd < srv.cap ? srv.tab[fd] : NULL;
    if (!c)
        return;
    /* We never shut down our own side, so HUP means reset or gone. */
    if ((events & (EPOLLERR | EPOLLHUP)) ||
        ((events & EPOLLIN) && conn_read(c) < 0) ||
        (c->len > 0 && conn_write(c) < 0))
        conn_close(c);
    else
        conn_rearm(c);
}

/* ---- accepting -------------------------------------------------------- */

static void pause_accept(int err)
{
    if (srv.paused)
        return;
    if (!srv.starved)
        fprintf(stderr, "accept: %s: retrying every 100 ms\n", strerror(err));
    srv.starved = true;
    struct itimerspec its;
    memset(&its, 0, sizeof its);
    its.it_value.tv_nsec = ACCEPT_PAUSE_NS;
    if (epoll_ctl(srv.ep, EPOLL_CTL_DEL, srv.lfd, NULL) < 0 ||
        timerfd_settime(srv.tfd, 0, &its, NULL) < 0) {
        loop_failure("pausing accept");
        return;
    }
    srv.paused = true;
}

static void resume_accept(void)
{
    uint64_t expirations;
    ssize_t r;
    do
        r = read(srv.tfd, &expirations, sizeof expirations);
    while (r < 0 && errno == EINTR);
    if (r < 0 && errno != EAGAIN) {
        loop_failure("read timerfd");
        return;
    }
    if (!srv.paused)
        return;
    if (epoll_set(EPOLL_CTL_ADD, srv.lfd, listener_events()) < 0)
        loop_failure("epoll_ctl ADD listener");
    else
        srv.paused = false;
}

static void add_client(int fd, const union addr *a)
{
    char peer[ADDR_LEN];
    format_addr(a, peer, sizeof peer);
    struct conn *c = NULL;
    if (table_reserve(fd) < 0 || !(c = calloc(1, sizeof *c))) {
        fprintf(stderr, "refused %s: out of memory\n", peer);
        close(fd);
        return;
    }
    c->fd = fd;
    memcpy(c->peer, peer, sizeof peer);
    uint32_t ev = EPOLLIN | EPOLLONESHOT | (srv.edge ? EPOLLET : 0);
    if (epoll_set(EPOLL_CTL_ADD, fd, ev) < 0) {
        fprintf(stderr, "refused %s: epoll_ctl: %s\n", peer, strerror(errno));
        free(c);
        close(fd);
        return;
    }
    srv.tab[fd] = c;
    srv.active++;
    if (!srv.quiet)
        fprintf(stderr, "+ %s (%lu active)\n", peer, srv.active);
}

static void accept_clients(void)
{
    for (int i = 0; srv.edge || i < LT_ACCEPT_BATCH; i++) {
        union addr a;
        socklen_t sl = sizeof a;
        int fd = accept4(srv.lfd, &a.sa, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            srv.starved = false;
            add_client(fd, &a);
            continue;
        }
        switch (errno) {
        case EAGAIN:
#if EWOULDBLOCK != EAGAIN
        case EWOULDBLOCK:
#endif
            return;
        case EINTR:
        case ECONNABORTED:              /* gone before we took it */
        case EPROTO:
            continue;
        default:                        /* EMFILE, ENFILE, ENOBUFS, ENOMEM, ... */
            pause_accept(errno);
            return;
        }
    }
}

/* ---- start and stop --------------------------------------------------- */

static int open_listener(const char *addr, long port)
{
    union addr a;
    memset(&a, 0, sizeof a);
    socklen_t sl;
    if (inet_pton(AF_INET, addr, &a.in.sin_addr) == 1) {
        a.in.sin_family = AF_INET;
        a.in.sin_port = htons((uint16_t)port);
        sl = sizeof a.in;
    } else if (inet_pton(AF_INET6, addr, &a.in6.sin6_addr) == 1) {
        a.in6.sin6_family = AF_INET6;
        a.in6.sin6_port = htons((uint16_t)port);
        sl = sizeof a.in6;
    } else {
        bad_usage("bad address '%s' (an IPv4 or IPv6 literal)", addr);
    }
    char where[ADDR_LEN];
    format_addr(&a, where, sizeof where);

    int fd = socket(a.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        start_failure("socket");
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        start_failure("setsockopt SO_REUSEADDR");
    if (bind(fd, &a.sa, sl) < 0) {
        fprintf(stderr, "server: bind %s: %s\n", where, strerror(errno));
        exit(1);
    }
    if (listen(fd, SOMAXCONN) < 0) {
        fprintf(stderr, "server: listen %s: %s\n", where, strerror(errno));
        exit(1);
    }
    return fd;
}

static void setup(const char *addr, long port)
{
    int sp[2];
    if (pipe2(sp, O_NONBLOCK | O_CLOEXEC) < 0)
        start_failure("pipe");
    srv.sig_r = sp[0];
    sig_w = sp[1];

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    if (sigaction(SIGPIPE, &sa, NULL) < 0)
        start_failure("sigaction SIGPIPE");
    sa.sa_handler = on_stop_signal;
    sa.sa_flags = SA_RESTART;           /* epoll_wait() still returns EINTR */
    sigfillset(&sa.sa_mask);
    if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0)
        start_failure("sigaction");

    srv.lfd = open_listener(addr, port);
    if ((srv.ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
        start_failure("epoll_create1");
    if ((srv.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)) < 0)
        start_failure("timerfd_create");
    if (epoll_set(EPOLL_CTL_ADD, srv.sig_r, EPOLLIN) < 0 ||
        epoll_set(EPOLL_CTL_ADD, srv.tfd, EPOLLIN) < 0 ||
        epoll_set(EPOLL_CTL_ADD, srv.lfd, listener_events()) < 0)
        start_failure("epoll_ctl");

    union addr a;
    socklen_t sl = sizeof a;
    if (getsockname(srv.lfd, &a.sa, &sl) < 0)
        start_failure("getsockname");
    char where[ADDR_LEN];
    format_addr(&a, where, sizeof where);
    printf("listening on %s\n", where);
    fflush(stdout);
}

static void run(void)
{
    struct epoll_event evs[MAX_EVENTS];
    srv.running = true;
    while (srv.running) {
        fflush(stderr);
        int n = epoll_wait(srv.ep, evs, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            loop_failure("epoll_wait");
            break;
        }
        for (int i = 0; i < n && srv.running; i++) {
            int fd = evs[i].data.fd;
            if (fd == srv.sig_r)
                srv.running = false;    /* a stop signal: the pipe dies with us */
            else if (fd == srv.lfd)
                accept_clients();       /* a paused listener is not in the set */
            else if (fd == srv.tfd)
                resume_accept();
            else
                handle_client(fd, evs[i].events);
        }
    }
}

static void teardown(void)
{
    close(srv.lfd);                     /* stop accepting first */
    for (size_t fd = 0; fd < srv.cap; fd++)
        if (srv.tab[fd])
            conn_close(srv.tab[fd]);
    fprintf(stderr, "shutting down\n");
    fflush(stderr);
    free(srv.tab);
    close(srv.tfd);
    close(srv.ep);
    int w = sig_w;
    sig_w = -1;                         /* a late signal now writes nowhere */
    close(w);
    close(srv.sig_r);
}

int main(int argc, char **argv)
{
    const char *addr = "127.0.0.1";
    long port = 8080;
    setvbuf(stderr, errbuf, _IOFBF, sizeof errbuf);

    opterr = 0;
    int opt;
    while ((opt = getopt(argc, argv, ":p:b:qveh")) != -1) {
        switch (opt) {
        case 'p': {
            char *end;
            errno = 0;
            port = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || port < 0 || port > 65535)
                bad_usage("bad port '%s' (0 to 65535)", optarg);
            break;
        }
        case 'b': addr = optarg; break;
        case 'q': srv.quiet = true; break;
        case 'v': srv.verbose = true; break;
        case 'e': srv.edge = true; break;
        case 'h': usage(stdout); return 0;
        case ':':
            bad_usage("option -%c needs a value", optopt);
        default:
            bad_usage("unknown option -%c", optopt);
        }
    }
    if (optind < argc)
        bad_usage("unexpected argument '%s'", argv[optind]);

    setup(addr, port);
    run();
    teardown();
    return srv.failed ? 1 : 0;
}
