/*
 * chapter: 01
 * design: iterative; SIGINT/SIGTERM blocked except inside ppoll(); non-blocking sockets; read()/write(); one 64 KiB malloc'd buffer; SIGPIPE ignored; spare descriptor for EMFILE
 *
 * One client is served at a time: the loop waits on the listener, accepts
 * one connection and serves it until it ends; later clients wait in the
 * listen backlog, unrefused.  The stop signals are blocked for the whole
 * life of the process and only let through by the mask that ppoll()
 * installs while it sleeps, so a signal can only interrupt a ppoll(), which
 * returns EINTR with the flag already set: checking the flag right after
 * every ppoll() cannot miss a stop and needs neither a self-pipe nor a
 * timeout.  Both the listener and the client socket are non-blocking, so
 * the only place the server ever sleeps is ppoll(), and a stop ends a
 * session at once, even one whose client never reads.  A session owns a
 * single 64 KiB buffer (allocated once, at start): the server reads into it
 * only when it is empty and writes it back before reading again, so the
 * output pending for a client never exceeds 64 KiB and memory stays flat.
 * A spare descriptor on /dev/null is kept open; when accept() fails for
 * want of descriptors, the spare is closed, the waiting connection accepted
 * and closed at once (refused), and the spare reopened; if even that is
 * impossible the listener is left alone for 100 ms instead of spinning.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#define BUF_SIZE     (64 * 1024)
#define NAME_SIZE    (INET6_ADDRSTRLEN + 16)   /* "[addr]:port" */
#define BACKOFF_NS   (100 * 1000 * 1000L)      /* 100 ms */

static const char usage_text[] =
    "usage: server [-p PORT] [-b ADDR] [-q] [-v] [-h]\n"
    "  -p PORT  port to listen on (default 8080, 0: chosen by the kernel)\n"
    "  -b ADDR  IPv4 or IPv6 literal to bind (default 127.0.0.1)\n"
    "  -q       quiet: no per-connection log lines\n"
    "  -v       verbose: also log each message received\n"
    "  -h       this help\n";

/* Set by the handler; only ever written while ppoll() sleeps. */
static volatile sig_atomic_t stop_requested;

static bool quiet, verbose;
static int active;            /* connections held: 0 or 1 here */
static sigset_t wait_mask;    /* the mask ppoll() sleeps with: stops allowed */

static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* A bad command line: what is wrong, then the usage, on stderr; exit 2. */
__attribute__((noreturn, format(printf, 1, 2)))
static void bad_usage(const char *fmt, ...)
{
    va_list ap;

    fputs("server: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fputs(usage_text, stderr);
    exit(2);
}

/* Close a descriptor, reporting (but surviving) a failure. */
static void close_fd(int fd)
{
    if (close(fd) < 0 && errno != EINTR)
        fprintf(stderr, "server: close: %s\n", strerror(errno));
}

/* "1.2.3.4:80" or "[::1]:80" for an IPv4 or IPv6 socket address. */
static void format_addr(const struct sockaddr_storage *sa, char *out, size_t size)
{
    char host[INET6_ADDRSTRLEN];
    const void *ip;
    unsigned port;
    const char *open = "", *close_br = "";

    if (sa->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        ip = &s6->sin6_addr;
        port = ntohs(s6->sin6_port);
        open = "[";
        close_br = "]";
    } else if (sa->ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        ip = &s4->sin_addr;
        port = ntohs(s4->sin_port);
    } else {
        snprintf(out, size, "?");
        return;
    }
    if (inet_ntop(sa->ss_family, ip, host, sizeof host) == NULL)
        snprintf(host, sizeof host, "?");
    snprintf(out, size, "%s%s%s:%u", open, host, close_br, port);
}

static void log_conn(char sign, const char *name)
{
    if (!quiet)
        fprintf(stderr, "%c %s (%d active)\n", sign, name, active);
}

/* -v: the bytes received, printable ASCII only, on one line. */
static void log_message(const char *name, const char *data, size_t len)
{
    char line[1024];
    size_t n = 0;

    fprintf(stderr, "recv %s: ", name);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)data[i];
        if (c >= 0x20 && c < 0x7f)
            line[n++] = (char)c;
        if (n == sizeof line) {
            fwrite(line, 1, n, stderr);
            n = 0;
        }
    }
    line[n++] = '\n';
    fwrite(line, 1, n, stderr);
}

/*
 * Wait for events on at most one descriptor (fd < 0: on none), with the
 * stop signals let through.  Returns ppoll()'s result; -1 with errno EINTR
 * when a signal (perhaps a stop) arrived.
 */
static int wait_for(int fd, short events, const struct timespec *timeout)
{
    struct pollfd pfd = { .fd = fd, .events = events, .revents = 0 };

    return ppoll(&pfd, 1, timeout, &wait_mask);
}

enum session_end { SESSION_DONE, SESSION_STOPPED };

/*
 * Echo everything the client sends until it closes its side (and has got
 * it all back), fails, or the server is told to stop.  The buffer holds
 * what was read and not yet written back: the server reads only when it is
 * empty, so at most BUF_SIZE bytes are ever pending for the client.
 */
static enum session_end serve(int fd, const char *name, char *buf)
{
    size_t len = 0, off = 0;   /* pending output: buf[off, len) */
    bool eof = false;

    for (;;) {
        while (off < len) {
            ssize_t n = write(fd, buf + off, len - off);
            if (n > 0) {
                off += (size_t)n;
            } else if (n < 0 && errno == EINTR) {
                continue;
            } else if (n == 0 || errno == EAGAIN || errno == EWOULDBLOCK) {
                break;
            } else {
                if (errno != EPIPE && errno != ECONNRESET)
                    fprintf(stderr, "server: write %s: %s\n", name, strerror(errno));
                return SESSION_DONE;
            }
        }
        if (off == len) {
            off = len = 0;
            if (eof)
                return SESSION_DONE;
        }

        if (wait_for(fd, len > 0 ? POLLOUT : POLLIN, NULL) < 0) {
            if (errno == EINTR) {
                if (stop_requested)
                    return SESSION_STOPPED;
                continue;
            }
            fprintf(stderr, "server: ppoll %s: %s\n", name, strerror(errno));
            return SESSION_DONE;
        }
        if (len > 0)
            continue;          /* writable, or an error the write will report */

        ssize_t n = read(fd, buf, BUF_SIZE);
        if (n > 0) {
            len = (size_t)n;
            if (verbose)
                log_message(name, buf, len);
        } else if (n == 0) {
            eof = true;        /* half-close or close: finish, then hang up */
        } else if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
            if (errno != ECONNRESET)
                fprintf(stderr, "server: read %s: %s\n", name, strerror(errno));
            return SESSION_DONE;
        }
    }
}

static int open_spare(void)
{
    return open("/dev/null", O_RDONLY | O_CLOEXEC);
}

/*
 * Out of descriptors: give the spare one up to accept the waiting
 * connection, close it at once, and take the spare back.  Returns false if
 * there was no spare to give (the caller then backs off).
 */
static bool refuse_one(int lfd, int *spare)
{
    if (*spare < 0)
        return false;
    close_fd(*spare);
    int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (c >= 0) {
        close_fd(c);
        fprintf(stderr, "server: out of descriptors, connection refused\n");
    }
    *spare = open_spare();
    return true;
}

/* Parse, bind and listen; exits 2 on a bad value, 1 on a failure. */
static int open_listener(const char *addr, const char *port_str)
{
    char *end;
    errno = 0;
    long port = strtol(port_str, &end, 10);
    if (errno != 0 || end == port_str || *end != '\0' || port < 0 || port > 65535)
        bad_usage("bad port: %s", port_str);

    struct addrinfo hints = {
        .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE,
        .ai_family = AF_UNSPEC,
        .ai_socktype = SOCK_STREAM,
    }, *ai;
    char service[8];
    snprintf(service, sizeof service, "%ld", port);
    int rc = getaddrinfo(addr, service, &hints, &ai);
    if (rc != 0)
        bad_usage("bad address: %s", addr);

    char name[NAME_SIZE];
    struct sockaddr_storage ss = { 0 };
    memcpy(&ss, ai->ai_addr, ai->ai_addrlen < sizeof ss ? ai->ai_addrlen : sizeof ss);
    format_addr(&ss, name, sizeof name);

    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fprintf(stderr, "server: socket: %s\n", strerror(errno));
        freeaddrinfo(ai);
        exit(1);
    }
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        fprintf(stderr, "server: SO_REUSEADDR: %s\n", strerror(errno));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        fprintf(stderr, "server: bind %s: %s\n", name, strerror(errno));
        freeaddrinfo(ai);
        close_fd(fd);
        exit(1);
    }
    freeaddrinfo(ai);
    if (listen(fd, SOMAXCONN) < 0) {
        fprintf(stderr, "server: listen %s: %s\n", name, strerror(errno));
        close_fd(fd);
        exit(1);
    }
    return fd;
}

static void setup_signals(void)
{
    sigset_t stops;
    struct sigaction sa;

    /* Block the stop signals first: from now on they can only be
     * delivered inside ppoll(), through wait_mask. */
    sigemptyset(&stops);
    sigaddset(&stops, SIGINT);
    sigaddset(&stops, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &stops, &wait_mask) < 0) {
        fprintf(stderr, "server: sigprocmask: %s\n", strerror(errno));
        exit(1);
    }
    sigdelset(&wait_mask, SIGINT);
    sigdelset(&wait_mask, SIGTERM);

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigfillset(&sa.sa_mask);
    sa.sa_flags = 0;
    if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0) {
        fprintf(stderr, "server: sigaction: %s\n", strerror(errno));
        exit(1);
    }

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGPIPE, &sa, NULL) < 0) {
        fprintf(stderr, "server: sigaction SIGPIPE: %s\n", strerror(errno));
        exit(1);
    }
}

int main(int argc, char **argv)
{
    const char *port = "8080", *addr = "127.0.0.1";
    int opt;

    opterr = 0;
    while ((opt = getopt(argc, argv, ":p:b:qvh")) != -1) {
        switch (opt) {
        case 'p': port = optarg; break;
        case 'b': addr = optarg; break;
        case 'q': quiet = true; break;
        case 'v': verbose = true; break;
        case 'h':
            fputs(usage_text, stdout);
            return fflush(stdout) == 0 ? 0 : 1;
        case ':':
            bad_usage("option -%c needs a value", optopt);
        default:
            bad_usage("unknown option -%c", optopt);
        }
    }
    if (optind < argc)
        bad_usage("unexpected argument: %s", argv[optind]);

    setup_signals();

    char *buf = malloc(BUF_SIZE);
    if (buf == NULL) {
        fprintf(stderr, "server: out of memory\n");
        return 1;
    }

    int lfd = open_listener(addr, port);

    struct sockaddr_storage ss;
    socklen_t sslen = sizeof ss;
    char name[NAME_SIZE];
    if (getsockname(lfd, (struct sockaddr *)&ss, &sslen) < 0) {
        fprintf(stderr, "server: getsockname: %s\n", strerror(errno));
        close_fd(lfd);
        free(buf);
        return 1;
    }
    format_addr(&ss, name, sizeof name);

    int spare = open_spare();
    if (spare < 0)
        fprintf(stderr, "server: spare descriptor: %s\n", strerror(errno));

    if (printf("listening on %s\n", name) < 0 || fflush(stdout) != 0) {
        fprintf(stderr, "server: stdout: %s\n", strerror(errno));
        close_fd(lfd);
        if (spare >= 0)
            close_fd(spare);
        free(buf);
        return 1;
    }

    const struct timespec backoff = { .tv_sec = 0, .tv_nsec = BACKOFF_NS };
    bool throttled = false;

    while (!stop_requested) {
        if (spare < 0)
            spare = open_spare();   /* may fail again: tried each round */

        /* Throttled: watch nothing (fd -1 is ignored) for a while. */
        int r = wait_for(throttled ? -1 : lfd, POLLIN, throttled ? &backoff : NULL);
        if (r < 0) {
            if (errno != EINTR) {
                fprintf(stderr, "server: ppoll: %s\n", strerror(errno));
                throttled = true;
            }
            continue;              /* the loop condition sees a stop */
        }
        throttled = false;
        if (r == 0)
            continue;

        ss = (struct sockaddr_storage){ 0 };
        sslen = sizeof ss;
        int cfd = accept4(lfd, (struct sockaddr *)&ss, &sslen,
                          SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            switch (errno) {
            case EAGAIN:
#if EWOULDBLOCK != EAGAIN
            case EWOULDBLOCK:
#endif
            case EINTR:
            case ECONNABORTED:
            case EPROTO:
                break;             /* that one is gone: wait for the next */
            case EMFILE:
            case ENFILE:
                throttled = !refuse_one(lfd, &spare);
                break;
            default:               /* ENOBUFS, ENOMEM, network errors... */
                fprintf(stderr, "server: accept: %s\n", strerror(errno));
                throttled = true;
                break;
            }
            continue;
        }

        format_addr(&ss, name, sizeof name);
        active++;
        log_conn('+', name);
        enum session_end end = serve(cfd, name, buf);
        close_fd(cfd);
        active--;
        log_conn('-', name);
        if (end == SESSION_STOPPED)
            break;
    }

    close_fd(lfd);
    if (spare >= 0)
        close_fd(spare);
    free(buf);
    fprintf(stderr, "shutting down\n");
    return 0;
}
