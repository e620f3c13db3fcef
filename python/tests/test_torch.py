"""longattn.attention on PyTorch tensors: torch in, torch out, bfloat16, zero copy. Skipped
where torch is not installed."""

import pytest

torch = pytest.importorskip("torch")

import longattn  # noqa: E402


def test_torch_tensors_in_and_out_match_sdpa():
    q, k, v = (torch.randn(1, 4, 96, 32, generator=torch.Generator().manual_seed(s)) for s in (1, 2, 3))
    out = longattn.attention(q, k, v, causal=True)
    assert isinstance(out, torch.Tensor)
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert (out - expected).abs().max() < 1e-5


def test_torch_bfloat16_and_out():
    q, k, v = (torch.randn(1, 2, 64, 32, generator=torch.Generator().manual_seed(s)).to(torch.bfloat16) for s in (4, 5, 6))
    out = torch.empty(1, 2, 64, 32)
    assert longattn.attention(q, k, v, out=out) is out
    expected = torch.nn.functional.scaled_dot_product_attention(q.float(), k.float(), v.float())
    assert (out - expected).abs().max() < 2e-2
