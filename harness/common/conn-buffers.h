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
