import pytest
import torch

from fsrlib.methods.losses import (
    FocalDistance,
    adversarial_loss,
    critic_loss,
    focal_distance,
    generator_loss,
    gradient_penalty,
    mse_loss,
)


def test_known_values():
    f_hr = torch.zeros(2, 2)
    f_sr = torch.tensor([[3.0, 4.0], [0.0, 1.0]])  # distances 5 and 1
    assert focal_distance(f_sr, f_hr, r=1) == pytest.approx(3.0)  # Eq. 8: (5 + 1) / 2
    assert focal_distance(f_sr, f_hr, r=2) == pytest.approx(13.0)  # Eq. 9, r=2: (25 + 1) / 2
    assert focal_distance(f_sr, f_hr, r=3) == pytest.approx(63.0)  # (125 + 1) / 2
    assert mse_loss(f_sr, f_hr) == pytest.approx(26 / 4)
    assert critic_loss(torch.tensor([1.0, 3.0]), torch.tensor([0.5, 0.5])) == pytest.approx(0.5 - 2.0)
    assert adversarial_loss(torch.tensor([1.0, 2.0])) == pytest.approx(-1.5)


def test_generator_loss_is_eq9():
    f_sr, f_hr, d_fake = torch.ones(4, 3), torch.zeros(4, 3), torch.full((4,), 0.25)
    out = generator_loss(d_fake, f_sr, f_hr, r=2, distance_weight=0.5)
    assert out["adversarial"] == pytest.approx(-0.25) and out["distance"] == pytest.approx(3.0)
    assert out["total"] == pytest.approx(-0.25 + 0.5 * 3.0)


@pytest.mark.parametrize("r", [1.0, 2.0, 3.0])
def test_perfect_prediction_is_zero(r):
    f = torch.randn(5, 7)
    assert focal_distance(f, f.clone(), r) == 0
    assert mse_loss(f, f.clone()) == 0


@pytest.mark.parametrize("r", [1.0, 2.0, 3.0])
def test_gradients_flow(r):
    f_sr = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    f_hr = torch.randn(3, 4, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: focal_distance(x, f_hr, r), (f_sr,))


def test_module_equals_function():
    a, b = torch.randn(4, 6), torch.randn(4, 6)
    assert FocalDistance(3.0)(a, b) == focal_distance(a, b, 3.0)


def test_shape_errors():
    with pytest.raises(ValueError, match="same shape"):
        focal_distance(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="same shape"):
        mse_loss(torch.zeros(3), torch.zeros(3))
    with pytest.raises(ValueError, match="positive"):
        focal_distance(torch.zeros(2, 3), torch.zeros(2, 3), r=0)


def test_gradient_penalty_zero_for_unit_slope_critic():
    critic = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[0.6, 0.8]]))  # gradient norm exactly 1 everywhere
    gp = gradient_penalty(lambda x: critic(x).squeeze(1), torch.randn(8, 2), torch.randn(8, 2))
    assert float(gp.detach()) == pytest.approx(0.0, abs=1e-12)
