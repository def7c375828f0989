/*
 * chapter: 08
 * design: master pre-binds all N SO_REUSEPORT listeners and keeps them open; forked workers inherit one each (epoll LT or -e ET); death pipe; signalfd in master and workers
 *
 * The master binds every listening socket itself before any worker exists: the
 * first with the requested port (perhaps 0), the others with the port the first
 * got, SO_REUSEPORT set on each before bind, so the kernel spreads connections
 * over N accept queues. It prints the ready line, then forks worker i, which
 * keeps listener i, closes the others and runs its own epoll loop with its own
 * active count. The master never closes a listener while it runs: when a worker
 * dies, the connections the kernel keeps steering to its queue wait there, and
 * the replacement, forked from the same master, inherits that very socket and
 * accepts them. The master sleeps in poll() on a signalfd (SIGCHLD, SIGINT,
 * SIGTERM): a dead worker is reaped and replaced at once (at most every 200 ms
 * per slot, so a worker that cannot start does not make it spin); a stop is
 * forwarded as SIGTERM, a worker still alive 1.5 s later is killed and waited
 * for, and "shutting down" comes once every worker has gone. Workers learn of
 * the master's death, even by SIGKILL, from a pipe whose write end only the
 * master holds: EOF means stop. A worker stops on SIGTERM through its own
 * signalfd, closes and logs every connection, and exits 0. Output a client has
 * not taken is capped at one 64 KiB read: while some is pending the worker reads
 * nothing more from that client. Out of descriptors, a spare one is given up for
 * a moment to accept and close the waiting client; if even that fails, accepting
 * pauses until a connection closes or 100 ms pass. Sends use MSG_NOSIGNAL.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (64 * 1024)       /* one read; also the bound on pending output */
#define MAX_EVENTS 256
#define LT_BUDGET 8             /* reads or accepts per wake-up, level-triggered */
#define MAX_WORKERS 256
#define STOP_DEADLINE_MS 1500   /* then SIGKILL: the contract allows 2 s */
#define RESPAWN_GAP_MS 200
#define PAUSE_MS 100

static const char usage_text[] =
    "usage: server [-p PORT] [-b ADDR] [-q] [-v] [-w N] [-e] [-h]\n"
    "  (-p 0: kernel-chosen port; -w: worker processes, default the CPU count;"
    " -e: edge-triggered epoll)\n";

union addr {
    struct sockaddr sa;
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
    struct sockaddr_storage ss;
};

static int opt_port = 8080, opt_workers;
static const char *opt_bind = "127.0.0.1";
static bool opt_quiet, opt_verbose, opt_edge;
static int tag;                 /* 0 in the master, i + 1 in worker i */

/* ---------------------------------------------------------------- helpers */

/* One line, one write(2): lines of different processes never mix. */
__attribute__((format(printf, 1, 2)))
static void logmsg(const char *fmt, ...) {
    char line[512];
    size_t cap = sizeof line - 1, n = 0;        /* keep a byte for '\n' */
    if (tag)
        n = (size_t)snprintf(line, cap, "[w%d] ", tag);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, cap - n, fmt, ap);
    va_end(ap);
    if (m < 0)
        return;
    n += (size_t)m < cap - n - 1 ? (size_t)m : cap - n - 1;
    line[n++] = '\n';
    for (size_t off = 0; off < n;) {
        ssize_t k = write(STDERR_FILENO, line + off, n - off);
        if (k > 0)
            off += (size_t)k;
        else if (k == 0 || errno != EINTR)
            return;             /* nowhere to report a broken stderr */
    }
}

static void closefd(int fd) {
    if (fd >= 0 && close(fd) < 0 && errno != EINTR)
        logmsg("close %d: %s", fd, strerror(errno));
}

static long long now_ms(void) {
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
        return 0;               /* cannot fail with CLOCK_MONOTONIC */
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static void format_addr(const union addr *a, char *out, size_t len) {
    char ip[INET6_ADDRSTRLEN] = "?";
    if (a->sa.sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &a->in6.sin6_addr, ip, sizeof ip);
        snprintf(out, len, "[%s]:%u", ip, (unsigned)ntohs(a->in6.sin6_port));
    } else {
        inet_ntop(AF_INET, &a->in4.sin_addr, ip, sizeof ip);
        snprintf(out, len, "%s:%u", ip, (unsigned)ntohs(a->in4.sin_port));
    }
}

__attribute__((format(printf, 1, 2), noreturn))
static void usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("server: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n%s", usage_text);
    exit(2);
}

static bool parse_int(const char *s, long min, long max, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return false;
    *out = (int)v;
    return true;
}

/* ---------------------------------------------------------------- worker */

struct conn {
    int fd;
    char *out;                  /* pending output, at most CHUNK bytes */
    size_t off, len;
    struct conn *prev, *next;
    char name[INET6_ADDRSTRLEN + 8];
};

static struct {
    int lfd, epfd, sfd, pipefd, spare;
    bool stop, paused;
    long long resume_at;
    size_t active;
    struct conn *head;
} w = { -1, -1, -1, -1, -1, false, false, 0, 0, NULL };

static char tok_listen, tok_signal, tok_master;     /* epoll tags */
static char iobuf[CHUNK];

static int ep_ctl(int op, int fd, uint32_t events, void *ptr) {
    struct epoll_event ev = { .events = events, .data.ptr = ptr };
    return epoll_ctl(w.epfd, op, fd, &ev);
}

static void pause_accept(void) {
    if (!w.paused && ep_ctl(EPOLL_CTL_DEL, w.lfd, 0, NULL) < 0)
        logmsg("epoll_ctl: %s", strerror(errno));
    w.paused = true;
    w.resume_at = now_ms() + PAUSE_MS;
}

static void resume_accept(void) {
    w.paused = false;
    if (ep_ctl(EPOLL_CTL_ADD, w.lfd, EPOLLIN | (opt_edge ? EPOLLET : 0), &tok_listen) < 0) {
        logmsg("epoll_ctl: %s", strerror(errno));
        pause_accept();
    }
}

static void close_conn(struct conn *c) {
    closefd(c->fd);             /* its only descriptor: it leaves the epoll set */
    if (c->prev)
        c->prev->next = c->next;
    else
        w.head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    w.active--;
    if (!opt_quiet)
        logmsg("- %s (%zu active)", c->name, w.active);
    free(c->out);
    free(c);
    if (w.paused && !w.stop)
        resume_accept();        /* a descriptor is free again */
}

/* Sends until done or EAGAIN; *done counts what went. -1: the peer is gone. */
static int send_buf(int fd, const char *p, size_t len, size_t *done) {
    for (*done = 0; *done < len;) {
        ssize_t n = send(fd, p + *done, len - *done, MSG_NOSIGNAL);
        if (n > 0)
            *done += (size_t)n;
        else if (n == 0 || errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        else if (errno != EINTR)
            return -1;
    }
    return 0;
}

/* Level-triggered: read or write interest. Edge-triggered: both, set once. */
static int set_interest(struct conn *c, uint32_t events) {
    return opt_edge ? 0 : ep_ctl(EPOLL_CTL_MOD, c->fd, events, c);
}

static void log_message(const struct conn *c, const char *p, size_t n) {
    char text[201];
    size_t k = 0;
    for (size_t i = 0; i < n && k < sizeof text - 1; i++)
        if (isprint((unsigned char)p[i]))
            text[k++] = p[i];
    text[k] = '\0';
    logmsg("%s sent %zu bytes: %s", c->name, n, text);
}

/* Any event: flush what is pending, then read and echo if allowed. */
static void serve(struct conn *c) {
    size_t done;
    if (c->len > 0) {
        if (send_buf(c->fd, c->out + c->off, c->len, &done) < 0)
            goto gone;
        c->off += done;
        c->len -= done;
        if (c->len > 0)
            return;             /* still pending: wait until writable */
        free(c->out);
        c->out = NULL;
        c->off = 0;
        if (set_interest(c, EPOLLIN) < 0)
            goto gone;
    }
    for (int k = 0; opt_edge || k < LT_BUDGET; k++) {
        ssize_t n = recv(c->fd, iobuf, sizeof iobuf, 0);
        if (n == 0)             /* half-close: nothing pending, all echoed */
            goto gone;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            goto gone;          /* ECONNRESET and the like: this client only */
        }
        if (opt_verbose)
            log_message(c, iobuf, (size_t)n);
        if (send_buf(c->fd, iobuf, (size_t)n, &done) < 0)
            goto gone;
        if (done < (size_t)n) {
            /* The client is not reading: keep the rest, stop reading it. */
            c->len = (size_t)n - done;
            if (!(c->out = malloc(c->len)))
                goto gone;
            memcpy(c->out, iobuf + done, c->len);
            if (set_interest(c, EPOLLOUT) < 0)
                goto gone;
            return;
        }
    }
    return;
gone:
    close_conn(c);
}

static void add_conn(int fd, const union addr *a) {
    struct conn *c = calloc(1, sizeof *c);
    if (!c) {
        closefd(fd);
        return;
    }
    c->fd = fd;
    format_addr(a, c->name, sizeof c->name);
    if (ep_ctl(EPOLL_CTL_ADD, fd, opt_edge ? EPOLLIN | EPOLLOUT | EPOLLET : EPOLLIN, c) < 0) {
        logmsg("epoll_ctl %s: %s", c->name, strerror(errno));
        closefd(fd);
        free(c);
        return;
    }
    if ((c->next = w.head))
        w.head->prev = c;
    w.head = c;
    w.active++;
    if (!opt_quiet)
        logmsg("+ %s (%zu active)", c->name, w.active);
}

/* Out of descriptors: free the spare one, take the waiting client, close it. */
static bool refuse_one(void) {
    if (w.spare < 0)
        return false;
    closefd(w.spare);
    int fd;
    do
        fd = accept4(w.lfd, NULL, NULL, SOCK_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    bool ok = fd >= 0 || errno == EAGAIN || errno == EWOULDBLOCK;
    closefd(fd);
    w.spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
    return ok && w.spare >= 0;
}

static void accept_clients(void) {
    for (int k = 0; opt_edge || k < LT_BUDGET; k++) {
        union addr a;
        socklen_t alen = sizeof a;
        int fd = accept4(w.lfd, &a.sa, &alen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            add_conn(fd, &a);
            continue;
        }
        switch (errno) {
        case EINTR: case ECONNABORTED: case EPROTO: case EPERM:
        case ENETDOWN: case ENOPROTOOPT: case EHOSTDOWN: case ENONET:
        case EHOSTUNREACH: case EOPNOTSUPP: case ENETUNREACH:
            continue;           /* that client only */
        case EAGAIN:
            return;
        case EMFILE: case ENFILE:
            if (refuse_one())
                continue;
            pause_accept();
            return;
        default:                /* ENOBUFS, ENOMEM, ...: retry a little later */
            logmsg("accept: %s", strerror(errno));
            pause_accept();
            return;
        }
    }
}

static void on_control(void *tok) {
    if (tok == &tok_signal) {   /* SIGTERM is the only signal it carries */
        struct signalfd_siginfo si;
        ssize_t n;
        while ((n = read(w.sfd, &si, sizeof si)) > 0 || (n < 0 && errno == EINTR))
            if (n > 0)
                w.stop = true;
    } else {                    /* the master never writes: only EOF comes */
        char c;
        ssize_t n = read(w.pipefd, &c, 1);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            w.stop = true;
    }
}

static int worker_loop(void) {
    static struct epoll_event evs[MAX_EVENTS];
    if ((w.epfd = epoll_create1(EPOLL_CLOEXEC)) < 0
        || (w.spare = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0
        || ep_ctl(EPOLL_CTL_ADD, w.pipefd, EPOLLIN, &tok_master) < 0
        || ep_ctl(EPOLL_CTL_ADD, w.sfd, EPOLLIN, &tok_signal) < 0
        || ep_ctl(EPOLL_CTL_ADD, w.lfd, EPOLLIN | (opt_edge ? EPOLLET : 0), &tok_listen) < 0) {
        logmsg("worker setup: %s", strerror(errno));
        return 1;
    }
    while (!w.stop) {
        int timeout = -1;
        if (w.paused) {
            long long left = w.resume_at - now_ms();
            timeout = left > 0 ? (int)left : 0;
        }
        int n = epoll_wait(w.epfd, evs, MAX_EVENTS, timeout);
        if (n < 0 && errno != EINTR) {
            logmsg("epoll_wait: %s", strerror(errno));
            break;
        }
        if (w.paused && now_ms() >= w.resume_at)
            resume_accept();
        for (int i = 0; i < n && !w.stop; i++) {
            void *p = evs[i].data.ptr;
            if (p == &tok_listen)
                accept_clients();
            else if (p == &tok_signal || p == &tok_master)
                on_control(p);
            else
                serve(p);
        }
    }
    w.stop = true;
    while (w.head)
        close_conn(w.head);
    return 0;
}

/* ---------------------------------------------------------------- master */

struct slot {
    pid_t pid;                  /* 0: no worker in this slot */
    long long born, due;        /* due: when to (re)start it */
};

static int *listeners;
static struct slot *slots;
static int death_pipe[2] = { -1, -1 }, master_sfd = -1;

/* Runs in the child: keep listener i and the pipe's read end, nothing else. */
static int worker_main(int i) {
    tag = i + 1;
    for (int j = 0; j < opt_workers; j++)
        if (j != i)
            closefd(listeners[j]);
    closefd(death_pipe[1]);
    closefd(master_sfd);
    w.lfd = listeners[i];
    w.pipefd = death_pipe[0];
    free(listeners);
    free(slots);

    /* SIGINT is the master's, which forwards SIGTERM. SIGTERM stays blocked,
     * so one sent before the signalfd exists is pending for it. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    struct sigaction sa = { .sa_handler = SIG_IGN };
    sigemptyset(&sa.sa_mask);
    int rc = 1;
    if (sigaction(SIGINT, &sa, NULL) < 0 || sigprocmask(SIG_SETMASK, &set, NULL) < 0
        || (w.sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) < 0)
        logmsg("worker signals: %s", strerror(errno));
    else
        rc = worker_loop();
    closefd(w.lfd);
    closefd(w.pipefd);
    closefd(w.sfd);
    closefd(w.spare);
    closefd(w.epfd);
    return rc;
}

static void spawn(int i) {
    pid_t pid = fork();
    if (pid == 0)
        exit(worker_main(i));
    if (pid < 0) {
        logmsg("fork: %s", strerror(errno));
        slots[i].due = now_ms() + RESPAWN_GAP_MS;
        return;
    }
    slots[i].pid = pid;
    slots[i].born = now_ms();
}

static void reap(bool stopping) {
    int st;
    pid_t pid;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0 || (pid < 0 && errno == EINTR)) {
        for (int i = 0; pid > 0 && i < opt_workers; i++) {
            if (slots[i].pid != pid)
                continue;
            slots[i].pid = 0;
            if (stopping)
                break;
            if (!opt_quiet)
                logmsg("worker w%d (pid %d) %s %d, replacing it", i + 1, (int)pid,
                       WIFSIGNALED(st) ? "killed by signal" : "exited with status",
                       WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
            long long soonest = slots[i].born + RESPAWN_GAP_MS, now = now_ms();
            slots[i].due = soonest > now ? soonest : now;
            break;
        }
    }
}

/* Sends sig (unless 0) to every live worker; returns how many live. */
static int signal_workers(int sig) {
    int live = 0;
    for (int i = 0; i < opt_workers; i++) {
        if (slots[i].pid <= 0)
            continue;
        live++;
        if (sig && kill(slots[i].pid, sig) < 0 && errno != ESRCH)
            logmsg("kill %d: %s", (int)slots[i].pid, strerror(errno));
    }
    return live;
}

static void master_loop(void) {
    bool stopping = false;
    long long deadline = 0;
    for (;;) {
        long long now = now_ms();
        int timeout = -1;
        if (stopping) {
            if (signal_workers(0) == 0)
                return;
            if (now >= deadline)
                break;
            timeout = (int)(deadline - now);
        } else {
            for (int i = 0; i < opt_workers; i++) {
                if (slots[i].pid == 0 && slots[i].due <= now)
                    spawn(i);
                if (slots[i].pid == 0) {    /* fork failed: try again later */
                    long long left = slots[i].due > now ? slots[i].due - now : 0;
                    if (timeout < 0 || left < timeout)
                        timeout = (int)left;
                }
            }
        }
        struct pollfd p = { .fd = master_sfd, .events = POLLIN };
        if (poll(&p, 1, timeout) < 0 && errno != EINTR) {
            logmsg("poll: %s", strerror(errno));
            break;              /* cannot watch the workers any more: end them */
        }
        struct signalfd_siginfo si;
        ssize_t n;
        while ((n = read(master_sfd, &si, sizeof si)) > 0 || (n < 0 && errno == EINTR)) {
            if (n > 0 && si.ssi_signo != SIGCHLD && !stopping) {    /* INT, TERM */
                stopping = true;
                deadline = now_ms() + STOP_DEADLINE_MS;
                signal_workers(SIGTERM);
            }
        }
        reap(stopping);
    }
    signal_workers(SIGKILL);    /* the deadline passed: whoever is left */
    for (int i = 0; i < opt_workers; i++) {
        while (slots[i].pid > 0 && waitpid(slots[i].pid, NULL, 0) < 0 && errno == EINTR)
            ;
        slots[i].pid = 0;
    }
}

static int open_listener(const union addr *a, socklen_t alen, bool reuseport) {
    char name[INET6_ADDRSTRLEN + 8];
    const char *what = "socket";
    int one = 1, fd = socket(a->sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
        what = "setsockopt";
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 && (!reuseport
            || setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) == 0)) {
            what = "bind";
            if (bind(fd, &a->sa, alen) == 0)
                return fd;
        }
    }
    int e = errno;
    format_addr(a, name, sizeof name);
    fprintf(stderr, "server: %s %s: %s\n", what, name, strerror(e));
    closefd(fd);
    return -1;
}

/* Every listener bound and listening, all on one port; 0 on success. */
static int open_listeners(union addr *a, socklen_t alen) {
    if (opt_port != 0) {
        /* With SO_REUSEPORT we could join another server's group on a busy
         * port: a plain bind first tells whether the port is taken. */
        int probe = open_listener(a, alen, false);
        if (probe < 0)
            return -1;
        closefd(probe);
    }
    for (int i = 0; i < opt_workers; i++) {
        if ((listeners[i] = open_listener(a, alen, true)) < 0)
            return -1;
        if (listen(listeners[i], SOMAXCONN) < 0) {
            fprintf(stderr, "server: listen: %s\n", strerror(errno));
            return -1;
        }
        if (i == 0 && getsockname(listeners[0], &a->sa, &alen) < 0) {
            fprintf(stderr, "server: getsockname: %s\n", strerror(errno));
            return -1;          /* otherwise *a now holds the real port */
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    opt_workers = ncpu < 1 ? 1 : ncpu > MAX_WORKERS ? MAX_WORKERS : (int)ncpu;
    opterr = 0;
    int c;
    while ((c = getopt(argc, argv, ":p:b:qvw:eh")) != -1) {
        switch (c) {
        case 'p':
            if (!parse_int(optarg, 0, 65535, &opt_port))
                usage_error("invalid port '%s'", optarg);
            break;
        case 'w':
            if (!parse_int(optarg, 1, MAX_WORKERS, &opt_workers))
                usage_error("invalid worker count '%s' (1 to %d)", optarg, MAX_WORKERS);
            break;
        case 'b': opt_bind = optarg; break;
        case 'q': opt_quiet = true; break;
        case 'v': opt_verbose = true; break;
        case 'e': opt_edge = true; break;
        case 'h': fputs(usage_text, stdout); return 0;
        case ':': usage_error("option -%c needs a value", optopt);
        default: usage_error("unknown option -%c", optopt);
        }
    }
    if (optind < argc)
        usage_error("unexpected argument '%s'", argv[optind]);

    union addr a;
    socklen_t alen;
    memset(&a, 0, sizeof a);
    if (inet_pton(AF_INET, opt_bind, &a.in4.sin_addr) == 1) {
        a.in4.sin_family = AF_INET;
        a.in4.sin_port = htons((uint16_t)opt_port);
        alen = sizeof a.in4;
    } else if (inet_pton(AF_INET6, opt_bind, &a.in6.sin6_addr) == 1) {
        a.in6.sin6_family = AF_INET6;
        a.in6.sin6_port = htons((uint16_t)opt_port);
        alen = sizeof a.in6;
    } else {
        usage_error("invalid address '%s' (an IPv4 or IPv6 literal)", opt_bind);
    }

    /* Blocked from here on, in the master and in every worker it forks. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    int status = 1;
    listeners = malloc((size_t)opt_workers * sizeof *listeners);
    slots = calloc((size_t)opt_workers, sizeof *slots);     /* all due at 0 */
    if (!listeners || !slots) {
        fputs("server: out of memory\n", stderr);
        goto out;
    }
    for (int i = 0; i < opt_workers; i++)
        listeners[i] = -1;
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0
        || (master_sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) < 0
        || pipe2(death_pipe, O_NONBLOCK | O_CLOEXEC) < 0) {
        fprintf(stderr, "server: setup: %s\n", strerror(errno));
        goto out;
    }
    if (open_listeners(&a, alen) < 0)
        goto out;
    char name[INET6_ADDRSTRLEN + 8];
    format_addr(&a, name, sizeof name);
    if (printf("listening on %s\n", name) < 0 || fflush(stdout) == EOF) {
        fprintf(stderr, "server: stdout: %s\n", strerror(errno));
        goto out;
    }
    master_loop();              /* its first pass forks every worker */
    status = 0;
out:
    for (int i = 0; listeners && i < opt_workers; i++)
        closefd(listeners[i]);
    closefd(master_sfd);
    closefd(death_pipe[0]);
    closefd(death_pipe[1]);
    free(listeners);
    free(slots);
    if (status == 0)
        logmsg("shutting down");
    return status;
}
