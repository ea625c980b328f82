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

#endif
