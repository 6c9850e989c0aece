"""GRACE pieces on a tiny LM: rollouts and pooling, reward, advantages, KL, one policy step, the
folder marker recognised by load_model, and encoding through embedkit's engine."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

TEXTS = ["the river flows into the sea", "a cat sat on the mat", "stocks fell on monday", "rain is expected"]


@pytest.fixture()
def encoder(grace_settings):
    from embedkit.generative.grace import create_grace_encoder

    torch.manual_seed(0)
    return create_grace_encoder(grace_settings, device="cpu", name="tiny-grace")


def test_rollout_masks_and_pooling(encoder):
    from embedkit.generative.rationale import forward_states, pool

    rollout = encoder.rollouts(TEXTS[:2], keep_hidden=True)
    ids, text = rollout.input_ids, rollout.text_mask
    tok = encoder.lm.tokenizer
    assert tok.decode(ids[0][text[0]].tolist()) == tok.decode(tok(TEXTS[0], add_special_tokens=False)["input_ids"])
    assert rollout.rationale_mask.sum(-1).tolist() == rollout.lengths
    assert not (rollout.text_mask & rollout.rationale_mask).any()
    assert (rollout.policy_mask >= rollout.rationale_mask).all()
    # the states kept from generation equal a separate forward pass over prompt + rationale
    with torch.no_grad():
        _, hidden = forward_states(encoder.lm.model, rollout)
    for mode in ("input_and_rationale", "rationale"):
        torch.testing.assert_close(pool(rollout.hidden, rollout, mode), pool(hidden, rollout, mode), atol=1e-4, rtol=1e-4)
    by_hand = hidden[0][text[0] | rollout.rationale_mask[0]].mean(0)
    torch.testing.assert_close(pool(hidden, rollout, "input_and_rationale")[0], by_hand, atol=1e-5, rtol=1e-5)
    # log-probs come for the rationale columns only, and equal those of a full-vocabulary pass
    with torch.no_grad():
        logprobs, _ = forward_states(encoder.lm.model, rollout, need_hidden=False)
        mask = rollout.attention_mask
        full = encoder.lm.model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0)).logits
    start = rollout.rationale_start
    expected = torch.log_softmax(full[:, start - 1:-1], -1).gather(-1, ids[:, start:].unsqueeze(-1)).squeeze(-1)
    assert logprobs.shape == (2, ids.shape[1] - start)
    policy = rollout.policy_mask[:, start:]
    torch.testing.assert_close(logprobs[policy], expected[policy], atol=1e-4, rtol=1e-4)


def test_rollout_that_ends_has_its_end_token_in_the_policy_mask(encoder):
    lm = encoder.lm.model.get_base_model()
    eos = encoder.lm.tokenizer.eos_token_id
    head = torch.nn.Linear(lm.lm_head.in_features, lm.lm_head.out_features, bias=True)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        head.bias[eos] = 100.0  # the LM always ends at once
    lm.lm_head = head
    rollout = encoder.rollouts(TEXTS[:1])
    assert rollout.finished == [True] and rollout.lengths == [0] and rollout.rationales == [""]
    assert int(rollout.policy_mask.sum()) == 1 and int(rollout.rationale_mask.sum()) == 0
    assert rollout.input_ids[0][rollout.policy_mask[0]].tolist() == [eos]


def test_contrastive_reward_by_hand():
    from embedkit.generative.grace_reward import contrastive_rewards

    torch.manual_seed(0)
    q, p = torch.randn(3, 2, 5), torch.randn(3, 2, 5)
    rq, rp = contrastive_rewards(q, p, temperature=0.5)
    pm = torch.nn.functional.normalize(torch.nn.functional.normalize(p, dim=-1).mean(1), dim=-1)
    qn = torch.nn.functional.normalize(q[1, 0], dim=-1)
    logits = (pm @ qn) / 0.5
    assert rq[1, 0] == pytest.approx(float(torch.log_softmax(logits, -1)[1]), abs=1e-5)
    assert rq.shape == rp.shape == (3, 2) and (rq <= 0).all()
    # a query sample pointing at its own positive beats one pointing at another row's
    p = torch.eye(3).unsqueeze(1).repeat(1, 2, 1)
    q = torch.stack([torch.stack([torch.eye(3)[i], torch.eye(3)[(i + 1) % 3]]) for i in range(3)])
    rq, _ = contrastive_rewards(q, p, temperature=0.1)
    assert (rq[:, 0] > rq[:, 1]).all()


def test_length_and_format_terms():
    from embedkit.generative.grace_reward import RewardSettings, format_reward, length_reward

    s = RewardSettings(length_weight=0.5, min_tokens=4, format_weight=0.3)
    assert length_reward([0, 2, 4, 9], s).tolist() == pytest.approx([-0.5, -0.25, 0.0, 0.0])
    got = format_reward(["a fine rationale", "cut off", "go go go go go go go go"], [True, False, True], s)
    assert got.tolist() == pytest.approx([0.0, -0.3, -0.3])


def test_group_relative_advantages():
    from embedkit.generative.grpo import group_relative_advantages

    r = torch.tensor([[1.0, 2.0, 3.0, 6.0], [5.0, 5.0, 5.0, 5.0]])
    a = group_relative_advantages(r)
    assert a[0].mean().abs() < 1e-6 and a[0].std(unbiased=False) == pytest.approx(1.0, abs=1e-4)
    assert a[1].abs().max() == 0  # a group with equal rewards teaches nothing
    assert group_relative_advantages(r, normalize_std=False)[0].tolist() == pytest.approx([-2, -1, 0, 3])


def test_kl_k3():
    from embedkit.generative.grpo import kl_k3

    lp = torch.log(torch.tensor([0.2, 0.5, 0.9]))
    assert kl_k3(lp, lp).abs().max() == 0
    ref = torch.log(torch.tensor([0.4, 0.1, 0.9]))
    k = kl_k3(lp, ref)
    assert (k >= 0).all() and k[0] > 0 and k[2] == 0
    # unbiased: E_p[k3] = KL(p || q) for a two-outcome distribution
    p, q = torch.tensor([0.3, 0.7]), torch.tensor([0.6, 0.4])
    expected = (p * (p / q).log()).sum()
    assert float((p * kl_k3(p.log(), q.log())).sum()) == pytest.approx(float(expected), abs=1e-6)


def test_grpo_loss_pushes_up_tokens_with_positive_advantage():
    from embedkit.generative.grpo import grpo_loss

    logits = torch.zeros(2, 3, requires_grad=True)
    lp = torch.log_softmax(logits, -1)[:, :2]
    parts = grpo_loss(lp, lp.detach(), lp.detach(), torch.tensor([1.0, -1.0]), torch.ones(2, 2), kl_coef=0.1)
    parts.loss.backward()
    assert logits.grad[0, :2].sum() < 0 < logits.grad[1, :2].sum()  # descent raises row 0, lowers row 1
    assert parts.kl == pytest.approx(0.0) and parts.clip_fraction == 0.0


def test_reference_is_the_base_with_the_adapter_disabled(encoder, tiny_lm_dir):
    from embedkit.generative.lm import load_causal_lm
    from embedkit.generative.rationale import forward_states

    model = encoder.lm.model
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.add_(0.5)  # make the adapter matter
    rollout = encoder.rollouts(TEXTS[:2])
    base = load_causal_lm(str(tiny_lm_dir), device="cpu").model
    with torch.no_grad():
        with model.disable_adapter():
            ref, _ = forward_states(model, rollout, need_hidden=False)
        plain, _ = forward_states(base, rollout, need_hidden=False)
        tuned, _ = forward_states(model, rollout, need_hidden=False)
    torch.testing.assert_close(ref, plain, atol=1e-5, rtol=1e-5)
    assert (tuned - plain).abs().max() > 1e-4


def test_one_policy_step_changes_lora_weights_and_nothing_else(encoder):
    from embedkit.generative.grace_train import GraceParams, policy_step

    model = encoder.lm.model
    with torch.no_grad():  # non-zero B so both LoRA matrices get gradients
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n, p in model.named_parameters() if p.requires_grad)
    optimizer = torch.optim.AdamW(trainable, lr=1e-2)
    params = GraceParams(group_size=3, max_input_tokens=16, max_rationale_tokens=6)
    torch.manual_seed(1)
    stats = policy_step(encoder, optimizer, list(zip(TEXTS[:2], TEXTS[2:])), params)
    assert all(math.isfinite(v) for v in stats.values())
    changed = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert changed and all("lora_" in n for n in changed)
    assert any("lora_A" in n for n in changed) and any("lora_B" in n for n in changed)


def test_grace_folder_round_trip_through_load_model_and_encode(encoder, tmp_path):
    from embedkit.encoding import cached_encode, encode
    from embedkit.generative.grace import GRACE_MARKER, GraceEncoder, encode_with_rationales
    from embedkit.models import embedding_dim, load_model, model_fingerprint

    emb, rationales = encode_with_rationales(encoder, TEXTS)
    folder = encoder.save(tmp_path / "grace-model")
    assert (folder / GRACE_MARKER).is_file() and (folder / "adapter" / "adapter_config.json").is_file()
    loaded = load_model(str(folder), device="cpu")
    assert isinstance(loaded, GraceEncoder) and embedding_dim(loaded) == 32
    got = encode(loaded, TEXTS, role="query")
    assert got.dtype == np.float32 and got.shape == (4, 32)
    np.testing.assert_allclose(got, emb, atol=1e-5)
    again, again_rationales = encode_with_rationales(loaded, TEXTS)
    assert again_rationales == rationales
    assert model_fingerprint(loaded) == model_fingerprint(encoder)
    np.testing.assert_allclose(cached_encode(loaded, TEXTS), emb, atol=1e-5)
    normalized = loaded.encode(TEXTS[:1], normalize_embeddings=True)
    assert np.linalg.norm(normalized[0]) == pytest.approx(1.0, abs=1e-5)


def test_bad_grace_marker_is_one_line_error(tmp_path):
    from embedkit.errors import ModelError
    from embedkit.models import load_model

    (tmp_path / "embedkit_grace.json").write_text("{not json")
    with pytest.raises(ModelError, match="not a valid GRACE marker"):
        load_model(str(tmp_path))


def test_mean_pooled_raw_text_baseline(tiny_lm):
    from embedkit.generative.lm_encoder import MeanPooledLMEncoder

    enc = MeanPooledLMEncoder(tiny_lm, max_input_tokens=5)
    together = enc.encode(TEXTS, batch_size=4)
    alone = np.stack([enc.encode([t])[0] for t in TEXTS])
    np.testing.assert_allclose(together, alone, atol=1e-5)  # padding in a batch changes nothing
    ids = tiny_lm.tokenizer(TEXTS[0], add_special_tokens=False)["input_ids"][:5]
    with torch.no_grad():
        hidden = tiny_lm.model(torch.tensor([ids]), output_hidden_states=True).hidden_states[-1][0]
    np.testing.assert_allclose(together[0], hidden.mean(0).numpy(), atol=1e-5)
    assert enc.encode(TEXTS[0]).shape == (32,)


def test_fingerprints_tell_encoders_on_the_same_weights_apart(encoder):
    from embedkit.generative.lm import CausalLM
    from embedkit.generative.lm_encoder import MeanPooledLMEncoder
    from embedkit.models import model_fingerprint

    first = model_fingerprint(encoder)
    encoder.settings = encoder.settings.model_copy(update={"max_rationale_tokens": 3})
    assert model_fingerprint(encoder) != first  # other settings, other embeddings: never a cache hit
    raw = MeanPooledLMEncoder(CausalLM(encoder.lm.model.get_base_model(), encoder.lm.tokenizer, "tiny"))
    assert model_fingerprint(raw) not in (first, model_fingerprint(encoder))
