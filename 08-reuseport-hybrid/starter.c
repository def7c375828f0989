/*
 * 08-reuseport-hybrid/server.c — a master and N worker processes, each with
 * its own SO_REUSEPORT listening socket and the epoll loop of 07.
 *
 * The model: the architecture the text ends on.  One event loop uses one
 * core; N processes use N.  Each worker listens on the same port with
 * SO_REUSEPORT, and the kernel spreads new connections over their sockets (by
 * a hash of the addresses: not evenly).  nginx, the usual example of this
 * shape, shares one inherited socket by default instead, and keeps its
 * workers from all waking for each connection with EPOLLEXCLUSIVE or a lock
 * (COURSE.md, 08).  The master serves no
 * client: it starts the workers, restarts one that dies, forwards a stop
 * signal to them and waits for them all.  It binds the port first, without
 * listening, so that `-p 0` works (the workers bind the port it got) and the
 * port stays held while a worker is being replaced.
 *
 * Usage: server [-p PORT] [-b ADDR] [-q] [-v] [-w N] [-e] [-h]
 *
 * Try it: `./server -p 0 -w 4`, then `pkill -KILL -f 'server -p 0' -n`... or
 * better, kill one worker by its pid (see `ps --ppid MASTER`): the master logs
 * its death and starts another within milliseconds.  The harness's
 * `supervise` check does exactly that.
 * Compare with ../07-epoll/server.c (one process) and ../02-fork/server.c
 * (one process per client, instead of one per core).
 * Build: cc -pthread -o server server.c
 *
 * STARTER: the functions marked TODO are yours to write (start with 08.1).
 * Each TODO says what; make hint CH=08 says how, one hint at a time.
 * Lesson checks: supervise
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
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

/* ==== shared: conn-buffers.h — defined at the end of this file; the same in 05-08 (make sync) ==== */
#define OUT_CAP (64 * 1024)  /* pending output per connection: past it, stop reading from it */

struct conn {
    int fd;                    /* the client's socket, non-blocking */
    char peer[ADDR_STRLEN];    /* "127.0.0.1:41234", for the log */
    char *out;                 /* received, not yet echoed back; NULL while empty */
    size_t out_len;            /* bytes in out (at most OUT_CAP) */
    int read_closed;           /* the client half-closed: flush, then close */
    unsigned watching;         /* the events the loop now watches on fd */
    struct conn *prev, *next;  /* in the list of every connection */
};
static struct conn *all_conns;  /* every open connection, for the shutdown */
static long active;             /* how many there are */

static struct conn *conn_new(int fd, const char *peer);       /* logs "+"; NULL if out of memory */
static void conn_free(struct conn *c);                         /* close, log "-", free: the one end */
static int conn_read(struct conn *c);     /* read and echo: -1 dead; 1 stopped at a short read */
static int conn_handle(struct conn *c, int readable, int writable); /* 1: finished, free it */
static int conn_wants_read(const struct conn *c);              /* below the watermark, not closed */
static int conn_wants_write(const struct conn *c);             /* output pending */
/* ==== end shared: conn-buffers.h ==== */

/* ==== shared: epoll-loop.h — 07's event loop (make sync) ==== */
/* 07's lesson, which this chapter reuses: defined at the end of this file, copied from 07. */
static void event_loop_open(int listen_fd); /* an epoll instance, watching the listening socket */
static void event_loop_run(int listen_fd);  /* serve until a stop, then free every connection */
/* ==== end shared: epoll-loop.h ==== */

/* ---- the worker: 07's event loop on its own SO_REUSEPORT socket ---- */

/*
 * A worker's life: tell the kernel to send it SIGTERM if the master dies (a
 * worker must never outlive its master), open its own listening socket on
 * the master's port, say so on ready_fd, run 07's event loop until a stop
 * signal, close everything, exit.  SO_REUSEPORT lets every socket that sets
 * it (same user) bind the same port, and the kernel spreads incoming
 * connections over the ones that listen, by a hash of their addresses.
 */
static void worker_main(int index, const char *port, pid_t master, int ready_fd)
{
    /*
     * TODO(08.1): the whole life of worker number index (1 to N), in the child that
     * spawn() started. It never returns: it ends with _exit(0), lest stdio buffers
     * copied from the master be written twice. Its log lines carry its tag, "[w1] ",
     * "[w2] "... (log_tag; supervise counts the "+" lines per tag). It takes SIGTERM,
     * though started with signals blocked, and never outlives its master, even one
     * that died before the worker could ask. It runs 07's loop, with what 07's
     * main() gives it, on a listening socket of its own on the master's port (even
     * with -p 0), reports ready on ready_fd only once it listens, and closes what
     * it opened.
     * Until you write it, a worker exits as soon as it starts.
     * Hints: make hint CH=08 (1-4).
     * Read: the text, "Combinaison : Plusieurs processus + epoll()"; COURSE.md,
     * "08-reuseport-hybrid" (and "07-epoll" for the loop it runs).
     */
    (void)index;  /* these casts keep -Werror quiet about what you have not used yet */
    (void)port;
    (void)master;
    (void)ready_fd;
    (void)event_loop_open;
    (void)event_loop_run;
    _exit(0);
}

/* ---- the master: start, watch, restart, stop ---- */

struct worker {
    pid_t pid;             /* 0 while not running */
    struct timespec born;  /* when it started, to tell a crash at start from a death in service */
};

static struct worker *workers;
static volatile sig_atomic_t child_died;  /* set by the SIGCHLD handler; main reaps */

static void on_sigchld(int signo) { (void)signo; child_died = 1; }

static double seconds_since(const struct timespec *t)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t->tv_sec) + (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

/* Fork worker i; it reports on ready_fd once it listens. */
static void spawn(int i, const char *port, int ready_fd, int held_fd)
{
    /*
     * TODO(08.2): start the worker of slot i (0 to opt.workers - 1) in a child
     * process running worker_main() as worker i + 1 (with the port, the master's
     * pid and ready_fd), and record in workers[i] its pid and its birth time on the
     * monotonic clock (08.4 tells a crash at start from a death in service by it).
     * The child keeps nothing of the master's that it does not use: the table of
     * workers, held_fd. A child that cannot be started is not fatal: say so
     * ("server: ...", as every message) and leave the slot empty.
     * Until you write it, no worker starts and the master's socket listens in their
     * place: clients connect, then wait (a bug in a finished server, COURSE.md says
     * why; it goes with this stub).
     * Hints: make hint CH=08 (5-7).
     * Read: the text, "La fonction `fork()`" and
     * "Architecture Hybride : Le Meilleur des Deux Mondes"; COURSE.md,
     * "08-reuseport-hybrid" (and "02-fork").
     */
    (void)i;  /* these casts keep -Werror quiet about what you have not used yet */
    (void)port;
    (void)ready_fd;
    (void)worker_main;
    listen(held_fd, SOMAXCONN);
}

/* Wait (bounded) for n workers to say they listen: only then is the server ready. */
static void wait_ready(int ready_rd, int n)
{
    /*
     * TODO(08.3): return once n workers have said they listen, each with one byte
     * on the pipe whose reading end is ready_rd. main() prints the ready line right
     * after: printed earlier, it would send the harness's first clients to a port
     * where no worker listens yet. The wait is bounded, for a worker that cannot
     * start must not hang its master: after 5 s with nothing new, give up with one
     * line on stderr, "server: workers did not start within 5 s"; give up too if
     * the pipe fails or ends.
     * Until you write it, the ready line comes at once, whether or not a worker
     * listens.
     * Hints: make hint CH=08 (8-10).
     * Read: the text, "Architecture Hybride : Le Meilleur des Deux Mondes" (a
     * diagram: the start-up order is not in it); COURSE.md, "08-reuseport-hybrid".
     */
    (void)ready_rd;  /* these casts keep -Werror quiet about what you have not used yet */
    (void)n;
}

/*
 * Reap every worker that ended, say why, and start another in its place.
 * A worker that exits on its own within a second of starting failed to set
 * up (bind, say): restarting it would only loop, so the server stops.
 */
static void reap_and_restart(const char *port, int ready_wr, int held_fd)
{
    /*
     * TODO(08.4): main() calls this after a SIGCHLD: reap every worker that has
     * ended, not just one, never blocking; empty its slot; log why, on stderr, with
     * K = slot + 1:
     * "server: worker K (pid P) killed by signal S; restarting it", or
     * "server: worker K (pid P) exited with status S; restarting it";
     * and start another in the slot through spawn() (same port, ready_wr, held_fd).
     * During a stop (stop_requested) nothing is restarted. A worker that exited on
     * its own within a second of its birth failed to set up and would only loop:
     * log "server: worker K failed at start; stopping" and request the stop.
     * The zombies and supervise checks see it.
     * Until you write it, a dead worker is neither reaped nor replaced.
     * Hints: make hint CH=08 (11-14).
     * Read: the text, "Gestion des Processus Zombies"; COURSE.md,
     * "08-reuseport-hybrid" (and "02-fork" for reaping in a loop).
     */
    (void)port;  /* these casts keep -Werror quiet about what you have not used yet */
    (void)ready_wr;
    (void)held_fd;
    (void)seconds_since;
}

/* Stop: SIGTERM to every worker, wait for each (SIGKILL after a second on the clock). */
static void stop_workers(void)
{
    /*
     * TODO(08.5): the master's stop. Every running worker is asked to stop
     * (SIGTERM: its loop then ends its connections, logged, and it exits), and
     * every one is reaped before this returns, within the 2 s the contract allows.
     * One still there a second after the stop began, on the clock, is killed
     * outright (SIGKILL), once. The wait never spins and never waits for ever on a
     * worker that will not end: supervise stops one with SIGSTOP to see it.
     * Until you write it, the master leaves without a word to its workers (only
     * their death signal, 08.1, would stop them).
     * Hints: make hint CH=08 (15-17).
     * Read: the text, "Gestion des Processus Zombies"; COURSE.md,
     * "08-reuseport-hybrid" (and "02-fork", whose end_children() does the same).
     */
}

/* What this chapter adds to the common command line (see usage()). */
#define CHAPTER_NAME     "08-reuseport-hybrid: a master and N epoll worker processes"
#define CHAPTER_OPTS     "w:e"
#define CHAPTER_SYNOPSIS " [-w N] [-e]"
#define CHAPTER_HELP     "  -w N     worker processes (default: the number of CPUs)\n" \
                         "  -e       edge-triggered epoll (default: level-triggered)\n"
#define DEFAULT_WORKERS  0

int main(int argc, char **argv)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    struct sigaction sa;
    sigset_t blocked, orig;
    char port[16];
    int held_fd, ready[2];

    parse_options(argc, argv);
    if (opt.workers == 0)
        opt.workers = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (opt.workers < 1)
        opt.workers = 1;
    install_signal_handlers();
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_sigchld;
    sa.sa_flags = SA_NOCLDSTOP;
    if (sigaction(SIGCHLD, &sa, NULL) < 0)
        die("sigaction SIGCHLD");

    /* Bind first, without listening: learn the port (-p 0) and hold it for the workers. */
    held_fd = open_listener(SOCK_NONBLOCK, LISTEN_REUSEPORT | LISTEN_BIND_ONLY);
    if (getsockname(held_fd, (struct sockaddr *)&ss, &len) < 0)
        die("getsockname");
    snprintf(port, sizeof port, "%u",
             (unsigned)ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                      : ((struct sockaddr_in *)&ss)->sin_port));
    workers = calloc((size_t)opt.workers, sizeof *workers);
    if (workers == NULL || pipe2(ready, O_CLOEXEC) < 0)
        die("master set-up");

    /*
     * The master sleeps in sigsuspend(): the signals it waits for are blocked
     * everywhere else, so one cannot slip in between "test the flags" and
     * "go to sleep" — sigsuspend() unblocks them and sleeps in one step.
     */
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGCHLD);
    sigaddset(&blocked, SIGINT);
    sigaddset(&blocked, SIGTERM);
    sigprocmask(SIG_BLOCK, &blocked, &orig);
    for (int i = 0; i < opt.workers; i++)
        spawn(i, port, ready[1], held_fd);
    wait_ready(ready[0], opt.workers);
    print_ready(held_fd);

    while (!stop_requested) {
        while (!stop_requested && !child_died)
            sigsuspend(&orig);
        child_died = 0;
        reap_and_restart(port, ready[1], held_fd);
    }

    stop_workers();
    close(ready[0]);
    close(ready[1]);
    close(held_fd);
    free(workers);
    fprintf(stderr, "shutting down\n");
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

/* ==== shared: conn-buffers — 05's lesson, copied from 05-select/server.c (make sync) ==== */
/*
 * Output that the kernel has not taken yet stays in the connection's buffer,
 * up to OUT_CAP bytes.  At that watermark the loop stops reading from the
 * client (it is sending faster than it reads) until the output drains:
 * memory stays bounded whatever a client does, and a client that never reads
 * slows down only itself.
 */

static struct conn *conn_new(int fd, const char *peer)
{
    struct conn *c = calloc(1, sizeof *c);

    if (c == NULL) {
        log_conn_error("calloc", peer);
        close(fd);
        return NULL;
    }
    c->fd = fd;
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    c->next = all_conns;
    if (all_conns)
        all_conns->prev = c;
    all_conns = c;
    log_conn('+', c->peer, ++active);
    return c;
}

/* The one place a connection ends: its socket, its buffer and its struct go together. */
static void conn_free(struct conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        all_conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    close(c->fd);
    log_conn('-', c->peer, --active);
    free(c->out);
    free(c);
}

/* Send as much of buf as the kernel takes now: the number of bytes sent, -1 if the connection is dead. */
static ssize_t send_some(struct conn *c, const char *buf, size_t len)
{
    size_t sent = 0;

    while (sent < len) {
        ssize_t nsent = send(c->fd, buf + sent, len - sent, MSG_NOSIGNAL);
        if (nsent >= 0)
            sent += (size_t)nsent;
        else if (errno == EAGAIN || errno == EWOULDBLOCK)
            break;  /* the kernel's buffer is full: the loop will wait until it is writable */
        else if (errno != EINTR) {
            log_conn_error("send", c->peer);  /* EPIPE, ECONNRESET: this connection only */
            return -1;
        }
    }
    return (ssize_t)sent;
}

/* Send pending output, as much as the kernel takes. -1: the connection is dead. */
static int conn_flush(struct conn *c)
{
    ssize_t nsent;

    if (c->out_len == 0)
        return 0;
    nsent = send_some(c, c->out, c->out_len);
    if (nsent < 0)
        return -1;
    memmove(c->out, c->out + nsent, c->out_len - (size_t)nsent);
    c->out_len -= (size_t)nsent;
    if (c->out_len == 0) {
        free(c->out);  /* an idle connection holds no buffer: 10,000 of them stay cheap */
        c->out = NULL;
    }
    return 0;
}

/* Echo len bytes: straight back if nothing is pending, and keep what the kernel does not take. */
static int conn_echo(struct conn *c, const char *buf, size_t len)
{
    if (c->out_len == 0) {
        ssize_t nsent = send_some(c, buf, len);
        if (nsent < 0)
            return -1;
        buf += nsent;
        len -= (size_t)nsent;
        if (len == 0)
            return 0;
    }
    if (c->out == NULL && (c->out = malloc(OUT_CAP)) == NULL) {
        log_conn_error("malloc", c->peer);
        return -1;
    }
    memcpy(c->out + c->out_len, buf, len);  /* conn_read never reads more than the room left */
    c->out_len += len;
    return 0;
}

/*
 * Read what the client sent and echo it, until the socket is empty, the
 * client half-closes, or pending output reaches the watermark.  Returns -1
 * if the connection is dead, 1 if it stopped at a short read, 0 otherwise.
 *
 * A short read (fewer bytes than asked for) means the socket was empty when
 * recv() returned: TCP hands over everything it holds up to the size asked.
 * Stopping there saves the recv() that would only say EAGAIN, so a message
 * costs two system calls, recv() and send().  Data that arrives afterwards
 * is reported again, even by edge-triggered epoll: each arrival is an edge.
 * A FIN queued behind the data is not: the loops that wait for level
 * changes see it on their next wait, and 07's edge-triggered loop calls
 * conn_read() again after a short read when the event says the client has
 * closed its side (read_to_end()).
 */
static int conn_read(struct conn *c)
{
    static char buf[BUF_SIZE];  /* one thread: one buffer serves every connection */

    while (!c->read_closed && c->out_len < OUT_CAP) {
        size_t room = OUT_CAP - c->out_len, want = room < sizeof buf ? room : sizeof buf;
        ssize_t nread = recv(c->fd, buf, want, 0);
        if (nread > 0) {
            log_data(c->peer, buf, (size_t)nread);
            if (conn_echo(c, buf, (size_t)nread) < 0)
                return -1;
            if ((size_t)nread < want)
                return 1;  /* a short read: the socket is empty */
        } else if (nread == 0) {
            c->read_closed = 1;  /* echo what is pending, then close */
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return 0;
        } else if (errno != EINTR) {
            log_conn_error("recv", c->peer);  /* ECONNRESET: this connection only */
            return -1;
        }
    }
    return 0;
}

/* What the loop must watch: reading below the watermark and before the end of the stream... */
static int conn_wants_read(const struct conn *c)
{
    return !c->read_closed && c->out_len < OUT_CAP;
}

/* ...and writing while output is pending. */
static int conn_wants_write(const struct conn *c)
{
    return c->out_len > 0;
}

/*
 * One readiness report for a connection: readable and writable say what it
 * was reported ready for.  Returns 1 when it is finished (an error, or
 * half-closed with everything echoed): the caller frees it.
 * After output drains, reading resumes at once, without another round
 * through the wait for a fresh "readable" report (in 07 that report would
 * come even with -e: EPOLL_CTL_MOD checks readiness again, and every report
 * carries EPOLLIN while data waits).
 */
static int conn_handle(struct conn *c, int readable, int writable)
{
    if (writable && conn_flush(c) < 0)
        return 1;
    if ((readable || writable) && conn_wants_read(c) && conn_read(c) < 0)
        return 1;
    return c->read_closed && c->out_len == 0;
}
/* ==== end shared: conn-buffers ==== */

/* ==== shared: epoll-loop — 07's lesson, copied from 07-epoll/server.c (make sync) ==== */

#define MAX_EVENTS 256  /* readiness reports taken per epoll_wait() */

static int epoll_fd;
static char listener_mark;  /* data.ptr of the listening socket: no conn has this address */

/* Watch exactly what the connection needs now (EPOLLOUT only while output is pending). */
static int watch(struct conn *c, int op)
{
    struct epoll_event ev;

    ev.events = (conn_wants_read(c) ? EPOLLIN : 0) | (conn_wants_write(c) ? EPOLLOUT : 0) |
                (opt.edge ? EPOLLET | EPOLLRDHUP : 0);
    if (op == EPOLL_CTL_MOD && ev.events == c->watching)
        return 0;  /* no change, no system call */
    ev.data.ptr = c;
    if (epoll_ctl(epoll_fd, op, c->fd, &ev) < 0) {
        log_conn_error("epoll_ctl", c->peer);
        return -1;
    }
    c->watching = ev.events;
    return 0;
}

/*
 * Accept every client waiting.  Until EAGAIN: required in edge-triggered
 * mode (one report may stand for many clients), and fine in level-triggered
 * mode.  accept_client() gives non-blocking, close-on-exec sockets (accept4)
 * and survives EMFILE: it turns one client away and reports EMFILE, after
 * which we go on — when nobody is left waiting it reports EAGAIN and we stop.
 */
static void accept_clients(int listen_fd)
{
    for (;;) {
        struct sockaddr_storage peer_addr;
        char peer[ADDR_STRLEN];
        struct conn *c;
        int fd = accept_client(listen_fd, &peer_addr, SOCK_NONBLOCK);

        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || (errno == EMFILE && spare_fd >= 0))
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK && !stop_requested)
                perror("server: accept");
            return;
        }
        format_addr(&peer_addr, peer, sizeof peer);
        c = conn_new(fd, peer);
        if (c != NULL && watch(c, EPOLL_CTL_ADD) < 0)
            conn_free(c);
    }
}

/* The epoll instance, watching the listening socket (edge-triggered with -e). */
static void event_loop_open(int listen_fd)
{
    struct epoll_event ev;

    epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd < 0)
        die("epoll_create1");
    ev.events = EPOLLIN | (opt.edge ? EPOLLET : 0);
    ev.data.ptr = &listener_mark;
    if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, listen_fd, &ev) < 0)
        die("epoll_ctl");
}

/*
 * Edge-triggered epoll reports a change once.  Data and a FIN that arrive
 * together are one edge, and conn_read() stops at the short read that takes
 * the data, before it sees the end of the stream: no other edge would come,
 * and the client would wait for its echo's end for ever.  So when the event
 * says the client has closed its side (EPOLLRDHUP, which -e asks for), read
 * on until recv() says EAGAIN, the stream ends or the watermark is reached.
 * Returns -1 if the connection is dead.
 */
static int read_to_end(struct conn *c)
{
    int more;

    while ((more = conn_read(c)) == 1)
        continue;  /* a short read: the FIN may be next */
    return more;
}

/*
 * The loop: epoll_wait() sleeps until some sockets are ready and hands back
 * only those, each with its connection (data.ptr); each gets what it is
 * ready for.  Until a stop signal, whose shutdown() of the listening socket
 * (wake_fd) makes it report EPOLLHUP; then every connection is freed.
 */
static void event_loop_run(int listen_fd)
{
    static struct epoll_event events[MAX_EVENTS];

    while (!stop_requested) {
        int n = epoll_wait(epoll_fd, events, MAX_EVENTS, -1);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        /*
         * A connection appears at most once among the n reports, so freeing
         * it here cannot leave a dangling pointer in a later report.
         */
        for (int i = 0; i < n && !stop_requested; i++) {
            struct conn *c = events[i].data.ptr;
            uint32_t e = events[i].events;

            if (events[i].data.ptr == &listener_mark) {
                accept_clients(listen_fd);
                continue;
            }
            /* An error or a hang-up shows up as a failed recv() or send(). */
            if ((e & (EPOLLRDHUP | EPOLLHUP | EPOLLERR) && read_to_end(c) < 0) ||
                conn_handle(c, e & EPOLLIN, e & (EPOLLOUT | EPOLLHUP | EPOLLERR)) ||
                watch(c, EPOLL_CTL_MOD) < 0)
                conn_free(c);
        }
    }

    while (all_conns != NULL)
        conn_free(all_conns);  /* close() also takes the socket out of the epoll set */
    close(epoll_fd);
}

/* ==== end shared: epoll-loop ==== */
