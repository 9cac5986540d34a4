"""Decode and preprocess images once per run: a uint8 cache of resized, centre-cropped images.

Every child of a noisy ensemble sees the same images, and decoding JPEGs is the cost on most
machines. So the geometric part of the preprocessing (resize, centre crop) runs once, in
DataLoader workers, into one uint8 file of shape (N, 3, crop, crop); the file is
memory-mapped (the OS keeps it in RAM when it fits; 50k ImageNet images at 224 are 7.5 GB)
and a run reads its tensors from it. Scaling to [0, 1] and the mean/std normalisation run
inside the model (:class:`Normalize`), on the model's device, so a batch travels to the GPU
as uint8 (4× less than float).

The cache is exactly what the weights' ``transforms()`` computes before ``convert_image_dtype``
and ``normalize``: PIL resize (with antialiasing), centre crop, ``pil_to_tensor``.

Examples:
    >>> p = Preprocess.paper()
    >>> (p.resize, p.crop, p.source)
    (256, 224, 'paper')
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from ..errors import UserError
from ..run_folder import atomic_write, write_json

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocess:
    """Resize the shorter side to ``resize``, centre-crop ``crop``, normalise with mean/std."""

    resize: int
    crop: int
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    interpolation: str = "bilinear"
    source: str = "paper"

    @classmethod
    def paper(cls) -> Preprocess:
        """The paper's ImageNet preprocessing: resize 256, centre crop 224, ImageNet mean/std."""
        return cls(256, 224)

    @classmethod
    def from_weights(cls, weights: Any, source: str = "weights") -> Preprocess:
        """The preprocessing of torchvision ``weights.transforms()`` (an ImageClassification)."""
        t = weights.transforms()
        return cls(int(t.resize_size[0]), int(t.crop_size[0]), tuple(float(m) for m in t.mean),
                   tuple(float(s) for s in t.std), t.interpolation.value, source)

    def geometric(self):
        """PIL image → uint8 tensor (3, crop, crop): the part of the preprocessing cached."""
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms import functional as F

        mode = InterpolationMode(self.interpolation)

        def apply(img):
            img = F.center_crop(F.resize(img.convert("RGB"), [self.resize], interpolation=mode, antialias=True),
                                [self.crop])
            return F.pil_to_tensor(img)

        return apply

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Normalize(nn.Module):
    """uint8 images → float in [0, 1] → (x − mean) / std, then ``net``; on the model's device.

    Examples:
        >>> m = Normalize(nn.Flatten(), mean=(0.5,), std=(0.5,))
        >>> m(torch.full((1, 1, 1, 2), 255, dtype=torch.uint8))
        tensor([[1., 1.]])
    """

    mean: torch.Tensor  # buffers, registered in __init__
    std: torch.Tensor

    def __init__(self, net: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = x.float().div_(255)
        return self.net((x - self.mean) / self.std)


class _Files(torch.utils.data.Dataset):
    def __init__(self, files: Sequence[Path], transform) -> None:
        self.files, self.transform = list(files), transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | str]:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(self.files[i]) as img:
                return i, self.transform(img)
        except (OSError, UnidentifiedImageError) as e:  # raised here it would reach the user as a
            return i, str(e)                              # worker traceback: the main process says it


def _as_list(batch: list) -> list:
    return batch


def cache_key(files: Sequence[Path], preprocess: Preprocess) -> str:
    """What a cache holds: these files (by name, in order) under this resize, crop and
    interpolation (normalisation is not cached, so models that differ only there share it)."""
    geometry = {"resize": preprocess.resize, "crop": preprocess.crop, "interpolation": preprocess.interpolation}
    h = hashlib.sha256(json.dumps(geometry, sort_keys=True).encode())
    for f in files:
        h.update(f.name.encode() + b"\n")
    return h.hexdigest()[:24]


def cached_images(files: Sequence[Path], preprocess: Preprocess, cache_dir: str | os.PathLike, *,
                  workers: int = 0, batch_size: int = 64, progress: bool = True) -> tuple[torch.Tensor, dict]:
    """uint8 (N, 3, crop, crop) images of ``files``, decoded once into ``cache_dir`` and mapped.

    Returns the tensor and a record of the cache (path, bytes, whether it was decoded now).
    A second call with the same files and preprocessing decodes nothing. The cache is
    written under a temporary name and renamed into place, so an interrupted decode leaves
    no cache that looks complete.
    """
    cache_dir = Path(cache_dir)
    key = cache_key(files, preprocess)
    path, meta_file = cache_dir / f"images-{key}.u8", cache_dir / f"images-{key}.json"
    shape = (len(files), 3, preprocess.crop, preprocess.crop)
    size = int(torch.Size(shape).numel())
    decoded = False
    if not (meta_file.is_file() and path.is_file() and path.stat().st_size == size):
        cache_dir.mkdir(parents=True, exist_ok=True)
        loader = torch.utils.data.DataLoader(_Files(files, preprocess.geometric()), batch_size=batch_size,
                                             num_workers=workers, shuffle=False, collate_fn=_as_list)
        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:
                for batch in tqdm(loader, desc="decoding images", unit="batch", disable=not progress):
                    for i, img in batch:
                        if isinstance(img, str):
                            raise UserError(f"cannot decode image {files[i]}: {img}")
                    f.write(torch.stack([img for _, img in batch]).numpy().tobytes())
                f.flush()
                os.fsync(f.fileno())

        atomic_write(path, write)
        write_json(meta_file, {"key": key, "shape": list(shape), "preprocess": preprocess.to_dict(),
                               "files": len(files)})
        decoded = True
    x = torch.from_file(str(path), shared=False, size=size, dtype=torch.uint8).view(*shape)
    return x, {"path": str(path), "bytes": size, "decoded_now": decoded,
               "storage": "uint8 file on disk, memory-mapped (held in RAM by the OS when it fits)"}


__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "Normalize", "Preprocess", "cache_key", "cached_images"]
