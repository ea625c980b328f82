/* vae:inpaint-preview — the forward diffusion preview with a mask on aux:
 * diffusion-preview.c built again with VAE_INPAINT_PREVIEW (it says why).
 * SPDX-License-Identifier: LGPL-3.0-or-later
 */
#define VAE_INPAINT_PREVIEW
#include "diffusion-preview.c"
