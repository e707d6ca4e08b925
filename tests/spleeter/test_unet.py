"""UNet: TensorFlow "same" padding, layer order, activations, segmentation, logits mode."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from unmix.errors import ModelLoadingError
from unmix.models.unet import UNet, decoder_activation, encoder_activation, polyphase_transposed_conv


def tf_conv2d_same(x: np.ndarray, kernel: np.ndarray, stride: int, dilation: int = 1) -> np.ndarray:
    """Direct-loop oracle of ``tf.nn.conv2d(padding="SAME")`` in NHWC with a ``[kh, kw, in, out]`` kernel."""
    _, height, width, _ = x.shape
    kh, kw = kernel.shape[:2]
    out = []
    for size, k in ((height, kh), (width, kw)):
        eff = (k - 1) * dilation + 1
        n_out = -(-size // stride)
        total = max((n_out - 1) * stride + eff - size, 0)
        out.append((n_out, total // 2))
    (oh, ph), (ow, pw) = out
    y = np.zeros((x.shape[0], oh, ow, kernel.shape[3]))
    for i in range(oh):
        for j in range(ow):
            for a in range(kh):
                for b in range(kw):
                    r, c = i * stride + a * dilation - ph, j * stride + b * dilation - pw
                    if 0 <= r < height and 0 <= c < width:
                        y[:, i, j, :] += x[:, r, c, :] @ kernel[a, b]
    return y


def test_encoder_conv_matches_tf_same_padding() -> None:
    torch.manual_seed(1)
    net = UNet(nb_channels=2, nb_bins=64, segment_frames=64)
    block = net.encoder[0]
    x = torch.randn(2, 2, 10, 12)  # NCHW, even sizes as in the U-Net
    kernel = block.conv.weight.detach().permute(2, 3, 1, 0).numpy()  # -> [kh, kw, in, out]
    expected = tf_conv2d_same(x.permute(0, 2, 3, 1).double().numpy(), kernel.astype(np.float64), stride=2)
    expected += block.conv.bias.detach().numpy()
    conv, _ = block(x)
    np.testing.assert_allclose(conv.detach().permute(0, 2, 3, 1).numpy(), expected, atol=1e-5)
    # symmetric padding=2 would give the same shape but shifted values: make sure the test can tell
    wrong = torch.nn.functional.conv2d(x, block.conv.weight, block.conv.bias, stride=2, padding=2)
    assert np.abs(wrong.detach().permute(0, 2, 3, 1).numpy() - expected).max() > 1e-2


@pytest.mark.parametrize("index", [2, 4, 5])
def test_transposed_conv_is_the_adjoint_of_tf_same_conv(index: int) -> None:
    """TF's conv2d_transpose(SAME) is the gradient (adjoint) of conv2d(SAME) with the same kernel.

    Block 2 uses torch's transposed convolution, blocks 4 and 5 the polyphase form on CPU.
    """
    torch.manual_seed(2)
    net = UNet(nb_channels=2, nb_bins=64, segment_frames=64)
    block = net.decoder[index].eval()  # keep only the transposed conv and its cropping
    assert block.polyphase == (index >= 4)
    block.activation, block.bn = nn.Identity(), nn.Identity()
    block.deconv.bias.data.zero_()
    weight = block.deconv.weight.detach()  # torch [in, out, kh, kw] = TF [kh, kw, out, in].permute(3, 2, 0, 1)
    tf_kernel = weight.permute(2, 3, 1, 0).numpy().astype(np.float64)  # [kh, kw, out, in]
    y = torch.randn(1, weight.shape[0], 4, 6)  # deconv input (H, W)
    x = np.random.default_rng(0).standard_normal((1, 8, 12, weight.shape[1]))  # deconv output space, NHWC
    with torch.no_grad():
        up = block(y)
    assert up.shape == (1, weight.shape[1], 8, 12)
    lhs = float((up.double().permute(0, 2, 3, 1).numpy() * x).sum())
    # conv2d(SAME) maps the (8, 12, out) space to (4, 6, in) with the kernel viewed as [kh, kw, out, in]
    rhs = float((tf_conv2d_same(x, tf_kernel, stride=2) * y.double().permute(0, 2, 3, 1).numpy()).sum())
    assert lhs == pytest.approx(rhs, rel=1e-5, abs=1e-4)


def test_polyphase_equals_transposed_conv() -> None:
    torch.manual_seed(8)
    x = torch.randn(2, 64, 6, 10)
    weight, bias = torch.randn(64, 16, 5, 5), torch.randn(16)
    direct = torch.nn.functional.conv_transpose2d(x, weight, bias, stride=2)[:, :, 1:13, 1:21]
    np.testing.assert_allclose(polyphase_transposed_conv(x, weight, bias).numpy(), direct.numpy(), atol=1e-4)


def test_mask_conv_matches_tf_same_dilated() -> None:
    torch.manual_seed(3)
    net = UNet(nb_channels=2, nb_bins=64, segment_frames=64)
    x = torch.randn(1, 1, 9, 11)
    kernel = net.mask.weight.detach().permute(2, 3, 1, 0).numpy().astype(np.float64)
    expected = tf_conv2d_same(x.permute(0, 2, 3, 1).double().numpy(), kernel, stride=1, dilation=2)
    expected += net.mask.bias.detach().numpy()
    np.testing.assert_allclose(net.mask(x).detach().permute(0, 2, 3, 1).numpy(), expected, atol=1e-5)


@pytest.mark.parametrize(
    ("name", "expected", "slope"),
    [("ReLU", nn.ReLU, None), ("ELU", nn.ELU, None), ("LeakyReLU", nn.LeakyReLU, 0.2), (None, nn.LeakyReLU, 0.2),
     ("other", nn.LeakyReLU, 0.2)],
)
def test_encoder_activation_rule(name: str | None, expected: type, slope: float | None) -> None:
    act = encoder_activation(name)
    assert type(act) is expected
    if slope is not None:
        assert act.negative_slope == slope


@pytest.mark.parametrize(
    ("name", "expected"),
    [("LeakyReLU", nn.LeakyReLU), ("ELU", nn.ELU), ("ReLU", nn.ReLU), (None, nn.ReLU), ("other", nn.ReLU)],
)
def test_decoder_activation_rule(name: str | None, expected: type) -> None:
    act = decoder_activation(name)
    assert type(act) is expected
    if expected is nn.LeakyReLU:
        assert act.negative_slope == 0.2


def test_layout_batchnorm_dropout_and_activations_in_use() -> None:
    net = UNet(conv_activation="ELU", deconv_activation="ELU")
    assert net.encoder[5].bn is None  # Spleeter's BN6 is dead code
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            assert module.eps == 1e-3 and module.momentum == 0.01
    assert [isinstance(b.dropout, nn.Dropout) for b in net.decoder] == [True] * 3 + [False] * 3
    assert all(isinstance(b.activation, nn.ELU) for b in net.encoder[:5])
    assert all(isinstance(b.activation, nn.ELU) for b in net.decoder)
    assert sum(p.numel() for p in net.parameters()) + sum(b.numel() for b in net.buffers() if b.dtype.is_floating_point
                                                          ) == 9_826_759 - 4 * 512  # minus BN6's 4 x 512


def test_skips_use_pre_batchnorm_conv_outputs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The decoder concatenates [raw encoder conv output, upsampled] (before BatchNorm and activation)."""
    torch.manual_seed(4)
    net = UNet(nb_bins=64, segment_frames=64).eval()
    for module in net.modules():  # make BatchNorm far from identity so the test can tell
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
    x = torch.rand(1, 2, 64, 64)
    cat_inputs = []
    original_cat = torch.cat

    def spy(tensors, dim=0):  # type: ignore[no-untyped-def]
        cat_inputs.append([t.detach().clone() for t in tensors])
        return original_cat(tensors, dim=dim)

    monkeypatch.setattr(torch, "cat", spy)
    with torch.no_grad():
        net.segments(x)
    monkeypatch.undo()
    assert len(cat_inputs) == 5
    raw = x
    with torch.no_grad():
        for k, block in enumerate(net.encoder[:5]):
            conv, act = block(raw)
            assert torch.equal(cat_inputs[4 - k][0], conv)  # skip first on the channel axis, raw conv output
            raw = act


def test_forward_crops_bins_pads_frames_and_segments_independently() -> None:
    torch.manual_seed(5)
    net = UNet(nb_bins=128, segment_frames=64).eval()
    x = torch.rand(2, 2, 200, 150)
    with torch.no_grad():
        y = net(x)
        assert y.shape == (2, 2, 128, 150)
        # segment 2 (frames 64..127) computed alone gives the same values
        alone = net(x[..., 64:128])
        np.testing.assert_allclose(y[..., 64:128].numpy(), alone.numpy(), atol=1e-5)
        # the last partial segment is zero-padded: same as padding the input by hand
        padded = torch.nn.functional.pad(x[..., 128:], (0, 64 - 22))
        np.testing.assert_allclose(y[..., 128:].numpy(), net(padded)[..., :22].numpy(), atol=1e-5)
        assert (y >= 0).all() and (y <= x[:, :, :128]).all()  # sigmoid mask x magnitude


def test_output_logits_mode() -> None:
    torch.manual_seed(6)
    masked = UNet(nb_bins=64, segment_frames=64).eval()
    logits = UNet(nb_bins=64, segment_frames=64, output_logits=True).eval()
    logits.load_state_dict(masked.state_dict())
    x = torch.rand(1, 2, 70, 64)
    with torch.no_grad():
        raw = logits(x)
        assert (raw < 0).any()
        np.testing.assert_allclose((torch.sigmoid(raw) * x[:, :, :64]).numpy(), masked(x).numpy(), atol=1e-6)
    assert logits.output_logits and not masked.output_logits


def test_invalid_sizes_raise() -> None:
    with pytest.raises(ModelLoadingError, match="multiple of 64"):
        UNet(nb_bins=1000)
    with pytest.raises(ModelLoadingError, match="conv_n_filters"):
        UNet(conv_n_filters=(16, 32))
    net = UNet(nb_bins=64, segment_frames=64)
    with pytest.raises(ModelLoadingError, match="bins"):
        net(torch.rand(1, 2, 32, 10))


def test_torchscript_matches_eager() -> None:
    torch.manual_seed(7)
    net = UNet(nb_bins=64, segment_frames=64, conv_activation="ELU", deconv_activation="ELU").eval()
    x = torch.rand(1, 2, 80, 70)
    scripted = torch.jit.script(net)
    with torch.no_grad():
        np.testing.assert_allclose(scripted(x).numpy(), net(x).numpy(), atol=1e-6)


@pytest.mark.parametrize(("conv", "deconv"), [("LeakyReLU", "ReLU"), ("ELU", "ELU"), ("ReLU", "LeakyReLU")])
def test_training_backward_with_inplace_activations(conv: str, deconv: str) -> None:
    torch.manual_seed(9)
    net = UNet(nb_bins=64, segment_frames=64, conv_activation=conv, deconv_activation=deconv).train()
    x = torch.rand(2, 2, 70, 100, requires_grad=True)
    net(x).square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert all(p.grad is not None for p in net.parameters())
    # the same gradients as with out-of-place activations
    reference = UNet(nb_bins=64, segment_frames=64, conv_activation=conv, deconv_activation=deconv).train()
    reference.load_state_dict(net.state_dict())
    for module in reference.modules():
        if hasattr(module, "inplace"):
            module.inplace = False
    x2 = x.detach().clone().requires_grad_(True)
    torch.manual_seed(10)
    net.zero_grad()
    x.grad = None
    net(x).square().mean().backward()
    torch.manual_seed(10)
    reference(x2).square().mean().backward()
    np.testing.assert_allclose(x.grad.numpy(), x2.grad.numpy(), rtol=1e-4, atol=1e-7)
