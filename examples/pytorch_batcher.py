"""The seed README's example, made runnable offline: images -> model on 2 threads -> classes.

Unchanged from the seed except where it reached the network: the images are generated and
saved to a temporary folder instead of downloaded, and the model is a small network defined
here instead of ``torch.hub.load`` (nothing is downloaded at run time). Needs the optional
extra ``pipeline_executor[torch]``.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from pipeline_executor import PipelineTask, execute

IMAGE_SHAPE = (32, 32, 3)
NUM_IMAGES = 24


def build_model(model_source: str, model_name: str) -> torch.nn.Module:
    """Stands in for ``torch.hub.load(model_source, model_name)``: a tiny classifier."""
    del model_source
    torch.manual_seed(len(model_name))  # pyright: ignore[reportUnknownMemberType]
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, kernel_size=3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 2),
    )
    return model.eval()


def run_model(
    img_data: Iterable[np.ndarray], model_source: str, model_name: str
) -> Iterable[np.ndarray]:
    model = build_model(model_source, model_name)
    for img in img_data:
        batch = torch.from_numpy(img)  # pyright: ignore[reportUnknownMemberType]
        batch = batch.permute(2, 0, 1).unsqueeze(0).float() / 255.0
        with torch.no_grad():
            results = model(batch)
        yield results.squeeze(0).softmax(0).numpy()


def load_images(imgs: list[str]) -> Iterable[np.ndarray]:
    for img in imgs:
        yield np.load(img)


def remap_results(
    model_results: Iterable[np.ndarray], classmap: dict[int, str]
) -> Iterable[tuple[str, float]]:
    for result in model_results:
        result_class_idx = int(np.argmax(result))
        result_confidence = float(result[result_class_idx])
        result_class = classmap[result_class_idx]
        yield (result_class, result_confidence)


def aggregate_results(classes: Iterable[tuple[str, float]]) -> None:
    results = list(classes)
    class_stats = Counter(clas for clas, _conf in results)
    print(f"classified {len(results)} images: {dict(sorted(class_stats.items()))}")


def make_images(folder: Path) -> list[str]:
    """Instead of downloading: random images saved as .npy files."""
    rng = np.random.default_rng(0)
    paths: list[str] = []
    for i in range(NUM_IMAGES):
        path = folder / f"img{i}.npy"
        np.save(path, rng.integers(0, 256, size=IMAGE_SHAPE, dtype=np.uint8))
        paths.append(str(path))
    return paths


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        imgs = make_images(Path(folder))
        execute(
            tasks=[
                PipelineTask(
                    load_images,
                    constants={
                        "imgs": imgs,
                    },
                    packets_in_flight=2,
                ),
                PipelineTask(
                    run_model,
                    constants={
                        "model_name": "tiny",
                        "model_source": "local",
                    },
                    packets_in_flight=4,
                    num_threads=2,
                ),
                PipelineTask(
                    remap_results,
                    constants={
                        "classmap": {
                            0: "cat",
                            1: "dog",
                        }
                    },
                ),
                PipelineTask(aggregate_results),
            ]
        )


if __name__ == "__main__":
    main()
