"""Pixel normalisation inside the models: hand-computed values, any input dtype, no checkpoint entries."""
import pytest
import torch

from posekit.models.preprocess import PixelNormalizer

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def test_dekr_normalisation_uses_imagenet_statistics_on_raw_pixels():
    normalizer = PixelNormalizer(IMAGENET_MEAN, IMAGENET_STD, 255.0, "RGB")
    image = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    out = normalizer(image)
    assert out.dtype == torch.float32
    assert out[0, :, 0, 0].tolist() == pytest.approx([(1 - 0.485) / 0.229, (1 - 0.456) / 0.224,
                                                      (1 - 0.406) / 0.225], rel=1e-6)


def test_caffe_style_normalisation_keeps_the_pixel_scale():
    normalizer = PixelNormalizer((103.53, 116.28, 123.675), (1.0, 1.0, 1.0), 1.0, "BGR")
    out = normalizer(torch.full((1, 3, 1, 1), 200.0))
    assert out.flatten().tolist() == pytest.approx([96.47, 83.72, 76.325])


def test_statistics_are_not_in_the_state_dict_and_formats_are_checked():
    assert PixelNormalizer(IMAGENET_MEAN, IMAGENET_STD, 255.0, "RGB").state_dict() == {}
    with pytest.raises(ValueError, match="RGB"):
        PixelNormalizer(IMAGENET_MEAN, IMAGENET_STD, 255.0, "YUV")
