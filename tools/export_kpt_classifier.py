"""Export a keypoint-pretrained KTN model's final keypoint transposed conv as KTM v1's classifier file.

Usage: python tools/export_kpt_classifier.py --model output/.../final_state.pth.tar --output models/kpt_classifier.npz
The npz (kpt_weight, kpt_bias) is what MODEL.ROI_DENSEPOSE_HEAD.KPT_CLASSIFIER_WEIGHT_DIR of a KTN v1 config
(DensePoseKptRelationPredictor) reads; see docs/models/ktn.md.
"""
import argparse
from typing import List, Optional

from posekit.apis.cli import run_tool
from posekit.models.ktn import export_keypoint_classifier


def main(argv: Optional[List[str]] = None) -> int:
    """Write the classifier file of ``--model`` to ``--output``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="keypoint-pretrained checkpoint (posekit or KTN names)")
    parser.add_argument("--output", required=True, help="the .npz to write")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for bad input (also POSEKIT_DEBUG=1)")
    args = parser.parse_args(argv)
    print(f"wrote {export_keypoint_classifier(args.model, args.output)}")
    return 0


if __name__ == "__main__":
    run_tool(main)
