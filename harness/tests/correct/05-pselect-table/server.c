/*
 * chapter: 05
 * design: pselect() with SIGINT/SIGTERM unblocked only inside the wait; FD_SETSIZE records indexed by descriptor; fd_sets rebuilt each turn; 32 KiB output buffer per client; EMFILE pauses accept() 100 ms
 *
 * One thread, one loop. SIGINT and SIGTERM stay blocked for the whole life of
 * the process, except during pselect(), which installs a mask without them for
 * the length of the wait: a stop request can only land there, so the loop sees
 * it as EINTR and the handler has nothing to do but store the signal number in
 * a sig_atomic_t. Connections live in a static array of FD_SETSIZE records whose
 * index is the socket descriptor, so finding a client is a lookup, and an
 * accepted descriptor that would not fit in an fd_set is closed and reported
 * before it ever reaches FD_SET. Before each wait the two fd_sets are built
 * afresh from the table: a client is watched for reading while it has not shut
 * down its side and its output buffer has room, and for writing only while it
 * has output pending. Each client owns one 32 KiB buffer: bytes are received
 * straight into its free end and sent from its front, so pending output never
 * exceeds 32 KiB, and a client that does not read simply stops being read. When
 * accept() runs out of descriptors (or memory), the listener leaves the read set
 * for 100 ms and pselect() gets a timeout to that deadline, so the server
 * neither spins nor stops serving the clients it holds.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define OUT_CAP         (32 * 1024)     /* bytes of pending output per client */
#define ACCEPT_PAUSE_NS 100000000L      /* 100 ms without accept() on EMFILE */
#define ACCEPT_BURST    64              /* accepts per turn, to stay fair */
#define ENDPOINT_LEN    (INET6_ADDRSTRLEN + 8)

union address {
	struct sockaddr sa;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
	struct sockaddr_storage ss;
};

struct conn {
	bool used;
	bool eof;               /* the client shut down its side: read no more */
	size_t head, tail;      /* the pending output is buf[head, tail) */
	char *buf;              /* OUT_CAP bytes */
	char peer[ENDPOINT_LEN];
};

static struct conn table[FD_SETSIZE];
static int table_top;           /* one past the highest descriptor in use */
static unsigned active;
static bool quiet, verbose;
static volatile sig_atomic_t stop_signal;

static const char usage_text[] =
	"usage: server [-p PORT] [-b ADDR] [-q] [-v] [-h]\n"
	"  -p PORT  port to listen on (default 8080, 0: chosen by the kernel)\n"
	"  -b ADDR  IPv4 or IPv6 address to bind (default 127.0.0.1)\n"
	"  -q       no per-connection log lines\n"
	"  -v       log every message received\n"
	"  -h       this help\n";

__attribute__((format(printf, 1, 2), noreturn))
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

static bool parse_port(const char *s, unsigned *port)
{
	char *end;
	long v;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < 0 || v > 65535)
		return false;
	*port = (unsigned)v;
	return true;
}

static bool parse_address(const char *s, unsigned port, union address *a, socklen_t *len)
{
	memset(a, 0, sizeof *a);
	if (inet_pton(AF_INET, s, &a->in.sin_addr) == 1) {
		a->in.sin_family = AF_INET;
		a->in.sin_port = htons((uint16_t)port);
		*len = sizeof a->in;
		return true;
	}
	if (inet_pton(AF_INET6, s, &a->in6.sin6_addr) == 1) {
		a->in6.sin6_family = AF_INET6;
		a->in6.sin6_port = htons((uint16_t)port);
		*len = sizeof a->in6;
		return true;
	}
	return false;
}

/* "1.2.3.4:80" or "[::1]:80" */
static void format_endpoint(const union address *a, char *out, size_t len)
{
	char host[INET6_ADDRSTRLEN];

	if (a->sa.sa_family == AF_INET6) {
		if (inet_ntop(AF_INET6, &a->in6.sin6_addr, host, sizeof host) == NULL)
			strcpy(host, "?");
		snprintf(out, len, "[%s]:%u", host, (unsigned)ntohs(a->in6.sin6_port));
	} else if (a->sa.sa_family == AF_INET) {
		if (inet_ntop(AF_INET, &a->in.sin_addr, host, sizeof host) == NULL)
			strcpy(host, "?");
		snprintf(out, len, "%s:%u", host, (unsigned)ntohs(a->in.sin_port));
	} else {
		snprintf(out, len, "?");
	}
}

static void close_fd(int fd)
{
	/* On Linux the descriptor is gone even when close() says EINTR. */
	if (close(fd) != 0 && errno != EINTR)
		fprintf(stderr, "server: close %d: %s\n", fd, strerror(errno));
}

static void on_stop(int signo)
{
	stop_signal = signo;
}

/* Block the stop signals for good; *waitmask gets the mask pselect() waits with. */
static void setup_signals(sigset_t *waitmask)
{
	sigset_t stops;
	struct sigaction sa;

	sigemptyset(&stops);
	sigaddset(&stops, SIGINT);
	sigaddset(&stops, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &stops, waitmask) != 0) {
		perror("server: sigprocmask");
		exit(1);
	}
	sigdelset(waitmask, SIGINT);
	sigdelset(waitmask, SIGTERM);

	memset(&sa, 0, sizeof sa);
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_stop;
	if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0) {
		perror("server: sigaction");
		exit(1);
	}
	sa.sa_handler = SIG_IGN;
	if (sigaction(SIGPIPE, &sa, NULL) != 0) {
		perror("server: sigaction SIGPIPE");
		exit(1);
	}
}

static int open_listener(const union address *a, socklen_t len)
{
	char where[ENDPOINT_LEN];
	union address bound;
	socklen_t blen = sizeof bound;
	int one = 1;
	int fd;

	format_endpoint(a, where, sizeof where);
	fd = socket(a->sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fprintf(stderr, "server: socket: %s\n", strerror(errno));
		exit(1);
	}
	if (fd >= FD_SETSIZE) {
		fprintf(stderr, "server: listening descriptor %d is past FD_SETSIZE\n", fd);
		exit(1);
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) {
		fprintf(stderr, "server: setsockopt SO_REUSEADDR: %s\n", strerror(errno));
		exit(1);
	}
	if (bind(fd, &a->sa, len) != 0) {
		fprintf(stderr, "server: bind %s: %s\n", where, strerror(errno));
		exit(1);
	}
	if (listen(fd, SOMAXCONN) != 0) {
		fprintf(stderr, "server: listen %s: %s\n", where, strerror(errno));
		exit(1);
	}
	if (getsockname(fd, &bound.sa, &blen) != 0) {
		fprintf(stderr, "server: getsockname: %s\n", strerror(errno));
		exit(1);
	}
	format_endpoint(&bound, where, sizeof where);
	printf("listening on %s\n", where);
	if (fflush(stdout) != 0) {
		fprintf(stderr, "server: stdout: %s\n", strerror(errno));
		exit(1);
	}
	return fd;
}

static void conn_open(int fd, const union address *peer)
{
	char who[ENDPOINT_LEN];
	struct conn *c;
	char *buf;

	format_endpoint(peer, who, sizeof who);
	if (fd >= FD_SETSIZE) {
		fprintf(stderr, "refused %s: descriptor %d is past FD_SETSIZE (%d)\n",
			who, fd, FD_SETSIZE);
		close_fd(fd);
		return;
	}
	buf = malloc(OUT_CAP);
	if (buf == NULL) {
		fprintf(stderr, "refused %s: out of memory\n", who);
		close_fd(fd);
		return;
	}
	c = &table[fd];
	c->used = true;
	c->eof = false;
	c->head = c->tail = 0;
	c->buf = buf;
	memcpy(c->peer, who, sizeof c->peer);
	if (fd >= table_top)
		table_top = fd + 1;
	active++;
	if (!quiet)
		fprintf(stderr, "+ %s (%u active)\n", c->peer, active);
}

static void conn_close(int fd)
{
	struct conn *c = &table[fd];

	close_fd(fd);
	free(c->buf);
	c->buf = NULL;
	c->used = false;
	active--;
	if (!quiet)
		fprintf(stderr, "- %s (%u active)\n", c->peer, active);
	while (table_top > 0 && !table[table_top - 1].used)
		table_top--;
}

/* Send what is pending; close the client on error or once it is done. */
static void conn_write(int fd)
{
	struct conn *c = &table[fd];

	while (c->head < c->tail) {
		ssize_t n = send(fd, c->buf + c->head, c->tail - c->head, MSG_NOSIGNAL);

		if (n > 0) {
			c->head += (size_t)n;
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else if (n == 0 || errno == EAGAIN || errno == EWOULDBLOCK) {
			return;         /* the socket is full: wait until it is writable */
		} else {
			if (errno != EPIPE && errno != ECONNRESET)
				fprintf(stderr, "server: send %s: %s\n", c->peer, strerror(errno));
			conn_close(fd);
			return;
		}
	}
	c->head = c->tail = 0;
	if (c->eof)
		conn_close(fd);     /* half-closed and everything echoed */
}

static void log_message(const struct conn *c, const char *data, size_t len)
{
	static char shown[OUT_CAP];
	size_t k = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)data[i];

		if (ch >= 0x20 && ch < 0x7f)
			shown[k++] = (char)ch;
	}
	fprintf(stderr, "%s says: %.*s\n", c->peer, (int)k, shown);
}

/* Called only while the buffer has room (the read set says so). */
static void conn_read(int fd)
{
	struct conn *c = &table[fd];
	ssize_t n;

	if (c->head > 0) {
		memmove(c->buf, c->buf + c->head, c->tail - c->head);
		c->tail -= c->head;
		c->head = 0;
	}
	do
		n = recv(fd, c->buf + c->tail, OUT_CAP - c->tail, 0);
	while (n < 0 && errno == EINTR);

	if (n > 0) {
		if (verbose)
			log_message(c, c->buf + c->tail, (size_t)n);
		c->tail += (size_t)n;
		conn_write(fd);
	} else if (n == 0) {
		c->eof = true;
		if (c->head == c->tail)
			conn_close(fd);
	} else if (errno != EAGAIN && errno != EWOULDBLOCK) {
		if (errno != ECONNRESET)
			fprintf(stderr, "server: recv %s: %s\n", c->peer, strerror(errno));
		conn_close(fd);
	}
}

static struct timespec mono_now(void)
{
	struct timespec t;

	if (clock_gettime(CLOCK_MONOTONIC, &t) != 0) {
		fprintf(stderr, "server: clock_gettime: %s\n", strerror(errno));
		t.tv_sec = 0;
		t.tv_nsec = 0;
	}
	return t;
}

static bool ts_before(struct timespec a, struct timespec b)
{
	return a.tv_sec < b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec < b.tv_nsec);
}

struct accept_state {
	bool paused;            /* listener out of the read set until resume */
	bool warned;            /* the shortage has been reported */
	struct timespec resume;
};

static void pause_accept(struct accept_state *st, int err)
{
	if (!st->warned)
		fprintf(stderr, "server: accept: %s: not accepting for 100 ms\n", strerror(err));
	st->warned = true;
	st->paused = true;
	st->resume = mono_now();
	st->resume.tv_nsec += ACCEPT_PAUSE_NS;
	if (st->resume.tv_nsec >= 1000000000L) {
		st->resume.tv_sec++;
		st->resume.tv_nsec -= 1000000000L;
	}
}

static void accept_clients(int lfd, struct accept_state *st)
{
	for (int i = 0; i < ACCEPT_BURST; i++) {
		union address peer;
		socklen_t plen = sizeof peer;
		int fd = accept4(lfd, &peer.sa, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd >= 0) {
			st->warned = false;
			conn_open(fd, &peer);
			continue;
		}
		switch (errno) {
		case EAGAIN:
#if EWOULDBLOCK != EAGAIN
		case EWOULDBLOCK:
#endif
			return;
		case EINTR:
		case ECONNABORTED:
		case EPROTO:            /* network errors Linux reports on accept() */
		case ENETDOWN:
		case ENOPROTOOPT:
		case EHOSTDOWN:
		case ENONET:
		case EHOSTUNREACH:
		case EOPNOTSUPP:
		case ENETUNREACH:
			continue;
		case EMFILE:
		case ENFILE:
		case ENOBUFS:
		case ENOMEM:
			pause_accept(st, errno);
			return;
		default:
			fprintf(stderr, "server: accept: %s\n", strerror(errno));
			pause_accept(st, errno);
			return;
		}
	}
}

static int serve(int lfd, const sigset_t *waitmask)
{
	struct accept_state st = { .paused = false, .warned = false };

	while (!stop_signal) {
		fd_set rset, wset;
		struct timespec timeout, *tmo = NULL;
		int nfds = 0, n;

		FD_ZERO(&rset);
		FD_ZERO(&wset);
		if (st.paused) {
			struct timespec now = mono_now();

			if (ts_before(now, st.resume)) {
				timeout.tv_sec = st.resume.tv_sec - now.tv_sec;
				timeout.tv_nsec = st.resume.tv_nsec - now.tv_nsec;
				if (timeout.tv_nsec < 0) {
					timeout.tv_sec--;
					timeout.tv_nsec += 1000000000L;
				}
				tmo = &timeout;
			} else {
				st.paused = false;
			}
		}
		if (!st.paused) {
			FD_SET(lfd, &rset);
			nfds = lfd + 1;
		}
		for (int fd = 0; fd < table_top; fd++) {
			const struct conn *c = &table[fd];

			if (!c->used)
				continue;
			if (!c->eof && c->tail - c->head < OUT_CAP)
				FD_SET(fd, &rset);
			if (c->tail > c->head)
				FD_SET(fd, &wset);
			if (fd >= nfds)
				nfds = fd + 1;
		}

		n = pselect(nfds, &rset, &wset, NULL, tmo, waitmask);
		if (n < 0) {
			if (errno == EINTR)
				continue;       /* a stop signal, most likely */
			fprintf(stderr, "server: pselect: %s\n", strerror(errno));
			return 1;
		}
		if (n == 0)
			continue;               /* the accept pause is over */

		/* Clients first: no descriptor is reused before the accepts below. */
		for (int fd = 0; fd < table_top; fd++) {
			if (!table[fd].used)
				continue;
			if (FD_ISSET(fd, &wset))
				conn_write(fd);
			if (table[fd].used && FD_ISSET(fd, &rset))
				conn_read(fd);
		}
		if (!st.paused && FD_ISSET(lfd, &rset))
			accept_clients(lfd, &st);
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *host = "127.0.0.1";
	unsigned port = 8080;
	union address addr;
	socklen_t addrlen;
	sigset_t waitmask;
	int opt, lfd, status;

	opterr = 0;
	while ((opt = getopt(argc, argv, ":p:b:qvh")) != -1) {
		switch (opt) {
		case 'p':
			if (!parse_port(optarg, &port))
				bad_usage("invalid port '%s' (0 to 65535)", optarg);
			break;
		case 'b':
			host = optarg;
			break;
		case 'q':
			quiet = true;
			break;
		case 'v':
			verbose = true;
			break;
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
		bad_usage("unexpected argument '%s'", argv[optind]);
	if (!parse_address(host, port, &addr, &addrlen))
		bad_usage("invalid address '%s' (an IPv4 or IPv6 literal)", host);

	setup_signals(&waitmask);
	lfd = open_listener(&addr, addrlen);
	status = serve(lfd, &waitmask);

	close_fd(lfd);
	for (int fd = table_top - 1; fd >= 0; fd--)
		if (table[fd].used)
			conn_close(fd);
	fprintf(stderr, "shutting down\n");
	return status;
}
