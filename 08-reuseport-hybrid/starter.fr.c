/*
 * 08-reuseport-hybrid/server.c — un maître et N processus workers, chacun avec
 * son propre socket d'écoute SO_REUSEPORT et la boucle epoll de 07.
 *
 * Le modèle : l'architecture sur laquelle se termine le texte. Une boucle
 * événementielle utilise un cœur ; N processus en utilisent N. Chaque worker
 * écoute sur le même port avec SO_REUSEPORT, et le noyau répartit les
 * nouvelles connexions entre leurs sockets (selon un hachage des adresses :
 * pas à parts égales). nginx, l'exemple habituel de cette architecture,
 * partage plutôt par défaut un seul socket hérité, et évite que tous ses
 * workers se réveillent à chaque connexion grâce à EPOLLEXCLUSIVE ou à un
 * verrou (COURSE.fr.md, 08). Le maître ne sert aucun client : il démarre les
 * workers, redémarre celui qui meurt, leur transmet un signal d'arrêt et les
 * attend tous. Il se lie d'abord au port, sans écouter, pour que `-p 0`
 * fonctionne (les workers se lient au port qu'il a obtenu) et que le port
 * reste tenu pendant qu'un worker est remplacé.
 *
 * Usage : server [-p PORT] [-b ADDR] [-q] [-v] [-w N] [-e] [-h]
 *
 * Essayez : `./server -p 0 -w 4`, puis `pkill -KILL -f 'server -p 0' -n`... ou,
 * mieux, tuez un worker par son pid (voir `ps --ppid MASTER`) : le maître
 * journalise sa mort et en démarre un autre en quelques millisecondes. La
 * vérification `supervise` du banc de test fait exactement cela.
 * Comparez avec ../07-epoll/server.c (un seul processus) et ../02-fork/server.c
 * (un processus par client, au lieu d'un par cœur).
 * Compilation : cc -pthread -o server server.c
 *
 * SQUELETTE DE DÉPART : les fonctions marquées TODO sont à écrire par vous
 * (commencez par 08.1).
 * Chaque TODO dit quoi faire ; make hint CH=08 dit comment, un indice à la fois.
 * Vérifications de la leçon : supervise
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
#include <sys/epoll.h>
#include <sys/prctl.h>
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

/* ==== shared: epoll-loop.h — 07's event loop (make sync) ==== */
/* La leçon de 07, que ce chapitre réutilise : définie à la fin de ce fichier, copiée de 07. */
static void event_loop_open(int listen_fd); /* une instance epoll surveillant le socket d'écoute */
static void event_loop_run(int listen_fd);  /* sert jusqu'à l'arrêt, puis libère chaque connexion */
/* ==== end shared: epoll-loop.h ==== */

/* ---- le worker : la boucle événementielle de 07 sur son propre socket SO_REUSEPORT ---- */

/*
 * La vie d'un worker : demander au noyau de lui envoyer SIGTERM si le maître
 * meurt (un worker ne doit jamais survivre à son maître), ouvrir son propre
 * socket d'écoute sur le port du maître, le dire sur ready_fd, faire tourner
 * la boucle événementielle de 07 jusqu'à un signal d'arrêt, tout fermer,
 * sortir. SO_REUSEPORT permet à chaque socket qui l'active (même utilisateur)
 * de se lier au même port, et le noyau répartit les connexions entrantes entre
 * ceux qui écoutent, selon un hachage de leurs adresses.
 */
static void worker_main(int index, const char *port, pid_t master, int ready_fd)
{
    /*
     * TODO(08.1): toute la vie du worker numéro index (1 à N), dans le processus
     * fils que spawn() a démarré. Elle ne retourne jamais : elle se termine par
     * _exit(0), de peur que des tampons stdio copiés du maître ne soient écrits
     * deux fois. Les lignes de journal du worker portent son étiquette, "[w1] ",
     * "[w2] "... (log_tag ; supervise compte les lignes "+" par étiquette). Le
     * worker reçoit SIGTERM, bien que démarré avec les signaux bloqués, et ne
     * survit jamais à son maître, même à un maître mort avant que le worker ait
     * pu le demander. Il fait tourner la boucle de 07, avec ce que le main() de
     * 07 lui fournit, sur un socket d'écoute à lui sur le port du maître (même
     * avec -p 0), annonce qu'il est prêt sur ready_fd seulement une fois qu'il
     * écoute, et ferme ce qu'il a ouvert.
     * Tant que vous ne l'avez pas écrite, un worker sort dès qu'il démarre.
     * Indices : make hint CH=08 (1-4).
     * Lire : le texte, « Combinaison : Plusieurs processus + epoll() » ;
     * COURSE.fr.md, « 08-reuseport-hybrid — un maître et N workers epoll » (et
     * « 07-epoll — un seul thread, epoll (C10K) » pour la boucle qu'il fait
     * tourner).
     */
    (void)index;  /* ces conversions font taire -Werror sur ce que vous n'utilisez pas encore */
    (void)port;
    (void)master;
    (void)ready_fd;
    (void)event_loop_open;
    (void)event_loop_run;
    _exit(0);
}

/* ---- le maître : démarrer, surveiller, redémarrer, arrêter ---- */

struct worker {
    pid_t pid;             /* 0 tant qu'il ne tourne pas */
    struct timespec born;  /* quand il a démarré, pour distinguer un plantage au
                              démarrage d'une mort en service */
};

static struct worker *workers;
static volatile sig_atomic_t child_died;  /* levé par le gestionnaire de SIGCHLD ;
                                             main récupère les fils */

static void on_sigchld(int signo) { (void)signo; child_died = 1; }

static double seconds_since(const struct timespec *t)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t->tv_sec) + (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

/* Crée par fork() le worker i ; il se signale sur ready_fd une fois à l'écoute. */
static void spawn(int i, const char *port, int ready_fd, int held_fd)
{
    /*
     * TODO(08.2): démarrer le worker de l'emplacement i (0 à opt.workers - 1) dans
     * un processus fils qui exécute worker_main() en tant que worker i + 1 (avec
     * le port, le pid du maître et ready_fd), et noter dans workers[i] son pid et
     * son heure de naissance sur l'horloge monotone (08.4 s'en sert pour
     * distinguer un plantage au démarrage d'une mort en service).
     * Le fils ne garde rien du maître dont il ne se sert pas : la table des
     * workers, held_fd. Un fils qui ne peut pas être démarré n'est pas fatal :
     * le dire ("server: ...", comme tout message) et laisser l'emplacement vide.
     * Tant que vous ne l'avez pas écrite, aucun worker ne démarre et le socket du
     * maître écoute à leur place : les clients se connectent, puis attendent (un
     * bug dans un serveur terminé, COURSE.fr.md dit pourquoi ; il s'en ira avec
     * ce bouchon).
     * Indices : make hint CH=08 (5-7).
     * Lire : le texte, « La fonction `fork()` » et
     * « Architecture Hybride : Le Meilleur des Deux Mondes » ;
     * COURSE.fr.md, « 08-reuseport-hybrid — un maître et N workers epoll » (et
     * « 02-fork — un processus fils par client »).
     */
    (void)i;  /* ces conversions font taire -Werror sur ce que vous n'utilisez pas encore */
    (void)port;
    (void)ready_fd;
    (void)worker_main;
    listen(held_fd, SOMAXCONN);
}

/*
 * Attend (de façon bornée) que n workers disent qu'ils écoutent : alors
 * seulement, le serveur est prêt.
 */
static void wait_ready(int ready_rd, int n)
{
    /*
     * TODO(08.3): revenir dès que n workers ont dit qu'ils écoutent, chacun par un
     * octet sur le tube dont ready_rd est l'extrémité de lecture. main() affiche
     * la ligne « prêt » juste après : affichée plus tôt, elle enverrait les
     * premiers clients du banc de test vers un port où aucun worker n'écoute
     * encore. L'attente est bornée, car un worker qui ne peut pas démarrer ne
     * doit pas bloquer son maître : après 5 s sans rien de nouveau, abandonner
     * avec une ligne sur stderr, "server: workers did not start within 5 s" ;
     * abandonner aussi si le tube échoue ou se termine.
     * Tant que vous ne l'avez pas écrite, la ligne « prêt » vient aussitôt, qu'un
     * worker écoute ou non.
     * Indices : make hint CH=08 (8-10).
     * Lire : le texte, « Architecture Hybride : Le Meilleur des Deux Mondes » (un
     * schéma : l'ordre de démarrage n'y figure pas) ;
     * COURSE.fr.md, « 08-reuseport-hybrid — un maître et N workers epoll ».
     */
    (void)ready_rd;  /* ces conversions font taire -Werror sur ce que vous n'utilisez pas encore */
    (void)n;
}

/*
 * Récupère chaque worker qui s'est terminé, dit pourquoi, et en démarre un
 * autre à sa place. Un worker qui sort de lui-même moins d'une seconde après
 * son démarrage n'a pas pu se mettre en place (bind, par exemple) : le
 * redémarrer ne ferait que boucler, donc le serveur s'arrête.
 */
static void reap_and_restart(const char *port, int ready_wr, int held_fd)
{
    /*
     * TODO(08.4): main() appelle cette fonction après un SIGCHLD : récupérer
     * chaque worker qui s'est terminé, pas un seul, sans jamais bloquer ; vider
     * son emplacement ; journaliser pourquoi, sur stderr, avec
     * K = emplacement + 1 :
     * "server: worker K (pid P) killed by signal S; restarting it", ou
     * "server: worker K (pid P) exited with status S; restarting it" ;
     * et en démarrer un autre dans l'emplacement via spawn() (même port,
     * ready_wr, held_fd).
     * Pendant un arrêt (stop_requested), rien n'est redémarré. Un worker sorti
     * de lui-même moins d'une seconde après sa naissance n'a pas pu se mettre en
     * place et ne ferait que boucler : journaliser
     * "server: worker K failed at start; stopping" et demander l'arrêt.
     * Les vérifications zombies et supervise le voient.
     * Tant que vous ne l'avez pas écrite, un worker mort n'est ni récupéré ni
     * remplacé.
     * Indices : make hint CH=08 (11-14).
     * Lire : le texte, « Gestion des Processus Zombies » ;
     * COURSE.fr.md, « 08-reuseport-hybrid — un maître et N workers epoll » (et
     * « 02-fork — un processus fils par client » pour la récupération en boucle).
     */
    (void)port;  /* ces conversions font taire -Werror sur ce que vous n'utilisez pas encore */
    (void)ready_wr;
    (void)held_fd;
    (void)seconds_since;
}

/* Arrêt : SIGTERM à chaque worker, attendre chacun (SIGKILL après une seconde à l'horloge). */
static void stop_workers(void)
{
    /*
     * TODO(08.5): l'arrêt du maître. Chaque worker en cours d'exécution est prié
     * de s'arrêter (SIGTERM : sa boucle met alors fin à ses connexions,
     * journalisées, puis il sort), et chacun est récupéré avant le retour de
     * cette fonction, dans les 2 s que permet le contrat.
     * Un worker encore là une seconde après le début de l'arrêt, à l'horloge,
     * est tué sans appel (SIGKILL), une fois. L'attente ne tourne jamais à vide
     * et n'attend jamais indéfiniment un worker qui ne finira pas : supervise en
     * arrête un avec SIGSTOP pour le vérifier.
     * Tant que vous ne l'avez pas écrite, le maître s'en va sans un mot à ses
     * workers (seul leur signal à la mort du parent, 08.1, les arrêterait).
     * Indices : make hint CH=08 (15-17).
     * Lire : le texte, « Gestion des Processus Zombies » ;
     * COURSE.fr.md, « 08-reuseport-hybrid — un maître et N workers epoll » (et
     * « 02-fork — un processus fils par client », dont end_children() fait de
     * même).
     */
}

/* Ce que ce chapitre ajoute à la ligne de commande commune (voir usage()). */
#define CHAPTER_NAME     "08-reuseport-hybrid: a master and N epoll worker processes"
#define CHAPTER_OPTS     "w:e"
#define CHAPTER_SYNOPSIS " [-w N] [-e]"
#define CHAPTER_HELP     "  -w N     worker processes (default: the number of CPUs)\n" \
                         "  -e       edge-triggered epoll (default: level-triggered)\n"
#define DEFAULT_WORKERS  0

int main(int argc, char **argv)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    struct sigaction sa;
    sigset_t blocked, orig;
    char port[16];
    int held_fd, ready[2];

    parse_options(argc, argv);
    if (opt.workers == 0)
        opt.workers = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (opt.workers < 1)
        opt.workers = 1;
    install_signal_handlers();
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_sigchld;
    sa.sa_flags = SA_NOCLDSTOP;
    if (sigaction(SIGCHLD, &sa, NULL) < 0)
        die("sigaction SIGCHLD");

    /* Lier d'abord, sans écouter : connaître le port (-p 0) et le tenir pour les workers. */
    held_fd = open_listener(SOCK_NONBLOCK, LISTEN_REUSEPORT | LISTEN_BIND_ONLY);
    if (getsockname(held_fd, (struct sockaddr *)&ss, &len) < 0)
        die("getsockname");
    snprintf(port, sizeof port, "%u",
             (unsigned)ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                      : ((struct sockaddr_in *)&ss)->sin_port));
    workers = calloc((size_t)opt.workers, sizeof *workers);
    if (workers == NULL || pipe2(ready, O_CLOEXEC) < 0)
        die("master set-up");

    /*
     * Le maître dort dans sigsuspend() : les signaux qu'il attend sont bloqués
     * partout ailleurs, si bien qu'aucun ne peut se glisser entre « tester les
     * drapeaux » et « s'endormir » — sigsuspend() les débloque et s'endort en
     * une seule étape.
     */
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGCHLD);
    sigaddset(&blocked, SIGINT);
    sigaddset(&blocked, SIGTERM);
    sigprocmask(SIG_BLOCK, &blocked, &orig);
    for (int i = 0; i < opt.workers; i++)
        spawn(i, port, ready[1], held_fd);
    wait_ready(ready[0], opt.workers);
    print_ready(held_fd);

    while (!stop_requested) {
        while (!stop_requested && !child_died)
            sigsuspend(&orig);
        child_died = 0;
        reap_and_restart(port, ready[1], held_fd);
    }

    stop_workers();
    close(ready[0]);
    close(ready[1]);
    close(held_fd);
    free(workers);
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

/* ==== shared: epoll-loop — 07's lesson, copied from 07-epoll/server.c (make sync) ==== */

#define MAX_EVENTS 256  /* signalements de disponibilité lus par appel à epoll_wait() */

static int epoll_fd;
static char listener_mark;  /* data.ptr du socket d'écoute : aucune conn n'a cette adresse */

/*
 * Surveille exactement ce dont la connexion a besoin maintenant (EPOLLOUT
 * seulement tant qu'une sortie est en attente).
 */
static int watch(struct conn *c, int op)
{
    struct epoll_event ev;

    ev.events = (conn_wants_read(c) ? EPOLLIN : 0) | (conn_wants_write(c) ? EPOLLOUT : 0) |
                (opt.edge ? EPOLLET | EPOLLRDHUP : 0);
    if (op == EPOLL_CTL_MOD && ev.events == c->watching)
        return 0;  /* aucun changement, aucun appel système */
    ev.data.ptr = c;
    if (epoll_ctl(epoll_fd, op, c->fd, &ev) < 0) {
        log_conn_error("epoll_ctl", c->peer);
        return -1;
    }
    c->watching = ev.events;
    return 0;
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
    for (;;) {
        struct sockaddr_storage peer_addr;
        char peer[ADDR_STRLEN];
        struct conn *c;
        int fd = accept_client(listen_fd, &peer_addr, SOCK_NONBLOCK);

        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || (errno == EMFILE && spare_fd >= 0))
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK && !stop_requested)
                perror("server: accept");
            return;
        }
        format_addr(&peer_addr, peer, sizeof peer);
        c = conn_new(fd, peer);
        if (c != NULL && watch(c, EPOLL_CTL_ADD) < 0)
            conn_free(c);
    }
}

/* L'instance epoll, qui surveille le socket d'écoute (déclenchée par front avec -e). */
static void event_loop_open(int listen_fd)
{
    struct epoll_event ev;

    epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd < 0)
        die("epoll_create1");
    ev.events = EPOLLIN | (opt.edge ? EPOLLET : 0);
    ev.data.ptr = &listener_mark;
    if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, listen_fd, &ev) < 0)
        die("epoll_ctl");
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
    int more;

    while ((more = conn_read(c)) == 1)
        continue;  /* une lecture partielle : le FIN suit peut-être */
    return more;
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
    static struct epoll_event events[MAX_EVENTS];

    while (!stop_requested) {
        int n = epoll_wait(epoll_fd, events, MAX_EVENTS, -1);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        /*
         * Une connexion apparaît au plus une fois parmi les n signalements : la
         * libérer ici ne peut donc pas laisser de pointeur pendant dans un
         * signalement ultérieur.
         */
        for (int i = 0; i < n && !stop_requested; i++) {
            struct conn *c = events[i].data.ptr;
            uint32_t e = events[i].events;

            if (events[i].data.ptr == &listener_mark) {
                accept_clients(listen_fd);
                continue;
            }
            /* Une erreur ou une déconnexion se manifeste par un recv() ou un send() qui échoue. */
            if ((e & (EPOLLRDHUP | EPOLLHUP | EPOLLERR) && read_to_end(c) < 0) ||
                conn_handle(c, e & EPOLLIN, e & (EPOLLOUT | EPOLLHUP | EPOLLERR)) ||
                watch(c, EPOLL_CTL_MOD) < 0)
                conn_free(c);
        }
    }

    while (all_conns != NULL)
        conn_free(all_conns);  /* close() retire aussi le socket de l'ensemble epoll */
    close(epoll_fd);
}

/* ==== end shared: epoll-loop ==== */
