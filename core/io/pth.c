/* PyTorch .pth/.ckpt checkpoints: a zip holding data.pkl and one member per
 * storage.  The pickle is read by a small stack machine that knows only the
 * opcodes torch.save emits and honours only the globals VAE-SPEC.md lists
 * (OrderedDict, _rebuild_tensor_v2, torch.*Storage); any other global is
 * refused with VAE_ERROR_UNSAFE.  Nothing in the file is ever executed.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "vae-private.h"

#include <string.h>

typedef enum
{
  PV_NONE,
  PV_BOOL,
  PV_INT,
  PV_FLOAT,
  PV_STR,
  PV_BYTES,
  PV_TUPLE,
  PV_LIST,
  PV_DICT,
  PV_GLOBAL,
  PV_STORAGE,
  PV_TENSOR
} PvType;

typedef enum
{
  GLOBAL_ORDERED_DICT,
  GLOBAL_REBUILD_TENSOR,
  GLOBAL_STORAGE
} GlobalKind;

typedef struct _Pv Pv;

/* One pickle value.  Values live in the unpickler's arena and are freed
 * together, so cycles a hostile pickle builds cannot leak. */
struct _Pv
{
  PvType     type;
  gint64     i; /* INT, BOOL; STORAGE: element count */
  gdouble    f;
  gchar     *s; /* STR, BYTES; STORAGE: key */
  gsize      len;
  GPtrArray *items; /* TUPLE, LIST; DICT: key, value, key, value… */
  GlobalKind global;
  VaeDtype   dtype;   /* GLOBAL storage type, STORAGE */
  Pv        *storage; /* TENSOR */
  gint64     offset;
  gint       ndim;
  gint64     shape[VAE_MAX_DIMS];
  gint64     stride[VAE_MAX_DIMS];
};

typedef struct
{
  const gchar  *path;
  const guint8 *code;
  gsize         size;
  gsize         pos;
  GPtrArray    *arena;
  GPtrArray    *stack;
  GArray       *marks;
  GHashTable   *memo;
  gsize         spent;  /* bytes of values, strings, slots and gathered views */
  gsize         budget; /* what they may take: see vae_pth_parse */
} Unpickler;

/* What a memo entry costs in GHashTable's arrays, roughly. */
#define MEMO_ENTRY_BYTES 32

static const struct
{
  const gchar *name;
  VaeDtype     dtype;
} storage_types[] = {
  { "FloatStorage", VAE_DTYPE_F32 },     { "HalfStorage", VAE_DTYPE_F16 },
  { "BFloat16Storage", VAE_DTYPE_BF16 }, { "DoubleStorage", VAE_DTYPE_F64 },
  { "LongStorage", VAE_DTYPE_I64 },      { "IntStorage", VAE_DTYPE_I32 },
  { "ShortStorage", VAE_DTYPE_I16 },     { "CharStorage", VAE_DTYPE_I8 },
  { "ByteStorage", VAE_DTYPE_U8 },       { "BoolStorage", VAE_DTYPE_BOOL },
};

static void
pv_free (gpointer p)
{
  Pv *v = p;

  g_free (v->s);
  if (v->items)
    g_ptr_array_unref (v->items);
  g_free (v);
}

static Pv *
pv_new (Unpickler *u, PvType type)
{
  Pv *v = g_new0 (Pv, 1);

  v->type = type;
  u->spent += sizeof (Pv) + sizeof (gpointer);
  if (type == PV_TUPLE || type == PV_LIST || type == PV_DICT)
    {
      v->items = g_ptr_array_new ();
      u->spent += sizeof (GPtrArray) + 4 * sizeof (gpointer);
    }
  g_ptr_array_add (u->arena, v);
  return v;
}

/* Adds ITEM to the container V, counting the slot. */
static void
pv_append (Unpickler *u, Pv *v, Pv *item)
{
  g_ptr_array_add (v->items, item);
  u->spent += sizeof (gpointer);
}

/* Every opcode makes a few hundred bytes at most, but a deflated pickle can
 * be a thousand times its compressed size: without a bound a 97 KB file
 * asked for more than 4 GB.  A pickle may spend, in values and in the views
 * it gathers, the size of its file plus 16 MiB (a real state dict spends a
 * few MB on thousands of tensors). */
static gboolean
within_budget (Unpickler *u, GError **error)
{
  gsize held = u->stack->len * sizeof (gpointer) + u->marks->len * sizeof (guint);

  if (u->spent <= u->budget && held <= u->budget - u->spent)
    return TRUE;
  g_set_error (error, VAE_ERROR, VAE_ERROR_LIMIT,
               _ ("%s: the pickle needs more than %zu bytes of memory, more than a checkpoint "
                  "of this size can (a hostile or broken file)"),
               u->path, u->budget);
  return FALSE;
}

static gboolean
bad (Unpickler *u, GError **error, const gchar *what)
{
  g_set_error (error, VAE_ERROR, VAE_ERROR_FORMAT, _ ("%s: malformed pickle at byte %zu: %s"),
               u->path, u->pos, what);
  return FALSE;
}

static const guint8 *
take (Unpickler *u, gsize n, GError **error)
{
  const guint8 *p;

  if (n > u->size - u->pos)
    {
      bad (u, error, "truncated");
      return NULL;
    }
  p = u->code + u->pos;
  u->pos += n;
  return p;
}

static guint32
le32 (const guint8 *p)
{
  return (guint32) p[0] | ((guint32) p[1] << 8) | ((guint32) p[2] << 16) | ((guint32) p[3] << 24);
}

static void
push (Unpickler *u, Pv *v)
{
  g_ptr_array_add (u->stack, v);
}

static Pv *
pop (Unpickler *u, GError **error)
{
  gsize floor = u->marks->len ? g_array_index (u->marks, guint, u->marks->len - 1) : 0;

  if (u->stack->len <= floor)
    {
      bad (u, error, "stack underflow");
      return NULL;
    }
  return g_ptr_array_steal_index (u->stack, u->stack->len - 1);
}

static Pv *
top (Unpickler *u, GError **error)
{
  if (u->stack->len == 0)
    {
      bad (u, error, "empty stack");
      return NULL;
    }
  return u->stack->pdata[u->stack->len - 1];
}

/* Pops everything above the last MARK into a new container of TYPE. */
static Pv *
pop_to_mark (Unpickler *u, PvType type, GError **error)
{
  guint mark;
  Pv   *v;

  if (u->marks->len == 0)
    {
      bad (u, error, "no MARK");
      return NULL;
    }
  mark = g_array_index (u->marks, guint, u->marks->len - 1);
  g_array_set_size (u->marks, u->marks->len - 1);
  v = pv_new (u, type);
  for (guint i = mark; i < u->stack->len; i++)
    pv_append (u, v, u->stack->pdata[i]);
  g_ptr_array_set_size (u->stack, mark);
  return v;
}

static gboolean
is_int (const Pv *v)
{
  return v && (v->type == PV_INT || v->type == PV_BOOL);
}

static gboolean
resolve_global (Unpickler *u, const gchar *module, const gchar *name, GError **error)
{
  Pv *v = pv_new (u, PV_GLOBAL);

  if (strcmp (module, "collections") == 0 && strcmp (name, "OrderedDict") == 0)
    v->global = GLOBAL_ORDERED_DICT;
  else if (strcmp (module, "torch._utils") == 0 && strcmp (name, "_rebuild_tensor_v2") == 0)
    v->global = GLOBAL_REBUILD_TENSOR;
  else
    {
      gboolean known = FALSE;
      for (guint i = 0; i < G_N_ELEMENTS (storage_types) && strcmp (module, "torch") == 0; i++)
        if (strcmp (name, storage_types[i].name) == 0)
          {
            v->global = GLOBAL_STORAGE;
            v->dtype = storage_types[i].dtype;
            known = TRUE;
          }
      if (!known)
        {
          g_set_error (
              error, VAE_ERROR, VAE_ERROR_UNSAFE,
              _ ("%s: the pickle asks for '%s.%s', which is not allowed (only OrderedDict, "
                 "_rebuild_tensor_v2 and torch storages are); refusing the file, nothing was run"),
              u->path, module, name);
          return FALSE;
        }
    }
  push (u, v);
  return TRUE;
}

static gchar *
read_line (Unpickler *u, GError **error)
{
  const guint8 *start = u->code + u->pos;
  const guint8 *nl = memchr (start, '\n', MIN (u->size - u->pos, 256));

  if (!nl)
    {
      bad (u, error, "unterminated GLOBAL name");
      return NULL;
    }
  u->pos += (gsize) (nl - start) + 1;
  return g_strndup ((const gchar *) start, (gsize) (nl - start));
}

static gboolean
op_global (Unpickler *u, GError **error)
{
  g_autofree gchar *module = read_line (u, error);
  g_autofree gchar *name = module ? read_line (u, error) : NULL;

  return name && resolve_global (u, module, name, error);
}

static gboolean
op_stack_global (Unpickler *u, GError **error)
{
  Pv *name = pop (u, error);
  Pv *module = name ? pop (u, error) : NULL;

  if (!module)
    return FALSE;
  if (name->type != PV_STR || module->type != PV_STR)
    return bad (u, error, "STACK_GLOBAL needs two strings");
  return resolve_global (u, module->s, name->s, error);
}

static gboolean
push_string (Unpickler *u, PvType type, gsize len, GError **error)
{
  const guint8 *p = take (u, len, error);
  Pv           *v;

  if (!p)
    return FALSE;
  if (type == PV_STR && !g_utf8_validate ((const gchar *) p, (gssize) len, NULL))
    return bad (u, error, "string is not UTF-8");
  v = pv_new (u, type);
  v->s = g_strndup ((const gchar *) p, len);
  v->len = len;
  u->spent += len + 1;
  push (u, v);
  return TRUE;
}

static gboolean
push_int (Unpickler *u, gint64 value)
{
  Pv *v = pv_new (u, PV_INT);

  v->i = value;
  push (u, v);
  return TRUE;
}

/* ('storage', torch.XStorage, key, location, numel) → a storage value. */
static gboolean
op_persistent_id (Unpickler *u, GError **error)
{
  Pv *pid = pop (u, error);
  Pv *v;
  Pv *kind, *type, *key, *numel;

  if (!pid)
    return FALSE;
  if (pid->type != PV_TUPLE || pid->items->len != 5)
    return bad (u, error, "persistent id is not a 5-tuple");
  kind = pid->items->pdata[0];
  type = pid->items->pdata[1];
  key = pid->items->pdata[2];
  numel = pid->items->pdata[4];
  if (kind->type != PV_STR || strcmp (kind->s, "storage") != 0 || type->type != PV_GLOBAL ||
      type->global != GLOBAL_STORAGE || key->type != PV_STR || !is_int (numel) || numel->i < 0)
    return bad (u, error, "persistent id is not a torch storage");
  for (const gchar *c = key->s; *c; c++)
    if (!g_ascii_isalnum (*c) && *c != '_')
      return bad (u, error, "storage key is not a plain name");
  v = pv_new (u, PV_STORAGE);
  v->dtype = type->dtype;
  v->s = g_strdup (key->s);
  v->i = numel->i;
  push (u, v);
  return TRUE;
}

static gboolean
int_tuple (const Pv *v, gint64 *out, gint *n)
{
  if (!v || v->type != PV_TUPLE || v->items->len > VAE_MAX_DIMS)
    return FALSE;
  for (guint i = 0; i < v->items->len; i++)
    {
      const Pv *e = v->items->pdata[i];
      if (!is_int (e) || e->i < 0)
        return FALSE;
      out[i] = e->i;
    }
  *n = (gint) v->items->len;
  return TRUE;
}

static gboolean
op_reduce (Unpickler *u, GError **error)
{
  Pv  *args = pop (u, error);
  Pv  *callable = args ? pop (u, error) : NULL;
  Pv  *v;
  gint n_stride;

  if (!callable)
    return FALSE;
  if (callable->type != PV_GLOBAL || args->type != PV_TUPLE)
    return bad (u, error, "REDUCE needs a global and a tuple");
  switch (callable->global)
    {
    case GLOBAL_ORDERED_DICT:
      if (args->items->len != 0)
        return bad (u, error, "OrderedDict with arguments");
      push (u, pv_new (u, PV_DICT));
      return TRUE;
    case GLOBAL_REBUILD_TENSOR:
      if (args->items->len < 4 || ((Pv *) args->items->pdata[0])->type != PV_STORAGE ||
          !is_int (args->items->pdata[1]) || ((Pv *) args->items->pdata[1])->i < 0)
        return bad (u, error, "_rebuild_tensor_v2 needs (storage, offset, size, stride, …)");
      v = pv_new (u, PV_TENSOR);
      v->storage = args->items->pdata[0];
      v->offset = ((Pv *) args->items->pdata[1])->i;
      if (!int_tuple (args->items->pdata[2], v->shape, &v->ndim) ||
          !int_tuple (args->items->pdata[3], v->stride, &n_stride) || n_stride != v->ndim)
        return bad (
            u, error,
            "tensor size and stride must be tuples of equal length (at most 8) of integers ≥ 0");
      push (u, v);
      return TRUE;
    case GLOBAL_STORAGE:
    default:
      return bad (u, error, "a storage type cannot be called");
    }
}

static gboolean
op_setitems (Unpickler *u, gboolean single, GError **error)
{
  Pv *pairs, *dict;

  if (single)
    {
      pairs = pv_new (u, PV_TUPLE);
      Pv *value = pop (u, error);
      Pv *key = value ? pop (u, error) : NULL;
      if (!key)
        return FALSE;
      pv_append (u, pairs, key);
      pv_append (u, pairs, value);
    }
  else if (!(pairs = pop_to_mark (u, PV_TUPLE, error)))
    return FALSE;
  if (!(dict = top (u, error)))
    return FALSE;
  if (dict->type != PV_DICT || pairs->items->len % 2)
    return bad (u, error, "SETITEM(S) outside a dict");
  for (guint i = 0; i < pairs->items->len; i++)
    pv_append (u, dict, pairs->items->pdata[i]);
  return TRUE;
}

static gboolean
op_appends (Unpickler *u, gboolean single, GError **error)
{
  Pv *items, *list;

  if (single)
    {
      Pv *value = pop (u, error);
      if (!value)
        return FALSE;
      items = pv_new (u, PV_TUPLE);
      pv_append (u, items, value);
    }
  else if (!(items = pop_to_mark (u, PV_TUPLE, error)))
    return FALSE;
  if (!(list = top (u, error)))
    return FALSE;
  if (list->type != PV_LIST)
    return bad (u, error, "APPEND outside a list");
  for (guint i = 0; i < items->items->len; i++)
    pv_append (u, list, items->items->pdata[i]);
  return TRUE;
}

static gboolean
memo_put (Unpickler *u, guint64 index, GError **error)
{
  Pv *v = top (u, error);

  if (!v)
    return FALSE;
  if (g_hash_table_size (u->memo) >= vae_limit (VAE_LIMIT_PICKLE_MEMO))
    {
      g_set_error (
          error, VAE_ERROR, VAE_ERROR_LIMIT,
          _ ("%s: the pickle memo exceeds the limit of %" PRIu64 " entries (%s raises it)"),
          u->path, vae_limit (VAE_LIMIT_PICKLE_MEMO), vae_limit_env (VAE_LIMIT_PICKLE_MEMO));
      return FALSE;
    }
  g_hash_table_insert (u->memo, GSIZE_TO_POINTER ((gsize) index + 1), v);
  u->spent += MEMO_ENTRY_BYTES;
  return TRUE;
}

static gboolean
memo_get (Unpickler *u, guint64 index, GError **error)
{
  Pv *v = g_hash_table_lookup (u->memo, GSIZE_TO_POINTER ((gsize) index + 1));

  if (!v)
    return bad (u, error, "memo entry missing");
  push (u, v);
  return TRUE;
}

static gboolean
op_tuple_n (Unpickler *u, guint n, GError **error)
{
  Pv *v = pv_new (u, PV_TUPLE);

  g_ptr_array_set_size (v->items, n);
  u->spent += n * sizeof (gpointer);
  for (guint i = n; i-- > 0;)
    if (!(v->items->pdata[i] = pop (u, error)))
      return FALSE;
  push (u, v);
  return TRUE;
}

/* LONG1: little-endian two's complement of n bytes; at most 8 fit. */
static gboolean
op_long1 (Unpickler *u, GError **error)
{
  const guint8 *n = take (u, 1, error);
  const guint8 *p = n ? take (u, *n, error) : NULL;
  guint64       value = 0;

  if (!p)
    return FALSE;
  if (*n > 8)
    return bad (u, error, "integer wider than 64 bits");
  for (guint i = 0; i < *n; i++)
    value |= (guint64) p[i] << (8 * i);
  if (*n > 0 && *n < 8 && (p[*n - 1] & 0x80))
    value |= ~(guint64) 0 << (8 * *n);
  return push_int (u, (gint64) value);
}

static gboolean
step (Unpickler *u, guint8 op, gboolean *done, GError **error)
{
  const guint8 *p;
  Pv           *v;

  switch (op)
    {
    case 0x80: /* PROTO */
      return take (u, 1, error) != NULL;
    case 0x95: /* FRAME */
      return take (u, 8, error) != NULL;
    case '.': /* STOP */
      *done = TRUE;
      return TRUE;
    case '(': /* MARK */
      {
        guint mark = u->stack->len;
        g_array_append_val (u->marks, mark);
        return TRUE;
      }
    case '}':
      push (u, pv_new (u, PV_DICT));
      return TRUE;
    case ']':
      push (u, pv_new (u, PV_LIST));
      return TRUE;
    case ')':
      push (u, pv_new (u, PV_TUPLE));
      return TRUE;
    case 'N':
      push (u, pv_new (u, PV_NONE));
      return TRUE;
    case 0x88: /* NEWTRUE */
    case 0x89: /* NEWFALSE */
      v = pv_new (u, PV_BOOL);
      v->i = op == 0x88;
      push (u, v);
      return TRUE;
    case 'd':
    case 'l':
    case 't':
      v = pop_to_mark (u, op == 'd' ? PV_DICT : op == 'l' ? PV_LIST : PV_TUPLE, error);
      if (!v)
        return FALSE;
      if (op == 'd' && v->items->len % 2)
        return bad (u, error, "DICT with an odd number of items");
      push (u, v);
      return TRUE;
    case 0x85:
      return op_tuple_n (u, 1, error);
    case 0x86:
      return op_tuple_n (u, 2, error);
    case 0x87:
      return op_tuple_n (u, 3, error);
    case 's':
      return op_setitems (u, TRUE, error);
    case 'u':
      return op_setitems (u, FALSE, error);
    case 'a':
      return op_appends (u, TRUE, error);
    case 'e':
      return op_appends (u, FALSE, error);
    case 'K':
      return (p = take (u, 1, error)) && push_int (u, p[0]);
    case 'M':
      return (p = take (u, 2, error)) && push_int (u, p[0] | (p[1] << 8));
    case 'J':
      return (p = take (u, 4, error)) && push_int (u, (gint32) le32 (p));
    case 0x8a:
      return op_long1 (u, error);
    case 'G': /* BINFLOAT, big-endian double */
      if (!(p = take (u, 8, error)))
        return FALSE;
      v = pv_new (u, PV_FLOAT);
      {
        guint64 bits = 0;
        for (guint i = 0; i < 8; i++)
          bits = (bits << 8) | p[i];
        memcpy (&v->f, &bits, 8);
      }
      push (u, v);
      return TRUE;
    case 'X':
      return (p = take (u, 4, error)) && push_string (u, PV_STR, le32 (p), error);
    case 0x8c:
      return (p = take (u, 1, error)) && push_string (u, PV_STR, p[0], error);
    case 'T':
      return (p = take (u, 4, error)) && push_string (u, PV_BYTES, le32 (p), error);
    case 'U':
    case 'C':
      return (p = take (u, 1, error)) && push_string (u, PV_BYTES, p[0], error);
    case 'B':
      return (p = take (u, 4, error)) && push_string (u, PV_BYTES, le32 (p), error);
    case 'c':
      return op_global (u, error);
    case 0x93:
      return op_stack_global (u, error);
    case 'q':
      return (p = take (u, 1, error)) && memo_put (u, p[0], error);
    case 'r':
      return (p = take (u, 4, error)) && memo_put (u, le32 (p), error);
    case 0x94:
      return memo_put (u, g_hash_table_size (u->memo), error); /* MEMOIZE */
    case 'h':
      return (p = take (u, 1, error)) && memo_get (u, p[0], error);
    case 'j':
      return (p = take (u, 4, error)) && memo_get (u, le32 (p), error);
    case 'Q':
      return op_persistent_id (u, error);
    case 'R':
      return op_reduce (u, error);
    case 'b': /* BUILD: the state (e.g. _metadata) is ignored */
      return pop (u, error) && top (u, error);
    case '0':
      return pop (u, error) != NULL;
    case '1':
      return pop_to_mark (u, PV_TUPLE, error) != NULL;
    case '2':
      if (!(v = top (u, error)))
        return FALSE;
      push (u, v);
      return TRUE;
    default:
      {
        g_set_error (error, VAE_ERROR, VAE_ERROR_UNSUPPORTED,
                     _ ("%s: pickle opcode 0x%02x at byte %zu is not supported "
                        "(only what torch.save writes for a state dict)"),
                     u->path, op, u->pos - 1);
        return FALSE;
      }
    }
}

static Pv *
unpickle (Unpickler *u, GError **error)
{
  gboolean done = FALSE;

  while (!done)
    {
      const guint8 *op = take (u, 1, error);
      if (!op || !step (u, *op, &done, error) || !within_budget (u, error))
        return NULL;
    }
  if (u->stack->len != 1)
    {
      bad (u, error, "STOP with a stack that does not hold one value");
      return NULL;
    }
  return u->stack->pdata[0];
}

static Pv *
dict_get (const Pv *dict, const gchar *key)
{
  for (guint i = 0; i + 1 < dict->items->len; i += 2)
    {
      const Pv *k = dict->items->pdata[i];
      if (k->type == PV_STR && strcmp (k->s, key) == 0)
        return dict->items->pdata[i + 1];
    }
  return NULL;
}

/* Points at the tensor's bytes, gathering a strided view into a new buffer.
 * Every size and offset is checked arithmetic: a view's shape and strides
 * come from the pickle, so they may claim anything. */
static gboolean
add_tensor (Unpickler *u, const VaeTensorSink *sink, VaeZip *zip, const gchar *root,
            const gchar *name, const Pv *t, GError **error)
{
  g_autofree gchar   *member_name = g_strdup_printf ("%s/data/%s", root, t->storage->s);
  const VaeZipMember *member;
  const gsize         esize = vae_dtype_size (t->storage->dtype);
  const gsize         numel = (gsize) t->storage->i, offset = (gsize) t->offset;
  gsize               storage_bytes, last = offset, n = 1, expect = 1, gathered;
  gboolean            contiguous = TRUE, empty = FALSE;

  member = vae_zip_get (zip, member_name, sink->buffers, error);
  if (!member)
    return FALSE;
  if (!vae_size_mul (numel, esize, &storage_bytes) || storage_bytes > member->size)
    {
      g_set_error (
          error, VAE_ERROR, VAE_ERROR_FORMAT,
          _ ("%s: tensor '%s' claims a storage of %" PRId64 " elements but '%s' holds %zu bytes"),
          sink->path, name, t->storage->i, member_name, member->size);
      return FALSE;
    }
  /* an empty view still points at OFFSET, which must lie in the storage */
  if (offset > numel)
    goto outside;
  for (gint d = 0; d < t->ndim; d++)
    empty |= t->shape[d] == 0;
  /* with no zero extent every partial product is at most N, so N bounds
   * EXPECT too */
  for (gint d = t->ndim; !empty && d-- > 0;)
    {
      gsize span;
      if (!vae_size_mul ((gsize) t->shape[d] - 1, (gsize) t->stride[d], &span) ||
          !vae_size_add (last, span, &last) || !vae_size_mul (n, (gsize) t->shape[d], &n))
        goto outside;
      if (t->shape[d] != 1 && (gsize) t->stride[d] != expect)
        contiguous = FALSE;
      expect *= (gsize) t->shape[d];
    }
  if (!empty && last >= numel)
    goto outside;
  if (contiguous || empty)
    return sink->add (sink->to, name, t->storage->dtype, t->ndim, t->shape,
                      member->data + offset * esize, error);
  if (n > VAE_MAX_TENSOR_ELEMENTS)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_FORMAT,
                   _ ("%s: tensor '%s' has %zu elements, more than the largest allowed (%zu)"),
                   sink->path, name, n, (gsize) VAE_MAX_TENSOR_ELEMENTS);
      return FALSE;
    }
  /* a view may repeat its storage's values (stride 0): 507 bytes made a
   * gigabyte; the copy counts against the pickle's budget */
  gathered = n * esize;
  u->spent += gathered;
  if (!within_budget (u, error))
    return FALSE;
  {
    guint8 *out = vae_try_alloc_uninit (gathered, name, error);
    gint64  index[VAE_MAX_DIMS] = { 0 };
    if (!out)
      return FALSE;
    g_ptr_array_add (sink->buffers, out);
    for (gsize i = 0; i < n; i++)
      {
        gsize src = offset;
        for (gint d = 0; d < t->ndim; d++)
          src += (gsize) index[d] * (gsize) t->stride[d];
        memcpy (out + i * esize, member->data + src * esize, esize);
        for (gint d = t->ndim; d-- > 0;)
          if (++index[d] < t->shape[d])
            break;
          else
            index[d] = 0;
      }
    return sink->add (sink->to, name, t->storage->dtype, t->ndim, t->shape, out, error);
  }

outside:
  g_set_error (error, VAE_ERROR, VAE_ERROR_FORMAT,
               _ ("%s: tensor '%s' reaches outside its storage"), sink->path, name);
  return FALSE;
}

/* The one `<root>/data.pkl` member names the archive's root folder. */
static gchar *
find_root (VaeZip *zip, const gchar *path, GError **error)
{
  gchar *root = NULL;

  for (guint i = 0; i < vae_zip_count (zip); i++)
    {
      const gchar *name = vae_zip_name (zip, i);
      const gchar *slash = strchr (name, '/');
      if (slash && strcmp (slash, "/data.pkl") == 0)
        {
          if (root)
            {
              g_free (root);
              g_set_error (error, VAE_ERROR, VAE_ERROR_FORMAT, _ ("%s: more than one data.pkl"),
                           path);
              return NULL;
            }
          root = g_strndup (name, (gsize) (slash - name));
        }
    }
  if (!root)
    g_set_error (error, VAE_ERROR, VAE_ERROR_FORMAT,
                 _ ("%s is a zip file but not a PyTorch checkpoint (no data.pkl)"), path);
  return root;
}

static gboolean
check_byteorder (VaeZip *zip, const gchar *root, GPtrArray *owned, const gchar *path,
                 GError **error)
{
  g_autofree gchar   *name = g_strdup_printf ("%s/byteorder", root);
  const VaeZipMember *m;

  for (guint i = 0; i < vae_zip_count (zip); i++)
    if (strcmp (vae_zip_name (zip, i), name) == 0)
      {
        if (!(m = vae_zip_get (zip, name, owned, error)))
          return FALSE;
        if (m->size != 6 || memcmp (m->data, "little", 6) != 0)
          {
            g_set_error (error, VAE_ERROR, VAE_ERROR_UNSUPPORTED,
                         _ ("%s: big-endian checkpoints are not supported"), path);
            return FALSE;
          }
      }
  return TRUE;
}

static gboolean
add_state_dict (Unpickler *u, const VaeTensorSink *sink, VaeZip *zip, const gchar *root, Pv *value,
                GError **error)
{
  Pv *nested;

  if (value->type != PV_DICT)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_MODEL,
                   _ ("%s: the checkpoint does not hold a state dict"), sink->path);
      return FALSE;
    }
  nested = dict_get (value, "state_dict");
  if (nested && nested->type == PV_DICT)
    value = nested;
  for (guint i = 0; i + 1 < value->items->len; i += 2)
    {
      const Pv *key = value->items->pdata[i];
      const Pv *tensor = value->items->pdata[i + 1];
      if (key->type != PV_STR || tensor->type != PV_TENSOR)
        continue; /* epochs, step counters and other non-tensor entries */
      if (!add_tensor (u, sink, zip, root, key->s, tensor, error))
        return FALSE;
    }
  return TRUE;
}

gboolean
vae_pth_parse (const VaeTensorSink *sink, const guint8 *bytes, gsize size, GError **error)
{
  g_autofree gchar   *root = NULL;
  g_autofree gchar   *pkl_name = NULL;
  const VaeZipMember *pkl;
  VaeZip             *zip;
  Unpickler           u = { 0 };
  Pv                 *result;
  gboolean            ok = FALSE;

  zip = vae_zip_open (bytes, size, sink->path, error);
  if (!zip)
    return FALSE;
  if (!(root = find_root (zip, sink->path, error)) ||
      !check_byteorder (zip, root, sink->buffers, sink->path, error))
    goto out;
  pkl_name = g_strdup_printf ("%s/data.pkl", root);
  /* the pickle is the checkpoint's header: bounded before it is inflated */
  if (vae_zip_size (zip, pkl_name) > vae_limit (VAE_LIMIT_HEADER_BYTES))
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_LIMIT,
                   _ ("%s: a pickle of %" PRIu64 " bytes exceeds the limit of %" PRIu64
                      " bytes (%s raises it)"),
                   sink->path, vae_zip_size (zip, pkl_name), vae_limit (VAE_LIMIT_HEADER_BYTES),
                   vae_limit_env (VAE_LIMIT_HEADER_BYTES));
      goto out;
    }
  if (!(pkl = vae_zip_get (zip, pkl_name, sink->buffers, error)))
    goto out;

  u.path = sink->path;
  u.code = pkl->data;
  u.size = pkl->size;
  u.arena = g_ptr_array_new_with_free_func (pv_free);
  u.stack = g_ptr_array_new ();
  u.marks = g_array_new (FALSE, FALSE, sizeof (guint));
  u.memo = g_hash_table_new (NULL, NULL);
  u.budget = ((gsize) 16 << 20) + size;
  result = unpickle (&u, error);
  ok = result && add_state_dict (&u, sink, zip, root, result, error);
  g_hash_table_unref (u.memo);
  g_array_unref (u.marks);
  g_ptr_array_unref (u.stack);
  g_ptr_array_unref (u.arena);
out:
  vae_zip_free (zip);
  return ok;
}
