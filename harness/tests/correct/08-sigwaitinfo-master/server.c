/*
 * chapter: 08
 * design: SO_REUSEPORT workers, handler-less master on sigwaitinfo/sigtimedwait, self-pipe stop and getppid() timerfd watch in workers, port reserved by a bound never-listening socket
 *
 * The master never installs a handler: SIGCHLD, SIGINT, SIGTERM and SIGRTMIN
 * stay blocked and its whole life is a loop on sigwaitinfo(), or on
 * sigtimedwait() while a deadline runs. It binds a probe without SO_REUSEPORT
 * (so a port anybody holds fails with EADDRINUSE instead of being silently
 * shared), then keeps, bound with SO_REUSEPORT but never listening, the socket
 * that fixes the port (-p 0 included) and holds it while workers come and go.
 * Each worker binds its own SO_REUSEPORT listener there, runs its own epoll loop
 * and tells the master with sigqueue(SIGRTMIN) that it listens: the ready line
 * waits for all of them. A dead worker is reaped (WNOHANG loop) and restarted
 * under its number, 200 ms later if it lived under a second so that none can
 * make the master spin. On SIGINT/SIGTERM the master sends SIGTERM to every
 * worker, SIGKILL to those alive 1.5 s later, reaps them all and only then says
 * "shutting down". A worker's handler only writes to a self-pipe; a 500 ms
 * timerfd compares getppid() with the master's pid. A worker stops by closing
 * its listener, then closing and logging each connection. A client is never
 * owed more than one read (64 KiB): what send() leaves is kept and the client
 * is not read again until it is gone. Out of descriptors, a spare descriptor
 * is given up to accept and close the waiting client; failing that, the
 * listener pauses until a client leaves or the next tick.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define IO_CHUNK      (64 * 1024)  /* one read; also the bound on pending output */
#define MAX_EVENTS    256
#define ACCEPT_BUDGET 64           /* accepts per listener event */
#define READ_BUDGET   16           /* reads per client event */
#define TICK_MS       500          /* worker's getppid() check */
#define GRACE_MS      1500         /* SIGTERM to SIGKILL */
#define RESPAWN_MS    200          /* delay before restarting a short-lived worker */
#define MAX_WORKERS   1024
#define ADDR_STR      (INET6_ADDRSTRLEN + 8)

static const char usage[] =
    "usage: server [-p PORT] [-b ADDR] [-q] [-v] [-w N] [-e] [-h]\n"
    "  port 8080, address 127.0.0.1, a worker per CPU by default; -q: no +/- lines,\n"
    "  -v: log messages, -w N: worker processes, -e: edge-triggered epoll\n";

static bool quiet, verbose, edge;
static int nworkers;
static struct sockaddr_storage bind_addr;   /* port filled in once resolved */
static socklen_t bind_len;

/* ---------------------------------------------------------------- helpers */

/* One line, one write(): lines of different workers never interleave. */
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
    for (int done = 0; done < n;) {
        ssize_t r = write(STDERR_FILENO, line + done, (size_t)(n - done));
        if (r < 0 && errno != EINTR)
            return;                 /* nowhere left to report it */
        done += r > 0 ? (int)r : 0;
    }
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);    /* cannot fail with this clock */
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void format_addr(const struct sockaddr_storage *ss, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "?";
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        snprintf(buf, len, "[%s]:%u", host, (unsigned)ntohs(a->sin6_port));
    } else {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        snprintf(buf, len, "%s:%u", host, (unsigned)ntohs(a->sin_port));
    }
}

static in_port_t *port_of(struct sockaddr_storage *ss)
{
    return ss->ss_family == AF_INET6 ? &((struct sockaddr_in6 *)ss)->sin6_port
                                     : &((struct sockaddr_in *)ss)->sin_port;
}

static sigset_t signals(int a, int b, int c, int d)
{
    sigset_t set;
    sigemptyset(&set);
    int sigs[] = { a, b, c, d };
    for (int i = 0; i < 4; i++)
        if (sigs[i] > 0)
            sigaddset(&set, sigs[i]);
    return set;
}

/* A socket bound to bind_addr; -1 with errno set on failure. */
static int bound_socket(bool reuseport, bool listening)
{
    int one = 1;
    int fd = socket(bind_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0
        || (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
        || bind(fd, (struct sockaddr *)&bind_addr, bind_len) < 0
        || (listening && listen(fd, SOMAXCONN) < 0)) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

/* ----------------------------------------------------------------- worker */

struct conn {
    struct conn *prev, *next;
    char *out;                      /* what send() did not take, or NULL */
    size_t out_len, out_off;
    int fd;
    char peer[ADDR_STR];
};

static struct {
    int id, ep, lfd, tfd, spare, stop_r;
    pid_t master;
    bool paused, stopping;
    long active;
    struct conn *conns;
} w = { .ep = -1, .lfd = -1, .tfd = -1, .spare = -1, .stop_r = -1 };

static int stop_w = -1;             /* self-pipe, written by the handler only */
static char tok_listen, tok_timer, tok_stop;
static char iobuf[IO_CHUNK];

static void on_stop(int sig)
{
    (void)sig;
    int saved = errno;
    ssize_t n = write(stop_w, "x", 1);  /* full pipe: a stop is already pending */
    (void)n;
    errno = saved;
}

static int watch(int fd, uint32_t events, void *ptr, int op)
{
    struct epoll_event ev = { .events = events, .data.ptr = ptr };
    return epoll_ctl(w.ep, op, fd, &ev);
}

static void listener_resume(void)
{
    if (!w.paused || w.lfd < 0)
        return;
    if (w.spare < 0)
        w.spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (watch(w.lfd, EPOLLIN, &tok_listen, EPOLL_CTL_MOD) == 0)
        w.paused = false;
}

static void conn_close(struct conn *c)
{
    close(c->fd);
    if (c->prev)
        c->prev->next = c->next;
    else
        w.conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    w.active--;
    if (!quiet)
        logmsg("[w%d] - %s (%ld active)", w.id, c->peer, w.active);
    free(c->out);
    free(c);
    listener_resume();              /* a descriptor is free again */
}

/* Interest of a client: EPOLLIN, or EPOLLOUT alone while output is pending.
 * In edge-triggered mode EPOLL_CTL_MOD also re-arms: a ready socket is
 * reported again, so data left unread is never forgotten. */
static bool conn_watch(struct conn *c, uint32_t events)
{
    if (watch(c->fd, events | (edge ? EPOLLET : 0), c, EPOLL_CTL_MOD) == 0)
        return true;
    conn_close(c);
    return false;
}

static void conn_open(int fd, const struct sockaddr_storage *ss)
{
    struct conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        close(fd);
        logmsg("[w%d] connection refused: out of memory", w.id);
        return;
    }
    c->fd = fd;
    format_addr(ss, c->peer, sizeof c->peer);
    if (watch(fd, EPOLLIN | (edge ? EPOLLET : 0), c, EPOLL_CTL_ADD) < 0) {
        logmsg("[w%d] connection %s refused: epoll_ctl: %s", w.id, c->peer, strerror(errno));
        close(fd);
        free(c);
        return;
    }
    c->next = w.conns;
    if (w.conns)
        w.conns->prev = c;
    w.conns = c;
    w.active++;
    if (!quiet)
        logmsg("[w%d] + %s (%ld active)", w.id, c->peer, w.active);
}

/* Sends as much as the socket takes: the count sent, or -1 if it is dead. */
static ssize_t send_some(int fd, const char *p, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = send(fd, p + done, len - done, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            return -1;
        }
        done += (size_t)n;
    }
    return (ssize_t)done;
}

static void log_message(const struct conn *c, const char *p, size_t n)
{
    char text[161];
    size_t k = 0;
    for (size_t i = 0; i < n && k < sizeof text - 1; i++)
        if (p[i] >= 0x20 && p[i] < 0x7f)
            text[k++] = p[i];
    text[k] = '\0';
    logmsg("[w%d] %s sent %zu bytes: %s", w.id, c->peer, n, text);
}

static void conn_read(struct conn *c)
{
    for (int round = 0; round < READ_BUDGET; round++) {
        ssize_t n = recv(c->fd, iobuf, sizeof iobuf, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                conn_close(c);      /* reset, or worse: this client only */
            return;
        }
        if (verbose && n > 0)
            log_message(c, iobuf, (size_t)n);
        ssize_t sent = n == 0 ? -1 : send_some(c->fd, iobuf, (size_t)n);
        if (sent < 0) {             /* EOF (all echoed already), or a dead peer */
            conn_close(c);
            return;
        }
        if (sent < n) {             /* keep the rest, stop reading this client */
            c->out_len = (size_t)(n - sent);
            c->out_off = 0;
            c->out = malloc(c->out_len);
            if (c->out == NULL) {
                logmsg("[w%d] %s: out of memory", w.id, c->peer);
                conn_close(c);
                return;
            }
            memcpy(c->out, iobuf + sent, c->out_len);
            conn_watch(c, EPOLLOUT);
            return;
        }
    }
    if (edge)                       /* budget spent: have it reported again */
        conn_watch(c, EPOLLIN);
}

static void conn_flush(struct conn *c)
{
    ssize_t sent = send_some(c->fd, c->out + c->out_off, c->out_len - c->out_off);
    if (sent < 0) {
        conn_close(c);
        return;
    }
    c->out_off += (size_t)sent;
    if (c->out_off < c->out_len)
        return;                     /* EPOLLOUT will tell us when to go on */
    free(c->out);
    c->out = NULL;
    c->out_len = c->out_off = 0;
    conn_watch(c, EPOLLIN);
}

/* EMFILE/ENFILE: give up the spare descriptor to accept and close the waiting
 * connection. False if that did not work: the caller pauses the listener. */
static bool refuse_one(void)
{
    if (w.spare < 0)
        return false;
    close(w.spare);
    int fd = accept4(w.lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd >= 0) {
        close(fd);
        logmsg("[w%d] connection refused: out of descriptors", w.id);
    }
    w.spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
    return fd >= 0 && w.spare >= 0;
}

static void do_accept(void)
{
    for (int round = 0; round < ACCEPT_BUDGET; round++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int fd = accept4(w.lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            conn_open(fd, &ss);
            continue;
        }
        int err = errno;
        if (err == EAGAIN || err == EWOULDBLOCK)
            return;
        if (err == EINTR || err == ECONNABORTED || err == EPROTO)
            continue;               /* that connection only */
        if ((err == EMFILE || err == ENFILE) && refuse_one())
            continue;
        if (err != EMFILE && err != ENFILE)
            logmsg("[w%d] accept: %s", w.id, strerror(err));
        if (watch(w.lfd, 0, &tok_listen, EPOLL_CTL_MOD) == 0)
            w.paused = true;        /* until a client leaves or the next tick */
        return;
    }
}

static void on_tick(void)
{
    uint64_t expirations;
    if (read(w.tfd, &expirations, sizeof expirations) < 0 && errno != EAGAIN)
        logmsg("[w%d] timerfd: %s", w.id, strerror(errno));
    if (getppid() != w.master)
        w.stopping = true;          /* orphaned: nobody will stop us */
    listener_resume();
}

static int worker_setup(void)
{
    int p[2];
    if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0)
        return -1;
    w.stop_r = p[0];
    stop_w = p[1];

    struct sigaction sa = { .sa_handler = on_stop, .sa_flags = SA_RESTART };
    sigemptyset(&sa.sa_mask);
    sigset_t mine = signals(SIGINT, SIGTERM, 0, 0);
    if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0
        || sigprocmask(SIG_UNBLOCK, &mine, NULL) < 0)
        return -1;

    struct itimerspec tick = {
        .it_interval = { TICK_MS / 1000, (TICK_MS % 1000) * 1000000L },
        .it_value    = { TICK_MS / 1000, (TICK_MS % 1000) * 1000000L },
    };
    if ((w.ep = epoll_create1(EPOLL_CLOEXEC)) < 0
        || (w.lfd = bound_socket(true, true)) < 0
        || (w.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)) < 0
        || timerfd_settime(w.tfd, 0, &tick, NULL) < 0
        || (w.spare = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0
        || watch(w.lfd, EPOLLIN, &tok_listen, EPOLL_CTL_ADD) < 0
        || watch(w.tfd, EPOLLIN, &tok_timer, EPOLL_CTL_ADD) < 0
        || watch(w.stop_r, EPOLLIN, &tok_stop, EPOLL_CTL_ADD) < 0)
        return -1;
    return 0;
}

static void worker_close_all(void)
{
    sigset_t mine = signals(SIGINT, SIGTERM, 0, 0); /* no write to a closed pipe */
    sigprocmask(SIG_BLOCK, &mine, NULL);
    if (w.lfd >= 0)
        close(w.lfd);               /* stop accepting first */
    w.lfd = -1;
    w.paused = false;
    while (w.conns)
        conn_close(w.conns);
    int *fds[] = { &w.tfd, &w.spare, &w.stop_r, &stop_w, &w.ep };
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++) {
        if (*fds[i] >= 0)
            close(*fds[i]);
        *fds[i] = -1;
    }
}

static __attribute__((noreturn)) void worker_main(int id, pid_t master)
{
    w.id = id;
    w.master = master;
    if (worker_setup() < 0) {
        logmsg("server: worker w%d could not start: %s", id, strerror(errno));
        worker_close_all();
        exit(1);
    }
    if (getppid() != master)        /* the master died before we were up */
        w.stopping = true;
    else if (sigqueue(master, SIGRTMIN, (union sigval){ .sival_int = id }) < 0)
        logmsg("server: worker w%d: sigqueue: %s", id, strerror(errno));

    struct epoll_event evs[MAX_EVENTS];
    while (!w.stopping) {
        int n = epoll_wait(w.ep, evs, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            logmsg("server: worker w%d: epoll_wait: %s", id, strerror(errno));
            break;
        }
        /* Only the connection of an event is closed while handling it, so
         * later events of the batch never point to a freed connection. */
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p == &tok_stop) {
                char drain[64];
                while (read(w.stop_r, drain, sizeof drain) > 0)
                    ;
                w.stopping = true;
            } else if (p == &tok_timer) {
                on_tick();
            } else if (p == &tok_listen) {
                if (!w.stopping)
                    do_accept();
            } else {
                struct conn *c = p;
                if (c->out)
                    conn_flush(c);
                else
                    conn_read(c);
            }
        }
    }
    worker_close_all();
    exit(0);
}

/* ----------------------------------------------------------------- master */

struct slot {
    pid_t pid;                      /* 0: not running */
    bool ready;
    long long started, respawn_at;  /* respawn_at 0: none scheduled */
};

static struct slot *slots;
static int live, mfd = -1;          /* mfd: bound with SO_REUSEPORT, never listening */
static bool started, stopping;
static int failed;
static long long deadline;          /* of the stop; -1 once SIGKILL is sent */

static int spawn(int i)
{
    fflush(stdout);
    pid_t master = getpid(), pid = fork();
    if (pid < 0) {
        logmsg("server: fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        free(slots);
        slots = NULL;
        close(mfd);
        worker_main(i + 1, master);
    }
    slots[i] = (struct slot){ .pid = pid, .started = now_ms() };
    live++;
    return 0;
}

static void signal_all(int sig)
{
    for (int i = 0; i < nworkers; i++) {
        if (slots[i].pid <= 0)
            continue;
        if (sig == SIGKILL)
            logmsg("server: worker w%d did not stop in time: SIGKILL", i + 1);
        if (kill(slots[i].pid, sig) < 0 && errno != ESRCH)
            logmsg("server: kill w%d: %s", i + 1, strerror(errno));
    }
}

static void begin_stop(int why)
{
    if (stopping)
        return;
    stopping = true;
    failed = why;
    deadline = now_ms() + GRACE_MS;
    signal_all(SIGTERM);
}

static void reap(void)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) != 0) {
        if (pid < 0) {
            if (errno == EINTR)
                continue;
            return;                 /* ECHILD: no child left */
        }
        int i = 0;
        while (i < nworkers && slots[i].pid != pid)
            i++;
        if (i == nworkers)
            continue;
        slots[i].pid = 0;
        live--;
        if (stopping)
            continue;
        bool sig = WIFSIGNALED(status);
        logmsg("server: worker w%d (pid %d) %s %d%s", i + 1, (int)pid,
               sig ? "killed by signal" : "exited with status",
               sig ? WTERMSIG(status) : WEXITSTATUS(status),
               started ? "; restarting it" : " before the server was ready");
        long long t = now_ms();
        if (!started)
            begin_stop(1);
        else    /* one that dies young waits a little: a failing worker cannot make us spin */
            slots[i].respawn_at = t - slots[i].started < 1000 ? t + RESPAWN_MS : t;
    }
}

static void worker_ready(const siginfo_t *si)
{
    static int nready;
    int i = si->si_value.sival_int - 1;
    if (si->si_code != SI_QUEUE || i < 0 || i >= nworkers || slots[i].pid != si->si_pid
        || slots[i].ready)
        return;
    slots[i].ready = true;
    if (!started && ++nready == nworkers) {
        char where[ADDR_STR];
        format_addr(&bind_addr, where, sizeof where);
        printf("listening on %s\n", where);
        if (fflush(stdout) == EOF)
            logmsg("server: stdout: %s", strerror(errno));
        started = true;
    }
}

/* The master's life: no handler, every signal taken here. 0: stopped as asked. */
static int master_loop(const sigset_t *set)
{
    for (int i = 0; i < nworkers && !stopping; i++)
        if (spawn(i) < 0)
            begin_stop(1);

    while (!stopping || live > 0) {
        long long now = now_ms(), wake = stopping ? deadline : -1;
        for (int i = 0; i < nworkers && !stopping; i++) {
            if (slots[i].pid != 0 || slots[i].respawn_at == 0)
                continue;
            if (slots[i].respawn_at <= now && spawn(i) < 0)
                slots[i].respawn_at = now + RESPAWN_MS;
            if (slots[i].pid == 0 && (wake < 0 || slots[i].respawn_at < wake))
                wake = slots[i].respawn_at;
        }

        siginfo_t si;
        int sig;
        if (wake < 0) {
            sig = sigwaitinfo(set, &si);
        } else {
            long long ms = wake > now ? wake - now : 0;
            struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
            sig = sigtimedwait(set, &si, &ts);
        }
        if (sig < 0) {
            if (errno == EAGAIN && stopping && now_ms() >= deadline) {
                signal_all(SIGKILL);
                deadline = -1;      /* now only their SIGCHLD is awaited */
            } else if (errno != EAGAIN && errno != EINTR) {
                logmsg("server: sigwaitinfo: %s", strerror(errno));
                return 1;           /* orphaned workers stop on their next tick */
            }
        } else if (sig == SIGCHLD) {
            reap();
        } else if (sig == SIGRTMIN) {
            worker_ready(&si);
        } else {                    /* SIGINT or SIGTERM */
            begin_stop(0);
        }
    }
    return failed;
}

/* ------------------------------------------------------------------- main */

static __attribute__((noreturn)) void bad_usage(const char *fmt, const char *arg)
{
    fputs("server: ", stderr);
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    fputs(usage, stderr);
    exit(2);
}

static bool parse_number(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*s < '0' || *s > '9' || *end != '\0' || errno != 0 || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static void parse_options(int argc, char **argv)
{
    long port = 8080, n;
    const char *host = "127.0.0.1";
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    nworkers = cpus < 1 ? 1 : cpus > MAX_WORKERS ? MAX_WORKERS : (int)cpus;

    int o;
    while ((o = getopt(argc, argv, ":p:b:qvw:eh")) != -1) {
        char opt[2] = { (char)optopt, '\0' };
        switch (o) {
        case 'p':
            if (!parse_number(optarg, 0, 65535, &port))
                bad_usage("invalid port '%s' (0 to 65535)", optarg);
            break;
        case 'b': host = optarg; break;
        case 'q': quiet = true; break;
        case 'v': verbose = true; break;
        case 'e': edge = true; break;
        case 'w':
            if (!parse_number(optarg, 1, MAX_WORKERS, &n))
                bad_usage("invalid worker count '%s' (1 to 1024)", optarg);
            nworkers = (int)n;
            break;
        case 'h':
            fputs(usage, stdout);
            exit(0);
        case ':':
            bad_usage("option -%s needs a value", opt);
        default:
            bad_usage("unknown option -%s", opt);
        }
    }
    if (optind < argc)
        bad_usage("unexpected argument '%s'", argv[optind]);

    struct sockaddr_in *a4 = (struct sockaddr_in *)&bind_addr;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&bind_addr;
    memset(&bind_addr, 0, sizeof bind_addr);
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        bind_len = sizeof *a4;
    } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        bind_len = sizeof *a6;
    } else {
        bad_usage("invalid address '%s' (an IPv4 or IPv6 literal)", host);
    }
    *port_of(&bind_addr) = htons((uint16_t)port);
}

/* Finds the port and keeps it. A probe without SO_REUSEPORT fails on a port
 * anybody holds (even another SO_REUSEPORT server of ours, which a
 * SO_REUSEPORT bind would silently join); the socket kept has SO_REUSEPORT so
 * that the workers can bind the same port. */
static int reserve_port(void)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int probe = bound_socket(false, false);
    if (probe >= 0) {
        int r = getsockname(probe, (struct sockaddr *)&ss, &len), saved = errno;
        close(probe);
        errno = saved;
        if (r == 0) {
            *port_of(&bind_addr) = *port_of(&ss);
            mfd = bound_socket(true, false);
        }
    }
    if (mfd >= 0)
        return 0;
    char where[ADDR_STR];
    format_addr(&bind_addr, where, sizeof where);
    logmsg("server: bind %s: %s", where, strerror(errno));
    return -1;
}

int main(int argc, char **argv)
{
    parse_options(argc, argv);

    sigset_t set = signals(SIGCHLD, SIGINT, SIGTERM, SIGRTMIN);
    struct sigaction ign = { .sa_handler = SIG_IGN };
    sigemptyset(&ign.sa_mask);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0 || sigaction(SIGPIPE, &ign, NULL) < 0) {
        logmsg("server: signals: %s", strerror(errno));
        return 1;
    }
    if (reserve_port() < 0)
        return 1;
    slots = calloc((size_t)nworkers, sizeof *slots);
    if (slots == NULL) {
        logmsg("server: out of memory");
        close(mfd);
        return 1;
    }

    int failed = master_loop(&set);
    free(slots);
    close(mfd);
    if (failed) {
        logmsg("server: could not start the workers");
        return 1;
    }
    logmsg("shutting down");
    return 0;
}
