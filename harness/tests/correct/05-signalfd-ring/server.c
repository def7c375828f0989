/*
 * chapter: 05
 * design: one thread, select() on copies of persistent read/write fd_sets updated incrementally, signals from a signalfd, a 64 KiB output ring per connection, connections indexed by descriptor, a spare /dev/null descriptor for EMFILE
 *
 * The server never rebuilds its interest sets: it keeps two fd_sets, one for
 * "tell me when I can read" and one for "tell me when I can write", and changes
 * a bit only when a connection's needs change; select() works on copies of
 * them. SIGINT and SIGTERM are blocked from the first line of main() and arrive
 * as readable data on a signalfd that sits in the read set like any socket, so
 * there is no signal handler at all and a stop cannot be lost between two
 * select() calls. Each connection owns a fixed 64 KiB ring of bytes received
 * and not yet sent back: the socket is in the read set only while the ring has
 * room, and in the write set only while the ring holds bytes, so a client that
 * never reads costs at most 64 KiB and an idle server sleeps in select().
 * Connections live in an array indexed by their descriptor; one whose
 * descriptor is FD_SETSIZE or more is closed and logged at once, before any
 * FD_SET. SIGPIPE is ignored. A descriptor on /dev/null is held in reserve: when
 * accept() fails with EMFILE or ENFILE the server gives it up, accepts the
 * waiting client, closes it and takes the spare back, so the pending
 * connection is consumed instead of waking select() forever.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define RING_SIZE (64 * 1024)       /* bound on a connection's pending output */
#define ACCEPT_BATCH 64             /* accepts per wake-up, so clients are not starved */
#define PEER_LEN (INET6_ADDRSTRLEN + 16)

union addr {
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
    struct sockaddr_storage ss;
};

struct conn {
    int fd;
    bool eof;                       /* the client shut down its writing side */
    bool in_rset, in_wset;          /* mirrors of the fd's bits in srv.rset / srv.wset */
    size_t head;                    /* index of the oldest pending byte */
    size_t len;                     /* number of pending bytes */
    char peer[PEER_LEN];
    unsigned char ring[RING_SIZE];
};

static struct {
    int lfd, sfd, spare;
    int maxfd;                      /* highest descriptor registered (listener, signalfd, clients) */
    bool paused;                    /* listener out of the read set after a resource failure */
    bool quiet, verbose;
    unsigned active;
    fd_set rset, wset;
    struct conn *conns[FD_SETSIZE];
} srv = { .lfd = -1, .sfd = -1, .spare = -1 };

static const char usage[] = "usage: server [-p PORT] [-b ADDR] [-q] [-v] [-h]\n";

/* ---------- logging: whole lines with write(2), EINTR and short writes handled ---------- */

static void write_all(int fd, const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return;                 /* stderr is gone: nowhere left to complain */
        }
        buf += w;
        n -= (size_t)w;
    }
}

__attribute__((format(printf, 1, 2)))
static void say(const char *fmt, ...)
{
    char line[512];
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof line - 2)
        n = (int)(sizeof line - 2);
    line[n++] = '\n';
    write_all(STDERR_FILENO, line, (size_t)n);
}

static void close_fd(int fd)
{
    /* On Linux the descriptor is released even when close() reports EINTR: never retry. */
    if (close(fd) < 0 && errno != EINTR)
        say("server: close: %s", strerror(errno));
}

static void format_addr(const union addr *a, char *out, size_t outlen)
{
    char ip[INET6_ADDRSTRLEN];

    if (a->sa.sa_family == AF_INET && inet_ntop(AF_INET, &a->in.sin_addr, ip, sizeof ip))
        snprintf(out, outlen, "%s:%u", ip, (unsigned)ntohs(a->in.sin_port));
    else if (a->sa.sa_family == AF_INET6 && inet_ntop(AF_INET6, &a->in6.sin6_addr, ip, sizeof ip))
        snprintf(out, outlen, "[%s]:%u", ip, (unsigned)ntohs(a->in6.sin6_port));
    else
        snprintf(out, outlen, "?");
}

/* -v: the n bytes just received at ring index start, printable characters only. */
static void log_message(const struct conn *c, size_t start, size_t n)
{
    static char line[PEER_LEN + RING_SIZE + 8];
    int k = snprintf(line, sizeof line, "> %s ", c->peer);
    size_t len = k > 0 ? (size_t)k : 0;

    for (size_t i = 0; i < n; i++) {
        unsigned char ch = c->ring[(start + i) % RING_SIZE];
        if (isprint(ch))
            line[len++] = (char)ch;
    }
    line[len++] = '\n';
    write_all(STDERR_FILENO, line, len);
}

/* ---------- interest sets ---------- */

static void recompute_maxfd(void)
{
    int fd = srv.maxfd;

    while (fd >= 0 && fd != srv.lfd && fd != srv.sfd && srv.conns[fd] == NULL)
        fd--;
    srv.maxfd = fd;
}

static void set_bit(fd_set *set, int fd, bool *mirror, bool want)
{
    if (want == *mirror)
        return;
    if (want)
        FD_SET(fd, set);
    else
        FD_CLR(fd, set);
    *mirror = want;
}

/* Read while the ring has room, write while it holds bytes. */
static void update_interest(struct conn *c)
{
    set_bit(&srv.rset, c->fd, &c->in_rset, !c->eof && c->len < RING_SIZE);
    set_bit(&srv.wset, c->fd, &c->in_wset, c->len > 0);
}

static void pause_listening(void)
{
    if (srv.lfd >= 0 && !srv.paused) {
        FD_CLR(srv.lfd, &srv.rset);
        srv.paused = true;
    }
}

/* Called when a descriptor was freed or the pause timed out. */
static void resume_listening(void)
{
    if (!srv.paused || srv.lfd < 0)
        return;
    if (srv.spare < 0)
        srv.spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (srv.spare < 0)
        return;                     /* still out of descriptors: try again later */
    FD_SET(srv.lfd, &srv.rset);
    srv.paused = false;
}

/* ---------- connections ---------- */

static void close_conn(struct conn *c)
{
    int fd = c->fd;

    FD_CLR(fd, &srv.rset);
    FD_CLR(fd, &srv.wset);
    srv.conns[fd] = NULL;
    close_fd(fd);
    srv.active--;
    if (!srv.quiet)
        say("- %s (%u active)", c->peer, srv.active);
    free(c);
    if (fd == srv.maxfd)
        recompute_maxfd();
    resume_listening();
}

/* Receive into the free part of the ring. Returns false if the connection is dead. */
static bool fill(struct conn *c)
{
    size_t room = RING_SIZE - c->len;
    if (room == 0 || c->eof)
        return true;

    size_t tail = (c->head + c->len) % RING_SIZE;
    size_t first = RING_SIZE - tail < room ? RING_SIZE - tail : room;
    struct iovec iov[2] = {
        { .iov_base = c->ring + tail, .iov_len = first },
        { .iov_base = c->ring, .iov_len = room - first },
    };
    ssize_t n;

    do
        n = readv(c->fd, iov, room > first ? 2 : 1);
    while (n < 0 && errno == EINTR);

    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK;   /* anything else: reset, gone */
    if (n == 0) {
        c->eof = true;
        return true;
    }
    if (srv.verbose)
        log_message(c, tail, (size_t)n);
    c->len += (size_t)n;
    return true;
}

/* Send as much of the ring as the socket takes. Returns false if the connection is dead. */
static bool drain(struct conn *c)
{
    while (c->len > 0) {
        size_t first = RING_SIZE - c->head < c->len ? RING_SIZE - c->head : c->len;
        struct iovec iov[2] = {
            { .iov_base = c->ring + c->head, .iov_len = first },
            { .iov_base = c->ring, .iov_len = c->len - first },
        };
        ssize_t n = writev(c->fd, iov, c->len > first ? 2 : 1);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            return false;           /* EPIPE, ECONNRESET...: SIGPIPE is ignored */
        }
        if (n == 0)
            break;
        c->head = (c->head + (size_t)n) % RING_SIZE;
        c->len -= (size_t)n;
    }
    if (c->len == 0)
        c->head = 0;
    return true;
}

static void service(struct conn *c, bool readable, bool writable)
{
    bool ok = true;

    if (readable)
        ok = fill(c);
    /* Not yet in the write set: nobody said the socket was full, so try at once. */
    if (ok && c->len > 0 && (writable || !c->in_wset))
        ok = drain(c);
    if (!ok || (c->eof && c->len == 0)) {
        close_conn(c);
        return;
    }
    update_interest(c);
}

static void refused(const union addr *a, const char *why)
{
    char peer[PEER_LEN];

    if (srv.quiet)
        return;
    format_addr(a, peer, sizeof peer);
    say("! %s refused: %s", peer, why);
}

/*
 * Out of descriptors: give up the spare, take the waiting client, close it,
 * take the spare back. Returns true if a client was consumed (go on accepting).
 */
static bool refuse_with_spare(void)
{
    if (srv.spare < 0) {
        pause_listening();
        return false;
    }
    close_fd(srv.spare);
    srv.spare = -1;

    union addr a;
    socklen_t alen = sizeof a;
    int fd;
    do
        fd = accept4(srv.lfd, &a.sa, &alen, SOCK_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    int err = errno;

    if (fd >= 0) {
        close_fd(fd);
        refused(&a, "out of descriptors");
    }
    srv.spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (srv.spare < 0 || (fd < 0 && err != EAGAIN && err != EWOULDBLOCK && err != ECONNABORTED)) {
        pause_listening();          /* the system itself is out: wait for a descriptor */
        return false;
    }
    return fd >= 0;
}

static void accept_clients(void)
{
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        union addr a;
        socklen_t alen = sizeof a;
        int fd = accept4(srv.lfd, &a.sa, &alen, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd < 0) {
            switch (errno) {
            case EINTR:
            case ECONNABORTED:
            case EPROTO:                /* the client left before we took it */
            case ENETDOWN: case ENOPROTOOPT: case EHOSTDOWN: case ENONET:
            case EHOSTUNREACH: case EOPNOTSUPP: case ENETUNREACH:
                continue;
            case EMFILE:
            case ENFILE:
                if (refuse_with_spare())
                    continue;
                return;
            default:
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                    return;
                say("server: accept: %s", strerror(errno));
                pause_listening();      /* ENOBUFS, ENOMEM...: retry in a second */
                return;
            }
        }
        if (fd >= FD_SETSIZE) {         /* select() cannot watch it: never FD_SET it */
            close_fd(fd);
            refused(&a, "descriptor beyond FD_SETSIZE");
            continue;
        }
        struct conn *c = malloc(sizeof *c);
        if (c == NULL) {
            close_fd(fd);
            refused(&a, "out of memory");
            continue;
        }
        c->fd = fd;
        c->eof = c->in_rset = c->in_wset = false;
        c->head = c->len = 0;
        format_addr(&a, c->peer, sizeof c->peer);
        srv.conns[fd] = c;
        srv.active++;
        if (!srv.quiet)
            say("+ %s (%u active)", c->peer, srv.active);
        if (fd > srv.maxfd)
            srv.maxfd = fd;
        update_interest(c);
    }
}

/* Returns true once SIGINT or SIGTERM has been read from the signalfd. */
static bool stop_requested(void)
{
    struct signalfd_siginfo si;

    for (;;) {
        ssize_t n = read(srv.sfd, &si, sizeof si);
        if (n == (ssize_t)sizeof si)
            return true;            /* only SIGINT and SIGTERM are routed here */
        if (n < 0 && errno == EINTR)
            continue;
        return false;               /* EAGAIN: spurious wake-up */
    }
}

/* ---------- set-up ---------- */

static void bad_usage(const char *what, const char *arg)
{
    fprintf(stderr, "server: %s%s\n%s", what, arg, usage);
    exit(2);
}

static void die(const char *what)
{
    say("server: %s: %s", what, strerror(errno));
    exit(1);
}

static void parse_args(int argc, char **argv, union addr *bind_addr)
{
    const char *host = "127.0.0.1";
    long port = 8080;
    int opt;

    while ((opt = getopt(argc, argv, ":p:b:qvh")) != -1) {
        switch (opt) {
        case 'p': {
            char *end;
            errno = 0;
            port = strtol(optarg, &end, 10);
            if (errno != 0 || end == optarg || *end != '\0' || port < 0 || port > 65535)
                bad_usage("invalid port: ", optarg);
            break;
        }
        case 'b': host = optarg; break;
        case 'q': srv.quiet = true; break;
        case 'v': srv.verbose = true; break;
        case 'h': fputs(usage, stdout); exit(0);
        case ':': bad_usage("missing value for -", (char[]){ (char)optopt, '\0' }); break;
        default:  bad_usage("unknown option -", (char[]){ (char)optopt, '\0' }); break;
        }
    }
    if (optind < argc)
        bad_usage("unexpected argument: ", argv[optind]);
    if (srv.quiet)
        srv.verbose = false;

    memset(bind_addr, 0, sizeof *bind_addr);
    if (inet_pton(AF_INET, host, &bind_addr->in.sin_addr) == 1) {
        bind_addr->in.sin_family = AF_INET;
        bind_addr->in.sin_port = htons((uint16_t)port);
    } else if (inet_pton(AF_INET6, host, &bind_addr->in6.sin6_addr) == 1) {
        bind_addr->in6.sin6_family = AF_INET6;
        bind_addr->in6.sin6_port = htons((uint16_t)port);
    } else {
        bad_usage("not an IPv4 or IPv6 address: ", host);
    }
}

static void open_listener(const union addr *a)
{
    char where[PEER_LEN];
    socklen_t alen = a->sa.sa_family == AF_INET ? sizeof a->in : sizeof a->in6;
    int one = 1;

    format_addr(a, where, sizeof where);
    srv.lfd = socket(a->sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (srv.lfd < 0)
        die("socket");
    if (setsockopt(srv.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        die("setsockopt");
    if (bind(srv.lfd, &a->sa, alen) < 0) {
        say("server: bind %s: %s", where, strerror(errno));
        exit(1);
    }
    if (listen(srv.lfd, SOMAXCONN) < 0)
        die("listen");

    union addr real;
    socklen_t rlen = sizeof real;
    if (getsockname(srv.lfd, &real.sa, &rlen) < 0)
        die("getsockname");
    format_addr(&real, where, sizeof where);
    if (printf("listening on %s\n", where) < 0 || fflush(stdout) == EOF)
        die("stdout");
}

int main(int argc, char **argv)
{
    union addr bind_addr;
    sigset_t mask;
    struct sigaction ign = { .sa_handler = SIG_IGN };

    /* Block the stop signals first, so that none can strike before the signalfd exists. */
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
        die("sigprocmask");
    sigemptyset(&ign.sa_mask);
    if (sigaction(SIGPIPE, &ign, NULL) < 0)
        die("sigaction");

    parse_args(argc, argv, &bind_addr);

    srv.sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (srv.sfd < 0)
        die("signalfd");
    srv.spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (srv.spare < 0)
        die("open /dev/null");
    open_listener(&bind_addr);
    if (srv.sfd >= FD_SETSIZE || srv.lfd >= FD_SETSIZE) {
        say("server: descriptors beyond FD_SETSIZE at start-up");
        return 1;
    }

    FD_ZERO(&srv.rset);
    FD_ZERO(&srv.wset);
    FD_SET(srv.lfd, &srv.rset);
    FD_SET(srv.sfd, &srv.rset);
    srv.maxfd = srv.lfd > srv.sfd ? srv.lfd : srv.sfd;

    int status = 0;
    for (;;) {
        fd_set r = srv.rset, w = srv.wset;
        struct timeval tv = { .tv_sec = 1, .tv_usec = 0 };
        int n = select(srv.maxfd + 1, &r, &w, NULL, srv.paused ? &tv : NULL);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            say("server: select: %s", strerror(errno));
            status = 1;
            break;
        }
        if (n == 0) {               /* only while the listener is paused */
            resume_listening();
            continue;
        }
        if (FD_ISSET(srv.sfd, &r) && stop_requested())
            break;
        for (int fd = 0; fd <= srv.maxfd; fd++) {
            struct conn *c = srv.conns[fd];
            bool rd = FD_ISSET(fd, &r), wr = FD_ISSET(fd, &w);
            if (c != NULL && (rd || wr))
                service(c, rd, wr);
        }
        /* Accept last, so a new client never inherits a closed one's ready bits. */
        if (!srv.paused && FD_ISSET(srv.lfd, &r))
            accept_clients();
    }

    /* Stop accepting, close every connection (each logged), then say so. */
    close_fd(srv.lfd);
    srv.lfd = -1;
    srv.paused = false;
    for (int fd = 0; fd < FD_SETSIZE; fd++)
        if (srv.conns[fd] != NULL)
            close_conn(srv.conns[fd]);
    say("shutting down");
    close_fd(srv.sfd);
    if (srv.spare >= 0)
        close_fd(srv.spare);
    return status;
}
