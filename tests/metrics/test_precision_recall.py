"""PrecisionRecall: against torch-fidelity (VGG16 features of images, and raw features), the paper's formula.

VGG16's ImageNet weights cannot be downloaded here: a randomly initialised, He-scaled state dict stands
in (random_vgg.py). The multi-process case is tested in test_kid.py (ddp_feature_metrics_script.py).
"""

from __future__ import annotations


import numpy as np
import pytest
import torch
from fidelity_inputs import UInt8Images, structured_images
from random_vgg import save_random_vgg16_weights

from lightning_gan.metrics.features import FeatureExtractor
from lightning_gan.metrics.precision_recall import PrecisionRecall, knn_radii, precision_recall


def features(n: int, d: int, seed: int, scale: float = 1.0, shift: float = 0.0) -> torch.Tensor:
    return scale * torch.randn(n, d, generator=torch.Generator().manual_seed(seed)) + shift


def test_matches_torch_fidelity_with_vgg16_on_the_same_images(tmp_path, monkeypatch):
    import torch_fidelity
    from torch_fidelity.feature_extractor_vgg16 import FeatureExtractorVGG16

    # VGG16 at 224 x 224 costs ~0.5 s per image on one core; both pipelines read the resize target from
    # this class attribute, and VGG16's adaptive pooling takes any size from 32, so at 32 x 32 the
    # comparison is exact (same network, resize code and layer) at a 49th of the convolution cost.
    monkeypatch.setattr(FeatureExtractorVGG16, "INPUT_IMAGE_SIZE", 32)
    weights = save_random_vgg16_weights(tmp_path / "random-vgg16.pth")
    generated = torch.cat([structured_images(60, "ramp", 1), structured_images(20, "board", 3)])
    real = torch.cat([structured_images(40, "board", 2), structured_images(40, "ramp", 4)])

    reference = torch_fidelity.calculate_metrics(
        input1=UInt8Images(generated), input2=UInt8Images(real), prc=True, feature_extractor="vgg16",
        feature_extractor_weights_path=str(weights), cuda=False, verbose=False, cache=False, batch_size=80,
        save_cpu_ram=True,
    )
    extractor = FeatureExtractor("vgg16", weights_path=weights)
    assert extractor.layers == ("fc2_relu",)
    metric = PrecisionRecall(k=3)
    for images, is_real in ((generated, False), (real, True)):
        for part in extractor(images)["fc2_relu"].split(25):
            metric.update(part, real=is_real)
    result = metric.compute()
    print(f"ours { {k: v.item() for k, v in result.items()} }; torch-fidelity {reference}")
    assert 0 < reference["precision"] < 1 and 0 < reference["recall"] < 1
    for key in ("precision", "recall", "f_score"):
        assert result[key].dtype == torch.float64
        assert abs(result[key].item() - reference[key]) < 1e-6, key  # torch-fidelity's are float32 fractions


@pytest.mark.parametrize("k, batch_size", [(3, 10000), (3, 17), (5, 40), (1, 7)])
def test_equals_torch_fidelity_on_the_same_features(k, batch_size):
    from torch_fidelity.metric_prc import calculate_precision_recall_full, calculate_precision_recall_part

    fake, real = features(90, 12, 0, shift=0.8), features(110, 12, 1)
    metric = PrecisionRecall(k=k, batch_size=batch_size)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    result = metric.compute()
    assert 0.05 < result["precision"].item() < 0.95 and 0.05 < result["recall"].item() < 0.95
    for reference_fn in (calculate_precision_recall_full, calculate_precision_recall_part):
        precision, recall = reference_fn(fake, real, neighborhood=k, batch_size=batch_size)
        assert abs(result["precision"].item() - precision) < 1e-6
        assert abs(result["recall"].item() - recall) < 1e-6


def numpy_precision_recall(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[float, float]:
    """Kynkäänniemi et al. (2019), Alg. 1, in float64 NumPy: balls to the k-th nearest *other* point."""

    def distances(a, b):
        return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))

    def radii(x):
        d = distances(x, x)
        np.fill_diagonal(d, np.inf)  # the point itself is not its own neighbour
        return np.sort(d, axis=1)[:, k - 1]

    cross = distances(real, fake)  # (n_real, n_fake)
    precision = np.mean((cross <= radii(real)[:, None]).any(axis=0))
    recall = np.mean((cross <= radii(fake)[None, :]).any(axis=1))
    return float(precision), float(recall)


@pytest.mark.parametrize("k", [1, 3, 4])
def test_matches_a_numpy_reference_of_the_formula(k):
    fake, real = features(70, 6, 2, scale=0.6, shift=0.4), features(80, 6, 3)
    precision, recall = precision_recall(real, fake, k=k, batch_size=23)
    ref_precision, ref_recall = numpy_precision_recall(real.double().numpy(), fake.double().numpy(), k)
    assert abs(precision.item() - ref_precision) < 1e-6 and abs(recall.item() - ref_recall) < 1e-6


def test_radii_are_the_kth_neighbour_without_the_point_itself():
    points = torch.tensor([[0.0], [1.0], [3.0], [7.0]])
    assert torch.equal(knn_radii(points, k=1), torch.tensor([1.0, 1.0, 2.0, 4.0]))
    assert torch.equal(knn_radii(points, k=2, batch_size=3), torch.tensor([3.0, 2.0, 3.0, 6.0]))
    with pytest.raises(ValueError, match="more than k = 4"):
        knn_radii(points, k=4)


def test_identical_sets_give_one_and_disjoint_sets_zero():
    x = features(50, 4, 0)
    same = precision_recall(x, x.clone(), k=3)
    assert same == (1.0, 1.0)
    far = precision_recall(x, x + 100.0, k=3)
    assert far == (0.0, 0.0)


def test_errors_and_fixed_real_features():
    metric = PrecisionRecall(k=3)
    metric.update(features(3, 4, 0), real=True)
    metric.update(features(10, 4, 1), real=False)
    with pytest.raises(ValueError, match="more than 3 samples per set, got 3 real and 10 generated"):
        metric.compute()

    metric = PrecisionRecall(k=3)
    bad = features(10, 4, 0)
    bad[0, 0] = float("nan")
    metric.update(bad, real=True)
    metric.update(features(10, 4, 1), real=False)
    with pytest.raises(ValueError, match="1 real feature vector"):
        metric.compute()

    real, fake = features(60, 4, 2), features(50, 4, 3, shift=0.5)
    metric = PrecisionRecall(k=3)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    expected = metric.compute()
    metric.reset()
    with pytest.raises(ValueError, match="finite"):
        metric.set_real_features(bad)
    metric.set_real_features(real)
    metric.update(fake, real=False)
    assert metric.compute() == expected
    metric.reset()  # the fixed real set survives
    metric.update(fake, real=False)
    assert metric.compute() == expected
