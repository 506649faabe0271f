import pytest
import torch

from compactvideo.errors import ConfigError
from compactvideo.nn import BlockCirculantLinear, CirculantLinear, Projection, make_linear


def test_make_linear_builds_what_the_projection_says():
    dense = make_linear(Projection(), 8, 4)
    assert type(dense) is torch.nn.Linear and dense.weight.shape == (4, 8)
    circulant = make_linear(Projection("circulant", factors=2, diagonal="sign", init="eccv2018"), 8, 4)
    assert isinstance(circulant, CirculantLinear)
    assert (circulant.factors, circulant.diagonal_mode, circulant.init_scheme) == (2, "sign", "eccv2018")
    block = make_linear(Projection("block-circulant", block_size=4), 8, 4, bias=False)
    assert isinstance(block, BlockCirculantLinear) and block.block_size == 4 and block.bias is None


@pytest.mark.parametrize(
    ("fields", "key", "reason"),
    [
        ({"kind": "toeplitz"}, "kind", "unknown projection kind 'toeplitz'"),
        ({"kind": "circulant", "factors": 0}, "factors", "positive integer, got 0"),
        ({"kind": "circulant", "factors": 1.5}, "factors", "positive integer, got 1.5"),
        ({"kind": "circulant", "factors": True}, "factors", "positive integer, got True"),
        ({"kind": "circulant", "diagonal": "random"}, "diagonal", "one of ('learned', 'sign', 'none')"),
        ({"kind": "circulant", "init": "xavier"}, "init", "one of ('ecai2020', 'eccv2018')"),
        ({"kind": "block-circulant"}, "block_size", "needs a positive integer block size, got None"),
        ({"kind": "block-circulant", "block_size": 0}, "block_size", "got 0"),
        ({"kind": "circulant", "block_size": 4}, "block_size", "block-circulant projections only"),
        ({"kind": "dense", "factors": 2}, "factors", "circulant projections only, not 'dense'"),
        (
            {"kind": "block-circulant", "block_size": 4, "diagonal": "none"},
            "diagonal",
            "circulant projections",
        ),
    ],
)
def test_every_field_is_checked_and_named(fields, key, reason):
    with pytest.raises(ConfigError) as caught:
        Projection(**fields)
    assert (
        caught.value.key == key and str(caught.value).startswith(f"{key}: ") and reason in str(caught.value)
    )


def test_make_linear_takes_a_projection():
    with pytest.raises(TypeError, match=r"takes a Projection such as Projection\('circulant', factors=3\)"):
        make_linear("circulant", 8, 4)
