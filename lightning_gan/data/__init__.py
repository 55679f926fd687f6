"""LightningDataModules. They know nothing of GANs: each yields ``(samples, labels)`` or ``(samples,)``."""

from lightning_gan.data.folder import IMAGE_EXTENSIONS, ImageFolderDataModule
from lightning_gan.data.mnist import CIFAR10DataModule, DataNotAvailableError, FashionMNISTDataModule, MNISTDataModule
from lightning_gan.data.resumable import ResumableDataLoader, SeededShuffling, resumable_loader
from lightning_gan.data.sharding import FixedOrderShards, shard_bounds
from lightning_gan.data.stacked_mnist import STACKED_MNIST_MODES, StackedMNISTDataModule, stack_digits
from lightning_gan.data.tensors import (
    BatchedTensorDataset,
    TensorDataModule,
    collate_batch,
    tensor_loader,
    uint8_to_signed_unit,
)
from lightning_gan.data.toy import TOY_DISTRIBUTIONS, GaussianMixture2D, ToyDataModule, grid25, ring8, spiral

__all__ = [
    "MNISTDataModule",
    "FashionMNISTDataModule",
    "CIFAR10DataModule",
    "StackedMNISTDataModule",
    "STACKED_MNIST_MODES",
    "stack_digits",
    "DataNotAvailableError",
    "ImageFolderDataModule",
    "IMAGE_EXTENSIONS",
    "TensorDataModule",
    "BatchedTensorDataset",
    "collate_batch",
    "tensor_loader",
    "uint8_to_signed_unit",
    "ToyDataModule",
    "GaussianMixture2D",
    "TOY_DISTRIBUTIONS",
    "ring8",
    "grid25",
    "spiral",
    "ResumableDataLoader",
    "resumable_loader",
    "SeededShuffling",
    "FixedOrderShards",
    "shard_bounds",
]
