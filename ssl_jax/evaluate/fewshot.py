"""Few-shot linear transfer: n labelled images per class, closed-form ridge regression onto
+-1 class targets (as big_vision's few-shot evaluator), mean and std over 3 draws.

The ridge strength is chosen per draw by exact leave-one-out squared error on the n*K
training examples themselves, so the test set never picks it.
"""
import numpy as np

from ssl_jax.evaluate.transfer import run_feature_protocol
from ssl_jax.evaluate.uncertainty import Estimate

SHOTS = (1, 5, 10, 25)
SEEDS = (0, 1, 2)
RELATIVE_L2_GRID = 10.0 ** np.arange(-3, 3)  # times the mean eigenvalue of the Gram matrix


def sample_shots(labels_N, shots: int, num_classes: int, rng) -> np.ndarray:
  """Indices of `shots` examples per class (all of a class that has fewer)."""
  picked = []
  for c in range(num_classes):
    members = np.flatnonzero(labels_N == c)
    picked.append(rng.choice(members, min(shots, len(members)), replace=False))
  return np.concatenate(picked)


def ridge_classifier(x_NxD, labels_N, num_classes: int):
  """A predict(features) -> labels function; dual form, since N is small and D is not."""
  mean, std = x_NxD.mean(0), x_NxD.std(0) + 1e-6
  x_NxD = ((x_NxD - mean) / std).astype(np.float64)
  y_NxC = 2.0 * np.eye(num_classes)[labels_N] - 1.0
  y_mean_C = y_NxC.mean(0)  # unpenalised intercept (x is centred)
  eigvals_N, eigvecs_NxN = np.linalg.eigh(x_NxD @ x_NxD.T)
  eigvals_N = np.maximum(eigvals_N, 0.0)
  N = len(labels_N)
  projected_NxC = eigvecs_NxN.T @ (y_NxC - y_mean_C)
  best = None
  for l2 in RELATIVE_L2_GRID * max(eigvals_N.mean(), 1e-12):
    shrink_N = eigvals_N / (eigvals_N + l2)
    fitted_NxC = eigvecs_NxN @ (shrink_N[:, None] * projected_NxC) + y_mean_C
    hat_diag_N = np.einsum("nk,k,nk->n", eigvecs_NxN, shrink_N, eigvecs_NxN) + 1.0 / N
    loo_residual_NxC = (y_NxC - fitted_NxC) / np.maximum(1.0 - hat_diag_N, 1e-6)[:, None]
    loo_error = np.mean(loo_residual_NxC ** 2)
    if best is None or loo_error < best[0]:
      best = (loo_error, l2)
  l2 = best[1]
  alpha_NxC = eigvecs_NxN @ (projected_NxC / (eigvals_N + l2)[:, None])
  w_DxC = x_NxD.T @ alpha_NxC

  def predict(features_MxD):
    return np.argmax(((features_MxD - mean) / std) @ w_DxC + y_mean_C, -1)

  return predict


def fewshot(train_NxD, train_labels, test_MxD, test_labels, num_classes: int,
            shots=SHOTS, seeds=SEEDS) -> dict:
  out = {}
  for n in shots:
    correct_RxM = []
    for seed in seeds:
      idx = sample_shots(train_labels, n, num_classes, np.random.default_rng(seed))
      predict = ridge_classifier(train_NxD[idx], train_labels[idx], num_classes)
      correct_RxM.append(predict(test_MxD) == test_labels)
    accs = np.mean(correct_RxM, 1)
    # Per test example, the share of draws that got it right: its mean is the mean accuracy.
    out[f"top1_{n}shot"] = Estimate(np.mean(correct_RxM, 0), point=float(np.mean(accs)))
    out[f"top1_{n}shot_std"] = float(np.std(accs))
  return out


def _score(train_NxD, test_MxD, transfer, options) -> dict:
  return fewshot(train_NxD, transfer.train.labels, test_MxD, transfer.test.labels,
                 transfer.num_classes, seeds=tuple(options.seed + s for s in SEEDS))


def run(run, options) -> dict:
  return run_feature_protocol(run, options, _score)
