/* vae:latent-noise — forward diffusion x0 → x_t on a latent buffer, with an
 * optional mask on aux (an ordinary image): noise only where the mask is,
 * x_t·m + x0·(1 − m), the mask resized to the latent as ComfyUI's
 * SetLatentNoiseMask (bilinear), from its box or, given the model's factor,
 * from the picture vae:encode padded.  Chunk-safe: noise element
 * (c, y, x) is keyed by its place in the whole latent ([1, C, H, W] order),
 * and each rectangle reads the mask under it, so tiles and threads never
 * change a value.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "vae-config.h"
#include "vae-op.h"

#ifdef GEGL_PROPERTIES

/* clang-format off */
property_enum (schedule, _("Schedule"), GeglVaeSchedule, gegl_vae_schedule, GEGL_VAE_SCHEDULE_AUTO)
  description (_("Noise schedule; automatic is SD's scaled-linear"))
property_double (strength, _("Strength"), 0.5)
  description (_("Denoising strength: how far along the schedule the noise goes"))
  value_range (0.0, 1.0)
property_int (timestep, _("Timestep"), -1)
  description (_("Timestep 0–999; −1 takes it from the strength"))
  value_range (-1, 999)
property_seed (seed, _("Seed"), rand)
property_enum (rng, _("Random numbers"), GeglVaeRng, gegl_vae_rng, GEGL_VAE_RNG_PHILOX)
property_enum (form, _("Form"), GeglVaeForm, gegl_vae_form, GEGL_VAE_FORM_AUTO)
property_int (factor, _("Mask pixels per latent pixel"), 0)
  description (_("0: the mask's box is stretched onto the latent, as ComfyUI's Set Latent "
                 "Noise Mask; the model's factor (8, 16, 32): a mask of the encoded picture, "
                 "padded as vae:encode pads the picture, so that the two line up"))
  value_range (0, 64)
GEGL_VAE_LAST_ERROR_PROPERTY
/* clang-format on */

#else

#define GEGL_OP_COMPOSER
#define GEGL_OP_NAME vae_latent_noise
/* clang-format off */
#define GEGL_OP_C_SOURCE latent-noise.c
/* clang-format on */

#include "gegl-op.h"

#include <string.h>

/* torch-cpu noise is one MT19937 stream over the whole latent: drawn once. */
typedef struct
{
  GMutex  lock;
  guint64 seed;
  gint    channels, width, height;
  gfloat *noise;
} NoiseCache;

static NoiseCache *
cache_of (GeglProperties *o)
{
  if (!o->user_data)
    {
      NoiseCache *c = g_new0 (NoiseCache, 1);
      g_mutex_init (&c->lock);
      o->user_data = c;
    }
  return o->user_data;
}

static const gfloat *
torch_noise (NoiseCache *c, guint64 seed, gint channels, const GeglRectangle *box)
{
  g_mutex_lock (&c->lock);
  if (!c->noise || c->seed != seed || c->channels != channels || c->width != box->width ||
      c->height != box->height)
    {
      gsize n = (gsize) channels * box->width * box->height;
      g_free (c->noise);
      c->noise = g_try_new (gfloat, n);
      if (c->noise)
        vae_torch_randn (seed, c->noise, n);
      c->seed = seed, c->channels = channels, c->width = box->width, c->height = box->height;
    }
  g_mutex_unlock (&c->lock);
  return c->noise;
}

static void
prepare (GeglOperation *operation)
{
  GeglProperties *o = GEGL_PROPERTIES (operation);
  g_autoptr (GError) error = NULL;
  GeglRectangle mask;

  gegl_vae_latent_pads (operation, gegl_vae_pad_latent (operation, "input", &error));
  gegl_operation_set_format (operation, "aux", babl_format ("Y float"));
  if (!error)
    gegl_vae_pad_mask (operation, "aux", &mask, &error);
  if (error || !gegl_vae_report_nan (operation, &o->error))
    gegl_vae_report_outcome (operation, &o->error, error);
}

/* Nothing when the mask on aux is a latent or a property is NaN. */
static GeglRectangle
get_bounding_box (GeglOperation *operation)
{
  const GeglRectangle *in = gegl_operation_source_get_bounding_box (operation, "input");
  g_autoptr (GError) error = NULL;
  GeglRectangle mask;

  if (!in || gegl_vae_nan_property (operation) ||
      (!gegl_vae_pad_mask (operation, "aux", &mask, &error) && error))
    return (GeglRectangle){ 0 };
  return *in;
}

/* How the mask's box MASK lies on the latent's box BOX. */
static VaeMaskGrid
mask_grid (GeglOperation *operation, const GeglRectangle *mask, const GeglRectangle *box)
{
  GeglProperties *o = GEGL_PROPERTIES (operation);
  const gint      f = o->factor;

  return (VaeMaskGrid){
    mask->width, mask->height, f ? box->width * f : mask->width, f ? box->height * f : mask->height,
    box->width,  box->height
  };
}

/* The mask's rectangle that ROI of the latent reads (ROI itself for the
 * input). */
static GeglRectangle
get_required_for_output (GeglOperation *operation, const gchar *input_pad, const GeglRectangle *roi)
{
  const GeglRectangle *box = gegl_operation_source_get_bounding_box (operation, "input");
  GeglRectangle        mask, area;
  VaeRect              local, source;
  VaeMaskGrid          grid;

  if (strcmp (input_pad, "aux") != 0)
    return *roi;
  if (!box || !gegl_vae_pad_mask (operation, "aux", &mask, NULL) ||
      !gegl_rectangle_intersect (&area, roi, box))
    return (GeglRectangle){ 0 };
  local = gegl_vae_rect_in (&area, box);
  grid = mask_grid (operation, &mask, box);
  source = vae_mask_source (&grid, &local);
  return gegl_vae_rect_out (&source, &mask);
}

/* The mask on the latent grid over ROI, or NULL (no mask, or ERROR). */
static VaeTensor *
mask_over (GeglOperation *operation, GeglBuffer *aux, const GeglRectangle *roi, GError **error)
{
  const GeglRectangle *box = gegl_operation_source_get_bounding_box (operation, "input");
  const GeglRectangle  source = get_required_for_output (operation, "aux", roi);
  const VaeRect        area = gegl_vae_rect_in (roi, box);
  g_autoptr (VaeTensor) part = NULL;
  GeglRectangle mask;
  VaeMaskGrid   grid;

  if (!aux || !gegl_vae_pad_mask (operation, "aux", &mask, NULL) ||
      !(part = gegl_vae_read_mask (aux, &source, error)))
    return NULL;
  grid = mask_grid (operation, &mask, box);
  return vae_mask_resize (part, source.x - mask.x, source.y - mask.y, &grid, &area, error);
}

static gint
timestep_of (GeglProperties *o)
{
  return o->timestep >= 0 ? o->timestep : vae_schedule_timestep_for_strength (o->strength);
}

static gboolean
process (GeglOperation *operation, GeglBuffer *input, GeglBuffer *aux, GeglBuffer *output,
         const GeglRectangle *roi, gint level)
{
  GeglProperties      *o = GEGL_PROPERTIES (operation);
  const GeglRectangle *box = gegl_operation_source_get_bounding_box (operation, "input");
  const gint           channels = gegl_vae_pad_latent (operation, "input", NULL);
  const VaeSchedule    schedule = gegl_vae_schedule (o->schedule, NULL);
  const gfloat        *torch = NULL;
  const gsize          n = (gsize) roi->width * roi->height;
  gdouble              a = 1.0, b = 0.0;
  gfloat              *pixels;
  g_autofree gfloat   *clean = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (VaeTensor) mask = NULL;

  if (channels <= 0 || !box || gegl_vae_nan_property (operation))
    return TRUE;
  if (!(mask = mask_over (operation, aux, roi, &error)) && error)
    {
      gegl_vae_report_error (operation, &o->error, error);
      return TRUE;
    }
  if (o->timestep >= 0 || o->strength > 0.0)
    vae_noise_coefficients (schedule, timestep_of (o), gegl_vae_form (o->form, schedule), &a, &b);
  if (o->rng == GEGL_VAE_RNG_TORCH_CPU && b != 0.0 &&
      !(torch = torch_noise (cache_of (o), o->seed, channels, box)))
    {
      gegl_vae_report (operation, &o->error, _ ("out of memory for the noise of a %d×%d latent"),
                       box->width, box->height);
      return TRUE;
    }
  pixels = g_new (gfloat, n * channels);
  gegl_buffer_get (input, roi, 1.0, gegl_vae_latent_format (channels), pixels, GEGL_AUTO_ROWSTRIDE,
                   GEGL_ABYSS_NONE);
  if (mask)
    clean = g_memdup2 (pixels, n * channels * sizeof (gfloat));
  {
    const VaeRect window = { roi->x - box->x, roi->y - box->y, roi->width, roi->height };
    vae_noise_window (pixels, channels, &window, box->width, box->height, a, b, o->seed, torch);
  }
  if (mask)
    vae_latent_mask_noise (pixels, clean, mask->data, n, channels);
  gegl_buffer_set (output, roi, 0, gegl_vae_latent_format (channels), pixels, GEGL_AUTO_ROWSTRIDE);
  g_free (pixels);
  return TRUE;
}

static void
finalize (GObject *object)
{
  GeglProperties *o = GEGL_PROPERTIES (object);
  NoiseCache     *c = o->user_data;

  if (c)
    {
      g_mutex_clear (&c->lock);
      g_free (c->noise);
      g_free (c);
      o->user_data = NULL;
    }
  G_OBJECT_CLASS (gegl_op_parent_class)->finalize (object);
}

static void
gegl_op_class_init (GeglOpClass *klass)
{
  GeglOperationClass         *operation_class = GEGL_OPERATION_CLASS (klass);
  GeglOperationComposerClass *composer_class = GEGL_OPERATION_COMPOSER_CLASS (klass);

  G_OBJECT_CLASS (klass)->finalize = finalize;
  gegl_vae_accept_nan (G_OBJECT_CLASS (klass));
  operation_class->prepare = prepare;
  operation_class->get_bounding_box = get_bounding_box;
  operation_class->get_required_for_output = get_required_for_output;
  operation_class->get_invalidated_by_change = gegl_vae_whole_output;
  operation_class->threaded = TRUE;
  composer_class->process = process;

  gegl_operation_class_set_keys (
      operation_class, "name", "vae:latent-noise", "title", _ ("Latent Noise"), "categories",
      "hidden", "description",
      _ ("Adds forward-diffusion noise to a latent at a timestep of a noise schedule, "
         "with A1111/sd.cpp (Philox) or ComfyUI (torch CPU) seeds; only where the mask on aux "
         "is, when one is connected"),
      NULL);
}

#endif
