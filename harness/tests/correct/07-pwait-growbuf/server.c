/*
 * chapter: 07
 * design: one thread, epoll level- or edge-triggered (-e); SIGINT/SIGTERM unblocked only inside epoll_pwait(); data.ptr to the connection, sentinel for the listener; growable linear output buffer (at most 64 KiB); spare descriptor for EMFILE
 *
 * One thread waits in epoll_pwait(). SIGINT and SIGTERM stay blocked except
 * inside that call, whose mask lets them in: the handler only stores a flag,
 * the wait fails with EINTR and the loop stops, with no window between the
 * test of the flag and the sleep, and no pipe or signalfd. Each event carries
 * a pointer: the connection's struct, or a private sentinel for the listener.
 * Bytes read are sent back at once; what the socket refuses is appended to a
 * per-connection linear buffer that doubles (realloc) up to the 64 KiB bound,
 * is consumed by an offset reset to zero when it empties, compacted with
 * memmove when the tail needs room, and freed on drain if it grew large. A
 * connection never reads more than the room left: full, it leaves EPOLLIN
 * until it drains. EPOLLOUT is registered (EPOLL_CTL_MOD) only while output
 * is pending, in both modes. Edge-triggered, it accepts, reads and writes
 * until EAGAIN (a full buffer that makes room reads again at once);
 * level-triggered, one read per wake-up and a batch of accepts keep everyone
 * served. SIGPIPE is ignored. On EMFILE/ENFILE a spare descriptor on
 * /dev/null is closed, the waiting client accepted and closed, the spare
 * reopened; with nothing to free the listener rests 100 ms unwatched. On a
 * stop: listener closed, every connection closed and logged, then
 * "shutting down".
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define OUT_LIMIT    (64 * 1024) /* most output a connection may have pending */
#define OUT_INITIAL  4096        /* first size of an output buffer */
#define OUT_KEEP     (16 * 1024) /* a drained buffer larger than this is freed */
#define MAX_EVENTS   512
#define ACCEPT_BATCH 64          /* level-triggered: accepts per wake-up */
#define PAUSE_MS     100         /* listener rest when no descriptor is free */
#define NAME_LEN     64          /* "[v6-address]:port" and its NUL */

struct conn {
	struct conn *prev, *next; /* every open connection, for the stop */
	int fd;
	uint32_t events;          /* interest registered, EPOLLET aside */
	bool rd_open;             /* the peer has not shut down its side */
	char *out;                /* pending output is out[head..tail) */
	size_t head, tail, cap;
	char name[NAME_LEN];
};

struct server {
	int lfd, ep, spare;
	uint32_t et;              /* EPOLLET with -e, else 0 */
	bool quiet, verbose;
	bool paused;              /* listener out of the interest set */
	long long resume_at;      /* end of a pause, ms of CLOCK_MONOTONIC */
	int active;
	struct conn *conns;
	sigset_t waitmask;        /* the mask during epoll_pwait() */
};

static char listener_mark;            /* data.ptr of the listening socket */
static char rbuf[OUT_LIMIT];          /* one thread: one read at a time */
static char vbuf[OUT_LIMIT + 1];      /* -v: the printable part of a read */
static volatile sig_atomic_t stop_signal;

static void on_stop(int sig)
{
	stop_signal = sig;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: server [-p PORT] [-b ADDR] [-q] [-v] [-e] [-h]\n"
		"  -p PORT  port to listen on (default 8080; 0: the kernel chooses)\n"
		"  -b ADDR  IPv4 or IPv6 address to bind (default 127.0.0.1)\n"
		"  -q       quiet: no per-connection log lines\n"
		"  -v       verbose: also log each message received\n"
		"  -e       edge-triggered epoll (default: level-triggered)\n"
		"  -h       show this help\n");
}

static _Noreturn __attribute__((format(printf, 1, 2))) void bad_usage(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("server: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	usage(stderr);
	exit(2);
}

static _Noreturn void die(const char *what)
{
	fprintf(stderr, "server: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void close_fd(int fd)
{
	/* On Linux the descriptor is gone even after EINTR: never retry. */
	if (close(fd) < 0 && errno != EINTR)
		perror("server: close");
}

static void format_addr(const struct sockaddr *sa, char *buf, size_t len)
{
	const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
	const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
	char host[INET6_ADDRSTRLEN];

	if (sa->sa_family == AF_INET6 && inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host))
		snprintf(buf, len, "[%s]:%u", host, (unsigned)ntohs(in6->sin6_port));
	else if (sa->sa_family == AF_INET && inet_ntop(AF_INET, &in->sin_addr, host, sizeof host))
		snprintf(buf, len, "%s:%u", host, (unsigned)ntohs(in->sin_port));
	else
		snprintf(buf, len, "?");
}

static bool parse_port(const char *s, unsigned *port)
{
	unsigned v = 0;

	if (*s == '\0' || strlen(s) > 5)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		v = v * 10 + (unsigned)(*s - '0');
	}
	*port = v;
	return v <= 65535;
}

static bool parse_addr(const char *s, unsigned port, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in *in = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof *ss);
	if (inet_pton(AF_INET, s, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)port);
		*len = sizeof *in;
		return true;
	}
	if (inet_pton(AF_INET6, s, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		*len = sizeof *in6;
		return true;
	}
	return false;
}

/* ---- output buffer -------------------------------------------------- */

static size_t pending(const struct conn *c)
{
	return c->tail - c->head;
}

/* Sends until everything is gone or the socket is full: bytes sent, or -1. */
static ssize_t send_some(int fd, const char *p, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = send(fd, p + done, len - done, 0);
		if (n > 0)
			done += (size_t)n;
		else if (n < 0 && errno == EINTR)
			continue;
		else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		else
			return -1;
	}
	return (ssize_t)done;
}

static int out_flush(struct conn *c)
{
	if (pending(c) == 0)
		return 0;
	ssize_t n = send_some(c->fd, c->out + c->head, pending(c));
	if (n < 0)
		return -1;
	c->head += (size_t)n;
	if (c->head == c->tail) {
		c->head = c->tail = 0;
		if (c->cap > OUT_KEEP) {
			free(c->out);
			c->out = NULL;
			c->cap = 0;
		}
	}
	return 0;
}

static int out_append(struct conn *c, const char *p, size_t len)
{
	size_t have = pending(c), need = have + len;

	if (need > OUT_LIMIT) {      /* callers never read more than the room */
		errno = ENOBUFS;
		return -1;
	}
	if (c->tail + len > c->cap) {
		if (have > 0 && c->head > 0)
			memmove(c->out, c->out + c->head, have);
		c->head = 0;
		c->tail = have;
		if (need > c->cap) {
			size_t cap = c->cap ? c->cap : OUT_INITIAL;
			while (cap < need)
				cap *= 2;
			if (cap > OUT_LIMIT)
				cap = OUT_LIMIT;
			char *out = realloc(c->out, cap);
			if (out == NULL)
				return -1;
			c->out = out;
			c->cap = cap;
		}
	}
	memcpy(c->out + c->tail, p, len);
	c->tail += len;
	return 0;
}

/* Echoes p[0..len) after whatever is already pending, keeping the order. */
static int conn_send(struct conn *c, const char *p, size_t len)
{
	if (out_flush(c) < 0)
		return -1;
	if (pending(c) == 0) {
		ssize_t n = send_some(c->fd, p, len);
		if (n < 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return len > 0 ? out_append(c, p, len) : 0;
}

/* ---- connections ---------------------------------------------------- */

static void log_conn(const struct server *s, char sign, const struct conn *c)
{
	if (!s->quiet)
		fprintf(stderr, "%c %s (%d active)\n", sign, c->name, s->active);
}

static void log_message(const struct conn *c, const char *p, size_t n)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		if (p[i] >= 0x20 && p[i] < 0x7f)
			vbuf[k++] = p[i];
	vbuf[k] = '\0';
	fprintf(stderr, "> %s: %s\n", c->name, vbuf);
}

static void conn_open(struct server *s, int fd, const struct sockaddr *sa)
{
	struct conn *c = calloc(1, sizeof *c);
	if (c == NULL) {
		perror("server: calloc");
		close_fd(fd);
		return;
	}
	c->fd = fd;
	c->rd_open = true;
	c->events = EPOLLIN;
	format_addr(sa, c->name, sizeof c->name);

	struct epoll_event ev = { .events = EPOLLIN | s->et, .data.ptr = c };
	if (epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
		perror("server: epoll_ctl add");
		close_fd(fd);
		free(c);
		return;
	}
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->active++;
	log_conn(s, '+', c);
}

static void conn_close(struct server *s, struct conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	close_fd(c->fd);           /* also removes it from the epoll set */
	s->active--;
	log_conn(s, '-', c);
	free(c->out);
	free(c);
}

/* Reads while there is room (once in level-triggered mode); -1 ends it. */
static int conn_read(struct server *s, struct conn *c)
{
	for (;;) {
		size_t room = OUT_LIMIT - pending(c);
		if (room == 0)
			return 0;          /* full: no reading until it drains */
		ssize_t n = recv(c->fd, rbuf, room, 0);
		if (n > 0) {
			if (s->verbose)
				log_message(c, rbuf, (size_t)n);
			if (conn_send(c, rbuf, (size_t)n) < 0)
				return -1;
			if (!s->et)
				return 0;
		} else if (n == 0) {
			c->rd_open = false;
			return 0;
		} else if (errno == EINTR) {
			continue;
		} else if (errno == EAGAIN || errno == EWOULDBLOCK) {
			return 0;
		} else {
			return -1;
		}
	}
}

/* Interest: EPOLLIN while there is room, EPOLLOUT while output is pending. */
static int conn_update(const struct server *s, struct conn *c)
{
	uint32_t want = 0;

	if (c->rd_open && pending(c) < OUT_LIMIT)
		want |= EPOLLIN;
	if (pending(c) > 0)
		want |= EPOLLOUT;
	if (want == c->events)
		return 0;
	struct epoll_event ev = { .events = want | s->et, .data.ptr = c };
	if (epoll_ctl(s->ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
		return -1;
	c->events = want;
	return 0;
}

static void conn_event(struct server *s, struct conn *c, uint32_t ev)
{
	if (ev & EPOLLERR)
		goto drop;             /* reset or other error: this one only */

	bool was_full = pending(c) >= OUT_LIMIT;
	if ((ev & (EPOLLOUT | EPOLLHUP)) && out_flush(c) < 0)
		goto drop;
	/* A full buffer that just made room owes a read: in edge-triggered
	 * mode no new edge may ever come for the data already waiting. */
	bool may_read = (ev & (EPOLLIN | EPOLLHUP)) || (was_full && pending(c) < OUT_LIMIT);
	if (c->rd_open && may_read && conn_read(s, c) < 0)
		goto drop;
	if (!c->rd_open && pending(c) == 0)
		goto drop;             /* half-closed and everything echoed */
	if (conn_update(s, c) == 0)
		return;
	perror("server: epoll_ctl mod");
drop:
	conn_close(s, c);
}

/* ---- listener ------------------------------------------------------- */

static bool accept_soft_error(int e)
{
	/* Errors that concern the connection being accepted, not the server. */
	return e == ECONNABORTED || e == EPROTO || e == EPERM || e == ENETDOWN ||
	       e == ENOPROTOOPT || e == EHOSTDOWN || e == ENONET ||
	       e == EHOSTUNREACH || e == EOPNOTSUPP || e == ENETUNREACH;
}

static long long mono_ms(void)
{
	struct timespec t;

	if (clock_gettime(CLOCK_MONOTONIC, &t) < 0)
		return -1;             /* cannot happen; a pause would end at once */
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Watches the listener again, or leaves it alone for PAUSE_MS. */
static void listener_watch(struct server *s, bool on)
{
	struct epoll_event ev = { .events = on ? EPOLLIN | s->et : 0,
				  .data.ptr = &listener_mark };

	if (on && s->spare < 0)
		s->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (epoll_ctl(s->ep, EPOLL_CTL_MOD, s->lfd, &ev) < 0)
		perror("server: epoll_ctl listener");
	s->paused = !on;
	s->resume_at = on ? 0 : mono_ms() + PAUSE_MS;
}

/* The epoll_pwait() timeout: -1, or what is left of a pause. */
static int wait_timeout(struct server *s)
{
	if (!s->paused)
		return -1;
	long long now = mono_ms(), left = s->resume_at - now;
	if (now < 0 || left <= 0) {
		listener_watch(s, true);
		return -1;
	}
	return left > PAUSE_MS ? PAUSE_MS : (int)left;
}

/* Out of descriptors: turn one waiting client away with the spare.
 * 1: one was refused, 0: none was waiting, -1: no descriptor to free. */
static int refuse_one(struct server *s)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;

	if (s->spare < 0)
		return -1;
	close_fd(s->spare);
	int fd = accept4(s->lfd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC);
	int err = errno;
	if (fd >= 0) {
		if (!s->quiet) {
			char name[NAME_LEN];
			format_addr((struct sockaddr *)&ss, name, sizeof name);
			fprintf(stderr, "! %s refused: out of descriptors\n", name);
		}
		close_fd(fd);
	}
	s->spare = open("/dev/null", O_RDONLY | O_CLOEXEC); /* -1: pause next time */
	if (fd >= 0 || err == EINTR || accept_soft_error(err))
		return 1;
	return err == EAGAIN || err == EWOULDBLOCK ? 0 : -1;
}

static void accept_ready(struct server *s)
{
	for (unsigned n = 0; s->et || n < ACCEPT_BATCH; n++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof ss;
		int fd = accept4(s->lfd, (struct sockaddr *)&ss, &len,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			conn_open(s, fd, (struct sockaddr *)&ss);
			continue;
		}
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		if (errno == EINTR || accept_soft_error(errno))
			continue;
		if (errno == EMFILE || errno == ENFILE) {
			int r = refuse_one(s);
			if (r > 0)
				continue;
			if (r == 0)
				return;
		} else {
			perror("server: accept");
		}
		listener_watch(s, false); /* nothing to free now: rest, retry */
		return;
	}
}

/* ---- main ----------------------------------------------------------- */

int main(int argc, char **argv)
{
	struct server s = { .lfd = -1, .ep = -1, .spare = -1 };
	const char *addr = "127.0.0.1";
	unsigned port = 8080;
	int opt;

	opterr = 0;
	while ((opt = getopt(argc, argv, ":p:b:qveh")) != -1) {
		switch (opt) {
		case 'p':
			if (!parse_port(optarg, &port))
				bad_usage("-p: '%s' is not a port (0-65535)", optarg);
			break;
		case 'b': addr = optarg; break;
		case 'q': s.quiet = true; break;
		case 'v': s.verbose = true; break;
		case 'e': s.et = EPOLLET; break;
		case 'h': usage(stdout); return 0;
		case ':': bad_usage("option -%c needs a value", optopt);
		default: bad_usage("unknown option -%c", optopt);
		}
	}
	if (optind < argc)
		bad_usage("unexpected argument '%s'", argv[optind]);

	struct sockaddr_storage ss;
	socklen_t sslen;
	if (!parse_addr(addr, port, &ss, &sslen))
		bad_usage("-b: '%s' is not an IPv4 or IPv6 address", addr);

	/* Stop signals are blocked from here on, but during epoll_pwait(). */
	sigset_t stopset;
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	if (sigemptyset(&stopset) < 0 || sigaddset(&stopset, SIGINT) < 0 ||
	    sigaddset(&stopset, SIGTERM) < 0)
		die("sigset");
	if (sigprocmask(SIG_BLOCK, &stopset, &s.waitmask) < 0)
		die("sigprocmask");
	if (sigdelset(&s.waitmask, SIGINT) < 0 || sigdelset(&s.waitmask, SIGTERM) < 0)
		die("sigset");
	sa.sa_handler = on_stop;
	sa.sa_mask = stopset;
	if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0)
		die("sigaction");
	sa.sa_handler = SIG_IGN;
	if (sigemptyset(&sa.sa_mask) < 0 || sigaction(SIGPIPE, &sa, NULL) < 0)
		die("sigaction SIGPIPE");

	char shown[NAME_LEN];
	format_addr((struct sockaddr *)&ss, shown, sizeof shown);
	s.lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s.lfd < 0)
		die("socket");
	int one = 1;
	if (setsockopt(s.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
		die("setsockopt SO_REUSEADDR");
	if (bind(s.lfd, (struct sockaddr *)&ss, sslen) < 0) {
		fprintf(stderr, "server: bind %s: %s\n", shown, strerror(errno));
		return 1;
	}
	if (listen(s.lfd, SOMAXCONN) < 0)
		die("listen");
	s.ep = epoll_create1(EPOLL_CLOEXEC);
	if (s.ep < 0)
		die("epoll_create1");
	struct epoll_event lev = { .events = EPOLLIN | s.et, .data.ptr = &listener_mark };
	if (epoll_ctl(s.ep, EPOLL_CTL_ADD, s.lfd, &lev) < 0)
		die("epoll_ctl add listener");
	s.spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (s.spare < 0)
		perror("server: open /dev/null (no spare descriptor)");

	sslen = sizeof ss;
	if (getsockname(s.lfd, (struct sockaddr *)&ss, &sslen) < 0)
		die("getsockname");
	format_addr((struct sockaddr *)&ss, shown, sizeof shown);
	printf("listening on %s\n", shown);
	if (fflush(stdout) == EOF)
		die("stdout");

	struct epoll_event evs[MAX_EVENTS];
	int status = 0;
	while (!stop_signal) {
		int timeout = wait_timeout(&s);
		int n = epoll_pwait(s.ep, evs, MAX_EVENTS, timeout, &s.waitmask);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("server: epoll_pwait");
			status = 1;
			break;
		}
		for (int i = 0; i < n; i++) {
			if (evs[i].data.ptr == &listener_mark) {
				if (!s.paused)
					accept_ready(&s);
			} else {
				conn_event(&s, evs[i].data.ptr, evs[i].events);
			}
		}
	}

	close_fd(s.lfd);               /* stop accepting before anything else */
	while (s.conns)
		conn_close(&s, s.conns);
	fprintf(stderr, "shutting down\n");
	close_fd(s.ep);
	if (s.spare >= 0)
		close_fd(s.spare);
	return status;
}
