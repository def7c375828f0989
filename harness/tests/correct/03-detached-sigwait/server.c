/*
 * chapter: 03
 * design: detached threads (256 KiB stacks), sigwait() signal thread, mutex-guarded client table swept by shutdown(), condvar drain, MSG_NOSIGNAL
 *
 * One detached thread per client; nobody ever joins them. SIGINT and SIGTERM are
 * blocked before the first thread exists, so every thread inherits the mask and
 * the signals can only be taken by a dedicated thread sitting in sigwait(): no
 * handler runs, so nothing has to be async-signal-safe. One mutex guards all the
 * shared state: the active count, the stop flag and a doubly linked table of the
 * live client sockets. The log lines are written while holding it, so the counts
 * they show are those of the single counter, in order. On a stop the signal
 * thread sets the flag and, in the same critical section, shuts down the
 * listening socket (which makes the main thread's accept() fail) and every
 * registered client socket. Reading is shut down so a thread blocked in recv()
 * sees EOF; writing is shut down too, because only that wakes a thread blocked in
 * send() to a client that stopped reading. Each client thread then logs its "-"
 * line, closes its socket inside the critical section that removes it from the
 * table (so the sweep can never touch a reused descriptor) and, if it was the
 * last, signals a condition variable. The main thread waits on it until the
 * count is zero, prints "shutting down" and returns 0. A thread echoes through a
 * 16 KiB heap buffer and sends a whole chunk before it reads again, so at most
 * 16 KiB is ever pending per client. SIGPIPE keeps its default action: every
 * send() carries MSG_NOSIGNAL. When accept() runs out of descriptors (or
 * memory) the main thread sleeps 50 ms and tries again instead of spinning.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum {
	BUF_SIZE = 16 * 1024,            /* echo buffer: the bound on pending output */
	STACK_SIZE = 256 * 1024,         /* per-thread stack */
	RETRY_MS = 50,                   /* pause after EMFILE and the like */
	NAME_LEN = INET6_ADDRSTRLEN + 8, /* "[addr]:port" */
};

struct client {
	struct client *prev, *next; /* links in the table, guarded by lock */
	int fd;                     /* written once before the thread starts */
	char name[NAME_LEN];        /* idem */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t all_gone = PTHREAD_COND_INITIALIZER;
static struct client *clients;  /* guarded by lock */
static unsigned long active;    /* guarded by lock */
static bool stopping;           /* guarded by lock */

/* Set in main() before any thread is created, read-only afterwards. */
static int listen_fd = -1;
static bool quiet, verbose;
static sigset_t stop_signals;

static const char usage_text[] =
	"usage: server [-p PORT] [-b ADDR] [-q] [-v] [-h]\n"
	"  -p PORT  port to listen on (default 8080, 0: chosen by the kernel)\n"
	"  -b ADDR  IPv4 or IPv6 address to bind (default 127.0.0.1)\n"
	"  -q       quiet: no per-connection log lines\n"
	"  -v       verbose: also log every message received\n"
	"  -h       print this help and exit\n";

static void warn_err(const char *what, int err)
{
	char buf[128];
	fprintf(stderr, "server: %s: %s\n", what, strerror_r(err, buf, sizeof buf));
}

static void die_err(const char *what, int err)
{
	warn_err(what, err);
	exit(1);
}

/* Linux always releases the descriptor, even on EINTR: never retry. */
static void close_fd(int fd, const char *what)
{
	if (close(fd) < 0 && errno != EINTR)
		warn_err(what, errno);
}

/* A failing lock means a corrupted program: no way to go on safely. */
static void lock_all(void)
{
	int rc = pthread_mutex_lock(&lock);
	if (rc != 0) {
		warn_err("pthread_mutex_lock", rc);
		abort();
	}
}

static void unlock_all(void)
{
	int rc = pthread_mutex_unlock(&lock);
	if (rc != 0) {
		warn_err("pthread_mutex_unlock", rc);
		abort();
	}
}

static bool stop_requested(void)
{
	lock_all();
	bool s = stopping;
	unlock_all();
	return s;
}

static void pause_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* "1.2.3.4:80" or "[::1]:80"; always NUL-terminated. */
static void format_addr(const struct sockaddr_storage *ss, char *out, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
		if (inet_ntop(AF_INET, &sin->sin_addr, host, sizeof host) == NULL)
			strcpy(host, "?");
		port = ntohs(sin->sin_port);
		snprintf(out, len, "%s:%u", host, port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
		if (inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof host) == NULL)
			strcpy(host, "?");
		port = ntohs(sin6->sin6_port);
		snprintf(out, len, "[%s]:%u", host, port);
	} else {
		snprintf(out, len, "?");
	}
}

/* Wait until fd is ready; only reached if a socket ever says EAGAIN. */
static void wait_fd(int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events };
	while (poll(&p, 1, -1) < 0 && errno == EINTR)
		;
}

/* Send all of buf; 0 on success, -1 when the connection is gone. */
static int send_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				wait_fd(fd, POLLOUT);
				continue;
			}
			return -1; /* EPIPE, ECONNRESET, or our own shutdown on stop */
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* -v: keep the printable bytes (in place: the chunk was already echoed). */
static void log_message(const struct client *c, char *buf, size_t len)
{
	size_t k = 0;
	for (size_t i = 0; i < len; i++)
		if (buf[i] >= 0x20 && buf[i] < 0x7f)
			buf[k++] = buf[i];
	lock_all();
	fprintf(stderr, "> %s: %.*s\n", c->name, (int)k, buf);
	unlock_all();
}

/* Echo until EOF, an error, or the stop sweep. One chunk in flight at most. */
static void echo(const struct client *c, char *buf)
{
	for (;;) {
		ssize_t n = recv(c->fd, buf, BUF_SIZE, 0);
		if (n == 0)
			return; /* EOF: the client half-closed, or the stop sweep */
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				wait_fd(c->fd, POLLIN);
				continue;
			}
			return; /* ECONNRESET and friends end this connection only */
		}
		if (send_all(c->fd, buf, (size_t)n) < 0)
			return;
		if (verbose && !quiet)
			log_message(c, buf, (size_t)n);
	}
}

/*
 * Remove c from the table, close its socket, count it out and log it, all in
 * one critical section; wake the main thread if this was the last one. c is
 * freed here too, so nothing of it outlives the moment main may see zero.
 */
static void finish_client(struct client *c)
{
	lock_all();
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		clients = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	close_fd(c->fd, "close");
	active--;
	if (!quiet)
		fprintf(stderr, "- %s (%lu active)\n", c->name, active);
	if (active == 0) {
		int rc = pthread_cond_broadcast(&all_gone);
		if (rc != 0)
			warn_err("pthread_cond_broadcast", rc);
	}
	free(c);
	unlock_all();
}

static void *client_main(void *arg)
{
	struct client *c = arg;
	char *buf = malloc(BUF_SIZE);

	if (buf != NULL) {
		echo(c, buf);
		free(buf);
	}
	finish_client(c);
	return NULL;
}

/*
 * The only place SIGINT and SIGTERM are ever delivered. The stop is one
 * critical section: once main sees the flag, every socket has been shut down.
 */
static void *signal_main(void *arg)
{
	(void)arg;
	int sig, rc;

	while ((rc = sigwait(&stop_signals, &sig)) != 0) {
		if (rc != EINTR) {
			warn_err("sigwait", rc);
			break; /* cannot wait: stop rather than hang */
		}
	}

	lock_all();
	stopping = true;
	if (shutdown(listen_fd, SHUT_RDWR) < 0 && errno != ENOTCONN)
		warn_err("shutdown (listener)", errno);
	for (struct client *c = clients; c != NULL; c = c->next)
		if (shutdown(c->fd, SHUT_RDWR) < 0 && errno != ENOTCONN)
			warn_err("shutdown (client)", errno);
	unlock_all();
	return NULL;
}

/* Register, log and start a thread for fd. Returns false once stopping. */
static bool start_client(int fd, const struct sockaddr_storage *ss,
			 const pthread_attr_t *attr)
{
	struct client *c = malloc(sizeof *c);
	if (c == NULL) {
		close_fd(fd, "close"); /* refused, not served: no log line */
		pause_ms(RETRY_MS);
		return true;
	}
	c->fd = fd;
	c->prev = NULL;
	format_addr(ss, c->name, sizeof c->name);

	lock_all();
	if (stopping) { /* accepted just as the sweep ran: do not serve it */
		unlock_all();
		close_fd(fd, "close");
		free(c);
		return false;
	}
	c->next = clients;
	if (clients != NULL)
		clients->prev = c;
	clients = c;
	active++;
	if (!quiet)
		fprintf(stderr, "+ %s (%lu active)\n", c->name, active);
	unlock_all();

	pthread_t tid;
	int rc = pthread_create(&tid, attr, client_main, c);
	if (rc != 0) {
		warn_err("pthread_create", rc);
		finish_client(c); /* logs its "-" like any other */
		pause_ms(RETRY_MS);
	}
	return true; /* c now belongs to its thread: do not touch it */
}

/* Returns 0 on a requested stop, 1 on a fatal accept() error. */
static int accept_loop(const pthread_attr_t *attr)
{
	for (;;) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof ss;
		int fd = accept4(listen_fd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC);

		if (fd < 0) {
			int err = errno;
			if (stop_requested())
				return 0; /* the sweep shut the listener down */
			switch (err) {
			case EMFILE: case ENFILE: case ENOBUFS: case ENOMEM:
				pause_ms(RETRY_MS); /* wait for descriptors, do not spin */
				continue;
			case EINTR: case EAGAIN: case ECONNABORTED: case EPROTO:
			case ENETDOWN: case ENOPROTOOPT: case EHOSTDOWN: case ENONET:
			case EHOSTUNREACH: case EOPNOTSUPP: case ENETUNREACH: case EPERM:
				continue; /* that connection only */
			default:
				warn_err("accept", err);
				return 1;
			}
		}
		if (!start_client(fd, &ss, attr))
			return 0;
	}
}

__attribute__((format(printf, 1, 2), noreturn))
static void bad_usage(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("server: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n", stderr);
	fputs(usage_text, stderr);
	exit(2);
}

static void parse_args(int argc, char **argv, struct sockaddr_storage *addr)
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
				bad_usage("bad port '%s' (0 to 65535)", optarg);
			break;
		}
		case 'b': host = optarg; break;
		case 'q': quiet = true; break;
		case 'v': verbose = true; break;
		case 'h': fputs(usage_text, stdout); exit(0);
		case ':': bad_usage("option -%c needs a value", optopt);
		default: bad_usage("unknown option -%c", optopt);
		}
	}
	if (optind < argc)
		bad_usage("unexpected argument '%s'", argv[optind]);

	memset(addr, 0, sizeof *addr);
	struct sockaddr_in *sin = (struct sockaddr_in *)addr;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)addr;
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
	} else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
	} else {
		bad_usage("bad address '%s' (an IPv4 or IPv6 literal)", host);
	}
}

static void open_listener(const struct sockaddr_storage *addr)
{
	socklen_t len = addr->ss_family == AF_INET ? sizeof(struct sockaddr_in)
						   : sizeof(struct sockaddr_in6);
	char name[NAME_LEN];
	int one = 1;

	listen_fd = socket(addr->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (listen_fd < 0)
		die_err("socket", errno);
	if (setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
		die_err("setsockopt SO_REUSEADDR", errno);
	if (bind(listen_fd, (const struct sockaddr *)addr, len) < 0) {
		char what[NAME_LEN + 8];
		format_addr(addr, name, sizeof name);
		snprintf(what, sizeof what, "bind %s", name);
		die_err(what, errno);
	}
	if (listen(listen_fd, SOMAXCONN) < 0)
		die_err("listen", errno);
}

int main(int argc, char **argv)
{
	struct sockaddr_storage addr;
	pthread_attr_t attr;
	pthread_t sig_tid;
	int rc;

	parse_args(argc, argv, &addr);

	/* Before any thread: every thread inherits the mask. */
	sigemptyset(&stop_signals);
	sigaddset(&stop_signals, SIGINT);
	sigaddset(&stop_signals, SIGTERM);
	if ((rc = pthread_sigmask(SIG_BLOCK, &stop_signals, NULL)) != 0)
		die_err("pthread_sigmask", rc);

	open_listener(&addr);

	if ((rc = pthread_attr_init(&attr)) != 0)
		die_err("pthread_attr_init", rc);
	if ((rc = pthread_attr_setstacksize(&attr, STACK_SIZE)) != 0)
		die_err("pthread_attr_setstacksize", rc);
	/* The signal thread is joinable; the client threads are detached. */
	if ((rc = pthread_create(&sig_tid, &attr, signal_main, NULL)) != 0)
		die_err("pthread_create", rc);
	if ((rc = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED)) != 0)
		die_err("pthread_attr_setdetachstate", rc);

	struct sockaddr_storage bound;
	socklen_t blen = sizeof bound;
	char name[NAME_LEN];
	if (getsockname(listen_fd, (struct sockaddr *)&bound, &blen) < 0)
		die_err("getsockname", errno);
	format_addr(&bound, name, sizeof name);
	if (printf("listening on %s\n", name) < 0 || fflush(stdout) == EOF)
		die_err("stdout", errno);

	int status = accept_loop(&attr);
	if (status != 0) /* fatal: stop the same way a signal would */
		if ((rc = pthread_kill(sig_tid, SIGTERM)) != 0)
			warn_err("pthread_kill", rc);
	if ((rc = pthread_join(sig_tid, NULL)) != 0)
		warn_err("pthread_join", rc);

	/* Every socket is shut down: wait for the last thread to log its "-". */
	lock_all();
	while (active > 0)
		if ((rc = pthread_cond_wait(&all_gone, &lock)) != 0) {
			warn_err("pthread_cond_wait", rc);
			abort();
		}
	unlock_all();

	close_fd(listen_fd, "close (listener)");
	if ((rc = pthread_attr_destroy(&attr)) != 0)
		warn_err("pthread_attr_destroy", rc);
	fputs("shutting down\n", stderr);
	return status;
}
