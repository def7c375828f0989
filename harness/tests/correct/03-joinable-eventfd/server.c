/*
chapter: 03
design: joinable thread per client in a growing array, joined by main as they finish; main poll()s listen fd + stop eventfd (signal handler) + done eventfd; counter under a mutex; stop signals blocked in clients; SIGPIPE ignored
An echo server with one thread per client, written independently of the
lab's reference, for the grader's self-test. The main thread sleeps in
poll() on three descriptors: the listening socket, an eventfd the
SIGINT/SIGTERM handler writes to (the only async-signal-safe thing it
does), and an eventfd each client thread writes to as it finishes, so
main joins finished threads promptly instead of detaching them. Client
threads run with SIGINT/SIGTERM blocked, so the handler only ever runs on
main. To stop, main shuts down every client socket, which ends each
thread's recv(), then joins them all.
*/
#define _GNU_SOURCE /* accept4 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_SIZE (16 * 1024)
#define NAME_LEN (INET6_ADDRSTRLEN + 10)

struct client {
    pthread_t tid;      /* main thread only */
    int fd;             /* under `lock`: -1 once the thread has closed it */
    int done;           /* under `lock`: the thread is about to return */
    char name[NAME_LEN];
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int active;      /* under `lock` */

/* Main thread only. */
static struct client **clients;
static size_t nclients, cap_clients;

/* Set before the first thread or handler, read-only afterwards. */
static int stop_fd = -1, done_fd = -1;
static int quiet, verbose;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: server [-p PORT] [-b ADDR] [-q] [-v] [-h]\n"
            "  -p PORT  port to listen on (default 8080, 0: any free port)\n"
            "  -b ADDR  IPv4 or IPv6 address to bind (default 127.0.0.1)\n"
            "  -q       quiet: no per-connection log lines\n"
            "  -v       verbose: also log each message received\n"
            "  -h       show this help\n");
}

__attribute__((noreturn, format(printf, 1, 0)))
static void bad_usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "server: ");
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    usage(stderr);
    exit(2);
}

/* Strict decimal parse: "12x", "", "-1" and overflow are all rejected. */
static long parse_num(const char *s, long min, long max)
{
    char *end;
    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    return v;
}

static void fmt_addr(const struct sockaddr_storage *ss, char *out, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "?";
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof host);
        snprintf(out, len, "[%s]:%u", host, (unsigned)ntohs(s6->sin6_port));
    } else {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &s4->sin_addr, host, sizeof host);
        snprintf(out, len, "%s:%u", host, (unsigned)ntohs(s4->sin_port));
    }
}

static int open_listener(const char *addr, int port)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    char name[NAME_LEN];

    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((unsigned short)port);
        sslen = sizeof *s4;
    } else if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((unsigned short)port);
        sslen = sizeof *s6;
    } else {
        bad_usage("bad address '%s' (expected an IPv4 or IPv6 literal)", addr);
    }

    /* Non-blocking: poll() may report a client that resets before we
       accept it, and a blocking accept() would then hang main. */
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        perror("server: socket");
        exit(1);
    }
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        perror("server: setsockopt SO_REUSEADDR");
    fmt_addr(&ss, name, sizeof name);
    if (bind(fd, (struct sockaddr *)&ss, sslen) < 0) {
        fprintf(stderr, "server: bind %s: %s\n", name, strerror(errno));
        exit(1);
    }
    /* SOMAXCONN, not 10: a burst of clients must not be dropped. */
    if (listen(fd, SOMAXCONN) < 0) {
        fprintf(stderr, "server: listen %s: %s\n", name, strerror(errno));
        exit(1);
    }
    return fd;
}

static void log_conn(char sign, const char *name, int count)
{
    if (!quiet)
        fprintf(stderr, "%c %s (%d active)\n", sign, name, count);
}

static void log_message(const char *name, const char *buf, size_t n)
{
    char text[256];
    size_t k = 0;
    for (size_t i = 0; i < n && k < sizeof text - 1; i++)
        if (buf[i] >= 0x20 && buf[i] < 0x7f)
            text[k++] = buf[i];
    text[k] = '\0';
    fprintf(stderr, "< %s (%zu bytes): %s\n", name, n, text);
}

/* Loops because send() may be short; SIGPIPE is ignored, so a vanished
   peer gives EPIPE here and ends this connection only. */
static int send_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static void notify(int efd)
{
    uint64_t one = 1;
    while (write(efd, &one, sizeof one) < 0 && errno == EINTR)
        ;
}

static void *client_thread(void *arg)
{
    struct client *c = arg;
    int fd = c->fd;     /* written by main before pthread_create */
    char buf[BUF_SIZE];

    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)     /* EOF (also after a half-close), reset, or shutdown */
            break;
        if (verbose && !quiet)
            log_message(c->name, buf, (size_t)n);
        if (send_all(fd, buf, (size_t)n) < 0)
            break;
    }
    pthread_mutex_lock(&lock);
    /* Cleared under the lock before close(), so main never shuts down a
       descriptor number that another connection has since reused. */
    c->fd = -1;
    c->done = 1;
    int count = --active;
    pthread_mutex_unlock(&lock);
    close(fd);
    log_conn('-', c->name, count);
    notify(done_fd);    /* main joins us and frees c */
    return NULL;
}

static void on_stop(int sig)
{
    (void)sig;
    int saved = errno;
    uint64_t one = 1;
    ssize_t r = write(stop_fd, &one, sizeof one);
    (void)r;
    errno = saved;
}

static void reap_finished(void)
{
    size_t i = 0;
    while (i < nclients) {
        struct client *c = clients[i];
        pthread_mutex_lock(&lock);
        int done = c->done;
        pthread_mutex_unlock(&lock);
        if (!done) {
            i++;
            continue;
        }
        pthread_join(c->tid, NULL);     /* returns at once: the thread is ending */
        free(c);
        clients[i] = clients[--nclients];
    }
}

/* Returns 1 when accept() should pause (out of descriptors, memory or threads). */
static int accept_one(int listen_fd, const sigset_t *stopset)
{
    static int reported;    /* say it once per episode, not every 100 ms */
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof ss;
    int fd = accept4(listen_fd, (struct sockaddr *)&ss, &sslen, SOCK_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == EAGAIN || e == EWOULDBLOCK || e == EINTR || e == ECONNABORTED || e == EPROTO)
            return 0;
        if (!reported)
            fprintf(stderr, "server: accept: %s\n", strerror(e));
        reported = 1;
        return 1;
    }
    reported = 0;

    if (nclients == cap_clients) {
        size_t ncap = cap_clients ? 2 * cap_clients : 16;
        struct client **p = realloc(clients, ncap * sizeof *p);
        if (!p) {
            close(fd);
            return 1;
        }
        clients = p;
        cap_clients = ncap;
    }
    struct client *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return 1;
    }
    c->fd = fd;
    fmt_addr(&ss, c->name, sizeof c->name);

    pthread_mutex_lock(&lock);
    int count = ++active;
    pthread_mutex_unlock(&lock);
    /* Logged before the thread exists, so its '-' line cannot come first. */
    log_conn('+', c->name, count);

    /* The new thread inherits this mask: the stop handler never runs on it. */
    sigset_t old;
    pthread_sigmask(SIG_BLOCK, stopset, &old);
    int err = pthread_create(&c->tid, NULL, client_thread, c);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err != 0) {
        fprintf(stderr, "server: pthread_create: %s\n", strerror(err));
        pthread_mutex_lock(&lock);
        count = --active;
        pthread_mutex_unlock(&lock);
        close(fd);
        log_conn('-', c->name, count);
        free(c);
        return 1;
    }
    clients[nclients++] = c;
    return 0;
}

int main(int argc, char **argv)
{
    const char *addr = "127.0.0.1";
    long port = 8080;
    int opt;

    opterr = 0;     /* our own one-line messages, then the usage */
    while ((opt = getopt(argc, argv, ":p:b:qvh")) != -1) {
        switch (opt) {
        case 'p':
            if ((port = parse_num(optarg, 0, 65535)) < 0)
                bad_usage("bad port '%s' (expected 0 to 65535)", optarg);
            break;
        case 'b':
            addr = optarg;
            break;
        case 'q':
            quiet = 1;
            break;
        case 'v':
            verbose = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case ':': {
            char o[2] = { (char)optopt, '\0' };
            bad_usage("option -%s needs a value", o);
        }
        default: {
            char o[2] = { (char)optopt, '\0' };
            bad_usage("unknown option -%s", o);
        }
        }
    }
    if (optind < argc)
        bad_usage("unexpected argument '%s'", argv[optind]);

    int listen_fd = open_listener(addr, (int)port);
    stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    done_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (stop_fd < 0 || done_fd < 0) {
        perror("server: eventfd");
        return 1;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGPIPE, &sa, NULL) < 0) {
        perror("server: sigaction");
        return 1;
    }
    sa.sa_handler = on_stop;
    sigset_t stopset;
    sigemptyset(&stopset);
    sigaddset(&stopset, SIGINT);
    sigaddset(&stopset, SIGTERM);
    sa.sa_mask = stopset;
    if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0) {
        perror("server: sigaction");
        return 1;
    }

    struct sockaddr_storage ss;
    socklen_t sslen = sizeof ss;
    char name[NAME_LEN];
    if (getsockname(listen_fd, (struct sockaddr *)&ss, &sslen) == 0)
        fmt_addr(&ss, name, sizeof name);
    else
        snprintf(name, sizeof name, "%s:%ld", addr, port);
    printf("listening on %s\n", name);
    fflush(stdout);

    struct pollfd pf[3] = {
        { .fd = listen_fd, .events = POLLIN },
        { .fd = stop_fd, .events = POLLIN },
        { .fd = done_fd, .events = POLLIN },
    };
    int paused = 0;
    for (;;) {
        /* While paused, leave the listening socket out: it stays readable
           and would make poll() return at once, a busy loop. A finishing
           thread (a descriptor freed) or 100 ms end the pause. */
        pf[0].fd = paused ? -1 : listen_fd;
        int n = poll(pf, 3, paused ? 100 : -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("server: poll");
            break;
        }
        if (pf[1].revents & POLLIN)
            break;
        if (pf[2].revents & POLLIN) {
            uint64_t v;
            ssize_t r = read(done_fd, &v, sizeof v);
            (void)r;
            reap_finished();
            paused = 0;
        }
        if (n == 0)
            paused = 0;
        if (pf[0].revents & POLLIN)
            paused = accept_one(listen_fd, &stopset);
    }

    close(listen_fd);   /* stop accepting first */
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < nclients; i++)
        if (clients[i]->fd >= 0)
            shutdown(clients[i]->fd, SHUT_RDWR);    /* their recv() returns 0 */
    pthread_mutex_unlock(&lock);
    for (size_t i = 0; i < nclients; i++) {
        pthread_join(clients[i]->tid, NULL);
        free(clients[i]);
    }
    free(clients);
    close(stop_fd);
    close(done_fd);
    pthread_mutex_destroy(&lock);
    fprintf(stderr, "shutting down\n");
    return 0;
}
