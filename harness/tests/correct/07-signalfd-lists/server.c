/*
 * chapter: 07
 * design: epoll (level-triggered, -e edge-triggered) with state in data.ptr; signalfd for SIGINT/SIGTERM; SIGPIPE ignored; connections on a doubly linked list; per-connection output buffer allocated only while output is pending (<= 64 KiB); spare fd for EMFILE
 *
 * A one-thread echo server written independently of the lab's reference, so the
 * grader can be checked against a second correct implementation. An idle
 * connection costs a small struct and no buffer, which is what lets it hold
 * 10,000 clients; the list is only there so shutdown can find and free them all.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HIGH_WATER (64 * 1024)
#define MAX_EVENTS 256
#define ACCEPTS_PER_EVENT 64  /* level-triggered only: epoll reports the rest again */
#define REST_MS 100           /* listener rest after an accept failure we cannot clear */

struct conn {
    int fd;
    int eof;                  /* the peer shut down its writing side */
    uint32_t watched;         /* the events epoll currently has for this fd */
    char *out;                /* HIGH_WATER bytes while output is pending, else NULL */
    size_t out_off, out_len;
    struct conn *prev, *next;
    char name[64];
};

static struct conn *all;      /* every open connection */
static int nconns;
static int quiet, verbose, edge;
static int epfd = -1, lfd = -1, spare_fd = -1;
static char listener_tag, signal_tag;   /* data.ptr of the two non-client fds */

static void usage(FILE *f)
{
    fprintf(f, "usage: server [-p PORT] [-b ADDR] [-q] [-v] [-e] [-h]\n"
               "  -p PORT  port to listen on (default 8080, 0: any free port)\n"
               "  -b ADDR  IPv4 or IPv6 address to bind (default 127.0.0.1)\n"
               "  -q       quiet: no per-connection log lines\n"
               "  -v       verbose: also log each message received\n"
               "  -e       edge-triggered epoll (default: level-triggered)\n"
               "  -h       print this help and exit\n");
}

__attribute__((noreturn)) static void bad_usage(const char *what, const char *arg)
{
    fprintf(stderr, "server: %s%s\n", what, arg ? arg : "");
    usage(stderr);
    exit(2);
}

static void format_addr(const struct sockaddr_storage *ss, char *out, size_t len)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
        snprintf(out, len, "[%s]:%u", ip, (unsigned)ntohs(s6->sin6_port));
    } else {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof ip);
        snprintf(out, len, "%s:%u", ip, (unsigned)ntohs(s4->sin_port));
    }
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void log_message(const struct conn *c, const char *p, size_t n)
{
    char text[101];
    size_t k = 0;
    for (size_t i = 0; i < n && k < sizeof text - 1; i++)
        if (isprint((unsigned char)p[i]))
            text[k++] = p[i];
    text[k] = '\0';
    fprintf(stderr, "> %s: %s\n", c->name, text);
}

static void drop(struct conn *c, int log)
{
    close(c->fd);             /* also removes it from the epoll set */
    if (c->prev)
        c->prev->next = c->next;
    else
        all = c->next;
    if (c->next)
        c->next->prev = c->prev;
    nconns--;
    if (log && !quiet)
        fprintf(stderr, "- %s (%d active)\n", c->name, nconns);
    free(c->out);
    free(c);
}

/* Reading is watched only below the watermark and before EOF: in level-triggered
 * mode a readable socket we do not read (or a FIN already seen) would wake
 * epoll_wait forever. EPOLLOUT only while output waits, for the same reason. */
static int watch(struct conn *c)
{
    uint32_t want = 0;
    if (!c->eof && c->out_len < HIGH_WATER)
        want |= EPOLLIN | EPOLLRDHUP;
    if (c->out_len)
        want |= EPOLLOUT;
    if (edge)
        want |= EPOLLET;
    if (want == c->watched)
        return 1;
    /* In edge mode this MOD also re-arms: data that came while EPOLLIN was off
     * is reported again, so a drained client resumes without a new edge. */
    struct epoll_event ev = { .events = want, .data.ptr = c };
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) {
        perror("server: epoll_ctl MOD");
        return 0;
    }
    c->watched = want;
    return 1;
}

/* Sends until done or the socket buffer is full; -1 if the connection broke. */
static ssize_t send_some(int fd, const char *p, size_t n)
{
    size_t done = 0;
    while (done < n) {
        ssize_t w = send(fd, p + done, n - done, 0);  /* SIGPIPE is ignored: EPIPE instead */
        if (w >= 0) {
            done += (size_t)w;
        } else if (errno != EINTR) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            return -1;
        }
    }
    return (ssize_t)done;
}

static int flush(struct conn *c)
{
    ssize_t w = send_some(c->fd, c->out + c->out_off, c->out_len);
    if (w < 0)
        return 0;
    c->out_off += (size_t)w;
    c->out_len -= (size_t)w;
    if (c->out_len == 0) {    /* idle connections hold no buffer */
        free(c->out);
        c->out = NULL;
    }
    return 1;
}

/* Echo what was read: straight to the socket if nothing is queued (order
 * must be kept), the rest into the buffer, which the caller's read size keeps
 * within HIGH_WATER. */
static int echo(struct conn *c, const char *p, size_t n)
{
    size_t sent = 0;
    if (c->out_len == 0) {
        ssize_t w = send_some(c->fd, p, n);
        if (w < 0)
            return 0;
        sent = (size_t)w;
    }
    if (sent == n)
        return 1;
    if (!c->out) {
        c->out = malloc(HIGH_WATER);
        if (!c->out) {
            fprintf(stderr, "server: out of memory, dropping %s\n", c->name);
            return 0;
        }
        c->out_off = 0;
    }
    if (c->out_off + c->out_len + (n - sent) > HIGH_WATER) {
        memmove(c->out, c->out + c->out_off, c->out_len);
        c->out_off = 0;
    }
    memcpy(c->out + c->out_off + c->out_len, p + sent, n - sent);
    c->out_len += n - sent;
    return 1;
}

/* Level-triggered: one read per event, epoll reports the rest. Edge-triggered:
 * read until EAGAIN, or until a short read if this event carried no
 * EPOLLRDHUP/EPOLLHUP (a later FIN or byte raises a new edge; one already here
 * would have been in this event, so we must read on to see the 0). */
static int on_readable(struct conn *c, int hup)
{
    static char buf[HIGH_WATER];
    while (!c->eof && c->out_len < HIGH_WATER) {
        size_t room = HIGH_WATER - c->out_len;
        ssize_t r = recv(c->fd, buf, room, 0);
        if (r > 0) {
            if (verbose)
                log_message(c, buf, (size_t)r);
            if (!echo(c, buf, (size_t)r))
                return 0;
            if (!edge || ((size_t)r < room && !hup))
                break;
        } else if (r == 0) {
            c->eof = 1;
        } else if (errno != EINTR) {
            return errno == EAGAIN || errno == EWOULDBLOCK;   /* else a reset: this one only */
        }
    }
    return 1;
}

static void on_client_event(struct conn *c, uint32_t ev)
{
    int ok = !(ev & EPOLLERR);
    if (ok && (ev & EPOLLOUT) && c->out_len)
        ok = flush(c);
    if (ok && (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)))
        ok = on_readable(c, (ev & (EPOLLRDHUP | EPOLLHUP)) != 0);
    if (ok && (ev & EPOLLHUP) && c->out_len)
        ok = 0;               /* both directions are shut: the rest can never be delivered */
    if (!ok || (c->eof && c->out_len == 0) || !watch(c))
        drop(c, 1);
}

/* EMFILE: give up the spare descriptor for a moment to take the pending client
 * off the queue and close it, else the listener stays readable and we spin.
 * Returns 1 if one was refused, 0 if none was waiting, -1 if we must rest. */
static int shed_one(void)
{
    if (spare_fd < 0)
        return -1;
    close(spare_fd);
    int fd, err;
    do {
        fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    err = errno;
    if (fd >= 0)
        close(fd);
    spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd >= 0 && !quiet)
        fprintf(stderr, "! refused a connection: out of file descriptors\n");
    if (spare_fd < 0 || (fd < 0 && err != EAGAIN))
        return -1;
    return fd >= 0;
}

/* Returns 1 if the listener must rest (the caller stops watching it a while). */
static int accept_clients(void)
{
    for (int k = 0; edge || k < ACCEPTS_PER_EVENT; k++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            switch (errno) {
            case EAGAIN:      /* == EWOULDBLOCK on Linux */
                return 0;
            case EINTR: case ECONNABORTED: case EPROTO: case ENETDOWN: case ENOPROTOOPT:
            case EHOSTDOWN: case ENONET: case EHOSTUNREACH: case EOPNOTSUPP: case ENETUNREACH:
                continue;     /* that client is gone; the next one may be fine */
            case EMFILE: case ENFILE: {
                int r = shed_one();
                if (r == 1)
                    continue;
                if (r == 0)
                    return 0;
                break;
            }
            default:
                perror("server: accept");
                break;
            }
            return 1;
        }
        struct conn *c = calloc(1, sizeof *c);
        struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP | (edge ? EPOLLET : 0u), .data.ptr = c };
        if (!c || epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            perror(c ? "server: epoll_ctl ADD" : "server: calloc");
            free(c);
            close(fd);
            return 1;         /* out of memory: let the kernel hold the queue a while */
        }
        c->fd = fd;
        c->watched = ev.events;
        format_addr(&ss, c->name, sizeof c->name);
        c->next = all;
        if (all)
            all->prev = c;
        all = c;
        nconns++;
        if (!quiet)
            fprintf(stderr, "+ %s (%d active)\n", c->name, nconns);
    }
    return 0;
}

static void watch_listener(uint32_t events)
{
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, lfd, &(struct epoll_event){ .events = events, .data.ptr = &listener_tag }) < 0)
        perror("server: epoll_ctl listener");
}

int main(int argc, char **argv)
{
    struct sockaddr_storage ss;
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    const char *addr = "127.0.0.1";
    long port = 8080;

    opterr = 0;   /* our own one-line messages, then the usage */
    for (int opt; (opt = getopt(argc, argv, ":p:b:qveh")) != -1;) {
        char o[3] = { '-', (char)optopt, 0 };
        char *end;
        switch (opt) {
        case 'p':
            errno = 0;
            port = strtol(optarg, &end, 10);
            if (!isdigit((unsigned char)*optarg) || *end || errno || port > 65535)
                bad_usage("invalid port: ", optarg);
            break;
        case 'b': addr = optarg; break;
        case 'q': quiet = 1; break;
        case 'v': verbose = 1; break;
        case 'e': edge = 1; break;
        case 'h': usage(stdout); return 0;
        case ':': bad_usage("missing value for option ", o);
        default: bad_usage("unknown option ", o);
        }
    }
    if (optind < argc)
        bad_usage("unexpected argument: ", argv[optind]);

    memset(&ss, 0, sizeof ss);
    socklen_t sl;
    if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((unsigned short)port);
        sl = sizeof *s4;
    } else if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((unsigned short)port);
        sl = sizeof *s6;
    } else {
        bad_usage("invalid address (IPv4 or IPv6 literal expected): ", addr);
    }

    /* Blocked first, so a signal that comes early waits in the signalfd. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    struct sigaction ign = { .sa_handler = SIG_IGN };
    if (sigprocmask(SIG_BLOCK, &stop, NULL) < 0 || sigaction(SIGPIPE, &ign, NULL) < 0) {
        perror("server: signals");
        return 1;
    }
    int sfd = signalfd(-1, &stop, SFD_NONBLOCK | SFD_CLOEXEC);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (sfd < 0 || epfd < 0) {
        perror("server: signalfd/epoll_create1");
        return 1;
    }

    char where[80];
    format_addr(&ss, where, sizeof where);
    int one = 1;
    lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) {
        perror("server: socket");
        return 1;
    }
    if (bind(lfd, (struct sockaddr *)&ss, sl) < 0) {
        fprintf(stderr, "server: bind %s: %s\n", where, strerror(errno));
        return 1;
    }
    if (listen(lfd, SOMAXCONN) < 0 || getsockname(lfd, (struct sockaddr *)&ss, &sl) < 0) {
        fprintf(stderr, "server: listen %s: %s\n", where, strerror(errno));
        return 1;
    }
    uint32_t lev = EPOLLIN | (edge ? EPOLLET : 0u);
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, sfd, &(struct epoll_event){ .events = EPOLLIN, .data.ptr = &signal_tag }) < 0 ||
        epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &(struct epoll_event){ .events = lev, .data.ptr = &listener_tag }) < 0) {
        perror("server: epoll_ctl ADD");
        return 1;
    }
    spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    format_addr(&ss, where, sizeof where);
    printf("listening on %s\n", where);
    fflush(stdout);

    static struct epoll_event events[MAX_EVENTS];
    long long rest_until = 0;
    int running = 1, status = 0;
    while (running) {
        int timeout = -1;     /* idle: sleep until something happens */
        if (rest_until) {
            long long left = rest_until - now_ms();
            if (left <= 0) {
                rest_until = 0;
                watch_listener(lev);   /* in edge mode this re-arms: queued clients are reported */
            } else {
                timeout = (int)left;
            }
        }
        int n = epoll_wait(epfd, events, MAX_EVENTS, timeout);
        if (n < 0 && errno != EINTR) {
            perror("server: epoll_wait");
            status = 1;
            break;
        }
        for (int i = 0; i < n && running; i++) {
            void *p = events[i].data.ptr;
            if (p == &signal_tag) {
                struct signalfd_siginfo si;
                while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si)
                    running = 0;
            } else if (p == &listener_tag) {
                if (!rest_until && accept_clients()) {
                    rest_until = now_ms() + REST_MS;
                    watch_listener(0);
                }
            } else {
                /* only this connection's own event can free it, so later
                 * entries of this batch never point to freed memory */
                on_client_event(p, events[i].events);
            }
        }
    }

    /* The contract: every connection closed and logged before "shutting down". */
    close(lfd);
    while (all)
        drop(all, 1);
    fprintf(stderr, "shutting down\n");
    if (spare_fd >= 0)
        close(spare_fd);
    close(sfd);
    close(epfd);
    return status;
}
