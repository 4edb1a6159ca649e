/* Many Lua states in one process, the way skynet runs its services: THREADS threads each open
 * HOLD states, run SCRIPT in each (it requires hotlua and watches a folder), keep them all
 * open together, close them, and do that ROUNDS times.
 *
 * It also counts what a host's allocator hook may get wrong or run out of: how often hotlua.so
 * asks for aligned memory (posix_memalign, aligned_alloc, memalign: skynet's jemalloc hook
 * returns a wrong pointer from posix_memalign), and the most inotify instances open at once
 * (128 per user by default). Exit status 1 and the error on stderr when a script fails. */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lauxlib.h"
#include "lua.h"
#include "lualib.h"

static const char *script;
static int rounds, hold;
static atomic_long aligned_by_hotlua, most_inotify, failures;

static int from_hotlua(void *caller) {
  Dl_info info;
  return dladdr(caller, &info) && info.dli_fname && strstr(info.dli_fname, "hotlua");
}

/* The aligned allocators, exported by this program (-Wl,-E) in front of the C library's:
 * counted when hotlua.so calls them, then passed on. */
#define COUNT_AND_CALL(name, type, ...)                                   \
  static type (*real)() = NULL;                                           \
  if (real == NULL) real = (type (*)())dlsym(RTLD_NEXT, name);            \
  if (from_hotlua(__builtin_return_address(0))) aligned_by_hotlua++;       \
  return real(__VA_ARGS__);

int posix_memalign(void **block, size_t alignment, size_t size) {
  COUNT_AND_CALL("posix_memalign", int, block, alignment, size)
}
void *aligned_alloc(size_t alignment, size_t size) {
  COUNT_AND_CALL("aligned_alloc", void *, alignment, size)
}
void *memalign(size_t alignment, size_t size) {
  COUNT_AND_CALL("memalign", void *, alignment, size)
}

static long inotify_instances(void) {
  long count = 0;
  DIR *fds = opendir("/proc/self/fd");
  if (fds == NULL) return 0;
  struct dirent *entry;
  char path[64], target[64];
  while ((entry = readdir(fds)) != NULL) {
    snprintf(path, sizeof path, "/proc/self/fd/%s", entry->d_name);
    ssize_t length = readlink(path, target, sizeof target - 1);
    if (length < 0) continue;
    target[length] = 0;
    if (strcmp(target, "anon_inode:inotify") == 0) count++;
  }
  closedir(fds);
  return count;
}

static void *service_thread(void *unused) {
  (void)unused;
  lua_State **states = calloc(hold, sizeof *states);
  for (int round = 0; round < rounds; round++) {
    for (int i = 0; i < hold; i++) {
      lua_State *L = states[i] = luaL_newstate();
      luaL_openlibs(L);
      if (luaL_dofile(L, script) != LUA_OK) {
        fprintf(stderr, "many-states: %s\n", lua_tostring(L, -1));
        failures++;
      }
    }
    long open = inotify_instances();
    long most = most_inotify;
    while (open > most && !atomic_compare_exchange_weak(&most_inotify, &most, open)) {}
    for (int i = 0; i < hold; i++) lua_close(states[i]);
  }
  free(states);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: %s SCRIPT THREADS ROUNDS HOLD\n", argv[0]);
    return 2;
  }
  script = argv[1];
  int threads = atoi(argv[2]);
  rounds = atoi(argv[3]);
  hold = atoi(argv[4]);
  pthread_t *ids = calloc(threads, sizeof *ids);
  for (int i = 0; i < threads; i++) pthread_create(&ids[i], NULL, service_thread, NULL);
  for (int i = 0; i < threads; i++) pthread_join(ids[i], NULL);
  free(ids);
  printf("states: %d\n", threads * rounds * hold);
  printf("aligned allocations by hotlua.so: %ld\n", (long)aligned_by_hotlua);
  printf("most inotify instances at once: %ld\n", (long)most_inotify);
  printf("inotify instances after the last close: %ld\n", inotify_instances());
  return failures ? 1 : 0;
}
