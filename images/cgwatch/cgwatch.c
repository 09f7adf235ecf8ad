/*
 * cgwatch: waits on the kernel's cgroup notifications for the LogoMesh controller and
 * reports each as one JSON line on stdout. Node.js cannot wait on an eventfd or for
 * POLLPRI, so this small program does it and the controller reads its output.
 *
 * Commands, one per line on stdin, fields separated by tabs:
 *   E <key> <cgroup.event_control> <file> [<args>]  cgroup v1 event: an eventfd registered for
 *                                                   <file> (memory.oom_control, or
 *                                                   memory.usage_in_bytes with a threshold in <args>)
 *   P <key> <pressure file> <trigger>               a PSI trigger ("some 150000 1000000"), POLLPRI
 *   N <key> <file>                                  a file the kernel notifies on change
 *                                                   (pids.events, memory.events, cgroup.events): inotify
 *   W <key> <file> <interval ms> [k]                a file the kernel does not notify on (cgroup v1
 *                                                   pids.events): read every <interval> ms (1-60000),
 *                                                   reported when its text changes. With "k" (cgroup v1
 *                                                   pids.events) and the kernel log readable: not read
 *                                                   while every count in it is 0, but at once when the
 *                                                   kernel logs the cgroup's first refused fork, and
 *                                                   every <interval> ms from then on (see kmsg_record)
 *   U <key>                                         stop watching <key>
 * Keys are 1-128 characters of [A-Za-z0-9_.:-], so they need no JSON escaping.
 *
 * Run as `cgwatch -p` it never reads the kernel log: every W watch is read every interval.
 *
 * Output lines:
 *   {"ready":1,"kmsg":1}                          started; W k watches wait on the kernel log
 *   {"ready":1,"kmsg":0,"why":"<text>"}           started; the kernel log cannot be read, so they
 *                                                 are read every interval
 *   {"kmsg":0,"why":"<text>"}                     the kernel log failed later: the same, from now on
 *   {"k":"<key>","ok":1}                          the watch is in place
 *   {"k":"<key>","err":"<text>","errno":<n>}      it could not be set up (nothing is kept)
 *   {"k":"<key>","ev":<n>,"t":<ns>}               it fired (n: the eventfd count, else 1);
 *                                                 t: CLOCK_MONOTONIC when this program woke
 *   {"k":"<key>","gone":1,"t":<ns>}               the file went away (its cgroup was removed)
 *   {"err":"<text>"}                              a command line that was not understood
 * It exits when stdin closes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#define MAX_LINE 8192
#define MAX_KEY 128
#define MAX_WATCHES 65536

enum kind { FREE = 0, EVENTFD, PSI, NOTIFY, POLL };

#define MAX_TEXT 512

struct watch {
  enum kind kind;
  int fd;      /* eventfd, pressure file; -1 for NOTIFY */
  int wd;      /* inotify watch descriptor for NOTIFY */
  int target;  /* the watched file, kept open while its eventfd is registered */
  long long interval, due; /* POLL: ns between reads, and when the next one is due */
  int len;                 /* POLL: bytes of text last read */
  int dormant;             /* POLL: not read until the kernel log names its cgroup */
  char *dir;               /* POLL with "k": the file's folder (its cgroup), malloc'd */
  char text[MAX_TEXT];
  char key[MAX_KEY + 1];
};

static struct watch *watches;
static int nwatches;
static int epfd, infd;
static int kmsgfd = -1; /* /dev/kmsg, read from its end; -1: not used */

#define ID_KMSG 0xfffffffdu
#define ID_STDIN 0xfffffffeu
#define ID_INOTIFY 0xffffffffu

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* One write per line, unbuffered: the controller measures latency from this output. */
static void out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void out(const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if (n > (int)sizeof buf - 2) n = sizeof buf - 2;
  buf[n++] = '\n';
  for (int off = 0; off < n;) {
    ssize_t w = write(1, buf + off, n - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) exit(0); /* the controller is gone */
    off += w;
  }
}

static int valid_key(const char *k) {
  size_t n = strlen(k);
  if (n == 0 || n > MAX_KEY) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = k[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == ':' || c == '-')) return 0;
  }
  return 1;
}

static int find(const char *key) {
  for (int i = 0; i < nwatches; i++)
    if (watches[i].kind != FREE && strcmp(watches[i].key, key) == 0) return i;
  return -1;
}

static int alloc_slot(void) {
  for (int i = 0; i < nwatches; i++)
    if (watches[i].kind == FREE) return i;
  if (nwatches == MAX_WATCHES) return -1;
  return nwatches++;
}

static void release(int i) {
  struct watch *w = &watches[i];
  if (w->kind == NOTIFY && w->wd >= 0) inotify_rm_watch(infd, w->wd);
  /* Closing the eventfd is what unregisters a v1 cgroup event. */
  if (w->fd >= 0) close(w->fd);
  if (w->target >= 0) close(w->target);
  free(w->dir);
  memset(w, 0, sizeof *w);
  w->kind = FREE;
  w->fd = w->target = w->wd = -1;
}

static void fail(const char *key, const char *what) {
  int e = errno;
  out("{\"k\":\"%s\",\"err\":\"%s: %s\",\"errno\":%d}", key, what, strerror(e), e);
}

/* Report why watch i could not be set up, and free it. */
static void bail(int i, const char *what) {
  fail(watches[i].key, what);
  release(i);
}

static void add_eventfd(int i, const char *control, const char *file, const char *args) {
  struct watch *w = &watches[i];
  w->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (w->fd < 0) { bail(i, "eventfd"); return; }
  w->target = open(file, O_RDONLY | O_CLOEXEC);
  if (w->target < 0) { bail(i, "open file"); return; }
  int c = open(control, O_WRONLY | O_CLOEXEC);
  if (c < 0) { bail(i, "open cgroup.event_control"); return; }
  char line[256];
  int n = snprintf(line, sizeof line, "%d %d%s%s", w->fd, w->target, *args ? " " : "", args);
  ssize_t wr = (n > 0 && n < (int)sizeof line) ? write(c, line, n) : (errno = EINVAL, -1);
  int saved = errno;
  close(c);
  errno = saved;
  if (wr < 0) { bail(i, "write cgroup.event_control"); return; }
  struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (unsigned)i};
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, w->fd, &ev) < 0) { bail(i, "epoll"); return; }
  w->kind = EVENTFD;
  out("{\"k\":\"%s\",\"ok\":1}", w->key);
}

static void add_psi(int i, const char *file, const char *trigger) {
  struct watch *w = &watches[i];
  w->fd = open(file, O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (w->fd < 0) { bail(i, "open pressure file"); return; }
  /* The kernel wants the terminating NUL written too. */
  if (write(w->fd, trigger, strlen(trigger) + 1) < 0) { bail(i, "write trigger"); return; }
  struct epoll_event ev = {.events = EPOLLPRI, .data.u32 = (unsigned)i};
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, w->fd, &ev) < 0) { bail(i, "epoll"); return; }
  w->kind = PSI;
  out("{\"k\":\"%s\",\"ok\":1}", w->key);
}

static void add_notify(int i, const char *file) {
  struct watch *w = &watches[i];
  w->wd = inotify_add_watch(infd, file, IN_MODIFY);
  if (w->wd < 0) { bail(i, "inotify"); return; }
  /* inotify gives the same descriptor for a file watched twice: one key per file. */
  for (int j = 0; j < nwatches; j++) {
    if (j != i && watches[j].kind == NOTIFY && watches[j].wd == w->wd) {
      w->wd = -1;
      errno = EEXIST;
      { bail(i, "file already watched"); return; }
    }
  }
  w->kind = NOTIFY;
  out("{\"k\":\"%s\",\"ok\":1}", w->key);
}

/* Read a POLL watch's file again (pread at 0: the file stays open); 1 if its text changed. */
static int reread(struct watch *w) {
  char buf[MAX_TEXT];
  ssize_t r = pread(w->fd, buf, sizeof buf, 0);
  if (r < 0) return -1;
  int changed = r != w->len || memcmp(buf, w->text, r) != 0;
  memcpy(w->text, buf, r);
  w->len = (int)r;
  return changed;
}

/* 1 if every number in the text is 0 ("max 0"): nothing has been refused yet. */
static int all_zero(const char *text, int len) {
  for (int j = 0; j < len; j++)
    if (text[j] >= '1' && text[j] <= '9') return 0;
  return 1;
}

static void add_poll(int i, const char *file, const char *interval, int on_kmsg) {
  struct watch *w = &watches[i];
  char *end;
  long ms = strtol(interval, &end, 10);
  if (*end || ms < 1 || ms > 60000) {
    errno = EINVAL;
    bail(i, "interval (expected 1-60000 ms)");
    return;
  }
  w->fd = open(file, O_RDONLY | O_CLOEXEC);
  if (w->fd < 0) { bail(i, "open file"); return; }
  w->len = -1;
  if (reread(w) < 0) { bail(i, "read file"); return; }
  w->interval = ms * 1000000LL;
  /* On a grid of the interval, so every watch with the same interval is read in one wake-up. */
  w->due = (now_ns() / w->interval + 1) * w->interval;
  if (on_kmsg) {
    w->dir = strdup(file);
    char *slash = w->dir ? strrchr(w->dir, '/') : NULL;
    if (slash) *slash = '\0';
  }
  /* The kernel logs only a cgroup's first refused fork: a count already above 0 means that
     line is past (maybe before this watch), so such a file is read every interval at once. */
  w->dormant = on_kmsg && kmsgfd >= 0 && w->dir && all_zero(w->text, w->len);
  w->kind = POLL;
  out("{\"k\":\"%s\",\"ok\":1}", w->key);
}

/* Read the POLL watches that are due; returns the ms until the next one is (-1: none). */
static int poll_due(void) {
  long long t = now_ns(), next = -1;
  for (int i = 0; i < nwatches; i++) {
    struct watch *w = &watches[i];
    if (w->kind != POLL || w->dormant) continue;
    if (w->due <= t) {
      int changed = reread(w);
      if (changed < 0) {
        out("{\"k\":\"%s\",\"gone\":1,\"t\":%lld}", w->key, t);
        release(i);
        continue;
      }
      if (changed) out("{\"k\":\"%s\",\"ev\":1,\"t\":%lld}", w->key, t);
      /* The next grid point: a late wake-up is not made up for. */
      w->due = (t / w->interval + 1) * w->interval;
    }
    if (next < 0 || w->due < next) next = w->due;
  }
  if (next < 0) return -1;
  long long wait = (next - now_ns() + 999999) / 1000000;
  return wait < 0 ? 0 : (int)wait;
}

static void command(char *line) {
  char *f[5] = {0};
  int n = 0;
  for (char *p = line; n < 5; n++) {
    f[n] = p;
    char *tab = strchr(p, '\t');
    if (!tab) { n++; break; }
    *tab = '\0';
    p = tab + 1;
  }
  if (n < 2 || strlen(f[0]) != 1 || !valid_key(f[1])) {
    out("{\"err\":\"expected <E|P|N|W|U> TAB <key of [A-Za-z0-9_.:-]{1,128}> ...\"}");
    return;
  }
  const char *key = f[1];
  char cmd = f[0][0];
  if (cmd == 'U') {
    int i = find(key);
    if (i >= 0) release(i);
    return;
  }
  int need = cmd == 'E' || cmd == 'P' || cmd == 'W' ? 4 : cmd == 'N' ? 3 : 0;
  if (!need || n < need) {
    out("{\"k\":\"%s\",\"err\":\"expected E, P, N or W with its fields\",\"errno\":%d}", key, EINVAL);
    return;
  }
  if (find(key) >= 0) {
    out("{\"k\":\"%s\",\"err\":\"key already in use\",\"errno\":%d}", key, EEXIST);
    return;
  }
  int i = alloc_slot();
  if (i < 0) {
    out("{\"k\":\"%s\",\"err\":\"too many watches\",\"errno\":%d}", key, ENOSPC);
    return;
  }
  struct watch *w = &watches[i];
  w->fd = w->target = w->wd = -1;
  strcpy(w->key, key);
  if (cmd == 'E') add_eventfd(i, f[2], f[3], n > 4 ? f[4] : "");
  else if (cmd == 'P') add_psi(i, f[2], f[3]);
  else if (cmd == 'W') add_poll(i, f[2], f[3], n > 4 && strcmp(f[4], "k") == 0);
  else add_notify(i, f[2]);
}

static void read_stdin(void) {
  static char buf[MAX_LINE];
  static size_t used;
  static int skipping; /* inside an over-long line */
  for (;;) {
    ssize_t r = read(0, buf + used, sizeof buf - used);
    if (r == 0) exit(0);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return;
      exit(0);
    }
    used += r;
    char *start = buf, *nl;
    while ((nl = memchr(start, '\n', used - (start - buf)))) {
      *nl = '\0';
      if (!skipping) command(start);
      else out("{\"err\":\"command line longer than %d bytes\"}", MAX_LINE);
      skipping = 0;
      start = nl + 1;
    }
    used -= start - buf;
    memmove(buf, start, used);
    if (used == sizeof buf) { skipping = 1; used = 0; }
  }
}

static void read_inotify(void) {
  char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
  for (;;) {
    ssize_t r = read(infd, buf, sizeof buf);
    if (r <= 0) return;
    long long t = now_ns();
    for (char *p = buf; p < buf + r;) {
      struct inotify_event *e = (struct inotify_event *)p;
      for (int i = 0; i < nwatches; i++) {
        if (watches[i].kind != NOTIFY || watches[i].wd != e->wd) continue;
        if (e->mask & IN_IGNORED) {
          out("{\"k\":\"%s\",\"gone\":1,\"t\":%lld}", watches[i].key, t);
          watches[i].wd = -1;
          release(i);
        } else {
          out("{\"k\":\"%s\",\"ev\":1,\"t\":%lld}", watches[i].key, t);
        }
        break;
      }
      p += sizeof *e + e->len;
    }
  }
}

/* Wake dormant watch i: read it now (reported if it changed) and every interval from now on. */
static void wake(int i, long long t) {
  struct watch *w = &watches[i];
  w->dormant = 0;
  int changed = reread(w);
  if (changed < 0) {
    out("{\"k\":\"%s\",\"gone\":1,\"t\":%lld}", w->key, t);
    release(i);
    return;
  }
  if (changed) out("{\"k\":\"%s\",\"ev\":1,\"t\":%lld}", w->key, t);
  w->due = (t / w->interval + 1) * w->interval;
}

/* 1 if watch w's file is in the cgroup the kernel named: its folder ends with that path (the
   kernel prints it from the hierarchy's root, which may sit below the mount's root). */
static int in_cgroup(const struct watch *w, const char *cg, size_t cglen) {
  if (!w->dir || cglen < 2 || cg[0] != '/') return 0;
  size_t n = strlen(w->dir);
  return n >= cglen && memcmp(w->dir + n - cglen, cg, cglen) == 0;
}

/* Wake the dormant watches of the cgroup named (NULL: every dormant watch, when a record may
   have been missed or split); a named watch polls from now on even if its text is unchanged,
   since its cgroup's later refusals are not logged. */
static void wake_dormant(const char *cg, size_t cglen, long long t) {
  for (int i = 0; i < nwatches; i++) {
    struct watch *w = &watches[i];
    if (w->kind != POLL || !w->dormant) continue;
    if (cg && !in_cgroup(w, cg, cglen)) continue;
    if (cg) { wake(i, t); continue; }
    /* Not named: read it, and keep it dormant unless something was refused. */
    int changed = reread(w);
    if (changed < 0) { out("{\"k\":\"%s\",\"gone\":1,\"t\":%lld}", w->key, t); release(i); continue; }
    if (changed || !all_zero(w->text, w->len)) {
      w->dormant = 0;
      if (changed) out("{\"k\":\"%s\",\"ev\":1,\"t\":%lld}", w->key, t);
      w->due = (t / w->interval + 1) * w->interval;
    }
  }
}

/* The kernel log can no longer be read: every dormant watch is read every interval. */
static void kmsg_off(const char *why) {
  out("{\"kmsg\":0,\"why\":\"%s: %s\"}", why, strerror(errno));
  epoll_ctl(epfd, EPOLL_CTL_DEL, kmsgfd, NULL);
  close(kmsgfd);
  kmsgfd = -1;
  long long t = now_ns();
  for (int i = 0; i < nwatches; i++) {
    struct watch *w = &watches[i];
    if (w->kind == POLL && w->dormant) { w->dormant = 0; w->due = (t / w->interval + 1) * w->interval; }
  }
}

/*
 * One kernel log record ("<prio>,<seq>,<usec>,<flags>;<text>\n[ KEY=value\n]..."). The pids
 * controller logs a cgroup's first refused fork, and only the first (kernel/cgroup/pids.c,
 * pids_event): "cgroup: fork rejected by pids controller in <cgroup path>". A plugin can write
 * no record (its container has no /dev/kmsg); a forged one would only cause a read.
 */
static void kmsg_record(const char *rec, size_t len, long long t) {
  static const char needle[] = "fork rejected by pids controller in ";
  const char *text = memchr(rec, ';', len);
  if (!text) return;
  text++;
  size_t rest = len - (size_t)(text - rec);
  const char *eol = memchr(text, '\n', rest);
  size_t tlen = eol ? (size_t)(eol - text) : rest;
  const char *at = memmem(text, tlen, needle, sizeof needle - 1);
  if (!at) return;
  const char *cg = at + sizeof needle - 1;
  size_t cglen = tlen - (size_t)(cg - text);
  /* The path is printed with pr_cont: it can land in a record of its own; then look at all. */
  if (cglen == 0) wake_dormant(NULL, 0, t);
  else wake_dormant(cg, cglen, t);
}

static void read_kmsg(void) {
  char rec[8192];
  for (;;) {
    ssize_t r = read(kmsgfd, rec, sizeof rec);
    if (r > 0) { kmsg_record(rec, (size_t)r, now_ns()); continue; }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && errno == EAGAIN) return;
    /* EPIPE: records were overwritten before they were read; a refusal may be among them. */
    if (r < 0 && errno == EPIPE) { wake_dormant(NULL, 0, now_ns()); continue; }
    kmsg_off("read /dev/kmsg");
    return;
  }
}

/* Open the kernel log at its end (only records from now on matter); why not, in `why`. */
static int open_kmsg(char *why, size_t n) {
  int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) { snprintf(why, n, "open /dev/kmsg: %s", strerror(errno)); return -1; }
  struct epoll_event ev = {.events = EPOLLIN, .data.u32 = ID_KMSG};
  if (lseek(fd, 0, SEEK_END) < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
    snprintf(why, n, "/dev/kmsg: %s", strerror(errno));
    close(fd);
    return -1;
  }
  return fd;
}

static void fired(int i, unsigned events) {
  struct watch *w = &watches[i];
  long long t = now_ns();
  if (w->kind == EVENTFD) {
    unsigned long long count = 0;
    if (read(w->fd, &count, sizeof count) == sizeof count) out("{\"k\":\"%s\",\"ev\":%llu,\"t\":%lld}", w->key, count, t);
  } else if (w->kind == PSI) {
    /* POLLERR: the cgroup (and its pressure file) is gone. */
    if (events & EPOLLERR) {
      out("{\"k\":\"%s\",\"gone\":1,\"t\":%lld}", w->key, t);
      release(i);
    } else {
      out("{\"k\":\"%s\",\"ev\":1,\"t\":%lld}", w->key, t);
    }
  }
}

int main(int argc, char **argv) {
  watches = calloc(MAX_WATCHES, sizeof *watches);
  epfd = epoll_create1(EPOLL_CLOEXEC);
  infd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (!watches || epfd < 0 || infd < 0) {
    out("{\"err\":\"cannot start: %s\"}", strerror(errno));
    return 1;
  }
  fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
  struct epoll_event in = {.events = EPOLLIN, .data.u32 = ID_STDIN};
  struct epoll_event ino = {.events = EPOLLIN, .data.u32 = ID_INOTIFY};
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &in) < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, infd, &ino) < 0) {
    out("{\"err\":\"cannot start: %s\"}", strerror(errno));
    return 1;
  }
  char why[256] = "-p: not asked to";
  if (!(argc > 1 && strcmp(argv[1], "-p") == 0)) kmsgfd = open_kmsg(why, sizeof why);
  if (kmsgfd >= 0) out("{\"ready\":1,\"kmsg\":1}");
  else out("{\"ready\":1,\"kmsg\":0,\"why\":\"%s\"}", why);
  for (;;) {
    struct epoll_event evs[64];
    int n = epoll_wait(epfd, evs, 64, poll_due());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return 1;
    for (int j = 0; j < n; j++) {
      unsigned id = evs[j].data.u32;
      if (id == ID_STDIN) read_stdin();
      else if (id == ID_INOTIFY) read_inotify();
      else if (id == ID_KMSG) { if (kmsgfd >= 0) read_kmsg(); }
      else if ((int)id < nwatches && watches[id].kind != FREE) fired((int)id, evs[j].events);
    }
  }
}
