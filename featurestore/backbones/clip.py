"""CLIP image encoders (OpenAI ViT-B/32 and ViT-L/14) through open_clip, as frame embedders.

The image tower is open_clip's ``VisionTransformer`` built from its model config
(``ViT-B-32-quickgelu``, ``ViT-L-14-quickgelu``: the OpenAI weights were trained with QuickGELU)
by ``open_clip.model._build_vision_tower``, without the text tower; avscene loads the ``visual.``
keys of the weight file itself. The official files are open_clip's state dicts of the
``openai`` pretrained tag (Hugging Face ``timm/vit_base_patch32_clip_224.openai`` and
``timm/vit_large_patch14_clip_224.openai``: ``open_clip_pytorch_model.bin`` or
``open_clip_model.safetensors``); OpenAI's own ``.pt`` files are TorchScript archives and are
refused. The embedding is the tower's output, ``encode_image`` without normalisation (512 and
768 values). Preprocessing, open_clip's for these weights: short side to 224 (bicubic,
antialiased), centre crop 224, OpenAI mean and std.
"""

from dataclasses import dataclass

from featurestore.backbones import weight_files
from featurestore.backbones.image_transforms import BICUBIC
from featurestore.netcache import cached_network

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class ClipModel:
    config: str
    dim: int
    image_size: int
    hub: str

    def preprocessing(self):
        return {
            "resize": self.image_size,
            "crop": self.image_size,
            "interpolation": BICUBIC,
            "mean": list(OPENAI_MEAN),
            "std": list(OPENAI_STD),
            "keep_ratio": True,
        }


MODELS = {
    "clip_vit_b32": ClipModel(
        "ViT-B-32-quickgelu", 512, 224, "timm/vit_base_patch32_clip_224.openai"
    ),
    "clip_vit_l14": ClipModel(
        "ViT-L-14-quickgelu", 768, 224, "timm/vit_large_patch14_clip_224.openai"
    ),
}


def build_visual(name):
    """open_clip's image tower of model ``name`` with random initial weights (eval mode)."""
    import open_clip
    from open_clip.model import CLIPVisionCfg, _build_vision_tower

    config = open_clip.get_model_config(MODELS[name].config)
    return _build_vision_tower(
        config["embed_dim"],
        CLIPVisionCfg(**config["vision_cfg"]),
        quick_gelu=config.get("quick_gelu", False),
    ).eval()


def visual_state(state):
    """The image tower's keys of a CLIP state dict, ``visual.`` prefix removed."""
    return {
        key[len("visual.") :]: value for key, value in state.items() if key.startswith("visual.")
    }


def write_random(name, path, *, seed):
    """RANDOM weights of the image tower in open_clip's layout (``visual.*`` keys only)."""
    template = {"visual." + key: value for key, value in build_visual(name).state_dict().items()}
    return weight_files.write_random(path, template, seed=seed, what=f"open_clip {name}")


def load_state(name, path):
    """``(visual state dict checked against the tower, random seed)``."""
    state, seed, _ = weight_files.unwrap(weight_files.read_checkpoint(path), path)
    shapes = {key: tuple(value.shape) for key, value in build_visual(name).state_dict().items()}
    visual = weight_files.check_state(
        visual_state(state), shapes, path, what=f"CLIP {MODELS[name].config} image tower"
    )
    return visual, seed


def load_network(name, path, *, device, dtype="float32"):
    """Load (cached per process) the image tower of ``name`` from ``path`` on ``device``.

    ``dtype="bfloat16"`` converts the weights to bfloat16 (the input is converted too) instead
    of running under autocast, which was slower than float32 for these towers
    (docs/benchmarks.md).
    """
    import torch

    device = torch.device(device)

    def make():
        state, seed = load_state(name, path)
        weight_files.warn_random(f"open_clip {name}", path, seed)
        net = build_visual(name)
        net.load_state_dict(state)
        net = net.eval().requires_grad_(False).to(device)
        return net.to(torch.bfloat16) if dtype == "bfloat16" else net

    return cached_network(path, ("clip", name, str(device), dtype), make)
