/*
 * chapter: 02
 * design: fork per client; SIGCHLD/SIGINT/SIGTERM handlers only write a byte to a self-pipe; main loop poll()s listener + pipe and reaps with waitpid(WNOHANG) there; growable pid table; signals blocked around fork(); SIGTERM, 1.5 s, SIGKILL on stop
 *
 * A process per client. The parent accepts, forks, closes its copy of the
 * client socket, and counts: one up when it forks, one down when it reaps.
 *
 * The handlers do nothing but write one byte ('C' for a child, 'T' for a
 * stop) to a self-pipe; the main loop waits in poll() on the listener and the
 * pipe, and does the reaping and the logging itself, where stdio, the pid
 * table and the counter can be touched safely.
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BUF_SIZE (16 * 1024)
#define PEER_LEN (INET6_ADDRSTRLEN + 8) /* "[" addr "]:" port NUL */
#define PAUSE_MS 100
#define GRACE_MS 1500

struct child { pid_t pid; char peer[PEER_LEN]; }; /* peer: for the "-" line */

static int sig_pipe[2] = { -1, -1 };
/* Backs up the 'T' byte: should the pipe ever be full, a stop is not lost. */
static volatile sig_atomic_t stop_requested;
static int quiet, verbose;
static struct child *kids;
static size_t nkids, capkids;

static const char usage_text[] =
    "usage: server [-p PORT] [-b ADDR] [-q] [-v] [-h]\n"
    "  -p PORT  port to listen on (default 8080; 0 lets the kernel choose)\n"
    "  -b ADDR  IPv4 or IPv6 literal to bind (default 127.0.0.1)\n"
    "  -q       quiet: no per-connection log lines\n"
    "  -v       verbose: also log each message received\n"
    "  -h       show this help\n";

/* One write(2) per line: parent and children share stderr, and a line must
 * not be split by another process's output. */
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

static void on_signal(int sig)
{
    int saved = errno; /* the interrupted code may be about to read errno */
    char c = 'C';
    if (sig != SIGCHLD) {
        stop_requested = 1;
        c = 'T';
    }
    ssize_t r = write(sig_pipe[1], &c, 1); /* full pipe: already readable */
    (void)r;
    errno = saved;
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
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

static void drain_pipe(void)
{
    char buf[64];
    ssize_t n;
    while ((n = read(sig_pipe[0], buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] == 'T')
                stop_requested = 1;
}

/* Collect every child that has ended and log it. With block set, wait until
 * none is left (used after SIGKILL, which cannot be refused). */
static void reap(int block)
{
    while (nkids > 0) {
        int st;
        pid_t pid = waitpid(-1, &st, block ? 0 : WNOHANG);
        if (pid < 0 && errno == EINTR)
            continue;
        if (pid <= 0) {
            if (pid < 0 && errno == ECHILD)
                nkids = 0; /* cannot happen: every child is in the table */
            return;
        }
        for (size_t i = 0; i < nkids; i++) {
            if (kids[i].pid != pid)
                continue;
            nkids--;
            if (!quiet)
                say("- %s (%zu active)\n", kids[i].peer, nkids);
            kids[i] = kids[nkids];
            break;
        }
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

static int send_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
        } else if (n < 0 && errno != EINTR) {
            return -1;
        }
    }
    return 0;
}

/* The child owns one connection and nothing else. It ends by default on
 * SIGTERM (dispositions reset), which is how the parent stops it. */
__attribute__((noreturn))
static void child_main(int lfd, int cfd, const char *peer, const sigset_t *old)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = SIG_DFL;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGCHLD, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    sigprocmask(SIG_SETMASK, old, NULL); /* a pending SIGTERM now ends us */

    close(lfd);
    close(sig_pipe[0]);
    close(sig_pipe[1]);
    free(kids); /* the parent's table is of no use here */
    kids = NULL;

    char buf[BUF_SIZE];
    for (;;) {
        ssize_t n = recv(cfd, buf, sizeof buf, 0);
        if (n == 0)
            break; /* EOF (or half-close): all read was already sent back */
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (verbose && !quiet)
            log_message(peer, buf, (size_t)n);
        if (send_all(cfd, buf, (size_t)n) < 0)
            break;
    }
    close(cfd);
    _exit(0); /* not exit(): the parent's stdio buffers are not ours to flush */
}

/* Returns 1 when the main loop should pause before the next accept(). */
static int accept_one(int lfd, int *pausing)
{
    struct sockaddr_storage ss;
    socklen_t slen = sizeof ss;
    int cfd = accept4(lfd, (struct sockaddr *)&ss, &slen, SOCK_CLOEXEC);
    if (cfd < 0) {
        /* Retry at once for errors about that one connection; pause (and
         * say so once) for a shortage that a tight retry loop would turn
         * into a spin. */
        switch (errno) {
        case EINTR: case EAGAIN: case ECONNABORTED: case EPROTO:
        case ENETDOWN: case ENOPROTOOPT: case EHOSTDOWN: case ENONET:
        case EHOSTUNREACH: case EOPNOTSUPP: case ENETUNREACH:
            return 0;
        }
        if (!*pausing)
            say("server: accept: %s (pausing)\n", strerror(errno));
        *pausing = 1;
        return 1;
    }
    *pausing = 0;

    /* Grow before forking, so a child always has its row. */
    if (nkids == capkids) {
        size_t cap = capkids ? capkids * 2 : 16;
        struct child *t = realloc(kids, cap * sizeof *t);
        if (!t) {
            say("server: out of memory, dropping a client\n");
            close(cfd);
            return 1;
        }
        kids = t, capkids = cap;
    }
    char peer[PEER_LEN];
    format_addr(&ss, peer, sizeof peer);
    /* Blocked until the child has reset them: otherwise our handlers could
     * run in the child and write into the parent's self-pipe. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGCHLD);
    sigprocmask(SIG_BLOCK, &block, &old);
    pid_t pid = fork();
    if (pid == 0)
        child_main(lfd, cfd, peer, &old);
    int err = errno;
    sigprocmask(SIG_SETMASK, &old, NULL);
    close(cfd); /* the child has its own copy; ours would keep the peer open */
    if (pid < 0) {
        say("server: fork: %s\n", strerror(err));
        return 1;
    }
    kids[nkids].pid = pid;
    memcpy(kids[nkids++].peer, peer, sizeof peer);
    if (!quiet)
        say("+ %s (%zu active)\n", peer, nkids);
    return 0;
}

static void stop_children(void)
{
    /* SIGCONT too, so a stopped child acts on its SIGTERM now. */
    for (size_t i = 0; i < nkids; i++) {
        kill(kids[i].pid, SIGTERM);
        kill(kids[i].pid, SIGCONT);
    }
    long deadline = now_ms() + GRACE_MS;
    while (nkids > 0) {
        long left = deadline - now_ms();
        if (left <= 0)
            break;
        struct pollfd p = { sig_pipe[0], POLLIN, 0 };
        if (poll(&p, 1, (int)left) > 0)
            drain_pipe();
        reap(0);
    }
    if (nkids > 0) {
        for (size_t i = 0; i < nkids; i++)
            kill(kids[i].pid, SIGKILL);
        reap(1);
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
    /* Non-blocking: a connection gone between poll() and accept() gives
     * EAGAIN rather than a parent stuck in accept(). */
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fprintf(stderr, "server: socket: %s\n", strerror(errno));
        exit(1);
    }
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        fprintf(stderr, "server: SO_REUSEADDR: %s\n", strerror(errno));
    const char *fmt = ss->ss_family == AF_INET6 ? "server: bind [%s]:%d: %s\n"
                                                : "server: bind %s:%d: %s\n";
    if (bind(fd, (struct sockaddr *)ss, len) < 0) {
        fprintf(stderr, fmt, addr_s, port, strerror(errno));
        exit(1);
    }
    if (listen(fd, SOMAXCONN) < 0) { /* the text's 10 drops bursts */
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
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_NOCLDSTOP; /* a stopped child is not a child to reap */
    struct sigaction ign = { .sa_handler = SIG_IGN };
    if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0 ||
        sigaction(SIGCHLD, &sa, NULL) < 0 || sigaction(SIGPIPE, &ign, NULL) < 0) {
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
    fflush(stdout); /* before any fork, or children would inherit the buffer */

    int pausing = 0, pause = 0;
    while (!stop_requested) {
        /* While pausing, the listener is left out (else poll() returns at
         * once and we spin), but children are still reaped and a stop heard. */
        struct pollfd p[2] = { { sig_pipe[0], POLLIN, 0 }, { lfd, POLLIN, 0 } };
        int n = poll(p, pause ? 1 : 2, pause ? PAUSE_MS : -1);
        pause = 0;
        if (n < 0 && errno != EINTR) {
            say("server: poll: %s\n", strerror(errno));
            pause = 1;
        }
        if (n > 0 && p[0].revents)
            drain_pipe();
        reap(0);
        if (stop_requested)
            break;
        if (n > 0 && p[1].revents)
            pause = accept_one(lfd, &pausing);
    }

    close(lfd); /* stop accepting first: no new child during the stop */
    stop_children();
    say("shutting down\n");
    free(kids);
    close(sig_pipe[0]);
    close(sig_pipe[1]);
    return 0;
}
