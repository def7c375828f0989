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
