"""biofa.data as an extension point: the DataSource contract, the registry, subsets and splits."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import sys
import types

import numpy as np
import pytest
import torch

import biofa.data as bd
from biofa.data import DataSource, InMemoryDataSet, registry


def sha(t: torch.Tensor) -> str:
    return hashlib.sha256(t.contiguous().cpu().numpy().tobytes()).hexdigest()[:16]


@pytest.fixture
def reg(monkeypatch):
    """The registry, restored after the test."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    return registry


@pytest.fixture(scope="module")
def digits() -> InMemoryDataSet:
    return bd.load("digits")


def blobs(root: str = "", n_train: int = 90, n_test: int = 30, classes: int = 3):
    """Gaussian blobs of 2x3x3 float images, ``classes`` classes in the proportions 1:2:3..."""
    g = torch.Generator().manual_seed(0)
    centres = 2 * torch.randn(classes, 2, 3, 3, generator=g)
    weights = torch.arange(1, classes + 1, dtype=torch.float64)

    def draw(n):
        y = torch.multinomial(weights, n, replacement=True, generator=g)
        return centres[y] + torch.randn(n, 2, 3, 3, generator=g), y

    (train_x, train_y), (test_x, test_y) = draw(n_train), draw(n_test)
    return InMemoryDataSet.from_tensors("blobs", train_x, train_y, test_x, test_y,
                                        [f"c{k}" for k in range(classes)])


def _all(it):
    xs, ys = zip(*it, strict=True)
    return torch.cat(xs), torch.cat(ys)


# ------------------------------------------------------------------- same numbers as before
def _identity_set() -> InMemoryDataSet:
    """Normalisation with mean 0 and std 1 is exact, so batches show the raw crops/flips."""
    g = torch.Generator().manual_seed(123)
    x = torch.randint(0, 256, (50, 2, 5, 6), generator=g).float()
    y = torch.arange(50) % 5
    return InMemoryDataSet("ident", x, y, x[:9].clone(), y[:9].clone(), tuple("abcde"),
                           (0.0, 0.0), (1.0, 1.0))


# Fingerprints computed with the implementation before DataSource (commit 48c183d,
# biofa/data/memory.py: train_batches/test_batches as module functions): for each call, the
# SHA-256 (first 16 hex digits) of the concatenated labels and of the concatenated images.
IDENTITY_FINGERPRINTS = [
    (dict(seed=0, epoch=0), "ff289bd53343759a", "47bf284a8e0a6097"),
    (dict(seed=7, epoch=3, augment=True), "7b8f06ec845a96e3", "2d71ad50e8fc2de9"),
    (dict(seed=7, epoch=3, augment=True, start_batch=2, drop_last=True),
     "353438226db5f74e", "ea546bd9a88901a1"),
]


@pytest.mark.parametrize(("kw", "labels", "images"), IDENTITY_FINGERPRINTS)
def test_permutation_and_augmentation_are_bit_identical_to_before(kw, labels, images):
    x, y = _all(_identity_set().train_batches(8, **kw))
    assert sha(y) == labels and sha(x) == images


def test_digits_batches_and_statistics_match_the_previous_implementation(digits):
    # computed with commit 48c183d: labels' SHA-256 and float64 sums of the first 3 batches of 64
    for kw, labels, total, squares in [
        (dict(seed=0, epoch=0), "a51f03b232fc4327", -18.696448504924774, 12339.039859627912),
        (dict(seed=3, epoch=2, augment=True), "939ee00f682de7e7", -3863.9986710697412,
         10883.081614293551),
    ]:
        batches = list(digits.train_batches(64, **kw))[:3]
        x, y = _all(batches)
        assert sha(y) == labels
        assert math.isclose(x.double().sum().item(), total, rel_tol=1e-9)
        assert math.isclose(x.double().square().sum().item(), squares, rel_tol=1e-9)
    xt = _all(digits.test_batches(100))[0].double()
    assert math.isclose(xt.sum().item(), -138.2936434596777, rel_tol=1e-9)
    assert math.isclose(xt.abs().sum().item(), 20443.216584935784, rel_tol=1e-9)
    assert digits.mean == (0.30571299256263046,) and digits.std == (0.376482103684685,)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_normalisation_is_the_previous_affine_map_exactly(dtype):
    x = torch.randint(0, 256, (20, 3, 4, 4)).to(dtype)
    mean, std = (0.1, 0.5, 0.9), (0.2, 0.0, 0.3)  # a constant channel: std clamped
    ds = InMemoryDataSet("n", x, torch.arange(20) % 2, x, torch.arange(20) % 2, ("a", "b"),
                         mean, std)
    scale = 255.0 if dtype == torch.uint8 else 1.0
    s = torch.tensor(std, dtype=torch.float64).clamp_min(1e-12)
    m = torch.tensor(mean, dtype=torch.float64)
    a = (1.0 / (scale * s)).float().view(1, -1, 1, 1)
    b = (-m / s).float().view(1, -1, 1, 1)
    assert torch.equal(ds.normalize(x), torch.addcmul(b, x.float(), a))
    ref = (x.double() / scale - m.view(1, -1, 1, 1)) / s.view(1, -1, 1, 1)
    torch.testing.assert_close(ds.normalize(x).double(), ref, rtol=1e-5, atol=1e-3)


# ---------------------------------------------------------------------- the contract itself
class Procedural(DataSource):
    """A source whose images are computed from their index: only the storage part is written."""

    def __init__(self, train_ids, test_ids, mean=(0.5, 0.5), std=(0.25, 0.25)):
        self.name, self.classes, self.mean, self.std = "procedural", ("a", "b", "c"), mean, std
        self.ids = {"train": torch.as_tensor(train_ids), "test": torch.as_tensor(test_ids)}

    @staticmethod
    def image(i: torch.Tensor) -> torch.Tensor:
        return ((i.view(-1, 1) * 37 + torch.arange(2 * 4 * 4)) % 256).to(torch.uint8).view(
            -1, 2, 4, 4)

    input_shape = (2, 4, 4)
    device = torch.device("cpu")

    @property
    def train_labels(self):
        return self.ids["train"] % 3

    @property
    def test_labels(self):
        return self.ids["test"] % 3

    def _read(self, split, order, slices):
        ids = self.ids[split]
        for sl in slices:
            i = ids[sl] if order is None else ids[order[sl]]
            yield self.image(i), i % 3

    def _take(self, train, test):
        return Procedural(self.ids[train[0]][train[1]], self.ids[test[0]][test[1]],
                          self.mean, self.std)

    def to(self, device):
        return self


def test_a_users_own_source_gets_the_same_batches_subsets_and_splits():
    ids = torch.arange(40)
    mine = Procedural(ids, ids[:10] + 100)
    ref = InMemoryDataSet("ref", Procedural.image(ids), ids % 3, Procedural.image(ids[:10] + 100),
                          (ids[:10] + 100) % 3, ("a", "b", "c"), mine.mean, mine.std)
    assert mine.n_train == 40 and mine.num_classes == 3 and mine.steps_per_epoch(16) == 3
    kw = dict(seed=4, epoch=1, augment=True, start_batch=1)
    for (xa, ya), (xb, yb) in zip(mine.train_batches(16, **kw), ref.train_batches(16, **kw),
                                  strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    for a, b in [(mine.subset(train=12, test=5), ref.subset(train=12, test=5)),
                 *zip(mine.split_validation(7), ref.split_validation(7))]:
        assert torch.equal(a.train_labels, b.train_labels)
        for (xa, ya), (xb, yb) in zip(a.test_batches(4), b.test_batches(4), strict=True):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
    with pytest.raises(TypeError, match="abstract"):
        type("Half", (DataSource,), {"to": lambda self, d: self})()


# --------------------------------------------------------------------------------- registry
def test_register_load_and_list(reg):
    assert reg.available()[:5] == ["digits", "mnist", "fashion_mnist", "cifar10", "svhn"]
    calls = []

    def make(root):
        calls.append(root)
        return blobs()

    assert bd.register_dataset("blobs", make, description="three blobs") is make
    assert "blobs" in bd.available() and bd.describe("blobs") == "three blobs"
    ds = bd.load("blobs", root="/somewhere")
    assert calls == ["/somewhere"] and isinstance(ds, DataSource) and ds.name == "blobs"
    assert ds.input_shape == (2, 3, 3) and ds.num_classes == 3 and ds.n_train == 90
    bd.register_dataset("blobs", make)  # the same loader again: fine
    with pytest.raises(ValueError, match=r"already registered by .*make") as info:
        bd.register_dataset("blobs", lambda root: blobs())
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="'blobs'.*stream=True|stream=True.*'blobs'"):
        bd.load("blobs", stream=True)


def test_a_spec_file_imported_again_may_register_again(reg, tmp_path):
    source = "def make(root):\n    return BLOBS(root)\n"
    path = tmp_path / "spec.py"
    path.write_text(source)
    loaders = []
    for module in ("_spec_0", "_spec_1"):  # the CLI gives each import its own module name
        namespace = {"__name__": module, "BLOBS": blobs}
        exec(compile(source, str(path), "exec"), namespace)
        loaders.append(namespace["make"])
        bd.register_dataset("respec", namespace["make"])
    assert reg._REGISTRY["respec"].loader is loaders[1]


@pytest.mark.parametrize(
    ("name", "loader", "error", "match"),
    [
        ("", blobs, ValueError, "non-empty"),
        ("a/b", blobs, ValueError, "without '/'"),
        (3, blobs, TypeError, "name must be a str"),
        ("ok", "not callable", TypeError, "loader must be callable"),
    ],
)
def test_register_rejects_bad_names_and_loaders(reg, name, loader, error, match):
    with pytest.raises(error, match=match):
        bd.register_dataset(name, loader)


def test_loader_must_return_a_checked_data_source(reg):
    bd.register_dataset("bad", lambda root: {"x": 1})
    with pytest.raises(TypeError, match="returned dict, not a biofa.data.DataSource"):
        bd.load("bad")
    one = blobs()
    one = dataclasses.replace(one, train_y=torch.zeros_like(one.train_y))
    bd.register_dataset("one", lambda root: one)
    with pytest.raises(ValueError, match="one class .'c0'.*at least two") as info:
        bd.load("one")
    assert "\n" not in str(info.value)


def test_unknown_names_and_missing_paths(reg, tmp_path):
    bd.register_dataset("mine", blobs)
    with pytest.raises(ValueError, match=r"registered data set \(digits, .*, svhn, .*mine\)"):
        bd.load("imagenet")
    missing = str(tmp_path / "nowhere" / "set.zip")
    with pytest.raises(ValueError, match="no such file or directory") as info:
        bd.load(missing)
    assert missing in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(TypeError, match="data must be"):
        bd.load(3)


def test_entry_points_register_and_a_broken_one_only_warns(reg, monkeypatch):
    module = types.ModuleType("fake_plugin")
    module.load_it = lambda root: blobs()
    monkeypatch.setitem(sys.modules, "fake_plugin", module)
    from importlib.metadata import EntryPoint

    eps = [EntryPoint("plugged", "fake_plugin:load_it", "biofa.datasets"),
           EntryPoint("broken", "no_such_module_here:load", "biofa.datasets")]
    monkeypatch.setattr(registry.metadata, "entry_points",
                        lambda group: eps if group == "biofa.datasets" else [])
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    with pytest.warns(UserWarning, match="could not load data set entry point 'broken'"):
        names = bd.available()
    assert "plugged" in names and "broken" not in names
    assert bd.load("plugged").name == "blobs"


def test_torchvision_missing_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # import torchvision -> ImportError
    with pytest.raises(bd.MissingExtraError, match=r"pip install 'biofa\[vision\]'") as info:
        bd.load("mnist")
    assert isinstance(info.value, ImportError) and isinstance(info.value, ValueError)


# --------------------------------------------------------------------------------- checks
def test_check_refuses_what_a_classifier_cannot_learn():
    ds = blobs()
    for change, match in [
        (dict(classes=("only",)), "has 1 class .'only'."),
        (dict(test_y=ds.test_y[:0], test_x=ds.test_x[:0]), "no test examples"),
        (dict(train_y=ds.train_y + 1), "labels span 1..3; they must be class indices 0..2"),
    ]:
        with pytest.raises(ValueError, match=match):
            dataclasses.replace(ds, **change).check()
    assert ds.check() is ds


def test_from_tensors_validates_and_defaults_class_names():
    x = np.zeros((4, 1, 2, 2), np.uint8)
    ds = InMemoryDataSet.from_tensors("t", x, np.array([0, 1, 2, 1]), x, [0, 1, 0, 1])
    assert ds.classes == ("0", "1", "2") and ds.train_y.dtype == torch.int64
    assert ds.mean == (0.0,) and ds.train_x.dtype == torch.uint8
    with pytest.raises(TypeError, match="labels must be integer"):
        InMemoryDataSet.from_tensors("t", x, [0.0, 1, 0, 1], x, [0, 1, 0, 1])
    with pytest.raises(ValueError, match=r"need train_x \(N, C, H, W\)"):
        InMemoryDataSet.from_tensors("t", x[:, 0], [0, 1, 0, 1], x, [0, 1, 0, 1])
    with pytest.raises(ValueError, match="test images are"):
        InMemoryDataSet.from_tensors("t", x, [0, 1, 0, 1], x[:, :, :1], [0, 1, 0, 1])


# ------------------------------------------------------------------------ subsets and splits
def _largest_remainder(counts: np.ndarray, n: int) -> np.ndarray:
    """Hamilton's method, written independently: floors, then +1 by descending remainder."""
    exact = n * counts / counts.sum()
    take = np.floor(exact).astype(int)
    order = np.lexsort((np.arange(len(counts)), -(exact - take)))  # remainder desc, then index
    take[order[: n - take.sum()]] += 1
    return take


def _rows(x: torch.Tensor) -> list[tuple]:
    return sorted(map(tuple, x.flatten(1).tolist()))


@pytest.mark.parametrize(("n_train", "n_test"), [(100, 37), (11, 10), (1437, None)])
def test_subset_is_stratified_fixed_and_made_of_the_parents_examples(digits, n_train, n_test):
    sub = digits.subset(train=n_train, test=n_test)
    assert isinstance(sub, InMemoryDataSet) and sub.name == "digits"
    assert sub.n_train == n_train and sub.n_test == (n_test or digits.n_test)
    for part, parent, n in ((sub.train_labels, digits.train_labels, n_train),
                            (sub.test_labels, digits.test_labels, n_test or digits.n_test)):
        want = _largest_remainder(np.bincount(parent.numpy(), minlength=10), n)
        np.testing.assert_array_equal(np.bincount(part.numpy(), minlength=10), want)
    # examples of the parent, each once, in the parent's order, with the parent's statistics
    index = [next(i for i in range(digits.n_train) if torch.equal(digits.train_x[i], x))
             for x in sub.train_x]
    assert index == sorted(set(index)) and sub.mean == digits.mean
    assert torch.equal(sub.train_y, digits.train_y[index])
    x, _ = _all(sub.test_batches(64))
    assert torch.equal(x, digits.normalize(sub.test_x))
    again = bd.load("digits").subset(train=n_train, test=n_test)  # fixed: no seed involved
    assert torch.equal(again.train_x, sub.train_x) and torch.equal(again.test_y, sub.test_y)


def test_subset_is_not_the_first_examples_of_each_class(digits):
    sub = digits.subset(train=50)
    chosen = [next(i for i in range(digits.n_train) if torch.equal(digits.train_x[i], x))
              for x in sub.train_x]
    counts = torch.bincount(sub.train_y, minlength=10).tolist()
    first = sorted(i for k in range(10)
                   for i in torch.nonzero(digits.train_y == k).flatten()[: counts[k]].tolist())
    assert chosen != first  # a hash of the index, not the storage order (ImageFolders: by name)


@pytest.mark.parametrize(
    ("kw", "error", "match"),
    [
        (dict(train=1438), ValueError, r"subset\(train=1438\): data 'digits' has only 1437"),
        (dict(test=361), ValueError, r"subset\(test=361\): .* only 360 test examples"),
        (dict(train=0), ValueError, r"subset\(train=...\) must be >= 1"),
        (dict(test=2.5), TypeError, "must be an int"),
    ],
)
def test_subset_errors(digits, kw, error, match):
    with pytest.raises(error, match=match) as info:
        digits.subset(**kw)
    assert "\n" not in str(info.value)


def test_split_validation_holds_out_a_fixed_stratified_disjoint_part(digits):
    train_part, val = digits.split_validation(200)
    assert train_part.n_train == val.n_train == 1237 and val.n_test == 200
    assert torch.equal(train_part.train_x, val.train_x)
    want = _largest_remainder(np.bincount(digits.train_labels.numpy(), minlength=10), 200)
    np.testing.assert_array_equal(np.bincount(val.test_labels.numpy(), minlength=10), want)
    # disjoint and complete: the two parts are exactly the parent's training examples
    assert _rows(torch.cat([train_part.train_x, val.test_x])) == _rows(digits.train_x)
    assert not set(_rows(train_part.train_x)) & set(_rows(val.test_x))
    # the test split is untouched; validation batches: the held-out images, same statistics
    assert torch.equal(_all(train_part.test_batches(100))[0], _all(digits.test_batches(100))[0])
    xv, yv = _all(val.test_batches(64))
    assert torch.equal(yv, val.test_y) and torch.equal(xv, digits.normalize(val.test_x))
    assert val.mean == train_part.mean == digits.mean
    # training on the train part never sees a held-out example
    seen = _all(train_part.train_batches(100, seed=1, epoch=0, augment=True))[1]
    assert len(seen) == 1237
    again_train, again_val = bd.load("digits").split_validation(200)
    assert torch.equal(again_val.test_x, val.test_x)
    # a subset of the training part, then its own validation split: still disjoint
    small_train, small_val = train_part.subset(train=300).split_validation(30)
    assert small_train.n_train == 270 and small_val.n_test == 30
    assert not set(_rows(small_train.train_x)) & set(_rows(small_val.test_x))


@pytest.mark.parametrize(("n", "error", "match"), [
    (1437, ValueError, r"split_validation\(n=1437\): .* only 1437 training examples; need 1 <="),
    (0, ValueError, "must be >= 1"),
    (True, TypeError, "must be an int"),
])
def test_split_validation_errors(digits, n, error, match):
    with pytest.raises(error, match=match) as info:
        digits.split_validation(n)
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------------- placement
def test_place_on_the_cpu_and_host_storage_delivering_elsewhere(digits):
    placed = digits.place("cpu")
    assert isinstance(placed, InMemoryDataSet) and placed.device.type == "cpu"
    assert placed.train_x.data_ptr() == digits.train_x.data_ptr()  # nothing copied
    # the path a set too large for the GPU takes: host storage, batches copied per batch
    host = dataclasses.replace(digits, deliver_to=torch.device("cpu"))
    kw = dict(seed=2, epoch=5, augment=True, start_batch=3)
    for (xa, ya), (xb, yb) in zip(host.train_batches(100, **kw), digits.train_batches(100, **kw),
                                  strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    for (xa, ya), (xb, yb) in zip(host.test_batches(100), digits.test_batches(100), strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    meta = dataclasses.replace(digits, deliver_to=torch.device("meta"))
    x, y = next(meta.train_batches(16, seed=0, epoch=0, augment=True))
    assert x.device.type == y.device.type == "meta" and meta.train_x.device.type == "cpu"
    assert meta.subset(train=20).device.type == "meta"
    want = "InMemoryDataSet('digits', 10 classes, 1437 train / 360 test, (1, 8, 8), cpu)"
    assert repr(digits) == want


def test_examples_are_raw_images(digits):
    index = torch.tensor([5, 0, 17])
    x, y = digits.train_examples(index)
    assert torch.equal(x, digits.train_x[index]) and torch.equal(y, digits.train_y[index])
    x, y = digits.test_examples(index)
    assert torch.equal(x, digits.test_x[index]) and torch.equal(y, digits.test_y[index])


# ------------------------------------------------------------------------------ package shape
def test_biofa_data_is_a_leaf_without_import_cycles():
    """Every import in biofa/data (top level or inside functions) stays inside biofa.data or
    leaves biofa, and the modules' imports form no cycle."""
    import ast
    from pathlib import Path

    folder = Path(bd.__file__).parent
    graph = {}
    for path in folder.glob("*.py"):
        module = "biofa.data" if path.stem == "__init__" else f"biofa.data.{path.stem}"
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for name in names:
                if name == "biofa" or name.startswith("biofa."):
                    assert name.startswith("biofa.data"), f"{module} imports {name}"
                    targets.add(name)
        graph[module] = {t for t in targets if t in {f"biofa.data.{p.stem}" for p in
                                                     folder.glob("*.py")} and t != module}
    done, visiting = set(), []

    def visit(m):
        assert m not in visiting, f"import cycle: {' -> '.join([*visiting, m])}"
        if m in done:
            return
        visiting.append(m)
        for t in graph.get(m, ()):
            visit(t)
        visiting.pop()
        done.add(m)

    for m in graph:
        visit(m)
    assert len(graph) >= 10 and all(len(p.read_text().splitlines()) <= 400
                                    for p in folder.glob("*.py"))
