"""Sweeps: the set of runs a spec file's ``sweep = grid(...)`` declares.

A sweep is an ordered list of points; each point is a ``dict`` of keys (``circuit()`` keywords or
:class:`~biofa.train.config.Train` fields, checked by :mod:`biofa.cli.spec`) to values.
:func:`grid` builds the Cartesian product of its axes; ``+`` concatenates grids for sweeps that
are not full products::

    sweep = grid(rule=["backprop", "feedback_alignment"], seed=range(3)) + grid(
        rule="direct_feedback_alignment", seed=range(3), lr=[0.01, 0.02]
    )
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

__all__ = ["Grid", "grid"]


class Grid:
    """An ordered, immutable list of sweep points (``dict`` of key to value).

    Parameters
    ----------
    points
        The points, in run order. Each is copied into a new ``dict``.

    Examples
    --------
    >>> g = grid(rule=["a", "b"], seed=range(2))
    >>> len(g), list(g)[1]
    (4, {'rule': 'a', 'seed': 1})
    >>> len(g + grid(rule="c"))
    5
    """

    __slots__ = ("_points",)

    def __init__(self, points: Iterable[Mapping[str, Any]] = ()) -> None:
        checked = []
        for i, point in enumerate(points):
            if not isinstance(point, Mapping):
                raise TypeError(f"sweep point {i} must be a dict of key=value, got {point!r}")
            if not all(isinstance(key, str) for key in point):
                raise TypeError(f"sweep point {i} has a key that is not a string: {point!r}")
            checked.append(dict(point))
        self._points: tuple[dict[str, Any], ...] = tuple(checked)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        # copies, so a caller cannot change the sweep by mutating a point
        return (dict(point) for point in self._points)

    def __len__(self) -> int:
        return len(self._points)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return dict(self._points[index])

    def __add__(self, other: object) -> Grid:
        if isinstance(other, Grid):
            return Grid(self._points + other._points)
        if isinstance(other, (list, tuple)):
            return Grid(self._points + tuple(Grid(other)._points))
        return NotImplemented

    def __radd__(self, other: object) -> Grid:
        if isinstance(other, (list, tuple)):
            return Grid(other) + self
        return NotImplemented

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Grid):
            return self._points == other._points
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # points hold arbitrary (unhashable) values

    def keys(self) -> list[str]:
        """Every key that any point sets, in first-seen order."""
        return list(dict.fromkeys(key for point in self._points for key in point))

    def __repr__(self) -> str:
        return f"Grid({len(self)} points, keys={self.keys()})"


def _values(key: str, axis: Any) -> list[Any]:
    """The values of one axis: an iterable's items, or a scalar (str counts as scalar)."""
    if isinstance(axis, (str, bytes, Mapping)) or not isinstance(axis, Iterable):
        return [axis]
    values = list(axis)
    if not values:
        raise ValueError(f"grid(): axis {key!r} has no values")
    return values


def grid(**axes: Any) -> Grid:
    """The Cartesian product of the keyword axes, first key varying slowest.

    Parameters
    ----------
    **axes
        ``key=values``: an iterable of values (list, tuple, range, array), or a single value (a
        scalar or a string). Wrap a value that is itself a tuple, such as ``milestones``, in a
        list: ``grid(milestones=[(100, 150)])``.

    Returns
    -------
    Grid
        ``prod(len(values))`` points; ``grid()`` with no axes is one empty point.

    Raises
    ------
    ValueError
        If an axis is empty.
    """
    keys = list(axes)
    columns = [_values(key, axes[key]) for key in keys]
    return Grid(dict(zip(keys, combo, strict=True)) for combo in itertools.product(*columns))
