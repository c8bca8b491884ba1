import pytest
import torch
from sklearn.linear_model import LogisticRegression

from study.evaluate import knn_accuracy, linear_probe


def _blobs(n_per=100, d=16, classes=4, spread=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, d, generator=g) * 3
    y = torch.arange(classes).repeat_interleave(n_per)
    x = centres[y] + spread * torch.randn(len(y), d, generator=g)
    return x, y


def test_linear_probe_separable_data_is_perfect():
    x, y = _blobs(spread=0.1)
    xt, yt = _blobs(spread=0.1, seed=0)
    assert linear_probe(x, y, xt, yt, 4) == 1.0


def test_linear_probe_matches_sklearn_on_noisy_data():
    x, y = _blobs(spread=4.0, seed=1)
    g = torch.Generator().manual_seed(2)
    # test set from the same centres, fresh noise
    centres_x, _ = _blobs(n_per=1, spread=0.0, seed=1)
    yt = torch.arange(4).repeat_interleave(200)
    xt = centres_x[yt] + 4.0 * torch.randn(len(yt), 16, generator=g)
    ours = linear_probe(x, y, xt, yt, 4, l2=(1e-4,), max_iter=200)
    ref = LogisticRegression(max_iter=2000).fit(x.numpy(), y.numpy()).score(xt.numpy(), yt.numpy())
    assert 0.4 < ours < 1.0 and ours == pytest.approx(ref, abs=0.05)


def test_knn_known_answer():
    train = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    train_y = torch.tensor([0, 0, 1, 1])
    test = torch.tensor([[2.0, 0.1], [0.2, 3.0], [1.0, 0.8]])
    test_y = torch.tensor([0, 1, 1])
    # k = 2: nearest two of each query are the two of its class; the third query is labelled 0
    assert knn_accuracy(train, train_y, test, test_y, 2, k=2) == pytest.approx(2 / 3)
    # k larger than the bank is clipped, and temperature weights the closer class more
    assert knn_accuracy(train, train_y, test[:2], test_y[:2], 2, k=200, temperature=0.1) == 1.0


def test_knn_chunks_agree():
    x, y = _blobs(spread=3.0)
    assert knn_accuracy(x, y, x, y, 4, k=20, chunk=7) == knn_accuracy(x, y, x, y, 4, k=20, chunk=1000)


def test_probe_chooses_the_penalty_on_held_out_train_data():
    # 90 % of the train split is class 0; a crushing penalty leaves only the bias, i.e. "always 0"
    g = torch.Generator().manual_seed(3)
    y = (torch.arange(400) % 10 == 0).long()
    x = torch.randn(400, 8, generator=g) + 4.0 * y.view(-1, 1)
    yt = torch.arange(200) % 2
    xt = torch.randn(200, 8, generator=g) + 4.0 * yt.view(-1, 1)
    crushed = linear_probe(x, y, xt, yt, 2, l2=(1e4,))
    good = linear_probe(x, y, xt, yt, 2, l2=(1e-4,))
    assert crushed == 0.5 and good > 0.95
    assert linear_probe(x, y, xt, yt, 2, l2=(1e4, 1e-4)) == good
    assert linear_probe(x, y, xt, yt, 2, l2=(1e-4, 1e4)) == good
