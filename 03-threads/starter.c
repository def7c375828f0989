/*
 * 03-threads/server.c — an echo server that starts a thread per client.
 *
 * The model: the main thread only accepts; each client gets a detached thread
 * that runs the same echo session as 01.  Threads are cheaper than processes
 * and share the server's memory — which is the catch: the list of clients and
 * the count of active ones are shared, so every access goes through a mutex.
 *
 * Usage: server [-p PORT] [-b ADDR] [-q] [-v] [-h]
 *
 * Try it: run `./harness/run 03 --only races`: a ThreadSanitizer build serves
 * 200 clients at once and must report no data race.  Then remove one
 * pthread_mutex_lock() and run it again.
 * Compare with ../02-fork/server.c (the same shape with processes) and with
 * ../04-threadpool/server.c (a fixed number of threads).
 * Build: cc -pthread -o server server.c
 *
 * STARTER: the functions marked TODO are yours to write (start with 03.1).
 * Each TODO says what; make hint CH=03 says how, one hint at a time.
 * Lesson checks: concurrency,races
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ==== shared: boilerplate.h — its helpers are defined at the end of this file; the same in every chapter (make sync) ==== */
#define BUF_SIZE    16384                    /* bytes read per recv() */
#define ADDR_STRLEN (INET6_ADDRSTRLEN + 8)   /* "[ipv6]:port" */
enum { LISTEN_REUSEPORT = 1, LISTEN_BIND_ONLY = 2 }; /* open_listener()'s how, for 08 */
struct options {
    const char *addr;   /* -b: address to bind */
    const char *port;   /* -p: port; "0" lets the kernel choose */
    int quiet, verbose; /* -q: no per-connection log lines; -v: log every message received */
    int workers, edge;  /* -w: threads or processes (04, 08); -e: edge-triggered epoll (07, 08) */
};
static struct options opt;                 /* the command line, parsed by parse_options() */
static const char *log_tag = "";           /* prefix of every log line ("[w1] " in 08's workers) */
static atomic_int stop_requested;          /* set by SIGINT/SIGTERM (see on_stop_signal) */
static volatile sig_atomic_t wake_fd = -1; /* what a stop signal shuts down to wake the main loop */
static int spare_fd = -1;                  /* a descriptor in reserve, for accept_client() */
static void parse_options(int argc, char **argv);  /* the command line into opt; exit 2 if bad */
static void install_signal_handlers(void);         /* SIGPIPE ignored; SIGINT/SIGTERM stop */
static int open_listener(int sock_flags, int how); /* socket, bind opt.addr:opt.port, listen */
static void print_ready(int listen_fd);            /* "listening on ADDR:PORT", flushed */
static int accept_client(int listen_fd, struct sockaddr_storage *peer, int flags); /* EMFILE-proof */
static void format_addr(const struct sockaddr_storage *ss, char *out, size_t outlen);
static void log_conn(char sign, const char *peer, long active);    /* "+ peer (3 active)" */
static void log_conn_error(const char *what, const char *peer);    /* one connection failed */
static void log_data(const char *peer, const char *buf, size_t len); /* -v: each message */
static void die(const char *what);                 /* "server: what: strerror(errno)", exit 1 */
/* ==== end shared: boilerplate.h ==== */

/* ==== shared: echo-session.h — 01's echo session (make sync) ==== */
/* 01's lesson, which this chapter reuses: defined at the end of this file, copied from 01. */
static void echo_session(int conn_fd, const char *peer); /* echo until the client closes, or a stop */
/* ==== end shared: echo-session.h ==== */

/*
 * Every live client, so that a stop can shut their connections down and wait
 * for their threads.  The list and the count are shared by all threads:
 * clients_lock guards both, and the log lines are written under it too, so
 * that the "(N active)" numbers appear in the order they were counted.
 */
struct client {
    int fd;                      /* the client's socket */
    char peer[ADDR_STRLEN];      /* "127.0.0.1:41234", for the log */
    struct client *prev, *next;  /* in the list of live clients */
};

static pthread_mutex_t clients_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t all_gone = PTHREAD_COND_INITIALIZER;  /* signalled when active drops to 0 */
static struct client *clients;  /* live clients (clients_lock) */
static long active;             /* their number (clients_lock) */

static void unlink_client(struct client *c)  /* with clients_lock held */
{
    if (c->prev)
        c->prev->next = c->next;
    else
        clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    active--;
}

/*
 * One client's thread.  Its socket is closed while clients_lock is held: a
 * stop that walks the list (also under the lock) can never shut down a
 * descriptor number that has meanwhile been closed and reused.  The struct is
 * freed before the lock is released, so once main has seen active == 0 no
 * thread touches memory any more.
 */
static void *client_thread(void *arg)
{
    /*
     * TODO(03.1): one client's thread; arg is its struct client, listed and
     * counted by start_client(), now this thread's.  Serve the client with
     * echo_session(), then leave in one hold of clients_lock (never held
     * during a session): unlisted, uncounted, socket closed, "-" logged,
     * struct freed, end_clients() woken if last.  Checks: races, memcheck.
     * Hints: make hint CH=03 (1-3).
     * Read: the text, "Approche 2 : Multi-Threads avec pthreads" (its
     * handle_client_thread()) and "Synchronisation : Le Problème du Partage
     * de Mémoire"; COURSE.md, "03-threads".
     */
    (void)arg;  /* these casts keep -Werror quiet about what you have not used yet */
    (void)echo_session;
    (void)unlink_client;
    (void)clients_lock;
    (void)all_gone;
    (void)log_conn;
    return NULL;
}

/*
 * Start a thread for one client.  The stop signals are blocked while the
 * thread is created, so it is born with them blocked: only the main thread
 * ever runs the handler, and the handler's shutdown(wake_fd) wakes the
 * accept() that thread is blocked in.  (A signal may go to any thread that
 * does not block it.  shutdown(wake_fd) would wake the main thread from any
 * of them; a stop that relied on accept() failing with EINTR would not.)
 */
static void start_client(int conn_fd, const char *peer, const pthread_attr_t *attr)
{
    /*
     * TODO(03.2): run client_thread() in a new thread made with attr, on a
     * struct client of this client's own (its socket, a copy of peer).  It is
     * listed, counted and logged "+" before its thread exists; only the main
     * thread ever takes a stop signal.  No memory or thread: only this client
     * is turned away, said on stderr, its "+" matched by a "-".
     * Checks: concurrency, parallel.
     * Hints: make hint CH=03 (4-7).
     * Read: the text, "Approche 2 : Multi-Threads avec pthreads" and "Thread
     * Détaché vs Joinable"; COURSE.md, "03-threads".
     */
    (void)peer;  /* these casts keep -Werror quiet about what you have not used yet */
    (void)attr;
    (void)client_thread;
    close(conn_fd);
}

/*
 * Stop: shut every connection down (each thread's recv() then returns 0 and
 * the thread leaves), and wait until the last one has gone.  Detached threads
 * cannot be joined; the count and the condition variable do that job.
 */
static void end_clients(void)
{
    /*
     * TODO(03.3): the stop path (main() has stopped accepting): every client
     * thread ends its session now, its client busy or idle, and this returns
     * once active is 0, well within the contract's 2 s.  Wake the threads,
     * but take nothing from them: each socket and struct is its thread's to
     * release (03.1).  Check: shutdown (until you write it: no "-" lines).
     * Hints: make hint CH=03 (8-10).
     * Read: the text, "Thread Détaché vs Joinable"; COURSE.md, "03-threads",
     * and CONTRACT.md, "Behaviour" (Stopping).
     */
}

/* What this chapter adds to the common command line (see usage()). */
#define CHAPTER_NAME     "03-threads: a thread per client"
#define CHAPTER_OPTS     ""
#define CHAPTER_SYNOPSIS ""
#define CHAPTER_HELP     ""
#define DEFAULT_WORKERS  0

int main(int argc, char **argv)
{
    pthread_attr_t attr;
    int listen_fd;

    parse_options(argc, argv);
    install_signal_handlers();
    spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (spare_fd < 0)
        die("open /dev/null");
    /*
     * Detached: a thread's resources go back to the system when it ends, with
     * nobody to join it.  256 KiB of stack instead of the usual 8 MiB: a
     * session needs a 16 KiB buffer and little else, and 500 clients then
     * reserve 125 MiB of address space instead of 4 GiB.
     */
    if (pthread_attr_init(&attr) != 0 || pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) != 0 ||
        pthread_attr_setstacksize(&attr, 256 * 1024) != 0)
        die("pthread_attr");
    listen_fd = open_listener(0, 0);
    print_ready(listen_fd);
    wake_fd = listen_fd;

    while (!stop_requested) {
        struct sockaddr_storage peer_addr;
        char peer[ADDR_STRLEN];
        int conn_fd = accept_client(listen_fd, &peer_addr, 0);

        if (conn_fd < 0) {
            if (errno != EINTR && errno != EMFILE && !stop_requested)
                perror("server: accept");
            continue;
        }
        format_addr(&peer_addr, peer, sizeof peer);
        start_client(conn_fd, peer, &attr);
    }

    wake_fd = -1;
    close(listen_fd);
    end_clients();
    pthread_attr_destroy(&attr);
    close(spare_fd);
    fprintf(stderr, "shutting down\n");
    /*
     * active == 0 means every thread has done its last useful step, not that
     * it has ended: the last ones may be between their unlock and their
     * return.  Ending the process then is harmless, though valgrind may count
     * such a thread's TLS block as "possibly lost" (never "definitely").  Only
     * pthread_join() knows a thread is gone (04 joins its workers).  Not
     * pthread_exit() here: a ThreadSanitizer build would never exit.
     */
    return 0;
}

/* ==== shared: boilerplate.c — the same in every chapter (make sync writes it from harness/common) ==== */
#define DEFAULT_PORT "8080"      /* the port the course text uses */
#define DEFAULT_ADDR "127.0.0.1" /* loopback: safe on a laptop; -b 0.0.0.0 exposes it */

static struct options opt = { DEFAULT_ADDR, DEFAULT_PORT, 0, 0, DEFAULT_WORKERS, 0 };

/*
 * Stop signals.  The handler only does async-signal-safe things: it sets a
 * flag and shuts down wake_fd.  The flag is a C11 atomic rather than the
 * classic volatile sig_atomic_t, which is only safe between a handler and
 * the thread it interrupts: in 03 and 04 other threads read the flag too.
 * Setting a flag alone is not enough: if the signal lands just after the
 * main loop tested the flag and just before it
 * blocks in accept() (or select(), poll(), recv()...), nothing would wake it.
 * On Linux, shutdown() of the descriptor that call waits on wakes it: accept()
 * fails (EINVAL), recv() returns 0, select() reports the socket readable, and
 * poll() and epoll_wait() report POLLHUP/EPOLLHUP but not POLLIN (measured on
 * Linux 6.18: a loop that looks at POLLIN alone would sleep on).  POSIX says
 * nothing of it: FreeBSD's shutdown() of a listening socket fails with
 * ENOTCONN yet wakes accept() (ECONNABORTED), select(), poll() and kqueue
 * (its test tests/sys/kern/listener_wakeup.c), and macOS is reported to wake
 * nothing.  Portable code writes to a self-pipe instead, or, on Linux, reads
 * the signal from a signalfd.  shutdown() is on POSIX's list of
 * async-signal-safe functions.
 */
static void on_stop_signal(int signo)
{
    int saved_errno = errno;  /* a handler must not change errno under the code it interrupts */

    (void)signo;
    stop_requested = 1;
    if (wake_fd >= 0)
        shutdown(wake_fd, SHUT_RDWR);
    errno = saved_errno;
}

/*
 * Set-up failures end the program: print what failed and exit 1.  "%m" is
 * errno's message, which glibc's printf writes through strerror_r() into a
 * buffer of its own: safe in any thread (03 and 04 log from theirs), where
 * strerror() is not — it may return a buffer shared by every thread
 * (strerror(3): MT-Unsafe race:strerror).
 */
static void die(const char *what)
{
    fprintf(stderr, "%sserver: %s: %m\n", log_tag, what);
    exit(1);
}

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: server [-p PORT] [-b ADDR] [-q] [-v]%s [-h]\n"
            "%s\n"
            "  -p PORT  port to listen on (default %s; 0: any free port)\n"
            "  -b ADDR  IPv4 or IPv6 address to bind (default %s)\n"
            "  -q       quiet: no per-connection log lines\n"
            "  -v       verbose: also log every message received\n"
            "%s"
            "  -h       show this help and exit\n",
            CHAPTER_SYNOPSIS, CHAPTER_NAME, DEFAULT_PORT, DEFAULT_ADDR, CHAPTER_HELP);
}

/* A bad command line: one line saying what is wrong, the usage, exit 2. */
__attribute__((format(printf, 1, 2), noreturn))
static void usage_error(const char *fmt, ...)
{
    va_list ap;

    fputs("server: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    usage(stderr);
    exit(2);
}

/* Parse a whole decimal number in [min, max]; -1 if s is anything else. */
static long parse_number(const char *s, long min, long max)
{
    char *end;
    long n;

    errno = 0;
    n = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || n < min || n > max)
        return -1;
    return n;
}

static void parse_options(int argc, char **argv)
{
    unsigned char probe[sizeof(struct in6_addr)];
    int c;

    opterr = 0;  /* we print our own messages */
    while ((c = getopt(argc, argv, ":p:b:qvh" CHAPTER_OPTS)) != -1) {
        switch (c) {
        case 'p':
            if (parse_number(optarg, 0, 65535) < 0)
                usage_error("invalid port '%s' (expected 0 to 65535)", optarg);
            opt.port = optarg;
            break;
        case 'b':
            if (inet_pton(AF_INET, optarg, probe) != 1 && inet_pton(AF_INET6, optarg, probe) != 1)
                usage_error("invalid address '%s' (expected an IPv4 or IPv6 literal)", optarg);
            opt.addr = optarg;
            break;
        case 'q': opt.quiet = 1; break;
        case 'v': opt.verbose = 1; break;
        case 'w':
            opt.workers = (int)parse_number(optarg, 1, 1024);
            if (opt.workers < 0)
                usage_error("invalid worker count '%s' (expected 1 to 1024)", optarg);
            break;
        case 'e': opt.edge = 1; break;
        case 'h': usage(stdout); exit(0);
        case ':': usage_error("option -%c needs a value", optopt); break;
        default: usage_error("unknown option -%c", optopt); break;
        }
    }
    if (optind < argc)
        usage_error("unexpected argument '%s'", argv[optind]);
}

/* Text form of a socket address: "127.0.0.1:41234" or "[::1]:41234". */
static void format_addr(const struct sockaddr_storage *ss, char *out, size_t outlen)
{
    char host[INET6_ADDRSTRLEN] = "?";

    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a6->sin6_addr, host, sizeof host);
        snprintf(out, outlen, "[%s]:%u", host, (unsigned)ntohs(a6->sin6_port));
    } else {
        const struct sockaddr_in *a4 = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a4->sin_addr, host, sizeof host);
        snprintf(out, outlen, "%s:%u", host, (unsigned)ntohs(a4->sin_port));
    }
}

/*
 * Open the listening socket on opt.addr:opt.port.  sock_flags goes to
 * socket() (SOCK_NONBLOCK in the event-loop chapters); how is 0, or
 * LISTEN_REUSEPORT and LISTEN_BIND_ONLY for 08 (its workers share the port,
 * its master holds it without listening).  The backlog is SOMAXCONN, not the
 * text's 10: with 10, a burst of clients overflows the kernel's queue and the
 * surplus stalls for a second or more in SYN retries.
 */
static int open_listener(int sock_flags, int how)
{
    struct addrinfo hints, *ai;
    char where[ADDR_STRLEN + 16];
    int fd, one = 1, rc;

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
    rc = getaddrinfo(opt.addr, opt.port, &hints, &ai);
    if (rc != 0) {
        fprintf(stderr, "server: getaddrinfo %s: %s\n", opt.addr, gai_strerror(rc));
        exit(1);
    }
    fd = socket(ai->ai_family, ai->ai_socktype | sock_flags | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket");
    /* Restart at once on the same port, even with old connections in TIME_WAIT. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        die("setsockopt SO_REUSEADDR");
    if ((how & LISTEN_REUSEPORT) && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
        die("setsockopt SO_REUSEPORT");
    snprintf(where, sizeof where, ai->ai_family == AF_INET6 ? "bind [%s]:%s" : "bind %s:%s",
             opt.addr, opt.port);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0)
        die(where);
    if (!(how & LISTEN_BIND_ONLY) && listen(fd, SOMAXCONN) < 0)
        die("listen");
    freeaddrinfo(ai);
    return fd;
}

/* The ready line the harness waits for, with the real port (-p 0). */
static void print_ready(int listen_fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char where[ADDR_STRLEN];

    if (getsockname(listen_fd, (struct sockaddr *)&ss, &len) < 0)
        die("getsockname");
    format_addr(&ss, where, sizeof where);
    printf("listening on %s\n", where);
    if (fflush(stdout) == EOF)
        die("stdout");
}

/*
 * Signals, installed before anything can go wrong.  SIGPIPE is ignored so
 * that writing to a client that has gone away fails with EPIPE, on that one
 * connection, instead of killing the whole server.  No SA_RESTART on the stop
 * signals: a blocked call returns EINTR and the loop gets to test the flag.
 */
static void install_signal_handlers(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = SIG_IGN;
    if (sigaction(SIGPIPE, &sa, NULL) < 0)
        die("sigaction SIGPIPE");
    sa.sa_handler = on_stop_signal;
    if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0)
        die("sigaction SIGINT/SIGTERM");
}

/* "+ 127.0.0.1:41234 (3 active)" on connect, "-" on disconnect; -q silences them. */
static void log_conn(char sign, const char *peer, long active)
{
    if (!opt.quiet)
        fprintf(stderr, "%s%c %s (%ld active)\n", log_tag, sign, peer, active);
}

/* A failure on one connection: log it (unless -q); the caller closes that connection only. */
static void log_conn_error(const char *what, const char *peer)
{
    if (!opt.quiet)
        fprintf(stderr, "%sserver: %s %s: %m\n", log_tag, what, peer);  /* %m: see die() */
}

/* -v: a line per message received, printable characters only (clients send binary data too). */
static void log_data(const char *peer, const char *buf, size_t len)
{
    char shown[41];
    size_t i;

    if (!opt.verbose)
        return;
    for (i = 0; i < len && i < sizeof shown - 1; i++)
        shown[i] = (buf[i] >= 0x20 && buf[i] < 0x7f) ? buf[i] : '.';
    shown[i] = '\0';
    fprintf(stderr, "%s  %s: %zu bytes \"%s%s\"\n", log_tag, peer, len, shown, len > i ? "..." : "");
}

/*
 * accept() that survives running out of descriptors.  When the process holds
 * its limit of descriptors, accept() fails with EMFILE (ENFILE: the whole
 * system) and leaves the client in the queue, so the listening socket stays
 * readable and a naive loop spins at 100% CPU.  A spare descriptor, opened at
 * start, is given back for a moment so that accept() can take the client into
 * its slot.  If the spare can be opened again, descriptors were freed in the
 * meantime and the client is served; if not, it is closed at once: it learns
 * it was turned away, and the queue moves.  Returns the new descriptor, or -1
 * with errno set (EMFILE when a client was turned away).
 */
static int accept_client(int listen_fd, struct sockaddr_storage *peer, int flags)
{
    socklen_t len = sizeof *peer;
    int fd, saved_errno;

    fd = accept4(listen_fd, (struct sockaddr *)peer, &len, flags | SOCK_CLOEXEC);
    if (fd >= 0 || (errno != EMFILE && errno != ENFILE) || spare_fd < 0)
        return fd;
    close(spare_fd);
    len = sizeof *peer;
    fd = accept4(listen_fd, (struct sockaddr *)peer, &len, flags | SOCK_CLOEXEC);
    saved_errno = errno;
    spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || spare_fd >= 0) {
        errno = saved_errno;  /* EAGAIN in a non-blocking loop: nobody was waiting */
        return fd;
    }
    close(fd);
    spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    fprintf(stderr, "%sserver: accept: out of descriptors, a client was turned away\n", log_tag);
    errno = EMFILE;
    return -1;
}
/* ==== end shared: boilerplate.c ==== */

/* ==== shared: echo-session — 01's lesson, copied from 01-iterative/server.c (make sync) ==== */

/*
 * Send all of buf, however many calls it takes.  send() may write only part
 * of the buffer (a short write) when the socket's send buffer is nearly full,
 * or be interrupted by a signal before writing anything (EINTR): both are
 * normal, and the text's examples ignore them.  MSG_NOSIGNAL: a vanished
 * peer gives EPIPE instead of SIGPIPE (belt and braces: SIGPIPE is ignored too).
 */
static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t nwritten = send(fd, buf, len, MSG_NOSIGNAL);
        if (nwritten < 0) {
            if (errno == EINTR && !stop_requested)
                continue;
            return -1;
        }
        buf += nwritten;
        len -= (size_t)nwritten;
    }
    return 0;
}

/*
 * Echo everything the client sends until it closes its side (recv() returns
 * 0), an error ends the connection, or the server is asked to stop.  Every
 * byte received has been written back before the next recv(), so a client
 * that half-closes (shutdown(SHUT_WR)) gets all its data back, then EOF when
 * the caller closes the socket.
 */
static void echo_session(int conn_fd, const char *peer)
{
    char buf[BUF_SIZE];

    while (!stop_requested) {
        ssize_t nread = recv(conn_fd, buf, sizeof buf, 0);
        if (nread == 0)
            break;  /* the client has closed its side */
        if (nread < 0) {
            if (errno == EINTR)
                continue;  /* a signal: the loop tests stop_requested again */
            log_conn_error("recv", peer);
            break;
        }
        log_data(peer, buf, (size_t)nread);
        if (write_all(conn_fd, buf, (size_t)nread) < 0) {
            if (!stop_requested)
                log_conn_error("send", peer);
            break;
        }
    }
}

/* ==== end shared: echo-session ==== */
