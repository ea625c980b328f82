/* Models: resolving a name to weight files, choosing the family, the cache,
 * and the encode/decode entry points (padding, posterior, patchify, BN,
 * diffusion scale).
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "nets/model-private.h"

#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

static GMutex      cache_lock;
static GHashTable *cache; /* key → VaeModel* (one reference) */

/* ---- the search path ----------------------------------------------------- */

/* Adds DIR unless the path has it already. */
static void
add_dir (GPtrArray *dirs, gchar *dir)
{
  for (guint i = 0; i < dirs->len; i++)
    if (g_str_equal (dirs->pdata[i], dir))
      {
        g_free (dir);
        return;
      }
  g_ptr_array_add (dirs, dir);
}

gchar **
vae_model_search_path (void)
{
  GPtrArray          *dirs = g_ptr_array_new ();
  const gchar        *env = g_getenv ("GEGL_VAE_MODEL_PATH");
  const gchar *const *system = g_get_system_data_dirs ();

  if (env && *env)
    {
      g_auto (GStrv) parts = g_strsplit (env, G_SEARCHPATH_SEPARATOR_S, -1);
      for (gchar **p = parts; *p; p++)
        if (**p)
          add_dir (dirs, g_strdup (*p));
    }
  add_dir (dirs, g_build_filename (g_get_user_data_dir (), "gegl-vae", "models", NULL));
  for (; *system; system++)
    add_dir (dirs, g_build_filename (*system, "gegl-vae", "models", NULL));
  add_dir (dirs, g_strdup (VAE_MODELDIR));
  if (g_file_test (VAE_SOURCE_MODELDIR, G_FILE_TEST_IS_DIR))
    add_dir (dirs, g_strdup (VAE_SOURCE_MODELDIR));
  g_ptr_array_add (dirs, NULL);
  return (gchar **) g_ptr_array_free (dirs, FALSE);
}

static gchar *
find_on_path (const gchar *file_name)
{
  g_auto (GStrv) dirs = vae_model_search_path ();

  for (gchar **d = dirs; *d; d++)
    {
      gchar *path = g_build_filename (*d, file_name, NULL);
      if (g_file_test (path, G_FILE_TEST_IS_REGULAR))
        return path;
      g_free (path);
    }
  return NULL;
}

/* A file path, a file on the search path, or a preset's default files. */
static GPtrArray *
resolve (const gchar *model, const VaeFamily **preset, GError **error)
{
  GPtrArray       *paths = g_ptr_array_new_with_free_func (g_free);
  const VaeFamily *family;
  gchar           *found;

  *preset = NULL;
  /* a name that exists as a link (even a broken one or a loop) is a file
   * the user meant: reading it will say what is wrong with it */
  if (g_file_test (model, G_FILE_TEST_EXISTS) || g_file_test (model, G_FILE_TEST_IS_SYMLINK))
    {
      g_ptr_array_add (paths, g_strdup (model));
      return paths;
    }
  if (!strchr (model, G_DIR_SEPARATOR) && (found = find_on_path (model)))
    {
      g_ptr_array_add (paths, found);
      return paths;
    }
  if ((family = vae_family_lookup (model)))
    {
      *preset = family;
      /* a tiny model's halves, or the first of other families' alternatives */
      for (gchar **f = family->files; *f && (family->kind == VAE_KIND_TINY || !paths->len); f++)
        if ((found = find_on_path (*f)))
          g_ptr_array_add (paths, found);
      if (paths->len > 0)
        return paths;
    }
  {
    g_auto (GStrv) dirs = vae_model_search_path ();
    g_autofree gchar *where = g_strjoinv (", ", dirs);
    g_autofree gchar *wanted = family ? g_strjoinv (", ", family->files) : NULL;
    if (family)
      g_set_error (error, VAE_ERROR, VAE_ERROR_NOT_FOUND,
                   _ ("model '%s': none of its files (%s) is in the model path (%s); set "
                      "GEGL_VAE_MODEL_PATH or give a file path"),
                   model, wanted, where);
    else
      g_set_error (
          error, VAE_ERROR, VAE_ERROR_NOT_FOUND,
          _ ("model '%s' is neither a file, nor a file in the model path (%s), nor a preset name"),
          model, where);
  }
  g_ptr_array_unref (paths);
  return NULL;
}

/* For a tiny model's encoder file, the decoder beside it, and vice versa. */
static gchar *
sibling_half (const gchar *path)
{
  g_autofree gchar *dir = g_path_get_dirname (path);
  g_autofree gchar *base = g_path_get_basename (path);
  const gchar      *halves[][2] = { { "encoder", "decoder" }, { "decoder", "encoder" } };

  for (guint i = 0; i < G_N_ELEMENTS (halves); i++)
    {
      gchar *at = g_strrstr (base, halves[i][0]);
      if (at)
        {
          g_autofree gchar *other = g_strdup (base);
          gchar            *path2;
          memcpy (other + (at - base), halves[i][1], strlen (halves[i][1]));
          path2 = g_build_filename (dir, other, NULL);
          if (g_file_test (path2, G_FILE_TEST_IS_REGULAR))
            return path2;
          g_free (path2);
          return NULL;
        }
    }
  return NULL;
}

/* ---- loading ------------------------------------------------------------- */

void
vae_parts_clear (VaeParts *parts)
{
  vae_net_free (parts->encoder);
  vae_net_free (parts->decoder);
  g_free (parts->bn_mean);
  g_free (parts->bn_var);
  vae_codebook_free (parts->codebook);
  memset (parts, 0, sizeof *parts);
}

gboolean
vae_parts_halves_match (const VaeParts *parts, const VaeWeights *weights, gint moments,
                        GError **error)
{
  const VaeNet *enc = parts->encoder, *dec = parts->decoder;

  if (!enc || !dec ||
      (enc->out_channels == moments * dec->in_channels && enc->factor == dec->factor))
    return TRUE;
  g_set_error (error, VAE_ERROR, VAE_ERROR_MODEL,
               _ ("%s: encoder (%d channels out, /%d) and decoder (%d channels in, ×%d) do not "
                  "match"),
               vae_weights_get_path (weights), enc->out_channels, enc->factor, dec->in_channels,
               dec->factor);
  return FALSE;
}

gboolean
vae_parts_rgb (const VaeParts *parts, const VaeWeights *weights, GError **error)
{
  const VaeNet *enc = parts->encoder, *dec = parts->decoder;

  if (!enc && !dec)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_MODEL,
                   _ ("%s: neither 'encoder.conv_in' nor 'decoder.conv_in' is present"),
                   vae_weights_get_path (weights));
      return FALSE;
    }
  if ((!enc || enc->in_channels == 3) && (!dec || dec->out_channels == 3))
    return TRUE;
  g_set_error (error, VAE_ERROR, VAE_ERROR_MODEL,
               _ ("%s: the encoder takes %d channels and the decoder gives %d; an RGB model "
                  "takes and gives 3"),
               vae_weights_get_path (weights), enc ? enc->in_channels : 3,
               dec ? dec->out_channels : 3);
  return FALSE;
}

static void
model_free (VaeModel *m)
{
  vae_net_free (m->encoder);
  vae_net_free (m->decoder);
  vae_family_free (m->generic);
  g_free (m->bn_mean);
  g_free (m->bn_var);
  vae_codebook_free (m->codebook);
  g_free (m->files);
  g_free (m->dtypes);
  g_free (m->cache_key);
  g_free (m);
}

static void
count_weights (VaeModel *m, const VaeWeights *w, GHashTable *dtypes)
{
  for (guint i = 0; i < vae_weights_count (w); i++)
    {
      const VaeWeightEntry *e = vae_weights_lookup (w, vae_weights_name (w, i));
      m->n_tensors++;
      m->n_params += e->n_elements;
      m->net_floats += m->structure.kind == VAE_KIND_QWEN_IMAGE      ? vae_qwen_frame_elements (e)
                       : m->structure.kind == VAE_KIND_HUNYUAN_IMAGE ? vae_hunyuan_net_elements (e)
                                                                     : e->n_elements;
      g_hash_table_add (dtypes, (gpointer) vae_dtype_name (e->dtype));
    }
}

typedef gboolean (*BuildFunc) (const VaeWeights *weights, VaeParts *parts, GError **error);

/* The builder of W's kind of model, or NULL. */
static BuildFunc
builder (const VaeWeights *w)
{
  if (vae_dcae_detect (w)) /* before KL: both have encoder.conv_in */
    return vae_dcae_build;
  if (vae_hunyuan_detect (w)) /* before KL too */
    return vae_hunyuan_build;
  if (vae_kl_detect (w))
    return vae_kl_build;
  if (vae_tiny_detect (w))
    return vae_tiny_build;
  if (vae_vqvae_detect (w))
    return vae_vqvae_build;
  return NULL;
}

/* The names a half's weights begin with: encoder.… and decoder.…, or a
 * VQ-VAE's _encoder.… and _decoder.…. */
static const gchar *const half_prefixes[2][2] = { { "encoder.", "_encoder." },
                                                  { "decoder.", "_decoder." } };

static gboolean
holds_half (const VaeWeights *w, gint half)
{
  for (guint i = 0; i < vae_weights_count (w); i++)
    if (g_str_has_prefix (vae_weights_name (w, i), half_prefixes[half][0]) ||
        g_str_has_prefix (vae_weights_name (w, i), half_prefixes[half][1]))
      return TRUE;
  return FALSE;
}

/* Leaves out of W the half HALVES does not want, so that its weights are
 * never converted; a file without the wanted half stays whole (its model
 * then lacks that half, and the run says so). */
static void
drop_unwanted_half (VaeWeights *w, VaeHalves halves)
{
  const gint wanted = halves == VAE_HALVES_ENCODER ? 0 : 1;

  if (halves == VAE_HALVES_BOTH || !holds_half (w, wanted))
    return;
  for (guint i = 0; i < 2; i++)
    vae_weights_drop_prefix (w, half_prefixes[1 - wanted][i]);
}

/* Builds the parts of one file (the halves HALVES wants) and merges them
 * into M. */
static gboolean
add_file (VaeModel *m, const gchar *path, VaeHalves halves, GHashTable *dtypes, GError **error)
{
  g_autoptr (VaeWeights) w = vae_weights_load (path, error);
  VaeParts      parts;
  VaeStructure *s = &parts.structure;
  BuildFunc     build;
  gboolean      ok;

  if (!w)
    return FALSE;
  if (!(build = builder (w))) /* the kind is told from the whole file */
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_MODEL,
                   _ ("%s holds %u tensors but no VAE: neither encoder.conv_in/decoder.conv_in "
                      "(AutoencoderKL, VQModel), TAESD layers, nor a VQ-VAE's _encoder/_decoder"),
                   path, vae_weights_count (w));
      return FALSE;
    }
  drop_unwanted_half (w, halves);
  ok = build (w, &parts, error);
  if (!ok)
    return FALSE;
  /* a half its names did not tell apart (a tiny model's bare .pth) */
  if (halves == VAE_HALVES_ENCODER)
    g_clear_pointer (&parts.decoder, vae_net_free);
  if (halves == VAE_HALVES_DECODER)
    g_clear_pointer (&parts.encoder, vae_net_free);
  if (parts.codebook && parts.codebook->dim != s->raw_channels)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_MODEL,
                   _ ("%s: the codebook's entries have %d channels but the latent has %d"), path,
                   parts.codebook->dim, s->raw_channels);
      vae_parts_clear (&parts);
      return FALSE;
    }
  if (m->encoder || m->decoder)
    {
      if (s->kind != m->structure.kind || s->raw_channels != m->structure.raw_channels ||
          s->raw_factor != m->structure.raw_factor)
        {
          g_set_error (error, VAE_ERROR, VAE_ERROR_MODEL,
                       _ ("%s does not match %s (latent channels %d vs %d)"), path, m->files,
                       s->raw_channels, m->structure.raw_channels);
          vae_parts_clear (&parts);
          return FALSE;
        }
      m->structure.pool_branch |= s->pool_branch;
      m->structure.encoder_present |= s->encoder_present;
      m->structure.decoder_present |= s->decoder_present;
    }
  else
    m->structure = *s;
  /* what an earlier file brought stays */
  if (!m->encoder)
    m->encoder = g_steal_pointer (&parts.encoder);
  if (!m->decoder)
    m->decoder = g_steal_pointer (&parts.decoder);
  if (!m->bn_mean)
    {
      m->bn_mean = g_steal_pointer (&parts.bn_mean);
      m->bn_var = g_steal_pointer (&parts.bn_var);
    }
  if (!m->codebook)
    m->codebook = g_steal_pointer (&parts.codebook);
  vae_parts_clear (&parts);
  count_weights (m, w, dtypes);
  return TRUE;
}

static gboolean
choose_family (VaeModel *m, const VaeModelOptions *opt, const VaeFamily *preset, const gchar *path,
               GError **error)
{
  VaeFamily        shape = { 0 };
  const VaeFamily *own;

  shape.kind = m->structure.kind;
  shape.raw_channels = m->structure.raw_channels;
  shape.raw_factor = m->structure.raw_factor;
  shape.quant_convs = m->structure.quant_convs;
  shape.batch_norm = m->structure.batch_norm;
  shape.pool_branch = m->structure.pool_branch;
  if (opt->family)
    {
      if (!(m->family = vae_family_lookup (opt->family)))
        {
          g_set_error (error, VAE_ERROR, VAE_ERROR_NOT_FOUND,
                       _ ("unknown family '%s' (see presets/families)"), opt->family);
          return FALSE;
        }
    }
  else
    m->family = preset ? preset : vae_family_match (&shape, path);
  own = vae_family_match (&shape, path);
  if (m->family && m->family->kind != shape.kind)
    {
      if (own)
        g_set_error (error, VAE_ERROR, VAE_ERROR_MODEL,
                     _ ("%s is a %s model: a %s with %d latent channels at 1/%d; family '%s' "
                        "describes a %s"),
                     m->files, own->name, vae_kind_title (shape.kind),
                     vae_family_latent_channels (own), vae_family_factor (own), m->family->name,
                     vae_kind_title (m->family->kind));
      else
        g_set_error (error, VAE_ERROR, VAE_ERROR_MODEL,
                     _ ("%s: family '%s' describes a %s, not this %s"), m->files, m->family->name,
                     vae_kind_title (m->family->kind), vae_kind_title (shape.kind));
      return FALSE;
    }
  if (m->family && m->family->raw_channels == 0) /* a VQ descriptor: any latent size */
    m->family = m->generic = vae_family_fitted (m->family, &shape);
  if (!m->family && shape.kind == VAE_KIND_KL)
    {
      g_autofree gchar *families =
          g_build_filename (g_get_user_data_dir (), "gegl-vae", "families", NULL);
      m->family = m->generic = vae_family_new_generic_kl (&shape);
      g_message (
          _ ("%s: no family descriptor fits this AutoencoderKL (%d latent channels at 1/%d), "
             "so it loads as a generic one: scale 1, shift 0, SD's noise schedule; set "
             "them with --scale/--shift or a descriptor in %s"),
          m->files, shape.raw_channels, shape.raw_factor, families);
    }
  if (!m->family)
    {
      g_set_error (
          error, VAE_ERROR, VAE_ERROR_MODEL,
          _ ("%s: no family descriptor fits a %s with %d latent channels at 1/%d%s%s; add one "
             "or name a family"),
          m->files, vae_kind_title (shape.kind), shape.raw_channels, shape.raw_factor,
          shape.quant_convs ? ", quant convs" : "", shape.batch_norm ? ", batch norm" : "");
      return FALSE;
    }
  if (m->family->raw_channels != shape.raw_channels || m->family->raw_factor != shape.raw_factor ||
      m->family->batch_norm != shape.batch_norm)
    {
      /* in the latent's terms (a family may patchify the network's output) */
      if (own)
        g_set_error (error, VAE_ERROR, VAE_ERROR_MODEL,
                     _ ("%s is a %s model (%d latent channels at 1/%d), but family '%s' expects "
                        "%d at 1/%d"),
                     m->files, own->name, vae_family_latent_channels (own), vae_family_factor (own),
                     m->family->name, vae_family_latent_channels (m->family),
                     vae_family_factor (m->family));
      else
        g_set_error (error, VAE_ERROR, VAE_ERROR_MODEL,
                     _ ("%s has %d latent channels at 1/%d, but family '%s' expects %d at 1/%d"),
                     m->files, shape.raw_channels, shape.raw_factor, m->family->name,
                     m->family->raw_channels, m->family->raw_factor);
      return FALSE;
    }
  m->scale = opt->set_scale ? opt->scale : m->family->scale;
  m->shift = opt->set_shift ? opt->shift : m->family->shift;
  /* latents are float: a scale finite as a double can still overflow one
   * (1e300 wrote an infinite latent) */
  if (!(fabs (m->scale) >= 1.0 / G_MAXFLOAT && fabs (m->scale) <= G_MAXFLOAT) ||
      !(fabs (m->shift) <= G_MAXFLOAT))
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_INPUT,
                   _ ("latent scale %g and shift %g: the scale must lie within %g to %g in "
                      "magnitude, the shift within ±%g"),
                   m->scale, m->shift, 1.0 / G_MAXFLOAT, (gdouble) G_MAXFLOAT,
                   (gdouble) G_MAXFLOAT);
      return FALSE;
    }
  return TRUE;
}

static gchar *
join_keys (GHashTable *set)
{
  g_autofree gpointer *keys = g_hash_table_get_keys_as_array (set, NULL);
  return g_strjoinv (", ", (gchar **) keys);
}

static VaeModel *
load_uncached (GPtrArray *paths, const VaeModelOptions *opt, const VaeFamily *preset,
               GError **error)
{
  g_autoptr (GHashTable) dtypes = g_hash_table_new (g_str_hash, g_str_equal);
  const VaeHalves halves = opt->halves;
  VaeModel       *m = g_new0 (VaeModel, 1);

  m->ref_count = 1;
  m->files = g_strdup (paths->pdata[0]);
  for (guint i = 0; i < paths->len; i++)
    {
      if (i > 0)
        {
          gchar *files = g_strconcat (m->files, " + ", paths->pdata[i], NULL);
          g_free (m->files);
          m->files = files;
        }
      if (!add_file (m, paths->pdata[i], halves, dtypes, error))
        goto fail;
      /* a tiny model's other half lives beside it */
      if (i == paths->len - 1 && m->structure.kind == VAE_KIND_TINY &&
          ((halves != VAE_HALVES_DECODER && !m->encoder) ||
           (halves != VAE_HALVES_ENCODER && !m->decoder)))
        {
          gchar *other = sibling_half (paths->pdata[i]);
          if (other && !g_ptr_array_find_with_equal_func (paths, other, g_str_equal, NULL))
            g_ptr_array_add (paths, other);
          else
            g_free (other);
        }
    }
  if (!choose_family (m, opt, preset, paths->pdata[0], error))
    goto fail;
  m->dtypes = join_keys (dtypes);
  return m;

fail:
  model_free (m);
  return NULL;
}

/* The cache's key for PATHS (each file's path, size and time) and OPT, all
 * but the halves, which key_for adds. */
static gchar *
cache_base (GPtrArray *paths, const VaeModelOptions *opt)
{
  GString *key = g_string_new (NULL);
  GStatBuf st;

  for (guint i = 0; i < paths->len; i++)
    {
      g_autofree gchar *abs = g_canonicalize_filename (paths->pdata[i], NULL);
      if (g_stat (abs, &st) == 0)
        g_string_append_printf (key, "%s:%" PRId64 ":%" PRId64 "|", abs, (gint64) st.st_size,
                                (gint64) st.st_mtime);
    }
  g_string_append_printf (key, "%s|%d:%.17g|%d:%.17g", opt->family ? opt->family : "",
                          opt->set_scale, opt->scale, opt->set_shift, opt->shift);
  return g_string_free (key, FALSE);
}

static gchar *
key_for (const gchar *base, VaeHalves halves)
{
  return g_strdup_printf ("%s|%d", base, halves);
}

/* A cached model that serves HALVES (under the cache's lock), a new
 * reference: its own halves first, then a model with both (which serves
 * one), and for ANY a model with either half too. */
static VaeModel *
cached (const gchar *base, VaeHalves halves)
{
  static const struct
  {
    guint     n;
    VaeHalves halves[3];
  } serving[] = {
    [VAE_HALVES_BOTH] = { 1, { VAE_HALVES_BOTH } },
    [VAE_HALVES_ENCODER] = { 2, { VAE_HALVES_ENCODER, VAE_HALVES_BOTH } },
    [VAE_HALVES_DECODER] = { 2, { VAE_HALVES_DECODER, VAE_HALVES_BOTH } },
    [VAE_HALVES_ANY] = { 3, { VAE_HALVES_BOTH, VAE_HALVES_DECODER, VAE_HALVES_ENCODER } },
  };

  if (!cache)
    return NULL;
  for (guint i = 0; i < serving[halves].n; i++)
    {
      g_autofree gchar *key = key_for (base, serving[halves].halves[i]);
      VaeModel         *m = g_hash_table_lookup (cache, key);
      if (m)
        return vae_model_ref (m);
    }
  return NULL;
}

/* Caches M, loaded with HALVES (under the cache's lock).  A model with
 * both halves takes the place of the models of one half (whoever holds
 * one keeps it), so that the cache never keeps a model's weights twice. */
static void
cache_insert (VaeModel *m, const gchar *base, VaeHalves halves)
{
  if (!cache)
    cache = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, (GDestroyNotify) vae_model_unref);
  if (halves == VAE_HALVES_BOTH)
    for (VaeHalves one = VAE_HALVES_ENCODER; one <= VAE_HALVES_DECODER; one++)
      {
        g_autofree gchar *key = key_for (base, one);
        g_hash_table_remove (cache, key);
      }
  m->cache_key = key_for (base, halves);
  g_hash_table_insert (cache, m->cache_key, vae_model_ref (m));
}

VaeModel *
vae_model_load (const gchar *model, const VaeModelOptions *options, GError **error)
{
  const VaeModelOptions defaults = { 0 }; /* both halves, the family's own scale */
  VaeModelOptions       opt = options ? *options : defaults;
  g_autoptr (GPtrArray) paths = NULL;
  g_autofree gchar *base = NULL;
  const VaeFamily  *preset;
  VaeModel         *m;

  g_return_val_if_fail (opt.halves <= VAE_HALVES_ANY, NULL);
  if (!model || !*model)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_NOT_FOUND, _ ("no model given"));
      return NULL;
    }
  if (!(paths = resolve (model, &preset, error)))
    return NULL;
  base = cache_base (paths, &opt); /* before load_uncached adds a tiny model's other file */
  g_mutex_lock (&cache_lock);
  if (!(m = cached (base, opt.halves)))
    {
      /* ANY, nothing cached: the decoder, the half that follows an op
       * reading latents (GEGL prepares vae:latent-load before vae:decode) */
      if (opt.halves == VAE_HALVES_ANY)
        opt.halves = VAE_HALVES_DECODER;
      if ((m = load_uncached (paths, &opt, preset, error)))
        cache_insert (m, base, opt.halves);
    }
  g_mutex_unlock (&cache_lock);
  return m;
}

void
vae_model_cache_clear (void)
{
  g_mutex_lock (&cache_lock);
  if (cache)
    g_hash_table_remove_all (cache);
  g_mutex_unlock (&cache_lock);
}

VaeModel *
vae_model_ref (VaeModel *model)
{
  g_atomic_int_inc (&model->ref_count);
  return model;
}

void
vae_model_unref (VaeModel *model)
{
  if (model && g_atomic_int_dec_and_test (&model->ref_count))
    model_free (model);
}

const VaeFamily *
vae_model_get_family (const VaeModel *model)
{
  return model->family;
}

gint
vae_model_latent_channels (const VaeModel *model)
{
  return vae_family_latent_channels (model->family);
}

gint
vae_model_factor (const VaeModel *model)
{
  return vae_family_factor (model->family);
}

gdouble
vae_model_scale (const VaeModel *model)
{
  return model->scale;
}

gdouble
vae_model_shift (const VaeModel *model)
{
  return model->shift;
}

gboolean
vae_model_has_encoder (const VaeModel *model)
{
  return model->encoder != NULL;
}

gboolean
vae_model_has_decoder (const VaeModel *model)
{
  return model->decoder != NULL;
}

VaeCodebook *
vae_model_codebook (const VaeModel *model, GError **error)
{
  if (!model->codebook)
    {
      g_set_error (error, VAE_ERROR, VAE_ERROR_INPUT,
                   _ ("model %s (%s) has no codebook: it is not a VQ model"), model->files,
                   model->family->name);
      return NULL;
    }
  /* the latents' map: (z − shift)·scale */
  return vae_codebook_copy_mapped (model->codebook, model->scale, -model->shift * model->scale,
                                   error);
}

gchar *
vae_model_describe (const VaeModel *m)
{
  const VaeFamily *f = m->family;
  GString         *s = g_string_new (NULL);

  g_string_append_printf (s, "family:     %s (%s)\n", f->name, f->title);
  g_string_append_printf (s, "kind:       %s\n", vae_kind_title (f->kind));
  g_string_append_printf (s, "files:      %s\n", m->files);
  g_string_append_printf (s, "latent:     %d channels at 1/%d", vae_family_latent_channels (f),
                          vae_family_factor (f));
  if (f->patchify > 1)
    g_string_append_printf (s, " (network: %d at 1/%d, %d×%d patchify%s)", f->raw_channels,
                            f->raw_factor, f->patchify, f->patchify,
                            m->structure.batch_norm ? ", batch norm" : "");
  if (m->codebook)
    g_string_append_printf (s, "\ncodebook:   %d entries of %d channels", m->codebook->size,
                            m->codebook->dim);
  if (f->latents_mean || f->latents_std)
    g_string_append_printf (s, "\nper channel: latents_mean and latents_std (%d each)",
                            f->raw_channels);
  g_string_append_printf (s, "\nscale:      %.8g\nshift:      %.8g\n", m->scale, m->shift);
  g_string_append_printf (s, "halves:     %s%s%s\n", m->encoder ? "encoder" : "",
                          m->encoder && m->decoder ? " + " : "", m->decoder ? "decoder" : "");
  g_string_append_printf (s, "tensors:    %u\nparameters: %" PRIu64 "\ndtypes:     %s\n",
                          m->n_tensors, m->n_params, m->dtypes);
  return g_string_free (s, FALSE);
}
