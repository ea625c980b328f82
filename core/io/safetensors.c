/* safetensors: a bounds-checked reader over a mapped file, and a writer.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "vae-private.h"

#include <json-glib/json-glib.h>
#include <stdio.h>
#include <string.h>

typedef struct
{
  const gchar *name;
  guint64      begin;
  guint64      end;
} Span;

/* json-glib replaces a repeated member silently; count what it parsed. */
static void
count_member (JsonParser *parser, JsonObject *object, gchar *member, gpointer counts)
{
  guint n = GPOINTER_TO_UINT (g_hash_table_lookup (counts, object));
  g_hash_table_insert (counts, object, GUINT_TO_POINTER (n + 1));
}

static gboolean
json_uint (JsonNode *node, guint64 *value)
{
  if (!node || !JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_INT64)
    return FALSE;
  if (json_node_get_int (node) < 0)
    return FALSE;
  *value = (guint64) json_node_get_int (node);
  return TRUE;
}

/* A header is an object of objects of arrays: 3 levels.  json-glib parses
 * recursively, so a header nested 100 000 deep (200 KB) overflowed the
 * stack; the depth is counted before it parses anything. */
#define MAX_JSON_DEPTH 32

static gboolean
json_depth_ok (const gchar *text, gsize length)
{
  guint    depth = 0;
  gboolean in_string = FALSE;

  for (gsize i = 0; i < length; i++)
    {
      const gchar c = text[i];
      if (in_string)
        {
          if (c == '\\')
            i++; /* the escaped character, a quote included */
          else if (c == '"')
            in_string = FALSE;
        }
      else if (c == '"')
        in_string = TRUE;
      else if ((c == '{' || c == '[') && ++depth > MAX_JSON_DEPTH)
        return FALSE;
      else if ((c == '}' || c == ']') && depth > 0)
        depth--;
    }
  return TRUE;
}

static gint
compare_spans (gconstpointer a, gconstpointer b)
{
  const Span *x = a, *y = b;
  return x->begin < y->begin   ? -1
         : x->begin > y->begin ? 1
                               : (x->end < y->end ? -1 : x->end > y->end);
}

/* Parses one tensor's description and adds it; records its byte span. */
static gboolean
parse_entry (const VaeTensorSink *sink, const gchar *name, JsonNode *node, const guint8 *data,
             guint64 data_size, Span *span, GError **error)
{
  const gchar *path = sink->path;
  JsonObject  *object;
  JsonArray   *shape, *offsets;
  const gchar *dtype_name;
  VaeDtype     dtype;
  gint64       dims[VAE_MAX_DIMS];
  gsize        n_bytes;
  guint        ndim;

  if (!JSON_NODE_HOLDS_OBJECT (node))
    goto malformed;
  object = json_node_get_object (node);
  if (!json_object_has_member (object, "dtype") || !json_object_has_member (object, "shape") ||
      !json_object_has_member (object, "data_offsets"))
    goto malformed;
  if (json_node_get_value_type (json_object_get_member (object, "dtype")) != G_TYPE_STRING)
    goto malformed;
  dtype_name = json_object_get_string_member (object, "dtype");
  if (!vae_dtype_from_name (dtype_name, &dtype))
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_UNSUPPORTED,
                   _ ("%s: tensor '%s' has unknown dtype '%s'"), path, name, dtype_name);
      return FALSE;
    }
  if (!JSON_NODE_HOLDS_ARRAY (json_object_get_member (object, "shape")) ||
      !JSON_NODE_HOLDS_ARRAY (json_object_get_member (object, "data_offsets")))
    goto malformed;
  shape = json_object_get_array_member (object, "shape");
  offsets = json_object_get_array_member (object, "data_offsets");
  ndim = json_array_get_length (shape);
  if (ndim > VAE_MAX_DIMS)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_UNSUPPORTED,
                   _ ("%s: tensor '%s' has %u dimensions (at most %d)"), path, name, ndim,
                   VAE_MAX_DIMS);
      return FALSE;
    }
  n_bytes = vae_dtype_size (dtype);
  for (guint i = 0; i < ndim; i++)
    {
      guint64 d;
      if (!json_uint (json_array_get_element (shape, i), &d))
        goto malformed;
      if (d > G_MAXINT64 || !vae_size_mul (n_bytes, (gsize) d, &n_bytes))
        {
          g_set_error (error, VAE_ERROR, VAE_ERROR_FORMAT,
                       _ ("%s: the shape of tensor '%s' overflows"), path, name);
          return FALSE;
        }
      dims[i] = (gint64) d;
    }
  if (json_array_get_length (offsets) != 2 ||
      !json_uint (json_array_get_element (offsets, 0), &span->begin) ||
      !json_uint (json_array_get_element (offsets, 1), &span->end) || span->end < span->begin)
    goto malformed;
  span->name = name;
  if (span->end > data_size)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_FORMAT,
                   _ ("%s: tensor '%s' has offsets [%" PRIu64 ", %" PRIu64
                      ") past the end of the data (%" PRIu64 " bytes); the file is truncated?"),
                   path, name, span->begin, span->end, data_size);
      return FALSE;
    }
  if (span->end - span->begin != n_bytes)
    {
      g_set_error (
          error, VAE_ERROR, VAE_ERROR_FORMAT,
          _ ("%s: tensor '%s' is %s with %zu bytes of shape but %" PRIu64 " bytes of data"), path,
          name, dtype_name, n_bytes, span->end - span->begin);
      return FALSE;
    }
  return sink->add (sink->to, name, dtype, (gint) ndim, dims, data + span->begin, error);

malformed:
  g_set_error (
      error, VAE_ERROR, VAE_ERROR_FORMAT,
      _ ("%s: tensor '%s' needs a string dtype, an array of non-negative integer shape and two "
         "data_offsets"),
      path, name);
  return FALSE;
}

/* Tensors must tile the data section exactly: sorted by offset, each starts
 * where the previous ended. */
static gboolean
check_spans (const gchar *path, GArray *spans, guint64 data_size, GError **error)
{
  guint64 expected = 0;

  g_array_sort (spans, compare_spans);
  for (guint i = 0; i < spans->len; i++)
    {
      const Span *s = &g_array_index (spans, Span, i);
      if (s->begin < expected)
        {
          g_set_error (error, VAE_ERROR, VAE_ERROR_FORMAT,
                       _ ("%s: tensor '%s' overlaps tensor '%s'"), path, s->name,
                       g_array_index (spans, Span, i - 1).name);
          return FALSE;
        }
      if (s->begin > expected)
        {
          g_set_error (error, VAE_ERROR, VAE_ERROR_FORMAT,
                       _ ("%s: a hole of %" PRIu64 " bytes before tensor '%s'"), path,
                       s->begin - expected, s->name);
          return FALSE;
        }
      expected = s->end;
    }
  if (expected != data_size)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_FORMAT,
                   _ ("%s: %" PRIu64 " bytes after the last tensor are not described"), path,
                   data_size - expected);
      return FALSE;
    }
  return TRUE;
}

static gboolean
check_metadata (const gchar *path, JsonNode *node, GError **error)
{
  JsonObject *object;
  GList      *members;
  gboolean    ok = TRUE;

  if (!JSON_NODE_HOLDS_OBJECT (node))
    ok = FALSE;
  else
    {
      object = json_node_get_object (node);
      members = json_object_get_members (object);
      for (GList *l = members; l && ok; l = l->next)
        ok = json_node_get_value_type (json_object_get_member (object, l->data)) == G_TYPE_STRING;
      g_list_free (members);
    }
  if (!ok)
    g_set_error (error, VAE_ERROR, VAE_ERROR_FORMAT,
                 _ ("%s: __metadata__ must map names to strings"), path);
  return ok;
}

gboolean
vae_safetensors_parse (const VaeTensorSink *sink, const guint8 *bytes, gsize size, GError **error)
{
  const gchar *path = sink->path;
  g_autoptr (JsonParser) parser = NULL;
  g_autoptr (GHashTable) counts = NULL;
  g_autoptr (GError) local = NULL;
  g_autoptr (GArray) spans = NULL;
  JsonObject *root;
  GList      *members;
  guint64     header_len, data_size;
  gboolean    ok = TRUE;

  if (size < 8)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_FORMAT,
                   _ ("%s is not a model file: %zu bytes, too short for a safetensors header"),
                   path, size);
      return FALSE;
    }
  header_len = GUINT64_FROM_LE (*(const guint64 *) bytes);
  /* anything that is neither a PyTorch checkpoint (sniffed before) nor a
   * safetensors file ends here: its first 8 bytes rarely fit the file */
  if (header_len > size - 8)
    {
      g_set_error (
          error, VAE_ERROR, VAE_ERROR_FORMAT,
          _ ("%s is neither a safetensors file (its first 8 bytes give a header of %" PRIu64
             " bytes, larger than the file's %zu) nor a PyTorch checkpoint (zip or "
             "pickle)"),
          path, header_len, size);
      return FALSE;
    }
  if (header_len > vae_limit (VAE_LIMIT_HEADER_BYTES))
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_LIMIT,
                   _ ("%s: safetensors header of %" PRIu64 " bytes exceeds the limit of %" PRIu64
                      " bytes (%s raises the limit)"),
                   path, header_len, vae_limit (VAE_LIMIT_HEADER_BYTES),
                   vae_limit_env (VAE_LIMIT_HEADER_BYTES));
      return FALSE;
    }
  if (!g_utf8_validate ((const gchar *) bytes + 8, (gssize) header_len, NULL))
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_FORMAT, _ ("%s: safetensors header is not UTF-8"),
                   path);
      return FALSE;
    }

  if (!json_depth_ok ((const gchar *) bytes + 8, (gsize) header_len))
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_FORMAT,
                   _ ("%s: the safetensors header nests deeper than %d levels"), path,
                   MAX_JSON_DEPTH);
      return FALSE;
    }
  parser = json_parser_new_immutable ();
  counts = g_hash_table_new (NULL, NULL);
  g_signal_connect (parser, "object-member", G_CALLBACK (count_member), counts);
  if (!json_parser_load_from_data (parser, (const gchar *) bytes + 8, (gssize) header_len, &local))
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_FORMAT,
                   _ ("%s: safetensors header is not valid JSON: %s"), path, local->message);
      return FALSE;
    }
  if (!json_parser_get_root (parser) || !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_FORMAT,
                   _ ("%s: safetensors header is not a JSON object"), path);
      return FALSE;
    }
  root = json_node_get_object (json_parser_get_root (parser));
  if (GPOINTER_TO_UINT (g_hash_table_lookup (counts, root)) != json_object_get_size (root))
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_FORMAT,
                   _ ("%s: a tensor name appears twice in the header"), path);
      return FALSE;
    }

  data_size = size - 8 - header_len;
  spans = g_array_new (FALSE, FALSE, sizeof (Span));
  members = json_object_get_members (root);
  for (GList *l = members; l && ok; l = l->next)
    {
      const gchar *name = l->data;
      JsonNode    *node = json_object_get_member (root, name);
      Span         span;

      if (strcmp (name, "__metadata__") == 0)
        ok = check_metadata (path, node, error);
      else if ((ok = parse_entry (sink, name, node, bytes + 8 + header_len, data_size, &span,
                                  error)))
        g_array_append_val (spans, span);
    }
  g_list_free (members);
  return ok && check_spans (path, spans, data_size, error);
}

/* ---- writer -------------------------------------------------------------- */

static gchar *
build_header (const VaeSafetensorsItem *items, guint n_items, GHashTable *metadata, gsize *length)
{
  g_autoptr (JsonBuilder) builder = json_builder_new ();
  g_autoptr (JsonGenerator) generator = json_generator_new ();
  g_autoptr (JsonNode) root = NULL;
  guint64 offset = 0;
  gchar  *text;
  gsize   len, padded;

  json_builder_begin_object (builder);
  if (metadata && g_hash_table_size (metadata))
    {
      GHashTableIter iter;
      gpointer       key, value;
      json_builder_set_member_name (builder, "__metadata__");
      json_builder_begin_object (builder);
      g_hash_table_iter_init (&iter, metadata);
      while (g_hash_table_iter_next (&iter, &key, &value))
        {
          json_builder_set_member_name (builder, key);
          json_builder_add_string_value (builder, value);
        }
      json_builder_end_object (builder);
    }
  for (guint i = 0; i < n_items; i++)
    {
      guint64 n = vae_dtype_size (items[i].dtype);
      json_builder_set_member_name (builder, items[i].name);
      json_builder_begin_object (builder);
      json_builder_set_member_name (builder, "dtype");
      json_builder_add_string_value (builder, vae_dtype_name (items[i].dtype));
      json_builder_set_member_name (builder, "shape");
      json_builder_begin_array (builder);
      for (gint d = 0; d < items[i].ndim; d++)
        {
          json_builder_add_int_value (builder, items[i].shape[d]);
          n *= (guint64) items[i].shape[d];
        }
      json_builder_end_array (builder);
      json_builder_set_member_name (builder, "data_offsets");
      json_builder_begin_array (builder);
      json_builder_add_int_value (builder, (gint64) offset);
      json_builder_add_int_value (builder, (gint64) (offset + n));
      json_builder_end_array (builder);
      json_builder_end_object (builder);
      offset += n;
    }
  json_builder_end_object (builder);
  root = json_builder_get_root (builder);
  json_generator_set_root (generator, root);
  text = json_generator_to_data (generator, &len);
  padded = (len + 7) & ~(gsize) 7; /* the format pads the header with spaces to 8 bytes */
  text = g_realloc (text, padded + 1);
  memset (text + len, ' ', padded - len);
  text[padded] = '\0';
  *length = padded;
  return text;
}

static gboolean
write_item (FILE *f, const VaeSafetensorsItem *item)
{
  gsize   n = 1;
  guint16 buf[4096];

  for (gint d = 0; d < item->ndim; d++)
    n *= (gsize) item->shape[d];
  if (item->dtype == VAE_DTYPE_F32)
    return fwrite (item->data, 4, n, f) == n;
  for (gsize i = 0; i < n;)
    {
      gsize chunk = MIN (n - i, G_N_ELEMENTS (buf));
      for (gsize j = 0; j < chunk; j++)
        {
          guint16 v = item->dtype == VAE_DTYPE_F16 ? vae_float_to_half (item->data[i + j])
                                                   : vae_float_to_bfloat16 (item->data[i + j]);
          buf[j] = GUINT16_TO_LE (v);
        }
      if (fwrite (buf, 2, chunk, f) != chunk)
        return FALSE;
      i += chunk;
    }
  return TRUE;
}

gboolean
vae_safetensors_write (const gchar *path, const VaeSafetensorsItem *items, guint n_items,
                       GHashTable *metadata, GError **error)
{
  g_autofree gchar *header = NULL;
  gsize             header_len;
  guint64           len_le;
  VaeOutput        *out;
  FILE             *f;
  gboolean          ok;

  for (guint i = 0; i < n_items; i++)
    g_return_val_if_fail (items[i].dtype == VAE_DTYPE_F32 || items[i].dtype == VAE_DTYPE_F16 ||
                              items[i].dtype == VAE_DTYPE_BF16,
                          FALSE);
  header = build_header (items, n_items, metadata, &header_len);
  if (!(out = vae_output_new (path, error)))
    return FALSE;
  f = vae_output_file (out);
  len_le = GUINT64_TO_LE ((guint64) header_len);
  ok = fwrite (&len_le, 8, 1, f) == 1 && fwrite (header, 1, header_len, f) == header_len;
  for (guint i = 0; ok && i < n_items; i++)
    ok = write_item (f, &items[i]);
  return vae_output_close (out, ok, error);
}
