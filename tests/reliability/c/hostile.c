/*
 * Hostile behaviour inside a compartment, one per mode: what a malicious or broken
 * integration process could do to its launcher. The tests (test_hostile_programs.py)
 * check that each is contained, that the daemon carries on unaffected, and that the run
 * ends in a clear state.
 *
 * Usage: hostile MODE [MARKER [ARG]]. MARKER is a unique word the test passes so that it
 * can look for leftover processes by their command line; ARG is mode-specific.
 *
 *   fd_exhaust        open files, sockets and pipes until refused, then do the handshake
 *   flood_requests    handshake, then READ frames as fast as possible for ARG seconds, a
 *                     forked child draining the answers
 *   flood_no_drain    handshake, then READ frames without ever reading an answer
 *   oversize          handshake, a frame of exactly the limit, then one byte over it
 *   half_header       three bytes of a length, then wait
 *   half_frame_close  half of a frame, close fd 3, then wait
 *   half_frame_exit   half of a frame, then exit 0
 *   write_after_close close fd 3, write to it, reopen fd 3 as /dev/null and write a HELLO
 *   write_after_shutdown  shut down the write side of fd 3, then write(2) to it (SIGPIPE)
 *   fork_storm        handshake, then fork children that all write requests on fd 3
 *   thread_storm      start threads until refused
 *   orphans           fork sleepers (and their children) up to the limit, then exit 0
 *   proc_peek         list /proc and read what other processes show
 *   signal_parent     every signal to the parent, to pid 1 and to -1, and ARG (the
 *                     daemon's pid on the host) SIGKILL
 *   stop_self         raise(SIGSTOP)
 */
#if !defined(_GNU_SOURCE)
#define _GNU_SOURCE
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "attestables.h"

#define FD 3

static void out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void out(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}

static int handshake(void)
{
    int rc = att_runtime_init();
    out("handshake %s\n", rc == ATT_OK ? "ok" : att_strerror(rc));
    return rc;
}

static int put(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* A READ frame to service "nowhere" with `sealed` bytes of ciphertext; returns its size. */
static size_t read_frame(uint8_t *buf, uint32_t request_id, size_t sealed)
{
    static const char sid[] = "nowhere";
    size_t payload = 4 + 2 + (sizeof sid - 1) + 2 + 16 + 4 + sealed;
    be32(buf, (uint32_t)(1 + payload));
    buf[4] = ATT_FRAME_READ;
    uint8_t *p = buf + 5;
    be32(p, request_id);
    p += 4;
    *p++ = 0;
    *p++ = sizeof sid - 1;
    memcpy(p, sid, sizeof sid - 1);
    p += sizeof sid - 1;
    *p++ = 0;
    *p++ = 16;
    memset(p, 0x5a, 16);
    p += 16;
    be32(p, (uint32_t)sealed);
    p += 4;
    memset(p, 0xa5, sealed);
    return 5 + payload;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int fd_exhaust(void)
{
    int files = 0, sockets = 0, pipes = 0, last = -1;
    while ((last = open("/dev/null", O_RDONLY)) >= 0)
        files++;
    out("files %d errno %s\n", files, strerror(errno));
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    if (s >= 0)
        sockets++;
    int pfd[2];
    if (pipe(pfd) == 0)
        pipes++;
    out("sockets %d pipes %d\n", sockets, pipes);
    /* With no descriptor to spare, then with a few freed: the handshake needs none. */
    int rc = att_runtime_init();
    out("handshake with none free: %s\n", rc == ATT_OK ? "ok" : att_strerror(rc));
    return rc == ATT_OK ? 0 : 1;
}

static int flood(double seconds, int drain)
{
    if (handshake() != ATT_OK)
        return 1;
    if (drain) {
        pid_t child = fork();
        if (child == 0) {
            static uint8_t sink[65536];
            while (read(FD, sink, sizeof sink) > 0)
                ;
            _exit(0);
        }
    }
    static uint8_t frame[256];
    double end = now_s() + seconds;
    unsigned long sent = 0;
    uint32_t id = 1;
    while (now_s() < end) {
        size_t n = read_frame(frame, id++, 48);
        if (put(FD, frame, n) != 0) {
            out("write failed after %lu frames: %s\n", sent, strerror(errno));
            return 1;
        }
        sent++;
    }
    out("sent %lu frames\n", sent);
    return 0;
}

static int oversize(void)
{
    if (handshake() != ATT_OK)
        return 1;
    /* Exactly the limit: a READ whose ciphertext fills the whole frame. */
    size_t sealed = ATT_MAX_FRAME - 1 - (4 + 2 + 7 + 2 + 16 + 4);
    uint8_t *frame = malloc(ATT_MAX_FRAME + 8);
    if (frame == NULL)
        return 1;
    size_t n = read_frame(frame, 1, sealed);
    if (n != ATT_MAX_FRAME + 4 || put(FD, frame, n) != 0)
        return 1;
    uint8_t head[5];
    ssize_t got = read(FD, head, sizeof head);
    out("answer to a frame of the limit: type %d\n", got == 5 ? head[4] : -1);
    /* One byte over: the launcher must refuse it from the length alone. */
    be32(frame, ATT_MAX_FRAME + 1);
    frame[4] = ATT_FRAME_READ;
    put(FD, frame, 5);
    for (int i = 0; i < 4; i++) /* then keep streaming: nobody should be reading */
        if (put(FD, frame, ATT_MAX_FRAME / 2) != 0)
            break;
    out("still alive after the oversized frame\n");
    sleep(10);
    return 0;
}

static void half_frame(void)
{
    uint8_t frame[128];
    size_t n = read_frame(frame, 1, 48);
    (void)n;
    put(FD, frame, 40); /* of a frame of ~85 bytes */
}

static int write_after_close(void)
{
    close(FD);
    ssize_t w = write(FD, "x", 1);
    out("write to closed fd 3: %zd %s\n", w, w < 0 ? strerror(errno) : "");
    int again = open("/dev/null", O_WRONLY);
    out("reopened as fd %d\n", again);
    uint8_t hello[5] = {0, 0, 0, 1, ATT_FRAME_HELLO};
    w = write(FD, hello, sizeof hello);
    out("hello to the new fd 3: %zd\n", w);
    int rc = att_runtime_init();
    out("handshake after close: %s\n", att_strerror(rc));
    return 0;
}

static int write_after_shutdown(void)
{
    shutdown(FD, SHUT_WR);
    out("about to write after shutdown\n");
    ssize_t w = write(FD, "xxxxx", 5); /* SIGPIPE: write(2), not send(MSG_NOSIGNAL) */
    out("write after shutdown returned %zd (%s)\n", w, strerror(errno));
    return 0;
}

static int fork_storm(void)
{
    if (handshake() != ATT_OK)
        return 1;
    int forked = 0;
    for (int i = 0; i < 200; i++) {
        pid_t pid = fork();
        if (pid < 0)
            break;
        if (pid == 0) {
            uint8_t frame[128];
            for (uint32_t k = 0; k < 20; k++) {
                size_t n = read_frame(frame, (uint32_t)(i * 100 + k + 1), 48);
                if (put(FD, frame, n) != 0)
                    break;
            }
            _exit(0);
        }
        forked++;
    }
    out("forked %d writers\n", forked);
    /* Drain the answers while the writers finish, or they would block on a full socket. */
    int reaped = 0;
    static uint8_t sink[65536];
    while (reaped < forked) {
        struct pollfd p = {.fd = FD, .events = POLLIN};
        if (poll(&p, 1, 100) > 0 && read(FD, sink, sizeof sink) <= 0)
            break;
        while (waitpid(-1, NULL, WNOHANG) > 0)
            reaped++;
    }
    out("reaped %d writers\n", reaped);
    return 0;
}

static void *idle_thread(void *arg)
{
    (void)arg;
    pause();
    return NULL;
}

static int thread_storm(void)
{
    int started = 0;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    for (int i = 0; i < 100000; i++) {
        pthread_t t;
        int rc = pthread_create(&t, &attr, idle_thread, NULL);
        if (rc != 0) {
            out("threads %d refused: %s\n", started, strerror(rc));
            return 0;
        }
        started++;
    }
    out("threads %d never refused\n", started);
    return 0;
}

static int orphans(void)
{
    int forked = 0;
    for (int i = 0; i < 1000; i++) {
        pid_t pid = fork();
        if (pid < 0)
            break;
        if (pid == 0) {
            setsid();
            if (fork() == 0) /* a grandchild too, in its own session */
                for (;;)
                    pause();
            for (;;)
                pause();
        }
        forked++;
    }
    out("left %d sleepers behind\n", forked);
    return 0;
}

static int proc_peek(const char *daemon_pid)
{
    DIR *d = opendir("/proc");
    if (d == NULL)
        return 1;
    struct dirent *e;
    int seen = 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char path[300], cmd[256] = {0};
        snprintf(path, sizeof path, "/proc/%s/cmdline", e->d_name);
        int fd = open(path, O_RDONLY);
        ssize_t n = fd >= 0 ? read(fd, cmd, sizeof cmd - 1) : -1;
        if (fd >= 0)
            close(fd);
        for (ssize_t i = 0; i < n; i++)
            if (cmd[i] == 0)
                cmd[i] = ' ';
        out("pid %s: %s\n", e->d_name, n > 0 ? cmd : "?");
        seen++;
    }
    closedir(d);
    out("seen %d processes\n", seen);
    const char *probes[] = {"/proc/1/environ", "/proc/1/root/etc/hostname", "/proc/1/mem", NULL};
    for (int i = 0; probes[i]; i++) {
        int fd = open(probes[i], O_RDONLY);
        out("open %s: %s\n", probes[i], fd >= 0 ? "opened" : strerror(errno));
        if (fd >= 0)
            close(fd);
    }
    if (daemon_pid) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%s/environ", daemon_pid);
        int fd = open(path, O_RDONLY);
        out("daemon environ: %s\n", fd >= 0 ? "OPENED" : strerror(errno));
    }
    return 0;
}

static int signal_parent(const char *daemon_pid)
{
    pid_t parent = getppid();
    int delivered = 0;
    signal(SIGHUP, SIG_IGN); /* so that kill(-1, ...) does not end this program early */
    for (int sig = 1; sig < 65; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP)
            continue;
        if (kill(parent, sig) == 0)
            delivered++;
        kill(1, sig);
    }
    out("signals to the parent (pid %d): %d delivered\n", (int)parent, delivered);
    if (daemon_pid) {
        int rc = kill((pid_t)atoi(daemon_pid), SIGKILL);
        out("SIGKILL to the daemon's pid: %s\n", rc == 0 ? "DELIVERED" : strerror(errno));
    }
    kill(parent, SIGSTOP);
    kill(parent, SIGKILL);
    out("parent still there: %s\n", getppid() == parent ? "yes" : "no");
    kill(-1, SIGKILL); /* everything this program can reach, itself included */
    out("survived kill(-1)\n");
    return 0;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    const char *arg = argc > 3 ? argv[3] : NULL;
    if (strcmp(mode, "fd_exhaust") == 0)
        return fd_exhaust();
    if (strcmp(mode, "flood_requests") == 0)
        return flood(arg ? atof(arg) : 3.0, 1);
    if (strcmp(mode, "flood_no_drain") == 0)
        return flood(arg ? atof(arg) : 3.0, 0);
    if (strcmp(mode, "oversize") == 0)
        return oversize();
    if (strcmp(mode, "half_header") == 0) {
        put(FD, (const uint8_t *)"\0\0\0", 3);
        for (;;)
            pause();
    }
    if (strcmp(mode, "half_frame_close") == 0) {
        half_frame();
        close(FD);
        sleep(10);
        return 0;
    }
    if (strcmp(mode, "half_frame_exit") == 0) {
        half_frame();
        return 0;
    }
    if (strcmp(mode, "write_after_close") == 0)
        return write_after_close();
    if (strcmp(mode, "write_after_shutdown") == 0)
        return write_after_shutdown();
    if (strcmp(mode, "fork_storm") == 0)
        return fork_storm();
    if (strcmp(mode, "thread_storm") == 0)
        return thread_storm();
    if (strcmp(mode, "orphans") == 0)
        return orphans();
    if (strcmp(mode, "proc_peek") == 0)
        return proc_peek(arg);
    if (strcmp(mode, "signal_parent") == 0)
        return signal_parent(arg);
    if (strcmp(mode, "stop_self") == 0) {
        out("stopping\n");
        raise(SIGSTOP);
        out("continued\n");
        return 0;
    }
    fprintf(stderr, "hostile: unknown mode %s\n", mode);
    return 2;
}
