"""LoRA previews: a picture beside the file (beside the name it is listed under: a symlinked LoRA's picture is
beside the link) or the header's modelspec.thumbnail; image types only, sizes capped."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from PIL import Image
from safetensors.torch import load_file, save_file

from loradeck.core.files import previews
from loradeck.core.files.previews import find_preview, image_type, thumbnail


def _image(kind: str = "PNG", size=(8, 8), colour=(200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, kind)
    return buffer.getvalue()


@pytest.fixture
def loras(tmp_path, files):
    """A LoRA root with a copy of the kohya fixture, and an outside folder."""
    root = tmp_path / "loras"
    (root / "sub").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    lora = root / "sub" / "x.safetensors"
    lora.write_bytes(Path(files["k"]).read_bytes())
    return root, lora


@pytest.mark.parametrize("kind,media", [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")])
def test_image_types_are_recognised_by_their_bytes(kind, media):
    assert image_type(_image(kind)) == media


@pytest.mark.parametrize("data", [b"", b"<svg onload=alert(1)>", b"<html>", b"GIF89a....", b"RIFF\0\0\0\0WAVE"])
def test_other_bytes_are_not_images(data):
    assert image_type(data) is None


@pytest.mark.parametrize("suffix", previews.SIDECAR_SUFFIXES)
def test_a_picture_beside_the_file_is_found(loras, suffix):
    root, lora = loras
    kind = "WEBP" if suffix.endswith("webp") else "JPEG" if "jp" in suffix else "PNG"
    (lora.parent / f"x{suffix}").write_bytes(_image(kind))
    found = find_preview(str(lora))
    assert found.source == "file" and found.media_type == image_type(_image(kind))


def test_header_thumbnail_is_used_when_there_is_no_file(loras):
    root, lora = loras
    uri = "data:image/png;base64," + base64.b64encode(_image()).decode()
    save_file(load_file(str(lora)), str(lora), metadata={"modelspec.thumbnail": uri})
    found = find_preview(str(lora))
    assert (found.source, found.media_type, found.data) == ("thumbnail", "image/png", _image())


@pytest.mark.parametrize("uri", [
    "data:image/svg+xml;base64," + base64.b64encode(b"<svg/>").decode(),  # scripts can live in SVG
    "data:text/html;base64," + base64.b64encode(b"<b>x</b>").decode(),
    "data:image/png;base64," + base64.b64encode(b"<html>not a png</html>").decode(),  # declared type lies
    "data:image/png;base64,@@@not base64@@@",
    "https://example.com/x.png",  # never fetched
    "data:image/png;base64," + "A" * (previews.MAX_THUMBNAIL_CHARS + 10),
])
def test_bad_thumbnails_are_ignored(uri):
    assert thumbnail(uri) is None


def test_a_file_that_is_not_an_image_or_too_big_falls_back_to_the_header(loras, monkeypatch):
    root, lora = loras
    sidecar = lora.parent / "x.preview.png"
    sidecar.write_bytes(b"<html><script>alert(1)</script></html>")
    assert find_preview(str(lora)) is None
    monkeypatch.setattr(previews, "MAX_PREVIEW_BYTES", 64)
    sidecar.write_bytes(_image(size=(64, 64)))
    assert find_preview(str(lora)) is None


def test_a_symlinked_picture_is_followed_as_comfyui_follows_links_in_the_roots(loras, tmp_path):
    root, lora = loras
    shared = tmp_path / "outside" / "shared.png"
    shared.write_bytes(_image())
    (lora.parent / "x.preview.png").symlink_to(shared)
    assert find_preview(str(lora)).data == _image()


def test_a_symlinked_loras_picture_is_the_one_beside_the_link(loras, tmp_path):
    root, lora = loras
    elsewhere = tmp_path / "outside" / "real.safetensors"
    elsewhere.write_bytes(lora.read_bytes())
    (tmp_path / "outside" / "real.preview.png").write_bytes(_image(colour=(0, 0, 255)))
    link = root / "linked.safetensors"
    link.symlink_to(elsewhere)
    (root / "linked.preview.png").write_bytes(_image(colour=(0, 255, 0)))
    assert find_preview(str(link)).data == _image(colour=(0, 255, 0))
