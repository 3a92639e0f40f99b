"""Real runs for the fixtures: the bluesky RunEngine driving ophyd and ophyd-async simulated devices.

Each `run_*` function produces one run's documents (paths still absolute, as the devices wrote
them) and leaves any external files in the folder it is given. The one exception is
`compose_legacy_ad_hdf5`, which composes a legacy areaDetector-style run with event-model because
no simulated device writes that form.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import bluesky.plan_stubs as bps
import bluesky.plans as bp
import bluesky.preprocessors as bpp
import event_model
import h5py
import numpy as np
from bluesky.preprocessors import SupplementalData
from bluesky.run_engine import RunEngine
from fixture_io import Docs, capture
from ophyd.sim import SynAxis, SynGauss, SynSignal, SynSignalWithRegistry
from ophyd_async import sim
from ophyd_async.core import StaticFilenameProvider, StaticPathProvider, TriggerInfo, init_devices

__all__ = ["Lab", "compose_legacy_ad_hdf5"]


class Lab:
    """One RunEngine (its event loop also serves ophyd-async) and the ophyd.sim devices."""

    def __init__(self) -> None:
        self.run_engine = RunEngine({})
        self.motor = SynAxis(name="motor")
        self.motor1 = SynAxis(name="motor1")
        self.det = SynGauss("det", self.motor, "motor", center=0, Imax=1, sigma=1)

    def run(self, plan) -> Docs:
        return capture(self.run_engine, plan)

    def scan_with_baseline(self, num: int = 5) -> Docs:
        """`scan` of det vs motor; motor1 read before and after as the `baseline` stream.

        One baseline device only: bluesky reads baseline devices from a set, so with two the order
        of their keys in the documents changes from one generation to the next.
        """
        baseline = SupplementalData(baseline=[self.motor1])
        self.motor1.set(0.25)
        return self.run(baseline(bp.scan([self.det], self.motor, -1, 1, num)))

    def count_scalars(self, num: int = 3) -> Docs:
        """A short `count` of det and a seeded noisy detector (the base of most derived fixtures)."""
        noisy = SynGauss(
            "noisy_det",
            self.motor,
            "motor",
            center=0,
            Imax=1,
            sigma=1,
            noise="uniform",
            noise_multiplier=0.1,
            random_state=np.random.RandomState(7),
        )
        self.motor.set(0.5)
        return self.run(bp.count([self.det, noisy], num=num))

    def count_reserved_keys(self, num: int = 3) -> Docs:
        """Data keys named `time` and `seq_num`, which collide with Tiled's internal table columns."""
        counter = itertools.count(100)
        time_key = SynSignal(func=lambda: 12.5 + next(counter) % 3, name="time")
        seq_key = SynSignal(func=lambda: next(counter), name="seq_num")
        return self.run(bp.count([self.det, time_key, seq_key], num=num))

    def count_array20(self, num: int = 3) -> Docs:
        """An internal (non-external) array data key of shape [20]: more than 16 elements."""
        counter = itertools.count()
        spectrum = SynSignal(func=lambda: np.linspace(0.0, 1.0, 20) * (1 + next(counter)), name="spectrum")
        return self.run(bp.count([self.det, spectrum], num=num))

    def count_nan_inf(self) -> Docs:
        """Event values NaN, Infinity and -Infinity (written as Python's json writes them)."""
        values = itertools.cycle([1.5, math.nan, math.inf, -math.inf, 2.5])
        flaky = SynSignal(func=lambda: next(values), name="flaky")
        return self.run(bp.count([self.det, flaky], num=5))

    def count_npy_seq(self, data_dir: Path, num: int = 3) -> Docs:
        """ophyd.sim's SynSignalWithRegistry: legacy Resource (spec NPY_SEQ) and one Datum per event."""
        counter = itertools.count()
        img = SynSignalWithRegistry(
            func=lambda: np.arange(48, dtype=float).reshape(6, 8) + next(counter),
            name="img",
            save_path=str(data_dir),
        )
        return self.run(bp.count([self.det, img], num=num))

    def _blob_detector(self, data_dir: Path, filename: str):
        generator = sim.PatternGenerator()
        provider = StaticPathProvider(StaticFilenameProvider(filename), data_dir)
        with init_devices():
            stage = sim.SimStage(generator)
            bdet = sim.SimBlobDetector(provider, generator)
            pdet = sim.SimPointDetector(generator)
        return stage, bdet, pdet

    def count_blob(self, data_dir: Path, filename: str, num: int = 3) -> Docs:
        """ophyd-async SimBlobDetector + SimPointDetector in a `count`: StreamResource/StreamDatum."""
        stage, bdet, pdet = self._blob_detector(data_dir, filename)
        self.run_engine(bps.mv(stage.x, 0.4, stage.y, -0.2))
        return self.run(bp.count([bdet, pdet], num=num))

    def fly_blob(self, data_dir: Path, filename: str, frames: int = 4) -> Docs:
        """A fly scan of SimBlobDetector: no events, one StreamDatum per collect (collected once)."""
        _, bdet, _ = self._blob_detector(data_dir, filename)
        trigger = TriggerInfo(number_of_events=frames, livetime=0.1, deadtime=0.02)

        @bpp.stage_decorator([bdet])
        @bpp.run_decorator(md={"plan_name": "fly_blob"})
        def fly():
            yield from bps.prepare(bdet, trigger, wait=True)
            yield from bps.declare_stream(bdet, name="primary", collect=True)
            yield from bps.kickoff(bdet, wait=True)
            # Collect once after completion so the StreamDatum layout does not depend on timing.
            yield from bps.complete(bdet, wait=True)
            yield from bps.collect(bdet, name="primary")

        return self.run(fly())


def compose_legacy_ad_hdf5(path: Path, resource_path: str, frames: int = 4) -> Docs:
    """A legacy areaDetector-style run: Resource (AD_HDF5_SWMR_STREAM) with `frame` datums.

    Writes the HDF5 file itself (h5py, no timestamps, so the bytes are reproducible): dataset
    /entry/data/data of shape (frames, 8, 10) uint16; the descriptor declares [8, 10] per event.
    """
    images = np.arange(frames * 80, dtype=np.uint16).reshape(frames, 8, 10)
    with h5py.File(path, "w") as f:
        f.create_dataset("/entry/data/data", data=images, track_times=False)
    run = event_model.compose_run(metadata={"plan_name": "count", "detectors": ["cam"], "num_points": frames})
    data_keys = {
        "cam_image": {
            "source": "PV:XF:99ID-CAM:1",
            "dtype": "array",
            "dtype_numpy": "<u2",
            "shape": [8, 10],
            "external": "FILESTORE:",
            "object_name": "cam",
        },
        "cam_stats_total": {
            "source": "PV:XF:99ID-CAM:Stats1:Total",
            "dtype": "number",
            "shape": [],
            "object_name": "cam",
        },
    }
    descriptor = run.compose_descriptor(
        name="primary",
        data_keys=data_keys,
        object_keys={"cam": list(data_keys)},
        hints={"cam": {"fields": ["cam_stats_total"]}},
    )
    resource = run.compose_resource(
        spec="AD_HDF5_SWMR_STREAM",
        root="",
        resource_path=resource_path,
        resource_kwargs={"frame_per_point": 1, "dataset": "/entry/data/data"},
    )
    docs: Docs = [
        ("start", run.start_doc),
        ("descriptor", descriptor.descriptor_doc),
        ("resource", resource.resource_doc),
    ]
    for index in range(frames):
        datum = resource.compose_datum(datum_kwargs={"frame": index})
        docs.append(("datum", datum))
        total = int(images[index].sum())
        event = descriptor.compose_event(
            data={"cam_image": datum["datum_id"], "cam_stats_total": total},
            timestamps={"cam_image": 0.0, "cam_stats_total": 0.0},
            filled={"cam_image": False},
        )
        event["timestamps"] = {key: event["time"] for key in event["data"]}
        docs.append(("event", event))
    docs.append(("stop", run.compose_stop()))
    return [(name, dict(doc)) for name, doc in docs]
