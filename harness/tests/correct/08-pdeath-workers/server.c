/*
 * chapter: 08
 * design: master holds the port (SO_REUSEPORT bind, no listen), supervises -w N SO_REUSEPORT epoll workers
 *
 * The master binds first without listening, so `-p 0` picks one port that
 * every worker can then share (SO_REUSEPORT, same user); never in the
 * listening table, the master's socket receives no connection.  Workers are
 * forked with the stop signals blocked: each reads them from a signalfd and
 * asks for SIGTERM when the master dies (PR_SET_PDEATHSIG), then checks
 * getppid() in case the master died before that call.  The master prints the
 * ready line once every worker listens (one byte each on a pipe), restarts a
 * dead worker under the same number, and on a stop forwards SIGTERM, waits
 * 1.5 s, then SIGKILLs what is left (a stopped worker cannot obey), so that
 * it exits within the 2 s of the contract.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RING_SIZE 65536u        /* the contract's bound on pending output */
#define MAX_WORKERS 256
#define EMFILE_PAUSE_MS 100
#define STOP_GRACE_MS 1500      /* leaves 0.5 s of the 2 s for SIGKILL and reaping */

struct conn {
    int fd;
    bool eof;                   /* the client shut down its side */
    uint32_t events;            /* what epoll is asked for now */
    unsigned char *ring;        /* allocated only while output is pending */
    size_t head, len;
    struct conn *prev, *next;   /* every connection, to close them all on stop */
    char name[INET6_ADDRSTRLEN + 8];
};

/* Options, set before the first fork and so shared by every worker. */
static bool g_quiet, g_verbose, g_edge;
static struct sockaddr_storage g_addr;
static socklen_t g_alen;
static char g_where[INET6_ADDRSTRLEN + 8];

/* Master. Worker K lives in slot K; no heap, so a forked worker inherits none. */
static volatile sig_atomic_t g_stop;
static int g_selfpipe[2] = {-1, -1}, g_ready[2] = {-1, -1}, g_hold = -1, g_nworkers;
static pid_t g_master;
static struct { pid_t pid; double started, restart_at; } g_slots[MAX_WORKERS + 1];

/* Worker. */
static int w_id, w_ep = -1, w_lfd = -1;
static struct conn *w_conns;
static unsigned long w_active;
static unsigned char w_scratch[RING_SIZE];
static char w_tag_listen, w_tag_signal;         /* epoll data.ptr markers */

static const char usage_text[] =
    "usage: server [-p PORT] [-b ADDR] [-w N] [-e] [-q] [-v] [-h]\n"
    "  -p PORT  port to listen on (default 8080, 0: any free port)\n"
    "  -b ADDR  IPv4 or IPv6 address to bind (default 127.0.0.1)\n"
    "  -w N     worker processes (default: the number of online CPUs)\n"
    "  -e       edge-triggered epoll (default: level-triggered)\n"
    "  -q       no per-connection log lines\n"
    "  -v       also log what each client sends (printable characters)\n"
    "  -h       this help\n";

static __attribute__((noreturn)) void bad_usage(const char *what, const char *arg)
{
    fprintf(stderr, "server: %s %s\n%s", what, arg, usage_text);
    exit(2);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void format_addr(const struct sockaddr_storage *ss, char *out, size_t n)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    const struct sockaddr_in *a4 = (const struct sockaddr_in *)ss;
    const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)ss;
    bool v6 = ss->ss_family == AF_INET6;
    const void *bin = v6 ? (const void *)&a6->sin6_addr : (const void *)&a4->sin_addr;
    inet_ntop(ss->ss_family, bin, ip, sizeof ip);
    snprintf(out, n, v6 ? "[%s]:%u" : "%s:%u", ip,
             (unsigned)ntohs(v6 ? a6->sin6_port : a4->sin_port));
}

/* SO_REUSEPORT must be set before bind: the kernel lets sockets share a port
 * only if all of them asked for it (and belong to the same user). */
static int bound_socket(bool reuseport)
{
    int one = 1, fd = socket(g_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if ((reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, (struct sockaddr *)&g_addr, g_alen) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* ---------------------------------------------------------------- worker */

/* Send what the ring holds. Returns -1 only if the connection is dead. */
static int ring_flush(struct conn *c)
{
    while (c->len > 0) {
        size_t first = RING_SIZE - c->head < c->len ? RING_SIZE - c->head : c->len;
        struct iovec iov[2] = {{c->ring + c->head, first}, {c->ring, c->len - first}};
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = first < c->len ? 2 : 1};
        ssize_t w = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
        c->head = (c->head + (size_t)w) % RING_SIZE;
        c->len -= (size_t)w;
    }
    free(c->ring);              /* idle connections hold no buffer */
    c->ring = NULL;
    c->head = 0;
    return 0;
}

/* One read, echoed at once; the rest waits in the ring.
 * Returns 1 if it read data, 0 on EAGAIN or end of stream, -1 if dead. */
static int conn_read(struct conn *c)
{
    ssize_t n;
    do
        n = recv(c->fd, w_scratch, RING_SIZE - c->len, 0);
    while (n < 0 && errno == EINTR);
    if (n <= 0) {
        c->eof = n == 0;
        return n == 0 || errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
    }
    if (g_verbose && !g_quiet) {
        char text[201];
        size_t k = 0;
        for (ssize_t i = 0; i < n && k < sizeof text - 1; i++)
            if (isprint(w_scratch[i]))
                text[k++] = (char)w_scratch[i];
        text[k] = '\0';
        fprintf(stderr, "[w%d] %s says: %s\n", w_id, c->name, text);
    }
    size_t off = 0;
    while (c->len == 0 && off < (size_t)n) {  /* nothing queued: send directly */
        ssize_t w = send(c->fd, w_scratch + off, (size_t)n - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
        if (w < 0)
            break;
        off += (size_t)w;
    }
    if (off < (size_t)n && !c->ring && !(c->ring = malloc(RING_SIZE)))
        return -1;
    while (off < (size_t)n) {   /* at most two pieces: before and after the wrap */
        size_t tail = (c->head + c->len) % RING_SIZE;
        size_t k = RING_SIZE - tail < (size_t)n - off ? RING_SIZE - tail : (size_t)n - off;
        memcpy(c->ring + tail, w_scratch + off, k);
        c->len += k;
        off += k;
    }
    return 1;
}

static void conn_close(struct conn *c)
{
    close(c->fd);
    w_active--;
    if (!g_quiet)
        fprintf(stderr, "[w%d] - %s (%lu active)\n", w_id, c->name, w_active);
    if (c->prev)
        c->prev->next = c->next;
    else
        w_conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c->ring);
    free(c);
}

/* Returns false when the connection must be closed. */
static bool conn_service(struct conn *c, uint32_t ev)
{
    /* EPOLLHUP means both directions are gone: nobody is left to echo to. */
    if ((ev & (EPOLLERR | EPOLLHUP)) || (c->len > 0 && ring_flush(c) < 0))
        return false;
    /* Edge-triggered must read until EAGAIN (the edge will not come again);
     * level-triggered reads once, so a fast client cannot starve the rest.
     * After a drain, reading again picks up what waited while the ring was full. */
    for (int budget = g_edge ? -1 : 1; budget != 0 && !c->eof && c->len < RING_SIZE;
         budget -= budget > 0) {
        int r = conn_read(c);
        if (r <= 0) {
            if (r < 0)
                return false;
            break;
        }
    }
    if (c->eof && c->len == 0)
        return false;           /* half-close: all sent back, now close */
    uint32_t want = (g_edge ? EPOLLET : 0) | (!c->eof && c->len < RING_SIZE ? EPOLLIN : 0) |
                    (c->len > 0 ? EPOLLOUT : 0);  /* EPOLLOUT only while output is pending */
    if (want != c->events) {
        struct epoll_event e = {.events = want, .data.ptr = c};
        if (epoll_ctl(w_ep, EPOLL_CTL_MOD, c->fd, &e) < 0)
            return false;
        c->events = want;
    }
    return true;
}

/* Returns the time to pause the listener (ms), 0 to keep accepting. */
static int accept_clients(void)
{
    /* Edge-triggered must empty the queue; level-triggered takes a burst so
     * that a connection storm cannot starve the clients already in. */
    for (int burst = 0; g_edge || burst < 64; burst++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(w_lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO || errno == EPERM ||
                errno == ENETDOWN || errno == ENETUNREACH || errno == EHOSTDOWN ||
                errno == EHOSTUNREACH || errno == ENONET || errno == ENOPROTOOPT ||
                errno == EOPNOTSUPP)
                continue;       /* that client is gone; the next may be fine */
            /* EMFILE and the like: the connection stays queued and would be
             * reported again at once, so sleep on it instead of spinning. */
            if (!g_quiet)
                fprintf(stderr, "[w%d] accept: %s (pausing %d ms)\n", w_id, strerror(errno),
                        EMFILE_PAUSE_MS);
            return EMFILE_PAUSE_MS;
        }
        struct conn *c = calloc(1, sizeof *c);
        struct epoll_event e = {.events = EPOLLIN | (g_edge ? EPOLLET : 0), .data.ptr = c};
        if (!c || epoll_ctl(w_ep, EPOLL_CTL_ADD, fd, &e) < 0) {
            close(fd);
            free(c);
            return EMFILE_PAUSE_MS;
        }
        c->fd = fd;
        c->events = e.events;
        format_addr(&ss, c->name, sizeof c->name);
        if ((c->next = w_conns))
            w_conns->prev = c;
        w_conns = c;
        w_active++;
        if (!g_quiet)
            fprintf(stderr, "[w%d] + %s (%lu active)\n", w_id, c->name, w_active);
    }
    return 0;
}

static int worker_main(int id, int ready_fd)
{
    w_id = id;
    sigset_t stopset;
    sigemptyset(&stopset);
    sigaddset(&stopset, SIGTERM);
    sigaddset(&stopset, SIGINT);
    /* Blocked since before fork: a stop sent meanwhile waits for us here. */
    int sfd = signalfd(-1, &stopset, SFD_NONBLOCK | SFD_CLOEXEC);
    w_lfd = bound_socket(true);
    if (sfd < 0 || w_lfd < 0 || listen(w_lfd, SOMAXCONN) < 0) {
        fprintf(stderr, "[w%d] server: bind %s: %s\n", id, g_where, strerror(errno));
        return 1;
    }
    w_ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event es = {.events = EPOLLIN, .data.ptr = &w_tag_signal};
    struct epoll_event el = {.events = EPOLLIN | (g_edge ? EPOLLET : 0), .data.ptr = &w_tag_listen};
    char byte = (char)id;
    if (w_ep < 0 || epoll_ctl(w_ep, EPOLL_CTL_ADD, sfd, &es) < 0 ||
        epoll_ctl(w_ep, EPOLL_CTL_ADD, w_lfd, &el) < 0 || write(ready_fd, &byte, 1) != 1) {
        perror("server: worker setup");
        return 1;
    }
    close(ready_fd);

    struct epoll_event evs[256];
    double resume_at = 0;       /* nonzero while the listener is paused */
    bool stop = false;
    while (!stop) {
        int timeout = -1;
        if (resume_at > 0 && (timeout = (int)(resume_at - now_ms()) + 1) <= 0) {
            resume_at = 0;      /* re-arming re-checks readiness, even edge-triggered */
            timeout = -1;
            if (epoll_ctl(w_ep, EPOLL_CTL_MOD, w_lfd, &el) < 0)
                perror("server: epoll_ctl");
        }
        int n = epoll_wait(w_ep, evs, 256, timeout);
        if (n < 0 && errno != EINTR) {
            perror("server: epoll_wait");
            break;
        }
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p == &w_tag_signal) {
                struct signalfd_siginfo si;
                while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si)
                    stop = true;
            } else if (p == &w_tag_listen) {
                int pause = resume_at > 0 ? 0 : accept_clients();
                struct epoll_event off = {.events = 0, .data.ptr = &w_tag_listen};
                if (pause && epoll_ctl(w_ep, EPOLL_CTL_MOD, w_lfd, &off) == 0)
                    resume_at = now_ms() + pause;
            } else if (!conn_service(p, evs[i].events)) {
                conn_close(p);
            }
        }
    }
    close(w_lfd);               /* stop accepting before closing the clients */
    while (w_conns)
        conn_close(w_conns);
    close(w_ep);
    close(sfd);
    return 0;
}

/* ---------------------------------------------------------------- master */

static void on_signal(int sig)
{
    int saved = errno;          /* the interrupted code may be reading errno */
    if (sig != SIGCHLD)
        g_stop = 1;
    char b = (char)sig;
    ssize_t r = write(g_selfpipe[1], &b, 1);    /* wakes poll(); a full pipe is fine */
    (void)r;
    errno = saved;
}

static int spawn(int k)
{
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGCHLD);
    sigprocmask(SIG_BLOCK, &block, &old);   /* no master handler may run in the child */
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != g_master)   /* the master died before prctl took hold */
            exit(0);
        /* The signals stay blocked for good: the worker reads SIGTERM and
         * SIGINT from a signalfd, so the master's handlers never run here. */
        int inherited[] = {g_selfpipe[0], g_selfpipe[1], g_ready[0], g_hold};
        for (size_t i = 0; i < sizeof inherited / sizeof *inherited; i++)
            close(inherited[i]);
        exit(worker_main(k, g_ready[1]));
    }
    int e = errno;
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) {
        fprintf(stderr, "server: fork: %s\n", strerror(e));
        return -1;
    }
    g_slots[k].pid = pid;
    g_slots[k].started = now_ms();
    return 0;
}

/* Reaps every dead worker and schedules its restart; returns how many live. */
static int reap(bool restart)
{
    int st, alive = 0;
    pid_t pid;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        for (int k = 1; k <= g_nworkers; k++) {
            if (g_slots[k].pid != pid)
                continue;
            g_slots[k].pid = 0;
            double now = now_ms();
            /* One that dies at once would otherwise make us fork in a loop. */
            g_slots[k].restart_at = now - g_slots[k].started < 1000 ? now + 100 : now;
            if (restart && !g_quiet)
                fprintf(stderr, "server: worker %d (pid %d) %s %d, restarting it\n", k, (int)pid,
                        WIFSIGNALED(st) ? "killed by signal" : "exited with",
                        WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
        }
    }
    for (int k = 1; k <= g_nworkers; k++)
        alive += g_slots[k].pid > 0;
    return alive;
}

/* Ends every worker: SIGTERM, a grace period, then SIGKILL. */
static void stop_workers(void)
{
    char buf[256];
    for (int k = 1; k <= g_nworkers; k++)
        if (g_slots[k].pid > 0)
            kill(g_slots[k].pid, SIGTERM);
    double deadline = now_ms() + STOP_GRACE_MS;
    while (reap(false) > 0 && now_ms() < deadline) {
        struct pollfd p = {.fd = g_selfpipe[0], .events = POLLIN};
        if (poll(&p, 1, (int)(deadline - now_ms()) + 1) > 0)
            while (read(g_selfpipe[0], buf, sizeof buf) > 0)
                ;
    }
    for (int k = 1; k <= g_nworkers; k++) {
        if (g_slots[k].pid <= 0)
            continue;
        kill(g_slots[k].pid, SIGKILL);      /* works on a stopped worker too */
        while (waitpid(g_slots[k].pid, NULL, 0) < 0 && errno == EINTR)
            ;
        g_slots[k].pid = 0;
    }
}

int main(int argc, char **argv)
{
    const char *addr = "127.0.0.1";
    long port = 8080, nw = sysconf(_SC_NPROCESSORS_ONLN);
    int opt;
    opterr = 0;
    while ((opt = getopt(argc, argv, ":p:b:w:eqvh")) != -1) {
        char optstr[3] = {'-', (char)optopt, '\0'}, *end;
        errno = 0;
        switch (opt) {
        case 'p':
            port = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || port < 0 || port > 65535)
                bad_usage("invalid port:", optarg);
            break;
        case 'w':
            nw = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || nw < 1 || nw > MAX_WORKERS)
                bad_usage("invalid worker count (1 to 256):", optarg);
            break;
        case 'b': addr = optarg; break;
        case 'e': g_edge = true; break;
        case 'q': g_quiet = true; break;
        case 'v': g_verbose = true; break;
        case 'h': fputs(usage_text, stdout); return 0;
        case ':': bad_usage("missing value for option", optstr);
        default: bad_usage("unknown option", optstr);
        }
    }
    if (optind < argc)
        bad_usage("unexpected argument:", argv[optind]);
    g_nworkers = nw < 1 ? 1 : nw > MAX_WORKERS ? MAX_WORKERS : (int)nw;

    struct sockaddr_in *a4 = (struct sockaddr_in *)&g_addr;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&g_addr;
    if (inet_pton(AF_INET, addr, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((unsigned short)port);
        g_alen = sizeof *a4;
    } else if (inet_pton(AF_INET6, addr, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((unsigned short)port);
        g_alen = sizeof *a6;
    } else {
        bad_usage("invalid address (IPv4 or IPv6 literal expected):", addr);
    }
    format_addr(&g_addr, g_where, sizeof g_where);

    g_master = getpid();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = SIG_IGN;    /* workers inherit it: a vanished client kills nobody */
    sigaction(SIGPIPE, &sa, NULL);
    if (pipe2(g_selfpipe, O_NONBLOCK | O_CLOEXEC) < 0 || pipe2(g_ready, O_CLOEXEC) < 0 ||
        fcntl(g_ready[0], F_SETFL, O_NONBLOCK) < 0) {
        perror("server: pipe");
        return 1;
    }
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    sigaction(SIGCHLD, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    /* SO_REUSEPORT would let a second copy of this server silently share a
     * busy port, so a plain bind first tells whether someone already has it. */
    int probe = port ? bound_socket(false) : -2;
    if (probe >= 0)
        close(probe);
    /* Hold the port without listening: with -p 0, one port for all workers. */
    if (probe == -1 || (g_hold = bound_socket(true)) < 0) {
        fprintf(stderr, "server: bind %s: %s\n", g_where, strerror(errno));
        return 1;
    }
    socklen_t sl = sizeof g_addr;
    getsockname(g_hold, (struct sockaddr *)&g_addr, &sl);
    format_addr(&g_addr, g_where, sizeof g_where);

    int status = 0, nready = 0;
    for (int k = 1; k <= g_nworkers && status == 0; k++)
        status = spawn(k) < 0;
    while (!g_stop && status == 0) {
        double now = now_ms(), next = -1;
        for (int k = 1; k <= g_nworkers; k++) {
            if (g_slots[k].pid > 0)
                continue;
            if (g_slots[k].restart_at <= now && spawn(k) < 0)
                g_slots[k].restart_at = now + 1000;     /* fork failed: try later */
            if (g_slots[k].pid == 0 && (next < 0 || g_slots[k].restart_at < next))
                next = g_slots[k].restart_at;
        }
        struct pollfd p[2] = {{.fd = g_selfpipe[0], .events = POLLIN},
                              {.fd = g_ready[0], .events = POLLIN}};
        if (poll(p, 2, next < 0 ? -1 : (int)(next - now) + 1) < 0 && errno != EINTR) {
            perror("server: poll");
            status = 1;
        }
        char buf[MAX_WORKERS];
        ssize_t n;
        if ((p[1].revents & POLLIN) && (n = read(g_ready[0], buf, sizeof buf)) > 0 &&
            nready < g_nworkers && (nready += (int)n) >= g_nworkers) {
            printf("listening on %s\n", g_where);
            fflush(stdout);     /* before a restart forks a copy of the buffer */
        }
        if (p[0].revents & POLLIN)
            while (read(g_selfpipe[0], buf, sizeof buf) > 0)
                ;
        if (!g_stop && reap(nready >= g_nworkers) < g_nworkers && nready < g_nworkers) {
            fputs("server: a worker failed to start\n", stderr);
            status = 1;
        }
    }
    stop_workers();
    int fds[] = {g_hold, g_ready[0], g_ready[1], g_selfpipe[0], g_selfpipe[1]};
    for (size_t i = 0; i < sizeof fds / sizeof *fds; i++)
        close(fds[i]);
    fputs("shutting down\n", stderr);
    return status;
}
