#!/usr/bin/env python3
"""Where a gegl-vae pass spends its CPU time, by kind of layer work: reads
`perf script -F tid,ip,sym,dso` of a `perf record --call-graph dwarf` run
(tools/bench-profile.sh makes one) on stdin and prints one Markdown table.

Each sample is given to the first rule that its call stack matches, walking
from the leaf to the root, so a memset or expf counts for the loop that
called it.  Whole-stack rules come first: page faults and memory-map calls
(kernel time wherever it was taken), the model's load, and OpenMP waiting
(a thread in libgomp at the leaf: a barrier or the spin before one).  The
names are core/'s functions; when core/ is restructured, the rules below are
what to update."""
import re
import sys
from collections import Counter

WHOLE_STACK = [
    ("page faults (kernel)", r"^(asm_)?exc_page_fault$"),
    ("munmap / madvise / TLB shootdowns (kernel)",
     r"^(__x64_sys_munmap|__vm_munmap|do_vmi_munmap|__x64_sys_madvise|do_madvise|flush_tlb_mm_range)$"),
    ("model load", r"^(cli_load_model|vae_model_load)$"),
]
# (kind, pattern of our function names; an OpenMP region's body is NAME._omp_fn.N)
OURS = [
    ("allocation (malloc, zeroing)", r"^(vae_try_alloc|vae_tensor_new|vae_scratch_alloc|vae_scratch_free|vae_tensor_free)"),
    ("Winograd weight transform", r"^(transform_filters|transform_weights|apply_g|make_weights)\b"),
    ("Winograd input transform", r"^(input_tile_row|load_row|column_transform|row_transform|input_channel|transform_input)\b"),
    ("Winograd output transform (+ bias, residual, activation)",
     r"^(output_tile_row|interleave|output_channel|transform_output)\b"),
    ("Winograd products", r"^(vae_sgemm_batch|vae_sgemm_small|chunk_products|multiply)\b"),
    ("attention (products, softmax)", r"^(vae_cpu_attend|softmax_rows|cpu_attention)\b"),
    ("im2col", r"^(im2col_row|im2col_band)\b"),
    ("im2col and 1×1 products", r"^(im2col_product|product|vae_sgemm)\b"),
    ("GroupNorm statistics", r"^(vae_moments|group_stats)\b"),
    ("GroupNorm scale/shift + SiLU", r"^(vae_scale_shift_act|normalize)\b"),
    ("conv epilogue (direct convs)", r"^(epilogue_plane|epilogue)\b"),
    ("TAESD clamp", r"^cpu_clamp\b"),
]
PRODUCTS = ("Winograd products", "attention (products, softmax)", "im2col and 1×1 products")


def openblas_part(sym):
    return "packing" if "copy" in sym else "C ← 0 (beta)" if "beta" in sym else "kernel"


def classify(stack):
    """(kind, the layer work it was taken in or None) of STACK: [(symbol,
    dso)], leaf first.  OpenBLAS's own frames often lose their callers (no
    unwind tables): those count as 'caller lost'."""
    ours = next((kind for sym, _ in stack for kind, pattern in OURS if re.match(pattern, sym)), None)
    for kind, pattern in WHOLE_STACK:
        if any(re.match(pattern, sym) for sym, _ in stack):
            return kind, ours
    if not stack:
        return "other", None
    leaf, dso = stack[0]
    if "libgomp" in dso:
        return "OpenMP barrier / spin-wait", ours
    if "openblas" in dso:
        return f"{ours if ours in PRODUCTS else 'products, caller lost'} — OpenBLAS {openblas_part(leaf)}", None
    return ours or ("kernel, other" if "kernel" in dso else "other"), None


def samples(lines):
    stack = []
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            if stack:
                yield stack
            stack = []
        elif line.startswith("\t") or line.startswith(" " * 8):
            m = re.match(r"\s*[0-9a-f]+ (.*) \((.*)\)$", line)
            if m:
                stack.append((m.group(1).split("+0x")[0], m.group(2)))
    if stack:
        yield stack


def main():
    classified = [classify(s) for s in samples(sys.stdin)]
    counts = Counter(kind for kind, _ in classified)
    total = sum(counts.values())
    load = counts.pop("model load", 0)
    passes = max(total - load, 1)
    print(f"{total} samples, {load} ({100 * load / max(total, 1):.1f}%) in the model's load; "
          "shares below are of the rest\n")
    print("| kind | share of the passes' CPU time |\n|---|---|")
    for kind, n in counts.most_common():
        print(f"| {kind} | {100 * n / passes:.1f}% |")
    within = Counter((kind, where) for kind, where in classified if where and kind in
                     ("page faults (kernel)", "munmap / madvise / TLB shootdowns (kernel)", "OpenMP barrier / spin-wait"))
    print("\n| of which, taken in | share |\n|---|---|")
    for (kind, where), n in within.most_common(12):
        print(f"| {kind}: {where} | {100 * n / passes:.1f}% |")


if __name__ == "__main__":
    main()
