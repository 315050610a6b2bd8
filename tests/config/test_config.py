"""Config defaults, _BASE_ inheritance, command-line overrides, and every rejection message."""
import subprocess
import sys
import textwrap

import pytest

from posekit.config import get_cfg, load_cfg
from posekit.utils.errors import ConfigError


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


# Official DEKR lib/config/default.py defaults (dekr.md section 8.1), typed out independently.
OFFICIAL_DEFAULTS = {
    "OUTPUT_DIR": "", "NAME": "regression", "LOG_DIR": "", "DATA_DIR": "", "GPUS": (0,), "WORKERS": 4,
    "PRINT_FREQ": 20, "AUTO_RESUME": False, "PIN_MEMORY": True, "RANK": 0, "VERBOSE": True,
    "DIST_BACKEND": "nccl", "MULTIPROCESSING_DISTRIBUTED": True,
    "CUDNN.BENCHMARK": True, "CUDNN.DETERMINISTIC": False, "CUDNN.ENABLED": True,
    "MODEL.NAME": "hrnet_dekr", "MODEL.INIT_WEIGHTS": True, "MODEL.PRETRAINED": "", "MODEL.NUM_JOINTS": 17,
    "LOSS.WITH_HEATMAPS_LOSS": True, "LOSS.HEATMAPS_LOSS_FACTOR": 1.0, "LOSS.WITH_OFFSETS_LOSS": True,
    "LOSS.OFFSETS_LOSS_FACTOR": 1.0,
    "DATASET.ROOT": "", "DATASET.DATASET": "coco_kpt", "DATASET.DATASET_TEST": "", "DATASET.NUM_JOINTS": 17,
    "DATASET.MAX_NUM_PEOPLE": 30, "DATASET.TRAIN": "train2017", "DATASET.TEST": "val2017",
    "DATASET.DATA_FORMAT": "jpg", "DATASET.MAX_ROTATION": 30, "DATASET.MIN_SCALE": 0.75,
    "DATASET.MAX_SCALE": 1.25, "DATASET.SCALE_TYPE": "short", "DATASET.MAX_TRANSLATE": 40,
    "DATASET.INPUT_SIZE": 512, "DATASET.OUTPUT_SIZE": 128, "DATASET.FLIP": 0.5, "DATASET.SIGMA": 2.0,
    "DATASET.CENTER_SIGMA": 4.0, "DATASET.BG_WEIGHT": 0.1, "DATASET.OFFSET_RADIUS": 4,
    "TRAIN.LR_FACTOR": 0.1, "TRAIN.LR_STEP": [90, 110], "TRAIN.LR": 0.001, "TRAIN.OPTIMIZER": "adam",
    "TRAIN.MOMENTUM": 0.9, "TRAIN.WD": 0.0001, "TRAIN.NESTEROV": False, "TRAIN.GAMMA1": 0.99,
    "TRAIN.GAMMA2": 0.0, "TRAIN.BEGIN_EPOCH": 0, "TRAIN.END_EPOCH": 140, "TRAIN.RESUME": False,
    "TRAIN.CHECKPOINT": "", "TRAIN.IMAGES_PER_GPU": 32, "TRAIN.SHUFFLE": True,
    "TEST.IMAGES_PER_GPU": 32, "TEST.FLIP_TEST": True, "TEST.SCALE_FACTOR": [1], "TEST.MODEL_FILE": "",
    "TEST.POOL_THRESHOLD1": 300, "TEST.POOL_THRESHOLD2": 200, "TEST.NMS_THRE": 0.15, "TEST.NMS_NUM_THRE": 10,
    "TEST.KEYPOINT_THRESHOLD": 0.01, "TEST.DECREASE": 1.0, "TEST.MATCH_HMP": False,
    "TEST.ADJUST_THRESHOLD": 0.05, "TEST.MAX_ABSORB_DISTANCE": 75, "TEST.GUASSIAN_KERNEL": 6,
    "TEST.LOG_PROGRESS": True,
    "RESCORE.VALID": True, "RESCORE.GET_DATA": False, "RESCORE.END_EPOCH": 20, "RESCORE.LR": 0.001,
    "RESCORE.HIDDEN_LAYER": 256, "RESCORE.BATCHSIZE": 1024,
    "RESCORE.MODEL_FILE": "model/rescore/final_rescore_coco_kpt.pth",
    "RESCORE.DATA_FILE": "data/rescore_data/rescore_dataset_train_coco_kpt",
}


def lookup(cfg, dotted):
    for part in dotted.split("."):
        cfg = cfg[part]
    return cfg


@pytest.mark.parametrize("key", sorted(OFFICIAL_DEFAULTS))
def test_every_official_key_has_its_official_default(key):
    value = lookup(get_cfg(), key)
    expected = OFFICIAL_DEFAULTS[key]
    assert value == expected and type(value) is type(expected), f"{key}: {value!r} != {expected!r}"


def test_model_spec_accepts_any_architecture_keys(tmp_path):
    path = write(tmp_path, "spec.yaml", """
        MODEL:
          SPEC:
            FINAL_CONV_KERNEL: 1
            STAGES:
              NUM_CHANNELS: [[32, 64], [32, 64, 128]]
        """)
    cfg = load_cfg(path)
    assert cfg.MODEL.SPEC.STAGES.NUM_CHANNELS == [[32, 64], [32, 64, 128]]
    assert cfg.is_frozen()


def test_base_inheritance_child_overrides_parent_and_parent_fills_the_rest(tmp_path):
    (tmp_path / "sub").mkdir()
    write(tmp_path, "base.yaml", """
        TEST:
          NMS_THRE: 0.05
          NMS_NUM_THRE: 8
        """)
    child = write(tmp_path, "sub/child.yaml", """
        _BASE_: ../base.yaml
        TEST:
          NMS_THRE: 0.15
        """)
    cfg = load_cfg(child)
    assert cfg.TEST.NMS_THRE == 0.15
    assert cfg.TEST.NMS_NUM_THRE == 8


def test_base_loop_is_reported(tmp_path):
    a = write(tmp_path, "a.yaml", "_BASE_: b.yaml\n")
    write(tmp_path, "b.yaml", "_BASE_: a.yaml\n")
    with pytest.raises(ConfigError, match="loops back"):
        load_cfg(a)


def test_command_line_overrides_win_and_parse_lists_as_the_seeds_write_them(tmp_path):
    path = write(tmp_path, "c.yaml", "TEST:\n  NMS_THRE: 0.05\n")
    cfg = load_cfg(path, ["TEST.NMS_THRE", "0.15", "TEST.SCALE_FACTOR", "0.5,1,2",
                          "TEST.MATCH_HMP", "True", "DATASET.TEST", "test-dev2017"])
    assert cfg.TEST.NMS_THRE == 0.15
    assert cfg.TEST.SCALE_FACTOR == [0.5, 1, 2]
    assert cfg.TEST.MATCH_HMP is True
    assert cfg.DATASET.TEST == "test-dev2017"


def test_int_is_accepted_for_a_float_key_and_a_numeric_string_for_a_string_key():
    cfg = load_cfg(None, ["DATASET.SIGMA", "3", "NAME", "2024"])
    assert cfg.DATASET.SIGMA == 3.0 and isinstance(cfg.DATASET.SIGMA, float)
    assert cfg.NAME == "2024"


def test_unknown_key_in_file_names_key_file_and_closest_keys(tmp_path):
    path = write(tmp_path, "typo.yaml", "TEST:\n  NMS_THR: 0.1\n")
    with pytest.raises(ConfigError) as err:
        load_cfg(path)
    message = str(err.value)
    assert "TEST.NMS_THR" in message and path in message and "TEST.NMS_THRE" in message


def test_unknown_section_on_command_line_is_named():
    with pytest.raises(ConfigError, match="command line: unknown config key TRAINING.LR.*TRAIN.LR"):
        load_cfg(None, ["TRAINING.LR", "0.1"])


@pytest.mark.parametrize("key,value,expected", [
    ("TEST.FLIP_TEST", "3", "a bool"),
    ("DATASET.SIGMA", "abc", "a number"),
    ("TRAIN.END_EPOCH", "1.5", "an int"),
    ("TRAIN.LR_STEP", "True", "a list"),
])
def test_wrong_type_names_key_and_expected_type(key, value, expected):
    with pytest.raises(ConfigError) as err:
        load_cfg(None, [key, value])
    assert key in str(err.value) and expected in str(err.value)


def test_wrong_type_in_file_names_the_file(tmp_path):
    path = write(tmp_path, "t.yaml", "TRAIN:\n  END_EPOCH: many\n")
    with pytest.raises(ConfigError, match=f"{path}: config key TRAIN.END_EPOCH expects an int"):
        load_cfg(path)


def test_value_given_for_a_section_is_rejected(tmp_path):
    path = write(tmp_path, "s.yaml", "TEST: 3\n")
    with pytest.raises(ConfigError, match="TEST is a section"):
        load_cfg(path)


def test_missing_file_malformed_yaml_and_odd_overrides(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_cfg(str(tmp_path / "nope.yaml"))
    bad = write(tmp_path, "bad.yaml", "TEST: [1, 2\n")
    with pytest.raises(ConfigError, match="malformed yaml at line"):
        load_cfg(bad)
    with pytest.raises(ConfigError, match="KEY VALUE pairs"):
        load_cfg(None, ["TEST.FLIP_TEST"])


def test_data_dir_is_joined_as_the_official_update_config_does(tmp_path):
    cfg = load_cfg(None, ["DATA_DIR", str(tmp_path), "DATASET.ROOT", "coco", "TEST.MODEL_FILE", "m.pth"])
    assert cfg.DATASET.ROOT == str(tmp_path / "coco")
    assert cfg.TEST.MODEL_FILE == str(tmp_path / "m.pth")


def test_tools_report_config_errors_as_one_line_and_exit_2(tmp_path, repo_root):
    """The shared CLI wrapper: no traceback, exit code 2, the message on stderr."""
    path = write(tmp_path, "typo.yaml", "TEST:\n  NMS_THR: 0.1\n")
    script = ("import sys; from posekit.apis.cli import config_parser, load_cfg_from_args, run_tool\n"
              "def main(argv):\n    load_cfg_from_args(config_parser('t').parse_args(argv))\n"
              "run_tool(main)\n")
    env = {"PYTHONPATH": str(repo_root / "lib"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", script, "--cfg", path], capture_output=True, text=True, env=env)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "TEST.NMS_THR" in done.stderr
    assert "Traceback" not in done.stderr
    debug = subprocess.run([sys.executable, "-c", script, "--cfg", path, "--debug"], capture_output=True,
                           text=True, env=env)
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_yaml_strings_are_read_as_python_literals_like_yacs(tmp_path):
    """Official yamls write `GPUS: (0,1,2,3)`; yacs turns that string into a tuple."""
    path = write(tmp_path, "gpus.yaml", "GPUS: (0,1,2,3)\nNAME: '2024'\nDATASET:\n  TEST: val2017\n")
    cfg = load_cfg(path)
    assert cfg.GPUS == (0, 1, 2, 3)
    assert cfg.NAME == "2024" and cfg.DATASET.TEST == "val2017"
