/* Translations: an op title, an enum label and a plug-in menu label come
 * back in Chinese under LANGUAGE=zh_CN.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include <gegl.h>
#include <glib/gi18n.h>
#include <locale.h>

static void
test_zh_cn (void)
{
  GParamSpec  *spec;
  GEnumClass  *klass;
  const gchar *title = gegl_operation_get_key ("vae:diffusion-preview", "title");

  g_test_message ("vae:diffusion-preview title: %s", title);
  g_assert_cmpstr (title, ==, "前向扩散预览");
  spec = gegl_operation_find_property ("vae:latent-noise", "schedule");
  klass = g_type_class_ref (spec->value_type);
  g_assert_cmpstr (g_enum_get_value (klass, 4)->value_name, ==, "流匹配");
  g_type_class_unref (klass);
  g_assert_cmpstr (g_dgettext ("gegl-vae", "_Forward diffusion preview…"), ==, "前向扩散预览(_F)…");
  g_assert_cmpstr (g_dgettext ("gegl-vae", "the latent has %d channels but model %s takes %d"), ==,
                   "潜变量有 %d 个通道，但模型 %s 需要 %d 个");
  /* libvae's own errors too */
  g_assert_cmpstr (
      g_dgettext ("gegl-vae",
                  "%s: the pickle asks for '%s.%s', which is not allowed (only OrderedDict, "
                  "_rebuild_tensor_v2 and torch storages are); refusing the file, nothing "
                  "was run"),
      !=,
      "%s: the pickle asks for '%s.%s', which is not allowed (only OrderedDict, _rebuild_tensor_v2 "
      "and "
      "torch storages are); refusing the file, nothing was run");
}

int
main (int argc, char **argv)
{
  /* gegl never calls setlocale; GIMP does, and so do we here */
  g_setenv ("LANGUAGE", "zh_CN", TRUE);
  /* glibc 2.41 (Debian 13) ignores LANGUAGE under C.UTF-8 as under C; 2.36 reads it */
  g_setenv ("LC_ALL", "zh_CN.UTF-8", TRUE);
  if (!setlocale (LC_ALL, ""))
    {
      g_setenv ("LC_ALL", "C.UTF-8", TRUE);
      setlocale (LC_ALL, "");
    }
  g_setenv ("GEGL_PATH", GEGL_MODULE_DIR ":" GEGL_SYSTEM_PLUGINS, TRUE);
  g_setenv ("GEGL_VAE_LOCALEDIR", LOCALE_DIR, TRUE);
  g_test_init (&argc, &argv, NULL);
  gegl_init (&argc, &argv);
  g_test_add_func ("/i18n/zh-cn", test_zh_cn);
  {
    int status = g_test_run ();
    gegl_exit ();
    return status;
  }
}
