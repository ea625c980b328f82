/* The model object, shared by model.c (loading) and codec.c (running).
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#ifndef VAE_MODEL_PRIVATE_H
#define VAE_MODEL_PRIVATE_H

#include "nets/nets.h"

G_BEGIN_DECLS

struct _VaeModel
{
  gint             ref_count;
  gchar           *cache_key;
  const VaeFamily *family;
  VaeFamily       *generic; /* owned: the family when no descriptor fits */
  VaeStructure     structure;
  gdouble          scale;
  gdouble          shift;
  VaeNet          *encoder;
  VaeNet          *decoder;
  gfloat          *bn_mean;
  gfloat          *bn_var;
  VaeCodebook     *codebook; /* a VQ model's, in the raw scale */
  gchar           *files;    /* for messages: "a.pth + b.pth" */
  guint            n_tensors;
  guint64          n_params;
  guint64          net_floats; /* what the nets hold: n_params less unused time slices */
  gchar           *dtypes;
};

G_END_DECLS

#endif
