/* The dialogs: one per filter, values kept between runs.
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#include "vae-config.h"

#include <libgimp/gimp.h>
#include <libgimp/gimpui.h>
#include <glib/gi18n-lib.h>
#include <string.h>

#include "vae-gimp.h"

typedef struct
{
  VaeGimpValues *values;
  GtkWidget     *model;
  GtkWidget     *codebook;
} Dialog;

static void
on_double (GtkAdjustment *adjustment, gdouble *target)
{
  *target = gtk_adjustment_get_value (adjustment);
}

static void
on_int (GtkAdjustment *adjustment, gint32 *target)
{
  *target = (gint32) gtk_adjustment_get_value (adjustment);
}

static void
on_combo (GtkWidget *combo, gint32 *target)
{
  gint value;

  if (gimp_int_combo_box_get_active (GIMP_INT_COMBO_BOX (combo), &value))
    *target = value;
}

static void
on_toggle (GtkToggleButton *button, gboolean *target)
{
  *target = gtk_toggle_button_get_active (button);
}

static void
add_scale (GtkTable *table, gint row, const gchar *label, gdouble *value, gdouble lo, gdouble hi,
           gint digits, const gchar *tip)
{
  GtkObject *adj = gimp_scale_entry_new (table, 0, row, label, 150, 6, *value, lo, hi, 0.01, 0.1,
                                         digits, TRUE, 0, 0, tip, NULL);
  g_signal_connect (adj, "value-changed", G_CALLBACK (on_double), value);
}

static void
add_int (GtkTable *table, gint row, const gchar *label, gint32 *value, gint lo, gint hi,
         const gchar *tip)
{
  GtkObject *adj = gimp_scale_entry_new (table, 0, row, label, 150, 6, *value, lo, hi, 1, 10, 0,
                                         TRUE, 0, 0, tip, NULL);
  g_signal_connect (adj, "value-changed", G_CALLBACK (on_int), value);
}

static void
add_combo (GtkTable *table, gint row, const gchar *label, GtkWidget *combo, gint32 *value)
{
  gimp_int_combo_box_set_active (GIMP_INT_COMBO_BOX (combo), *value);
  g_signal_connect (combo, "changed", G_CALLBACK (on_combo), value);
  gimp_table_attach_aligned (table, 0, row, label, 0.0, 0.5, combo, 2, FALSE);
}

static GtkWidget *
add_model (GtkTable *table, gint row, VaeGimpValues *v)
{
  GtkWidget *entry = gtk_entry_new ();

  gtk_entry_set_text (GTK_ENTRY (entry), v->model);
  gtk_widget_set_tooltip_text (
      entry, _ ("A model file, or a preset name (taef2, sd15, sdxl, flux1…) found in "
                "~/.local/share/gegl-vae/models or GEGL_VAE_MODEL_PATH"));
  gimp_table_attach_aligned (table, 0, row, _ ("_Model:"), 0.0, 0.5, entry, 2, FALSE);
  return entry;
}

static void
add_seed (GtkTable *table, gint row, gint32 *seed)
{
  static gboolean randomize = FALSE;
  GtkWidget      *widget = gimp_random_seed_new ((guint *) seed, &randomize);

  gimp_table_attach_aligned (table, 0, row, _ ("_Seed:"), 0.0, 0.5, widget, 2, TRUE);
}

static void
add_check (GtkTable *table, gint row, const gchar *label, gboolean *value)
{
  GtkWidget *check = gtk_check_button_new_with_mnemonic (label);

  gtk_toggle_button_set_active (GTK_TOGGLE_BUTTON (check), *value);
  g_signal_connect (check, "toggled", G_CALLBACK (on_toggle), value);
  gtk_table_attach (table, check, 0, 3, row, row + 1, GTK_FILL, GTK_FILL, 0, 0);
}

/* The noise settings; the codebook ones, or for inpainting the mask's. */
static gint
build_preview (GtkTable *table, gint row, VaeGimpValues *v, gboolean inpaint)
{

  add_scale (table, row++, _ ("S_trength:"), &v->strength, 0.0, 1.0, 2,
             _ ("How far along the diffusion schedule the noise goes; 0 is a plain round trip"));
  add_int (table, row++, _ ("_Timestep (−1: from strength):"), &v->timestep, -1, 999, NULL);
  add_combo (table, row++, _ ("Sc_hedule:"),
             gimp_int_combo_box_new (_ ("Automatic (the model's)"), 0, _ ("SD scaled linear"), 1,
                                     _ ("Linear"), 2, _ ("Cosine"), 3, _ ("Flow"), 4, NULL),
             &v->schedule);
  add_seed (table, row++, &v->seed);
  add_combo (table, row++, _ ("_Random numbers:"),
             gimp_int_combo_box_new (_ ("Philox (A1111/sd.cpp GPU seeds)"), 0,
                                     _ ("Torch CPU (ComfyUI seeds)"), 1, NULL),
             &v->rng);
  if (inpaint)
    {
      add_int (table, row++, _ ("_Grow the selection:"), &v->grow, 0, 64,
               _ ("Pixels added around the selection, as ComfyUI grows an inpainting mask"));
      add_check (table, row++, _ ("_Grey under the selection before encoding"), &v->fill);
      return row;
    }
  add_check (table, row++, _ ("Snap the latent to a _codebook (latent posterize)"), &v->vq);
  add_int (table, row++, _ ("Codebook si_ze:"), &v->k, 2, 256, NULL);
  return row;
}

static gint
build_round_trip (GtkTable *table, gint row, VaeGimpValues *v)
{
  add_combo (table, row++, _ ("_Encode:"),
             gimp_int_combo_box_new (_ ("Mean of the posterior"), 0, _ ("Sample of the posterior"),
                                     1, NULL),
             &v->mode);
  add_seed (table, row++, &v->seed);
  return row;
}

static gint
build_posterize (GtkTable *table, gint row, Dialog *d)
{
  VaeGimpValues *v = d->values;

  add_int (table, row++, _ ("Codebook si_ze:"), &v->k, 2, 256, _ ("Entries learned by k-means++"));
  d->codebook = gtk_file_chooser_button_new (_ ("Codebook file"), GTK_FILE_CHOOSER_ACTION_OPEN);
  if (*v->codebook)
    gtk_file_chooser_set_filename (GTK_FILE_CHOOSER (d->codebook), v->codebook);
  gtk_widget_set_tooltip_text (d->codebook,
                               _ ("Optional: a safetensors file with one [K, C] tensor"));
  gimp_table_attach_aligned (table, 0, row++, _ ("Code_book file:"), 0.0, 0.5, d->codebook, 2,
                             FALSE);
  add_scale (table, row++, _ ("S_trength:"), &v->vq_strength, 0.0, 1.0, 2, NULL);
  add_seed (table, row++, &v->seed);
  return row;
}

gboolean
vae_gimp_dialog (const gchar *procedure, VaeGimpValues *values)
{
  const gboolean inpaint = strcmp (procedure, PROC_INPAINT) == 0;
  const gchar   *title = strcmp (procedure, PROC_PREVIEW) == 0 ? _ ("Forward Diffusion Preview")
                         : inpaint                             ? _ ("Inpainting Noise Preview")
                         : strcmp (procedure, PROC_ROUND_TRIP) == 0 ? _ ("VAE Round Trip")
                                                                    : _ ("Latent Posterize");
  Dialog         d = { values, NULL, NULL };
  GtkWidget     *dialog, *table;
  gint           row = 0;
  gboolean       ok;

  gimp_ui_init ("gegl-vae", FALSE);
  dialog = gimp_dialog_new (title, "gegl-vae", NULL, 0, gimp_standard_help_func, procedure,
                            _ ("_Cancel"), GTK_RESPONSE_CANCEL, _ ("_OK"), GTK_RESPONSE_OK, NULL);
  gimp_window_set_transient (GTK_WINDOW (dialog));
  table = gtk_table_new (10, 3, FALSE);
  gtk_table_set_row_spacings (GTK_TABLE (table), 6);
  gtk_table_set_col_spacings (GTK_TABLE (table), 6);
  gtk_container_set_border_width (GTK_CONTAINER (table), 12);
  gtk_box_pack_start (GTK_BOX (gtk_dialog_get_content_area (GTK_DIALOG (dialog))), table, TRUE,
                      TRUE, 0);
  d.model = add_model (GTK_TABLE (table), row++, values);
  if (strcmp (procedure, PROC_PREVIEW) == 0 || inpaint)
    row = build_preview (GTK_TABLE (table), row, values, inpaint);
  else if (strcmp (procedure, PROC_ROUND_TRIP) == 0)
    row = build_round_trip (GTK_TABLE (table), row, values);
  else
    row = build_posterize (GTK_TABLE (table), row, &d);
  gtk_widget_show_all (dialog);
  ok = gimp_dialog_run (GIMP_DIALOG (dialog)) == GTK_RESPONSE_OK;
  if (ok)
    {
      g_strlcpy (values->model, gtk_entry_get_text (GTK_ENTRY (d.model)), sizeof values->model);
      if (d.codebook)
        {
          g_autofree gchar *file = gtk_file_chooser_get_filename (GTK_FILE_CHOOSER (d.codebook));
          g_strlcpy (values->codebook, file ? file : "", sizeof values->codebook);
        }
    }
  gtk_widget_destroy (dialog);
  return ok;
}
