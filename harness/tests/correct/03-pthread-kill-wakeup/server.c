/*
 * chapter: 03
 * design: joinable thread per client in a mutex-guarded list, finished threads parked on a "done" list joined by main after each accept() wake-up, stop delivered by pthread_kill(SIGUSR1) to a no-op handler without SA_RESTART
 *
 * The main thread sleeps in a blocking accept().  Each connection gets a heap record
 * (socket, peer name, 16 KiB buffer) on the "running" list and a joinable thread, which
 * echoes with blocking recv()/send() and sends a whole chunk before reading again: at
 * most 16 KiB is ever pending, and a client that does not read is no longer read.  When
 * its client leaves, the thread closes the socket, decrements the active count and moves
 * its record to the "done" list, under the one mutex that also guards the count and the
 * stop flag; then it sends SIGUSR1 to the main thread, whose accept() returns EINTR so
 * the record is joined at once (a poke lost to a race only delays that to the next
 * wake-up).  SIGINT/SIGTERM are blocked in client threads; the main thread's handler,
 * without SA_RESTART, sets a flag and shuts the listening socket down, so accept() fails
 * whether the signal came during the call or just before it.  To stop, main closes the
 * listening socket, raises the stop flag and sends SIGUSR1 to every running thread every
 * 20 ms (repeating covers a signal that lands just before a recv()); the no-op handler
 * makes the blocked recv() or send() return, and the thread sees the flag.  After one
 * second a late thread's socket is shut down too.  All threads are joined before
 * "shutting down".  SIGPIPE is ignored; on EMFILE a spare descriptor is given up to
 * accept and close the waiting connection, so the loop never spins.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF_SIZE      (16 * 1024)   /* one chunk: the bound on a client's pending output */
#define STACK_SIZE    (512 * 1024)
#define PEER_LEN      (INET6_ADDRSTRLEN + 16)
#define RETRY_MS      20            /* how often the stop signal is repeated */
#define FORCE_MS      1000          /* then sockets of late threads are shut down */

struct client {
	struct client *next, *prev;     /* running list (doubly linked), or done list */
	pthread_t tid;                  /* written and read by the main thread only */
	int fd;                         /* -1 once closed; changed under g_lock */
	char peer[PEER_LEN];
	char buf[BUF_SIZE];
};

/* Shared state: everything below is read and written under g_lock. */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_finished;       /* signalled when a thread moves to the done list */
static struct client *g_running;
static struct client *g_done;
static unsigned long g_active;
static bool g_stopping;

/* Set before the first thread starts, then only read. */
static bool g_quiet, g_verbose;
static pthread_t g_main;
static sigset_t g_stop_signals;

/* Touched by the SIGINT/SIGTERM handler, which only ever runs on the main thread. */
static volatile sig_atomic_t g_signalled;
static atomic_int g_listen_fd = -1;

static void usage(FILE *out)
{
	fprintf(out, "usage: server [-p PORT] [-b ADDR] [-q] [-v] [-h]\n"
		"  -p PORT  port (default 8080, 0: any)   -b ADDR  IPv4/IPv6 address (default 127.0.0.1)\n"
		"  -q       no per-connection lines       -v       log each message received\n");
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w > 0) {
			p += w;
			n -= (size_t)w;
		} else if (w < 0 && errno == EINTR) {
			continue;
		} else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd pfd = { .fd = fd, .events = POLLOUT };
			(void)poll(&pfd, 1, -1);
		} else {
			return;         /* stderr is gone: nothing better to do */
		}
	}
}

/* One whole line per write(2), so lines from different threads never mix. */
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
	write_all(STDERR_FILENO, line, (size_t)n);
}

/* strerror() for any thread: GNU strerror_r() into a buffer that lives in the caller's block. */
#define ERRSTR(err) strerror_r((err), (char[64]){ 0 }, 64)

/* A pthread call that cannot fail unless the program is wrong. */
static void must(int err, const char *what)
{
	if (err != 0) {
		logmsg("server: %s: %s", what, ERRSTR(err));
		abort();
	}
}

static void lock(void) { must(pthread_mutex_lock(&g_lock), "pthread_mutex_lock"); }
static void unlock(void) { must(pthread_mutex_unlock(&g_lock), "pthread_mutex_unlock"); }

static void on_wakeup(int sig)
{
	(void)sig;              /* only there to make blocking calls return EINTR */
}

static void on_stop(int sig)
{
	int saved = errno;
	int fd = atomic_load(&g_listen_fd);

	(void)sig;
	g_signalled = 1;
	if (fd >= 0)
		(void)shutdown(fd, SHUT_RDWR); /* async-signal-safe; fails any accept() to come */
	errno = saved;
}

static void format_addr(const struct sockaddr_storage *ss, char *out, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";

	if (ss->ss_family == AF_INET6) {
		struct sockaddr_in6 s6;
		memcpy(&s6, ss, sizeof s6);
		(void)inet_ntop(AF_INET6, &s6.sin6_addr, host, sizeof host);  /* cannot fail */
		snprintf(out, len, "[%s]:%u", host, (unsigned)ntohs(s6.sin6_port));
	} else {
		struct sockaddr_in s4;
		memcpy(&s4, ss, sizeof s4);
		(void)inet_ntop(AF_INET, &s4.sin_addr, host, sizeof host);
		snprintf(out, len, "%s:%u", host, (unsigned)ntohs(s4.sin_port));
	}
}

static void running_remove(struct client *c)
{
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		g_running = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	c->next = c->prev = NULL;
}

static bool stop_requested(void)
{
	lock();
	bool stop = g_stopping;
	unlock();
	return stop;
}

static void log_data(const struct client *c, size_t len)
{
	char line[PEER_LEN + BUF_SIZE + 8];
	int n = snprintf(line, PEER_LEN + 4, "%s > ", c->peer);
	size_t pos = n > 0 ? (size_t)n : 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)c->buf[i];
		if (ch >= 0x20 && ch < 0x7f)
			line[pos++] = (char)ch;
	}
	line[pos++] = '\n';
	write_all(STDERR_FILENO, line, pos);
}

/* Sends c->buf[0..len) completely; -1 when the client is gone or the server stops. */
static int send_all(struct client *c, size_t len)
{
	size_t off = 0;

	while (off < len) {
		if (stop_requested())
			return -1;
		ssize_t n = send(c->fd, c->buf + off, len - off, MSG_NOSIGNAL);
		if (n >= 0) {
			off += (size_t)n;
		} else if (errno == EAGAIN || errno == EWOULDBLOCK) {
			struct pollfd pfd = { .fd = c->fd, .events = POLLOUT };
			(void)poll(&pfd, 1, -1);        /* EINTR here too on a stop */
		} else if (errno != EINTR) {
			if (errno != EPIPE && errno != ECONNRESET)
				logmsg("server: send to %s: %s", c->peer, ERRSTR(errno));
			return -1;
		}
	}
	return 0;
}

static void *serve(void *arg)
{
	struct client *c = arg;
	unsigned long active;

	lock();
	active = ++g_active;
	unlock();
	if (!g_quiet)
		logmsg("+ %s (%lu active)", c->peer, active);

	while (!stop_requested()) {
		ssize_t got = recv(c->fd, c->buf, sizeof c->buf, 0);
		if (got > 0) {
			if (g_verbose)
				log_data(c, (size_t)got);
			if (send_all(c, (size_t)got) < 0)
				break;
		} else if (got == 0) {
			break;          /* end of input: all of it has been echoed already */
		} else if (errno == EAGAIN || errno == EWOULDBLOCK) {
			struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
			(void)poll(&pfd, 1, -1);
		} else if (errno != EINTR) {
			if (errno != ECONNRESET)
				logmsg("server: recv from %s: %s", c->peer, ERRSTR(errno));
			break;
		}
	}

	/* Closed under the lock, so the main thread never shuts down a reused descriptor. */
	lock();
	int close_err = close(c->fd) < 0 ? errno : 0;
	c->fd = -1;
	active = --g_active;
	running_remove(c);
	c->next = g_done;
	g_done = c;
	bool stopping = g_stopping;
	(void)pthread_cond_signal(&g_finished);
	unlock();

	if (close_err != 0 && close_err != EINTR)
		logmsg("server: close %s: %s", c->peer, ERRSTR(close_err));
	if (!g_quiet)
		logmsg("- %s (%lu active)", c->peer, active);
	if (!stopping)
		(void)pthread_kill(g_main, SIGUSR1);    /* wake accept(): join me now */
	return NULL;
}

/* Main thread: joins and frees every finished thread. */
static void reap_done(void)
{
	lock();
	struct client *c = g_done;
	g_done = NULL;
	unlock();

	while (c != NULL) {
		struct client *next = c->next;
		must(pthread_join(c->tid, NULL), "pthread_join");
		free(c);
		c = next;
	}
}

static void start_client(int fd, const struct sockaddr_storage *ss, const pthread_attr_t *attr)
{
	struct client *c = malloc(sizeof *c);

	if (c == NULL) {
		logmsg("server: out of memory, connection refused");
		(void)close(fd);
		return;
	}
	c->fd = fd;
	c->prev = NULL;
	format_addr(ss, c->peer, sizeof c->peer);

	lock();
	c->next = g_running;
	if (g_running != NULL)
		g_running->prev = c;
	g_running = c;
	unlock();

	/* The thread inherits this mask: SIGINT and SIGTERM must reach the main thread. */
	sigset_t old;
	int err = pthread_sigmask(SIG_BLOCK, &g_stop_signals, &old);
	if (err == 0) {
		err = pthread_create(&c->tid, attr, serve, c);
		(void)pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	if (err != 0) {
		lock();
		running_remove(c);
		unlock();
		logmsg("server: cannot start a thread (%s), %s refused", ERRSTR(err), c->peer);
		(void)close(fd);
		free(c);
	}
}

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
	(void)nanosleep(&ts, NULL);     /* a signal cuts it short: fine */
}

/* Out of descriptors: give up the spare one to take the waiting connection and close it. */
static void refuse_one(int lfd, int *spare)
{
	if (*spare >= 0) {
		(void)close(*spare);
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		int err = errno;
		if (fd >= 0)
			(void)close(fd);
		*spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			logmsg("server: out of descriptors, connection refused");
			return;
		}
		if (err == EINTR)
			return;
	}
	sleep_ms(100);          /* no spare to give up: retry later, never spin */
}

static long ms_since(const struct timespec *t0)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - t0->tv_sec) * 1000L + (now.tv_nsec - t0->tv_nsec) / 1000000L;
}

static void stop_clients(void)
{
	struct timespec t0;
	bool forced = false;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	lock();
	g_stopping = true;
	unlock();

	for (;;) {
		reap_done();
		lock();
		if (g_running == NULL) {
			unlock();
			break;
		}
		long ms = ms_since(&t0);
		for (struct client *c = g_running; c != NULL; c = c->next) {
			int err = pthread_kill(c->tid, SIGUSR1);
			if (err != 0 && err != ESRCH)
				logmsg("server: pthread_kill: %s", ERRSTR(err));
			if (ms >= FORCE_MS && !forced && c->fd >= 0)
				(void)shutdown(c->fd, SHUT_RDWR);
		}
		if (ms >= FORCE_MS)
			forced = true;
		struct timespec until;          /* now + RETRY_MS; RETRY_MS < 1000 */
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_nsec += RETRY_MS * 1000000L;
		until.tv_sec += until.tv_nsec / 1000000000L;
		until.tv_nsec %= 1000000000L;
		(void)pthread_cond_timedwait(&g_finished, &g_lock, &until);
		unlock();
	}
	reap_done();
}

static int install(int sig, void (*handler)(int))
{
	struct sigaction sa = { .sa_handler = handler };   /* no SA_RESTART: calls get EINTR */

	sigemptyset(&sa.sa_mask);
	if (sigaction(sig, &sa, NULL) < 0) {
		perror("server: sigaction");
		return -1;
	}
	return 0;
}

__attribute__((format(printf, 1, 2)))
static int bad_usage(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("server: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	usage(stderr);
	return 2;
}

int main(int argc, char **argv)
{
	const char *host = "127.0.0.1";
	long port = 8080;
	int opt;

	opterr = 0;
	while ((opt = getopt(argc, argv, ":p:b:qvh")) != -1) {
		switch (opt) {
		case 'p': {
			char *end;
			errno = 0;
			port = strtol(optarg, &end, 10);
			if (errno != 0 || end == optarg || *end != '\0' || port < 0 || port > 65535)
				return bad_usage("bad port: %s", optarg);
			break;
		}
		case 'b': host = optarg; break;
		case 'q': g_quiet = true; break;
		case 'v': g_verbose = true; break;
		case 'h': usage(stdout); return 0;
		case ':': return bad_usage("option -%c needs a value", optopt);
		default: return bad_usage("unknown option -%c", optopt);
		}
	}
	if (optind < argc)
		return bad_usage("unexpected argument: %s", argv[optind]);

	struct sockaddr_storage addr;
	socklen_t addrlen;
	memset(&addr, 0, sizeof addr);
	struct sockaddr_in s4 = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port) };
	if (inet_pton(AF_INET, host, &s4.sin_addr) == 1) {
		memcpy(&addr, &s4, sizeof s4);
		addrlen = sizeof s4;
	} else if (inet_pton(AF_INET6, host, &s6.sin6_addr) == 1) {
		memcpy(&addr, &s6, sizeof s6);
		addrlen = sizeof s6;
	} else {
		return bad_usage("bad address (not an IPv4 or IPv6 literal): %s", host);
	}

	char name[PEER_LEN];
	format_addr(&addr, name, sizeof name);
	const char *what = "socket";
	int one = 1;
	int lfd = socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		goto fail;
	if (setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
		perror("server: setsockopt SO_REUSEADDR");
	what = "bind";
	if (bind(lfd, (struct sockaddr *)&addr, addrlen) < 0)
		goto fail;
	what = "listen";
	if (listen(lfd, SOMAXCONN) < 0)
		goto fail;
	addrlen = sizeof addr;
	if (getsockname(lfd, (struct sockaddr *)&addr, &addrlen) < 0) {
		what = "getsockname";
		goto fail;
	}
	format_addr(&addr, name, sizeof name);

	g_main = pthread_self();
	atomic_store(&g_listen_fd, lfd);
	sigemptyset(&g_stop_signals);
	sigaddset(&g_stop_signals, SIGINT);
	sigaddset(&g_stop_signals, SIGTERM);
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR || install(SIGUSR1, on_wakeup) < 0 ||
	    install(SIGINT, on_stop) < 0 || install(SIGTERM, on_stop) < 0) {
		(void)close(lfd);
		return 1;
	}

	pthread_condattr_t ca;
	pthread_attr_t attr;
	must(pthread_condattr_init(&ca), "pthread_condattr_init");
	must(pthread_condattr_setclock(&ca, CLOCK_MONOTONIC), "pthread_condattr_setclock");
	must(pthread_cond_init(&g_finished, &ca), "pthread_cond_init");
	must(pthread_condattr_destroy(&ca), "pthread_condattr_destroy");
	must(pthread_attr_init(&attr), "pthread_attr_init");
	(void)pthread_attr_setstacksize(&attr, STACK_SIZE);   /* the default is fine too */

	int status = 0;
	int spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (printf("listening on %s\n", name) < 0 || fflush(stdout) == EOF) {
		perror("server: stdout");
		status = 1;
		g_signalled = 1;
	}

	while (!g_signalled) {
		if (spare < 0)
			spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
		struct sockaddr_storage peer;
		socklen_t plen = sizeof peer;
		int fd = accept4(lfd, (struct sockaddr *)&peer, &plen, SOCK_CLOEXEC);
		int err = errno;
		reap_done();            /* every wake-up of accept() joins the finished threads */
		if (fd >= 0) {
			start_client(fd, &peer, &attr);
			continue;
		}
		switch (err) {
		case EINTR: case ECONNABORTED: case EPROTO: case EPERM: case ENETDOWN:
		case ENOPROTOOPT: case EHOSTDOWN: case ENONET: case EHOSTUNREACH:
		case EOPNOTSUPP: case ENETUNREACH:
			break;
		case EMFILE: case ENFILE:
			refuse_one(lfd, &spare);
			break;
		case ENOBUFS: case ENOMEM:
			sleep_ms(100);
			break;
		default:
			if (!g_signalled) {      /* EINVAL after the stop handler's shutdown() */
				logmsg("server: accept: %s", ERRSTR(err));
				status = 1;
				g_signalled = 1;
			}
		}
	}

	atomic_store(&g_listen_fd, -1);
	if (close(lfd) < 0)
		perror("server: close");
	stop_clients();
	logmsg("shutting down");

	if (spare >= 0)
		(void)close(spare);
	(void)pthread_attr_destroy(&attr);
	(void)pthread_cond_destroy(&g_finished);
	return status;

fail:
	fprintf(stderr, "server: %s %s: %s\n", what, name, strerror(errno));
	if (lfd >= 0)
		(void)close(lfd);
	return 1;
}
