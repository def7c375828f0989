/*
 * 04-threadpool/server.c — un serveur d'écho avec un pool fixe de threads workers.
 *
 * Le modèle : N threads workers sont lancés une fois pour toutes ; le thread
 * principal accepte les clients et les place dans une petite file bornée ; un
 * worker libre prend le client suivant et le sert jusqu'à ce qu'il parte. Le
 * nombre de threads ne change jamais, quelle que soit la charge. La leçon,
 * c'est le revers de la médaille : avec N longues sessions en cours, le client
 * N+1 attend — connecté, ses octets mis en tampon par le noyau, et sans
 * réponse — jusqu'à ce que l'un des N parte.
 *
 * Usage : server [-p PORT] [-b ADDR] [-q] [-v] [-w N] [-h]
 *
 * Essayez : `./server -p 0 -w 2`, puis trois sessions `nc` : la troisième
 * n'obtient de réponse que lorsque l'une des deux premières quitte. La
 * vérification `pool` du banc de test compte les threads dans /proc sous 200
 * clients ; `concurrency` montre le client N+1 qui attend.
 * Comparez avec ../03-threads/server.c (un thread par client, sans limite) et
 * ../05-select/server.c (un seul thread, tous les clients).
 * Compilation : cc -pthread -o server server.c
 *
 * SQUELETTE DE DÉPART : les fonctions marquées TODO sont à écrire par vous
 * (commencez par 04.1).
 * Chaque TODO dit quoi faire ; make hint CH=04 dit comment, un indice à la fois.
 * Vérifications de la leçon : pool
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ==== shared: boilerplate.h — its helpers are defined at the end of this file; the same in every chapter (make sync) ==== */
#define BUF_SIZE    16384                    /* octets lus par recv() */
#define ADDR_STRLEN (INET6_ADDRSTRLEN + 8)   /* "[ipv6]:port" */
enum { LISTEN_REUSEPORT = 1, LISTEN_BIND_ONLY = 2 }; /* paramètre how d'open_listener(), pour 08 */
struct options {
    const char *addr;   /* -b : adresse à laquelle lier le socket */
    const char *port;   /* -p : port ; "0" laisse le noyau choisir */
    int quiet, verbose; /* -q : pas de lignes de journal par connexion ;
                           -v : journaliser chaque message reçu */
    int workers, edge;  /* -w : threads ou processus (04, 08) ;
                           -e : epoll déclenché par front (07, 08) */
};
static struct options opt;                 /* la ligne de commande, analysée par parse_options() */
static const char *log_tag = "";           /* préfixe de chaque ligne de journal ("[w1] " dans
                                              les workers de 08) */
static atomic_int stop_requested;          /* levé par SIGINT/SIGTERM (voir on_stop_signal) */
static volatile sig_atomic_t wake_fd = -1; /* ce que coupe (shutdown()) un signal d'arrêt
                                              pour réveiller la boucle principale */
static int spare_fd = -1;                  /* un descripteur de réserve, pour accept_client() */
static void parse_options(int argc, char **argv);  /* argv analysé dans opt ; exit 2 si invalide */
static void install_signal_handlers(void);         /* SIGPIPE ignoré ; SIGINT/SIGTERM arrêtent */
static int open_listener(int sock_flags, int how); /* socket, bind sur opt.addr:opt.port, listen */
static void print_ready(int listen_fd);            /* "listening on ADDR:PORT", tampon vidé */
static int accept_client(int listen_fd, struct sockaddr_storage *peer, int flags); /* anti-EMFILE */
static void format_addr(const struct sockaddr_storage *ss, char *out, size_t outlen);
static void log_conn(char sign, const char *peer, long active);    /* "+ peer (3 active)" */
static void log_conn_error(const char *what, const char *peer);    /* échec sur une connexion */
static void log_data(const char *peer, const char *buf, size_t len); /* -v : chaque message */
static void die(const char *what);                 /* "server: what: strerror(errno)", exit 1 */
/* ==== end shared: boilerplate.h ==== */

/* ==== shared: echo-session.h — 01's echo session (make sync) ==== */
/* La leçon de 01, que ce chapitre réutilise : définie à la fin de ce fichier, copiée de 01. */
static void echo_session(int conn_fd, const char *peer); /* écho jusqu'à la fermeture ou un arrêt */
/* ==== end shared: echo-session.h ==== */

/*
 * La file entre le thread accepteur et les workers : un tampon circulaire de
 * clients acceptés. Elle est petite exprès. Quand elle est pleine, le thread
 * accepteur cesse d'appeler accept(), et les nouveaux clients attendent dans le
 * backlog d'écoute du noyau plutôt que dans notre mémoire : c'est la
 * contre-pression, et elle ne coûte rien au serveur.
 */
#define QUEUE_CAP 16

struct job {
    int fd;                  /* le socket du client accepté */
    char peer[ADDR_STRLEN];  /* pour le journal */
};

static struct job queue[QUEUE_CAP];  /* tampon circulaire, protégé par lock */
static int q_head, q_count;          /* première tâche, nombre de tâches (lock) */
static int *serving;                 /* par worker : le fd qu'il sert, ou -1 (lock) */
static long active;                  /* clients en cours de service, N au plus (lock) */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t not_empty = PTHREAD_COND_INITIALIZER;  /* les workers attendent une tâche */
static pthread_cond_t not_full;  /* le thread accepteur attend une place (sur CLOCK_MONOTONIC :
                                    voir main) */

/*
 * Un worker : prendre le client suivant, le servir, recommencer — jusqu'à
 * l'arrêt du serveur. Il dort dans pthread_cond_wait() tant que la file est
 * vide : attendre ne dépense aucun CPU. La boucle while (et non un if) reteste
 * la condition après chaque réveil, parce que les réveils peuvent être
 * intempestifs et qu'un autre worker a pu prendre la tâche avant lui.
 */
static void *worker(void *arg)
{
    /*
     * TODO(04.3): un worker : prendre le client suivant dans la file, le
     * servir, recommencer, jusqu'à un arrêt ; puis rendre la main. arg est son
     * indice (de 0 à opt.workers - 1). La file, serving[] et active ne changent
     * que sous lock, jamais tenu pendant une session. Inactif, il dort ; après
     * un arrêt, il ne prend plus aucun client. Pendant qu'il sert,
     * serving[index] contient le socket, qu'il est seul à fermer, en
     * journalisant « + » et « - ». Vérifié par : pool, concurrency, races.
     * Indices : make hint CH=04 (7-10).
     * Lire : le texte, « Thread Pool (Pool de Threads) » (worker_thread()) et
     * « Solution : Mutex » ; COURSE.fr.md,
     * « 04-threadpool — un pool fixe et une file bornée ».
     */
    (void)arg;  /* ces conversions font taire -Werror sur ce que vous n'utilisez pas encore */
    (void)active;
    (void)echo_session;
    (void)log_conn;
    return NULL;
}

/*
 * Attend que la file ait de la place. Un gestionnaire de signal ne doit toucher
 * ni à un mutex ni à une variable de condition, donc un signal d'arrêt ne peut
 * pas réveiller directement cette attente ; une attente temporisée reteste le
 * drapeau d'arrêt quatre fois par seconde, et seulement tant que la file est
 * pleine (chaque réveil coûte quelques microsecondes : ce n'est pas de
 * l'attente active).
 */
static void wait_for_room(void)
{
    /*
     * TODO(04.2): la contre-pression, côté thread accepteur : rendre la main,
     * verrou relâché, dès que la file a de la place pour un client de plus ou
     * qu'un arrêt est demandé ; tant qu'elle est pleine, les clients attendent
     * dans le backlog du noyau, pas dans notre mémoire. Aucun signal ne peut
     * réveiller cette attente, et pourtant un arrêt est vu en une fraction de
     * seconde, même si l'on recule l'horloge murale ; attendre ne coûte pas de
     * CPU. Vérifié par : pool.
     * Indices : make hint CH=04 (4-6).
     * Lire : le texte, « Thread Pool (Pool de Threads) » (son thread accepteur
     * n'attend jamais de place) ; COURSE.fr.md,
     * « 04-threadpool — un pool fixe et une file bornée ».
     */
    (void)not_full;  /* ces conversions font taire -Werror sur ce que vous n'utilisez pas encore */
    while (!stop_requested)
        pause();
}

static void enqueue(int conn_fd, const char *peer)
{
    /*
     * TODO(04.1): ajouter un client accepté en queue du tampon circulaire (son
     * socket, une copie de peer : le tampon de l'appelant va disparaître) et
     * réveiller pour lui un worker inactif, le tout sous lock. À l'entrée, il y
     * a de la place (04.2), et seul main() ajoute. Tant que vous ne l'avez pas
     * écrite, le client est refusé.
     * Vérifié par : echo, races (avec 04.3).
     * Indices : make hint CH=04 (1-3).
     * Lire : le texte, « Thread Pool (Pool de Threads) » (son queue_push(),
     * dans la file qu'il ne montre pas) ; COURSE.fr.md,
     * « 04-threadpool — un pool fixe et une file bornée ».
     */
    (void)peer;  /* ces conversions font taire -Werror sur ce que vous n'utilisez pas encore */
    (void)queue;
    (void)q_head;
    (void)q_count;
    (void)lock;
    (void)not_empty;
    close(conn_fd);
}

/*
 * Arrêt : couper les connexions en cours de service (le recv() de leurs workers
 * renvoie 0), fermer les clients encore en file (jamais servis : pas de ligne
 * de journal), réveiller chaque worker inactif, et les joindre tous.
 */
static void stop_pool(pthread_t *workers)
{
    /*
     * TODO(04.4): arrêter le pool (main() a fermé le socket d'écoute) ; rendre
     * la main une fois chaque worker terminé, dans les 2 s du contrat. Les
     * sessions en cours se terminent maintenant, client occupé ou inactif,
     * chacune toujours fermée et journalisée « - » par son propre worker ; les
     * clients en file, jamais servis, sont fermés sans journal et la file
     * laissée vide ; chaque worker inactif voit l'arrêt ; tous sont joints.
     * Vérifié par : shutdown, races.
     * Indices : make hint CH=04 (11-13).
     * Lire : le texte, « Thread Détaché vs Joinable » (pourquoi joindre) ;
     * COURSE.fr.md, « 04-threadpool — un pool fixe et une file bornée ».
     */
    (void)workers;  /* ces conversions font taire -Werror sur ce que vous n'utilisez pas encore */
}

/* Ce que ce chapitre ajoute à la ligne de commande commune (voir usage()). */
#define CHAPTER_NAME     "04-threadpool: N worker threads and a bounded queue"
#define CHAPTER_OPTS     "w:"
#define CHAPTER_SYNOPSIS " [-w N]"
#define CHAPTER_HELP     "  -w N     worker threads in the pool (default 8)\n"
#define DEFAULT_WORKERS  8

int main(int argc, char **argv)
{
    sigset_t stop_signals, old;
    pthread_t *workers;
    int listen_fd, rc;

    parse_options(argc, argv);
    install_signal_handlers();
    spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (spare_fd < 0)
        die("open /dev/null");
    listen_fd = open_listener(0, 0);
    workers = calloc((size_t)opt.workers, sizeof *workers);
    serving = malloc((size_t)opt.workers * sizeof *serving);
    if (workers == NULL || serving == NULL)
        die("malloc");
    /*
     * L'attente temporisée du thread accepteur (wait_for_room) mesure le temps
     * sur CLOCK_MONOTONIC : avec l'horloge par défaut, CLOCK_REALTIME, une
     * horloge murale reculée d'une heure l'empêcherait de voir un arrêt pendant
     * une heure.
     */
    pthread_condattr_t attr;
    if (pthread_condattr_init(&attr) != 0 || pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) != 0 ||
        pthread_cond_init(&not_full, &attr) != 0)
        die("pthread_cond_init");
    pthread_condattr_destroy(&attr);

    /*
     * Les workers naissent avec les signaux d'arrêt bloqués (comme en 03), si
     * bien que seul le thread principal les reçoit, et que le shutdown(wake_fd)
     * du gestionnaire réveille son accept().
     */
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, &old);
    for (int i = 0; i < opt.workers; i++) {
        serving[i] = -1;
        rc = pthread_create(&workers[i], NULL, worker, (void *)(intptr_t)i);
        if (rc != 0) {
            errno = rc;
            die("pthread_create");
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    print_ready(listen_fd);
    wake_fd = listen_fd;

    while (!stop_requested) {
        struct sockaddr_storage peer_addr;
        char peer[ADDR_STRLEN];
        int conn_fd;

        wait_for_room();  /* contre-pression : pas d'accept() tant que la file est pleine */
        if (stop_requested)
            break;
        conn_fd = accept_client(listen_fd, &peer_addr, 0);
        if (conn_fd < 0) {
            if (errno != EINTR && errno != EMFILE && !stop_requested)
                perror("server: accept");
            continue;
        }
        format_addr(&peer_addr, peer, sizeof peer);
        enqueue(conn_fd, peer);
    }

    wake_fd = -1;
    close(listen_fd);
    stop_pool(workers);
    free(workers);
    free(serving);
    close(spare_fd);
    fprintf(stderr, "shutting down\n");
    return 0;
}

/* ==== shared: boilerplate.c — the same in every chapter (make sync writes it from harness/common) ==== */
#define DEFAULT_PORT "8080"      /* le port qu'utilise le texte du cours */
#define DEFAULT_ADDR "127.0.0.1" /* boucle locale : sûr sur un portable ; -b 0.0.0.0 l'expose */

static struct options opt = { DEFAULT_ADDR, DEFAULT_PORT, 0, 0, DEFAULT_WORKERS, 0 };

/*
 * Signaux d'arrêt. Le gestionnaire ne fait que des choses async-signal-safe :
 * il lève un drapeau et coupe wake_fd (shutdown()). Le drapeau est un atomique
 * C11 plutôt que le classique volatile sig_atomic_t, qui n'est sûr qu'entre un
 * gestionnaire et le thread qu'il interrompt : en 03 et 04, d'autres threads
 * lisent aussi le drapeau.
 * Lever un drapeau ne suffit pas : si le signal tombe juste après que la
 * boucle principale a testé le drapeau et juste avant qu'elle ne se bloque
 * dans accept() (ou select(), poll(), recv()...), rien ne la réveillerait.
 * Sous Linux, shutdown() sur le descripteur qu'attend cet appel le réveille :
 * accept() échoue (EINVAL), recv() retourne 0, select() signale le socket
 * lisible, et poll() et epoll_wait() signalent POLLHUP/EPOLLHUP mais pas
 * POLLIN (mesuré sous Linux 6.18 : une boucle qui ne regarde que POLLIN
 * continuerait de dormir). POSIX n'en dit rien : sous FreeBSD, shutdown() sur
 * un socket d'écoute échoue avec ENOTCONN mais réveille pourtant accept()
 * (ECONNABORTED), select(), poll() et kqueue (son test
 * tests/sys/kern/listener_wakeup.c), et macOS, dit-on, ne réveille rien. Le
 * code portable écrit plutôt dans un tube vers soi-même (self-pipe), ou, sous
 * Linux, lit le signal depuis un signalfd. shutdown() figure dans la liste
 * POSIX des fonctions async-signal-safe.
 */
static void on_stop_signal(int signo)
{
    int saved_errno = errno;  /* un gestionnaire ne doit pas changer l'errno du code interrompu */

    (void)signo;
    stop_requested = 1;
    if (wake_fd >= 0)
        shutdown(wake_fd, SHUT_RDWR);
    errno = saved_errno;
}

/*
 * Les échecs de mise en place terminent le programme : on affiche ce qui a
 * échoué, puis exit 1. "%m" est le message d'errno, que le printf de la glibc
 * écrit via strerror_r() dans un tampon à lui : c'est sûr dans n'importe quel
 * thread (03 et 04 journalisent depuis les leurs), alors que strerror() ne
 * l'est pas — il peut retourner un tampon partagé par tous les threads
 * (strerror(3) : MT-Unsafe race:strerror).
 */
static void die(const char *what)
{
    fprintf(stderr, "%sserver: %s: %m\n", log_tag, what);
    exit(1);
}

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: server [-p PORT] [-b ADDR] [-q] [-v]%s [-h]\n"
            "%s\n"
            "  -p PORT  port to listen on (default %s; 0: any free port)\n"
            "  -b ADDR  IPv4 or IPv6 address to bind (default %s)\n"
            "  -q       quiet: no per-connection log lines\n"
            "  -v       verbose: also log every message received\n"
            "%s"
            "  -h       show this help and exit\n",
            CHAPTER_SYNOPSIS, CHAPTER_NAME, DEFAULT_PORT, DEFAULT_ADDR, CHAPTER_HELP);
}

/* Ligne de commande invalide : une ligne qui dit ce qui ne va pas, l'usage, exit 2. */
__attribute__((format(printf, 1, 2), noreturn))
static void usage_error(const char *fmt, ...)
{
    va_list ap;

    fputs("server: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    usage(stderr);
    exit(2);
}

/* Analyse un nombre décimal complet dans [min, max] ; -1 si s est autre chose. */
static long parse_number(const char *s, long min, long max)
{
    char *end;
    long n;

    errno = 0;
    n = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || n < min || n > max)
        return -1;
    return n;
}

static void parse_options(int argc, char **argv)
{
    unsigned char probe[sizeof(struct in6_addr)];
    int c;

    opterr = 0;  /* nous affichons nos propres messages */
    while ((c = getopt(argc, argv, ":p:b:qvh" CHAPTER_OPTS)) != -1) {
        switch (c) {
        case 'p':
            if (parse_number(optarg, 0, 65535) < 0)
                usage_error("invalid port '%s' (expected 0 to 65535)", optarg);
            opt.port = optarg;
            break;
        case 'b':
            if (inet_pton(AF_INET, optarg, probe) != 1 && inet_pton(AF_INET6, optarg, probe) != 1)
                usage_error("invalid address '%s' (expected an IPv4 or IPv6 literal)", optarg);
            opt.addr = optarg;
            break;
        case 'q': opt.quiet = 1; break;
        case 'v': opt.verbose = 1; break;
        case 'w':
            opt.workers = (int)parse_number(optarg, 1, 1024);
            if (opt.workers < 0)
                usage_error("invalid worker count '%s' (expected 1 to 1024)", optarg);
            break;
        case 'e': opt.edge = 1; break;
        case 'h': usage(stdout); exit(0);
        case ':': usage_error("option -%c needs a value", optopt); break;
        default: usage_error("unknown option -%c", optopt); break;
        }
    }
    if (optind < argc)
        usage_error("unexpected argument '%s'", argv[optind]);
}

/* Forme texte d'une adresse de socket : "127.0.0.1:41234" ou "[::1]:41234". */
static void format_addr(const struct sockaddr_storage *ss, char *out, size_t outlen)
{
    char host[INET6_ADDRSTRLEN] = "?";

    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a6->sin6_addr, host, sizeof host);
        snprintf(out, outlen, "[%s]:%u", host, (unsigned)ntohs(a6->sin6_port));
    } else {
        const struct sockaddr_in *a4 = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a4->sin_addr, host, sizeof host);
        snprintf(out, outlen, "%s:%u", host, (unsigned)ntohs(a4->sin_port));
    }
}

/*
 * Ouvre le socket d'écoute sur opt.addr:opt.port. sock_flags va à socket()
 * (SOCK_NONBLOCK dans les chapitres à boucle événementielle) ; how vaut 0, ou
 * LISTEN_REUSEPORT et LISTEN_BIND_ONLY pour 08 (ses workers partagent le port,
 * son maître le détient sans écouter). Le backlog est SOMAXCONN, pas le 10 du
 * texte : avec 10, une rafale de clients fait déborder la file d'attente du
 * noyau, et le surplus reste bloqué une seconde ou plus en retransmissions de
 * SYN.
 */
static int open_listener(int sock_flags, int how)
{
    struct addrinfo hints, *ai;
    char where[ADDR_STRLEN + 16];
    int fd, one = 1, rc;

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
    rc = getaddrinfo(opt.addr, opt.port, &hints, &ai);
    if (rc != 0) {
        fprintf(stderr, "server: getaddrinfo %s: %s\n", opt.addr, gai_strerror(rc));
        exit(1);
    }
    fd = socket(ai->ai_family, ai->ai_socktype | sock_flags | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket");
    /* Redémarrer aussitôt sur le même port, même avec d'anciennes connexions en TIME_WAIT. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        die("setsockopt SO_REUSEADDR");
    if ((how & LISTEN_REUSEPORT) && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
        die("setsockopt SO_REUSEPORT");
    snprintf(where, sizeof where, ai->ai_family == AF_INET6 ? "bind [%s]:%s" : "bind %s:%s",
             opt.addr, opt.port);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0)
        die(where);
    if (!(how & LISTEN_BIND_ONLY) && listen(fd, SOMAXCONN) < 0)
        die("listen");
    freeaddrinfo(ai);
    return fd;
}

/* La ligne « prêt » qu'attend le banc de test, avec le vrai port (-p 0). */
static void print_ready(int listen_fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char where[ADDR_STRLEN];

    if (getsockname(listen_fd, (struct sockaddr *)&ss, &len) < 0)
        die("getsockname");
    format_addr(&ss, where, sizeof where);
    printf("listening on %s\n", where);
    if (fflush(stdout) == EOF)
        die("stdout");
}

/*
 * Les signaux, installés avant que quoi que ce soit puisse mal tourner.
 * SIGPIPE est ignoré pour qu'une écriture vers un client parti échoue avec
 * EPIPE, sur cette seule connexion, au lieu de tuer tout le serveur. Pas de
 * SA_RESTART sur les signaux d'arrêt : un appel bloqué retourne EINTR et la
 * boucle peut tester le drapeau.
 */
static void install_signal_handlers(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = SIG_IGN;
    if (sigaction(SIGPIPE, &sa, NULL) < 0)
        die("sigaction SIGPIPE");
    sa.sa_handler = on_stop_signal;
    if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0)
        die("sigaction SIGINT/SIGTERM");
}

/* "+ 127.0.0.1:41234 (3 active)" à la connexion, "-" à la déconnexion ; -q les fait taire. */
static void log_conn(char sign, const char *peer, long active)
{
    if (!opt.quiet)
        fprintf(stderr, "%s%c %s (%ld active)\n", log_tag, sign, peer, active);
}

/* Échec sur une connexion : le journaliser (sauf -q) ; l'appelant ne ferme que cette connexion. */
static void log_conn_error(const char *what, const char *peer)
{
    if (!opt.quiet)
        fprintf(stderr, "%sserver: %s %s: %m\n", log_tag, what, peer);  /* %m : voir die() */
}

/*
 * -v : une ligne par message reçu, en caractères imprimables seulement (les
 * clients envoient aussi des données binaires).
 */
static void log_data(const char *peer, const char *buf, size_t len)
{
    char shown[41];
    size_t i;

    if (!opt.verbose)
        return;
    for (i = 0; i < len && i < sizeof shown - 1; i++)
        shown[i] = (buf[i] >= 0x20 && buf[i] < 0x7f) ? buf[i] : '.';
    shown[i] = '\0';
    fprintf(stderr, "%s  %s: %zu bytes \"%s%s\"\n", log_tag, peer, len, shown, len > i ? "..." : "");
}

/*
 * Un accept() qui survit au manque de descripteurs. Quand le processus détient
 * sa limite de descripteurs, accept() échoue avec EMFILE (ENFILE : tout le
 * système) et laisse le client dans la file, si bien que le socket d'écoute
 * reste lisible et qu'une boucle naïve tourne à vide à 100 % du CPU. Un
 * descripteur de réserve, ouvert au démarrage, est rendu un instant pour
 * qu'accept() puisse prendre le client dans la place libérée. Si la réserve
 * peut être rouverte, des descripteurs ont été libérés entre-temps et le
 * client est servi ; sinon, il est fermé aussitôt : il apprend qu'il a été
 * refusé, et la file avance. Retourne le nouveau descripteur, ou -1 avec errno
 * positionné (EMFILE quand un client a été refusé).
 */
static int accept_client(int listen_fd, struct sockaddr_storage *peer, int flags)
{
    socklen_t len = sizeof *peer;
    int fd, saved_errno;

    fd = accept4(listen_fd, (struct sockaddr *)peer, &len, flags | SOCK_CLOEXEC);
    if (fd >= 0 || (errno != EMFILE && errno != ENFILE) || spare_fd < 0)
        return fd;
    close(spare_fd);
    len = sizeof *peer;
    fd = accept4(listen_fd, (struct sockaddr *)peer, &len, flags | SOCK_CLOEXEC);
    saved_errno = errno;
    spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || spare_fd >= 0) {
        errno = saved_errno;  /* EAGAIN dans une boucle non bloquante : personne n'attendait */
        return fd;
    }
    close(fd);
    spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    fprintf(stderr, "%sserver: accept: out of descriptors, a client was turned away\n", log_tag);
    errno = EMFILE;
    return -1;
}
/* ==== end shared: boilerplate.c ==== */

/* ==== shared: echo-session — 01's lesson, copied from 01-iterative/server.c (make sync) ==== */

/*
 * Envoie tout buf, quel que soit le nombre d'appels nécessaires. send() peut
 * n'écrire qu'une partie du tampon (une écriture partielle) quand le tampon
 * d'émission du socket est presque plein, ou être interrompu par un signal
 * avant d'avoir rien écrit (EINTR) : les deux cas sont normaux, et les exemples
 * du texte les ignorent. MSG_NOSIGNAL : un pair disparu donne EPIPE au lieu de
 * SIGPIPE (ceinture et bretelles : SIGPIPE est aussi ignoré).
 */
static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t nwritten = send(fd, buf, len, MSG_NOSIGNAL);
        if (nwritten < 0) {
            if (errno == EINTR && !stop_requested)
                continue;
            return -1;
        }
        buf += nwritten;
        len -= (size_t)nwritten;
    }
    return 0;
}

/*
 * Renvoie en écho tout ce que le client envoie, jusqu'à ce qu'il ferme son côté
 * (recv() renvoie 0), qu'une erreur mette fin à la connexion ou que l'on
 * demande au serveur de s'arrêter. Chaque octet reçu a été réécrit avant le
 * recv() suivant, si bien qu'un client qui fait une demi-fermeture
 * (shutdown(SHUT_WR)) récupère toutes ses données, puis la fin de flux (EOF)
 * quand l'appelant ferme le socket.
 */
static void echo_session(int conn_fd, const char *peer)
{
    char buf[BUF_SIZE];

    while (!stop_requested) {
        ssize_t nread = recv(conn_fd, buf, sizeof buf, 0);
        if (nread == 0)
            break;  /* le client a fermé son côté */
        if (nread < 0) {
            if (errno == EINTR)
                continue;  /* un signal : la boucle reteste stop_requested */
            log_conn_error("recv", peer);
            break;
        }
        log_data(peer, buf, (size_t)nread);
        if (write_all(conn_fd, buf, (size_t)nread) < 0) {
            if (!stop_requested)
                log_conn_error("send", peer);
            break;
        }
    }
}

/* ==== end shared: echo-session ==== */
