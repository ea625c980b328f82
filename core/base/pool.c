/* Large blocks recycled within a forward pass.  Freeing a big buffer
 * returns it to the kernel, and in a multi-threaded process every munmap
 * costs a TLB shootdown on all cores (measured: a quarter of the run time
 * of a TAEF2 round trip); the next layer then faults the pages back in.
 * While a pass is open, freed blocks wait here for the next allocation of
 * a similar size (and make room for one they cannot serve, so that they add
 * nothing to the peak); when the last pass closes, all but RETAINED_BYTES of them
 * (the largest first) go back to the system.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "vae-private.h"

#include <string.h>

#define POOLED_MIN_BYTES ((gsize) 1 << 20)
/* Kept between passes, so the next image does not fault its pages in again. */
#define RETAINED_BYTES ((gsize) 512 << 20)
/* Held during a pass at most (set by the memory plan); beyond this a freed
 * block goes back at once. */
static gsize held_bytes = (gsize) 768 << 20;

typedef struct
{
  gpointer data;
  gsize    bytes;
} Block;

static GMutex  pool_lock;
static GArray *pool; /* Block, free for reuse */
static gsize   pooled_bytes;
static gint    open_passes;

static gint
compare_blocks (gconstpointer a, gconstpointer b)
{
  gsize x = ((const Block *) a)->bytes, y = ((const Block *) b)->bytes;
  return x < y ? -1 : x > y;
}

void
vae_pool_set_hold (gsize bytes)
{
  g_mutex_lock (&pool_lock);
  held_bytes = bytes;
  g_mutex_unlock (&pool_lock);
}

/* Returns spare blocks to the system, the largest first, until at most
 * KEEP bytes are left.  Called with the lock held. */
static void
trim (gsize keep)
{
  gsize kept = 0;

  if (!pool)
    return;
  g_array_sort (pool, compare_blocks);
  for (guint i = 0; i < pool->len;)
    {
      Block *b = &g_array_index (pool, Block, i);
      if (kept + b->bytes <= keep)
        {
          kept += b->bytes;
          i++;
          continue;
        }
      pooled_bytes -= b->bytes;
      g_free (b->data);
      g_array_remove_index (pool, i);
    }
}

void
vae_pool_begin (void)
{
  g_mutex_lock (&pool_lock);
  if (!pool)
    pool = g_array_new (FALSE, FALSE, sizeof (Block));
  if (open_passes++ == 0)
    trim (held_bytes); /* what the last pass retained counts against this one's hold */
  g_mutex_unlock (&pool_lock);
}

void
vae_pool_end (void)
{
  g_mutex_lock (&pool_lock);
  if (--open_passes == 0)
    trim (RETAINED_BYTES);
  g_mutex_unlock (&pool_lock);
}

/* The smallest free block of BYTES up to a quarter more, taken out of the
 * pool (its pages are already resident; a much larger one would keep pages
 * the caller never uses). */
static gpointer
take (gsize bytes, gsize *block_bytes)
{
  gint best = -1;

  for (guint i = 0; pool && i < pool->len; i++)
    {
      gsize b = g_array_index (pool, Block, i).bytes;
      if (b >= bytes && b - bytes <= bytes / 4 &&
          (best < 0 || b < g_array_index (pool, Block, best).bytes))
        best = (gint) i;
    }
  if (best < 0)
    return NULL;
  *block_bytes = g_array_index (pool, Block, best).bytes;
  {
    gpointer data = g_array_index (pool, Block, best).data;
    pooled_bytes -= *block_bytes;
    g_array_remove_index_fast (pool, best);
    return data;
  }
}

gpointer
vae_scratch_alloc (gsize bytes, gboolean zeroed, gsize *capacity, const gchar *what, GError **error)
{
  gpointer data = NULL;

  *capacity = bytes;
  if (bytes >= POOLED_MIN_BYTES)
    {
      g_mutex_lock (&pool_lock);
      /* a request the pool cannot serve first sends as many spare bytes back
       * (the largest blocks), so the pool never raises the pass's peak */
      if (!(data = take (bytes, capacity)))
        trim (pooled_bytes > bytes ? pooled_bytes - bytes : 0);
      g_mutex_unlock (&pool_lock);
    }
  if (data)
    {
      if (zeroed)
        memset (data, 0, bytes);
      return data;
    }
  return vae_try_alloc (bytes, what, error); /* fresh pages are zero anyway */
}

void
vae_scratch_free (gpointer data, gsize capacity)
{
  if (!data)
    return;
  if (capacity >= POOLED_MIN_BYTES)
    {
      g_mutex_lock (&pool_lock);
      if (open_passes > 0 && pooled_bytes + capacity <= held_bytes)
        {
          Block b = { data, capacity };
          g_array_append_val (pool, b);
          pooled_bytes += capacity;
          data = NULL;
        }
      g_mutex_unlock (&pool_lock);
    }
  g_free (data);
}
