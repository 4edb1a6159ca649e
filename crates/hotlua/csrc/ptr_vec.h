/* PtrVec: a growable array of pointers the scan (scan.c) keeps its lists in, malloc'd
** because the scan must not allocate Lua objects for them, and the sorting and searching it
** does over them. */

#ifndef HOTLUA_PTR_VEC_H
#define HOTLUA_PTR_VEC_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* `items[0 .. len)`, in room for `cap`. */
typedef struct PtrVec { void **items; size_t len, cap; } PtrVec;

/* Room for `n` more items at the end of `v`, counted in its length, or NULL. */
static inline void **extend(PtrVec *v, size_t n) {
  if (v->len + n > v->cap) {
    size_t cap = v->cap ? v->cap * 2 : 256;
    void **items;
    while (cap < v->len + n) cap *= 2;
    items = (void **)realloc(v->items, cap * sizeof(void *));
    if (items == NULL) return NULL;
    v->items = items;
    v->cap = cap;
  }
  v->len += n;
  return v->items + v->len - n;
}

static inline int push(PtrVec *v, void *item) {
  void **slot = extend(v, 1);
  if (slot != NULL) *slot = item;
  return slot != NULL;
}

/* Orders pointers by address, for qsort and bsearch. */
static inline int cmp_ptr(const void *a, const void *b) {
  size_t x = (size_t)*(void *const *)a, y = (size_t)*(void *const *)b;
  return (x > y) - (x < y);
}

/* Sorts `v` (of `width`-pointer items, by their first pointer) and drops repeated items. */
static inline void sort_unique(PtrVec *v, size_t width) {
  size_t i, unique = 0;
  qsort(v->items, v->len / width, width * sizeof(void *), cmp_ptr);
  for (i = 0; i < v->len; i += width)
    if (unique == 0 ||
        memcmp(v->items + unique - width, v->items + i, width * sizeof(void *)) != 0) {
      memmove(v->items + unique, v->items + i, width * sizeof(void *));
      unique += width;
    }
  v->len = unique;
}

#endif
