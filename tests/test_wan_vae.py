"""core/models/wan_vae.py: Wan-layout VAE files (qwen_image_vae, wan_2.1_vae) into diffusers' Wan-architecture VAEs.

The Wan-layout names come from tests/original_layout.py's ``wan_vae_to_original``, which ComfyUI's own ``WanVAE``
loads strictly (tools/fixtures/generators/model_files/make_qwenimage_fixtures.py: ``comfy_vae``); diffusers'
``convert_wan_vae_to_diffusers`` converts them back. Each class must get exactly its weights back, at the real
models' 2 res blocks per level, at the tiny models' 1 and at 3 (beyond the numbering diffusers' converter knows:
``wan_vae`` numbers the decoder's stages for the file's own stage size).
"""

from __future__ import annotations

import json
import os

import pytest
import torch

from loradeck.core.errors import PipelineLoadError
from loradeck.core.models import wan_vae
from loradeck.core.models.arch import Header
from loradeck.core.models.parts import pick_vae, what_is
from original_layout import wan_vae_to_original


def _folder(tmp_path, model) -> str:
    os.makedirs(tmp_path / "vae")
    model.save_config(str(tmp_path / "vae"))
    return str(tmp_path)


@pytest.mark.parametrize("cls_name,res_blocks", [("AutoencoderKLWan", 1), ("AutoencoderKLWan", 2),
                                                 ("AutoencoderKLWan", 3), ("AutoencoderKLQwenImage", 1),
                                                 ("AutoencoderKLQwenImage", 2)])
def test_a_wan_layout_file_builds_the_same_vae(cls_name, res_blocks, tmp_path):
    import diffusers

    torch.manual_seed(0)
    model = getattr(diffusers, cls_name)(base_dim=4, z_dim=4, dim_mult=[1, 2, 2, 2], num_res_blocks=res_blocks,
                                         temperal_downsample=[False, True, True]).eval()
    original = wan_vae_to_original(model.state_dict(), res_blocks)
    built = wan_vae.build(type(model), "vae", original, _folder(tmp_path, model), torch.bfloat16)
    want = model.state_dict()
    got = built.state_dict()
    assert got.keys() == want.keys()
    assert all(torch.equal(got[k], want[k].to(torch.bfloat16)) for k in want)
    config = json.loads((tmp_path / "vae" / "config.json").read_text())
    header = Header("/models/vae/vae.safetensors", {k: tuple(v.shape) for k, v in original.items()}, {}, {}, None)
    assert wan_vae.find(header.shapes) == ("", "original", (8, 4)) and pick_vae(config, [header]).path == header.path
    assert what_is(header) == "VAE in the Wan layout (4 latent channels)"
    assert pick_vae(dict(config, z_dim=16), [header]) is None  # another latent width: not this file



def test_a_file_that_is_not_a_wan_vae_or_has_foreign_weights_is_refused(tmp_path):
    from diffusers import AutoencoderKLQwenImage

    torch.manual_seed(0)
    model = AutoencoderKLQwenImage(base_dim=4, z_dim=4, dim_mult=[1, 2, 2, 2], num_res_blocks=1,
                                   temperal_downsample=[False, True, True]).eval()
    folder = _folder(tmp_path, model)
    with pytest.raises(PipelineLoadError, match="not a Wan-layout VAE"):
        wan_vae.build(AutoencoderKLQwenImage, "vae", {"decoder.conv_in.weight": torch.zeros(8, 4, 3, 3)}, folder,
                      torch.float32)
    original = wan_vae_to_original(model.state_dict(), 1)
    original["decoder.middle.0.residual.9.weight"] = torch.zeros(1)
    with pytest.raises(PipelineLoadError, match="1 weights a AutoencoderKLQwenImage of this configuration does not"):
        wan_vae.build(AutoencoderKLQwenImage, "vae", original, folder, torch.float32)
