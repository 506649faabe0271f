"""The paper scale, tested for how it builds its runs: configs, options and torchrun command lines."""

import glob
import json
import shlex

import pytest

from compactvideo.cli import build_parser
from compactvideo.cli.options import contract_overrides, loader_options
from compactvideo.demo import DemoOptions
from compactvideo.errors import CompactVideoError
from compactvideo.models import (
    PAPER_PARAMETERS,
    PRESETS,
    FrameData,
    config_from_dict,
    override_data,
    resolve_model_spec,
)
from compactvideo.reproduce import ReproduceOptions, reproduce
from compactvideo.reproduce.araujo2018 import (
    BENCHMARK,
    FACTORS,
    MODELS,
    PRESET_OF,
    fc_parameters,
    paper_size_config,
    parameters_of,
)
from compactvideo.reproduce.plan import PAPER_DATA, paper_training, train_flags


def test_paper_size_models_are_the_presets_and_count_the_published_parameters():
    for model, preset in PRESET_OF.items():
        assert paper_size_config(model) == PRESETS[preset]
        assert parameters_of(paper_size_config(model)) == PAPER_PARAMETERS[preset]
    assert set(PRESET_OF) < set(MODELS)


def test_paper_size_fc_parameters_are_table_b():
    # Table B: 6,291,456 (8192 x 512 + 4096 x 512) dense, then 24,576 per factor (c and d of 8192 and 4096;
    # the table's 12,288 for one factor is half of that, inconsistent with its own 3- and 6-factor counts).
    counts = [fc_parameters(paper_size_config(entry.model)) for entry in FACTORS]
    assert counts == [6_291_456, 24_576, 73_728, 147_456]


def test_paper_size_benchmark_models_match_the_figure_up_to_the_ensemble_head():
    single, ensembles = BENCHMARK[:5], BENCHMARK[5:]
    for entry, millions in single:
        assert parameters_of(paper_size_config(entry.model)) / 1e6 == pytest.approx(millions, abs=1.0)
    # A MoE (4 experts + 1 gate) on the concatenated outputs of two embeddings has 2 x 1024 more inputs
    # per modality than on their average: 2048 x 3862 x 9 more weights, which the figure's counts hold.
    concatenation = 2048 * 3862 * 9
    for entry, millions in ensembles:
        ours = parameters_of(paper_size_config(entry.model))
        assert (ours + concatenation) / 1e6 == pytest.approx(millions, abs=1.0)


def test_plan_trains_every_model_with_the_papers_recipe_under_torchrun(tmp_path):
    train, valid = str(tmp_path / "yt8m" / "train*.tfrecord"), str(tmp_path / "yt8m" / "valid*.tfrecord")
    options = ReproduceOptions(scale="paper", train=train, valid=valid, nproc_per_node=4)
    out = tmp_path / "repro"
    reproduce("araujo2018", out, options, experiments=["compactness", "pooling"], plan_only=True)
    plan = json.loads((out / "plan.json").read_text())
    keys = [run["key"] for run in plan]
    assert keys == [
        "video-dense-seed0",
        "video-compact-dbof-seed0",
        "video-compact-fc-seed0",
        "video-compact-moe-seed0",
        "dbof-dense-seed0",
        "dbof-mean-seed0",
        "dbof-max-seed0",
    ]
    lines = (out / "plan.sh").read_text().splitlines()
    commands = [shlex.split(line) for line in lines if line.startswith("torchrun")]
    assert len(commands) == len(plan)
    parser = build_parser()
    for run, command in zip(plan, commands, strict=True):
        assert command[:6] == [
            "torchrun",
            "--standalone",
            "--nproc_per_node=4",
            "-m",
            "compactvideo.cli",
            "train",
        ]
        args = parser.parse_args(command[5:])
        run_dir = out / "runs" / run["key"]
        assert (args.train, args.valid, args.out) == (train, valid, run_dir)
        # the config the command trains is the run's model, read back through the CLI's own resolver
        config = resolve_model_spec(args.model)
        assert config == config_from_dict(run["arguments"]["config"])
        # Araujo et al.: batch 80 per GPU, Adam 2e-4 x 0.8 every 4M examples, clipping at 1, 15 epochs,
        # robust 10 x 15 frames of split halves, L2-normalised frames
        assert (args.batch_size, args.learning_rate, args.lr_decay, args.lr_decay_examples) == (
            80,
            2e-4,
            0.8,
            4e6,
        )
        assert (args.clip_norm, args.epochs, args.max_examples) == (1.0, 15, None)
        assert loader_options(args).split_half
        contract = contract_overrides(args)
        assert contract == {"frames_per_sample": 15, "max_frames": 300, "l2_normalize": True}
        assert args.valid_every * 80 * 4 == pytest.approx(1_000_000, abs=80 * 4)
        # the model as trained: its config with the command's data contract
        sampling = override_data(config, contract, trained=False).frame_sampling()
        if run["key"].startswith("dbof-m"):  # mean and max pooling read every frame
            assert (config.samples, sampling.mode) == (1, "all")
        else:
            assert (sampling.mode, sampling.samples, sampling.frames_per_sample) == ("robust", 10, 15)
    assert paper_size_config("dbof-mean").embeddings[0].pooling == "mean"


def test_flags_give_back_the_options_they_were_made_from():
    options = paper_training(nproc_per_node=2, seed=3)
    args = build_parser().parse_args(["train", "--train", "x", "--out", "y", *train_flags(options)])
    for name in ("batch_size", "learning_rate", "lr_decay", "clip_norm", "epochs", "seed", "valid_every"):
        assert getattr(args, name) == getattr(options, name)
    assert int(args.lr_decay_examples) == options.lr_decay_examples
    assert loader_options(args) == options.data
    contract = ["train", "--train", "x", "--out", "y", *train_flags(PAPER_DATA)]
    assert FrameData(**contract_overrides(build_parser().parse_args(contract))) == PAPER_DATA


def test_the_papers_data_contract_is_the_paper_presets():
    assert all(PRESETS[preset].data == PAPER_DATA for preset in PRESET_OF.values())


def test_paper_scale_needs_real_data():
    with pytest.raises(CompactVideoError, match="--scale paper trains on real data"):
        ReproduceOptions(scale="paper")


def test_pooling_also_trains_on_synthetic_data_with_outlier_frames(tmp_path):
    from compactvideo.data.yt8m import read_records
    from compactvideo.reproduce.araujo2018 import EXPERIMENTS
    from compactvideo.reproduce.experiment import Context

    tiny = DemoOptions(train_videos=8, valid_videos=4, classes=6, max_frames=10, examples=16, batch_size=8)
    context = Context(tmp_path, ReproduceOptions(seeds=1, budget=tiny))
    pooling = next(experiment for experiment in EXPERIMENTS if experiment.name == "pooling")
    jobs = {job.key: job for job in pooling.jobs(context)}
    assert list(jobs) == [
        "dbof-dense-seed0",
        "dbof-mean-seed0",
        "dbof-max-seed0",
        "dbof-dense-outliers0.1-seed0",
        "dbof-mean-outliers0.1-seed0",
        "dbof-max-outliers0.1-seed0",
    ]
    standard, harder = (
        jobs[key].arguments["train_data"] for key in ("dbof-max-seed0", "dbof-max-outliers0.1-seed0")
    )
    assert harder == str(tmp_path / "outlier-frames-0.1" / "data" / "train" / "*.tfrecord")
    first = [next(iter(read_records(sorted(glob.glob(pattern))[0]))) for pattern in (standard, harder)]
    assert first[0].id == first[1].id and (first[0].rgb != first[1].rgb).any()
    # with the user's data there is no synthetic variant: only the paper's three rows
    user = Context(tmp_path / "user", ReproduceOptions(seeds=1, budget=tiny, train=standard, valid=standard))
    assert [job.key for job in pooling.jobs(user)] == [
        "dbof-dense-seed0",
        "dbof-mean-seed0",
        "dbof-max-seed0",
    ]
