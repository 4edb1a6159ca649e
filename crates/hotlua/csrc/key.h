/* Writing the short descriptions the pairing compares (a child's place in its parent's code,
** a prototype's parameters) into a caller's buffer, truncated at its capacity: the same for
** every backend's proto.c. */

#ifndef HOTLUA_KEY_H
#define HOTLUA_KEY_H

#include <stddef.h>
#include <string.h>

/* Writes `len` bytes of `s` into buf[pos..cap) (as many as fit) and returns the new end. */
static inline size_t put_bytes(char *buf, size_t pos, size_t cap, const char *s, size_t len) {
  if (pos + len > cap) len = cap > pos ? cap - pos : 0;
  memcpy(buf + pos, s, len);
  return pos + len;
}

/* Writes the C string `s`, or "?" for NULL. */
static inline size_t put_str(char *buf, size_t pos, size_t cap, const char *s) {
  if (s == NULL) s = "?";
  return put_bytes(buf, pos, cap, s, strlen(s));
}

#endif
