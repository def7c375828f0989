/*
 * loadgen — a load generator for echo servers, used by the harness's limits
 * and supervise checks and by the benchmark.
 *
 * Every connection sends its own deterministic pseudo-random bytes (NULs
 * included) and checks every byte that comes back.  One epoll loop per
 * process drives thousands of non-blocking connections; --procs splits them
 * over several processes (one process may hold only so many descriptors),
 * --src-range over source addresses 127.0.0.1..127.0.0.K (one source address
 * has only ~28,000 ephemeral ports towards one server port).
 *
 * Modes:
 *   pingpong (default)  one message in flight per connection
 *   pipeline            up to --depth messages in flight
 *   --hold              connect all, one verified echo each, keep them all open
 *                       and idle for --duration, one more verified echo each, close
 *   connect             each of the -c slots loops: connect, one message, its
 *                       verified echo, close (we close first), connect again.  The
 *                       workload of Stevens' server-design table (UNP ch. 30): it
 *                       measures connections per second, and the latency of each
 *                       connection from the start of connect() to its last byte
 * A run ends after --duration seconds, or after --messages per connection (in
 * connect mode: connections per slot).  What is in flight at the end finishes.
 *
 * Output: a summary, or one JSON object with --json.  "established" counts TCP
 * connections made, "echoed" those that got at least one verified echo, and
 * "refused" those turned away (connect refused, or closed or reset by the
 * server before their first echo); "conns_done" those that did all they had to
 * and were then closed by us.  Counters are per connection, also in connect mode
 * (where a slot goes through many).  Exit status: 0 every
 * connection established and every byte verified; 1 something failed
 * (refused, timed out, closed early, wrong bytes); 2 bad usage or set-up.
 * Latency percentiles come from a log-linear histogram (128 sub-buckets per
 * power of two: under 0.8% error).
 *
 * Build: cc -O2 -Wall -Wextra -o loadgen loadgen.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_DEPTH      16    /* messages in flight per connection, at most */
#define MAX_CONNECTING 512   /* connects in progress at once */
#define SUB            128   /* histogram sub-buckets per power of two */
#define NBUCKETS       (SUB * 40)
#define CHUNK          65536

enum state { C_IDLE, C_CONNECTING, C_ACTIVE, C_HOLDING, C_DONE };

struct lconn {
    int fd;
    uint32_t id;                  /* global connection number: seeds its bytes */
    uint32_t slot, rounds;        /* connect mode: the slot's number, connections it has started */
    uint8_t state;
    uint8_t echoed;               /* at least one echo verified: no longer "refused" */
    uint32_t events;              /* what epoll watches on fd now */
    uint32_t send_msg, recv_msg;  /* messages fully sent / fully received */
    uint32_t send_off, recv_off;  /* bytes into the message being sent / received */
    uint32_t limit;               /* messages to send in the current phase */
    uint64_t deadline;            /* µs: a timeout if no progress by then; 0 = none */
    uint64_t t_connect;           /* connect mode: when connect() started */
    uint64_t t_sent[MAX_DEPTH];   /* when each message in flight started */
};

/* What one process measured; merged by the parent when there are several. */
struct result {
    uint64_t connections, established, echoed, refused, timeouts, errors, closed_early, mismatches;
    uint64_t messages, bytes, peak_open, max_us, conns_done;
    uint64_t no_port;             /* connects that found no free local port (EADDRNOTAVAIL) */
    double elapsed_s;
    uint64_t hist[NBUCKETS];
    char first_mismatch[160];
};

static struct {
    const char *host;
    int port, conns, size, depth, procs, src_range, hold, json, allow_refused, connect_mode;
    double duration, timeout, rate, give_up;
    long messages;
} cfg = { "127.0.0.1", 0, 1, 64, 1, 1, 1, 0, 0, 0, 0, 0, 10, 0, 0, 0 };

static volatile sig_atomic_t interrupted;
static struct result res;

static void on_sigint(int signo) { (void)signo; interrupted = 1; }

static uint64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* The byte at offset off of message msg of connection id (splitmix64 of the three). */
static uint8_t pattern(uint32_t id, uint32_t msg, uint32_t off)
{
    uint64_t x = ((uint64_t)id << 40) ^ ((uint64_t)msg << 20) ^ off;

    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return (uint8_t)(x ^ (x >> 31));
}

static void record_latency(uint64_t us)
{
    int idx;

    if (us < SUB) {
        idx = (int)us;
    } else {
        int e = 63 - __builtin_clzll(us);
        idx = (e - 6) * SUB + (int)((us >> (e - 7)) - SUB);
        if (idx >= NBUCKETS)
            idx = NBUCKETS - 1;
    }
    res.hist[idx]++;
    if (us > res.max_us)
        res.max_us = us;
}

static uint64_t bucket_value(int idx)
{
    int e;

    if (idx < SUB)
        return (uint64_t)idx;
    e = idx / SUB + 6;
    return ((uint64_t)(idx % SUB + SUB) << (e - 7)) + ((1ULL << (e - 7)) >> 1);  /* mid-bucket */
}

static uint64_t percentile(const struct result *r, double p)
{
    uint64_t total = 0, seen = 0;

    for (int i = 0; i < NBUCKETS; i++)
        total += r->hist[i];
    if (total == 0)
        return 0;
    for (int i = 0; i < NBUCKETS; i++) {
        seen += r->hist[i];
        if ((double)seen >= p * (double)total)
            return bucket_value(i);
    }
    return r->max_us;
}

static int epfd;
static long nopen, nconnecting;

/* Connect mode: the slots waiting to connect again, oldest first; a ring with room for every slot,
 * since a slot is in it at most once (from the end of one connection to the start of the next). */
static struct lconn **again;
static int again_size, again_head, again_len;

static void finish(struct lconn *c, uint64_t *counter)
{
    if (counter)
        (*counter)++;
    if (c->fd >= 0) {
        close(c->fd);  /* also leaves the epoll set; the client closes first, so TIME_WAIT is ours */
        nopen--;
    }
    if (c->state == C_CONNECTING)
        nconnecting--;
    c->fd = -1;
    c->state = C_DONE;
    /* Connect mode: a slot goes on after a connection that did its work, or one refused with
     * --allow-refused (a client tries again); after any other failure it stops, as a connection
     * does in the other modes: the run has failed anyway, and a dead server must not be hammered. */
    if (cfg.connect_mode && (counter == &res.conns_done || (counter == &res.refused && cfg.allow_refused)) &&
        (cfg.messages == 0 || c->rounds < (uint32_t)cfg.messages)) {
        c->state = C_IDLE;
        again[(again_head + again_len++) % again_size] = c;
    }
}

/* Watch what the connection waits for now; no system call when that has not changed (the common
 * case: a ping-pong connection waits to read, message after message). */
static void set_events(struct lconn *c, uint32_t events)
{
    struct epoll_event ev = { .events = events, .data.ptr = c };

    if (c->events == events)
        return;
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->events = events;
}

static int start_connect(struct lconn *c, const struct sockaddr_in *dst, uint64_t now)
{
    struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = c };
    int fd, one = 1;

    if (cfg.connect_mode) {
        /* A new connection in this slot: a new global number (so its own bytes), a clean slate,
         * and its own clock, read here rather than once per loop: hundreds of connects may
         * start in one pass. */
        c->id = c->slot + c->rounds * (uint32_t)cfg.conns;
        c->rounds++;
        c->echoed = 0;
        c->send_msg = c->recv_msg = c->send_off = c->recv_off = 0;
        c->limit = 1;
        c->t_connect = now = now_us();
    }
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    res.connections++;
    if (fd < 0) {
        fprintf(stderr, "loadgen: socket: %s\n", strerror(errno));
        c->state = C_DONE;
        res.errors++;
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (cfg.src_range > 1) {
        /* Another source address, another ~28,000 ephemeral ports; the port is chosen at connect(). */
        struct sockaddr_in src = { .sin_family = AF_INET };
        src.sin_addr.s_addr = htonl(0x7f000001u + c->id % (uint32_t)cfg.src_range);
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0) {
            fprintf(stderr, "loadgen: bind source address: %s\n", strerror(errno));
            close(fd);
            c->state = C_DONE;
            res.errors++;
            return -1;
        }
    }
    c->fd = fd;
    nopen++;
    if (connect(fd, (const struct sockaddr *)dst, sizeof *dst) < 0 && errno != EINPROGRESS) {
        /* No free ephemeral port (TIME_WAIT included): an error, said once at the end; the slot stops. */
        if (errno == EADDRNOTAVAIL)
            res.no_port++;
        finish(c, errno == ECONNREFUSED ? &res.refused : &res.errors);
        return -1;
    }
    c->state = C_CONNECTING;
    nconnecting++;
    c->deadline = now + (uint64_t)(cfg.timeout * 1e6);
    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
    c->events = ev.events;
    return 0;
}

/* Send what the connection may send now: the current messages, up to the depth in flight. */
static int pump_send(struct lconn *c, uint64_t now)
{
    static uint8_t buf[CHUNK];

    while (c->send_msg < c->limit && c->send_msg - c->recv_msg < (uint32_t)cfg.depth) {
        uint32_t n = (uint32_t)cfg.size - c->send_off, i;
        ssize_t sent;

        if (n > CHUNK)
            n = CHUNK;
        for (i = 0; i < n; i++)
            buf[i] = pattern(c->id, c->send_msg, c->send_off + i);
        if (c->send_off == 0)
            c->t_sent[c->send_msg % MAX_DEPTH] = now;
        sent = send(c->fd, buf, n, MSG_NOSIGNAL);
        if (sent < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return 1;  /* wait for EPOLLOUT */
            return -1;
        }
        c->send_off += (uint32_t)sent;
        res.bytes += (uint64_t)sent;
        if (c->send_off == (uint32_t)cfg.size) {
            c->send_off = 0;
            c->send_msg++;
        }
        if ((uint32_t)sent < n)
            return 1;
    }
    return 0;
}

static void describe_mismatch(struct lconn *c, uint32_t off, uint8_t want, uint8_t got)
{
    if (res.first_mismatch[0] == '\0')
        snprintf(res.first_mismatch, sizeof res.first_mismatch,
                 "connection %u, message %u, offset %u: expected 0x%02x, got 0x%02x",
                 c->id, c->recv_msg, off, want, got);
}

/* Read and verify what came back. 0: fine; -1: the connection is finished (counted). */
static int pump_recv(struct lconn *c, uint64_t now)
{
    static uint8_t buf[CHUNK];

    for (;;) {
        ssize_t n = recv(c->fd, buf, sizeof buf, 0);

        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return 0;
            finish(c, c->echoed ? &res.errors : &res.refused);
            return -1;
        }
        if (n == 0) {
            finish(c, c->echoed ? &res.closed_early : &res.refused);
            return -1;
        }
        for (ssize_t i = 0; i < n; i++) {
            uint8_t want = pattern(c->id, c->recv_msg, c->recv_off);
            if (c->recv_msg >= c->send_msg + (c->send_off > 0) || buf[i] != want) {
                describe_mismatch(c, c->recv_off, want, buf[i]);
                finish(c, &res.mismatches);
                return -1;
            }
            if (++c->recv_off == (uint32_t)cfg.size) {
                record_latency(now - (cfg.connect_mode ? c->t_connect : c->t_sent[c->recv_msg % MAX_DEPTH]));
                res.messages++;
                c->recv_off = 0;
                c->recv_msg++;
                if (!c->echoed)
                    res.echoed++;
                c->echoed = 1;
            }
        }
        c->deadline = now + (uint64_t)(cfg.timeout * 1e6);
        /* Connect mode: the request is answered, we close now. Reading on would make a server
         * that closes right after its echo "closed early" or not, by the luck of timing. */
        if (cfg.connect_mode && c->recv_msg == c->limit)
            return 0;
        /* A short read emptied the socket: level-triggered epoll reports what comes next, and the
         * recv() that would only say EAGAIN is saved — the load generator must not cost more per
         * message than the servers it measures (2 system calls: send, recv). */
        if ((size_t)n < sizeof buf)
            return 0;
    }
}

/* Drive one connection after an event or a phase change. */
static void drive(struct lconn *c, uint64_t now, int draining)
{
    int blocked;

    if (c->state == C_DONE)
        return;
    blocked = pump_send(c, now);
    if (blocked < 0) {
        finish(c, c->echoed ? &res.errors : &res.refused);
        return;
    }
    if (c->recv_msg == c->limit) {  /* everything sent has come back */
        if (cfg.hold && c->limit == 1) {
            c->state = C_HOLDING;
            c->deadline = 0;
            set_events(c, EPOLLIN);  /* an EOF or reset while idle must still be seen */
            return;
        }
        if (draining || cfg.messages > 0 || cfg.hold || cfg.connect_mode) {
            finish(c, &res.conns_done);
            return;
        }
    }
    set_events(c, EPOLLIN | (blocked ? EPOLLOUT : 0));
}

/* Run conns[from..to) in this process. go_fd: readable when the hold may end (procs > 1), or -1. */
static void run(int from, int to, int ready_fd, int go_fd)
{
    struct epoll_event events[512];
    struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons((uint16_t)cfg.port) };
    int n = to - from, next = 0, hold_started = 0, draining = 0, done = 0;
    struct lconn *conns = calloc((size_t)n, sizeof *conns);
    uint64_t start = now_us(), hold_end = 0, end, hard_end, last_scan = 0, connect_budget = 0;
    double connects = cfg.conns;  /* that --connect-rate lets through: connect mode -n makes more */

    if (cfg.connect_mode && cfg.messages > 0)
        connects *= (double)cfg.messages;
    again = calloc((size_t)n, sizeof *again);
    again_size = n;
    if (conns == NULL || again == NULL || inet_pton(AF_INET, cfg.host, &dst.sin_addr) != 1) {
        fprintf(stderr, "loadgen: %s\n", conns ? "bad --host (an IPv4 address)" : "out of memory");
        exit(2);
    }
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (go_fd >= 0) {
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
        epoll_ctl(epfd, EPOLL_CTL_ADD, go_fd, &ev);
    }
    for (int i = 0; i < n; i++) {
        conns[i].fd = -1;
        conns[i].id = conns[i].slot = (uint32_t)(from + i);
        conns[i].limit = cfg.hold ? 1 : (cfg.messages > 0 ? (uint32_t)cfg.messages : UINT32_MAX);
    }
    end = cfg.hold ? UINT64_MAX : start + (uint64_t)(cfg.duration * 1e6);
    hard_end = start + (uint64_t)((cfg.duration + 3 * cfg.timeout + (cfg.rate > 0 ? connects / cfg.rate : 0) + 10) * 1e6);

    while (!done && !interrupted) {
        uint64_t now = now_us();
        int nev;

        /* New connections: at most MAX_CONNECTING in progress, and --connect-rate per second.
         * Every slot starts once before any starts again (connect mode), so all are in play early. */
        while ((next < n || again_len > 0) && nconnecting < MAX_CONNECTING && !draining) {
            struct lconn *c;

            if (cfg.rate > 0) {
                uint64_t allowed = (uint64_t)((double)(now - start) / 1e6 * cfg.rate / cfg.procs) + 1;
                if (connect_budget >= allowed)
                    break;
            }
            connect_budget++;
            if (next < n) {
                c = &conns[next++];
            } else {
                c = again[again_head];
                again_head = (again_head + 1) % again_size;
                again_len--;
            }
            start_connect(c, &dst, now);
        }
        if ((uint64_t)nopen > res.peak_open)
            res.peak_open = (uint64_t)nopen;

        nev = epoll_wait(epfd, events, 512, 50);
        now = now_us();
        for (int i = 0; i < nev; i++) {
            struct lconn *c = events[i].data.ptr;

            if (c == NULL) {  /* the parent says: every process is connected, end the hold */
                char b;
                if (read(go_fd, &b, 1) < 0)
                    perror("loadgen: read");
                hold_end = now;  /* the parent has already waited --duration */
                epoll_ctl(epfd, EPOLL_CTL_DEL, go_fd, NULL);
                continue;
            }
            if (c->state == C_CONNECTING) {
                int err = 0;
                socklen_t len = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err != 0) {
                    errno = err;
                    finish(c, err == ECONNREFUSED || err == ECONNRESET ? &res.refused : &res.errors);
                    continue;
                }
                nconnecting--;
                res.established++;
                c->state = C_ACTIVE;
                drive(c, now, draining);
                continue;
            }
            if (c->state == C_DONE || c->state == C_IDLE)  /* C_IDLE: connect mode, closed, to connect again */
                continue;
            if ((events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && pump_recv(c, now) < 0)
                continue;
            if (c->state == C_ACTIVE)
                drive(c, now, draining);
        }

        /* Phases. Hold: once every connection has had its first echo, wait, then one more each. */
        if (cfg.hold && !hold_started && next == n && nconnecting == 0) {
            int waiting = 0;
            for (int i = 0; i < n; i++)
                waiting |= conns[i].state == C_ACTIVE;
            if (!waiting) {
                hold_started = 1;
                if (ready_fd >= 0) {
                    if (write(ready_fd, "h", 1) != 1)  /* "held": any byte will do */
                        hold_end = now;
                } else {
                    hold_end = now + (uint64_t)(cfg.duration * 1e6);
                }
            }
        }
        if (cfg.hold && hold_end != 0 && now >= hold_end && !draining) {
            draining = 1;
            for (int i = 0; i < n; i++) {
                if (conns[i].state == C_HOLDING) {
                    conns[i].state = C_ACTIVE;
                    conns[i].limit = 2;
                    conns[i].deadline = now + (uint64_t)(cfg.timeout * 1e6);
                    drive(&conns[i], now, 1);
                }
            }
        }
        if (!cfg.hold && now >= end && !draining) {
            draining = 1;  /* no new messages: let those in flight come back (connect mode: no new connects) */
            for (int i = 0; i < n && !cfg.connect_mode; i++) {
                if (conns[i].state == C_ACTIVE) {
                    conns[i].limit = conns[i].send_msg + (conns[i].send_off > 0);
                    drive(&conns[i], now, 1);
                }
            }
        }
        /* Timeouts, ten times a second. */
        if (now - last_scan > 100000) {
            last_scan = now;
            done = next == n && (draining || cfg.messages > 0 || cfg.hold);
            for (int i = 0; i < n; i++) {
                struct lconn *c = &conns[i];
                if (c->state == C_DONE || c->state == C_IDLE)
                    continue;
                if (c->deadline != 0 && now > c->deadline)
                    finish(c, &res.timeouts);
                else
                    done = 0;
            }
            if (next < n || (again_len > 0 && !draining))
                done = 0;
        }
        /* Connect mode: the run is over as soon as no connection is open and none is due: an -n run
         * may last a fraction of a second and conns/s is its figure (the scan may come 100 ms later);
         * when every slot has stopped on a failure (nothing listens), waiting out -d is pointless;
         * and once -d is over, a slot that never started (--connect-rate) never will. */
        if (cfg.connect_mode && nopen == 0 && (draining || (next == n && again_len == 0)))
            done = 1;
        /* --give-up: a server that has echoed nothing at all by then serves nobody; the last
         * connection of a crowd may need --timeout, but a working server echoes the first at once. */
        if (cfg.give_up > 0 && res.echoed == 0 && now - start > (uint64_t)(cfg.give_up * 1e6))
            hard_end = start;  /* passed: everything still open ends now, as at the hard end */
        if (now > hard_end) {
            for (int i = 0; i < n; i++)
                if (conns[i].state != C_DONE && conns[i].state != C_IDLE)
                    finish(&conns[i], &res.timeouts);
            done = 1;
        }
    }
    for (int i = 0; i < n; i++)  /* interrupted: count what was left */
        if (conns[i].state != C_DONE && conns[i].state != C_IDLE)
            finish(&conns[i], &res.errors);
    res.elapsed_s = (double)(now_us() - start) / 1e6;
    close(epfd);
    free(conns);
    free(again);
}

static void merge(struct result *into, const struct result *r)
{
    into->connections += r->connections;
    into->established += r->established;
    into->echoed += r->echoed;
    into->refused += r->refused;
    into->timeouts += r->timeouts;
    into->errors += r->errors;
    into->closed_early += r->closed_early;
    into->mismatches += r->mismatches;
    into->messages += r->messages;
    into->bytes += r->bytes;
    into->peak_open += r->peak_open;
    into->conns_done += r->conns_done;
    into->no_port += r->no_port;
    if (r->max_us > into->max_us)
        into->max_us = r->max_us;
    if (r->elapsed_s > into->elapsed_s)
        into->elapsed_s = r->elapsed_s;
    for (int i = 0; i < NBUCKETS; i++)
        into->hist[i] += r->hist[i];
    if (into->first_mismatch[0] == '\0')
        memcpy(into->first_mismatch, r->first_mismatch, sizeof into->first_mismatch);
}

/* Several processes: each runs its share and writes its result to a pipe; the hold ends for all at once. */
static void run_procs(void)
{
    int rpipe[64][2], gopipe[64][2];
    pid_t pids[64];
    struct result total;

    memset(&total, 0, sizeof total);
    for (int p = 0; p < cfg.procs; p++) {
        if (pipe(rpipe[p]) < 0 || pipe(gopipe[p]) < 0) {
            perror("loadgen: pipe");
            exit(2);
        }
        pids[p] = fork();
        if (pids[p] < 0) {
            perror("loadgen: fork");
            exit(2);
        }
        if (pids[p] == 0) {
            int from = (int)((long)cfg.conns * p / cfg.procs), to = (int)((long)cfg.conns * (p + 1) / cfg.procs);
            close(rpipe[p][0]);
            close(gopipe[p][1]);
            run(from, to, cfg.hold ? rpipe[p][1] : -1, cfg.hold ? gopipe[p][0] : -1);
            if (write(rpipe[p][1], &res, sizeof res) != (ssize_t)sizeof res)
                _exit(2);
            _exit(0);
        }
        close(rpipe[p][1]);
        close(gopipe[p][0]);
    }
    if (cfg.hold) {  /* wait until every process holds its share, then end the hold everywhere */
        for (int p = 0; p < cfg.procs; p++) {
            char b;
            if (read(rpipe[p][0], &b, 1) != 1)
                continue;
        }
        sleep((unsigned)cfg.duration);
        for (int p = 0; p < cfg.procs; p++)
            if (write(gopipe[p][1], "g", 1) != 1)
                continue;
    }
    for (int p = 0; p < cfg.procs; p++) {
        struct result r = { 0 };
        size_t got = 0;
        while (got < sizeof r) {
            ssize_t k = read(rpipe[p][0], (char *)&r + got, sizeof r - got);
            if (k <= 0)
                break;
            got += (size_t)k;
        }
        if (got == sizeof r)
            merge(&total, &r);
        else
            total.errors++;
        waitpid(pids[p], NULL, 0);
    }
    res = total;
}

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: loadgen --port PORT [options]\n"
            "  --host ADDR          server address (IPv4, default 127.0.0.1)\n"
            "  -c, --connections N  connections (default 1); in connect mode: slots\n"
            "  -s, --size BYTES     message size (default 64)\n"
            "  --mode M             pingpong (default), pipeline, or connect (connect, one message, close; again)\n"
            "  --depth K            messages in flight per connection in pipeline mode (default 8, max %d)\n"
            "  -d, --duration S     seconds of load (default 5); with --hold: seconds held idle\n"
            "  -n, --messages N     messages per connection, instead of a duration (connect mode: per slot)\n"
            "  --hold               connect all, one echo each, hold idle, one more echo each\n"
            "  --procs P            split the connections over P processes (default 1)\n"
            "  --src-range K        spread over source addresses 127.0.0.1..127.0.0.K\n"
            "  --connect-rate R     at most R new connections per second (default: no limit)\n"
            "  --timeout S          a connect or an echo that takes longer fails (default 10)\n"
            "  --give-up S          if no connection is echoed within S s of the start, fail them all then\n"
            "  --allow-refused      refused connections do not make the run fail\n"
            "  --json               one JSON object on stdout\n"
            "Exit status: 0 all verified, 1 some failure, 2 bad usage.\n", MAX_DEPTH);
}

static void bad(const char *what, const char *value)
{
    fprintf(stderr, "loadgen: invalid %s '%s'\n", what, value);
    usage(stderr);
    exit(2);
}

static double number(const char *s, double min, double max, const char *what)
{
    char *end;
    double v = strtod(s, &end);

    if (end == s || *end != '\0' || v < min || v > max)
        bad(what, s);
    return v;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "host", required_argument, 0, 'H' }, { "port", required_argument, 0, 'p' },
        { "connections", required_argument, 0, 'c' }, { "size", required_argument, 0, 's' },
        { "mode", required_argument, 0, 'm' }, { "depth", required_argument, 0, 'k' },
        { "duration", required_argument, 0, 'd' }, { "messages", required_argument, 0, 'n' },
        { "hold", no_argument, 0, 'o' }, { "procs", required_argument, 0, 'P' },
        { "src-range", required_argument, 0, 'r' }, { "connect-rate", required_argument, 0, 'R' },
        { "timeout", required_argument, 0, 't' }, { "allow-refused", no_argument, 0, 'a' },
        { "give-up", required_argument, 0, 'g' },
        { "json", no_argument, 0, 'j' }, { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 } };
    int opt, pipeline = 0, depth_set = 0, duration_set = 0, status;
    struct rlimit rl;
    struct sigaction sa;

    cfg.duration = 5;
    while ((opt = getopt_long(argc, argv, "c:s:d:n:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'H': cfg.host = optarg; break;
        case 'p': cfg.port = (int)number(optarg, 1, 65535, "port"); break;
        case 'c': cfg.conns = (int)number(optarg, 1, 1000000, "connection count"); break;
        case 's': cfg.size = (int)number(optarg, 1, 1 << 30, "message size"); break;
        case 'm':  /* the last --mode wins */
            pipeline = strcmp(optarg, "pipeline") == 0;
            cfg.connect_mode = strcmp(optarg, "connect") == 0;
            if (!pipeline && !cfg.connect_mode && strcmp(optarg, "pingpong") != 0)
                bad("mode", optarg);
            break;
        case 'k': cfg.depth = (int)number(optarg, 1, MAX_DEPTH, "depth"); depth_set = 1; break;
        case 'd': cfg.duration = number(optarg, 0, 86400, "duration"); duration_set = 1; break;
        case 'n': cfg.messages = (long)number(optarg, 1, 1e9, "message count"); break;
        case 'o': cfg.hold = 1; break;
        case 'P': cfg.procs = (int)number(optarg, 1, 64, "process count"); break;
        case 'r': cfg.src_range = (int)number(optarg, 1, 254, "source range"); break;
        case 'R': cfg.rate = number(optarg, 0, 1e7, "connect rate"); break;
        case 't': cfg.timeout = number(optarg, 0.1, 3600, "timeout"); break;
        case 'a': cfg.allow_refused = 1; break;
        case 'g': cfg.give_up = number(optarg, 0.1, 3600, "give-up time"); break;
        case 'j': cfg.json = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc)
        bad("argument", argv[optind]);
    if (cfg.port == 0) {
        fprintf(stderr, "loadgen: --port is required\n");
        usage(stderr);
        return 2;
    }
    if (pipeline && !depth_set)
        cfg.depth = 8;
    if (!pipeline)
        cfg.depth = 1;
    if (cfg.messages > 0 && duration_set && !cfg.hold) {
        fprintf(stderr, "loadgen: give --duration or --messages, not both\n");
        return 2;
    }
    if (cfg.hold && cfg.connect_mode) {
        fprintf(stderr, "loadgen: --hold keeps connections open, --mode connect closes them: not both\n");
        return 2;
    }
    if (cfg.procs > cfg.conns)
        cfg.procs = cfg.conns;

    /* As many descriptors as allowed; say so if this process's share cannot fit. */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        if ((rlim_t)(cfg.conns / cfg.procs + 16) > rl.rlim_cur) {
            fprintf(stderr, "loadgen: %d connections per process exceed the descriptor limit (%lu): use --procs\n",
                    cfg.conns / cfg.procs, (unsigned long)rl.rlim_cur);
            return 2;
        }
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (cfg.procs > 1)
        run_procs();
    else
        run(0, cfg.conns, -1, -1);

    if (res.no_port > 0)  /* once, for all processes: each connect that hit it is counted in "errors" */
        fprintf(stderr, "loadgen: %llu connects found no free local port (EADDRNOTAVAIL: ephemeral ports "
                "to this server used up, TIME_WAIT included); use --src-range K or --connect-rate R\n",
                (unsigned long long)res.no_port);
    if (cfg.json) {
        printf("{\"connections\": %llu, \"established\": %llu, \"echoed\": %llu, \"refused\": %llu, \"timeouts\": %llu, "
               "\"errors\": %llu, \"closed_early\": %llu, \"mismatches\": %llu, \"messages\": %llu, "
               "\"bytes\": %llu, \"elapsed_s\": %.3f, \"msgs_per_s\": %.1f, \"conns_done\": %llu, "
               "\"conns_per_s\": %.1f, \"p50_us\": %llu, "
               "\"p90_us\": %llu, \"p99_us\": %llu, \"max_us\": %llu, \"peak_open\": %llu, "
               "\"first_mismatch\": \"%s\"}\n",
               (unsigned long long)res.connections, (unsigned long long)res.established,
               (unsigned long long)res.echoed, (unsigned long long)res.refused, (unsigned long long)res.timeouts,
               (unsigned long long)res.errors, (unsigned long long)res.closed_early,
               (unsigned long long)res.mismatches, (unsigned long long)res.messages,
               (unsigned long long)res.bytes, res.elapsed_s,
               res.elapsed_s > 0 ? (double)res.messages / res.elapsed_s : 0.0, (unsigned long long)res.conns_done,
               res.elapsed_s > 0 ? (double)res.conns_done / res.elapsed_s : 0.0,
               (unsigned long long)percentile(&res, 0.50), (unsigned long long)percentile(&res, 0.90),
               (unsigned long long)percentile(&res, 0.99), (unsigned long long)res.max_us,
               (unsigned long long)res.peak_open, res.first_mismatch);
    } else {
        printf("connections %llu: %llu established, %llu echoed, %llu refused, %llu timed out, %llu errors, "
               "%llu closed early, %llu mismatches (peak %llu open)\n"
               "messages %llu in %.2f s: %.0f msg/s; latency p50 %llu us, p90 %llu us, p99 %llu us, max %llu us\n",
               (unsigned long long)res.connections, (unsigned long long)res.established,
               (unsigned long long)res.echoed, (unsigned long long)res.refused, (unsigned long long)res.timeouts,
               (unsigned long long)res.errors, (unsigned long long)res.closed_early,
               (unsigned long long)res.mismatches, (unsigned long long)res.peak_open,
               (unsigned long long)res.messages, res.elapsed_s,
               res.elapsed_s > 0 ? (double)res.messages / res.elapsed_s : 0.0,
               (unsigned long long)percentile(&res, 0.50), (unsigned long long)percentile(&res, 0.90),
               (unsigned long long)percentile(&res, 0.99), (unsigned long long)res.max_us);
        if (cfg.connect_mode)
            printf("conns_done %llu: %.0f conn/s (connect, request, close); latency: connect() to last byte\n",
                   (unsigned long long)res.conns_done,
                   res.elapsed_s > 0 ? (double)res.conns_done / res.elapsed_s : 0.0);
        if (res.first_mismatch[0])
            printf("first mismatch: %s\n", res.first_mismatch);
    }
    /* Every connection echoed (or, with --allow-refused, refused), and nothing else went wrong.
     * Connect mode: every connection started, and there was one; a slot that never started
     * (--connect-rate, a short -d) failed nothing on the server's side. */
    if (cfg.connect_mode)
        status = res.echoed + (cfg.allow_refused ? res.refused : 0) == res.connections && res.connections > 0;
    else
        status = res.echoed + (cfg.allow_refused ? res.refused : 0) == (uint64_t)cfg.conns;
    status = status && res.timeouts == 0 && res.errors == 0 && res.closed_early == 0 && res.mismatches == 0 &&
             (cfg.allow_refused || res.refused == 0);
    return interrupted ? 1 : !status;
}
