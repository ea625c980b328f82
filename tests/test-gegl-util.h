/* Helpers of the test programs that drive GEGL in process.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#ifndef VAE_TEST_GEGL_UTIL_H
#define VAE_TEST_GEGL_UTIL_H

#include <gegl.h>

/* Sets an enum property by its nick, as a graph file would. */
static inline void
test_set_enum (GeglNode *node, const gchar *property, const gchar *nick)
{
  GParamSpec *pspec = gegl_node_find_property (node, property);
  GEnumClass *klass;
  GEnumValue *value;

  g_assert_nonnull (pspec);
  klass = g_type_class_ref (pspec->value_type);
  value = g_enum_get_value_by_nick (klass, nick);
  g_assert_nonnull (value);
  gegl_node_set (node, property, value->value, NULL);
  g_type_class_unref (klass);
}

/* Connects SOURCE's output to SINK's PAD: gegl_node_connect from GEGL 0.4.46
 * on (it deprecates gegl_node_connect_to there), gegl_node_connect_to before. */
static inline void
test_connect (GeglNode *source, GeglNode *sink, const gchar *pad)
{
#if GEGL_MINOR_VERSION > 4 || GEGL_MICRO_VERSION >= 46
  gegl_node_connect (source, "output", sink, pad);
#else
  gegl_node_connect_to (source, "output", sink, pad);
#endif
}

#endif
