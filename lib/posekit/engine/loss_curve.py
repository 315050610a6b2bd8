"""Loss-curve PNGs drawn with OpenCV (posekit does not depend on matplotlib)."""
from pathlib import Path
from typing import Mapping, Sequence

import cv2
import numpy as np

from ..utils.io import atomic_write

WIDTH, HEIGHT = 900, 500
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 80, 20, 40, 50
TICKS = 5
RAW_COLOR, SMOOTH_COLOR, AXIS_COLOR = (200, 200, 200), (180, 80, 0), (0, 0, 0)
FONT = cv2.FONT_HERSHEY_SIMPLEX


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of the last ``window`` values at each position (fewer at the start)."""
    sums = np.cumsum(np.concatenate([[0.0], values]))
    ends = np.arange(1, len(values) + 1)
    starts = np.maximum(ends - window, 0)
    return (sums[ends] - sums[starts]) / (ends - starts)


def _to_pixels(steps: np.ndarray, values: np.ndarray, low: float, high: float) -> np.ndarray:
    plot_w, plot_h = WIDTH - MARGIN_LEFT - MARGIN_RIGHT, HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    x = MARGIN_LEFT + steps / max(steps[-1], 1) * plot_w
    y = MARGIN_TOP + (high - values) / (high - low) * plot_h
    return np.stack([x, y], axis=1).round().astype(np.int32)


def _draw_axes(canvas: np.ndarray, last_step: int, low: float, high: float, title: str) -> None:
    bottom, right = HEIGHT - MARGIN_BOTTOM, WIDTH - MARGIN_RIGHT
    cv2.rectangle(canvas, (MARGIN_LEFT, MARGIN_TOP), (right, bottom), AXIS_COLOR, 1)
    for tick in range(TICKS + 1):
        fraction = tick / TICKS
        y = int(round(bottom - fraction * (bottom - MARGIN_TOP)))
        cv2.putText(canvas, f"{low + fraction * (high - low):.4g}", (5, y + 4), FONT, 0.4, AXIS_COLOR, 1)
        x = int(round(MARGIN_LEFT + fraction * (right - MARGIN_LEFT)))
        cv2.putText(canvas, f"{round(fraction * last_step)}", (x - 10, bottom + 18), FONT, 0.4, AXIS_COLOR, 1)
    cv2.putText(canvas, "iteration", (WIDTH // 2 - 30, HEIGHT - 10), FONT, 0.5, AXIS_COLOR, 1)
    cv2.putText(canvas, title, (MARGIN_LEFT, 25), FONT, 0.6, AXIS_COLOR, 1)


def loss_panel(losses: Sequence[float], title: str) -> np.ndarray:
    """A BGR image of per-iteration ``losses`` (grey) and their moving average (blue); NaN steps are skipped."""
    values = np.asarray(losses, dtype=np.float64)
    steps = np.arange(len(values), dtype=np.float64)
    finite = np.isfinite(values)
    values, steps = values[finite], steps[finite]
    canvas = np.full((HEIGHT, WIDTH, 3), 255, np.uint8)
    if len(values):
        low, high = float(values.min()), float(values.max())
        high = high if high > low else low + 1.0
        smooth = moving_average(values, max(1, len(values) // 50))
        cv2.polylines(canvas, [_to_pixels(steps, values, low, high)], False, RAW_COLOR, 1, cv2.LINE_AA)
        cv2.polylines(canvas, [_to_pixels(steps, smooth, low, high)], False, SMOOTH_COLOR, 2, cv2.LINE_AA)
        _draw_axes(canvas, int(steps[-1]), low, high, title)
    return canvas


def draw_loss_curves(history: Mapping[str, Sequence[float]], path: Path) -> None:
    """Write a PNG to ``path``: one panel for the total of the loss* terms, then one per named value."""
    columns = np.asarray([history[name] for name in history], dtype=np.float64).reshape(len(history), -1)
    is_loss = np.array([name.startswith("loss") for name in history], bool)
    panels = [loss_panel(columns[is_loss].sum(axis=0), "total training loss")] if len(history) > 1 else []
    panels += [loss_panel(values, name) for name, values in zip(history, columns)]
    _, encoded = cv2.imencode(".png", np.concatenate(panels, axis=0))
    atomic_write(path, lambda tmp: encoded.tofile(tmp))
