"""examples/likelihood_vs_samples.py: the table's orderings hold, it prints, and it draws the PNG."""

from __future__ import annotations

import importlib.util
import math
import sys

import pytest
from example_runner import EXAMPLES
from PIL import Image


@pytest.fixture(scope="module")
def example():
    path = EXAMPLES / "likelihood_vs_samples.py"
    spec = importlib.util.spec_from_file_location("likelihood_vs_samples_example", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


@pytest.fixture(scope="module")
def table(example, tmp_path_factory):
    # Fewer steps and samples than the script's defaults (2000 steps, 10,000 samples), to keep the test short.
    # 600 steps: at 300 the GAN put 2-19% of its samples on a mode depending on the seed (seeds 0-3), too
    # close to the noise model's 1.5-2%; at 600 it puts 17-58% there for each of those seeds.
    out = tmp_path_factory.mktemp("plot") / "panels.png"
    rows = example.run(steps=600, n_train=5000, n_eval=4000, seed=0, out=out, ais_steps=50, ais_points=64)
    return {row.model.split(" ")[0]: row for row in rows}, out, rows


def test_the_memoriser_has_the_best_samples_and_the_worst_likelihood(table):
    rows, _, _ = table
    truth, gan, memoriser, noise = rows["data"], rows["GAN"], rows["memoriser"], rows["0.01"]
    # Samples: as good as the data's own, better than the GAN's and the noise model's.
    assert memoriser.sample_quality == pytest.approx(truth.sample_quality, abs=0.2)
    assert memoriser.sample_quality > gan.sample_quality and memoriser.sample_quality > noise.sample_quality
    # Likelihood: the worst of all, exact, and far below the truth's...
    assert memoriser.exact_log_likelihood < noise.exact_log_likelihood
    assert memoriser.exact_log_likelihood < gan.parzen_log_likelihood
    assert memoriser.exact_log_likelihood < truth.exact_log_likelihood - 10
    # ...while the Parzen estimate from its samples cannot tell it from the truth: it measures the samples.
    assert memoriser.parzen_log_likelihood == pytest.approx(truth.parzen_log_likelihood, abs=0.3)


def test_the_noise_model_has_a_good_likelihood_and_the_worst_samples(table):
    rows, _, _ = table
    truth, gan, memoriser, noise = rows["data"], rows["GAN"], rows["memoriser"], rows["0.01"]
    assert truth.exact_log_likelihood - math.log(100) <= noise.exact_log_likelihood < truth.exact_log_likelihood
    assert noise.sample_quality < gan.sample_quality - 100 and noise.sample_quality < memoriser.sample_quality - 100
    assert noise.on_a_mode < 0.05 and gan.on_a_mode > 5 * noise.on_a_mode
    assert gan.exact_log_likelihood is None  # a GAN has no density: estimates only


def test_the_gans_ais_estimate_is_a_likelihood_no_model_can_beat_by_much(table):
    rows, _, _ = table
    truth, gan = rows["data"], rows["GAN"]
    # E_p[log q] <= E_p[log p] for every model q, and AIS is a lower bound of log q: the GAN's AIS number cannot
    # exceed the truth's exact held-out likelihood beyond Monte Carlo noise.
    assert math.isfinite(gan.ais_log_likelihood) and gan.ais_stderr > 0
    assert gan.ais_log_likelihood < truth.exact_log_likelihood + 3 * gan.ais_stderr
    assert gan.ais_sigma in example_sigmas() and abs(gan.bdmc_gap) < 1.0  # the schedule is long enough here
    assert all(r.ais_log_likelihood is None for r in rows.values() if r is not gan)


def example_sigmas() -> list[float]:
    return [float(s) for s in sys.modules["likelihood_vs_samples_example"].AIS_SIGMAS]


def test_the_table_is_printed_and_the_panels_drawn(example, table):
    _, out, rows = table
    text = example.format_table(rows)
    assert len(text.splitlines()) == 2 + len(rows)
    assert "(AIS, s=" in text and "(exact)" in text and "memoriser" in text and "0.01 p + 0.99 noise" in text
    with Image.open(out) as image:
        assert image.format == "PNG" and image.width > 3 * image.height  # four panels side by side
