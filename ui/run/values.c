/* Property values from text (command line, manifests), checked against the
 * property's type and range so that a wrong value is an error, never the
 * default run in silence.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "vae-config.h"
#include "runner.h"

#include <math.h>
#include <string.h>

static guint
distance (const gchar *a, const gchar *b)
{
  const gsize       la = strlen (a), lb = strlen (b);
  g_autofree guint *row = g_new (guint, lb + 1);

  for (gsize j = 0; j <= lb; j++)
    row[j] = (guint) j;
  for (gsize i = 1; i <= la; i++)
    {
      guint diagonal = row[0];
      row[0] = (guint) i;
      for (gsize j = 1; j <= lb; j++)
        {
          guint above = row[j];
          row[j] = MIN (MIN (row[j] + 1, row[j - 1] + 1), diagonal + (a[i - 1] != b[j - 1]));
          diagonal = above;
        }
    }
  return row[lb];
}

gchar *
run_suggest (const gchar *word, gchar **candidates)
{
  const gchar *best = NULL;
  guint        best_distance = MAX (2u, (guint) strlen (word) / 3) + 1;

  for (gint i = 0; candidates && candidates[i]; i++)
    {
      guint d = distance (word, candidates[i]);
      if (d < best_distance)
        best = candidates[i], best_distance = d;
    }
  return best ? g_strdup_printf (_ (" (did you mean '%s'?)"), best) : g_strdup ("");
}

static gboolean
out_of_range (GParamSpec *pspec, const gchar *owner, const gchar *text, gdouble min, gdouble max,
              GError **error)
{
  g_set_error (error, RUN_ERROR, RUN_ERROR_USAGE,
               _ ("%s=%s is out of range: %s takes %s from %g to %g"), pspec->name, text, owner,
               pspec->name, min, max);
  return FALSE;
}

static gboolean
not_a (GParamSpec *pspec, const gchar *text, const gchar *what, GError **error)
{
  g_set_error (error, RUN_ERROR, RUN_ERROR_USAGE, _ ("%s=%s: %s is %s"), pspec->name, text,
               pspec->name, what);
  return FALSE;
}

static gboolean
parse_enum (GParamSpec *pspec, const gchar *text, GValue *value, GError **error)
{
  GEnumClass *klass = g_type_class_ref (pspec->value_type);
  GEnumValue *v = g_enum_get_value_by_nick (klass, text);
  g_autoptr (GPtrArray) nicks = g_ptr_array_new ();
  g_autofree gchar *list = NULL;

  if (!v)
    v = g_enum_get_value_by_name (klass, text);
  if (v)
    {
      g_value_set_enum (value, v->value);
      g_type_class_unref (klass);
      return TRUE;
    }
  for (guint i = 0; i < klass->n_values; i++)
    g_ptr_array_add (nicks, (gpointer) klass->values[i].value_nick);
  g_ptr_array_add (nicks, NULL);
  list = g_strjoinv (", ", (gchar **) nicks->pdata);
  g_set_error (error, RUN_ERROR, RUN_ERROR_USAGE, _ ("%s=%s: %s is one of %s"), pspec->name, text,
               pspec->name, list);
  g_type_class_unref (klass);
  return FALSE;
}

static gboolean
parse_integer (GParamSpec *pspec, const gchar *owner, const gchar *text, GValue *value,
               GError **error)
{
  gint64 v, min = G_MININT64, max = G_MAXINT64;

  if (G_IS_PARAM_SPEC_INT (pspec))
    min = G_PARAM_SPEC_INT (pspec)->minimum, max = G_PARAM_SPEC_INT (pspec)->maximum;
  else if (G_IS_PARAM_SPEC_UINT (pspec))
    min = G_PARAM_SPEC_UINT (pspec)->minimum, max = G_PARAM_SPEC_UINT (pspec)->maximum;
  else if (G_IS_PARAM_SPEC_INT64 (pspec))
    min = G_PARAM_SPEC_INT64 (pspec)->minimum, max = G_PARAM_SPEC_INT64 (pspec)->maximum;
  if (!g_ascii_string_to_signed (text, 10, G_MININT64, G_MAXINT64, &v, NULL))
    return not_a (pspec, text, _ ("a whole number"), error);
  if (v < min || v > max)
    return out_of_range (pspec, owner, text, (gdouble) min, (gdouble) max, error);
  if (G_IS_PARAM_SPEC_INT (pspec))
    g_value_set_int (value, (gint) v);
  else if (G_IS_PARAM_SPEC_UINT (pspec))
    g_value_set_uint (value, (guint) v);
  else
    g_value_set_int64 (value, v);
  return TRUE;
}

gboolean
run_value_parse (GParamSpec *pspec, const gchar *owner, const gchar *text, GValue *value,
                 GError **error)
{
  GType type = pspec->value_type;

  g_value_init (value, type);
  if (type == G_TYPE_DOUBLE || type == G_TYPE_FLOAT)
    {
      gchar  *end;
      gdouble v = g_ascii_strtod (text, &end), min = -G_MAXDOUBLE, max = G_MAXDOUBLE;

      if (G_IS_PARAM_SPEC_DOUBLE (pspec))
        min = G_PARAM_SPEC_DOUBLE (pspec)->minimum, max = G_PARAM_SPEC_DOUBLE (pspec)->maximum;
      else if (G_IS_PARAM_SPEC_FLOAT (pspec))
        min = G_PARAM_SPEC_FLOAT (pspec)->minimum, max = G_PARAM_SPEC_FLOAT (pspec)->maximum;
      if (end == text || *end || !isfinite (v))
        return not_a (pspec, text, _ ("a number"), error);
      if (v < min || v > max)
        return out_of_range (pspec, owner, text, min, max, error);
      if (type == G_TYPE_DOUBLE)
        g_value_set_double (value, v);
      else
        g_value_set_float (value, (gfloat) v);
      return TRUE;
    }
  if (type == G_TYPE_INT || type == G_TYPE_UINT || type == G_TYPE_INT64)
    return parse_integer (pspec, owner, text, value, error);
  if (type == G_TYPE_BOOLEAN)
    {
      g_autofree gchar *lower = g_ascii_strdown (text, -1);
      if (!strcmp (lower, "true") || !strcmp (lower, "yes") || !strcmp (lower, "1"))
        g_value_set_boolean (value, TRUE);
      else if (!strcmp (lower, "false") || !strcmp (lower, "no") || !strcmp (lower, "0"))
        g_value_set_boolean (value, FALSE);
      else
        return not_a (pspec, text, _ ("true or false"), error);
      return TRUE;
    }
  if (G_TYPE_IS_ENUM (type))
    return parse_enum (pspec, text, value, error);
  if (type == G_TYPE_STRING)
    {
      g_value_set_string (value, text);
      return TRUE;
    }
  if (type == GEGL_TYPE_COLOR)
    {
      g_value_take_object (value, gegl_color_new (text));
      return TRUE;
    }
  g_set_error (error, RUN_ERROR, RUN_ERROR_USAGE, _ ("%s: %s cannot be set from the command line"),
               owner, pspec->name);
  return FALSE;
}
