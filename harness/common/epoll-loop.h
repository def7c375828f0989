/* 07's lesson, which this chapter reuses: defined at the end of this file, copied from 07. */
static void event_loop_open(int listen_fd); /* an epoll instance, watching the listening socket */
static void event_loop_run(int listen_fd);  /* serve until a stop, then free every connection */
