"""ComfyUI's LoraLoader and LoRA Deck's LoRA Loader on one real-size checkpoint and the same files, inside ComfyUI.

Run with ComfyUI's Python (tests/test_comfyui_bridge_live.py does, with COMFYUI_ROOT and COMFYUI_PYTHON set):

    python tests/comfyui_bridge_check.py --comfyui ComfyUI --checkpoint ckpt.safetensors --loras DIR --out report.json

It writes seeded LoRA files for the checkpoint's real module names into ``--loras`` (kohya LoRA/LoCon, LyCORIS LoHa,
LoKr and full, kohya DoRA, a PEFT/diffusers file and a PEFT DoRA file, made with peft itself), applies each through
``comfy.sd.load_lora_for_models`` (what LoraLoader runs) and through the LoRA Loader (LoRA Deck) node, lets
ComfyUI patch both clones (``ModelPatcher.patch_model``, what sampling does) and compares every patched weight.
For the PEFT and DoRA files the reference is peft's own merge of the same adapter on the same base weights. Names
map between diffusers and ComfyUI through ComfyUI's own ``unet_to_diffusers``. The report is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

RANK, ALPHA = 4, 2.0
UNET = ("down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q",
        "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_k",
        "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_v",
        "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0",
        "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k",
        "down_blocks.0.attentions.0.transformer_blocks.0.ff.net.0.proj",
        "down_blocks.0.attentions.0.transformer_blocks.0.ff.net.2",
        "down_blocks.0.attentions.0.proj_in",
        "down_blocks.1.resnets.0.conv1",
        "down_blocks.1.resnets.0.time_emb_proj",
        "mid_block.attentions.0.transformer_blocks.0.attn2.to_q",
        "mid_block.resnets.1.conv2",
        "up_blocks.1.resnets.0.conv_shortcut",
        "up_blocks.3.attentions.2.transformer_blocks.0.attn1.to_v")
TEXT = ("text_model.encoder.layers.0.self_attn.q_proj", "text_model.encoder.layers.5.mlp.fc1",
        "text_model.encoder.layers.11.self_attn.out_proj")
LINEAR_UNET = tuple(n for n in UNET if "resnets" not in n and not n.endswith("proj_in"))
STRENGTHS = (0.8, 0.6)  # model, clip for the comparisons with LoraLoader (peft's merge is at 1, 1)


class Names:
    """diffusers / transformers names <-> ComfyUI state-dict keys, by ComfyUI's own unet_to_diffusers."""

    def __init__(self, model, originals: dict):
        import comfy.utils

        table = comfy.utils.unet_to_diffusers(model.model.model_config.unet_config)
        self.unet = {k[: -len(".weight")]: "diffusion_model." + v[: -len(".weight")] for k, v in table.items()
                     if k.endswith(".weight")}
        self.originals = originals

    def key(self, name: str) -> str:
        if name.startswith("text_model."):
            return f"clip_l.transformer.{name}.weight"
        return self.unet[name] + ".weight"

    def weight(self, name: str) -> torch.Tensor:
        return self.originals[self.key(name)]


def kohya_key(name: str) -> str:
    return ("lora_te_" if name.startswith("text_model.") else "lora_unet_") + name.replace(".", "_")


def _randn(gen, *shape, scale=0.05):
    return torch.randn(*shape, generator=gen) * scale


def write_kohya(path: str, names: Names, modules, gen, dtype=torch.float16) -> dict:
    sd = {}
    for name in modules:
        w = names.weight(name)
        key = kohya_key(name)
        kernel = tuple(w.shape[2:])
        sd[f"{key}.lora_down.weight"] = _randn(gen, RANK, w.shape[1], *kernel).to(dtype)
        sd[f"{key}.lora_up.weight"] = _randn(gen, w.shape[0], RANK, *((1, 1) if kernel else ())).to(dtype)
        sd[f"{key}.alpha"] = torch.tensor(ALPHA)
    return sd


def write_loha(names: Names, modules, gen) -> dict:
    sd = {}
    for name in modules:
        w = names.weight(name)
        key, cols = kohya_key(name), w[0].numel()
        for n in (1, 2):
            sd[f"{key}.hada_w{n}_a"] = _randn(gen, w.shape[0], RANK, scale=0.2)
            sd[f"{key}.hada_w{n}_b"] = _randn(gen, RANK, cols, scale=0.2)
        sd[f"{key}.alpha"] = torch.tensor(ALPHA)
    return sd


def write_lokr(names: Names, modules, gen) -> dict:
    sd = {}
    for name in modules:
        w = names.weight(name)
        key, out, cols = kohya_key(name), w.shape[0], w[0].numel()
        sd[f"{key}.lokr_w1"] = _randn(gen, 4, 4, scale=0.5)
        sd[f"{key}.lokr_w2_a"] = _randn(gen, out // 4, RANK, scale=0.2)
        sd[f"{key}.lokr_w2_b"] = _randn(gen, RANK, cols // 4, scale=0.2)
        sd[f"{key}.alpha"] = torch.tensor(ALPHA)
    return sd


def write_full(names: Names, modules, gen) -> dict:
    return {f"{kohya_key(n)}.diff": _randn(gen, *names.weight(n).shape, scale=0.002) for n in modules}


class PeftCase:
    """An adapter made by peft on a container of the real base weights: its file (diffusers' save_lora_weights
    layout) and peft's own merge of it (the reference)."""

    def __init__(self, names: Names, unet_modules, text_modules, gen, dora: bool):
        from peft import LoraConfig, inject_adapter_in_model
        from peft.utils import get_peft_model_state_dict

        self.names, self.parts = names, {}
        for part, modules in (("unet", unet_modules), ("text_encoder", text_modules)):
            holder = torch.nn.Module()
            for name in modules:
                w = names.weight(name).float()
                layer = (torch.nn.Linear(w.shape[1], w.shape[0], bias=False) if w.dim() == 2 else
                         torch.nn.Conv2d(w.shape[1], w.shape[0], tuple(w.shape[2:]), bias=False))
                layer.weight = torch.nn.Parameter(w.clone(), requires_grad=False)
                _put(holder, name, layer)
            config = LoraConfig(r=RANK, lora_alpha=ALPHA, target_modules=list(modules), init_lora_weights=False,
                                use_dora=dora)
            inject_adapter_in_model(config, holder)
            with torch.no_grad():
                for pname, param in holder.named_parameters():
                    if "lora_A" in pname or "lora_B" in pname:
                        param.copy_(torch.randn(param.shape, generator=gen) * 0.05)
                    elif "lora_magnitude_vector" in pname:
                        param.mul_(1 + 0.1 * torch.randn(param.shape, generator=gen))
            self.parts[part] = (holder, config, get_peft_model_state_dict(holder))

    def save(self, path: str) -> None:
        from diffusers import StableDiffusionPipeline

        folder, weight_name = os.path.split(path)
        layers = {f"{p}_lora_layers": {k: v.detach().clone() for k, v in sd.items()}
                  for p, (_, _, sd) in self.parts.items()}
        meta = {f"{p}_lora_adapter_metadata": config.to_dict() for p, (_, config, _) in self.parts.items()}
        StableDiffusionPipeline.save_lora_weights(folder, weight_name=weight_name, **layers, **meta)

    def merged(self) -> dict[str, torch.Tensor]:
        """ComfyUI key -> peft's merged weight (``merge_and_unload``'s per-layer merge)."""
        from peft.tuners.lora import LoraLayer

        out = {}
        for holder, _, _ in self.parts.values():
            for name, module in holder.named_modules():
                if isinstance(module, LoraLayer):
                    module.merge()
                    out[self.names.key(name)] = module.get_base_layer().weight.detach().clone()
        return out

    def dora_kohya(self) -> dict:
        """The same DoRA adapter in kohya/LyCORIS layout (lora_down, lora_up, alpha, dora_scale [out, 1, ...])."""
        sd = {}
        for holder, _, _ in self.parts.values():
            for name, module in holder.named_modules():
                if hasattr(module, "lora_A") and "default" in getattr(module, "lora_A", {}):
                    key = kohya_key(name)
                    down, up = module.lora_A["default"].weight, module.lora_B["default"].weight
                    magnitude = module.lora_magnitude_vector["default"].weight
                    sd[f"{key}.lora_down.weight"] = down.detach().clone()
                    sd[f"{key}.lora_up.weight"] = up.detach().clone()
                    sd[f"{key}.alpha"] = torch.tensor(ALPHA)
                    sd[f"{key}.dora_scale"] = magnitude.detach().reshape(-1, *[1] * (down.dim() - 1)).clone()
        return sd


def _put(root: torch.nn.Module, name: str, layer: torch.nn.Module) -> None:
    *parents, leaf = name.split(".")
    node = root
    for part in parents:
        if not hasattr(node, part):
            node.add_module(part, torch.nn.Module())
        node = getattr(node, part)
    node.add_module(leaf, layer)


def patched(patcher) -> dict[str, torch.Tensor]:
    """Every patched key's weight once ComfyUI has loaded the patcher as sampling and text encoding do
    (``load_models_gpu``: the weights of another clone are restored, this one's patches applied), then every
    model is unloaded (the originals put back)."""
    import comfy.model_management

    keys = list(patcher.patches)
    comfy.model_management.load_models_gpu([patcher])
    try:
        sd = patcher.model.state_dict()
        return {k: sd[k].detach().float().clone() for k in keys}
    finally:
        comfy.model_management.unload_all_models()


def both(model, clip) -> dict[str, torch.Tensor]:
    return {**patched(model), **patched(clip.patcher)}


def compare(a: dict, b: dict) -> dict:
    shared = sorted(set(a) & set(b))
    diffs = [float((a[k] - b[k]).abs().max()) for k in shared]
    unequal = {k: d for k, d in zip(shared, diffs, strict=True) if not torch.equal(a[k], b[k])}
    return {"keys": len(shared), "equal": len(shared) - len(unequal), "max_abs": max(diffs, default=0.0),
            "unequal": unequal, "only_first": sorted(set(a) - set(b)), "only_second": sorted(set(b) - set(a))}


def against_reference(ours: dict, reference: dict, dtypes: dict) -> dict:
    """How far patched weights are from a float32 reference: the relative error on float32 weights, and on half
    precision ones the largest error in units of the weight's rounding step at its largest value (ComfyUI rounds a
    patched weight to its dtype; a whole difference such as DoRA's is kept in the layer's dtype first)."""
    rel, steps = 0.0, 0.0
    for k in set(ours) & set(reference):
        a, b = ours[k], reference[k]
        if dtypes[k] == torch.float32:
            rel = max(rel, float((a - b).norm() / b.norm()))
        else:
            step = torch.finfo(dtypes[k]).eps * float(b.abs().max())
            steps = max(steps, float((a - b).abs().max()) / step)
    return {"f32_max_rel": rel, "f16_max_steps": steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comfyui", required=True)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--loras", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--flux", help="a FLUX.1-shaped transformer (real_checkpoint.build_flux); built if missing")
    args = parser.parse_args()
    sys.path.insert(0, os.path.abspath(args.comfyui))
    torch.set_num_threads(1)
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    import folder_paths

    folder_paths.add_model_folder_path("loras", os.path.abspath(args.loras), is_default=True)
    import comfy.sd
    import comfy.utils
    from safetensors.torch import save_file

    from loradeck.nodes.lora_list import rows_text
    from loradeck.nodes.lora_loader import LoRALoader

    model, clip, _, _ = comfy.sd.load_checkpoint_guess_config(args.checkpoint, output_vae=False, output_clip=True)
    originals = {k: v[0][0] for k, v in {**model.get_key_patches(), **clip.patcher.get_key_patches()}.items()}
    names = Names(model, originals)
    dtypes = {k: v.dtype for k, v in originals.items()}
    gen = torch.Generator().manual_seed(0)
    os.makedirs(args.loras, exist_ok=True)
    files = {
        "kohya-lora-locon": write_kohya("", names, UNET + TEXT, gen),
        "lycoris-loha": write_loha(names, UNET[:3] + UNET[8:10] + TEXT[:1], gen),
        "lycoris-lokr": write_lokr(names, LINEAR_UNET[:4] + TEXT[:1], gen),
        "lycoris-full": write_full(names, UNET[:2] + TEXT[:1], gen),
    }
    peft = PeftCase(names, UNET, TEXT, gen, dora=False)
    dora = PeftCase(names, LINEAR_UNET + ("down_blocks.1.resnets.0.conv1",), TEXT, gen, dora=True)
    for name, sd in files.items():
        save_file(sd, os.path.join(args.loras, f"{name}.safetensors"))
    save_file(dora.dora_kohya(), os.path.join(args.loras, "kohya-dora.safetensors"))
    peft.save(os.path.join(args.loras, "peft-lora.safetensors"))
    dora.save(os.path.join(args.loras, "peft-dora.safetensors"))
    references = {"peft-lora": peft.merged(), "peft-dora": dora.merged()}
    references["kohya-dora"] = references["peft-dora"]  # the same adapter in kohya's layout

    loader = LoRALoader()

    def ours(file: str, strength_model: float, strength_clip: float):
        rows = rows_text([{"enabled": True, "lora_name": file, "strength_model": strength_model,
                           "strength_clip": strength_clip}])
        return loader.load(model, clip, rows)["result"][:2]

    def theirs(file: str, strength_model: float, strength_clip: float):
        sd = comfy.utils.load_torch_file(os.path.join(args.loras, file), safe_load=True)
        return comfy.sd.load_lora_for_models(model, clip, sd, strength_model, strength_clip)

    report: dict = {"dtypes": sorted({str(v.dtype) for v in originals.values()}), "cases": {}}
    for name in (*files, "kohya-dora", "peft-lora", "peft-dora"):
        file = f"{name}.safetensors"
        strengths = (1.0, 1.0) if name in ("kohya-dora", "peft-lora", "peft-dora") else STRENGTHS
        bridge, comfy_out = both(*ours(file, *strengths)), both(*theirs(file, *strengths))
        case = {"vs_loraloader": compare(bridge, comfy_out)}
        reference = references.get(name)
        if reference is not None:
            case["vs_peft"] = compare(bridge, reference) | against_reference(bridge, reference, dtypes)
            case["loraloader_vs_peft"] = compare(comfy_out, reference) | against_reference(comfy_out, reference,
                                                                                           dtypes)
        report["cases"][name] = case
        shown = {k: {m: v for m, v in c.items() if not m.startswith("only")} for k, c in case.items()}
        print(name, json.dumps(shown), flush=True)  # noqa: T201 - progress for the test's log
    report["timing"] = timing(ours, theirs, patched, model, clip)
    model = None  # the SD 1.5 UNet's memory back before the Flux transformer is loaded (the CLIP stays)
    originals.clear()
    report["flux"] = flux_cases(clip, args, gen)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)


FLUX_KOHYA = {"double_blocks_0_img_attn_qkv": (9216, 3072), "single_blocks_0_linear1": (21504, 3072),
              "double_blocks_0_img_mlp_0": (12288, 3072), "double_blocks_0_txt_attn_proj": (3072, 3072)}
FLUX_DIFFUSERS = {"transformer_blocks.0.attn.to_k": (3072, 3072), "single_transformer_blocks.0.proj_mlp": (12288, 3072),
                  "transformer_blocks.0.ff.net.0.proj": (12288, 3072), "norm_out.linear": (6144, 3072)}


def flux_cases(clip, args, gen) -> dict:
    """A FLUX.1-shaped transformer (one double, one single block; real_checkpoint.build_flux) through ComfyUI's
    Load Diffusion Model: a kohya file on the fused qkv / linear1 layers (ComfyUI patches the whole key, LoRA Deck
    its slices: equal to rounding), a diffusers file (slices and the reordered final modulation, as ComfyUI's key
    map has them: bit for bit), and block weights on the slices (their (key, offset) patch keys kept)."""
    import gc

    import comfy.model_management
    import comfy.sd
    import comfy.utils
    import real_checkpoint
    from safetensors.torch import save_file

    from loradeck.nodes.lora_list import rows_text
    from loradeck.nodes.lora_loader import LoRALoader

    comfy.model_management.unload_all_models()
    gc.collect()
    path = args.flux or os.path.join(os.path.dirname(os.path.abspath(args.out)), "flux-small.safetensors")
    if not os.path.isfile(path):
        real_checkpoint.build_flux(path)
    model = comfy.sd.load_diffusion_model(path)
    kohya = {}
    for name, (out, width) in FLUX_KOHYA.items():
        kohya[f"lora_unet_{name}.lora_down.weight"] = _randn(gen, RANK, width, scale=0.02).to(torch.bfloat16)
        kohya[f"lora_unet_{name}.lora_up.weight"] = _randn(gen, out, RANK, scale=0.02).to(torch.bfloat16)
        kohya[f"lora_unet_{name}.alpha"] = torch.tensor(ALPHA)
    diffusers = {}
    for name, (out, width) in FLUX_DIFFUSERS.items():
        diffusers[f"transformer.{name}.lora_A.weight"] = _randn(gen, RANK, width, scale=0.02)
        diffusers[f"transformer.{name}.lora_B.weight"] = _randn(gen, out, RANK, scale=0.02)
    save_file(kohya, os.path.join(args.loras, "flux-kohya.safetensors"))
    save_file(diffusers, os.path.join(args.loras, "flux-diffusers.safetensors"))
    loader = LoRALoader()

    def ours(file: str, strength: float, weights: str = ""):
        rows = rows_text([{"enabled": True, "lora_name": file, "strength_model": strength, "strength_clip": 1.0}])
        return loader.load(model, clip, rows, None, weights)["result"][0]

    def theirs(file: str, strength: float):
        sd = comfy.utils.load_torch_file(os.path.join(args.loras, file), safe_load=True)
        return comfy.sd.load_lora_for_models(model, None, sd, strength, 0)[0]

    out = {"dtype": str(next(iter(model.model.state_dict().values())).dtype)}
    for file in ("flux-kohya.safetensors", "flux-diffusers.safetensors"):
        bridge, comfy_out = patched(ours(file, 0.8)), patched(theirs(file, 0.8))
        out[file] = compare(bridge, comfy_out) | {"max_rel": _max_rel(bridge, comfy_out)}
    blocks = ours("flux-kohya.safetensors", 1.0, "flux-kohya: transformer_blocks.0=0.5")
    out["block_patch_keys"] = sorted({f"{k} {p[0]} {list(p[3]) if p[3] else None}" for k, v in blocks.patches.items()
                                      for p in v})
    half, whole = patched(theirs("flux-kohya.safetensors", 0.5)), patched(theirs("flux-kohya.safetensors", 1.0))
    with_blocks = patched(blocks)
    reference = {k: (half if "double_blocks.0." in k else whole)[k] for k in with_blocks}
    out["blocks_vs_loraloader"] = compare(with_blocks, reference) | {"max_rel": _max_rel(with_blocks, reference)}
    return out


def _max_rel(a: dict, b: dict) -> float:
    return max((float((a[k] - b[k]).norm() / b[k].norm()) for k in set(a) & set(b)), default=0.0)


def timing(ours, theirs, patch, model, clip) -> dict:
    """What a strength change costs: the node run (files and conversions cached) and ComfyUI's re-patch."""
    out = {}
    for label, run in (("bridge", ours), ("loraloader", theirs)):
        run("kohya-lora-locon.safetensors", 1.0, 1.0)
        start = time.perf_counter()
        new_model, _ = run("kohya-lora-locon.safetensors", 0.5, 1.0)
        out[f"{label}_node_s"] = time.perf_counter() - start
        start = time.perf_counter()
        patch(new_model)
        out[f"{label}_repatch_s"] = time.perf_counter() - start
    return out


if __name__ == "__main__":
    main()
