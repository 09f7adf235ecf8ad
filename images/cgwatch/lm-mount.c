/*
 * lm-mount: the controller's mount staging helper (src/sandbox/mount-helper.ts). The
 * controller held a host path open and checked it; this program bind-mounts exactly that
 * open file onto a staging folder of the controller's, with nosuid, nodev, noexec (and
 * read-only when asked), and unmounts staging mounts. It is started once by the controller
 * and kept: forking mount(8) from a controller of 200+ MiB cost ~10 ms of page-table copy
 * per mount (docs/performance.md#where-the-time-of-an-up-goes).
 *
 *   lm-mount <controller pid> <staging prefix>
 *
 * It takes no path of its own: the source of a mount is /proc/<controller pid>/fd/<n>, the
 * controller's descriptor n (the kernel follows that link to the very object the controller
 * opened), and a target must start with <staging prefix> (the controller's lm-mounts-
 * folders) and contain no "." or ".." component. It refuses to work for any process but
 * its parent: when the controller is gone it exits. No shell, no library: a static binary.
 *
 * One request a line on stdin, one answer a line on stdout, in order:
 *   mount <id> <fd> <ro|rw> <target>   ->  <id> ok   |  <id> err <errno> <message>
 *   umount <id> <target>               ->  (the same; a lazy unmount, never following a symlink)
 * A line it cannot read is answered "<id|0> err EINVAL <why>"; end of input ends it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

static pid_t controller;
static const char *prefix;

static void answer(const char *id, int err, const char *what) {
  if (err == 0) printf("%s ok\n", id);
  else printf("%s err %d %s: %s\n", id, err, what, strerror(err));
  fflush(stdout);
}

/* Under the staging prefix, and no "." or ".." component that could lead out of it. */
static int target_ok(const char *t) {
  size_t n = strlen(prefix);
  if (strncmp(t, prefix, n) != 0 || strlen(t) >= PATH_MAX) return 0;
  for (const char *p = t; (p = strchr(p, '/')) != NULL; p++) {
    if (strncmp(p, "/./", 3) == 0 || strncmp(p, "/../", 4) == 0 || strcmp(p, "/.") == 0 || strcmp(p, "/..") == 0) return 0;
    if (p[1] == '/') return 0;
  }
  return 1;
}

/* A decimal number without sign, spaces or overflow; -1 if not one. */
static long number(const char *s) {
  if (*s < '0' || *s > '9') return -1;
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  return *end == '\0' && errno == 0 && v <= INT_MAX ? v : -1;
}

static void do_mount(const char *id, char *args) {
  char *fd = strsep(&args, " ");
  char *mode = strsep(&args, " ");
  char *target = args;
  long n = fd ? number(fd) : -1;
  if (n < 0 || !mode || (strcmp(mode, "ro") != 0 && strcmp(mode, "rw") != 0) || !target || !target_ok(target)) {
    answer(id, EINVAL, "mount: bad request");
    return;
  }
  char source[64];
  snprintf(source, sizeof source, "/proc/%d/fd/%ld", (int)controller, n);
  /* A bind of the one object (not recursive), then its flags: a bind mount takes them only
     on a remount, as mount(8) does. */
  if (mount(source, target, NULL, MS_BIND, NULL) != 0) {
    answer(id, errno, "mount");
    return;
  }
  unsigned long flags = MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | MS_NOEXEC | (strcmp(mode, "ro") == 0 ? MS_RDONLY : 0);
  if (mount(NULL, target, NULL, flags, NULL) != 0) {
    int err = errno;
    /* Never leave a mount without its flags behind. */
    umount2(target, MNT_DETACH | UMOUNT_NOFOLLOW);
    answer(id, err, "remount with nosuid,nodev,noexec");
    return;
  }
  answer(id, 0, NULL);
}

static void do_umount(const char *id, const char *target) {
  if (!target || !target_ok(target)) {
    answer(id, EINVAL, "umount: bad request");
    return;
  }
  answer(id, umount2(target, MNT_DETACH | UMOUNT_NOFOLLOW) == 0 ? 0 : errno, "umount");
}

int main(int argc, char **argv) {
  if (argc != 3 || number(argv[1]) <= 0 || argv[2][0] != '/') {
    fputs("usage: lm-mount <controller pid> <staging prefix>\n", stderr);
    return 2;
  }
  controller = (pid_t)number(argv[1]);
  prefix = argv[2];
  if (getppid() != controller) {
    fputs("lm-mount: works only for the process that started it\n", stderr);
    return 2;
  }
  printf("0 ready\n");
  fflush(stdout);
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  while ((len = getline(&line, &cap, stdin)) > 0) {
    if (line[len - 1] == '\n') line[--len] = '\0';
    /* A NUL inside the line would cut a target short: refused whole. */
    if (strlen(line) != (size_t)len) {
      answer("0", EINVAL, "bad request line");
      continue;
    }
    /* The controller died and another process took this pid's place as parent: stop. */
    if (getppid() != controller) return 1;
    char *rest = line;
    char *verb = strsep(&rest, " ");
    char *id = rest ? strsep(&rest, " ") : NULL;
    if (!id || number(id) < 0) {
      answer(id && number(id) >= 0 ? id : "0", EINVAL, "bad request line");
      continue;
    }
    if (strcmp(verb, "mount") == 0) do_mount(id, rest);
    else if (strcmp(verb, "umount") == 0) do_umount(id, rest);
    else answer(id, EINVAL, "unknown request");
  }
  free(line);
  return 0;
}
