/*
 * multus-py-shim: the CNI plugin kubelet executes in thick mode. It forwards one call
 * (stdin and the whole environment) to multus-node over its unix socket and prints the
 * answer unchanged, exit code and the delegate's own CNI error code included.
 *
 * Wire protocol, version 1 (cniplugin/multus_cni/shim.py has the Python twin and the
 * daemon's side; both are tested by the same tests):
 *   request  "MPYSHIM 1 <env bytes> <stdin bytes>\n" env ("K=V\0"...) stdin
 *   replies  "MPYSHIM 1 ACK\n"                      (after 1 s) alive, the result follows
 *            "MPYSHIM <v> RESULT <rc> <out> <err>\n" stdout bytes, stderr bytes
 * Lengths are decimal, so no JSON parser is needed here. The daemon unreachable (or
 * silent for 9 s before its ACK) is CNI error 11; a DEL then succeeds when the
 * attachment cache holds no record of the interface.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define PROTO 1
#define MAX_CONF (1 << 20)
#define MAX_OUT (64 << 20)
#define ACK_BUDGET_MS 9000
#define REPLY_MS 300000
#define LATEST "1.1.0"
#define VERSIONS "[\"0.3.0\",\"0.3.1\",\"0.4.0\",\"1.0.0\",\"1.1.0\"]"

extern char **environ;
static char conf[MAX_CONF + 2];
static size_t conf_len;
static char version[16] = LATEST;
static char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static const char *command = "";

static long now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000L + t.tv_nsec / 1000000L;
}

static int blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* The string value of top-level key `key` in the conf; -1 when absent or escaped. */
static int conf_string(const char *key, char *out, size_t cap) {
    size_t klen = strlen(key), i, j, start;
    int depth = 0;
    for (i = 0; i < conf_len; i++) {
        char c = conf[i];
        if (c == '{' || c == '[') depth++;
        else if (c == '}' || c == ']') depth--;
        if (c != '"') continue;
        for (start = ++i; i < conf_len && conf[i] != '"'; i++)
            if (conf[i] == '\\') i++;
        if (i >= conf_len) return -1;
        if (depth != 1 || i - start != klen || memcmp(conf + start, key, klen)) continue;
        for (j = i + 1; j < conf_len && blank(conf[j]); j++) {}
        if (j >= conf_len || conf[j] != ':') continue;
        for (j++; j < conf_len && blank(conf[j]); j++) {}
        if (j >= conf_len || conf[j] != '"') return -1;
        for (start = ++j; j < conf_len && conf[j] != '"' && conf[j] != '\\'; j++) {}
        if (j >= conf_len || conf[j] != '"' || j - start >= cap) return -1;
        memcpy(out, conf + start, j - start);
        out[j - start] = 0;
        return 0;
    }
    return -1;
}

static void json_string(const char *s) {
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

static int fail(int code, const char *msg) {
    printf("{\"cniVersion\":");
    json_string(version);
    printf(",\"code\":%d,\"msg\":", code);
    json_string(msg);
    printf("}\n");
    fflush(stdout);
    return 1;
}

static int safe_name(const char *s) {
    if (!s || !*s || strlen(s) > 255) return 0;
    for (; *s; s++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-", *s))
            return 0;
    return 1;
}

/* Whether the attachment cache may hold a record of this interface (1 when unsure).
 * The daemon links <socket dir>/attachments to its own cache; without that link the
 * conf's cniDir (default /var/lib/cni/multus) is where the records are. */
static int maybe_attached(const char *sock_dir) {
    char dir[512], path[1024];
    struct stat st;
    const char *cid = getenv("CNI_CONTAINERID"), *ifname = getenv("CNI_IFNAME");
    if (!safe_name(cid) || !safe_name(ifname)) return 1;
    snprintf(dir, sizeof dir, "%s/attachments", sock_dir);
    if (lstat(dir, &st) != 0) {
        if (conf_string("cniDir", dir, sizeof dir - 13) || dir[0] != '/')
            strcpy(dir, "/var/lib/cni/multus");
        strcat(dir, "/attachments");
    }
    if (snprintf(path, sizeof path, "%s/%s:%s.json", dir, cid, ifname) >= (int)sizeof path)
        return 1;
    return !(stat(path, &st) != 0 && errno == ENOENT);
}

static int unreachable(const char *sock_dir, const char *why) {
    char msg[1024];
    if (!strcmp(command, "DEL") && !maybe_attached(sock_dir)) {
        fprintf(stderr, "multus-py-shim: %s (%s); DEL: no attachment recorded, nothing to do\n",
                sock_path, why);
        return 0;
    }
    snprintf(msg, sizeof msg, "multus-node is not reachable at %s: %s", sock_path, why);
    return fail(!strcmp(command, "STATUS") ? 50 : 11, msg);
}

static int wait_fd(int fd, short events, long deadline) {
    struct pollfd p = {fd, events, 0};
    long left = deadline - now_ms();
    if (left <= 0) return errno = ETIMEDOUT, -1;
    int n = poll(&p, 1, (int)left);
    if (n == 0) errno = ETIMEDOUT;
    return n > 0 ? 0 : -1;
}

static int send_all(int fd, const char *buf, size_t len, long deadline) {
    while (len) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n > 0) buf += n, len -= (size_t)n;
        else if (n < 0 && errno == EINTR) continue;
        else if (n < 0 && errno == EAGAIN) { if (wait_fd(fd, POLLOUT, deadline)) return -1; }
        else return -1;
    }
    return 0;
}

static int recv_all(int fd, char *buf, size_t len, long deadline) {
    while (len) {
        ssize_t n = recv(fd, buf, len, 0);
        if (n > 0) buf += n, len -= (size_t)n;
        else if (n == 0) return errno = ECONNRESET, -1;
        else if (errno == EINTR) continue;
        else if (errno == EAGAIN) { if (wait_fd(fd, POLLIN, deadline)) return -1; }
        else return -1;
    }
    return 0;
}

static int recv_line(int fd, char *line, size_t cap, long deadline) {
    for (size_t i = 0; i + 1 < cap; i++) {
        if (recv_all(fd, line + i, 1, deadline)) return -1;
        if (line[i] == '\n') return line[i] = 0, 0;
    }
    return errno = EPROTO, -1;
}

int main(void) {
    char dir[512] = "/run/multus", v[16], head[128], line[128], word[16];
    size_t env_len = 0, out_len, err_len, at = 0;
    int fd, rc, proto;
    ssize_t n;
    command = getenv("CNI_COMMAND") ? getenv("CNI_COMMAND") : "";
    if (!strcmp(command, "VERSION")) {
        printf("{\"cniVersion\":\"%s\",\"supportedVersions\":%s}\n", LATEST, VERSIONS);
        return 0;
    }
    while (conf_len < sizeof conf - 1 && (n = read(0, conf + conf_len, sizeof conf - 1 - conf_len)))
        if (n > 0) conf_len += (size_t)n;
        else if (errno != EINTR) break;
    if (!conf_string("cniVersion", v, sizeof v) && strspn(v, "0123456789.") == strlen(v) && *v)
        strcpy(version, v);
    if (conf_len > MAX_CONF) { /* the engine's own words for it */
        snprintf(head, sizeof head, "network configuration on stdin is %zu bytes, more than %d",
                 conf_len, MAX_CONF);
        return fail(6, head);
    }
    if (conf_string("daemonSocketDir", dir, sizeof dir) == 0 && dir[0] != '/')
        return fail(7, "daemonSocketDir: must be an absolute path");
    if (snprintf(sock_path, sizeof sock_path, "%s/multus.sock", dir) >= (int)sizeof sock_path)
        return fail(7, "daemonSocketDir: too long for a unix socket path");
    for (char **e = environ; *e; e++) env_len += strlen(*e) + 1;
    char *env = malloc(env_len ? env_len : 1);
    if (!env) return fail(11, "multus-py-shim: out of memory");
    for (char **e = environ; *e; e++) at += (size_t)sprintf(env + at, "%s", *e) + 1;
    long deadline = now_ms() + ACK_BUDGET_MS;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    strcpy(addr.sun_path, sock_path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return unreachable(dir, strerror(errno));
    while (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        if (errno != EAGAIN && errno != EINTR) return unreachable(dir, strerror(errno));
        if (now_ms() >= deadline) return unreachable(dir, "its listen queue stayed full");
        usleep(20000); /* a unix socket's full backlog says EAGAIN, not EINPROGRESS */
    }
    snprintf(head, sizeof head, "MPYSHIM %d %zu %zu\n", PROTO, env_len, conf_len);
    int sent = send_all(fd, head, strlen(head), deadline) || send_all(fd, env, env_len, deadline) ||
               send_all(fd, conf, conf_len, deadline), why = errno;
    /* a refusal may come before the whole request was read: its answer still counts */
    if (recv_line(fd, line, sizeof line, deadline)) {
        if (sent) errno = why;
        return unreachable(dir, errno == ETIMEDOUT ? "no answer within 9s" : strerror(errno));
    }
    if (!strcmp(line, "MPYSHIM 1 ACK") &&
        recv_line(fd, line, sizeof line, now_ms() + REPLY_MS))
        return unreachable(dir, errno == ETIMEDOUT ? "no result within 300s" : strerror(errno));
    if (sscanf(line, "MPYSHIM %d %15s %d %zu %zu", &proto, word, &rc, &out_len, &err_len) != 5 ||
        strcmp(word, "RESULT") || proto < 1 || rc < 0 || rc > 255 || out_len > MAX_OUT ||
        err_len > MAX_OUT)
        return fail(11, "multus-py-shim: multus-node sent a reply this shim cannot read");
    char *out = malloc(out_len + err_len + 1);
    if (!out || recv_all(fd, out, out_len + err_len, now_ms() + REPLY_MS))
        return unreachable(dir, out ? strerror(errno) : "out of memory");
    fwrite(out, 1, out_len, stdout);
    fwrite(out + out_len, 1, err_len, stderr);
    fflush(stdout);
    return rc;
}
