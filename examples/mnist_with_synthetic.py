"""The usual PyTorch MNIST script, trained on synthetic or real + synthetic digits.

Only the lines that build the data sets differ from torchvision's MNIST example: a
``SyntheticMNIST(output="pil")`` yields exactly what ``torchvision.datasets.MNIST`` yields
(a 28x28 PIL image of mode 'L' and an int), so the transforms, the model and the loop stay.
The real digits are ``RealMNIST(output="pil")``, the same items read from the files wherever
``augment data fetch`` put them (flat or ``MNIST/raw``, raw or gzipped; ``$AUGMENT_DATA``, else
``~/.cache/augment/mnist``), where ``datasets.MNIST(root)`` wants ``root/MNIST/raw``.

    augment data fetch && python examples/mnist_with_synthetic.py --mode mixed --epochs 1
"""

import argparse
import sys

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from torchvision import transforms

from augment import BatchedConcatDataset, RealMNIST, SyntheticMNIST
from augment.errors import AugmentError


class Net(nn.Module):  # the model of PyTorch's MNIST example
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 32, 3, 1), nn.Conv2d(32, 64, 3, 1)
        self.dropout1, self.dropout2 = nn.Dropout(0.25), nn.Dropout(0.5)
        self.fc1, self.fc2 = nn.Linear(9216, 128), nn.Linear(128, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv2(F.relu(self.conv1(x)))), 2)
        x = torch.flatten(self.dropout1(x), 1)
        return F.log_softmax(self.fc2(self.dropout2(F.relu(self.fc1(x)))), dim=1)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", "--mnist-root", default=None,
                   help="MNIST's IDX files, flat or in MNIST/raw (default: $AUGMENT_DATA, else ~/.cache/augment/mnist)")
    p.add_argument("--dataset", choices=["mnist", "idx"], default="mnist",
                   help="'mnist': MNIST's checksummed files (this script's net is MNIST's); 'idx': any IDX pair")
    p.add_argument("--mode", choices=["synthetic", "mixed", "real"], default="mixed")
    p.add_argument("--synthetic", type=int, default=60000, help="synthetic images")
    p.add_argument("--generator", default=None, help="a generator file (default: the shipped one)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--max-batches", type=int, default=None, help="stop each epoch early (a quick check)")
    p.add_argument("--num-workers", type=int, default=2)
    args = p.parse_args(argv)
    torch.manual_seed(1)
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    # datasets.MNIST's items, from MNIST's checksummed files unless --dataset idx
    real = RealMNIST(args.data_dir, train=True, dataset=args.dataset, output="pil", transform=transform)
    synthetic = SyntheticMNIST(args.generator, num_samples=args.synthetic, output="pil", transform=transform)
    train_set = {"synthetic": synthetic, "mixed": BatchedConcatDataset([real, synthetic]), "real": real}[args.mode]
    test_set = RealMNIST(args.data_dir, train=False, dataset=args.dataset, output="pil", transform=transform)
    train_loader = DataLoader(train_set, batch_size=64, shuffle=True, num_workers=args.num_workers)
    test_loader = DataLoader(test_set, batch_size=1000)
    model = Net()
    optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
    for epoch in range(1, args.epochs + 1):
        model.train()
        for batch, (data, target) in enumerate(train_loader):
            if args.max_batches is not None and batch >= args.max_batches:
                break
            optimizer.zero_grad()
            F.nll_loss(model(data), target).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in test_loader)
        print(f"epoch {epoch}: {args.mode} training set of {len(train_set)} images, "
              f"test accuracy {100 * correct / len(test_set):.2f}%")


if __name__ == "__main__":
    try:
        main()
    except AugmentError as e:  # no data, a bad generator file: one line, as the CLI says it
        sys.exit(f"Error: {e}")
