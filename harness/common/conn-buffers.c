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
 * client half-closes, or pending output reaches the watermark.
 *
 * A short read (fewer bytes than asked for) means the socket was empty when
 * recv() returned: TCP hands over everything it holds up to the size asked.
 * Stopping there saves the recv() that would only say EAGAIN, so a message
 * costs two system calls, recv() and send().  Data that arrives afterwards
 * is reported again, even by edge-triggered epoll: each arrival is an edge.
 *
 * A short read says nothing of a FIN queued behind the data, though.  Level-
 * triggered loops see it on the next wait.  Edge-triggered epoll reports data
 * and FIN that arrive together as one edge, and no other would come: the
 * loop passes READABLE_TO_END when the event carries EPOLLRDHUP or EPOLLHUP,
 * and then only EAGAIN or the end of the stream stops the reading.
 */
static int conn_read(struct conn *c, int to_end)
{
    static char buf[BUF_SIZE];  /* one thread: one buffer serves every connection */

    while (!c->read_closed && c->out_len < OUT_CAP) {
        size_t room = OUT_CAP - c->out_len, want = room < sizeof buf ? room : sizeof buf;
        ssize_t nread = recv(c->fd, buf, want, 0);
        if (nread > 0) {
            log_data(c->peer, buf, (size_t)nread);
            if (conn_echo(c, buf, (size_t)nread) < 0)
                return -1;
            if ((size_t)nread < want && !to_end)
                return 0;  /* a short read: the socket is empty */
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

/* What the loop must watch: reading below the watermark, writing while output is pending. */
static int conn_wants_read(const struct conn *c) { return !c->read_closed && c->out_len < OUT_CAP; }
static int conn_wants_write(const struct conn *c) { return c->out_len > 0; }

/*
 * One readiness report for a connection: readable is 0, READABLE or
 * READABLE_TO_END (see conn_read).  Returns 1 when it is finished (an error,
 * or half-closed with everything echoed): the caller frees it.
 * After output drains, reading resumes at once, without another round
 * through the wait for a fresh "readable" report (in 07 that report would
 * come even with -e: EPOLL_CTL_MOD checks readiness again, and every report
 * carries EPOLLIN while data waits).
 */
static int conn_handle(struct conn *c, int readable, int writable)
{
    if (writable && conn_flush(c) < 0)
        return 1;
    if ((readable || writable) && conn_wants_read(c) && conn_read(c, readable == READABLE_TO_END) < 0)
        return 1;
    return c->read_closed && c->out_len == 0;
}
