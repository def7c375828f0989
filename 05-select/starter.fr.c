/*
 * 05-select/server.c — un serveur d'écho à un seul thread, sur select().
 *
 * Le modèle : un seul thread sert tous les clients. select() dort jusqu'à ce
 * que l'un des sockets surveillés soit prêt, et la boucle ne fait que ce qui
 * ne peut pas bloquer : les sockets sont non bloquants, la sortie que le noyau
 * ne prend pas attend dans le tampon de la connexion, et l'intérêt en écriture
 * n'est demandé que tant qu'une sortie est en attente. Le prix de select() :
 * il surveille les descripteurs 0 à FD_SETSIZE-1 (1024), pas un de plus, et le
 * noyau parcourt l'ensemble entier à chaque appel.
 *
 * Usage : server [-p PORT] [-b ADDR] [-q] [-v] [-h]
 *
 * Essayez : `./harness/run 05 --only limits` ouvre 1 100 connexions : celles
 * dont le descripteur atteindrait FD_SETSIZE sont refusées, proprement, et les
 * autres sont servies. `robustness` montre qu'un client qui ne lit jamais ne
 * ralentit personne d'autre.
 * Comparez avec ../04-threadpool/server.c (des threads qui bloquent) et
 * ../06-poll/server.c (la même boucle, sans le mur de FD_SETSIZE).
 * Compilation : cc -pthread -o server server.c
 *
 * SQUELETTE DE DÉPART : les fonctions marquées TODO sont à écrire par vous
 * (commencez par 05.1) : d'abord les tampons de connexion (05.1-05.7), puis la
 * boucle select() qui s'en sert (05.8-05.12).
 * Chaque TODO dit quoi faire ; make hint CH=05 dit comment, un indice à la fois.
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
#include <sys/select.h>
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

/* ==== shared: conn-buffers.h — defined below: this chapter's lesson, the same in 05-08 (make sync) ==== */
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

/* ==== shared: conn-buffers — this chapter's lesson, which 06-08 reuse: make sync copies it there ==== */
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
    /*
     * TODO(05.1): envoyer les premiers octets de buf[0..len) que le noyau prend
     * maintenant, sans jamais attendre. Retourne combien ont été envoyés (0 à
     * len), ou -1 dès que la connexion est morte (son erreur journalisée avec
     * log_conn_error()).
     * - « le noyau est plein » n'est pas une erreur : le reste attendra ;
     * - un client qui réinitialise la connexion ou disparaît ne met fin qu'à sa
     *   propre connexion, jamais au serveur (aucun signal ne doit le tuer).
     * Vérifié par : echo (flux de 4 MiB), robustness (un client qui ne lit jamais).
     * Indices : make hint CH=05 (1-3).
     * Lire : le texte, « Inconvénients de l'I/O Multiplexing » ;
     * COURSE.fr.md, « 05-select — un seul thread, select() » ;
     * STYLE: "Backpressure by watermark".
     */
    (void)c;  /* ces conversions font taire -Werror sur ce que vous n'utilisez pas encore */
    (void)buf;
    (void)len;
    return -1;
}

/* Envoie la sortie en attente, autant que le noyau en prend. -1 : la connexion est morte. */
static int conn_flush(struct conn *c)
{
    /*
     * TODO(05.2): envoyer autant de la sortie en attente de c que le noyau en
     * prend maintenant. Retourne 0, ou -1 dès que la connexion est morte. Après
     * coup, c->out contient exactement les octets pas encore envoyés, dans
     * l'ordre, à partir de son début, et c->out_len les compte ; une connexion
     * qui n'a rien en attente ne détient aucun tampon (c->out vaut NULL) :
     * 10 000 clients inactifs doivent rester bon marché.
     * Vérifié par : echo (une demi-fermeture avec de la sortie encore en file),
     * memcheck.
     * Indices : make hint CH=05 (4-6).
     * Lire : COURSE.fr.md, « 05-select — un seul thread, select() » ;
     * STYLE: "Backpressure by watermark".
     */
    (void)c;  /* ces conversions font taire -Werror sur ce que vous n'utilisez pas encore */
    (void)send_some;
    return -1;
}

/* Renvoie len octets, directement si rien n'est en attente ; garde ce que le noyau refuse. */
static int conn_echo(struct conn *c, const char *buf, size_t len)
{
    /*
     * TODO(05.3): renvoyer en écho buf[0..len), que conn_read() vient de recevoir,
     * après tout ce que c a déjà en attente. Retourne 0, ou -1 dès que la
     * connexion est morte (un échec d'allocation y met fin aussi, journalisé).
     * - le client reçoit chaque octet dans l'ordre d'envoi, quoi que le noyau
     *   prenne à chaque appel ;
     * - les octets vont droit au socket quand rien n'est en attente : un écho
     *   que le noyau prend en entier ne coûte ni copie ni tampon ;
     * - ce qui reste en attente tient dans OUT_CAP : conn_read() ne lit jamais
     *   plus que la place restante, et vous pouvez compter dessus.
     * Vérifié par : echo, robustness, memcheck.
     * Indices : make hint CH=05 (7-9).
     * Lire : COURSE.fr.md, « 05-select — un seul thread, select() » ;
     * STYLE: "Backpressure by watermark".
     */
    (void)c;  /* ces conversions font taire -Werror sur ce que vous n'utilisez pas encore */
    (void)buf;
    (void)len;
    return -1;
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
    /*
     * TODO(05.4): lire ce que le client de c a envoyé et le renvoyer en écho
     * (conn_echo()), jusqu'à ce que le socket n'ait plus rien à donner pour
     * l'instant, que le client ait fermé son sens d'écriture, ou que la sortie
     * en attente atteigne le seuil haut, OUT_CAP. Retourne -1 dès que la
     * connexion est morte, 1 si elle s'est arrêtée sur une lecture partielle
     * (07 aura besoin de distinguer ce cas), 0 sinon.
     * - n'attend jamais ; ne lit jamais au-delà de la place restante sous OUT_CAP ;
     * - la fin du flux n'est pas la fin de la connexion : notez-la dans
     *   c->read_closed, et ce qui est en attente doit tout de même partir ;
     * - -v journalise chaque message reçu (log_data()) ;
     * - une réinitialisation ne met fin qu'à cette connexion.
     * Vérifié par : echo (demi-fermetures, 1 000 messages en pipeline), robustness.
     * Indices : make hint CH=05 (10-13).
     * Lire : le texte, « Approche 3 : I/O Multiplexing › Concept » ;
     * COURSE.fr.md, « 05-select — un seul thread, select() » ;
     * STYLE: "Backpressure by watermark".
     */
    (void)c;  /* ces conversions font taire -Werror sur ce que vous n'utilisez pas encore */
    (void)conn_echo;
    (void)log_data;
    return -1;
}

/* Ce que la boucle doit surveiller : la lecture, sous le seuil haut et avant la fin du flux... */
static int conn_wants_read(const struct conn *c)
{
    /*
     * TODO(05.5): si la boucle doit surveiller c en lecture maintenant : 1 ou 0.
     * Elle doit répondre non dès que le flux du client a pris fin, et non tant
     * que la sortie en attente est au seuil haut (OUT_CAP) : un client qui
     * envoie sans lire peut coûter OUT_CAP octets au serveur, jamais plus.
     * Vérifié par : robustness (16 MiB envoyés, rien de lu : la mémoire reste stable).
     * Indices : make hint CH=05 (14-15).
     * Lire : COURSE.fr.md, « 05-select — un seul thread, select() » ;
     * STYLE: "Backpressure by watermark".
     */
    (void)c;  /* ces conversions font taire -Werror sur ce que vous n'utilisez pas encore */
    return 0;
}

/* ...et l'écriture, tant qu'une sortie est en attente. */
static int conn_wants_write(const struct conn *c)
{
    /*
     * TODO(05.6): si la boucle doit surveiller c en écriture maintenant : 1 ou 0.
     * Un socket peut accepter des données presque tout le temps : surveillé
     * quand il n'y a rien à envoyer, il réveillerait la boucle pour rien, sans
     * fin.
     * Vérifié par : idle-cpu (un serveur inactif dort).
     * Indices : make hint CH=05 (16-17).
     * Lire : COURSE.fr.md, « 05-select — un seul thread, select() » ;
     * STYLE: "Backpressure by watermark".
     */
    (void)c;  /* ces conversions font taire -Werror sur ce que vous n'utilisez pas encore */
    return 0;
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
    /*
     * TODO(05.7): c a été signalée prête en lecture et/ou en écriture (chaque
     * indicateur non nul ou 0) : faire ce pour quoi elle est prête, et retourner
     * 1 quand la connexion est terminée (morte, ou son client a fermé son sens
     * d'écriture et chaque octet a été renvoyé en écho), 0 sinon. L'appelant
     * libère une connexion terminée ; vous ne libérez rien.
     * - la sortie en attente part avant tout ce qui est plus récent ;
     * - dès que la sortie redescend sous le seuil haut, la lecture reprend dans
     *   le même appel : inutile d'attendre un autre signalement « lisible ».
     * Vérifié par : echo (demi-fermeture avec de la sortie en file), robustness.
     * Indices : make hint CH=05 (18-20).
     * Lire : COURSE.fr.md, « 05-select — un seul thread, select() » ;
     * STYLE: "Backpressure by watermark".
     */
    (void)c;  /* ces conversions font taire -Werror sur ce que vous n'utilisez pas encore */
    (void)readable;
    (void)writable;
    (void)conn_flush;
    (void)conn_read;
    (void)conn_wants_read;
    return 1;
}
/* ==== end shared: conn-buffers ==== */

/*
 * Les ensembles maîtres disent quoi surveiller ; select() écrase les ensembles
 * qu'on lui passe, donc chaque tour de boucle lui en donne des copies fraîches.
 * Une connexion se retrouve à partir de son descripteur, dont select() garantit
 * qu'il est inférieur à FD_SETSIZE.
 */
static fd_set master_read, master_write;
static struct conn *conn_of[FD_SETSIZE];  /* la connexion de chaque descripteur, ou NULL */
static int max_fd;                        /* plus grand descripteur des ensembles maîtres */

static void watch(struct conn *c)
{
    /*
     * TODO(05.8): faire dire aux ensembles maîtres ce dont c a besoin maintenant,
     * et rien de plus : c->fd est dans master_read exactement tant que
     * conn_wants_read(c), dans master_write exactement tant que
     * conn_wants_write(c). Ce que veut c change après chaque événement, dans
     * les deux sens.
     * Vérifié par : idle-cpu (pas de boucle qui tourne à vide), robustness (un
     * client plein n'est pas lu), echo.
     * Indices : make hint CH=05 (21-23).
     * Lire : le texte, « Macros pour manipuler fd_set » ;
     * COURSE.fr.md, « 05-select — un seul thread, select() ».
     */
    (void)c;  /* ces conversions font taire -Werror sur ce que vous n'utilisez pas encore */
    (void)master_read;
    (void)master_write;
    (void)conn_wants_read;
    (void)conn_wants_write;
}

static void drop(struct conn *c)
{
    /*
     * TODO(05.9): mettre fin pour de bon à la connexion c : ensuite, aucun
     * ensemble maître, aucune entrée de conn_of[] et aucun max_fd ne désigne
     * son descripteur, et c elle-même a disparu (conn_free() la ferme,
     * journalise son "-" et la libère). max_fd reste le plus grand descripteur
     * surveillé, jamais inférieur à celui du socket d'écoute.
     * Vérifié par : fd-leak, echo (un numéro de descripteur réutilisé par le
     * client suivant), shutdown.
     * Indices : make hint CH=05 (24-26).
     * Lire : le texte, « Exemple Complet : Serveur avec select() » ;
     * COURSE.fr.md, « 05-select — un seul thread, select() ».
     */
    (void)c;  /* ces conversions font taire -Werror sur ce que vous n'utilisez pas encore */
    (void)conn_of;
    (void)max_fd;
    (void)conn_free;
}

/*
 * Accepte tous les clients en attente. Un descripteur égal ou supérieur à
 * FD_SETSIZE ne peut pas entrer dans un fd_set : FD_SET() écrirait au-delà de
 * sa fin et corromprait la mémoire, en silence. Un tel client est refusé —
 * fermé aussitôt et journalisé.
 */
static void accept_clients(int listen_fd)
{
    /*
     * TODO(05.10): accepter tous les clients en attente sur listen_fd, pas un
     * seul, et revenir quand plus personne n'attend ; ne jamais attendre.
     * Chaque client accepté est un socket non bloquant doté d'une struct conn
     * (conn_new()), retrouvé à partir de son descripteur dans conn_of[] et
     * surveillé (watch()).
     * - un descripteur que select() ne peut pas surveiller (FD_SETSIZE et
     *   au-delà) est refusé : fermé, avec une ligne sur stderr qui nomme le
     *   client ;
     * - un client parti avant d'être accepté, un signal, ou le manque de
     *   descripteurs (accept_client() refuse alors ce client) ne doivent pas
     *   interrompre l'acceptation.
     * Vérifié par : parallel (500 clients à la fois), limits (1 100), emfile.
     * Indices : make hint CH=05 (27-30).
     * Lire : le texte, « Limitations de select() » ;
     * COURSE.fr.md, « 05-select — un seul thread, select() ».
     */
    (void)listen_fd;  /* ces conversions font taire -Werror sur ce que vous n'utilisez pas encore */
    (void)accept_client;
    (void)conn_new;
    (void)watch;
}

/*
 * Les ensembles maîtres commencent avec le socket d'écoute, que select() ne
 * peut surveiller que s'il est inférieur à FD_SETSIZE, comme tout autre
 * descripteur.
 */
static void event_loop_open(int listen_fd)
{
    /*
     * TODO(05.11): faire de listen_fd le premier descripteur que la boucle
     * surveille (en lecture), et le plus grand jusqu'ici. Il obéit au même mur
     * que n'importe quel client : si select() ne peut pas le surveiller, le
     * serveur ne peut pas tourner (die()).
     * Indices : make hint CH=05 (31-32).
     * Lire : le texte, « select() : I/O Multiplexing de Base » ;
     * COURSE.fr.md, « 05-select — un seul thread, select() ».
     */
    (void)listen_fd;  /* ces conversions font taire -Werror sur ce que vous n'utilisez pas encore */
}

/*
 * La boucle : select() dort jusqu'à ce que des descripteurs surveillés soient
 * prêts, et chacun reçoit ce pour quoi il est prêt. Jusqu'à un signal d'arrêt,
 * qui rend le socket d'écoute lisible (wake_fd) ; alors toutes les connexions
 * sont fermées.
 */
static void event_loop_run(int listen_fd)
{
    /*
     * TODO(05.12): la boucle événementielle. Jusqu'à stop_requested : dormir dans
     * select() jusqu'à ce qu'un descripteur surveillé soit prêt, puis donner à
     * chacun de ceux qui sont prêts ce pour quoi il est prêt : le socket d'écoute
     * accepte, la connexion d'un client est traitée (conn_handle()), puis fermée
     * si elle est terminée, ou surveillée à nouveau.
     * Quand la boucle se termine, toutes les connexions encore ouvertes sont
     * fermées (chacune journalise son "-") ; main() ferme listen_fd.
     * - select() n'attend jamais sur un descripteur fermé, ne revient jamais
     *   aussitôt quand rien n'est prêt, et un signal (un arrêt) ne doit pas
     *   terminer le serveur sur une erreur : un signal d'arrêt réveille
     *   select() (wake_fd) ;
     * - trouver ceux qui sont prêts coûte un test par descripteur jusqu'à max_fd.
     * Tant que vous ne l'avez pas écrite, cette fonction attend un signal d'arrêt
     * et ne sert personne.
     * Vérifié par : toutes les vérifications ; shutdown, idle-cpu.
     * Indices : make hint CH=05 (33-36).
     * Lire : le texte, « select() : I/O Multiplexing de Base » ;
     * COURSE.fr.md, « 05-select — un seul thread, select() » (et
     * « Ce que fait chaque serveur (le contrat) » pour wake_fd).
     */
    (void)listen_fd;  /* ces conversions font taire -Werror sur ce que vous n'utilisez pas encore */
    (void)accept_clients;
    (void)conn_handle;
    (void)drop;
    while (!stop_requested)
        pause();
}

/* Ce que ce chapitre ajoute à la ligne de commande commune (voir usage()). */
#define CHAPTER_NAME     "05-select: one thread, select()"
#define CHAPTER_OPTS     ""
#define CHAPTER_SYNOPSIS ""
#define CHAPTER_HELP     ""
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
    wake_fd = listen_fd;  /* un signal d'arrêt rend le socket d'écoute lisible */
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

