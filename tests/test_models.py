import pytest
import torch

from fsrlib.methods.models import (
    Conv2dSame,
    CriticConfig,
    FeatureCritic,
    FeatureGenerator,
    GeneratorConfig,
    count_parameters,
    grid_side,
    layer_table,
    same_padding,
    to_grid,
)

TABLE2 = [(64, 64, 4), (32, 32, 8), (32, 32, 16), (16, 16, 32), (16, 16, 64), (8, 8, 128), (4096,)]
TABLE3 = [(32, 32, 8), (16, 16, 16), (8, 8, 32), (8, 8, 64), (1,)]


def test_generator_matches_table2_row_by_row():
    rows = layer_table(FeatureGenerator(GeneratorConfig(feature_dim=4096)), 4096)
    assert [shape for _, shape, _ in rows] == TABLE2
    assert [name for name, _, _ in rows][:2] == ["conv 8x8/1", "conv 5x5/2"]


def test_critic_matches_table3_row_by_row():
    rows = layer_table(FeatureCritic(CriticConfig(feature_dim=4096)), 4096)
    assert [shape for _, shape, _ in rows] == TABLE3


def test_parameter_counts():
    # conv params = k*k*c_in*c_out + c_out; linear = 8*8*128*4096 + 4096 (the 33.5M-parameter final layer)
    convs = [8 * 8 * 1 * 4 + 4, 5 * 5 * 4 * 8 + 8, 5 * 5 * 8 * 16 + 16, 5 * 5 * 16 * 32 + 32, 5 * 5 * 32 * 64 + 64,
             5 * 5 * 64 * 128 + 128]
    linear = 8 * 8 * 128 * 4096 + 4096
    assert count_parameters(FeatureGenerator(GeneratorConfig(feature_dim=4096))) == sum(convs) + linear == 33_831_836
    d_convs = [5 * 5 * 1 * 8 + 8, 5 * 5 * 8 * 16 + 16, 3 * 3 * 16 * 32 + 32, 3 * 3 * 32 * 64 + 64]
    assert count_parameters(FeatureCritic(CriticConfig(feature_dim=4096))) == sum(d_convs) + 8 * 8 * 64 + 1


def test_tensorflow_same_padding():
    assert same_padding(64, 8, 1) == (3, 4)  # odd total: the extra pixel goes after, as in TensorFlow
    assert same_padding(64, 5, 2) == (1, 2)
    assert same_padding(9, 5, 2) == (2, 2)
    x = torch.randn(1, 1, 64, 64)
    assert Conv2dSame(1, 4, 8)(x).shape == (1, 4, 64, 64)
    assert torch.nn.Conv2d(1, 4, 8, padding=3)(x).shape == (1, 4, 63, 63)  # why SAME matters


def test_same_padding_matches_tensorflow_reference_value():
    # a 2x2 all-ones kernel, stride 1, on a 3x3 input [[1,2,3],[4,5,6],[7,8,9]] under TF SAME pads one row and
    # column after: outputs are sums of 2x2 windows, e.g. bottom-right = 9 (9 + zero padding)
    conv = Conv2dSame(1, 1, 2, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)
    out = conv(torch.arange(1.0, 10.0).view(1, 1, 3, 3))
    assert out.squeeze().tolist() == [[12, 16, 9], [24, 28, 15], [15, 17, 9]]


def test_non_square_dimension_is_zero_padded():
    assert grid_side(1280) == 36 and grid_side(4096) == 64 and grid_side(1) == 1
    grid = to_grid(torch.ones(2, 1280))
    assert grid.shape == (2, 1, 36, 36) and grid.sum() == 2 * 1280
    g = FeatureGenerator(GeneratorConfig(feature_dim=1280))
    assert g(torch.randn(3, 1280)).shape == (3, 1280)
    assert FeatureCritic(CriticConfig(feature_dim=1280))(torch.randn(3, 1280)).shape == (3,)


def test_residual_generator_starts_as_identity():
    g = FeatureGenerator(GeneratorConfig(feature_dim=1280, residual=True)).eval()
    x = torch.randn(4, 1280)
    torch.testing.assert_close(g(x), x)


def test_wrong_shapes_raise():
    g = FeatureGenerator(GeneratorConfig(feature_dim=1280))
    with pytest.raises(ValueError, match="1280"):
        g(torch.randn(2, 4096))
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        to_grid(torch.randn(1280))
    with pytest.raises(ValueError, match="positive"):
        grid_side(0)


def test_dropout_reading_is_configurable():
    assert FeatureGenerator(GeneratorConfig()).dropout.p == pytest.approx(0.3)  # keep_prob 0.7
    assert FeatureGenerator(GeneratorConfig(dropout=0.7)).dropout.p == pytest.approx(0.7)
