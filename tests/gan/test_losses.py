import torch

from augment.gan.losses import critic_loss, generator_loss, gradient_penalty, interpolate


def test_critic_and_generator_losses():
    real, fake = torch.tensor([3.0, 5.0]), torch.tensor([1.0, -1.0])
    assert critic_loss(real, fake).item() == -(4.0 - 0.0)
    assert generator_loss(fake).item() == 0.0
    assert generator_loss(torch.tensor([2.0, 4.0])).item() == -3.0


class LinearCritic(torch.nn.Module):
    """D(x, y) = <w, x> + b: its input gradient is w everywhere, so GP = (||w|| - 1)^2."""

    def __init__(self, w: torch.Tensor):
        super().__init__()
        self.w = torch.nn.Parameter(w)

    def forward(self, x, labels):
        return (x * self.w).flatten(1).sum(1) + 0.5


def test_gradient_penalty_of_a_linear_critic_is_hand_computable():
    w = torch.full((1, 4, 4), 0.5)  # ||w|| = sqrt(16 * 0.25) = 2
    critic = LinearCritic(w)
    real, fake = torch.randn(3, 1, 4, 4), torch.randn(3, 1, 4, 4)
    alpha = torch.rand(3, 1, 1, 1)
    gp = gradient_penalty(critic, real, fake, torch.zeros(3, dtype=torch.long), alpha)
    assert abs(gp.item() - (2.0 - 1.0) ** 2) < 1e-6
    gp.backward()  # create_graph=True: the penalty trains the critic
    # d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w|| = 0.5 everywhere
    torch.testing.assert_close(critic.w.grad, torch.full_like(w, 0.5))


def test_penalty_is_per_sample_not_per_batch():
    grads = torch.stack([torch.full((1, 2, 2), 1.0), torch.zeros(1, 2, 2)])  # norms 2 and 0
    images, labels, alpha = torch.zeros(2, 1, 2, 2), torch.zeros(2, dtype=torch.long), torch.ones(2, 1, 1, 1)
    gp = gradient_penalty(None, images, images, labels, alpha, input_gradient=lambda critic, x, y: grads)
    assert gp.item() == ((2 - 1) ** 2 + (0 - 1) ** 2) / 2


def test_interpolate_endpoints():
    real, fake = torch.ones(2, 1, 2, 2), torch.zeros(2, 1, 2, 2)
    alpha = torch.tensor([1.0, 0.25]).view(2, 1, 1, 1)
    out = interpolate(real, fake, alpha)
    assert torch.all(out[0] == 1) and torch.all(out[1] == 0.25)
