"""The classical references of the progression targets: sparse, penalty from validation (or inner CV)."""
from __future__ import annotations

import numpy as np

from rgenima_app.progression.classical import fit_conversion, fit_delta_regression


def data(seed=0, n=400, m=50):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, m))
    delta = 1.0 + 0.8 * x[:, 2] - 0.5 * x[:, 30] + rng.normal(0, 0.5, n)
    return x, delta, [f"f{j}" for j in range(m)]


def test_delta_regression_keeps_the_informative_features_and_predicts_well():
    x, delta, names = data()
    fit = fit_delta_regression(x[:250], delta[:250], x[250:325], delta[250:325], x[325:], names, seed=0)
    assert fit.kept[:2] == ["f2", "f30"] and len(fit.kept) < 20          # sparse
    rmse = np.sqrt(np.mean((fit.prediction - delta[325:]) ** 2))
    mean_rmse = np.sqrt(np.mean((delta[:250].mean() - delta[325:]) ** 2))
    assert rmse < 0.6 < mean_rmse                                        # noise SD 0.5; the mean is far worse
    no_validation = fit_delta_regression(x[:250], delta[:250], np.zeros((0, x.shape[1])), [], x[325:], names, seed=0)
    assert no_validation.kept[:2] == ["f2", "f30"]
    assert fit.to_dict()["n_nonzero"] == len(fit.kept)


def test_delta_regression_on_noise_falls_back_to_the_training_mean():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(200, 30)), rng.normal(2.0, 1.0, 200)
    fit = fit_delta_regression(x[:120], y[:120], x[120:160], y[120:160], x[160:], [str(j) for j in range(30)], seed=0)
    assert len(fit.kept) <= 3
    assert np.abs(fit.prediction - y[:120].mean()).max() < 0.3


def test_conversion_probability_is_of_converting():
    x, delta, names = data(seed=2)
    converted = delta > 1.5
    probability, fit = fit_conversion(x[:250], converted[:250], x[250:325], converted[250:325], x[325:], names, seed=0)
    assert probability.shape == (75,) and ((0 <= probability) & (probability <= 1)).all()
    assert probability[converted[325:]].mean() > probability[~converted[325:]].mean() + 0.3
    assert fit.kept[0] in ("f2", "f30")
