/*
 * lm-health: a plugin container's Docker health check (CIS Docker Benchmark 5.27), which
 * reports what the LogoMesh controller's hub sees of the plugin. The controller writes its
 * view to a file in the plugin's hub socket folder (mounted read-only, so the plugin cannot
 * write it) after each health ping: "ok: <detail>", or "unhealthy: <why>". This program, run by the
 * engine inside the container, prints that line and exits 0 for "ok", 1 otherwise; also 1
 * when the file is missing or older than <max-age> seconds (the controller stopped
 * reporting). It needs no shell, no network and no library: a static binary, mounted into
 * the container by the controller.
 *
 *   lm-health <report file> <max-age seconds>
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc != 3) {
    fputs("usage: lm-health <report file> <max-age seconds>\n", stderr);
    return 2;
  }
  long max_age = strtol(argv[2], NULL, 10);
  int fd = open(argv[1], O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) {
    puts("no report from the controller's hub yet");
    return 1;
  }
  char text[256];
  ssize_t n = read(fd, text, sizeof text - 1);
  close(fd);
  text[n > 0 ? n : 0] = '\0';
  text[strcspn(text, "\n")] = '\0';
  long age = (long)(time(NULL) - st.st_mtime);
  if (age > max_age) {
    printf("the controller's last report is %ld s old (most: %ld s): no controller is watching (last: %s)\n", age, max_age, text);
    return 1;
  }
  puts(text);
  /* "ok", "ok: <detail>" or "ok <detail>": healthy; anything else is not. */
  return strncmp(text, "ok", 2) == 0 && (text[2] == '\0' || text[2] == ':' || text[2] == ' ') ? 0 : 1;
}
