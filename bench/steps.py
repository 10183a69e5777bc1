#!/usr/bin/env python3
"""Step timings of builds, read from the tools' own progress output.

One reader for every bench script that needs a step's time: stagecraft's `--progress=json`
events (one JSON object a line) and BuildKit's `--progress=plain` lines.

    steps.py w3 TOOL FILE      medians (seconds) of W3's `COPY src/` and the RUN after it in
                               stage build-app, "-" when FILE has none; TOOL is sc or bk
    steps.py phases FILE       medians of the time before the first COPY step, the COPY and
                               after it, per stagecraft build in FILE ("a / b / c"), or "-"
"""

import json
import re
import statistics
import sys
from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class Step:
    """A step as a build's progress reports it."""

    stage: str
    name: str
    status: str = ""
    duration: float = 0.0
    started: float = 0.0
    finished: float = 0.0


@dataclass
class Build:
    """One build's steps in the order they started, and when its first and last events came."""

    steps: list = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0


def _seconds(event):
    return datetime.fromisoformat(event["time"].replace("Z", "+00:00")).timestamp()


def stagecraft_builds(lines):
    """The builds in stagecraft `--progress=json` output; a build ends at `build_finished`.
    Lines that are not events (warnings, a truncated last line) are skipped."""
    builds, current, by_id = [], Build(), {}
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if not isinstance(event, dict) or "event" not in event:
            continue
        at = _seconds(event) if "time" in event else 0.0
        if not current.started:
            current.started = at
        current.finished = at
        kind = event["event"]
        if kind == "step_started":
            step = Step(event.get("stage", ""), event.get("name", ""), started=at)
            by_id[event["id"]] = step
            current.steps.append(step)
        elif kind == "step_finished" and event.get("id") in by_id:
            step = by_id[event["id"]]
            step.status = event.get("status", "")
            step.duration = float(event.get("duration", 0.0))
            step.finished = at
        elif kind == "build_finished":
            builds.append(current)
            current, by_id = Build(), {}
    return builds


def buildkit_steps(lines):
    """The finished steps in BuildKit `--progress=plain` output, as (stage, name, seconds)."""
    named, done = {}, []
    for line in lines:
        m = re.match(r"#(\d+) \[([^\]\s]+) \d+/\d+\] (.*)", line)
        if m:
            named[m.group(1)] = (m.group(2), m.group(3))
            continue
        m = re.match(r"#(\d+) DONE ([0-9.]+)s", line)
        if m and m.group(1) in named:
            stage, name = named.pop(m.group(1))
            done.append((stage, name, float(m.group(2))))
    return done


def median_text(values):
    return f"{statistics.median(values):.3f}" if values else "-"


def w3(tool, lines):
    """W3's `COPY src/` and RUN durations in stage build-app, each a list of seconds."""
    if tool == "sc":
        steps = [
            (s.stage, s.name, s.duration)
            for build in stagecraft_builds(lines)
            for s in build.steps
            if s.status == "done"
        ]
    else:
        steps = buildkit_steps(lines)
    copy = [d for stage, name, d in steps if stage == "build-app" and name.startswith("COPY src/")]
    run = [d for stage, name, d in steps if stage == "build-app" and name.startswith("RUN ")]
    return copy, run


def phases(lines):
    """Per build: seconds before its first COPY step, in it, and after it."""
    out = []
    for build in stagecraft_builds(lines):
        copy = next((s for s in build.steps if s.name.startswith("COPY") and s.finished), None)
        if copy:
            out.append((copy.started - build.started, copy.finished - copy.started,
                        build.finished - copy.finished))
    return out


def _read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read().splitlines()
    except OSError:
        return []


def main(argv):
    if len(argv) == 4 and argv[1] == "w3":
        copy, run = w3(argv[2], _read(argv[3]))
        print(median_text(copy), median_text(run))
    elif len(argv) == 3 and argv[1] == "phases":
        found = phases(_read(argv[2]))
        print(" / ".join(f"{statistics.median(p[i] for p in found):.2f}" for i in range(3)) if found else "-")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
