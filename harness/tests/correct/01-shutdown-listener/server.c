/*
 * chapter: 01
 * design: iterative; blocking accept()/recv(), no poll; stop handler shuts down the listener and the served socket; MSG_NOSIGNAL; one 1 KiB heap buffer; EMFILE backoff by nanosleep
 *
 * The server serves one client at a time: it blocks in accept(), then blocks
 * in recv() and send() on that client until it leaves, while later clients
 * wait in the listen backlog (SOMAXCONN) without being refused. There is no
 * poll() or select() to wake up from, so stopping works the other way round:
 * the SIGINT/SIGTERM handler (sigaction, no SA_RESTART) records the stop in a
 * volatile sig_atomic_t flag and then calls shutdown(SHUT_RDWR), which is
 * async-signal-safe, on the listening socket and on the client being served.
 * The main loop publishes that client's descriptor in a second
 * volatile sig_atomic_t right after accept() and withdraws it (-1) before
 * close(). A shut-down listener makes accept() fail at once, now or at its
 * next call, and a shut-down client makes recv() return 0 and send() fail,
 * so a signal landing between a test of the flag and a blocking call is
 * never lost. Echo goes through one 1 KiB buffer allocated once: each chunk
 * is sent completely (short writes completed, EINTR retried) before the next
 * recv(), so the pending output of a client never exceeds 1 KiB and a client
 * that does not read simply stops being read. SIGPIPE keeps its default
 * action; every send() carries MSG_NOSIGNAL instead. When accept() runs out
 * of descriptors (EMFILE, ENFILE) or kernel memory, the server says so once
 * and retries every 100 ms with nanosleep(), which neither spins nor refuses
 * the waiting client. Log lines are formatted in a local buffer and written
 * with one write(2) each.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum {
	BUF_SIZE = 1024,                      /* the one echo buffer */
	NAME_SIZE = INET6_ADDRSTRLEN + 16,    /* "[addr]:port" */
	LOG_SIZE = BUF_SIZE + 256,            /* one log line, -v included */
	BACKOFF_MS = 100,                     /* pause when out of descriptors */
};

/* Shared with the signal handler: only sig_atomic_t objects. */
static volatile sig_atomic_t g_stop = 0;
static volatile sig_atomic_t g_listen_fd = -1;
static volatile sig_atomic_t g_client_fd = -1;

static const char *g_prog = "server";

struct options {
	struct sockaddr_storage addr;   /* where to listen, port included */
	socklen_t addrlen;
	int quiet;
	int verbose;
};

/* ---- output ----------------------------------------------------------- */

static void pause_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	/* EINTR: return early, the caller looks at the stop flag. */
	(void)nanosleep(&ts, NULL);
}

/* Write all of buf to a descriptor (stdout or stderr); 0 or -1. */
static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n > 0) {
			buf += n;
			len -= (size_t)n;
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			pause_ms(1);    /* inherited O_NONBLOCK pipe: wait, do not spin */
		} else {
			return -1;
		}
	}
	return 0;
}

/* One line on stderr, written at once so lines never interleave. */
__attribute__((format(printf, 1, 2)))
static void log_line(const char *fmt, ...)
{
	char line[LOG_SIZE];
	va_list ap;
	int n;
	size_t len;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof line - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	len = (size_t)n < sizeof line - 1 ? (size_t)n : sizeof line - 2;
	line[len++] = '\n';
	/* A log line that cannot be written has nowhere else to go. */
	(void)write_all(STDERR_FILENO, line, len);
}

/* "1.2.3.4:80" or "[::1]:80"; "?" for anything else. */
static void format_addr(const struct sockaddr_storage *ss, char *out, size_t size)
{
	char host[INET6_ADDRSTRLEN];

	if (ss->ss_family == AF_INET) {
		struct sockaddr_in sin;

		memcpy(&sin, ss, sizeof sin);
		if (inet_ntop(AF_INET, &sin.sin_addr, host, sizeof host) != NULL) {
			snprintf(out, size, "%s:%u", host, (unsigned)ntohs(sin.sin_port));
			return;
		}
	} else if (ss->ss_family == AF_INET6) {
		struct sockaddr_in6 sin6;

		memcpy(&sin6, ss, sizeof sin6);
		if (inet_ntop(AF_INET6, &sin6.sin6_addr, host, sizeof host) != NULL) {
			snprintf(out, size, "[%s]:%u", host, (unsigned)ntohs(sin6.sin6_port));
			return;
		}
	}
	snprintf(out, size, "?");
}

/* ---- command line ----------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f, "usage: %s [-p PORT] [-b ADDR] [-q] [-v] [-h]\n", g_prog);
}

__attribute__((format(printf, 1, 2), noreturn))
static void bad_usage(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", g_prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	usage(stderr);
	exit(2);
}

static void parse_args(int argc, char **argv, struct options *opt)
{
	const char *addr = "127.0.0.1";
	uint16_t port = 8080;
	int c;

	if (argc > 0 && argv[0] != NULL && argv[0][0] != '\0') {
		const char *slash = strrchr(argv[0], '/');

		g_prog = slash != NULL ? slash + 1 : argv[0];
	}
	memset(opt, 0, sizeof *opt);
	opt->quiet = 0;
	opt->verbose = 0;

	opterr = 0;
	while ((c = getopt(argc, argv, ":p:b:qvh")) != -1) {
		switch (c) {
		case 'p': {
			char *end;
			long v;

			errno = 0;
			v = strtol(optarg, &end, 10);
			if (optarg[0] == '\0' || *end != '\0' || errno != 0 || v < 0 || v > 65535)
				bad_usage("invalid port '%s' (0 to 65535)", optarg);
			port = (uint16_t)v;
			break;
		}
		case 'b':
			addr = optarg;
			break;
		case 'q':
			opt->quiet = 1;
			break;
		case 'v':
			opt->verbose = 1;
			break;
		case 'h':
			usage(stdout);
			exit(fflush(stdout) == 0 ? 0 : 1);
		case ':':
			bad_usage("option -%c needs a value", optopt);
		default:
			bad_usage("unknown option -%c", optopt);
		}
	}
	if (optind < argc)
		bad_usage("unexpected argument '%s'", argv[optind]);

	if (strchr(addr, ':') == NULL) {
		struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };

		if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1)
			bad_usage("invalid address '%s' (an IPv4 or IPv6 literal)", addr);
		memcpy(&opt->addr, &sin, sizeof sin);
		opt->addrlen = sizeof sin;
	} else {
		struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_port = htons(port) };

		if (inet_pton(AF_INET6, addr, &sin6.sin6_addr) != 1)
			bad_usage("invalid address '%s' (an IPv4 or IPv6 literal)", addr);
		memcpy(&opt->addr, &sin6, sizeof sin6);
		opt->addrlen = sizeof sin6;
	}
}

/* ---- listening socket ------------------------------------------------- */

/* Bind and listen; on success the descriptor and the real address in where. */
static int open_listener(const struct options *opt, char *where, size_t size)
{
	struct sockaddr_storage ss;
	socklen_t len;
	const char *what;
	int one = 1;
	int fd, err;

	ss = opt->addr;
	len = opt->addrlen;
	format_addr(&ss, where, size);

	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_line("%s: socket: %s", g_prog, strerror(errno));
		return -1;
	}
	what = "setsockopt SO_REUSEADDR";
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
		goto fail;
	what = "bind";
	if (bind(fd, (struct sockaddr *)&ss, len) < 0)
		goto fail;
	what = "listen";
	if (listen(fd, SOMAXCONN) < 0)
		goto fail;
	what = "getsockname";
	len = sizeof ss;
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		goto fail;
	format_addr(&ss, where, size);
	return fd;

fail:
	err = errno;
	log_line("%s: %s %s: %s", g_prog, what, where, strerror(err));
	(void)close(fd);
	return -1;
}

/* ---- signals ---------------------------------------------------------- */

/*
 * Async-signal-safe only: sig_atomic_t stores and shutdown(2). Shutting the
 * sockets down wakes a blocked accept()/recv()/send() whatever the timing,
 * which a flag alone cannot do once the main loop has tested it.
 */
static void on_stop(int signo)
{
	int saved = errno;
	int fd;

	(void)signo;
	g_stop = 1;
	fd = g_listen_fd;
	if (fd >= 0)
		(void)shutdown(fd, SHUT_RDWR);
	fd = g_client_fd;
	if (fd >= 0)
		(void)shutdown(fd, SHUT_RDWR);
	errno = saved;
}

static int install_handlers(void)
{
	struct sigaction sa;
	sigset_t set;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_stop;
	sa.sa_flags = 0;                        /* no SA_RESTART */
	if (sigemptyset(&sa.sa_mask) < 0 || sigaddset(&sa.sa_mask, SIGINT) < 0 ||
	    sigaddset(&sa.sa_mask, SIGTERM) < 0)
		return -1;
	if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0)
		return -1;
	/* The stop signals may have been blocked by whoever started us. */
	if (sigemptyset(&set) < 0 || sigaddset(&set, SIGINT) < 0 || sigaddset(&set, SIGTERM) < 0)
		return -1;
	return sigprocmask(SIG_UNBLOCK, &set, NULL);
}

/* ---- serving ---------------------------------------------------------- */

/* Send all of buf to a client; 0, or -1 when the connection is over. */
static int send_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

		if (n >= 0) {
			buf += n;
			len -= (size_t)n;
		} else if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) {
			if (g_stop)
				return -1;
		} else {
			return -1;              /* EPIPE, ECONNRESET, ...: this client only */
		}
	}
	return 0;
}

/* -v: the printable bytes of one message. */
static void log_message(const char *name, const char *data, size_t len)
{
	char text[BUF_SIZE + 1];
	size_t i, k = 0;

	for (i = 0; i < len && k < BUF_SIZE; i++) {
		unsigned char c = (unsigned char)data[i];

		if (c >= 0x20 && c < 0x7f)
			text[k++] = (char)c;
	}
	text[k] = '\0';
	log_line("> %s (%zu bytes): %s", name, len, text);
}

/*
 * Echo until the client closes or half-closes (recv() returns 0), fails, or
 * the server stops. One chunk is sent completely before the next is read:
 * the pending output is never more than BUF_SIZE bytes.
 */
static void serve(int fd, const char *name, char *buf, int verbose)
{
	while (!g_stop) {
		ssize_t n = recv(fd, buf, BUF_SIZE, 0);

		if (n > 0) {
			if (verbose)
				log_message(name, buf, (size_t)n);
			if (send_all(fd, buf, (size_t)n) < 0)
				return;
		} else if (n == 0) {
			return;                 /* EOF, or our own shutdown on stop */
		} else if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
			return;                 /* ECONNRESET, ETIMEDOUT, ... */
		}
	}
}

/* Errors of accept() that concern one pending connection, not the server. */
static int accept_error_is_transient(int err)
{
	switch (err) {
	case EINTR: case EAGAIN: case ECONNABORTED: case EPROTO: case EPERM:
	case ENETDOWN: case ENOPROTOOPT: case EHOSTDOWN: case ENONET:
	case EHOSTUNREACH: case EOPNOTSUPP: case ENETUNREACH:
		return 1;
	default:
		return 0;
	}
}

/* Out of descriptors or kernel memory: the client waits in the backlog. */
static int accept_error_is_shortage(int err)
{
	return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

/* Serve clients one after the other until stopped; the exit status. */
static int run(int lfd, char *buf, const struct options *opt)
{
	int active = 0;
	int short_of_fds = 0;           /* inside an EMFILE/ENFILE episode */

	while (!g_stop) {
		struct sockaddr_storage peer;
		socklen_t plen = sizeof peer;
		char name[NAME_SIZE];
		int fd;

		fd = accept4(lfd, (struct sockaddr *)&peer, &plen, SOCK_CLOEXEC);
		if (fd < 0) {
			int err = errno;

			if (g_stop)
				break;          /* the listener was shut down (EINVAL) */
			if (accept_error_is_transient(err))
				continue;
			if (accept_error_is_shortage(err)) {
				if (!short_of_fds)
					log_line("%s: accept: %s (retrying every %d ms)",
						 g_prog, strerror(err), BACKOFF_MS);
				short_of_fds = 1;
				pause_ms(BACKOFF_MS);
				continue;
			}
			log_line("%s: accept: %s", g_prog, strerror(err));
			return 1;
		}
		short_of_fds = 0;
		g_client_fd = fd;       /* from here on the handler can wake us */

		format_addr(&peer, name, sizeof name);
		active++;
		if (!opt->quiet)
			log_line("+ %s (%d active)", name, active);
		serve(fd, name, buf, opt->verbose);     /* tests g_stop first */

		g_client_fd = -1;       /* withdrawn before the number can be reused */
		if (close(fd) < 0 && errno != EINTR)
			log_line("%s: close: %s", g_prog, strerror(errno));
		active--;
		if (!opt->quiet)
			log_line("- %s (%d active)", name, active);
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct options opt;
	char where[NAME_SIZE];
	char line[NAME_SIZE + 32];
	char *buf;
	int lfd, status;

	parse_args(argc, argv, &opt);

	buf = malloc(BUF_SIZE);
	if (buf == NULL) {
		log_line("%s: out of memory", g_prog);
		return 1;
	}
	lfd = open_listener(&opt, where, sizeof where);
	if (lfd < 0) {
		free(buf);
		return 1;
	}
	g_listen_fd = lfd;
	if (install_handlers() < 0) {
		log_line("%s: sigaction: %s", g_prog, strerror(errno));
		status = 1;
		goto out;
	}

	snprintf(line, sizeof line, "listening on %s\n", where);
	if (write_all(STDOUT_FILENO, line, strlen(line)) < 0) {
		log_line("%s: stdout: %s", g_prog, strerror(errno));
		status = 1;
		goto out;
	}

	status = run(lfd, buf, &opt);
out:
	g_listen_fd = -1;
	if (close(lfd) < 0 && errno != EINTR)
		log_line("%s: close: %s", g_prog, strerror(errno));
	log_line("shutting down");
	free(buf);
	return status;
}
