/*
 * chapter: 05
 * design: select() with fd_sets rebuilt each turn from a connection array; self-pipe for SIGINT/SIGTERM; MSG_NOSIGNAL (SIGPIPE left alone); output as a list of 4 KiB chunks with a 64 KiB read-stop watermark; fds >= FD_SETSIZE refused; spare fd for EMFILE
 *
 * A one-thread echo server written independently of the lab's reference, so the
 * grader can be checked against a second correct implementation whose inner
 * choices differ. Every socket is non-blocking; a client that does not read
 * only fills its own chunk list, and at 64 KiB the server stops reading it.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CHUNK_SIZE 4096
#define HIGH_WATER (64 * 1024)
#define READS_PER_TURN 16     /* so one fast client cannot hold the loop */
#define ACCEPTS_PER_TURN 64
#define REST_MS 100           /* listener rest after an accept failure we cannot clear */

struct chunk {
    struct chunk *next;
    size_t start, end;        /* unsent bytes are data[start..end) */
    char data[CHUNK_SIZE];
};

struct conn {
    int fd;
    int eof;                  /* the peer shut down its writing side */
    size_t pending;           /* bytes waiting in the chunk list */
    struct chunk *head, *tail;
    char name[64];
};

/* Every fd we keep is < FD_SETSIZE, so FD_SETSIZE slots always suffice. */
static struct conn conns[FD_SETSIZE];
static int nconns;
static int quiet, verbose;
static int sigpipe_fds[2] = { -1, -1 };
static int spare_fd = -1;

static void usage(FILE *f)
{
    fprintf(f, "usage: server [-p PORT] [-b ADDR] [-q] [-v] [-h]\n"
               "  -p PORT  port to listen on (default 8080, 0: any free port)\n"
               "  -b ADDR  IPv4 or IPv6 address to bind (default 127.0.0.1)\n"
               "  -q       quiet: no per-connection log lines\n"
               "  -v       verbose: also log each message received\n"
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

/* Only write() here: it is async-signal-safe, stdio and malloc are not. */
static void on_stop_signal(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    ssize_t r = write(sigpipe_fds[1], &b, 1); /* pipe full: a wake-up is already queued */
    (void)r;
    errno = saved;
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

static void drop(int i, int log)
{
    struct conn *c = &conns[i];
    close(c->fd);
    while (c->head) {
        struct chunk *next = c->head->next;
        free(c->head);
        c->head = next;
    }
    nconns--;
    if (log && !quiet)
        fprintf(stderr, "- %s (%d active)\n", c->name, nconns);
    if (i != nconns)
        conns[i] = conns[nconns];   /* keep the array dense: select() is O(n) anyway */
}

/* Returns 0 if the connection is broken. A short send means the socket buffer
 * is full: the rest waits for write readiness instead of blocking the loop. */
static int flush(struct conn *c)
{
    while (c->head) {
        struct chunk *h = c->head;
        while (h->start < h->end) {
            ssize_t w = send(c->fd, h->data + h->start, h->end - h->start, MSG_NOSIGNAL);
            if (w < 0) {
                if (errno == EINTR)
                    continue;
                return errno == EAGAIN || errno == EWOULDBLOCK;
            }
            h->start += (size_t)w;
            c->pending -= (size_t)w;
            if (h->start < h->end)
                return 1;
        }
        c->head = h->next;
        if (!c->head)
            c->tail = NULL;
        free(h);
    }
    return 1;
}

/* Reads straight into the free end of the last chunk, never past the watermark,
 * so pending output stays <= HIGH_WATER whatever the client sends. */
static int on_readable(struct conn *c)
{
    for (int k = 0; k < READS_PER_TURN && c->pending < HIGH_WATER; k++) {
        struct chunk *t = c->tail;
        if (!t || t->end == CHUNK_SIZE) {
            t = malloc(sizeof *t);
            if (!t) {
                fprintf(stderr, "server: out of memory, dropping %s\n", c->name);
                return 0;
            }
            t->next = NULL;
            t->start = t->end = 0;
            if (c->tail)
                c->tail->next = t;
            else
                c->head = t;
            c->tail = t;
        }
        size_t room = CHUNK_SIZE - t->end;
        if (room > HIGH_WATER - c->pending)
            room = HIGH_WATER - c->pending;
        ssize_t r = recv(c->fd, t->data + t->end, room, 0);
        if (r > 0) {
            if (verbose)
                log_message(c, t->data + t->end, (size_t)r);
            t->end += (size_t)r;
            c->pending += (size_t)r;
            if ((size_t)r < room)
                break;              /* the socket is drained; select will tell us about more */
        } else if (r == 0) {
            c->eof = 1;
            break;
        } else if (errno == EINTR) {
            k--;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            break;
        } else {
            return 0;               /* a reset ends this connection only */
        }
    }
    return flush(c);
}

/* EMFILE: give up the spare descriptor for a moment to take the pending client
 * off the queue and close it, else select() would report the listener forever.
 * Returns 1 if one was refused, 0 if none was waiting, -1 if we must rest. */
static int shed_one(int lfd)
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

/* Returns the time until which the listener should rest, or 0. */
static long long accept_clients(int lfd)
{
    for (int k = 0; k < ACCEPTS_PER_TURN; k++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            switch (errno) {
            case EAGAIN:      /* == EWOULDBLOCK on Linux */
                return 0;
            case EINTR: case ECONNABORTED: case EPROTO: case ENETDOWN: case ENOPROTOOPT:
            case EHOSTDOWN: case ENONET: case EHOSTUNREACH: case EOPNOTSUPP: case ENETUNREACH:
                continue;           /* that client is gone; the next one may be fine */
            case EMFILE: case ENFILE: {
                int r = shed_one(lfd);
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
            return now_ms() + REST_MS;
        }
        char name[64];
        format_addr(&ss, name, sizeof name);
        if (fd >= FD_SETSIZE) {
            /* FD_SET on it would write past the end of the fd_set */
            close(fd);
            if (!quiet)
                fprintf(stderr, "! %s refused: fd %d >= FD_SETSIZE (%d)\n", name, fd, FD_SETSIZE);
            continue;
        }
        struct conn *c = &conns[nconns++];
        memset(c, 0, sizeof *c);
        c->fd = fd;
        memcpy(c->name, name, sizeof name);
        if (!quiet)
            fprintf(stderr, "+ %s (%d active)\n", c->name, nconns);
    }
    return 0;
}

static int open_listener(const struct sockaddr_storage *ss, socklen_t sl)
{
    char where[80];
    format_addr(ss, where, sizeof where);
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        perror("server: socket");
        exit(1);
    }
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        perror("server: setsockopt SO_REUSEADDR");
    if (bind(fd, (const struct sockaddr *)ss, sl) < 0) {
        fprintf(stderr, "server: bind %s: %s\n", where, strerror(errno));
        exit(1);
    }
    if (listen(fd, SOMAXCONN) < 0) {
        fprintf(stderr, "server: listen %s: %s\n", where, strerror(errno));
        exit(1);
    }
    if (fd >= FD_SETSIZE) {
        fprintf(stderr, "server: listening fd %d >= FD_SETSIZE\n", fd);
        exit(1);
    }
    return fd;
}

int main(int argc, char **argv)
{
    struct sockaddr_storage ss;
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    const char *addr = "127.0.0.1";
    long port = 8080;
    int opt;

    opterr = 0;   /* our own one-line messages, then the usage */
    while ((opt = getopt(argc, argv, ":p:b:qvh")) != -1) {
        switch (opt) {
        case 'p': {
            char *end;
            errno = 0;
            port = strtol(optarg, &end, 10);
            if (!*optarg || *end || errno || port < 0 || port > 65535 || !isdigit((unsigned char)*optarg))
                bad_usage("invalid port: ", optarg);
            break;
        }
        case 'b': addr = optarg; break;
        case 'q': quiet = 1; break;
        case 'v': verbose = 1; break;
        case 'h': usage(stdout); return 0;
        case ':': {
            char o[3] = { '-', (char)optopt, 0 };
            bad_usage("missing value for option ", o);
        }
        default: {
            char o[3] = { '-', (char)optopt, 0 };
            bad_usage("unknown option ", o);
        }
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

    if (pipe2(sigpipe_fds, O_NONBLOCK | O_CLOEXEC) < 0) {
        perror("server: pipe2");
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0) {
        perror("server: sigaction");
        return 1;
    }

    int lfd = open_listener(&ss, sl);
    spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (getsockname(lfd, (struct sockaddr *)&ss, &sl) < 0) {
        perror("server: getsockname");
        return 1;
    }
    char where[80];
    format_addr(&ss, where, sizeof where);
    printf("listening on %s\n", where);
    fflush(stdout);

    int status = 0;
    long long rest_until = 0;
    for (;;) {
        fd_set rd, wr;
        FD_ZERO(&rd);
        FD_ZERO(&wr);
        FD_SET(sigpipe_fds[0], &rd);
        int maxfd = sigpipe_fds[0];
        struct timeval tv, *tvp = NULL;
        if (rest_until) {
            long long left = rest_until - now_ms();
            if (left <= 0) {
                rest_until = 0;
            } else {
                tv.tv_sec = left / 1000;
                tv.tv_usec = (left % 1000) * 1000;
                tvp = &tv;
            }
        }
        if (!rest_until) {
            FD_SET(lfd, &rd);
            if (lfd > maxfd)
                maxfd = lfd;
        }
        for (int i = 0; i < nconns; i++) {
            struct conn *c = &conns[i];
            if (!c->eof && c->pending < HIGH_WATER)
                FD_SET(c->fd, &rd);
            if (c->pending)         /* a writable socket is always ready: only ask when needed */
                FD_SET(c->fd, &wr);
            if (c->fd > maxfd)
                maxfd = c->fd;
        }

        if (select(maxfd + 1, &rd, &wr, NULL, tvp) < 0) {
            if (errno == EINTR)
                continue;
            perror("server: select");
            status = 1;
            break;
        }
        if (FD_ISSET(sigpipe_fds[0], &rd))
            break;

        for (int i = 0; i < nconns;) {
            struct conn *c = &conns[i];
            int ok = 1;
            if (FD_ISSET(c->fd, &wr))
                ok = flush(c);
            if (ok && FD_ISSET(c->fd, &rd))
                ok = on_readable(c);
            if (!ok || (c->eof && c->pending == 0))
                drop(i, 1);         /* moves the last connection into slot i */
            else
                i++;
        }
        /* after the loop, so a reused fd number cannot match a stale bit */
        if (!rest_until && FD_ISSET(lfd, &rd))
            rest_until = accept_clients(lfd);
    }

    /* The contract: every connection closed and logged before "shutting down". */
    close(lfd);
    while (nconns > 0)
        drop(nconns - 1, 1);
    fprintf(stderr, "shutting down\n");
    if (spare_fd >= 0)
        close(spare_fd);
    close(sigpipe_fds[0]);
    close(sigpipe_fds[1]);
    return status;
}
