/*
 * chapter: 01
 * design: iterative; poll() on listener + self-pipe before accept, poll() on client + self-pipe while serving; SIGPIPE ignored; 16 KiB stack buffer; EMFILE -> 100 ms poll() pause
 *
 * An iterative echo server: it serves one client at a time, and a second
 * client waits in the listen backlog until the first one leaves.
 *
 * SIGINT/SIGTERM only write a byte to a self-pipe. Every blocking wait in the
 * program is a poll() that includes the pipe's read end, so a stop request is
 * seen at once even while a client is connected (and even if that client
 * never reads what it is sent). The byte is never drained: once readable, the
 * pipe stays readable, so every later wait sees the stop too.
 */
#define _GNU_SOURCE /* accept4(), pipe2() */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#define BUF_SIZE (16 * 1024)
#define PEER_LEN (INET6_ADDRSTRLEN + 8) /* "[" addr "]:" port NUL */
#define PAUSE_MS 100

static int sig_pipe[2] = { -1, -1 };
static int quiet, verbose;

static const char usage_text[] =
    "usage: server [-p PORT] [-b ADDR] [-q] [-v] [-h]\n"
    "  -p PORT  port to listen on (default 8080; 0 lets the kernel choose)\n"
    "  -b ADDR  IPv4 or IPv6 literal to bind (default 127.0.0.1)\n"
    "  -q       quiet: no per-connection log lines\n"
    "  -v       verbose: also log each message received\n"
    "  -h       show this help\n";

/* One write(2) per line, so lines never interleave mid-way, and no stdio
 * state is involved. */
__attribute__((format(printf, 1, 2)))
static void say(const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (len < 0)
        return;
    size_t left = (size_t)len < sizeof line ? (size_t)len : sizeof line - 1;
    const char *p = line;
    while (left > 0) {
        ssize_t n = write(STDERR_FILENO, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        p += n;
        left -= (size_t)n;
    }
}

static void usage_error(const char *fmt, const char *arg)
{
    fputs("server: ", stderr);
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    fputs(usage_text, stderr);
    exit(2);
}

static void on_stop(int sig)
{
    (void)sig;
    int saved = errno; /* the interrupted code may be about to read errno */
    char c = 'T';
    ssize_t r = write(sig_pipe[1], &c, 1); /* full pipe: already readable */
    (void)r;
    errno = saved;
}

static void format_addr(const struct sockaddr_storage *ss, char *out, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "?";
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        snprintf(out, len, "[%s]:%u", host, (unsigned)ntohs(a->sin6_port));
    } else {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        snprintf(out, len, "%s:%u", host, (unsigned)ntohs(a->sin_port));
    }
}

static void log_message(const char *peer, const char *buf, size_t n)
{
    char text[201];
    size_t k = 0;
    for (size_t i = 0; i < n && k < sizeof text - 1; i++)
        if (buf[i] >= 0x20 && buf[i] < 0x7f)
            text[k++] = buf[i];
    text[k] = '\0';
    say("> %s: %s\n", peer, text);
}

/* Returns 0 once all is sent, -1 if the peer is gone or a stop is requested.
 * MSG_DONTWAIT + poll(), rather than a blocking send(), so a client that
 * never reads cannot hold up a stop. */
static int send_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd q[2] = { { fd, POLLOUT, 0 }, { sig_pipe[0], POLLIN, 0 } };
            if (poll(q, 2, -1) < 0 && errno != EINTR)
                return -1;
            if (q[1].revents)
                return -1;
            continue;
        }
        return -1; /* EPIPE, ECONNRESET, ...: this client only */
    }
    return 0;
}

/* Echo until EOF, an error on this connection, or a stop request. Everything
 * read is written back before the next read, so at EOF (a half-close
 * included) the client already has all its bytes and we may close. */
static void serve(int cfd, const char *peer)
{
    char buf[BUF_SIZE];
    for (;;) {
        struct pollfd p[2] = { { cfd, POLLIN, 0 }, { sig_pipe[0], POLLIN, 0 } };
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            say("server: poll: %s\n", strerror(errno));
            return;
        }
        if (p[1].revents)
            return;
        if (!p[0].revents)
            continue;
        ssize_t n = recv(cfd, buf, sizeof buf, MSG_DONTWAIT);
        if (n == 0)
            return;
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
                continue;
            return; /* ECONNRESET and friends end this connection only */
        }
        if (verbose && !quiet)
            log_message(peer, buf, (size_t)n);
        if (send_all(cfd, buf, (size_t)n) < 0)
            return;
    }
}

/* How long to pause after a failed accept(). Errors about the one pending
 * connection (it was reset, the network hiccupped) are retried at once; a
 * shortage of descriptors or memory will not go away by retrying in a tight
 * loop, so we wait and say so once per episode. */
static int accept_pause(int err, int *pausing)
{
    switch (err) {
    case EINTR: case EAGAIN: case ECONNABORTED: case EPROTO:
    case ENETDOWN: case ENOPROTOOPT: case EHOSTDOWN: case ENONET:
    case EHOSTUNREACH: case EOPNOTSUPP: case ENETUNREACH:
#if EWOULDBLOCK != EAGAIN
    case EWOULDBLOCK:
#endif
        return 0;
    default:
        if (!*pausing)
            say("server: accept: %s (pausing)\n", strerror(err));
        *pausing = 1;
        return PAUSE_MS;
    }
}

static int parse_port(const char *s)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10); /* a leading digit: no sign, no space */
    return *s >= '0' && *s <= '9' && !errno && !*end && v <= 65535 ? (int)v : -1;
}

static int parse_addr(const char *s, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, s, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, s, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        return 0;
    }
    return -1;
}

static int open_listener(struct sockaddr_storage *ss, int port, const char *addr_s)
{
    socklen_t len;
    if (ss->ss_family == AF_INET6) {
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
        len = sizeof(struct sockaddr_in6);
    } else {
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
        len = sizeof(struct sockaddr_in);
    }
    /* Non-blocking: if the pending connection vanishes between poll() and
     * accept(), accept() fails with EAGAIN instead of blocking the loop. */
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fprintf(stderr, "server: socket: %s\n", strerror(errno));
        exit(1);
    }
    int one = 1;
    /* A restart must not wait for the old connections' TIME_WAIT. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        fprintf(stderr, "server: SO_REUSEADDR: %s\n", strerror(errno));
    const char *fmt = ss->ss_family == AF_INET6 ? "server: bind [%s]:%d: %s\n"
                                                : "server: bind %s:%d: %s\n";
    if (bind(fd, (struct sockaddr *)ss, len) < 0) {
        fprintf(stderr, fmt, addr_s, port, strerror(errno));
        exit(1);
    }
    /* The text's backlog of 10 drops connections in a burst; here the
     * backlog is also where the next clients wait their turn. */
    if (listen(fd, SOMAXCONN) < 0) {
        fprintf(stderr, "server: listen: %s\n", strerror(errno));
        exit(1);
    }
    return fd;
}

static void setup_signals(void)
{
    if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        fprintf(stderr, "server: pipe: %s\n", strerror(errno));
        exit(1);
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_stop;
    if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0) {
        fprintf(stderr, "server: sigaction: %s\n", strerror(errno));
        exit(1);
    }
    /* A client that leaves while we write to it must cost us that client
     * only, not the whole server. */
    sa.sa_handler = SIG_IGN;
    if (sigaction(SIGPIPE, &sa, NULL) < 0) {
        fprintf(stderr, "server: sigaction: %s\n", strerror(errno));
        exit(1);
    }
}

int main(int argc, char **argv)
{
    int port = 8080, opt;
    const char *addr_s = "127.0.0.1";
    struct sockaddr_storage ss;

    opterr = 0;
    while ((opt = getopt(argc, argv, ":p:b:qvh")) != -1) {
        switch (opt) {
        case 'p':
            port = parse_port(optarg);
            if (port < 0)
                usage_error("bad port '%s' (expected 0 to 65535)", optarg);
            break;
        case 'b': addr_s = optarg; break;
        case 'q': quiet = 1; break;
        case 'v': verbose = 1; break;
        case 'h':
            fputs(usage_text, stdout);
            return 0;
        default: {
            char o[2] = { (char)optopt, '\0' };
            usage_error(opt == ':' ? "option -%s needs a value" : "unknown option -%s", o);
        }
        }
    }
    if (optind < argc)
        usage_error("unexpected argument '%s'", argv[optind]);
    if (parse_addr(addr_s, &ss) < 0)
        usage_error("bad address '%s' (expected an IPv4 or IPv6 literal)", addr_s);

    setup_signals();
    int lfd = open_listener(&ss, port, addr_s);

    struct sockaddr_storage me;
    socklen_t mlen = sizeof me;
    char where[PEER_LEN];
    if (getsockname(lfd, (struct sockaddr *)&me, &mlen) < 0) {
        fprintf(stderr, "server: getsockname: %s\n", strerror(errno));
        return 1;
    }
    format_addr(&me, where, sizeof where);
    printf("listening on %s\n", where);
    fflush(stdout);

    int pausing = 0;
    for (;;) {
        struct pollfd p[2] = { { lfd, POLLIN, 0 }, { sig_pipe[0], POLLIN, 0 } };
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            say("server: poll: %s\n", strerror(errno));
            poll(&p[1], 1, PAUSE_MS); /* do not spin on a persistent error */
            continue;
        }
        if (p[1].revents)
            break;
        if (!p[0].revents)
            continue;

        struct sockaddr_storage peer_ss;
        socklen_t plen = sizeof peer_ss;
        int cfd = accept4(lfd, (struct sockaddr *)&peer_ss, &plen, SOCK_CLOEXEC);
        if (cfd < 0) {
            int ms = accept_pause(errno, &pausing);
            if (ms > 0) /* wait on the pipe alone: a stop still ends the pause */
                poll(&p[1], 1, ms);
            continue;
        }
        pausing = 0;

        char peer[PEER_LEN];
        format_addr(&peer_ss, peer, sizeof peer);
        if (!quiet)
            say("+ %s (1 active)\n", peer);
        serve(cfd, peer);
        close(cfd);
        if (!quiet)
            say("- %s (0 active)\n", peer);
    }

    close(lfd);
    say("shutting down\n");
    close(sig_pipe[0]);
    close(sig_pipe[1]);
    return 0;
}
