"""LightningDataModules. They know nothing of GANs: each yields ``(samples, labels)`` or ``(samples,)``."""

from lightning_gan.data.tensors import BatchedTensorDataset, TensorDataModule, collate_batch, uint8_to_signed_unit

__all__ = ["BatchedTensorDataset", "TensorDataModule", "collate_batch", "uint8_to_signed_unit"]
