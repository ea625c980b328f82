/* Family descriptors: what the weights do not say (scale, shift, default
 * file names, preview factors), read from presets/families/NAME.ini.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "vae-private.h"
#include "vae-families.h"

#include <gio/gio.h>
#include <string.h>

#define GROUP "Family"

/* Kind= in a descriptor, in VaeKind's order, and what `info` calls it. */
static const gchar *const kind_names[] = { "kl",         "tiny",  "vq",           "vqvae",
                                           "qwen-image", "dc-ae", "hunyuan-image" };
static const gchar *const kind_titles[] = {
  "AutoencoderKL",
  "tiny autoencoder (TAESD)",
  "VQModel (diffusers, LDM VQ)",
  "VQ-VAE (van den Oord et al.)",
  "AutoencoderKLQwenImage, AutoencoderKLWan (Wan 2.1, 2.2), one frame",
  "AutoencoderDC (Sana's DC-AE)",
  "AutoencoderKLHunyuanImage (HunyuanImage 2.1)",
};

const gchar *
vae_kind_title (VaeKind kind)
{
  return kind_titles[CLAMP ((gint) kind, 0, (gint) G_N_ELEMENTS (kind_titles) - 1)];
}

static gboolean
is_vq (VaeKind kind)
{
  return kind == VAE_KIND_VQ || kind == VAE_KIND_VQVAE;
}

void
vae_family_free (VaeFamily *family)
{
  if (!family)
    return;
  g_free (family->name);
  g_free (family->title);
  g_strfreev (family->aliases);
  g_strfreev (family->files);
  g_free (family->rgb_factors);
  g_free (family->latents_mean);
  g_free (family->latents_std);
  g_free (family);
}

gint
vae_family_latent_channels (const VaeFamily *family)
{
  return family->raw_channels * family->patchify * family->patchify;
}

gint
vae_family_factor (const VaeFamily *family)
{
  return family->raw_factor * family->patchify;
}

VaeFamily *
vae_family_fitted (const VaeFamily *family, const VaeFamily *shape)
{
  VaeFamily *f = g_memdup2 (family, sizeof *family);

  f->name = g_strdup (family->name);
  f->title = g_strdup (family->title);
  f->aliases = g_strdupv (family->aliases);
  f->files = g_strdupv (family->files);
  f->rgb_factors = NULL; /* a descriptor for any size has none */
  f->n_rgb_factors = 0;
  f->raw_channels = shape->raw_channels;
  f->raw_factor = shape->raw_factor;
  return f;
}

VaeFamily *
vae_family_new_generic_kl (const VaeFamily *shape)
{
  VaeFamily *f = g_new0 (VaeFamily, 1);

  f->name = g_strdup ("kl-generic");
  f->title = g_strdup_printf (_ ("AutoencoderKL with no descriptor (%d latent channels at 1/%d)"),
                              shape->raw_channels, shape->raw_factor);
  f->kind = VAE_KIND_KL;
  f->raw_channels = shape->raw_channels;
  f->raw_factor = shape->raw_factor;
  f->patchify = shape->batch_norm ? 2 : 1; /* batch norm comes with FLUX.2's patchify */
  f->quant_convs = shape->quant_convs;
  f->batch_norm = shape->batch_norm;
  f->scale = 1.0;
  f->shift = 0.0;
  f->schedule = VAE_SCHEDULE_SD_SCALED_LINEAR;
  f->aliases = g_new0 (gchar *, 1);
  f->files = g_new0 (gchar *, 1);
  return f;
}

static gint
get_int (GKeyFile *kf, const gchar *key, gint fallback, gint lo, gint hi, gboolean *ok)
{
  g_autoptr (GError) e = NULL;
  gint v;

  if (!g_key_file_has_key (kf, GROUP, key, NULL))
    return fallback;
  v = g_key_file_get_integer (kf, GROUP, key, &e);
  if (e || v < lo || v > hi)
    *ok = FALSE;
  return v;
}

static gboolean
get_bool (GKeyFile *kf, const gchar *key, gboolean *ok)
{
  g_autoptr (GError) e = NULL;
  gboolean v;

  if (!g_key_file_has_key (kf, GROUP, key, NULL))
    return FALSE;
  v = g_key_file_get_boolean (kf, GROUP, key, &e);
  if (e)
    *ok = FALSE;
  return v;
}

static gdouble
get_double (GKeyFile *kf, const gchar *key, gdouble fallback, gboolean *ok)
{
  g_autoptr (GError) e = NULL;
  gdouble v;

  if (!g_key_file_has_key (kf, GROUP, key, NULL))
    return fallback;
  v = g_key_file_get_double (kf, GROUP, key, &e);
  if (e || !(v == v) || v > 1e6 || v < -1e6)
    *ok = FALSE;
  return v;
}

/* KEY's list of RawChannels numbers into *OUT (left NULL when absent);
 * FALSE when there are not that many or one is not above LOW. */
static gboolean
get_channel_list (GKeyFile *kf, const gchar *key, gint channels, gdouble low, gdouble **out)
{
  gsize n = 0;

  if (!g_key_file_has_key (kf, GROUP, key, NULL))
    return TRUE;
  *out = g_key_file_get_double_list (kf, GROUP, key, &n, NULL);
  for (gsize i = 0; *out && i < n; i++)
    if (!((*out)[i] > low) || (*out)[i] > 1e6)
      return FALSE;
  return *out && n == (gsize) channels;
}

gboolean
vae_family_parse (const gchar *text, gsize length, const gchar *origin, VaeFamily **out,
                  GError **error)
{
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  g_autoptr (GError) local = NULL;
  g_autofree gchar *kind = NULL;
  g_autofree gchar *schedule = NULL;
  VaeFamily        *f;
  gboolean          ok = TRUE;
  gsize             n_factors = 0;
  gint              kind_index;

  if (!g_key_file_load_from_data (kf, text, length, G_KEY_FILE_NONE, &local) ||
      !g_key_file_has_group (kf, GROUP))
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_FORMAT, _ ("family descriptor %s: %s"), origin,
                   local ? local->message : "no [Family] group");
      return FALSE;
    }
  f = g_new0 (VaeFamily, 1);
  f->name = g_key_file_get_string (kf, GROUP, "Name", NULL);
  f->title = g_key_file_get_locale_string (kf, GROUP, "Title", NULL, NULL);
  kind = g_key_file_get_string (kf, GROUP, "Kind", NULL);
  kind_index = kind ? (gint) G_N_ELEMENTS (kind_names) : -1;
  while (--kind_index >= 0 && g_strcmp0 (kind, kind_names[kind_index]) != 0)
    ;
  f->kind = (VaeKind) MAX (kind_index, 0);
  /* VQ descriptors may leave the latent's size to the weights (0) */
  f->raw_channels = get_int (kf, "RawChannels", 0, 1, 4096, &ok);
  f->raw_factor = get_int (kf, "RawFactor", is_vq (f->kind) ? 0 : 8, 1, 1024, &ok);
  f->patchify = get_int (kf, "Patchify", 1, 1, 2, &ok);
  f->priority = get_int (kf, "Priority", 0, -1000, 1000, &ok);
  f->quant_convs = get_bool (kf, "QuantConvs", &ok);
  f->batch_norm = get_bool (kf, "BatchNorm", &ok);
  f->pool_branch = get_bool (kf, "PoolBranch", &ok);
  f->scale = get_double (kf, "Scale", 1.0, &ok);
  f->shift = get_double (kf, "Shift", 0.0, &ok);
  schedule = g_key_file_get_string (kf, GROUP, "Schedule", NULL);
  if (schedule && !vae_schedule_from_name (schedule, &f->schedule))
    ok = FALSE;
  f->aliases = g_key_file_get_string_list (kf, GROUP, "Aliases", NULL, NULL);
  f->files = g_key_file_get_string_list (kf, GROUP, "Files", NULL, NULL);
  if (!get_channel_list (kf, "LatentsMean", f->raw_channels, -1e6, &f->latents_mean) ||
      !get_channel_list (kf, "LatentsStd", f->raw_channels, 0.0, &f->latents_std))
    ok = FALSE;
  if (g_key_file_has_key (kf, GROUP, "RgbFactors", NULL))
    {
      f->rgb_factors = g_key_file_get_double_list (kf, GROUP, "RgbFactors", &n_factors, NULL);
      f->n_rgb_factors = (gint) n_factors;
    }
  if (!ok || !f->name || !*f->name || !f->title || kind_index < 0 ||
      (f->raw_channels == 0 && !is_vq (f->kind)) ||
      (f->raw_channels == 0) != (f->raw_factor == 0) || f->scale == 0.0 ||
      (f->rgb_factors && n_factors != (gsize) f->raw_channels * f->patchify * f->patchify * 3 + 3))
    {
      g_set_error (
          error, VAE_ERROR, VAE_ERROR_FORMAT,
          _ ("family descriptor %s: needs Name, Title, Kind "
             "(kl|tiny|vq|vqvae|qwen-image|dc-ae|hunyuan-image), "
             "RawChannels ≥ 1 (vq, vqvae: RawChannels and RawFactor both or neither) and a "
             "non-zero Scale; Schedule must be sd-scaled-linear, linear, cosine or flow; "
             "integers, booleans and numbers must be valid, RgbFactors must hold channels × 3 + 3 "
             "numbers, LatentsMean and LatentsStd (> 0) one per raw channel"),
          origin);
      vae_family_free (f);
      return FALSE;
    }
  if (!f->aliases)
    f->aliases = g_new0 (gchar *, 1);
  if (!f->files)
    f->files = g_new0 (gchar *, 1);
  *out = f;
  return TRUE;
}

static void
add_family (GPtrArray *list, VaeFamily *family)
{
  for (guint i = 0; i < list->len; i++)
    if (strcmp (((VaeFamily *) list->pdata[i])->name, family->name) == 0)
      {
        vae_family_free (list->pdata[i]);
        list->pdata[i] = family;
        return;
      }
  g_ptr_array_add (list, family);
}

static void
load_builtin (GPtrArray *list)
{
  const gchar *dir = "/org/gegl-vae/families";
  g_auto (GStrv) names = NULL;

  g_resources_register (vae_families_get_resource ());
  names = g_resources_enumerate_children (dir, 0, NULL);
  for (guint i = 0; names && names[i]; i++)
    {
      g_autofree gchar *path = g_build_path ("/", dir, names[i], NULL);
      g_autoptr (GBytes) bytes = g_resources_lookup_data (path, 0, NULL);
      VaeFamily *f;
      if (bytes && vae_family_parse (g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes), path,
                                     &f, NULL))
        add_family (list, f);
    }
}

/* User descriptors: system data dirs first, the user's own last (wins). */
static void
load_user (GPtrArray *list)
{
  const gchar *const *system = g_get_system_data_dirs ();
  GPtrArray          *dirs = g_ptr_array_new_with_free_func (g_free);

  for (gint i = (gint) g_strv_length ((gchar **) system); i-- > 0;)
    g_ptr_array_add (dirs, g_build_filename (system[i], "gegl-vae", "families", NULL));
  g_ptr_array_add (dirs, g_build_filename (g_get_user_data_dir (), "gegl-vae", "families", NULL));
  for (guint d = 0; d < dirs->len; d++)
    {
      g_autoptr (GDir) dir = g_dir_open (dirs->pdata[d], 0, NULL);
      const gchar *entry;
      while (dir && (entry = g_dir_read_name (dir)))
        {
          g_autofree gchar *path = NULL;
          g_autofree gchar *text = NULL;
          gsize             len;
          VaeFamily        *f;
          g_autoptr (GError) e = NULL;
          if (!g_str_has_suffix (entry, ".ini"))
            continue;
          path = g_build_filename (dirs->pdata[d], entry, NULL);
          if (g_file_get_contents (path, &text, &len, NULL) &&
              vae_family_parse (text, len, path, &f, &e))
            add_family (list, f);
          else if (e)
            g_warning ("%s", e->message);
        }
    }
  g_ptr_array_unref (dirs);
}

GPtrArray *
vae_family_list (void)
{
  static GPtrArray *families;

  if (g_once_init_enter (&families))
    {
      GPtrArray *list = g_ptr_array_new ();
      load_builtin (list);
      load_user (list);
      g_once_init_leave (&families, list);
    }
  return families;
}

const VaeFamily *
vae_family_lookup (const gchar *name)
{
  GPtrArray *list = vae_family_list ();

  for (guint i = 0; name && i < list->len; i++)
    if (g_ascii_strcasecmp (((VaeFamily *) list->pdata[i])->name, name) == 0)
      return list->pdata[i];
  return NULL;
}

/* Length of the longest alias of FAMILY found in the file's base name. */
static gsize
alias_match (const VaeFamily *family, const gchar *file_name)
{
  g_autofree gchar *base = g_path_get_basename (file_name);
  g_autofree gchar *lower = g_ascii_strdown (base, -1);
  gsize             best = 0;

  for (gchar **a = family->aliases; *a; a++)
    if (strstr (lower, *a))
      best = MAX (best, strlen (*a));
  return best;
}

const VaeFamily *
vae_family_match (const VaeFamily *shape, const gchar *file_name)
{
  GPtrArray       *list = vae_family_list ();
  const VaeFamily *best = NULL;
  gsize            best_alias = 0;

  for (guint i = 0; i < list->len; i++)
    {
      const VaeFamily *f = list->pdata[i];
      gsize            alias;
      if (f->kind != shape->kind ||
          (f->raw_channels &&
           (f->raw_channels != shape->raw_channels || f->raw_factor != shape->raw_factor)) ||
          (f->kind != VAE_KIND_TINY && !is_vq (f->kind) &&
           (f->quant_convs != shape->quant_convs || f->batch_norm != shape->batch_norm)) ||
          (f->kind == VAE_KIND_TINY && f->pool_branch != shape->pool_branch))
        continue;
      alias = alias_match (f, file_name);
      if (!best || alias > best_alias || (alias == best_alias && f->priority > best->priority))
        {
          best = f;
          best_alias = alias;
        }
    }
  return best;
}
