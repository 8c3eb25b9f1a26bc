"""Deliberate breakages, one at a time in a copy of the tree: does a test catch each?

    python tests/mutations.py [--only NAME] [--list]

Not part of the default test run (pytest collects ``test_*.py`` only). Each mutation replaces one
exact piece of code in a temporary copy of the repository and runs the related tests there, with
the copy first on ``sys.path``; a mutation is *caught* when those tests fail. The script exits 1
if any mutation survives.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# name: (file, exact code, its replacement, pytest arguments that must catch it)
MUTATIONS: dict[str, tuple[str, str, str, list[str]]] = {
    "missing checkpoint keys not reported": (
        "fewzero/models/weights.py",
        "    missing = [k for k in own if k not in state_dict]",
        "    missing = []",
        ["tests/test_user_errors.py", "-k", "missing_one_tensor"],
    ),
    "predictor support masks resized bilinearly": (
        "fewzero/predict/predictor.py",
        'm = F.interpolate(m[None, None].float(), size=(self.size, self.size), mode="nearest")',
        'm = F.interpolate(m[None, None].float(), size=(self.size, self.size), mode="bilinear")',
        ["tests/test_user_errors.py", "-k", "resized_nearest"],
    ),
    "PFENet sampler's default seed changed": (
        "fewzero/data/protocols.py",
        "    n_episodes: int = 5000,\n    seed: int = 321,",
        "    n_episodes: int = 5000,\n    seed: int = 0,",
        ["tests/test_protocols.py", "-k", "default_is_pfenets_seed"],
    ),
    "non-finite weights loaded": (
        "fewzero/models/weights.py",
        "    check_finite_state(loaded, source)\n",
        "",
        ["tests/test_user_errors.py", "-k", "non_finite"],
    ),
    "an interrupted evaluation commits every staged manifest": (
        "fewzero/engine/episode_sets.py",
        "wanted = set(self.staged) if keys is None else set(keys) & set(self.staged)",
        "wanted = set(self.staged)",
        ["tests/test_reproduce.py", "-k", "overwrite"],
    ),
    "N-way pads a class with repeats of its own shots": (
        "fewzero/predict/predictor.py",
        "            [s[0].to(self.device) for s in sets],\n            [s[1].to(self.device) for s in sets],",
        "            [s[0][:, torch.arange(3) % s[0].shape[1]].to(self.device) for s in sets],\n            [s[1][:, torch.arange(3) % s[1].shape[1]].to(self.device) for s in sets],",
        ["tests/test_support_swap.py", "-k", "whatever_the_others"],
    ),
    "cross-domain check skips the mask size": (
        "fewzero/data/crossdomain.py",
        "        if mask.shape[::-1] != size:",
        "        if False:",
        ["tests/test_crossdomain.py", "-k", "opens_every_pair"],
    ),
    "a replay scores at the checkpoint's size": (
        "fewzero/engine/evaluation_settings.py",
        '    size = from_manifests.get("size", args.size)',
        "    size = args.size",
        ["tests/test_reproduce.py", "-k", "manifests_settings"],
    ),
    "HSNet's blocks assume every return layer is a stage": (
        "fewzero/models/backbone.py",
        "            if name in names and isinstance(module, nn.Sequential):  # a stage: block by block",
        "            if name in names:  # a stage: block by block",
        ["tests/test_backbones.py", "-k", "broke_the_adapter"],
    ),
    "cache partial miss stores under the wrong key": (
        "fewzero/models/feature_cache.py",
        "entry = tuple(f[j].clone() for f in fresh)",
        "entry = tuple(f[0].clone() for f in fresh)",
        ["tests/test_feature_cache.py"],
    ),
    "cache keeps features after a write through .data": (
        "fewzero/models/feature_cache.py",
        "            weights_fingerprint(b.body, exact=True)\n",
        "",
        ["tests/test_feature_cache.py"],
    ),
    "cache key without the backbone's settings": (
        "fewzero/models/backbone.py",
        'return f"{weights_fingerprint(self.body)}:{settings}"',
        "return weights_fingerprint(self.body)",
        ["tests/test_backbones.py", "-k", "cache"],
    ),
    "predicted foreground on ignore pixels counted in the union": (
        "fewzero/metrics/iou.py",
        "p = pred.flatten(1).bool() & valid",
        "p = pred.flatten(1).bool()",
        ["tests/test_metrics.py"],
    ),
    "non-local scale changed in both implementations": (
        "fewzero/layers/non_local.py",
        "scale = self.inter_channels**-0.5 if self.use_scale else 1.0",
        "scale = self.inter_channels**-0.25 if self.use_scale else 1.0",
        ["tests/test_layers.py"],
    ),
    "1.5x scale error in bf16 spatial attention": (
        "fewzero/layers/non_local.py",
        "scale = self.inter_channels**-0.5 if self.use_scale else 1.0",
        "scale = (1.5 if q.dtype == torch.bfloat16 else 1.0) * self.inter_channels**-0.5",
        ["tests/test_layers.py"],
    ),
    "write_text_atomic writes in place": (
        "fewzero/engine/checkpoint.py",
        "        tmp.write_text(text)\n        os.replace(tmp, path)\n",
        "        path.write_text(text)\n",
        ["tests/test_engine.py", "-k", "atomic"],
    ),
    "no EXIF transpose for in-memory PIL images": (
        "fewzero/data/readers.py",
        "return _pil_to_rgb(ImageOps.exif_transpose(image))",
        "return _pil_to_rgb(image)",
        ["tests/test_readers.py"],
    ),
    "no EXIF transpose for in-memory PIL masks": (
        "fewzero/data/readers.py",
        "img = ImageOps.exif_transpose(mask)",
        "img = mask",
        ["tests/test_readers.py"],
    ),
    "exclude_unseen filter disabled": (
        "fewzero/data/episodes.py",
        "if train and exclude_unseen and any(",
        "if False and train and exclude_unseen and any(",
        ["tests/test_data.py"],
    ),
    "similarity maps zeroed": (
        "fewzero/heads/comparisons/cosine.py",
        "maps = self.scale * cosine_maps(query, protos)",
        "maps = 0 * cosine_maps(query, protos)",
        ["tests/test_support_swap.py"],
    ),
    "comparisons' residuals dropped": (
        "fewzero/heads/comparisons/registry.py",
        "        logits = logits + residual.to(logits.dtype)",
        "        logits = logits + 0 * residual.to(logits.dtype)",
        ["tests/test_fewshot.py"],
    ),
    "one-shot episodes not repeated for the query": (
        "fewzero/heads/shot_merge.py",
        '    per_query = logits.view(-1, shots, *logits.shape[1:])\n    if shot_merge == "mean" or training:\n        return per_query.mean(dim=1)',
        '    per_query = logits.view(-1, shots, *logits.shape[1:])\n    if shot_merge == "mean" or training:\n        return per_query[:, 0]',
        ["tests/test_fewshot.py"],
    ),
    "legacy checkpoint keys not renamed": (
        "fewzero/models/legacy.py",
        "        state[key if prefix is None else renames[prefix] + key[len(prefix) :]] = value",
        "        state[key] = value",
        ["tests/test_legacy.py"],
    ),
    "pyramid matrices made in inference mode": (
        "fewzero/layers/pyramid_pooling.py",
        "with torch.inference_mode(False), torch.no_grad():",
        "with torch.no_grad():",
        ["tests/test_global_state.py"],
    ),
    "class ids a model does not use are ignored": (
        "fewzero/models/base.py",
        "        elif not self.requires_class_ids:\n            raise ValueError(",
        "        elif False:\n            raise ValueError(",
        ["tests/test_contract.py", "-k", "refused"],
    ),
    "support masks unchecked under torch.compile": (
        "fewzero/models/base.py",
        "        if torch.compiler.is_compiling():  # the same rules",
        "        if torch.compiler.is_compiling():\n            return\n        if False:",
        ["tests/test_global_state.py"],
    ),
    "padded support pixels counted as background": (
        "fewzero/heads/prototype.py",
        "return F.pad(masks, (0, max(pw, 0), 0, max(ph, 0)), value=255)",
        "return F.pad(masks, (0, max(pw, 0), 0, max(ph, 0)), value=0)",
        ["tests/test_backbones.py", "-k", "support_masks"],
    ),
    "channels-last maps read as channels-first": (
        "fewzero/models/backbone.py",
        '        if self.output_fmt == "NHWC":\n            feats = [f.permute(0, 3, 1, 2) for f in feats]\n        if pad_h or pad_w:  # keep',
        "        if pad_h or pad_w:  # keep",
        ["tests/test_backbones.py", "-k", "channels_last_maps"],
    ),
    "padded maps not cropped back": (
        "fewzero/models/backbone.py",
        "        if pad_h or pad_w:  # keep the cells that cover the input",
        "        if False:",
        ["tests/test_backbones.py", "-k", "padding_equals"],
    ),
    "FSS-1000 drops images without masks": (
        "fewzero/data/fss.py",
        "            if unmasked:",
        "            if False:",
        ["tests/test_fewshot.py", "-k", "fss"],
    ),
    "--overwrite leaves the old run's evaluation": (
        "fewzero/engine/run_folder.py",
        "        for name in _RUN_OUTPUTS:",
        "        for name in _RUN_FILES:",
        ["tests/test_engine.py", "-k", "refused_then"],
    ),
    "HSNet's coarse-to-fine query resampling without align_corners": (
        "fewzero/models/hsnet.py",
        '        y = F.interpolate(y, size=tq, mode="bilinear", align_corners=True)',
        '        y = F.interpolate(y, size=tq, mode="bilinear", align_corners=False)',
        ["tests/test_peer_golden.py"],
    ),
    "DCAMA's attention with one head": (
        "fewzero/models/dcama.py",
        "        heads: int = 8,",
        "        heads: int = 1,",
        ["tests/test_peer_golden.py"],
    ),
    "DCAMA's skip the mean over the shots": (
        "fewzero/models/dcama.py",
        "        skip = _up(support[i].amax(dim=1), query[i].shape[-2:])",
        "        skip = _up(support[i].mean(dim=1), query[i].shape[-2:])",
        ["tests/test_peer_golden.py"],
    ),
    "DCAMA's mid-level squeeze kernels 5, 5, 3": (
        "fewzero/models/dcama.py",
        "                _conv_block(counts[1], [c1, c2, c3], [5, 3, 3]),",
        "                _conv_block(counts[1], [c1, c2, c3], [5, 5, 3]),",
        ["tests/test_peer_golden.py"],
    ),
    "the mask-attention value resized with nearest": (
        "fewzero/layers/mask_attention.py",
        '    return F.interpolate(mask, size=size, mode="bilinear", align_corners=True)',
        '    return F.interpolate(mask, size=size, mode="nearest")',
        ["tests/test_peer_golden.py", "tests/test_fewshot_layers.py"],
    ),
    "AbsentMeter counts foreground on ignore pixels": (
        "fewzero/metrics/absent.py",
        "        valid = (label != self.ignore_index).flatten(1)[absent]",
        "        valid = torch.ones_like(label, dtype=torch.bool).flatten(1)[absent]",
        ["tests/test_metrics.py", "tests/test_repro_66f2127.py"],
    ),
    "the comparison registry replaces a name whose new class has the same class name": (
        "fewzero/heads/comparisons/registry.py",
        "        if name in _COMPARISONS:\n",
        "        if name in _COMPARISONS and _COMPARISONS[name].__name__ != cls.__name__:\n",
        ["tests/test_comparisons.py", "-k", "refuses_duplicates"],
    ),
    "save_pretrained writes its weights in place": (
        "fewzero/models/hub.py",
        "    _replace(out / WEIGHTS_NAME, lambda p: save_file(state, p, metadata={\"format\": FORMAT}))",
        "    save_file(state, out / WEIGHTS_NAME, metadata={\"format\": FORMAT})",
        ["tests/test_repro_66f2127.py", "-k", "interrupted_mid_write"],
    ),
    "a saved N-way support reads its class names sorted": (
        "fewzero/fitted_support.py",
        "            for i, name in enumerate(classes):",
        "            for i, name in enumerate(sorted(classes)):",
        ["tests/test_absent_and_fitted.py", "tests/test_predict.py"],
    ),
}


def tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    return [f for f in out.stdout.splitlines() if (ROOT / f).is_file()]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default=None, help="run the mutations whose name contains this")
    p.add_argument("--list", action="store_true", help="list the mutations and exit")
    args = p.parse_args()
    chosen = {n: m for n, m in MUTATIONS.items() if args.only is None or args.only in n}
    if args.list:
        print("\n".join(chosen))
        return 0
    survived = []
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "tree"
        for f in tracked_files():
            (copy / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, copy / f)
        env = {**os.environ, "PYTHONPATH": str(copy)}
        probe = subprocess.run([sys.executable, "-c", "import fewzero; print(fewzero.__file__)"],
                               cwd=copy, env=env, capture_output=True, text=True)  # fmt: skip
        if not probe.stdout.strip().startswith(str(copy)):
            print(f"the copy is not imported first: {probe.stdout.strip()}", file=sys.stderr)
            return 2
        for name, (rel, old, new, tests) in chosen.items():
            path = copy / rel
            original = path.read_text()
            if original.count(old) != 1:
                print(f"?? {name}: the code to break is not found once in {rel}")
                survived.append(name)
                continue
            path.write_text(original.replace(old, new))
            start = time.perf_counter()
            run = subprocess.run(
                [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
                cwd=copy, env=env, capture_output=True, text=True,
            )  # fmt: skip
            path.write_text(original)
            caught = run.returncode != 0
            print(
                f"{'caught  ' if caught else 'SURVIVED'} {name} ({time.perf_counter() - start:.0f} s)"
            )
            if not caught:
                survived.append(name)
    print(f"\n{len(chosen) - len(survived)} of {len(chosen)} breakages caught")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
