/* 01's lesson, which this chapter reuses: defined at the end of this file, copied from 01. */
static void echo_session(int conn_fd, const char *peer); /* echo until the client closes, or a stop */
