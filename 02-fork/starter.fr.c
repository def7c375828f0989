/*
 * 02-fork/server.c — un serveur d'écho qui crée par fork() un processus fils
 * par client.
 *
 * Le modèle : le processus parent ne fait qu'accepter ; pour chaque client, il
 * crée par fork() un fils qui exécute la même session d'écho que 01 et se
 * termine quand le client part. Les clients sont servis côte à côte, chacun
 * dans son propre espace d'adressage : un plantage dans un fils ne peut pas
 * nuire à un autre. Le prix à payer : un processus par client, et un nouveau
 * devoir pour le parent, récupérer ses fils terminés, faute de quoi ils
 * s'accumulent en processus zombies.
 *
 * Usage : server [-p PORT] [-b ADDR] [-q] [-v] [-h]
 *
 * Essayez : connectez deux `nc 127.0.0.1 8080` à la fois et observez
 * `ps -o pid,stat,cmd --ppid $(pgrep -o server)` : un fils par client, disparu
 * (pas Z) quand son client part.
 * Les vérifications `zombies`, `fd-leak` et `shutdown` du banc de test notent
 * ce chapitre.
 * Comparez avec ../01-iterative/server.c (ce que fork() change dans main) et
 * avec ../03-threads/server.c (la même idée avec des threads).
 * Compilation : cc -pthread -o server server.c
 *
 * SQUELETTE DE DÉPART : les fonctions marquées TODO sont à écrire par vous
 * (commencez par 02.1).
 * Chaque TODO dit quoi faire ; make hint CH=02 dit comment, un indice à la fois.
 * Vérifications de la leçon : concurrency,zombies,fd-leak
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
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
 * La table des fils du processus parent : quel pid sert quel client, pour que
 * la ligne de journal « - » puisse nommer le client quand son fils est
 * récupéré. Sa taille fixe plafonne aussi le nombre de processus qu'un serveur
 * peut créer (un afflux de clients ne doit pas devenir une bombe fork) ; un
 * client au-delà est refusé.
 */
#define MAX_CHILDREN 1024

struct child {
    volatile sig_atomic_t pid;     /* 0 : case libre ; écrit par main, SIGCHLD bloqué */
    volatile sig_atomic_t exited;  /* levé par le gestionnaire de SIGCHLD, le fils récupéré */
    volatile sig_atomic_t status;  /* statut rendu par waitpid(), pour le journal */
    char peer[ADDR_STRLEN];        /* le client que sert ce fils */
};

static struct child children[MAX_CHILDREN];
static long active;  /* fils vivants ou pas encore journalisés ; main seulement */

/*
 * SIGCHLD : récupérer chaque fils terminé. Un seul SIGCHLD peut valoir pour
 * plusieurs fils (les signaux d'un même type ne s'accumulent pas), donc
 * waitpid() tourne en boucle jusqu'à ce qu'il ne reste aucun fils terminé ;
 * WNOHANG l'empêche de bloquer sur les fils encore en cours d'exécution. errno
 * est sauvegardé parce que le gestionnaire peut interrompre du code sur le
 * point de le lire. Écrire sur stderr ici ne serait pas sûr (stdio n'est pas
 * async-signal-safe) : le gestionnaire se contente de marquer la case du fils,
 * et c'est la boucle principale qui écrit la ligne de journal.
 */
static void on_sigchld(int signo)
{
    /*
     * TODO(02.2): la fonction qui récupère les fils, exécutée quand des fils se
     * terminent. Au retour, aucun fils terminé ne reste à l'état de processus
     * zombie, quel que soit le nombre de fils terminés pour un seul signal, et
     * la case de chacun dans children[] contient son statut et est marquée
     * exited. Elle n'attend jamais un fils encore en cours d'exécution. C'est
     * un gestionnaire de signal : appels async-signal-safe uniquement (pas de
     * stdio), errno laissé tel qu'elle l'a trouvé. Vérifié par : zombies.
     * Indices : make hint CH=02 (5-7).
     * Lire : le texte, « Gestion des Processus Zombies » (sa
     * « Solution 1 : Signal SIGCHLD » jette le statut ; vous, vous le gardez) ;
     * COURSE.fr.md, « 02-fork — un processus fils par client ».
     */
    (void)signo;  /* ces conversions font taire -Werror sur ce que vous n'utilisez pas encore */
}

/*
 * Bloque ou débloque SIGCHLD, pour que main et la fonction qui récupère les
 * fils ne touchent jamais la table en même temps, et les signaux d'arrêt avec
 * lui : un fils tout juste créé ne doit pas exécuter on_stop_signal() avant que
 * son wake_fd soit le sien (il couperait le socket d'écoute qu'il partage
 * encore avec le parent).
 */
static void block_signals(int how)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    if (sigprocmask(how, &set, NULL) < 0)
        die("sigprocmask");
}

/* Écrit la ligne « - » de chaque fils que le gestionnaire a récupéré, et libère sa case. */
static void log_reaped_children(void)
{
    /*
     * TODO(02.3): pour chaque fils que la fonction qui récupère les fils a
     * marqué exited : sa ligne « - », avec active diminué de un, et sa case de
     * nouveau libre ; un fils tué par un signal en dehors d'un arrêt a d'abord
     * droit à « server: child PID (PEER) killed by signal N ». La fonction qui
     * récupère les fils ne modifie jamais la table pendant que la présente
     * fonction la lit. Tant que vous ne l'avez pas écrite : aucune ligne « - »,
     * active ne fait que croître, et après 1 024 clients, tous sont refusés.
     * Vérifié par : shutdown (chaque « + » a son « - »).
     * Indices : make hint CH=02 (8-10).
     * Lire : le texte, « Gestion des Processus Zombies » ; COURSE.fr.md,
     * « 02-fork — un processus fils par client », et CONTRACT.fr.md, « Sortie »
     * (en 02, c'est le parent qui compte).
     */
}

/*
 * Confie un client à un nouveau fils. SIGCHLD est bloqué d'avant fork() jusqu'à
 * ce que le pid du fils soit dans la table : sans cela, un fils qui se termine
 * aussitôt serait récupéré avant que le parent sache quel client il servait.
 */
static void spawn_child(int listen_fd, int conn_fd, const char *peer)
{
    /*
     * TODO(02.1): au retour, un processus fils bien à lui sert ce client et le
     * parent ne détient aucun descripteur de ce client : pid et peer dans une
     * case libre de children[], active augmenté de un, la ligne « + » écrite ;
     * le parent retourne aussitôt accepter. Le fils ne garde que le socket de
     * son client, exécute echo_session() et se termine sans revenir de la
     * fonction ni exécuter quoi que ce soit du parent. La fonction qui récupère
     * les fils ne rencontre jamais un fils dont la case n'est pas remplie ; un
     * arrêt dans le fils réveille son client, jamais le socket d'écoute
     * partagé. Une table pleine ou l'impossibilité d'obtenir un processus fait
     * refuser ce client, sans toucher au serveur. Vérifié par : concurrency,
     * echo, fd-leak. Tant que vous ne l'avez pas écrite, chaque client est refusé.
     * Indices : make hint CH=02 (1-4).
     * Lire : le texte, « Approche 1 : Multi-Processus avec `fork()` »
     * (« La fonction `fork()` », « Schéma de fonctionnement ») ; COURSE.fr.md,
     * « 02-fork — un processus fils par client ».
     */
    (void)listen_fd;  /* ces conversions font taire -Werror sur ce que vous n'utilisez pas encore */
    (void)peer;
    (void)children;
    (void)active;
    (void)block_signals;
    (void)echo_session;
    (void)log_conn;
    close(conn_fd);
}

/* Envoie sig à chaque fils pas encore récupéré ; renvoie leur nombre. SIGCHLD
 * est bloqué pendant ce temps, pour qu'aucun pid de la table ne puisse être
 * récupéré (et réutilisé) dans notre dos. */
static int signal_children(int sig)
{
    /*
     * TODO(02.4): envoyer sig à chaque fils encore là (case utilisée, pas
     * encore récupéré) ; renvoyer leur nombre. Aucun pid de la table ne doit
     * être récupéré pendant ce temps : un pid récupéré retourne au système,
     * peut déjà appartenir à un autre processus, et c'est ce dernier qui
     * recevrait sig. Tant que vous ne l'avez pas écrite, elle n'atteint personne.
     * Indices : make hint CH=02 (11-13).
     * Lire : le texte, « Gestion des Processus Zombies » ; COURSE.fr.md,
     * « 02-fork — un processus fils par client » (ce que fait end_children()).
     */
    (void)sig;  /* ces conversions font taire -Werror sur ce que vous n'utilisez pas encore */
    return 0;
}

static long elapsed_ms(const struct timespec *since)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - since->tv_sec) * 1000 + (now.tv_nsec - since->tv_nsec) / 1000000;
}

/*
 * Arrêt : SIGTERM à chaque fils (le gestionnaire de chacun coupe son client, et
 * le fils se termine), puis attente jusqu'à ce que le gestionnaire les ait tous
 * récupérés. Un fils qui ne s'est pas terminé au bout d'une seconde reçoit
 * SIGKILL : le serveur doit s'arrêter en 2 s. La seconde est lue sur l'horloge,
 * pas comptée en courtes pauses : chaque SIGCHLD écourte une pause, si bien que
 * 50 fils se terminant à la fois compteraient pour une seconde.
 */
static void end_children(void)
{
    /*
     * TODO(02.5): le chemin d'arrêt : rendre la main une fois chaque fils
     * récupéré et journalisé (active revenu à 0), assez tôt pour sortir en
     * moins de 2 s sans laisser de processus. On demande d'abord aux fils de
     * finir (SIGTERM : le gestionnaire d'arrêt de chacun met fin à sa
     * session) ; tout fils encore là une seconde plus tard est forcé, une fois
     * (SIGKILL), et une ligne sur stderr dit combien. La seconde est lue sur
     * une horloge ; attendre ne coûte pas de CPU. Vérifié par : shutdown. Tant
     * qu'elle n'est pas écrite, les fils lui survivent.
     * Indices : make hint CH=02 (14-16).
     * Lire : le texte, « Gestion des Processus Zombies » ; COURSE.fr.md,
     * « 02-fork — un processus fils par client », et CONTRACT.fr.md,
     * « Comportement » (Arrêt).
     */
    (void)signal_children;  /* ces conversions font taire -Werror sur ce que vous n'utilisez pas
                               encore */
    (void)elapsed_ms;
}

/* Ce que ce chapitre ajoute à la ligne de commande commune (voir usage()). */
#define CHAPTER_NAME     "02-fork: a child process per client"
#define CHAPTER_OPTS     ""
#define CHAPTER_SYNOPSIS ""
#define CHAPTER_HELP     ""
#define DEFAULT_WORKERS  0

int main(int argc, char **argv)
{
    struct sigaction sa;
    int listen_fd;

    parse_options(argc, argv);
    install_signal_handlers();
    /* Sans SA_RESTART, accept() renvoie EINTR si un fils finit : sa ligne « - » sort aussitôt. */
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_sigchld;
    sa.sa_flags = SA_NOCLDSTOP;
    if (sigaction(SIGCHLD, &sa, NULL) < 0)
        die("sigaction SIGCHLD");
    spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (spare_fd < 0)
        die("open /dev/null");
    listen_fd = open_listener(0, 0);
    print_ready(listen_fd);
    wake_fd = listen_fd;

    /*
     * La boucle du parent : accepter, « forker », oublier. Entre deux clients,
     * elle écrit les lignes de journal des fils terminés. (Un fils qui se
     * termine juste après log_reaped_children() et avant qu'accept() se bloque
     * est récupéré aussitôt, mais sa ligne « - » attend le client ou le signal
     * suivant : voir l'exercice dans COURSE.fr.md.)
     */
    while (!stop_requested) {
        struct sockaddr_storage peer_addr;
        char peer[ADDR_STRLEN];
        int conn_fd;

        log_reaped_children();
        conn_fd = accept_client(listen_fd, &peer_addr, 0);
        if (conn_fd < 0) {
            if (errno != EINTR && errno != EMFILE && !stop_requested)
                perror("server: accept");
            continue;
        }
        format_addr(&peer_addr, peer, sizeof peer);
        spawn_child(listen_fd, conn_fd, peer);
    }

    wake_fd = -1;
    close(listen_fd);
    end_children();
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
