"""A :class:`~biofa.spiking.plan.Plan` as a real Brian2 network, run on many images at once.

Layout. ``copies`` independent copies of the circuit run side by side (one set of groups; each
population is ``copies * size`` consecutive neurons, synapses block-diagonal over copies), and
``segments`` stimuli of ``duration`` follow each other in one run (state reset at each onset), so
one run shows ``copies * segments`` images. Input rates (and currents) are 2-D ``TimedArray``s
(segment x neuron): new images change only their values, so a built ``cpp_standalone`` program
is re-run through ``run_args`` instead of rebuilt.

``layout="populations"`` makes one ``NeuronGroup``/``PoissonGroup`` per population and one
``Synapses`` per population pair (readable, what Brian2 users expect); ``layout="merged"`` (the
default) puts populations of one kind into one group and all synapses between two groups into one
``Synapses``: the same network with far fewer objects, which is what makes the numpy target and
the standalone build fast. ``groups``/``synapses`` give the objects, ``views`` every population
as a Brian2 (sub)group, ``blocks`` where each plan connection sits in its ``Synapses``.

Synapses add ``w`` to the target model's ``synapse_target`` (``v_post += w``); a gated error
population's synapses add ``w * gate_pre``, its ``gate`` opened (``gate_post = 1``) by a spike of
its forward twin.
"""

from __future__ import annotations

import gc
import logging
import time
from contextlib import suppress
from itertools import count

import numpy as np

from biofa.spiking._brian import require_brian2
from biofa.spiking.build import build_standalone
from biofa.spiking.objects import Timing, group, layout, object_name, synapses
from biofa.spiking.plan import Plan
from biofa.spiking.spikes import SpikeRecord, merge, split
from biofa.spiking.targets import activate, build_directory, release, resolve

log = logging.getLogger(__name__)
_instances = count()


def _cpu_seconds() -> float:
    """CPU time (user + system) of this process and its finished children (standalone runs)."""
    try:
        import resource
    except ImportError:  # Windows: this process only
        return time.process_time()
    me, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


class SpikingNetwork:
    """Brian2 objects for ``plan`` (module docstring); ``run(images, errors)`` -> spikes.

    Parameters
    ----------
    copies, segments
        Copies of the circuit side by side; stimuli per copy per run.
    duration, settle, dt
        Seconds per stimulus, discarded onset (transient from rest), time step.
    target
        ``"numpy"``, ``"cython"``, ``"cpp_standalone"`` or ``"auto"``
        (:mod:`~biofa.spiking.targets`).
    layout
        ``"merged"`` or ``"populations"``.
    seed, threads
        Brian2's random seed; OpenMP threads of a standalone build (0: none).

    Attributes
    ----------
    groups, synapses, monitors
        The Brian2 objects, by group key (``"neuron"`` or a population name) and
        ``"src->dst"``.
    views
        Population -> its neurons, a Brian2 (sub)group of ``copies * size`` neurons.
    layout, blocks
        Where each population and each plan connection sits in its group or ``Synapses``.
    cpu_seconds
        User + system seconds spent simulating in :meth:`run` so far.
    """

    def __init__(
        self,
        plan: Plan,
        *,
        copies: int = 100,
        segments: int = 1,
        duration: float = 0.1,
        settle: float = 0.02,
        dt: float = 1e-4,
        target: str = "numpy",
        layout: str = "merged",
        seed: int = 0,
        threads: int = 0,
    ):
        if layout not in ("merged", "populations"):
            raise ValueError(f"layout={layout!r} is not 'merged' or 'populations'")
        if not 0 <= settle < duration or copies < 1 or segments < 1:
            raise ValueError(
                f"need copies >= 1, segments >= 1 and 0 <= settle ({settle}) < "
                f"duration ({duration})"
            )
        self.plan, self.copies, self.by_population = plan, copies, layout == "populations"
        self.timing = Timing(segments, duration, settle, dt)
        self.seed, self.threads, self.cpu_seconds = seed, threads, 0.0
        self.target = resolve(target)
        try:
            self._build()
        except Exception as err:
            if self.target != "cpp_standalone":
                raise
            log.warning(
                "biofa.spiking: the cpp_standalone build failed (%s); falling back to "
                "the numpy target",
                " ".join(str(err).split())[:300],
            )
            self.close()
            self.target = "numpy"
            self._build()

    @property
    def capacity(self) -> int:
        """Images shown by one run: ``copies * segments``."""
        return self.copies * self.timing.segments

    def _build(self) -> None:
        b2 = require_brian2()
        activate(self.target)
        standalone = self.target == "cpp_standalone"
        if standalone:
            b2.prefs.devices.cpp_standalone.openmp_threads = self.threads
        suffix = "" if standalone else f"_{next(_instances)}"
        b2.defaultclock.dt = self.timing.dt * b2.second
        self.layout = layout(self.plan, self.copies, self.by_population)
        self.groups, self.tables, self.monitors = {}, {}, {}
        for key, rows in self.layout.rows.items():
            pops = [self.plan.populations[n] for n, _, _ in rows]
            g, table, monitor = group(
                self.plan, pops, self.copies, self.timing, object_name(key, suffix)
            )
            self.groups[key] = g
            if table is not None:
                self.tables[key] = table
            if monitor is not None:
                self.monitors[key] = monitor
        self.views = {
            n: self.groups[k][o : o + self.copies * self.plan.populations[n].size]
            for n, (k, o) in self.layout.where.items()
        }
        self.synapses, self.blocks = synapses(self.plan, self.layout, self.groups, suffix)
        self.net = b2.Network(
            *self.groups.values(), *self.synapses.values(), *self.monitors.values()
        )
        b2.seed(self.seed)
        if standalone:
            self.net.run(self.timing.total * b2.second, namespace={})
            self.directory = build_directory(self._signature())
            build_standalone(self.directory)
        else:
            self.net.store("initial")

    def _signature(self) -> str:
        """The network's structure (what the generated code depends on), for the build cache."""
        models = [
            (m.name, m.equations, m.params) for m in (self.plan.neuron, self.plan.readout_model)
        ]
        return repr(
            (
                [(k, len(g)) for k, g in self.groups.items()],
                [(k, len(s)) for k, s in self.synapses.items()],
                models,
                self.plan.encoding,
                self.timing,
                self.threads,
            )
        )

    def run(self, images: np.ndarray, errors: np.ndarray | None = None) -> SpikeRecord:
        """Show ``images`` (``(N, pixels)`` intensities in [0, 1]) with readout errors ``errors``.

        ``errors`` (``(N, classes)``, e.g. softmax - onehot) drive the feedback pathways; ``None``
        leaves them silent. Runs ``ceil(N / capacity)`` times.
        """
        images = np.asarray(images, dtype=np.float64).reshape(len(images), -1)
        errors = np.zeros((len(images), 0)) if errors is None else np.asarray(errors, np.float64)
        parts, potentials = [], []
        for start in range(0, len(images), self.capacity):
            chunk = range(start, min(start + self.capacity, len(images)))
            parts.append(
                self._run_chunk(
                    images[chunk.start : chunk.stop],
                    errors[chunk.start : chunk.stop],
                    chunk,
                    potentials,
                )
            )
        sizes = {n: self.plan.populations[n].size for n in parts[0]}
        t = self.timing
        record = SpikeRecord(len(images), t.duration, t.settle, sizes, merge(parts))
        if potentials:
            record.readout_potential = np.concatenate(potentials)
        return record

    def _run_chunk(self, images, errors, chunk: range, potentials: list) -> dict:
        b2 = require_brian2()
        values = {key: self._values(key, images, errors) for key in self.tables}
        cpu = _cpu_seconds()
        if self.target == "cpp_standalone":
            device = b2.get_device()
            run_args = {self.tables[key]: v for key, v in values.items()}
            device.run(directory=str(self.directory), with_output=False, run_args=run_args)
            with suppress(OSError):  # the inputs' data files (the program and weights stay)
                device.delete(code=False, data=False, run_args=True, directory=False)
        else:
            self.net.restore("initial")
            for key, v in values.items():
                self.tables[key].values[:] = v
            self.net.run(self.timing.total * b2.second, namespace={})
        self.cpu_seconds += _cpu_seconds() - cpu
        spikes, t = {}, self.timing
        for key, monitor in self.monitors.items():
            rows = self.layout.rows[key]
            if self.plan.populations[rows[0][0]].kind == "readout":
                potentials.append(self._potential(monitor, len(chunk)))
            else:
                spikes.update(
                    split(monitor.i[:], monitor.t_[:], rows, self.copies, t.duration, t.dt, chunk)
                )
        return spikes

    def _values(self, key: str, images: np.ndarray, errors: np.ndarray) -> np.ndarray:
        """Rates (Hz) or currents (amp) of group ``key``'s table: segment x neuron."""
        plan, out = self.plan, []
        for name, _, size in self.layout.rows[key]:
            pop = plan.populations[name]
            v = np.zeros((len(images), size))
            if pop.role == "input":
                v = plan.input_rate * images
            elif pop.kind == "poisson" and errors.size:
                v = plan.error_rate * np.maximum(pop.polarity * errors, 0.0)
            elif pop.kind == "neuron":  # injected input current, the mean of the Poisson drive
                scale = plan.neuron.weight_scale() * plan.input_rate / plan.neuron.si_params()["R"]
                for c in plan.connections:
                    if c.target == name and plan.populations[c.source].kind == "current":
                        v += scale * images @ c.weight
            padded = np.zeros((self.capacity, size))
            padded[: len(v)] = v
            out.append(padded.reshape(self.timing.segments, self.copies * size))
        return np.ascontiguousarray(np.concatenate(out, axis=1))

    def _potential(self, monitor, n_images: int) -> np.ndarray:
        """Mean ``v - E_L`` after ``settle`` per stimulus: ``(n_images, classes)``.

        Stimulus ``s`` is read at the onset of ``s + 1``; the last one from the final state.
        """
        index, v_mean = np.asarray(monitor.i[:]), np.asarray(monitor.v_mean_[:])
        onset = np.rint(np.asarray(monitor.t_[:]) / self.timing.dt).astype(np.int64)
        onset //= self.timing.steps(self.timing.duration)
        out = np.zeros((self.timing.segments + 1, len(monitor.source)))
        out[onset, index] = v_mean
        out[-1] = np.asarray(monitor.source.v_mean_[:])
        classes = out.shape[1] // self.copies
        return out[1:].reshape(self.capacity, classes)[:n_images]

    def close(self) -> None:
        """Release the Brian2 objects (and the standalone device)."""
        from brian2.utils.logger import catch_logs

        with catch_logs():  # not "unused object" warnings for a network built but never run
            for attr in ("net", "groups", "synapses", "monitors", "views", "tables"):
                with suppress(AttributeError):
                    delattr(self, attr)
            release(self.target)
            # Brian2 names objects uniquely among the living ones: collect the old code objects
            # (freed by the device reset) so the next network generates the same names, hence
            # the same code, and a cached build is reused instead of recompiled.
            gc.collect()

    def __enter__(self) -> SpikingNetwork:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
