"""One test per private PyTorch API behind compactvideo._torch_compat, each against a public computation."""

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from compactvideo import _torch_compat as compat


def test_mkldnn_convolution_is_the_public_convolution():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 5, 9, 8, generator=generator)
    weight, bias = torch.randn(4, 3, 3, 3, 2, generator=generator), torch.randn(4, generator=generator)
    expected = F.conv3d(x, weight, bias, stride=(1, 2, 1), padding=(1, 0, 1), dilation=(1, 1, 2))
    actual = compat.mkldnn_convolution(x, weight, bias, (1, 0, 1), (1, 2, 1), (1, 1, 2))
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)


def test_dispatch_mode_active_sees_a_flop_counter():
    assert not compat.dispatch_mode_active()
    with FlopCounterMode(display=False):
        assert compat.dispatch_mode_active()
    assert not compat.dispatch_mode_active()


def test_tensor_version_grows_with_in_place_changes_only():
    tensor = torch.zeros(3)
    before = compat.tensor_version(tensor)
    tensor + 1  # noqa: B018 (an out-of-place operation leaves the version alone)
    assert compat.tensor_version(tensor) == before
    tensor[1:].add_(1)  # through a view
    assert compat.tensor_version(tensor) == before + 1


def test_foreach_norm_and_mul_match_one_tensor_at_a_time():
    tensors = [torch.tensor([3.0, 4.0]), torch.tensor([[1.0, 2.0], [2.0, 4.0]])]
    norms = compat.foreach_norm(tensors)
    assert [float(n) for n in norms] == [5.0, 5.0]
    compat.foreach_mul_(tensors, [torch.tensor(2.0), torch.tensor(0.5)])
    torch.testing.assert_close(tensors[0], torch.tensor([6.0, 8.0]))
    torch.testing.assert_close(tensors[1], torch.tensor([[0.5, 1.0], [1.0, 2.0]]))


def test_builtin_flop_formula_counts_two_flops_per_multiply_add():
    formula = compat.builtin_flop_formula(compat.ATEN_MM)
    assert formula((3, 5), (5, 7)) == 2 * 3 * 5 * 7
    assert compat.builtin_flop_formula(compat.ATEN_BMM)((2, 3, 5), (2, 5, 7)) == 2 * 2 * 3 * 5 * 7


def test_raw_flop_formula_receives_tensors_and_the_fft_operators_are_the_ones_rfft_calls():
    seen = []

    @compat.raw_flop_formula
    def formula(x, *args, out_val=None, **kwargs):
        seen.append((type(x), x.dtype, out_val.dtype))
        return 11

    x = torch.randn(4, 16)
    mapping = {compat.ATEN_FFT_R2C: formula, compat.ATEN_FFT_C2R: formula, compat.ATEN_FFT_C2C: formula}
    with FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        spectrum = torch.fft.rfft(x)
        torch.fft.irfft(spectrum, n=16)
        torch.fft.fft(spectrum)
    assert counter.get_total_flops() == 33
    assert [dtypes for _, *dtypes in seen] == [
        [torch.float32, torch.complex64],
        [torch.complex64, torch.float32],
        [torch.complex64, torch.complex64],
    ]
    assert all(issubclass(kind, torch.Tensor) for kind, *_ in seen)


def test_aten_mul_is_the_element_wise_product():
    a, b = torch.randn(3), torch.randn(3)
    torch.testing.assert_close(compat.ATEN_MUL(a, b), a * b)


def test_empty_shared_is_born_in_shared_memory_so_sharing_it_copies_nothing():
    tensor = compat.empty_shared((2, 3, 5), torch.uint8)
    assert tensor.shape == (2, 3, 5) and tensor.dtype == torch.uint8 and tensor.is_contiguous()
    assert tensor.is_shared()
    address = tensor.data_ptr()
    tensor.share_memory_()  # public: moves an ordinary tensor's storage (a copy), a shared one stays put
    assert tensor.data_ptr() == address
    ordinary = torch.zeros(2, 3, 5)
    address = ordinary.data_ptr()
    ordinary.share_memory_()
    assert ordinary.data_ptr() != address
    numbers = compat.empty_shared((4,), torch.float32)
    numbers.numpy()[:] = [1.0, 2.0, 3.0, 4.0]  # the numpy view writes the shared storage
    assert numbers.tolist() == [1.0, 2.0, 3.0, 4.0]
