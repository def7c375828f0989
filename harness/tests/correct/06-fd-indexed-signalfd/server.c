/*
 * chapter: 06
 * design: poll() over a pollfd array indexed by descriptor number and grown by doubling, signalfd for SIGINT/SIGTERM, 64 KiB-capped growable output buffers, POLLOUT only while output is pending, MSG_NOSIGNAL, spare descriptor for EMFILE
 *
 * One thread runs one poll() loop. The pollfd array is a table indexed by
 * descriptor number: entry i watches descriptor i, or holds fd = -1 when i is
 * unused, so finding a connection's entry costs nothing and there is no free
 * slot to search for. A parallel table of struct conn holds each connection's
 * state. Both tables double (realloc) when the kernel hands out a descriptor
 * beyond them, and nfds is kept at the highest descriptor in use + 1, so there
 * is no fixed cap beyond the process's descriptor limit. SIGINT and SIGTERM
 * are blocked and read from a signalfd that sits in the table like any other
 * descriptor: no signal handler at all, and the stop is just one more event.
 * Received bytes are sent back at once; what the peer cannot take yet goes to
 * a per-connection buffer that grows from 4 KiB up to the contract's 64 KiB
 * bound and is freed once drained. A connection asks for POLLIN only while its
 * buffer has room and its peer has not half-closed, and for POLLOUT only while
 * output is pending, so a peer that never reads costs 64 KiB and no CPU. Every
 * send uses MSG_NOSIGNAL; SIGPIPE keeps its default disposition. A descriptor
 * on /dev/null is kept in reserve: when accept() fails with EMFILE or ENFILE
 * it is closed so that the waiting connection can be accepted and closed at
 * once (otherwise it would stay in the backlog and wake poll() for ever), then
 * reopened. If even that is impossible, the listening socket is left out of
 * poll() until a connection closes or 100 ms have passed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define OUT_MAX      (64 * 1024) /* bound on a connection's pending output */
#define OUT_MIN      4096        /* first size of an output buffer */
#define TABLE_MIN    64          /* first size of the descriptor tables */
#define ACCEPT_BURST 64          /* connections accepted per wake-up, at most */
#define PAUSE_MS     100         /* accept pause when no descriptor is left */
#define SHOW_MAX     64          /* characters of a message shown by -v */

struct conn {
	char *out;                 /* pending output: out[off .. off + len) */
	size_t cap, off, len;
	bool eof;                  /* the peer has shut down its writing side */
	char name[64];             /* "addr:port" or "[addr]:port" */
};

static struct pollfd *pfd;        /* pfd[i] watches descriptor i, fd -1: unused */
static struct conn *conn;         /* conn[i]: state of the client on descriptor i */
static size_t table_cap;          /* entries in pfd and in conn */
static nfds_t nfds;               /* highest descriptor in use + 1 */
static int lfd = -1, sfd = -1, spare = -1;
static int active;
static bool quiet, verbose, stopping, paused;
static long long resume_ms;       /* end of an accept pause */
static char iobuf[OUT_MAX];

static void usage(FILE *f)
{
	fprintf(f, "usage: server [-p PORT] [-b ADDR] [-q] [-v] [-h]\n");
}

static _Noreturn void bad_usage(const char *what, const char *arg)
{
	fprintf(stderr, "server: %s%s\n", what, arg);
	usage(stderr);
	exit(2);
}

/* "1.2.3.4:80" or "[::1]:80"; memcpy keeps clear of aliasing trouble. */
static void addr_name(const struct sockaddr_storage *ss, char *buf, size_t n)
{
	char ip[INET6_ADDRSTRLEN] = "?";

	if (ss->ss_family == AF_INET6) {
		struct sockaddr_in6 a;
		memcpy(&a, ss, sizeof a);
		if (!inet_ntop(AF_INET6, &a.sin6_addr, ip, sizeof ip))
			strcpy(ip, "?");
		snprintf(buf, n, "[%s]:%u", ip, (unsigned)ntohs(a.sin6_port));
	} else {
		struct sockaddr_in a;
		memcpy(&a, ss, sizeof a);
		if (!inet_ntop(AF_INET, &a.sin_addr, ip, sizeof ip))
			strcpy(ip, "?");
		snprintf(buf, n, "%s:%u", ip, (unsigned)ntohs(a.sin_port));
	}
}

/* Make both tables hold an entry for descriptor fd. */
static int table_fit(int fd)
{
	size_t need = (size_t)fd + 1, ncap = table_cap ? table_cap : TABLE_MIN;

	if (need <= table_cap)
		return 0;
	while (ncap < need)
		ncap *= 2;
	struct pollfd *np = realloc(pfd, ncap * sizeof *np);
	if (!np)
		return -1;
	pfd = np;
	struct conn *nc = realloc(conn, ncap * sizeof *nc);
	if (!nc)
		return -1; /* pfd is merely larger than table_cap says */
	conn = nc;
	for (size_t i = table_cap; i < ncap; i++) {
		pfd[i] = (struct pollfd){ .fd = -1 };
		memset(&conn[i], 0, sizeof conn[i]);
	}
	table_cap = ncap;
	return 0;
}

static void slot_set(int fd, short events)
{
	pfd[fd] = (struct pollfd){ .fd = fd, .events = events };
	if ((nfds_t)fd >= nfds)
		nfds = (nfds_t)fd + 1;
}

static void slot_clear(int fd)
{
	pfd[fd] = (struct pollfd){ .fd = -1 };
	while (nfds > 0 && pfd[nfds - 1].fd < 0)
		nfds--;
}

static void xclose(int fd)
{
	if (close(fd) < 0 && errno != EINTR) /* Linux: closed even then */
		perror("server: close");
}

static void spare_reopen(void)
{
	if (spare < 0)
		spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static long long now_ms(void)
{
	struct timespec t;

	if (clock_gettime(CLOCK_MONOTONIC, &t) < 0)
		return 0; /* cannot fail for CLOCK_MONOTONIC on Linux */
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void pause_accept(void)
{
	paused = true;
	pfd[lfd].events = 0;
	resume_ms = now_ms() + PAUSE_MS;
}

static void resume_accept(void)
{
	paused = false;
	if (lfd >= 0)
		pfd[lfd].events = POLLIN;
}

/* poll() timeout: -1 unless accepting is paused; resumes it when due. */
static int poll_timeout(void)
{
	if (!paused)
		return -1;
	long long left = resume_ms - now_ms();
	if (left > 0 && left <= PAUSE_MS)
		return (int)left;
	resume_accept();
	return -1;
}

static void close_conn(int fd)
{
	struct conn *k = &conn[fd];

	xclose(fd);
	slot_clear(fd);
	active--;
	if (!quiet)
		fprintf(stderr, "- %s (%d active)\n", k->name, active);
	free(k->out);
	memset(k, 0, sizeof *k);
	if (!stopping) { /* a descriptor is free again */
		spare_reopen();
		if (paused)
			resume_accept();
	}
}

/* Send as much of p[0..n) as the socket takes now; *done counts it. */
static int send_some(int fd, const char *p, size_t n, size_t *done)
{
	*done = 0;
	while (*done < n) {
		ssize_t s = send(fd, p + *done, n - *done, MSG_NOSIGNAL);
		if (s < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -1; /* EPIPE, ECONNRESET...: this connection only */
		}
		*done += (size_t)s;
	}
	return 0;
}

static int flush_out(int fd)
{
	struct conn *k = &conn[fd];
	size_t done;

	if (send_some(fd, k->out + k->off, k->len, &done) < 0)
		return -1;
	k->off += done;
	k->len -= done;
	if (k->len == 0) { /* drained: give the memory back */
		free(k->out);
		k->out = NULL;
		k->cap = k->off = 0;
	}
	return 0;
}

/* Queue p[0..n); the caller never lets len + n exceed OUT_MAX. */
static int append_out(struct conn *k, const char *p, size_t n)
{
	if (n == 0)
		return 0;
	if (k->off + k->len + n > k->cap) {
		if (k->off > 0) {
			memmove(k->out, k->out + k->off, k->len);
			k->off = 0;
		}
		if (k->len + n > k->cap) {
			size_t ncap = k->cap ? k->cap : OUT_MIN;
			while (ncap < k->len + n)
				ncap *= 2;
			if (ncap > OUT_MAX)
				ncap = OUT_MAX;
			char *nb = realloc(k->out, ncap);
			if (!nb) {
				fprintf(stderr, "server: %s: out of memory\n", k->name);
				return -1;
			}
			k->out = nb;
			k->cap = ncap;
		}
	}
	memcpy(k->out + k->off + k->len, p, n);
	k->len += n;
	return 0;
}

static void show(const struct conn *k, const char *p, size_t n)
{
	char txt[SHOW_MAX + 1];
	size_t m = 0, i;

	for (i = 0; i < n && m < SHOW_MAX; i++)
		if (isprint((unsigned char)p[i]))
			txt[m++] = p[i];
	txt[m] = '\0';
	fprintf(stderr, "server: %s sent %zu bytes: \"%s\"%s\n", k->name, n, txt,
		i < n ? "..." : "");
}

/* One recv(), echoed at once; what the peer cannot take yet is queued. */
static int on_readable(int fd)
{
	struct conn *k = &conn[fd];
	size_t room = OUT_MAX - k->len, done = 0;
	ssize_t n;

	if (room == 0) /* cannot happen: POLLIN is asked for only with room */
		return 0;
	do
		n = recv(fd, iobuf, room, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
	if (n == 0) {
		k->eof = true;
		return 0;
	}
	if (verbose)
		show(k, iobuf, (size_t)n);
	/* With output already queued, order demands we queue behind it. */
	if (k->len == 0 && send_some(fd, iobuf, (size_t)n, &done) < 0)
		return -1;
	return append_out(k, iobuf + done, (size_t)n - done);
}

/* Ask poll() for what the connection can use now, or close it when done. */
static void rearm(int fd)
{
	const struct conn *k = &conn[fd];
	short ev = 0;

	if (k->eof && k->len == 0) {
		close_conn(fd);
		return;
	}
	if (!k->eof && k->len < OUT_MAX)
		ev |= POLLIN;
	if (k->len > 0)
		ev |= POLLOUT;
	pfd[fd].events = ev;
}

static void on_conn(int fd, short re)
{
	if (re & (POLLERR | POLLNVAL)) {
		close_conn(fd);
		return;
	}
	if ((re & POLLOUT) && flush_out(fd) < 0) {
		close_conn(fd);
		return;
	}
	if (re & POLLIN) {
		if (on_readable(fd) < 0) {
			close_conn(fd);
			return;
		}
	} else if (re & POLLHUP) { /* both directions are gone */
		close_conn(fd);
		return;
	}
	rearm(fd);
}

static void add_conn(int c, const struct sockaddr_storage *ss)
{
	char name[sizeof conn->name];

	addr_name(ss, name, sizeof name);
	if (table_fit(c) < 0) {
		fprintf(stderr, "server: refused %s: out of memory\n", name);
		xclose(c);
		return;
	}
	memset(&conn[c], 0, sizeof conn[c]);
	memcpy(conn[c].name, name, sizeof name);
	slot_set(c, POLLIN);
	active++;
	if (!quiet)
		fprintf(stderr, "+ %s (%d active)\n", name, active);
}

/*
 * Out of descriptors: free the spare, accept the waiting connection and close
 * it at once. Returns 1 if one was refused, 0 if none was waiting, -1 if it
 * could not be done (the caller then pauses accepting).
 */
static int refuse_one(void)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	char name[sizeof conn->name];
	int c, ret;

	spare_reopen();
	if (spare < 0)
		return -1;
	xclose(spare);
	spare = -1;
	do
		c = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
	while (c < 0 && errno == EINTR);
	if (c >= 0) {
		addr_name(&ss, name, sizeof name);
		fprintf(stderr, "server: refused %s: out of descriptors\n", name);
		xclose(c);
		ret = 1;
	} else {
		ret = errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
	}
	spare_reopen();
	return ret;
}

static void on_listener(void)
{
	for (int i = 0; i < ACCEPT_BURST; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;
		int c = accept4(lfd, (struct sockaddr *)&ss, &sl,
				SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (c >= 0) {
			add_conn(c, &ss);
			continue;
		}
		int e = errno;
		if (e == EAGAIN || e == EWOULDBLOCK)
			return;
		if (e == EINTR || e == ECONNABORTED || e == EPROTO || e == EPERM ||
		    e == ENETDOWN || e == ENOPROTOOPT || e == EHOSTDOWN ||
		    e == ENONET || e == EHOSTUNREACH || e == EOPNOTSUPP ||
		    e == ENETUNREACH)
			continue; /* that connection only: take the next one */
		if (e == EMFILE || e == ENFILE) {
			int r = refuse_one();
			if (r > 0)
				continue;
			if (r < 0)
				pause_accept();
			return;
		}
		fprintf(stderr, "server: accept: %s\n", strerror(e));
		pause_accept(); /* ENOBUFS, ENOMEM...: let the system breathe */
		return;
	}
}

/* True when a stop signal was read (or the signalfd broke). */
static bool on_signalfd(void)
{
	struct signalfd_siginfo si;
	ssize_t n;

	do
		n = read(sfd, &si, sizeof si);
	while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof si)
		return true;
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return false;
	perror("server: signalfd");
	return true;
}

static int open_listener(const struct sockaddr_storage *ss, socklen_t sl)
{
	char name[sizeof conn->name];
	int one = 1;

	addr_name(ss, name, sizeof name);
	lfd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (lfd < 0) {
		perror("server: socket");
		return -1;
	}
	if (setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
		perror("server: SO_REUSEADDR");
	if (bind(lfd, (const struct sockaddr *)ss, sl) < 0) {
		fprintf(stderr, "server: bind %s: %s\n", name, strerror(errno));
		return -1;
	}
	if (listen(lfd, SOMAXCONN) < 0) {
		perror("server: listen");
		return -1;
	}
	struct sockaddr_storage real;
	socklen_t rl = sizeof real;
	if (getsockname(lfd, (struct sockaddr *)&real, &rl) < 0) {
		perror("server: getsockname");
		return -1;
	}
	addr_name(&real, name, sizeof name);
	printf("listening on %s\n", name);
	if (fflush(stdout) == EOF) {
		perror("server: stdout");
		return -1;
	}
	return 0;
}

static void parse_args(int argc, char **argv, struct sockaddr_storage *ss,
		       socklen_t *sl)
{
	const char *addr = "127.0.0.1";
	unsigned long port = 8080;
	int opt;

	opterr = 0;
	while ((opt = getopt(argc, argv, ":p:b:qvh")) != -1) {
		char *end;
		char o[3] = { '-', (char)optopt, '\0' };
		switch (opt) {
		case 'p':
			errno = 0;
			port = strtoul(optarg, &end, 10);
			if (!isdigit((unsigned char)optarg[0]) || *end || errno ||
			    port > 65535)
				bad_usage("bad port: ", optarg);
			break;
		case 'b': addr = optarg; break;
		case 'q': quiet = true; break;
		case 'v': verbose = true; break;
		case 'h': usage(stdout); exit(0);
		case ':': bad_usage("missing value for option ", o);
		default: bad_usage("unknown option ", o);
		}
	}
	if (optind < argc)
		bad_usage("unexpected argument: ", argv[optind]);

	memset(ss, 0, sizeof *ss);
	struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port) };
	if (inet_pton(AF_INET, addr, &a4.sin_addr) == 1) {
		memcpy(ss, &a4, sizeof a4);
		*sl = sizeof a4;
	} else if (inet_pton(AF_INET6, addr, &a6.sin6_addr) == 1) {
		memcpy(ss, &a6, sizeof a6);
		*sl = sizeof a6;
	} else {
		bad_usage("bad address (an IPv4 or IPv6 literal): ", addr);
	}
}

/* The event loop; returns the exit status once a stop signal arrives. */
static int serve(void)
{
	for (;;) {
		int n = poll(pfd, nfds, poll_timeout());
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("server: poll");
			return 1;
		}
		if (n == 0)
			continue; /* an accept pause ended */
		if (pfd[sfd].revents && on_signalfd())
			return 0;
		/* Indices, not pointers: accepting may move the tables. A new
		 * entry starts with revents 0, so it waits for the next poll(). */
		for (nfds_t i = 0; i < nfds; i++) {
			short re = pfd[i].revents;
			if (re == 0 || pfd[i].fd < 0 || (int)i == sfd)
				continue;
			if ((int)i == lfd)
				on_listener();
			else
				on_conn((int)i, re);
		}
	}
}

int main(int argc, char **argv)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	sigset_t stop;
	int status = 1;

	parse_args(argc, argv, &ss, &sl);

	/* Blocked signals are queued for the signalfd, even if inherited as ignored. */
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &stop, NULL) < 0) {
		perror("server: sigprocmask");
		return 1;
	}
	sfd = signalfd(-1, &stop, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sfd < 0) {
		perror("server: signalfd");
		return 1;
	}
	spare_reopen();
	if (spare < 0)
		perror("server: spare descriptor");
	if (open_listener(&ss, sl) == 0 && table_fit(lfd) == 0 && table_fit(sfd) == 0) {
		slot_set(lfd, POLLIN);
		slot_set(sfd, POLLIN);
		status = serve();
		/* Stop accepting, then close (and log) every connection. */
		stopping = true;
		slot_clear(lfd);
		xclose(lfd);
		lfd = -1;
		for (int i = (int)nfds - 1; i >= 0; i--)
			if (pfd[i].fd >= 0 && i != sfd)
				close_conn(i);
		fprintf(stderr, "shutting down\n");
	}
	if (lfd >= 0)
		xclose(lfd);
	xclose(sfd);
	if (spare >= 0)
		xclose(spare);
	free(pfd);
	free(conn);
	return status;
}
