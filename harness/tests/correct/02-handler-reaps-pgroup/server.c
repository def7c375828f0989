/*
 * chapter: 02
 * design: fork per client; SIGCHLD handler reaps with a waitpid WNOHANG loop into a pid ring counted by a volatile sig_atomic_t; blocking accept() without SA_RESTART; children in one process group stopped by killpg (TERM, 1.5 s, KILL)
 *
 * The parent blocks in accept() with every handler installed without
 * SA_RESTART, so a signal breaks the wait with EINTR. The SIGCHLD handler
 * itself reaps: it loops on waitpid(-1, WNOHANG), stores each pid in a ring of
 * volatile sig_atomic_t slots and bumps a volatile sig_atomic_t count of
 * finished children; no zombie outlives its signal. The main loop, with the
 * handled signals blocked, turns that count into "-" lines and takes the
 * children out of its table; it never touches stdio from a handler. Two lost
 * wake-ups are closed without polling: the stop handler shuts the listening
 * socket down, so accept() fails at once even if the signal landed just before
 * the call; and the SIGCHLD handler arms alarm(1), re-armed while the count is
 * not drained, so a child reaped in that same gap is logged within a second.
 * Each child joins a process group of the parent's making (setpgid in both,
 * the group led by the first child while any member is left unreaped), so the
 * stop reaches them all with one killpg(): SIGTERM, up to 1.5 s of waiting for
 * the handler to reap them, SIGKILL for the rest, then "shutting down". A child
 * echoes with blocking recv()/send(MSG_NOSIGNAL) through one 64 KiB buffer: it
 * reads again only once that buffer is sent back, so its pending output never
 * exceeds 64 KiB.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RING 1024           /* reaped pids the handler can hand over at once */
#define BUF_SIZE 65536      /* a child's only buffer: the bound on its pending output */
#define PEER_LEN 64         /* "[ffff:...]:65535" */
#define GRACE_MS 1500       /* SIGTERM to SIGKILL, inside the contract's 2 s */
#define VERBOSE_MAX 200     /* printable characters shown per message with -v */

_Static_assert(sizeof(sig_atomic_t) >= sizeof(pid_t), "a pid must fit a sig_atomic_t");

static const int handled_sigs[] = { SIGCHLD, SIGALRM, SIGTERM, SIGINT };
#define NSIGS (sizeof handled_sigs / sizeof handled_sigs[0])

/* Shared between the handlers and the main loop: volatile sig_atomic_t only. */
static volatile sig_atomic_t stop_requested;
static volatile sig_atomic_t listen_fd_sig = -1;   /* what the stop handler shuts down */
static volatile sig_atomic_t reaped_pid[RING];     /* filled by the SIGCHLD handler */
static volatile sig_atomic_t reaped_head;          /* next slot to fill (handler only) */
static volatile sig_atomic_t reaped_count;         /* finished children not yet logged */
static volatile sig_atomic_t ring_full;            /* the handler left zombies for later */

union addr {
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
    struct sockaddr_storage ss;
};

struct child {
    pid_t pid;
    int grouped;                /* setpgid() put it in the group */
    char peer[PEER_LEN];
};

struct server {
    int quiet, verbose;
    int listen_fd;
    pid_t pgid;                 /* the children's group, 0 when it has no member left */
    size_t ngrouped;            /* its unreaped members */
    struct child *children;     /* forked and not yet logged "-" */
    size_t nchildren, cap;
    int tail;                   /* next ring slot to read (main loop only) */
    sigset_t handled;           /* handled_sigs */
    sigset_t run_mask;          /* the inherited mask with handled_sigs let in */
};

/* ---- handlers: async-signal-safe calls and sig_atomic_t objects only ---- */

static void on_stop(int sig)
{
    int saved = errno;
    (void)sig;
    stop_requested = 1;
    /* Wakes accept() now, or makes the next one fail: no lost wake-up. */
    if (listen_fd_sig >= 0)
        (void)shutdown(listen_fd_sig, SHUT_RDWR);   /* on failure, EINTR still comes */
    errno = saved;
}

static void on_sigchld(int sig)
{
    int saved = errno;
    (void)sig;
    for (;;) {
        if (reaped_count >= RING) {
            ring_full = 1;      /* the main loop raises SIGCHLD again once drained */
            break;
        }
        pid_t pid = waitpid(-1, NULL, WNOHANG);
        if (pid <= 0)
            break;              /* 0: none finished; -1: ECHILD (or EINTR, retried by the next signal) */
        reaped_pid[reaped_head] = pid;
        reaped_head = (reaped_head + 1) % RING;
        reaped_count++;
    }
    if (reaped_count > 0)
        alarm(1);               /* in case accept() was about to block */
    errno = saved;
}

static void on_alarm(int sig)
{
    int saved = errno;
    (void)sig;
    if (reaped_count > 0)
        alarm(1);               /* the main loop has not caught up yet: try again */
    errno = saved;
}

/* ---- output ---- */

/* After EAGAIN (a non-blocking stderr, a socket timeout): sleep until ready. */
static int wait_fd(int fd, short events)
{
    struct pollfd pfd = { .fd = fd, .events = events };
    return poll(&pfd, 1, -1) < 0 && errno != EINTR ? -1 : 0;
}

/* Writes everything: EINTR retried, EAGAIN waited out, short writes completed. */
static int put_all(int fd, const char *p, size_t len, int is_socket)
{
    while (len > 0) {
        ssize_t n = is_socket ? send(fd, p, len, MSG_NOSIGNAL) : write(fd, p, len);
        if (n >= 0) {
            p += n;
            len -= (size_t)n;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (wait_fd(fd, POLLOUT) < 0)
                return -1;
        } else if (errno != EINTR) {
            return -1;
        }
    }
    return 0;
}

/* One line, one write(): lines of the parent and the children never mix. */
__attribute__((format(printf, 1, 2)))
static void logmsg(const char *fmt, ...)
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
    (void)put_all(STDERR_FILENO, line, (size_t)n, 0);   /* nowhere to report a failure */
}

static void format_addr(const union addr *a, char *out, size_t outsz)
{
    char host[INET6_ADDRSTRLEN];
    int v6 = a->sa.sa_family == AF_INET6;
    if (inet_ntop(a->sa.sa_family, v6 ? (const void *)&a->in6.sin6_addr : (const void *)&a->in.sin_addr,
                  host, sizeof host) == NULL)
        strcpy(host, "?");
    snprintf(out, outsz, v6 ? "[%s]:%u" : "%s:%u", host,
             (unsigned)ntohs(v6 ? a->in6.sin6_port : a->in.sin_port));
}

static void close_fd(int fd)
{
    /* Linux releases the descriptor even on EINTR: never retry close(). */
    if (close(fd) < 0 && errno != EINTR)
        logmsg("server: close: %s", strerror(errno));
}

/* ---- the child: echo one client ---- */

static void log_received(const char *peer, const char *buf, size_t n)
{
    char text[VERBOSE_MAX + 1];
    size_t k = 0, i;
    for (i = 0; i < n && k < VERBOSE_MAX; i++)
        if (buf[i] >= 0x20 && buf[i] < 0x7f)
            text[k++] = buf[i];
    text[k] = '\0';
    logmsg("recv %s: %zu bytes \"%s\"%s", peer, n, text, i < n ? "..." : "");
}

static void echo_client(int fd, const char *peer, int verbose)
{
    char buf[BUF_SIZE];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n == 0)
            return;             /* EOF, half-close included: all was sent back */
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if ((errno == EAGAIN || errno == EWOULDBLOCK) && wait_fd(fd, POLLIN) == 0)
                continue;
            if (errno != ECONNRESET)
                logmsg("server: recv %s: %s", peer, strerror(errno));
            return;
        }
        if (verbose)
            log_received(peer, buf, (size_t)n);
        /* Nothing more is read until this chunk is sent back. */
        if (put_all(fd, buf, (size_t)n, 1) < 0) {
            if (errno != EPIPE && errno != ECONNRESET)
                logmsg("server: send %s: %s", peer, strerror(errno));
            return;
        }
    }
}

static _Noreturn void run_child(struct server *s, int fd, const char *peer, pid_t parent)
{
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    /* The handled signals are still blocked: reset them before letting them in. */
    for (size_t i = 0; i < NSIGS; i++)
        if (sigaction(handled_sigs[i], &dfl, NULL) < 0) {
            logmsg("server: child sigaction: %s", strerror(errno));
            _exit(1);
        }
    listen_fd_sig = -1;
    close_fd(s->listen_fd);
    free(s->children);          /* the parent's table: not ours to keep */
    s->children = NULL;
    /* The parent makes the same call; whichever runs first wins, both agree. */
    if (setpgid(0, s->pgid) < 0)
        logmsg("server: child setpgid: %s", strerror(errno));
    /* If the parent dies outright, do not keep its client for ever. */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0)
        logmsg("server: prctl: %s", strerror(errno));
    if (getppid() != parent)
        _exit(0);
    if (sigprocmask(SIG_SETMASK, &s->run_mask, NULL) < 0) {
        logmsg("server: child sigprocmask: %s", strerror(errno));
        _exit(1);
    }
    echo_client(fd, peer, s->verbose);
    close_fd(fd);
    _exit(0);
}

/* ---- the parent ---- */

/* Blocks the handled signals, or lets them in again. */
static void set_mask(struct server *s, int block)
{
    if (sigprocmask(block ? SIG_BLOCK : SIG_SETMASK, block ? &s->handled : &s->run_mask, NULL) < 0)
        abort();                /* cannot fail with valid arguments */
}

static long now_ms(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
        abort();                /* CLOCK_MONOTONIC always exists on Linux */
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000;
}

/* Turns what the handler reaped into "-" lines. Called with the handled signals blocked. */
static void drain_reaped(struct server *s)
{
    while (reaped_count > 0) {
        pid_t pid = (pid_t)reaped_pid[s->tail];
        s->tail = (s->tail + 1) % RING;
        reaped_count--;
        size_t i;
        for (i = 0; i < s->nchildren && s->children[i].pid != pid; i++)
            ;
        if (i == s->nchildren) {
            logmsg("server: reaped unknown child %d", (int)pid);
            continue;
        }
        if (s->children[i].grouped && --s->ngrouped == 0)
            s->pgid = 0;        /* its last member reaped: the group is gone */
        s->nchildren--;
        if (!s->quiet)
            logmsg("- %s (%zu active)", s->children[i].peer, s->nchildren);
        s->children[i] = s->children[s->nchildren];
    }
    if (ring_full) {
        ring_full = 0;
        (void)raise(SIGCHLD);   /* pending until unblocked: the handler reaps the rest */
    }
}

static void spawn_child(struct server *s, int fd, const union addr *peer_addr)
{
    char peer[PEER_LEN];
    format_addr(peer_addr, peer, sizeof peer);

    if (s->nchildren == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 16;
        struct child *p = realloc(s->children, cap * sizeof *p);
        if (p == NULL) {
            logmsg("server: out of memory, refusing %s", peer);
            close_fd(fd);
            return;
        }
        s->children = p;
        s->cap = cap;
    }

    set_mask(s, 1);
    drain_reaped(s);            /* the group may have just emptied: then start a new one */
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int err = errno;
        set_mask(s, 0);
        logmsg("server: fork: %s, refusing %s", strerror(err), peer);
        close_fd(fd);
        return;
    }
    if (pid == 0)
        run_child(s, fd, peer, parent);

    struct child *c = &s->children[s->nchildren++];
    c->pid = pid;
    memcpy(c->peer, peer, sizeof c->peer);
    c->grouped = setpgid(pid, s->pgid ? s->pgid : pid) == 0;
    if (c->grouped) {
        s->pgid = s->pgid ? s->pgid : pid;
        s->ngrouped++;
    } else {
        /* Out of the group, killpg() would miss it: end it now, it is reaped as usual. */
        logmsg("server: setpgid %d: %s", (int)pid, strerror(errno));
        if (kill(pid, SIGKILL) < 0)
            logmsg("server: kill %d: %s", (int)pid, strerror(errno));
    }
    close_fd(fd);
    if (!s->quiet)
        logmsg("+ %s (%zu active)", peer, s->nchildren);
    set_mask(s, 0);             /* SIGCHLD for this child can only come after its "+" */
}

static void accept_loop(struct server *s)
{
    int out_of_fds = 0;
    for (;;) {
        if (stop_requested)
            return;
        if (reaped_count > 0) {
            set_mask(s, 1);
            drain_reaped(s);
            set_mask(s, 0);
            continue;
        }
        union addr peer;
        socklen_t len = sizeof peer;
        int fd = accept(s->listen_fd, &peer.sa, &len);
        if (fd < 0) {
            switch (errno) {
            case EINTR:
                continue;
            case EMFILE: case ENFILE: case ENOBUFS: case ENOMEM:
                /* The client waits in the backlog; retry in 100 ms, no spinning. */
                if (!out_of_fds)
                    logmsg("server: accept: %s, pausing", strerror(errno));
                out_of_fds = 1;
                if (poll(NULL, 0, 100) < 0 && errno != EINTR)
                    logmsg("server: poll: %s", strerror(errno));
                continue;
            case ECONNABORTED: case EPROTO: case EPERM: case ENETDOWN: case ENOPROTOOPT:
            case EHOSTDOWN: case ENONET: case EHOSTUNREACH: case EOPNOTSUPP: case ENETUNREACH:
                continue;       /* that client is gone: serve the next */
            default:
                if (stop_requested)
                    return;     /* EINVAL: the stop handler shut the socket down */
                logmsg("server: accept: %s", strerror(errno));
                stop_requested = 1;
                return;
            }
        }
        out_of_fds = 0;
        if (stop_requested) {
            close_fd(fd);       /* stopping: refused, never served */
            return;
        }
        spawn_child(s, fd, &peer);
    }
}

/* With the handled signals blocked: waits for the handler to reap every child,
 * for at most limit_ms (< 0: no limit). */
static void wait_children(struct server *s, long limit_ms)
{
    sigset_t wait_mask = s->run_mask;
    sigaddset(&wait_mask, SIGTERM);     /* a second stop request changes nothing */
    sigaddset(&wait_mask, SIGINT);
    long deadline = now_ms() + limit_ms;
    for (;;) {
        drain_reaped(s);
        if (s->nchildren == 0)
            return;
        struct timespec ts, *tsp = NULL;
        if (limit_ms >= 0) {
            long left = deadline - now_ms();
            if (left <= 0)
                return;
            ts.tv_sec = left / 1000;
            ts.tv_nsec = left % 1000 * 1000000;
            tsp = &ts;
        }
        /* Unblocks SIGCHLD and sleeps in one step: no reaping is missed. */
        if (ppoll(NULL, 0, tsp, &wait_mask) < 0 && errno != EINTR) {
            logmsg("server: ppoll: %s", strerror(errno));
            return;
        }
    }
}

static void stop_server(struct server *s)
{
    set_mask(s, 1);
    listen_fd_sig = -1;         /* the number may be reused once closed */
    close_fd(s->listen_fd);
    drain_reaped(s);
    if (s->ngrouped > 0 && killpg(s->pgid, SIGTERM) < 0)
        logmsg("server: killpg TERM: %s", strerror(errno));
    wait_children(s, GRACE_MS);
    if (s->nchildren > 0) {
        logmsg("server: %zu children still running, sending SIGKILL", s->nchildren);
        if (s->ngrouped > 0 && killpg(s->pgid, SIGKILL) < 0)
            logmsg("server: killpg KILL: %s", strerror(errno));
        wait_children(s, -1);
    }
    alarm(0);
    free(s->children);
    s->children = NULL;
    logmsg("shutting down");
}

/* ---- setup ---- */

static const char usage[] =
    "usage: server [-p PORT] [-b ADDR] [-q] [-v] [-h]\n"
    "  -p PORT  port to listen on (default 8080; 0: chosen by the kernel)\n"
    "  -b ADDR  IPv4 or IPv6 address to bind (default 127.0.0.1)\n"
    "  -q       quiet: no per-connection log lines\n"
    "  -v       verbose: log each message received\n"
    "  -h       show this help\n";

static _Noreturn void bad_usage(const char *what, int opt, const char *arg)
{
    if (arg)
        fprintf(stderr, "server: %s -%c: '%s'\n%s", what, opt, arg, usage);
    else
        fprintf(stderr, "server: %s -%c\n%s", what, opt, usage);
    exit(2);
}

static int parse_addr(const char *text, unsigned port, union addr *a, socklen_t *len)
{
    memset(a, 0, sizeof *a);
    if (inet_pton(AF_INET, text, &a->in.sin_addr) == 1) {
        a->in.sin_family = AF_INET;
        a->in.sin_port = htons((uint16_t)port);
        *len = sizeof a->in;
        return 0;
    }
    memset(a, 0, sizeof *a);
    if (inet_pton(AF_INET6, text, &a->in6.sin6_addr) == 1) {
        a->in6.sin6_family = AF_INET6;
        a->in6.sin6_port = htons((uint16_t)port);
        *len = sizeof a->in6;
        return 0;
    }
    return -1;
}

static int open_listener(const union addr *a, socklen_t len)
{
    char where[PEER_LEN];
    format_addr(a, where, sizeof where);
    int fd = socket(a->sa.sa_family, SOCK_STREAM, 0);
    if (fd < 0) {
        fprintf(stderr, "server: socket: %s\n", strerror(errno));
        return -1;
    }
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        fprintf(stderr, "server: setsockopt SO_REUSEADDR: %s\n", strerror(errno));
    if (bind(fd, &a->sa, len) < 0) {
        fprintf(stderr, "server: bind %s: %s\n", where, strerror(errno));
        close_fd(fd);
        return -1;
    }
    if (listen(fd, SOMAXCONN) < 0) {
        fprintf(stderr, "server: listen %s: %s\n", where, strerror(errno));
        close_fd(fd);
        return -1;
    }
    return fd;
}

static int install_handlers(struct server *s)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_mask = s->handled;    /* the handlers never interrupt one another */
    for (size_t i = 0; i < NSIGS; i++) {
        int sig = handled_sigs[i];
        sa.sa_handler = sig == SIGCHLD ? on_sigchld : sig == SIGALRM ? on_alarm : on_stop;
        sa.sa_flags = sig == SIGCHLD ? SA_NOCLDSTOP : 0;    /* no SA_RESTART: accept() must break */
        if (sigaction(sig, &sa, NULL) < 0)
            return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct server s;
    memset(&s, 0, sizeof s);
    const char *bind_text = "127.0.0.1";
    unsigned port = 8080;
    int opt;

    opterr = 0;
    while ((opt = getopt(argc, argv, ":p:b:qvh")) != -1) {
        switch (opt) {
        case 'p': {
            char *end;
            errno = 0;
            long v = strtol(optarg, &end, 10);
            if (optarg[0] < '0' || optarg[0] > '9' || *end != '\0' || errno != 0 || v > 65535)
                bad_usage("bad port for", 'p', optarg);
            port = (unsigned)v;
            break;
        }
        case 'b': bind_text = optarg; break;
        case 'q': s.quiet = 1; break;
        case 'v': s.verbose = 1; break;
        case 'h': fputs(usage, stdout); return 0;
        case ':': bad_usage("missing value for", optopt, NULL);
        default:  bad_usage("unknown option", optopt, NULL);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "server: unexpected argument '%s'\n%s", argv[optind], usage);
        return 2;
    }
    union addr addr, bound;
    socklen_t addr_len, bound_len = sizeof bound;
    char where[PEER_LEN];
    if (parse_addr(bind_text, port, &addr, &addr_len) < 0)
        bad_usage("not an IPv4 or IPv6 address for", 'b', bind_text);

    /* Everything up to the accept loop runs with the handled signals blocked. */
    sigemptyset(&s.handled);
    for (size_t i = 0; i < NSIGS; i++)
        sigaddset(&s.handled, handled_sigs[i]);
    if (sigprocmask(SIG_BLOCK, &s.handled, &s.run_mask) < 0 || install_handlers(&s) < 0) {
        fprintf(stderr, "server: signals: %s\n", strerror(errno));
        return 1;
    }
    for (size_t i = 0; i < NSIGS; i++)
        sigdelset(&s.run_mask, handled_sigs[i]);    /* even if our parent blocked them */

    s.listen_fd = open_listener(&addr, addr_len);
    if (s.listen_fd < 0)
        return 1;
    listen_fd_sig = s.listen_fd;

    if (getsockname(s.listen_fd, &bound.sa, &bound_len) < 0) {
        fprintf(stderr, "server: getsockname: %s\n", strerror(errno));
        return 1;
    }
    format_addr(&bound, where, sizeof where);
    if (printf("listening on %s\n", where) < 0 || fflush(stdout) == EOF) {
        fprintf(stderr, "server: stdout: %s\n", strerror(errno));
        return 1;               /* no ready line: nobody can use this server */
    }

    set_mask(&s, 0);            /* a stop that came early is delivered here */
    accept_loop(&s);
    stop_server(&s);
    return 0;
}
