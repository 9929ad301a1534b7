"""The patient-timeline figure of the records section: a few patients' coded events as the encoder sees them."""

from __future__ import annotations

from typing import Any

from matplotlib.figure import Figure

from biolatent.data.records_overview import code_system
from biolatent.figures import new_figure

MARKERS = "os^Dvx+*"


def timeline_figure(overview: dict[str, Any]) -> Figure:
    """One row per patient of ``overview["timelines"]`` (``data.records_overview``): each event at the patient's
    age (years; jittered by visit so that a visit's events stay apart from the next visit's), coloured and shaped
    by coding system."""
    timelines = overview["timelines"]
    figure = new_figure(8.0, 0.6 * len(timelines) + 1.4)
    axis = figure.subplots()
    systems = sorted({code_system(code) for timeline in timelines for _, _, code in timeline["events"]})
    colours = {system: f"C{i % 10}" for i, system in enumerate(systems)}
    for row, timeline in enumerate(timelines):
        events = timeline["events"]
        last_visit = max((visit for _, visit, _ in events), default=1) or 1
        for system in systems:
            points = [(age + 0.8 * visit / last_visit, row) for age, visit, code in events
                      if code_system(code) == system]
            if points:
                xs, ys = zip(*points, strict=True)
                axis.scatter(xs, ys, s=14, c=colours[system], marker=MARKERS[systems.index(system) % len(MARKERS)],
                             label=system if row == 0 or system not in axis.get_legend_handles_labels()[1] else None,
                             alpha=0.7)
    axis.set_yticks(range(len(timelines)), [timeline["id"] for timeline in timelines])
    axis.set_xlabel("age (years; events of one visit share a point in time)")
    axis.invert_yaxis()
    handles, labels = axis.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    if unique:
        axis.legend(unique.values(), unique.keys(), loc="upper left", bbox_to_anchor=(1.0, 1.0), title="codes")
    return figure
