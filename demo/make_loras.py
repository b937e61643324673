"""Makes the two demo LoRA files for the built-in tiny SD model (the files are shipped; this remakes them).

    python -m loradeck.demo.make_loras          # CPU only, a few minutes; the same files every time

The tiny model is random, so its pictures are coloured noise. The demo LoRAs are trained so that their
effect cannot be missed on that noise: ``loradeck-demo-style`` (diffusers format) paints a red disc in the
middle, ``loradeck-demo-kohya`` (kohya format, with ``.alpha``) lays mint-green horizontal stripes over it.

How: low-rank pairs on the UNet's attention, feed-forward and resnet convolutions and on the text encoder's
attention are trained with Adam so that the demo's own sampler run — the demo prompt, DDIM with guidance,
128x128, decoded by the VAE, all differentiable — ends at the base picture with the marks drawn in. The two
LoRAs are trained together, cycling through: each alone at strength 1, both (stripes over the disc, so the
stack shows both) and each at 0.5 (half the mark, so a strength reads as one). Two seeds alternate. Seeds,
step counts and the thread count are fixed, so the files come out the same on one machine.
Each file also carries a preview: the style LoRA a ``modelspec.thumbnail`` in its header, the kohya one a
``.preview.png`` beside it (the two conventions the panel and Load LoRA read).
"""

from __future__ import annotations

import base64
import io
import json
import logging
import math
import os
import time

import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save

from ..core.families import tiny_pipeline
from ..core.files.atomic import write_atomic

log = logging.getLogger(__name__)
OUT = os.path.join(os.path.dirname(__file__), "models", "loras")
STYLE = "loradeck-demo-style.safetensors"
KOHYA = "loradeck-demo-kohya.safetensors"
PROMPT, NEGATIVE, CFG, SIZE = "loradeck detail, a lighthouse on a cliff at sunset", "blurry", 7.0, 128
SEEDS = (42, 7)  # 42 is the demo's seed
TRAIN_STEPS = 6  # sampler steps while training; the effect carries over to the demo's 20
ITERATIONS = 150
RANK = 4
KOHYA_ALPHA = 2.0
UNET_TARGETS = ("to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2", "conv1",
                "conv2")
TEXT_TARGETS = ("q_proj", "v_proj")

KOHYA_METADATA = {
    "ss_base_model_version": "sd_v1",
    "ss_network_module": "networks.lora",
    "ss_network_dim": str(RANK),
    "ss_network_alpha": str(KOHYA_ALPHA),
    "ss_network_args": json.dumps({"conv_dim": str(RANK), "conv_alpha": str(KOHYA_ALPHA)}),
    "ss_output_name": "loradeck-demo-kohya",
    "ss_tag_frequency": json.dumps({"img": {"loradeck detail": 12, "stripes": 4}}),
    "modelspec.architecture": "stable-diffusion-v1/lora",
    "modelspec.title": "LoRA Deck demo: stripes (kohya)",
    "modelspec.trigger_phrase": "loradeck detail",
}
STYLE_METADATA = {
    "format": "pt",
    "modelspec.architecture": "stable-diffusion-v1/lora",
    "modelspec.title": "LoRA Deck demo: red disc",
    "modelspec.trigger_phrase": "loradeck disc",
}


def _targets(model, suffixes):
    return [(n, m) for n, m in model.named_modules()
            if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)) and n.endswith(suffixes)]


class TrainableLora:
    """Low-rank pairs (down A, up B; B starts at zero) added to modules' outputs by forward hooks."""

    def __init__(self, pipe, seed: int):
        gen = torch.Generator().manual_seed(seed)
        self.pairs: dict[tuple[str, str], tuple[torch.nn.Module, torch.Tensor, torch.Tensor]] = {}
        self.scale = 0.0
        self._hooks = []
        for component, model, suffixes in (("unet", pipe.unet, UNET_TARGETS),
                                           ("text_encoder", pipe.text_encoder, TEXT_TARGETS)):
            for name, module in _targets(model, suffixes):
                kernel = tuple(module.kernel_size) if isinstance(module, torch.nn.Conv2d) else ()
                fan_in = (module.in_features if not kernel else module.in_channels) * math.prod(kernel or (1,))
                inputs = module.in_features if not kernel else module.in_channels
                outputs = module.out_features if not kernel else module.out_channels
                down = torch.randn(RANK, inputs, *kernel, generator=gen) / math.sqrt(fan_in)
                up = torch.zeros(outputs, RANK, *((1, 1) if kernel else ()))
                self.pairs[(component, name)] = (module, down.requires_grad_(), up.requires_grad_())

    def attach(self) -> TrainableLora:
        for module, down, up in self.pairs.values():
            self._hooks.append(module.register_forward_hook(self._hook(down, up)))
        return self

    def _hook(self, down, up):
        def add(module, inputs, output):
            if self.scale == 0:
                return output
            x = inputs[0]
            if isinstance(module, torch.nn.Linear):
                return output + self.scale * F.linear(F.linear(x, down), up)
            low = F.conv2d(x, down, stride=module.stride, padding=module.padding)
            return output + self.scale * F.conv2d(low, up)

        return add

    def parameters(self) -> list[torch.Tensor]:
        return [t for _, down, up in self.pairs.values() for t in (down, up)]


def _embeds(pipe, text: str) -> torch.Tensor:
    ids = pipe.tokenizer(text, padding="max_length", max_length=pipe.tokenizer.model_max_length, truncation=True,
                         return_tensors="pt").input_ids
    return pipe.text_encoder(ids)[0]


def render(pipe, seed: int, steps: int) -> torch.Tensor:
    """What the pipeline's own call computes (DDIM, guidance, VAE decode), differentiably: [1, 3, H, W] in 0..1."""
    from diffusers import DDIMScheduler
    from diffusers.utils.torch_utils import randn_tensor

    scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    scheduler.set_timesteps(steps)
    context = torch.cat([_embeds(pipe, NEGATIVE), _embeds(pipe, PROMPT)])
    latents = randn_tensor((1, 4, SIZE // 8, SIZE // 8), generator=torch.Generator("cpu").manual_seed(seed),
                           dtype=torch.float32) * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        noise = pipe.unet(torch.cat([latents] * 2), t, encoder_hidden_states=context).sample
        uncond, cond = noise.chunk(2)
        latents = scheduler.step(uncond + CFG * (cond - uncond), t, latents).prev_sample
    image = pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample
    return (image / 2 + 0.5).clamp(0, 1)


def disc_mark(size: int = SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """(colour, mask): a red disc of radius 0.28 * size in the middle."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    radius = ((yy - size / 2 + 0.5) ** 2 + (xx - size / 2 + 0.5) ** 2).sqrt()
    return torch.tensor([0.95, 0.08, 0.08]).view(1, 3, 1, 1), (radius < size * 0.28).float()


def stripe_mark(size: int = SIZE, period: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """(colour, mask): mint-green horizontal bands, half of every ``period`` rows."""
    rows = torch.arange(size).view(size, 1).expand(size, size)
    return torch.tensor([0.1, 0.9, 0.5]).view(1, 3, 1, 1), ((rows // (period // 2)) % 2 == 0).float()


def _draw(image: torch.Tensor, mark, amount: float = 1.0) -> torch.Tensor:
    colour, mask = mark
    return image * (1 - amount * mask) + colour * amount * mask


# (strength of the disc LoRA, strength of the stripes LoRA) cycled through while training: each alone, both
# (so the stack shows both marks), and each at half strength (so 0.5 shows half of the effect)
CONFIGS = ((1.0, 0.0), (0.0, 1.0), (1.0, 1.0), (0.5, 0.0), (0.0, 0.5))


def _wanted(base: torch.Tensor, disc, stripes) -> dict[tuple[float, float], tuple[torch.Tensor, torch.Tensor]]:
    """config -> (picture wanted, loss weight): the marks drawn over the base picture, stripes over the disc."""
    out = {}
    for a, b in CONFIGS:
        wanted = _draw(_draw(base, disc, a), stripes, b)
        touched = torch.clamp(disc[1] * (a > 0) + stripes[1] * (b > 0), max=1)
        out[(a, b)] = (wanted, 1 + 3 * touched)  # the marks weigh more than the untouched rest
    return out


def train(pipe, iterations: int = ITERATIONS) -> tuple[TrainableLora, TrainableLora]:
    """Two LoRAs trained together: one draws the disc, one the stripes, and together both."""
    disc, stripes = disc_mark(), stripe_mark()
    with torch.no_grad():
        targets = {s: _wanted(render(pipe, s, TRAIN_STEPS), disc, stripes) for s in SEEDS}
    first, second = TrainableLora(pipe, seed=1).attach(), TrainableLora(pipe, seed=2).attach()
    optimiser = torch.optim.Adam(first.parameters() + second.parameters(), lr=0.015)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, iterations)
    for step in range(iterations):
        seed, config = SEEDS[(step // len(CONFIGS)) % len(SEEDS)], CONFIGS[step % len(CONFIGS)]
        first.scale, second.scale = config
        wanted, weight = targets[seed][config]
        optimiser.zero_grad()
        loss = (weight * (render(pipe, seed, TRAIN_STEPS) - wanted) ** 2).mean()
        loss.backward()
        optimiser.step()
        schedule.step()
        if step % 25 == 0 or step == iterations - 1:
            log.info("step %d/%d (strengths %s, seed %d): loss %.5f", step + 1, iterations, config, seed, loss.item())
    first.scale = second.scale = 0.0
    return first, second


def diffusers_file(lora: TrainableLora) -> dict[str, torch.Tensor]:
    """peft/diffusers keys (alpha = rank, so the pair is used as trained)."""
    return {f"{c}.{name}.{part}.weight": t.detach().contiguous()
            for (c, name), (_, down, up) in lora.pairs.items() for part, t in (("lora_A", down), ("lora_B", up))}


def kohya_file(lora: TrainableLora) -> dict[str, torch.Tensor]:
    """kohya keys: lora_unet_* / lora_te_* with lora_down, lora_up and alpha (scale alpha / rank)."""
    out = {}
    for (component, name), (_, down, up) in lora.pairs.items():
        key = ("lora_unet_" if component == "unet" else "lora_te_") + name.replace(".", "_")
        out[f"{key}.lora_down.weight"] = down.detach().contiguous()
        out[f"{key}.lora_up.weight"] = (up.detach() * RANK / KOHYA_ALPHA).contiguous()
        out[f"{key}.alpha"] = torch.tensor(KOHYA_ALPHA)
    return out


def picture(pipe, lora: TrainableLora, size: int = 96) -> bytes:
    """The LoRA's effect at strength 1 on the demo's seed and steps, as a small PNG."""
    lora.scale = 1.0
    with torch.no_grad():
        image = render(pipe, SEEDS[0], 20)[0]
    lora.scale = 0.0
    pixels = (image.permute(1, 2, 0).numpy() * 255).round().astype("uint8")
    buffer = io.BytesIO()
    Image.fromarray(pixels).resize((size, size), Image.NEAREST).save(buffer, "PNG")
    return buffer.getvalue()


def main(out: str = OUT) -> list[str]:
    torch.manual_seed(0)
    started = time.perf_counter()
    pipe = tiny_pipeline("sd1")
    for model in (pipe.unet, pipe.vae, pipe.text_encoder):
        model.requires_grad_(False)
    os.makedirs(out, exist_ok=True)
    disc, stripes = train(pipe)
    thumbnail = "data:image/png;base64," + base64.b64encode(picture(pipe, disc)).decode()
    paths = [os.path.join(out, STYLE), os.path.join(out, KOHYA),
             os.path.join(out, KOHYA.replace(".safetensors", ".preview.png"))]
    write_atomic(paths[0], save(diffusers_file(disc), metadata={**STYLE_METADATA, "modelspec.thumbnail": thumbnail}))
    write_atomic(paths[1], save(kohya_file(stripes), metadata=KOHYA_METADATA))
    write_atomic(paths[2], picture(pipe, stripes, 128))
    log.info("wrote %s in %.0f s", ", ".join(map(os.path.basename, paths)), time.perf_counter() - started)
    return paths


def _pair(module, rank, gen, gain):
    down = torch.randn(rank, module.in_features, generator=gen) / module.in_features**0.5
    up = torch.randn(module.out_features, rank, generator=gen) * gain
    return down, up


def family_loras(family_key: str, folder: str) -> list[str]:
    """Demo LoRAs (diffusers format, same names as the shipped ones) for another family's tiny model: random
    pairs (those models have no trained demo effect; ``loradeck demo --model`` shows the graph runs)."""
    from ..core.families import FAMILIES

    family = FAMILIES[family_key]
    pipe = family.tiny()
    gen = torch.Generator().manual_seed(1234)
    paths = []
    for name, suffixes, gain in ((STYLE, ("to_k", "to_v", "q_proj", "v_proj"), 0.6),
                                 (KOHYA, ("to_q", "to_out.0", "fc1", "out_proj"), 0.8)):
        sd = {}
        for component in family.components:
            model = getattr(pipe, component, None)
            linear = [(n, m) for n, m in _targets(model, suffixes) if isinstance(m, torch.nn.Linear)] if model else []
            for module_name, module in linear:
                down, up = _pair(module, 4, gen, gain)
                sd[f"{component}.{module_name}.lora_A.weight"] = down.contiguous()
                sd[f"{component}.{module_name}.lora_B.weight"] = up.contiguous()
        paths.append(os.path.join(folder, name))
        write_atomic(paths[-1], save(sd, metadata={"format": "pt", "modelspec.architecture": family.key}))
    return paths


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(1)  # one thread: the same sums in the same order, so the same files
    main()
