"""What a pipeline family is: the row each family folder (``core/families/<key>/``) fills in.

Nothing here knows any particular family; ``core/families/__init__.py`` registers them all. Every field
without a default is a piece each family must provide (``tests/test_family_pieces.py`` checks each one).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

# what Generate does: no image, an image (+ denoise), an image and a mask, an image to edit (edit models)
TXT2IMG, IMG2IMG, INPAINT, EDIT = "text-to-image", "img2img", "inpainting", "edit"
MODES = (TXT2IMG, IMG2IMG, INPAINT, EDIT)

MODEL_GROUP = "model"  # strength_model: the denoiser
CLIP_GROUP = "clip"  # strength_clip: every text encoder


@dataclass(frozen=True)
class Family:
    key: str
    title: str
    pipeline_classes: tuple[str, ...]
    denoiser: str
    text_encoders: tuple[str, ...]
    # kohya / A1111 key prefix -> component
    kohya_prefixes: tuple[tuple[str, str], ...]
    # The pieces of the family's folder:
    tiny: Callable[..., object]  # tiny(seed=0) -> its built-in tiny pipeline
    builtin: str  # the built-in's name ("tiny-sd"); Load Pipeline lists "tiny-sd (built-in)"
    blocks: object  # how block weights name its denoiser's blocks (a stacks.block_weights.Scheme)
    schedulers: Mapping[str, object]  # name -> models.schedulers.Scheduler; {}: the model's own scheduler only
    call: Callable[..., dict]  # call(GenerateParams, on_step) -> the pipeline call's keyword arguments
    single_files: tuple  # models.arch.Arch rows: its single-file checkpoints (() when it has none)
    original_names: Callable | None  # denoiser -> {original (BFL/SAI) module name: diffusers name | RowSplit}
    # How a LoRA file's base is guessed for error messages (formats/base_guess.py): text in a key of its
    # denoiser -> what it was made for (checked before the text-encoder markers and the module widths)
    lora_markers: tuple[tuple[str, str], ...]
    lbw: Mapping[int, tuple[str, ...]] = field(default_factory=dict)  # A1111 LoRA Block Weight ids per length
    aliases: Callable | None = None  # (component, model) -> name -> extra names of a module (None: none)
    img2img: str = ""  # diffusers' image-to-image pipeline class of the family
    inpaint: str = ""  # diffusers' inpainting pipeline class of the family
    # pixels per latent cell along one side = the VAE's scale factor x this: an int, or the name of the
    # denoiser config field holding it (SD3 patchifies latents, Flux packs 2x2 latents into one token)
    patch: int | str = 1
    # how many steps diffusers' img2img runs for steps s and denoise d: "floor" int(s*d) (SD, SDXL, aMUSEd),
    # "rest" s - int(s - s*d) (SD3, Flux)
    denoise_steps: str = "floor"
    unbatched: str = ""  # why a grid cannot batch its cells on this family ("": it can)
    # Editing: the pipeline class that edits an image (or takes it as a reference) by the prompt, and the edit
    # models among the family's classes (a loaded Qwen-Image-Edit): with them, or when the family has no img2img
    # class, an image without a mask is the image to edit, in that loaded class (edit models) or ``edit``.
    edit: str = ""
    edit_models: tuple[str, ...] = ()
    # the class that edits inside a mask on an edit model (an image and a mask); "": the family's ``inpaint``
    edit_inpaint: str = ""
    # denoiser modules (name prefixes) whose input packs every batch row's tokens into one sequence, so peft's
    # mixed batch cannot route them by row: a grid whose cells differ there runs its cells one after another
    packed_inputs: tuple[str, ...] = ()
    # the edit class takes the image as reference images (PIL images, as FLUX.2's require): every image of a batch is
    # one reference of the same edit, which gives batch_size images
    edit_references: bool = False
    encoder_markers: tuple[tuple[str, str], ...] = ()  # text in a key of its text encoders -> what it was made for
    # module input widths that name it: {"cross-attention width" | "text-encoder width": {width: what}}
    lora_widths: Mapping[str, Mapping[int, str]] = field(default_factory=dict)
    # single-file variants of it that LoRA Deck does not load: (denoiser key, shape test or None, what it is)
    other_variants: tuple = ()
    # More denoisers one pipeline runs (Wan 2.2's low-noise expert ``transformer_2``): components like the denoiser,
    # in its strength group (``model``), with the same block names; a file's denoiser part goes into each of them
    # unless the file has parts of their own. ``labels``: how people call each denoiser when the experts are
    # loaded (display only: ``transformer`` "high noise"), for the nodes and the panel.
    experts: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    # Video families: the frames of a video when Generate is not told (0: the family makes images). Their
    # pipelines give frames; Generate hands them on as one IMAGE batch, video after video.
    frames: int = 0
    # why the loaded pipeline cannot run a mode, e.g. an image-to-video model without an image ("" when it can):
    # cannot_run(pipe, mode) -> str (None: every mode its classes have)
    cannot_run: Callable | None = None
    # base models (metadata labels, files.metadata.BASE_LABELS) whose LoRAs have this family's module names and
    # shapes but were trained on other weights (Chroma and Flux): a file whose metadata names one is refused even
    # where every module fits, unless partial loads are allowed
    lookalikes: tuple[str, ...] = ()
    # fix(pipe): repairs a pipeline of the family needs before it runs as its model was trained (diffusers bugs),
    # applied to every pipeline LoRA Deck takes over (PipelineOwner) and by its tiny builder; must be idempotent
    fix: Callable[[object], None] | None = None
    # denoiser modules inside which some layers get each batch row's tokens folded into the batch dimension, one
    # row's after another (Krea 2's text fusion attends across the text taps token by token): a grid (one cell per
    # batch row) routes those layers' rows by the module's own batch
    folded_batches: tuple[str, ...] = ()
    # (diffusers folder, its model_index.json) -> components from_pretrained must be given because diffusers
    # cannot load them offline by itself (Qwen-Image-Edit's processor needs torchvision otherwise); None: none
    folder_components: Callable[[str, dict], dict] | None = None
    # (a single file's model_index.json, the components built so far) -> components its split files cannot hold
    # (Qwen-Image-Edit's processor, made over the tokenizer); None: none
    file_components: Callable[[dict, dict], dict] | None = None
    # settings its pipelines keep as attributes set in __init__ rather than config (HiDream's default_sample_size):
    # Generate's variant pipelines (another scheduler or mode, made by from_pipe) take the loaded pipeline's values
    pipeline_attributes: tuple[str, ...] = ()

    def aliases_for(self, component: str, model):
        """A function giving extra names for a module of ``component`` (None: no extra names)."""
        return None if self.aliases is None else self.aliases(self, component, model)

    def variant(self, mode: str, loaded: str = "") -> str:
        """The diffusers pipeline class name for one of MODES ("" when the family has none); ``loaded``: the
        class of the loaded pipeline (an edit model edits in its own class)."""
        if mode == EDIT and loaded in self.edit_models:
            return loaded
        if mode == INPAINT and self.edit_inpaint and loaded in self.edit_models:
            return self.edit_inpaint
        return {TXT2IMG: self.pipeline_classes[0], IMG2IMG: self.img2img, INPAINT: self.inpaint, EDIT: self.edit}[mode]

    def mode(self, with_image: str, loaded: str = "") -> str:
        """The mode Generate runs: ``with_image`` is what the inputs ask (TXT2IMG, IMG2IMG or INPAINT); an image
        without a mask edits on an edit model, or on a family that edits but has no img2img class."""
        if with_image == IMG2IMG and (loaded in self.edit_models or (self.edit and not self.img2img)):
            return EDIT
        return with_image

    def edits(self, class_name: str) -> bool:
        """Whether ``class_name`` is one of the family's edit classes (they read the image as a PIL image)."""
        return bool(class_name) and class_name in (self.edit, *self.edit_models, self.edit_inpaint)

    @property
    def classes(self) -> tuple[str, ...]:
        """Every diffusers pipeline class of the family (text-to-image ones first)."""
        found = (*self.pipeline_classes, self.img2img, self.inpaint, self.edit, *self.edit_models, self.edit_inpaint)
        return tuple(dict.fromkeys(c for c in found if c))

    def pixel_multiple(self, pipe) -> int:
        """Image sides must be multiples of this (8 on SD/SDXL, 16 on SD3 and Flux)."""
        patch = self.patch
        if isinstance(patch, str):
            patch = getattr(getattr(pipe, self.denoiser).config, patch, 1)
        if isinstance(patch, (tuple, list)):  # a video transformer's (frames, height, width) patch
            patch = patch[-1]
        scale = getattr(pipe, "vae_scale_factor", None) or getattr(pipe, "vae_scale_factor_spatial", 8)
        return int(scale) * int(patch)

    @cached_property  # asked on every strength change: kept (the row is frozen; a replace() is a new row)
    def denoisers(self) -> tuple[str, ...]:
        """The denoiser and its experts (one component for every family but Wan 2.2's)."""
        return (self.denoiser, *self.experts)

    @cached_property
    def components(self) -> tuple[str, ...]:
        return (*self.denoisers, *self.text_encoders)

    def group_of(self, component: str) -> str:
        return MODEL_GROUP if component in self.denoisers else CLIP_GROUP

    def labels_for(self, components) -> dict[str, str]:
        """component -> its display label when ``components`` (those loaded) hold an expert, else {}."""
        return dict(self.labels) if set(self.experts) & set(components) else {}
