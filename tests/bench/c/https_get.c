/*
 * The attested-read benchmark's baseline client: plain HTTPS GETs of one URL over one
 * kept-alive TLS connection, each timed with CLOCK_MONOTONIC, printed as read_loop.c
 * prints its reads ("read END_NS DURATION_NS", then "reads N").
 *
 * Usage: https_get HOST PORT CA_PEM TOKEN_FILE PATH N [WARMUP [START_AT_NS]]
 * The server's certificate must verify against CA_PEM (the service's own tls.pem) and
 * name HOST; the request carries "Authorization: Bearer <TOKEN_FILE's first line>".
 * WARMUP requests (default 3; the first one makes the TLS connection) are not printed;
 * the timed loop waits for START_AT_NS; the output is read_loop.c's ("loop_start",
 * "loop_cpu_ns", "read" lines).
 * Every answer must be HTTP 200 with a Content-Length body holding "\"id\": 1,".
 */
#if !defined(__FreeBSD__) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "wait_until.h"

#define BUF 65536

static SSL *ssl;
static char in[BUF];
static size_t have; /* bytes of in[] not yet consumed */

static int die(const char *what)
{
    fprintf(stderr, "https_get: %s\n", what);
    ERR_print_errors_fp(stderr);
    exit(1);
}

static int connect_to(const char *host, const char *port)
{
    struct addrinfo hints = {0}, *res;
    int fd, one = 1;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, port, &hints, &res) != 0)
        die("cannot resolve the host");
    fd = socket(res->ai_family, res->ai_socktype, res->ai_protocol);
    if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) != 0)
        die("cannot connect");
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    freeaddrinfo(res);
    return fd;
}

static int fill(void)
{
    int n = SSL_read(ssl, in + have, (int)(sizeof in - have));
    if (n <= 0)
        die("the connection closed");
    have += (size_t)n;
    return n;
}

static int contains(const char *p, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; k <= n && i <= n - k; i++)
        if (memcmp(p + i, needle, k) == 0)
            return 1;
    return 0;
}

/* One request and its whole answer; checks the status and the body. */
static void get(const char *request, size_t request_len)
{
    char *end;
    size_t head, body;
    if (SSL_write(ssl, request, (int)request_len) != (int)request_len)
        die("cannot send the request");
    for (;;) {
        in[have < sizeof in ? have : sizeof in - 1] = '\0';
        end = have >= 4 ? strstr(in, "\r\n\r\n") : NULL;
        if (end != NULL)
            break;
        if (have >= sizeof in - 1)
            die("the answer's header is too large");
        fill();
    }
    head = (size_t)(end - in) + 4;
    if (strncmp(in, "HTTP/1.1 200", 12) != 0)
        die("the answer is not HTTP 200");
    char *cl = NULL;
    for (char *p = in; p < end; p++)
        if ((*p == 'C' || *p == 'c') && strncasecmp(p, "Content-Length:", 15) == 0) {
            cl = p + 15;
            break;
        }
    if (cl == NULL)
        die("the answer has no Content-Length");
    body = (size_t)strtoul(cl, NULL, 10);
    if (head + body > sizeof in)
        die("the answer is too large");
    while (have < head + body)
        fill();
    if (!contains(in + head, body, "\"id\": 1,"))
        die("the answer does not hold sale 1");
    memmove(in, in + head + body, have - head - body);
    have -= head + body;
}

int main(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(stderr, "usage: https_get HOST PORT CA_PEM TOKEN_FILE PATH N [WARMUP]\n");
        return 2;
    }
    const char *host = argv[1], *port = argv[2], *ca = argv[3], *token_file = argv[4], *path = argv[5];
    long n = strtol(argv[6], NULL, 10), warmup = argc > 7 ? strtol(argv[7], NULL, 10) : 3;
    int64_t start_at = argc > 8 ? (int64_t)strtoll(argv[8], NULL, 10) : 0;
    char token[256] = "", request[1024];
    FILE *fh = fopen(token_file, "r");
    if (fh == NULL || fgets(token, sizeof token, fh) == NULL)
        die("cannot read the token file");
    fclose(fh);
    token[strcspn(token, "\r\n")] = '\0';
    int request_len = snprintf(request, sizeof request,
                               "GET %s HTTP/1.1\r\nHost: %s:%s\r\nAuthorization: Bearer %s\r\n"
                               "Accept: application/json\r\nConnection: keep-alive\r\n\r\n",
                               path, host, port, token);
    if (request_len <= 0 || (size_t)request_len >= sizeof request)
        die("the request is too long");

    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL || SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1)
        die("cannot load the CA file");
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    ssl = SSL_new(ctx);
    if (ssl == NULL || SSL_set1_host(ssl, host) != 1 || SSL_set_fd(ssl, connect_to(host, port)) != 1)
        die("cannot set up TLS");
    if (SSL_connect(ssl) != 1)
        die("the TLS handshake failed");

    int64_t *end = malloc(sizeof *end * (size_t)(n > 0 ? n : 1));
    int64_t *took = malloc(sizeof *took * (size_t)(n > 0 ? n : 1));
    if (end == NULL || took == NULL)
        return 1;
    for (long i = 0; i < warmup; i++)
        get(request, (size_t)request_len);
    int64_t loop_start = wait_until(start_at);
    int64_t cpu_start = cpu_ns();
    for (long i = 0; i < n; i++) {
        int64_t t0 = now_ns();
        get(request, (size_t)request_len);
        end[i] = now_ns();
        took[i] = end[i] - t0;
    }
    int64_t cpu_end = cpu_ns();
    printf("loop_start %lld\nloop_cpu_ns %lld\n", (long long)loop_start, (long long)(cpu_end - cpu_start));
    for (long i = 0; i < n; i++)
        printf("read %lld %lld\n", (long long)end[i], (long long)took[i]);
    printf("reads %ld\n", n);
    SSL_shutdown(ssl);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    free(end);
    free(took);
    return 0;
}
