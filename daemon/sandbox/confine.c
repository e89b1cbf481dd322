/*
 * attestables-confine: the head of every sandboxed command on Linux, in one exec.
 *
 *   attestables-confine --cpu=S:H --as=S:H --nofile=S:H --nproc=S:H --core=S:H
 *                       --fsize=S:H [--user=UID:GID] -- /abs/program ARGS...
 *
 * Does, in this order, what `prlimit ... -- setpriv ... --` did in two execs:
 *   1. sets the six resource limits (soft:hard), while still privileged, so a root
 *      daemon can set limits above its own;
 *   2. with --user (the daemon is root): empties the capability bounding set and the
 *      ambient set, clears supplementary groups, sets real/effective/saved gid then
 *      uid, checks that root cannot be regained, and empties every capability set;
 *   3. sets no_new_privs (a set-uid or file-capability binary gains nothing);
 *   4. execs the program (an absolute path: no PATH search).
 *
 * Every option is required exactly once except --user: a forgotten limit is an error,
 * never a silent default. Any failure prints one line on stderr and exits 125 before
 * anything runs (127 if the exec itself fails). Built by the daemon with the native
 * toolchain's compiler (daemon/sandbox/confine_tool.py); prlimit + setpriv remain the
 * fallback.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#define SETUP_FAILED 125
#define EXEC_FAILED 127

static const char *const NAMES[] = {"cpu", "as", "nofile", "nproc", "core", "fsize"};
static const int RESOURCES[] = {RLIMIT_CPU, RLIMIT_AS, RLIMIT_NOFILE, RLIMIT_NPROC, RLIMIT_CORE, RLIMIT_FSIZE};
#define NLIMITS (sizeof(RESOURCES) / sizeof(RESOURCES[0]))

static void die(const char *what, int err)
{
    if (err)
        fprintf(stderr, "attestables-confine: %s: %s\n", what, strerror(err));
    else
        fprintf(stderr, "attestables-confine: %s\n", what);
    exit(SETUP_FAILED);
}

/* A decimal number without sign, spaces or leading zeros beyond "0"; ends at `stop`. */
static const char *parse_u64(const char *s, char stop, uint64_t *out)
{
    uint64_t value = 0;
    const char *p = s;
    if (*p < '0' || *p > '9' || (*p == '0' && p[1] >= '0' && p[1] <= '9'))
        return NULL;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned digit = (unsigned)(*p - '0');
        if (value > (UINT64_MAX - digit) / 10)
            return NULL;
        value = value * 10 + digit;
    }
    if (*p != stop)
        return NULL;
    *out = value;
    return p;
}

/* "A:B" into two numbers; false if malformed. */
static int parse_pair(const char *s, uint64_t *a, uint64_t *b)
{
    const char *colon = parse_u64(s, ':', a);
    return colon != NULL && parse_u64(colon + 1, '\0', b) != NULL;
}

static void drop_to(uid_t uid, gid_t gid)
{
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
    uid_t ru, eu, su;
    gid_t rg, eg, sg;

    /* The bounding set needs CAP_SETPCAP: empty it before leaving root. */
    for (int cap = 0; prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; cap++)
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0)
            die("dropping the capability bounding set", errno);
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
        die("clearing the ambient capabilities", errno);
    if (setgroups(0, NULL) != 0)
        die("clearing the supplementary groups", errno);
    if (setresgid(gid, gid, gid) != 0)
        die("setresgid", errno);
    if (setresuid(uid, uid, uid) != 0)
        die("setresuid", errno);
    if (getresuid(&ru, &eu, &su) != 0 || ru != uid || eu != uid || su != uid)
        die("the uid did not change", 0);
    if (getresgid(&rg, &eg, &sg) != 0 || rg != gid || eg != gid || sg != gid)
        die("the gid did not change", 0);
    if (getgroups(0, NULL) != 0)
        die("supplementary groups remain", 0);
    if (setuid(0) == 0 || setgid(0) == 0)
        die("root could be regained", 0);
    /* Leaving uid 0 cleared the permitted and effective sets; empty the inheritable too. */
    memset(data, 0, sizeof(data));
    if (syscall(SYS_capset, &header, data) != 0)
        die("clearing the capability sets", errno);
}

int main(int argc, char **argv)
{
    struct rlimit limits[NLIMITS];
    int seen[NLIMITS] = {0};
    int have_user = 0;
    uint64_t uid = 0, gid = 0;
    int i;

    for (i = 1; i < argc; i++) {
        const char *arg = argv[i];
        size_t k;
        if (strcmp(arg, "--") == 0)
            break;
        if (strncmp(arg, "--user=", 7) == 0) {
            if (have_user || !parse_pair(arg + 7, &uid, &gid))
                die("--user must be given once, as UID:GID", 0);
            if (uid == 0 || gid == 0 || uid >= (uid_t)-1 || gid >= (gid_t)-1)
                die("--user must name an unprivileged uid and gid (not 0)", 0);
            have_user = 1;
            continue;
        }
        for (k = 0; k < NLIMITS; k++) {
            size_t n = strlen(NAMES[k]);
            if (strncmp(arg, "--", 2) == 0 && strncmp(arg + 2, NAMES[k], n) == 0 && arg[2 + n] == '=')
                break;
        }
        if (k == NLIMITS) {
            fprintf(stderr, "attestables-confine: unknown argument '%s'\n", arg);
            return SETUP_FAILED;
        }
        {
            uint64_t soft, hard;
            if (seen[k] || !parse_pair(arg + 3 + strlen(NAMES[k]), &soft, &hard) || soft > hard) {
                fprintf(stderr, "attestables-confine: --%s must be given once, as SOFT:HARD with SOFT <= HARD\n",
                        NAMES[k]);
                return SETUP_FAILED;
            }
            limits[k].rlim_cur = (rlim_t)soft;
            limits[k].rlim_max = (rlim_t)hard;
            seen[k] = 1;
        }
    }
    for (size_t k = 0; k < NLIMITS; k++)
        if (!seen[k]) {
            fprintf(stderr, "attestables-confine: --%s is required\n", NAMES[k]);
            return SETUP_FAILED;
        }
    if (i + 1 >= argc || argv[i + 1][0] != '/')
        die("usage: attestables-confine LIMITS [--user=UID:GID] -- /absolute/program [ARGS...]", 0);

    for (size_t k = 0; k < NLIMITS; k++)
        if (setrlimit(RESOURCES[k], &limits[k]) != 0) {
            fprintf(stderr, "attestables-confine: setting --%s: %s\n", NAMES[k], strerror(errno));
            return SETUP_FAILED;
        }
    if (have_user)
        drop_to((uid_t)uid, (gid_t)gid);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        die("setting no_new_privs", errno);

    execv(argv[i + 1], &argv[i + 1]);
    fprintf(stderr, "attestables-confine: cannot run %s: %s\n", argv[i + 1], strerror(errno));
    return EXEC_FAILED;
}
