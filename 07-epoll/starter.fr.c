/*
 * 07-epoll/server.c — un serveur d'écho à un seul thread, sur epoll.
 *
 * Le modèle : un seul thread, une seule boucle événementielle. Le noyau garde
 * l'ensemble des sockets surveillés (epoll_ctl) et epoll_wait() ne retourne
 * que ceux qui sont prêts : chaque réveil coûte donc en proportion de
 * l'activité, et non du nombre de connexions ; 10 000 clients presque tous
 * inactifs ne coûtent presque rien. L'état de chaque connexion vit dans une
 * struct conn qu'epoll rend dans event.data.ptr. Déclenchement par niveau par
 * défaut ; -e passe au déclenchement par front, où un signalement arrive une
 * fois par changement : chaque acceptation doit continuer jusqu'à EAGAIN, et
 * chaque lecture jusqu'à EAGAIN ou une lecture partielle (voir read_to_end()
 * pour le FIN).
 *
 * Usage : server [-p PORT] [-b ADDR] [-q] [-v] [-e] [-h]
 *
 * Essayez : `./harness/run 07 --only limits` maintient 10 000 connexions
 * (C10K) et fait l'écho sur chacune ; `robustness` montre qu'un client qui ne
 * lit jamais ne ralentit personne d'autre.
 * Comparez avec ../06-poll/server.c (la même boucle, avec l'ensemble
 * reconstruit par le noyau à chaque appel) et ../08-reuseport-hybrid/server.c
 * (cette boucle dans N processus).
 * Compilation : cc -pthread -o server server.c
 *
 * SQUELETTE DE DÉPART : les fonctions marquées TODO sont à écrire par vous
 * (commencez par 07.1).
 * Chaque TODO dit quoi faire ; make hint CH=07 dit comment, un indice à la fois.
 * Vérifications de la leçon : parallel,limits
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
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

/* ==== shared: conn-buffers.h — defined at the end of this file; the same in 05-08 (make sync) ==== */
#define OUT_CAP (64 * 1024)  /* sortie en attente par connexion : au-delà, on ne la lit plus */

struct conn {
    int fd;                    /* le socket du client, non bloquant */
    char peer[ADDR_STRLEN];    /* "127.0.0.1:41234", pour le journal */
    char *out;                 /* reçu, pas encore renvoyé ; NULL tant que vide */
    size_t out_len;            /* octets dans out (au plus OUT_CAP) */
    int read_closed;           /* demi-fermeture du client : tout renvoyer, puis fermer */
    unsigned watching;         /* les événements que la boucle surveille en ce moment sur fd */
    struct conn *prev, *next;  /* dans la liste de toutes les connexions */
};
static struct conn *all_conns;  /* toutes les connexions ouvertes, pour l'arrêt */
static long active;             /* leur nombre */

static struct conn *conn_new(int fd, const char *peer);       /* journalise "+" ;
                                                                 NULL si plus de mémoire */
static void conn_free(struct conn *c);                         /* ferme, journalise "-", libère :
                                                                  la seule fin d'une connexion */
static int conn_read(struct conn *c);     /* lit et renvoie : -1 morte ; 1 si lecture partielle */
static int conn_handle(struct conn *c, int readable, int writable); /* 1 : terminée, à libérer */
static int conn_wants_read(const struct conn *c);              /* sous le seuil haut, non fermée */
static int conn_wants_write(const struct conn *c);             /* sortie en attente */
/* ==== end shared: conn-buffers.h ==== */

/* ==== shared: epoll-loop — this chapter's lesson, which 08 reuses: make sync copies it there ==== */

#define MAX_EVENTS 256  /* signalements de disponibilité lus par appel à epoll_wait() */

static int epoll_fd;
static char listener_mark;  /* data.ptr du socket d'écoute : aucune conn n'a cette adresse */

/*
 * Surveille exactement ce dont la connexion a besoin maintenant (EPOLLOUT
 * seulement tant qu'une sortie est en attente).
 */
static int watch(struct conn *c, int op)
{
    /*
     * TODO(07.1): faire surveiller par epoll, sur c->fd, ce dont c a besoin
     * maintenant, et rien de plus (op : c est nouvelle, ou déjà surveillée).
     * Chaque signalement qu'epoll_wait() rend pour elle doit mener à c
     * elle-même, sans aucun coût. Retourne 0, ou -1 après avoir journalisé
     * l'échec (l'appelant libère alors c).
     * - surveillée en lecture exactement tant que conn_wants_read(c), en
     *   écriture exactement tant que conn_wants_write(c) ; avec -e (opt.edge),
     *   déclenchée par front, et avertie quand le client ferme son sens
     *   d'écriture (voir TODO 07.4) ;
     * - la boucle l'appelle après chaque événement : quand rien n'a changé,
     *   elle ne fait aucun appel système (c->watching retient ce qu'epoll
     *   surveille).
     * Vérifié par : idle-cpu (pas de boucle qui tourne à vide), robustness, echo
     * avec -e.
     * Indices : make hint CH=07 (1-3).
     * Lire : le texte, « API epoll() » ;
     * COURSE.fr.md, « 07-epoll — un seul thread, epoll (C10K) ».
     */
    (void)c;  /* ces conversions font taire -Werror sur ce que vous n'utilisez pas encore */
    (void)op;
    (void)epoll_fd;
    (void)conn_wants_read;
    (void)conn_wants_write;
    return -1;
}

/*
 * Accepte tous les clients en attente. Jusqu'à EAGAIN : obligatoire en mode
 * déclenché par front (un signalement peut valoir pour plusieurs clients), et
 * sans inconvénient en mode déclenché par niveau. accept_client() donne des
 * sockets non bloquants et fermés à l'exec (accept4) et survit à EMFILE : il
 * refuse un client et indique EMFILE, après quoi nous continuons — quand plus
 * personne n'attend, il indique EAGAIN et nous arrêtons.
 */
static void accept_clients(int listen_fd)
{
    /*
     * TODO(07.2): accepter tous les clients en attente sur listen_fd et revenir
     * quand il n'en reste plus ; ne jamais attendre. Chacun devient un socket
     * non bloquant avec sa struct conn (conn_new()), surveillé (watch()) ; une
     * connexion qui ne peut pas être surveillée est libérée.
     * - avec -e, un signalement peut valoir pour plusieurs clients, et aucun
     *   autre signalement ne vient pour ceux restés dans la file ;
     * - un client parti avant d'être accepté, un signal, ou le manque de
     *   descripteurs (accept_client() refuse alors ce client) ne doivent pas
     *   interrompre l'acceptation, ni la faire tourner à vide.
     * Vérifié par : parallel, limits (10 000 clients), emfile.
     * Indices : make hint CH=07 (4-6).
     * Lire : le texte, « Exemple avec epoll() » ;
     * COURSE.fr.md, « 07-epoll — un seul thread, epoll (C10K) ».
     */
    (void)listen_fd;  /* ces conversions font taire -Werror sur ce que vous n'utilisez pas encore */
    (void)accept_client;
    (void)conn_new;
    (void)conn_free;
    (void)watch;
}

/* L'instance epoll, qui surveille le socket d'écoute (déclenchée par front avec -e). */
static void event_loop_open(int listen_fd)
{
    /*
     * TODO(07.3): créer l'instance epoll (epoll_fd, non héritée lors d'un exec)
     * et lui faire surveiller listen_fd en lecture (déclenchement par front avec
     * -e), d'une façon que la boucle puisse distinguer du signalement de chaque
     * connexion (listener_mark). Un échec ici est fatal (die()).
     * Indices : make hint CH=07 (7-9).
     * Lire : le texte, « API epoll() » ;
     * COURSE.fr.md, « 07-epoll — un seul thread, epoll (C10K) ».
     */
    (void)listen_fd;  /* ces conversions font taire -Werror sur ce que vous n'utilisez pas encore */
    (void)listener_mark;
}

/*
 * epoll déclenché par front signale un changement une seule fois. Des données
 * et un FIN arrivés ensemble forment un seul front, et conn_read() s'arrête à
 * la lecture partielle qui prend les données, avant de voir la fin du flux :
 * aucun autre front ne viendrait, et le client attendrait pour toujours la fin
 * de son écho. Donc, quand l'événement dit que le client a fermé son sens
 * d'écriture (EPOLLRDHUP, que -e demande), continuer à lire jusqu'à ce que
 * recv() dise EAGAIN, que le flux se termine ou que le seuil haut soit atteint.
 * Retourne -1 si la connexion est morte.
 */
static int read_to_end(struct conn *c)
{
    /*
     * TODO(07.4): l'événement de c dit que son client a fermé son sens
     * d'écriture (ou que la connexion a subi une déconnexion ou une erreur).
     * Lire et renvoyer en écho ce qu'il a envoyé jusqu'à la fin de son flux, le
     * seuil haut, ou un socket qui n'a plus rien à donner (pas une simple
     * lecture partielle). Retourne -1 dès que la connexion est morte, 0 sinon.
     * - avec -e, les données et le FIN qui les suit peuvent arriver en un seul
     *   front : conn_read() s'arrête à la lecture partielle qui prend les
     *   données, et aucun autre front ne viendra pour le FIN (la valeur de
     *   retour de conn_read() dit quand elle s'est arrêtée là).
     * Vérifié par : echo avec -e (une demi-fermeture dans le même segment que
     * les données).
     * Indices : make hint CH=07 (10-12).
     * Lire : le texte, « API epoll() » (sa ligne EPOLLET) ;
     * COURSE.fr.md, « 07-epoll — un seul thread, epoll (C10K) ».
     */
    (void)c;  /* ces conversions font taire -Werror sur ce que vous n'utilisez pas encore */
    (void)conn_read;
    return -1;
}

/*
 * La boucle : epoll_wait() dort jusqu'à ce que des sockets soient prêts et ne
 * rend que ceux-là, chacun avec sa connexion (data.ptr) ; chacun reçoit ce
 * pour quoi il est prêt. Jusqu'à un signal d'arrêt, dont le shutdown() du
 * socket d'écoute (wake_fd) lui fait signaler EPOLLHUP ; alors toutes les
 * connexions sont libérées.
 */
static void event_loop_run(int listen_fd)
{
    /*
     * TODO(07.5): la boucle événementielle. Jusqu'à stop_requested : dormir dans
     * epoll_wait() jusqu'à ce que des sockets soient prêts, puis donner à chaque
     * signalement ce qu'il demande : le socket d'écoute accepte ; une connexion
     * dont le client a fermé son sens d'écriture est lue jusqu'au bout
     * (read_to_end()), puis traitée (conn_handle()), puis libérée si elle est
     * terminée, ou surveillée à nouveau. Une erreur ou une déconnexion est lue
     * jusqu'au bout et compte aussi comme prête en écriture : elle se manifeste
     * par un recv() ou un send() qui échoue.
     * Quand la boucle se termine, toutes les connexions encore ouvertes sont
     * libérées et l'instance epoll fermée ; main() ferme listen_fd.
     * - une connexion apparaît au plus une fois par lot de signalements ;
     * - un signal (un arrêt) ne doit pas terminer le serveur sur une erreur ; un
     *   signal d'arrêt réveille epoll_wait() (wake_fd).
     * Tant que vous ne l'avez pas écrite, cette fonction attend un signal d'arrêt
     * et ne sert personne.
     * Vérifié par : toutes les vérifications ; shutdown, idle-cpu.
     * Indices : make hint CH=07 (13-16).
     * Lire : le texte, « Exemple avec epoll() » ;
     * COURSE.fr.md, « 07-epoll — un seul thread, epoll (C10K) » (et
     * « Ce que fait chaque serveur (le contrat) » pour wake_fd).
     */
    (void)listen_fd;  /* ces conversions font taire -Werror sur ce que vous n'utilisez pas encore */
    (void)accept_clients;
    (void)conn_handle;
    (void)read_to_end;
    while (!stop_requested)
        pause();
}

/* ==== end shared: epoll-loop ==== */

/* Ce que ce chapitre ajoute à la ligne de commande commune (voir usage()). */
#define CHAPTER_NAME     "07-epoll: one thread, epoll"
#define CHAPTER_OPTS     "e"
#define CHAPTER_SYNOPSIS " [-e]"
#define CHAPTER_HELP     "  -e       edge-triggered epoll (default: level-triggered)\n"
#define DEFAULT_WORKERS  0

int main(int argc, char **argv)
{
    int listen_fd;

    parse_options(argc, argv);
    install_signal_handlers();
    spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (spare_fd < 0)
        die("open /dev/null");
    listen_fd = open_listener(SOCK_NONBLOCK, 0);
    event_loop_open(listen_fd);
    print_ready(listen_fd);
    wake_fd = listen_fd;  /* shutdown() par un signal d'arrêt : epoll_wait() signale EPOLLHUP */
    event_loop_run(listen_fd);
    wake_fd = -1;
    close(listen_fd);
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

/* ==== shared: conn-buffers — 05's lesson, copied from 05-select/server.c (make sync) ==== */
/*
 * La sortie que le noyau n'a pas encore prise reste dans le tampon de la
 * connexion, jusqu'à OUT_CAP octets. À ce seuil haut, la boucle cesse de lire
 * le client (il envoie plus vite qu'il ne lit) jusqu'à ce que la sortie se
 * vide : la mémoire reste bornée quoi que fasse un client, et un client qui ne
 * lit jamais ne ralentit que lui-même.
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

/* Le seul endroit où finit une connexion : socket, tampon et struct partent ensemble. */
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

/*
 * Envoie de buf tout ce que le noyau prend maintenant : retourne le nombre
 * d'octets envoyés, ou -1 si la connexion est morte.
 */
static ssize_t send_some(struct conn *c, const char *buf, size_t len)
{
    size_t sent = 0;

    while (sent < len) {
        ssize_t nsent = send(c->fd, buf + sent, len - sent, MSG_NOSIGNAL);
        if (nsent >= 0)
            sent += (size_t)nsent;
        else if (errno == EAGAIN || errno == EWOULDBLOCK)
            break;  /* le tampon du noyau est plein : la boucle attendra de pouvoir écrire */
        else if (errno != EINTR) {
            log_conn_error("send", c->peer);  /* EPIPE, ECONNRESET : cette connexion seulement */
            return -1;
        }
    }
    return (ssize_t)sent;
}

/* Envoie la sortie en attente, autant que le noyau en prend. -1 : la connexion est morte. */
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
        free(c->out);  /* une connexion inactive n'a pas de tampon : 10 000 restent bon marché */
        c->out = NULL;
    }
    return 0;
}

/* Renvoie len octets, directement si rien n'est en attente ; garde ce que le noyau refuse. */
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
    memcpy(c->out + c->out_len, buf, len);  /* conn_read ne lit jamais plus que la place restante */
    c->out_len += len;
    return 0;
}

/*
 * Lit ce que le client a envoyé et le renvoie en écho, jusqu'à ce que le
 * socket soit vide, que le client fasse une demi-fermeture ou que la sortie en
 * attente atteigne le seuil haut. Retourne -1 si la connexion est morte, 1 si
 * elle s'est arrêtée sur une lecture partielle, 0 sinon.
 *
 * Une lecture partielle (moins d'octets que demandé) signifie que le socket
 * était vide au retour de recv() : TCP livre tout ce qu'il détient, jusqu'à la
 * taille demandée. S'arrêter là économise le recv() qui ne dirait qu'EAGAIN :
 * un message coûte ainsi deux appels système, recv() et send(). Les données
 * qui arrivent ensuite sont signalées à nouveau, même par epoll déclenché par
 * front : chaque arrivée est un front. Ce n'est pas le cas d'un FIN en file
 * derrière les données : les boucles qui attendent des changements de niveau
 * le voient à leur attente suivante, et la boucle déclenchée par front de 07
 * rappelle conn_read() après une lecture partielle quand l'événement indique que
 * le client a fermé son sens d'écriture (read_to_end()).
 */
static int conn_read(struct conn *c)
{
    static char buf[BUF_SIZE];  /* un seul thread : un seul tampon sert toutes les connexions */

    while (!c->read_closed && c->out_len < OUT_CAP) {
        size_t room = OUT_CAP - c->out_len, want = room < sizeof buf ? room : sizeof buf;
        ssize_t nread = recv(c->fd, buf, want, 0);
        if (nread > 0) {
            log_data(c->peer, buf, (size_t)nread);
            if (conn_echo(c, buf, (size_t)nread) < 0)
                return -1;
            if ((size_t)nread < want)
                return 1;  /* une lecture partielle : le socket est vide */
        } else if (nread == 0) {
            c->read_closed = 1;  /* renvoyer ce qui est en attente, puis fermer */
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return 0;
        } else if (errno != EINTR) {
            log_conn_error("recv", c->peer);  /* ECONNRESET : cette connexion seulement */
            return -1;
        }
    }
    return 0;
}

/* Ce que la boucle doit surveiller : la lecture, sous le seuil haut et avant la fin du flux... */
static int conn_wants_read(const struct conn *c)
{
    return !c->read_closed && c->out_len < OUT_CAP;
}

/* ...et l'écriture, tant qu'une sortie est en attente. */
static int conn_wants_write(const struct conn *c)
{
    return c->out_len > 0;
}

/*
 * Un signalement de disponibilité pour une connexion : readable et writable
 * disent pour quoi elle a été signalée prête. Retourne 1 quand elle est
 * terminée (une erreur, ou une demi-fermeture avec tout renvoyé en écho) :
 * l'appelant la libère.
 * Une fois la sortie vidée, la lecture reprend aussitôt, sans repasser par
 * l'attente pour un nouveau signalement « lisible » (en 07, ce signalement
 * viendrait même avec -e : EPOLL_CTL_MOD revérifie la disponibilité, et chaque
 * signalement porte EPOLLIN tant que des données attendent).
 */
static int conn_handle(struct conn *c, int readable, int writable)
{
    if (writable && conn_flush(c) < 0)
        return 1;
    if ((readable || writable) && conn_wants_read(c) && conn_read(c) < 0)
        return 1;
    return c->read_closed && c->out_len == 0;
}
/* ==== end shared: conn-buffers ==== */
