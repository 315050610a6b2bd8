"""Training machinery shared by every family: the trainer, its hooks, solver settings and checkpoints."""
from .hooks import Checkpointer, Hook, LearningRateSchedule, MetricsLogger, PeriodicEvaluation
from .solver import GradientClipping, Schedule, SolverSettings, build_optimizer, clipping_from_cfg
from .trainer import Trainer, TrainingDiverged

__all__ = ["Checkpointer", "GradientClipping", "Hook", "LearningRateSchedule", "MetricsLogger",
           "PeriodicEvaluation", "Schedule", "SolverSettings", "Trainer", "TrainingDiverged", "build_optimizer",
           "clipping_from_cfg"]
