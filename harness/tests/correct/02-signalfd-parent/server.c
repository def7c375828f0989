/*
 * chapter: 02
 * design: fork per client; parent blocks SIGCHLD/SIGINT/SIGTERM and polls a signalfd next to the listener; pid-indexed child table; SIGTERM to children on stop, SIGKILL after 1.5 s
 *
 * The parent runs no signal handler: SIGCHLD, SIGINT and SIGTERM are blocked
 * before the socket exists and read from a non-blocking signalfd, so it sleeps
 * in one poll() on the listener and the signalfd, and forks, reaps and logs
 * (with plain write(2)) in ordinary code. A growable array maps each live
 * child's pid to its client's address; its length is the active count, one up
 * when fork() succeeds, one down when waitpid(-1, WNOHANG) returns the pid, and
 * one SIGCHLD read may stand for several children. The child drops the
 * parent's descriptors and table, restores default dispositions and an empty
 * mask, ignores SIGPIPE, and echoes through an 8 KiB stack buffer with a
 * blocking write-all loop, so it never reads while output is pending. Its
 * SIGTERM handler only sets a flag and shuts the socket down (both
 * async-signal-safe), which wakes a blocked recv() or send() without a race.
 * To stop, the parent closes the listener, sends SIGTERM to every child, reaps
 * for up to 1.5 s, SIGKILLs and waits for the rest, then says "shutting down".
 * A spare descriptor on /dev/null refuses a connection cleanly on EMFILE, and
 * a 100 ms pause of the listener keeps it from spinning if even that fails.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BUF_SIZE 8192           /* the child's echo buffer, on its stack */
#define ADDR_LEN 64             /* "[" INET6_ADDRSTRLEN "]:65535" fits */
#define STOP_GRACE_MS 1500      /* children get this long to leave after SIGTERM */
#define ACCEPT_BATCH 64         /* accepts per wake-up, so signals are never starved */
#define PAUSE_MS 100            /* listener pause when accept() cannot make progress */

struct child {
    pid_t pid;
    char addr[ADDR_LEN];
};

static struct {
    struct child *v;
    size_t n, cap;
} kids;

static bool quiet, verbose;
static int lfd = -1, sfd = -1, spare = -1;
static bool paused;
static long long pause_until;

static volatile sig_atomic_t child_fd = -1;
static volatile sig_atomic_t child_stop;

static void usage(FILE *f)
{
    fprintf(f, "usage: server [-p PORT] [-b ADDR] [-q] [-v] [-h]\n"
               "  -p PORT  port to listen on (default 8080, 0: any)\n"
               "  -b ADDR  IPv4 or IPv6 address to bind (default 127.0.0.1)\n"
               "  -q       quiet: no per-connection log lines\n"
               "  -v       verbose: log every message received\n"
               "  -h       this help\n");
}

static long long now_ms(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
        return 0;
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* write(2) the whole buffer, retrying EINTR and waiting out EAGAIN */
static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        } else if (w < 0 && errno == EINTR) {
            if (child_stop)
                return -1;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pfd = { .fd = fd, .events = POLLOUT };
            if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
                return -1;
        } else {
            return -1;
        }
    }
    return 0;
}

/* one log line on stderr, written by a single write(2) so processes do not mix */
__attribute__((format(printf, 1, 2)))
static void logmsg(const char *fmt, ...)
{
    char line[512];
    const size_t cap = sizeof line - 1;
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(line, cap, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t len = (size_t)n < cap ? (size_t)n : cap - 1;
    line[len++] = '\n';
    (void)write_all(STDERR_FILENO, line, len);
}

/* "1.2.3.4:80" or "[::1]:80" */
static void format_addr(const struct sockaddr *sa, char *out, size_t len)
{
    char ip[INET6_ADDRSTRLEN];

    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        if (!inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip))
            strcpy(ip, "?");
        snprintf(out, len, "[%s]:%u", ip, (unsigned)ntohs(in6->sin6_port));
    } else {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        if (sa->sa_family != AF_INET || !inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip))
            strcpy(ip, "?");
        snprintf(out, len, "%s:%u", ip, (unsigned)ntohs(in->sin_port));
    }
}

/* ---- the child: one client, blocking I/O ---- */

static void child_on_term(int sig)
{
    int saved = errno;
    int fd = child_fd;

    (void)sig;
    child_stop = 1;
    if (fd >= 0)
        (void)shutdown(fd, SHUT_RDWR);   /* wakes recv()/send(), no lost wake-up */
    errno = saved;
}

static int child_signals(void)
{
    struct sigaction sa;
    sigset_t none;

    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = SIG_DFL;
    if (sigaction(SIGCHLD, &sa, NULL) < 0 || sigaction(SIGINT, &sa, NULL) < 0)
        return -1;
    sa.sa_handler = SIG_IGN;
    if (sigaction(SIGPIPE, &sa, NULL) < 0)
        return -1;
    sa.sa_handler = child_on_term;       /* no SA_RESTART: a blocked call sees EINTR */
    if (sigaction(SIGTERM, &sa, NULL) < 0)
        return -1;
    /* a SIGTERM the parent sent before this point is pending: it lands now */
    sigemptyset(&none);
    return sigprocmask(SIG_SETMASK, &none, NULL);
}

static void log_message(const char *addr, const char *buf, size_t n)
{
    char line[BUF_SIZE + ADDR_LEN + 8];
    int k = snprintf(line, sizeof line, "> %s: ", addr);
    size_t len = k > 0 ? (size_t)k : 0;
    size_t text = 0;

    for (size_t i = 0; i < n && len < sizeof line - 1; i++) {
        if (isprint((unsigned char)buf[i])) {
            line[len++] = buf[i];
            text++;
        }
    }
    if (text == 0)
        return;
    line[len++] = '\n';
    (void)write_all(STDERR_FILENO, line, len);
}

static void serve(int fd, const char *addr)
{
    char buf[BUF_SIZE];

    while (!child_stop) {
        ssize_t r = recv(fd, buf, sizeof buf, 0);
        if (r > 0) {
            if (verbose && !quiet)
                log_message(addr, buf, (size_t)r);
            if (write_all(fd, buf, (size_t)r) < 0)
                return;
        } else if (r == 0) {
            return;                      /* client done (or shut down by SIGTERM) */
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            struct pollfd pfd = { .fd = fd, .events = POLLIN };
            if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
                return;
        } else if (errno != EINTR) {
            return;                      /* reset, or worse: this client only */
        }
    }
}

__attribute__((noreturn))
static void child_main(int fd, const char *addr)
{
    /* the parent's descriptors and table are not ours to keep */
    close(lfd);
    close(sfd);
    if (spare >= 0)
        close(spare);
    free(kids.v);
    kids.v = NULL;
    kids.n = kids.cap = 0;

    child_fd = fd;
    int status = 0;
    if (child_signals() < 0)
        status = 1;
    else
        serve(fd, addr);
    child_fd = -1;
    close(fd);
    _exit(status);
}

/* ---- the parent: table of children, reaping, accepting ---- */

static int kids_reserve(void)
{
    if (kids.n < kids.cap)
        return 0;
    size_t cap = kids.cap ? kids.cap * 2 : 16;
    struct child *v = realloc(kids.v, cap * sizeof *v);
    if (!v)
        return -1;
    kids.v = v;
    kids.cap = cap;
    return 0;
}

static void forget(pid_t pid)
{
    for (size_t i = 0; i < kids.n; i++) {
        if (kids.v[i].pid != pid)
            continue;
        char addr[ADDR_LEN];
        memcpy(addr, kids.v[i].addr, sizeof addr);
        kids.v[i] = kids.v[--kids.n];
        if (!quiet)
            logmsg("- %s (%zu active)", addr, kids.n);
        return;
    }
}

/* reap every child that has ended; one SIGCHLD may stand for several */
static void reap(void)
{
    for (;;) {
        pid_t pid = waitpid(-1, NULL, WNOHANG);
        if (pid > 0)
            forget(pid);
        else if (pid < 0 && errno == EINTR)
            continue;
        else
            return;                      /* 0: none ended yet; ECHILD: none left */
    }
}

static void spawn(int cfd, const struct sockaddr *peer)
{
    char addr[ADDR_LEN];

    format_addr(peer, addr, sizeof addr);
    if (kids_reserve() < 0) {            /* room first, so the table never misses a pid */
        logmsg("server: out of memory: refused %s", addr);
        close(cfd);
        return;
    }
    pid_t pid = fork();
    if (pid < 0) {
        logmsg("server: fork: %s: refused %s", strerror(errno), addr);
        close(cfd);
        return;
    }
    if (pid == 0)
        child_main(cfd, addr);
    close(cfd);
    kids.v[kids.n].pid = pid;
    memcpy(kids.v[kids.n].addr, addr, sizeof addr);
    kids.n++;
    if (!quiet)
        logmsg("+ %s (%zu active)", addr, kids.n);
}

static void pause_listener(void)
{
    paused = true;
    pause_until = now_ms() + PAUSE_MS;
}

/* out of descriptors: give up the spare one to accept and close the newcomer */
static void refuse_one(void)
{
    if (spare >= 0) {
        close(spare);
        spare = -1;
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int cfd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC);
        if (cfd >= 0) {
            char addr[ADDR_LEN];
            format_addr((struct sockaddr *)&ss, addr, sizeof addr);
            close(cfd);
            logmsg("server: out of descriptors: refused %s", addr);
        }
        spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (cfd >= 0 && spare >= 0)
            return;
    }
    pause_listener();                    /* no spare: wait a little instead of spinning */
}

static void accept_batch(void)
{
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int cfd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC);
        if (cfd >= 0) {
            spawn(cfd, (struct sockaddr *)&ss);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return;
        if (errno == EMFILE || errno == ENFILE) {
            refuse_one();
            return;
        }
        logmsg("server: accept: %s", strerror(errno));
        pause_listener();
        return;
    }
}

/* drain the signalfd; returns true if SIGINT or SIGTERM was among them */
static bool read_signals(bool *chld)
{
    struct signalfd_siginfo si[8];
    bool stop = false;

    for (;;) {
        ssize_t r = read(sfd, si, sizeof si);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                logmsg("server: signalfd: %s", strerror(errno));
            return stop;
        }
        for (size_t i = 0; i < (size_t)r / sizeof si[0]; i++) {
            if (si[i].ssi_signo == SIGCHLD)
                *chld = true;
            else if (si[i].ssi_signo == SIGINT || si[i].ssi_signo == SIGTERM)
                stop = true;
        }
        if ((size_t)r < sizeof si)
            return stop;
    }
}

static void stop_all(void)
{
    close(lfd);                          /* stop accepting */
    lfd = -1;
    for (size_t i = 0; i < kids.n; i++)
        if (kill(kids.v[i].pid, SIGTERM) < 0 && errno != ESRCH)
            logmsg("server: kill %d: %s", (int)kids.v[i].pid, strerror(errno));

    long long deadline = now_ms() + STOP_GRACE_MS;
    reap();
    while (kids.n > 0) {
        long long left = deadline - now_ms();
        if (left <= 0)
            break;
        struct pollfd pfd = { .fd = sfd, .events = POLLIN };
        if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR) {
            logmsg("server: poll: %s", strerror(errno));
            break;
        }
        bool chld = false;
        (void)read_signals(&chld);       /* a second SIGINT changes nothing */
        reap();
    }

    for (size_t i = 0; i < kids.n; i++)
        if (kill(kids.v[i].pid, SIGKILL) < 0 && errno != ESRCH)
            logmsg("server: kill %d: %s", (int)kids.v[i].pid, strerror(errno));
    while (kids.n > 0) {
        pid_t pid = waitpid(-1, NULL, 0);
        if (pid > 0) {
            forget(pid);
        } else if (errno != EINTR) {     /* ECHILD: nobody left to wait for */
            while (kids.n > 0)
                forget(kids.v[0].pid);
        }
    }
}

static int parse_port(const char *s)
{
    char *end;

    if (!isdigit((unsigned char)s[0]))
        return -1;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < 0 || v > 65535)
        return -1;
    return (int)v;
}

__attribute__((noreturn, format(printf, 1, 2)))
static void bad_usage(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fprintf(stderr, "server: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    usage(stderr);
    exit(2);
}

static int open_listener(const char *host, int port)
{
    struct sockaddr_storage ss;
    socklen_t len;
    char where[ADDR_LEN];
    int one = 1;

    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
        len = sizeof *in;
    } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        len = sizeof *in6;
    } else {
        bad_usage("invalid address '%s' (an IPv4 or IPv6 literal)", host);
    }
    format_addr((struct sockaddr *)&ss, where, sizeof where);

    const char *what = "socket";
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail;
    what = "setsockopt SO_REUSEADDR";
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        goto fail;
    what = "bind";
    if (bind(fd, (struct sockaddr *)&ss, len) < 0)
        goto fail;
    what = "listen";
    if (listen(fd, SOMAXCONN) < 0)
        goto fail;
    what = "getsockname";
    len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        goto fail;
    format_addr((struct sockaddr *)&ss, where, sizeof where);
    what = "write stdout";
    if (printf("listening on %s\n", where) < 0 || fflush(stdout) == EOF)
        goto fail;
    return fd;
fail:
    fprintf(stderr, "server: %s %s: %s\n", what, where, strerror(errno));
    if (fd >= 0)
        close(fd);
    return -1;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 8080, opt;
    char optname[3] = "-?";

    opterr = 0;
    while ((opt = getopt(argc, argv, ":p:b:qvh")) != -1) {
        switch (opt) {
        case 'p':
            if ((port = parse_port(optarg)) < 0)
                bad_usage("invalid port '%s' (0 to 65535)", optarg);
            break;
        case 'b': host = optarg; break;
        case 'q': quiet = true; break;
        case 'v': verbose = true; break;
        case 'h': usage(stdout); return 0;
        case ':':
            optname[1] = (char)optopt;
            bad_usage("option %s needs a value", optname);
        default:
            optname[1] = (char)optopt;
            bad_usage("unknown option %s", optname);
        }
    }
    if (optind < argc)
        bad_usage("unexpected argument '%s'", argv[optind]);

    /* block the signals first: from now on they wait for us in the signalfd */
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0) {
        fprintf(stderr, "server: sigprocmask: %s\n", strerror(errno));
        return 1;
    }
    struct sigaction ign;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;            /* a closed log pipe must not kill us either */
    sigemptyset(&ign.sa_mask);
    if (sigaction(SIGPIPE, &ign, NULL) < 0) {
        fprintf(stderr, "server: sigaction: %s\n", strerror(errno));
        return 1;
    }
    sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0) {
        fprintf(stderr, "server: signalfd: %s\n", strerror(errno));
        return 1;
    }
    spare = open("/dev/null", O_RDONLY | O_CLOEXEC);   /* -1 only costs the refusal trick */
    lfd = open_listener(host, port);
    if (lfd < 0) {
        close(sfd);
        if (spare >= 0)
            close(spare);
        return 1;
    }

    bool stopping = false;
    while (!stopping) {
        struct pollfd pfd[2] = {
            { .fd = sfd, .events = POLLIN },
            { .fd = lfd, .events = POLLIN },
        };
        int timeout = -1;
        if (paused) {
            long long left = pause_until - now_ms();
            if (left <= 0)
                paused = false;
            else
                timeout = (int)left;
        }
        if (poll(pfd, paused ? 1 : 2, timeout) < 0) {
            if (errno == EINTR)
                continue;
            logmsg("server: poll: %s", strerror(errno));
            break;
        }
        if (pfd[0].revents) {
            bool chld = false;
            stopping = read_signals(&chld);
            if (chld)
                reap();
        }
        if (!stopping && !paused && (pfd[1].revents & (POLLIN | POLLERR)))
            accept_batch();
    }

    stop_all();
    logmsg("shutting down");
    close(sfd);
    if (spare >= 0)
        close(spare);
    free(kids.v);
    return 0;
}
