"""The evaluator interface every family's validation uses, and the loop that feeds it a data set.

An evaluator sees the data set one batch at a time (``process``) and scores what it gathered at the end
(``evaluate``), so predicting and scoring stay separate and any family's predictions can be scored.
"""
from abc import ABC, abstractmethod
from typing import Any, Callable, Dict, Iterable, List, Optional

from tqdm import tqdm

Inputs = List[Dict[str, Any]]


class DatasetEvaluator(ABC):
    """Gathers a model's predictions batch by batch and turns them into metrics."""

    @abstractmethod
    def reset(self) -> None:
        """Forget everything processed so far, ready for a new pass over a data set."""

    @abstractmethod
    def process(self, inputs: Inputs, outputs: List[Any]) -> None:
        """Take one batch: per-image ``inputs`` (each with at least "image_id") and the matching ``outputs``."""

    @abstractmethod
    def evaluate(self) -> Optional[Dict[str, float]]:
        """Metrics of everything processed since ``reset``, or None when there is nothing to score."""


def inference_on_dataset(predict: Callable[[Inputs], List[Any]], batches: Iterable[Inputs],
                         evaluator: DatasetEvaluator, total: Optional[int] = None,
                         show_progress: bool = True) -> Optional[Dict[str, float]]:
    """Predict every batch, hand each to ``evaluator`` and return its metrics; ``total`` sizes the progress bar."""
    evaluator.reset()
    for inputs in tqdm(batches, total=total, desc="valid", unit="batch", disable=not show_progress):
        outputs = predict(inputs)
        # A short output list would silently leave images unscored.
        if len(outputs) != len(inputs):
            raise ValueError(f"predict returned {len(outputs)} outputs for a batch of {len(inputs)} inputs")
        evaluator.process(inputs, outputs)
    return evaluator.evaluate()
