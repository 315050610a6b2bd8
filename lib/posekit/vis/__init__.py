"""Visualisation: skeletons drawn with each keypoint set's skeleton and colours."""
from .keypoints import draw_poses, draw_skeleton, joint_colours, limb_colours

__all__ = ["draw_poses", "draw_skeleton", "joint_colours", "limb_colours"]
